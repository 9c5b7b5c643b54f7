//! Seeing what the workers do: `--stats`, `--timeline`, `--progress` and
//! `PARPY_LOG`.
//!
//! * [`record`]: per-pool and per-worker counters and task spans, which the
//!   runtime fills only while [`recording`] is on.
//! * [`stats`]: the `--stats` report (a table on stderr, or JSON).
//! * [`timeline`]: the `--timeline` file (Chrome trace events).
//! * [`progress`]: live progress bars of maps, drawn on stderr.
//! * [`log`]: `PARPY_LOG=debug`, one stderr line per pool event.
//!
//! Everything is off unless asked for: the runtime's per-job cost then is
//! one relaxed atomic load ([`recording`]) and one `Option` check (a job's
//! progress counter).

pub mod log;
pub mod progress;
pub mod record;
pub mod stats;
pub mod timeline;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Where `--stats` goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsOut {
    /// A table on stderr at exit.
    Table,
    /// JSON written to this file at exit.
    Json(PathBuf),
}

/// What the command line and the environment asked for.
#[derive(Debug, Default, Clone)]
pub struct Settings {
    pub stats: Option<StatsOut>,
    pub timeline: Option<PathBuf>,
    /// Every map draws a progress bar unless it says `progress=False`.
    pub progress: bool,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();
static RECORDING: AtomicBool = AtomicBool::new(false);

/// Records what the process asked for; call once, before any pool starts.
pub fn configure(settings: Settings) {
    epoch();
    RECORDING.store(
        settings.stats.is_some() || settings.timeline.is_some(),
        Ordering::Relaxed,
    );
    let _ = SETTINGS.set(settings);
}

/// The settings in force (all off when [`configure`] was never called,
/// as in a process that embeds parpy some other way).
pub fn settings() -> &'static Settings {
    static OFF: Settings = Settings {
        stats: None,
        timeline: None,
        progress: false,
    };
    SETTINGS.get().unwrap_or(&OFF)
}

/// Whether pools record counters and spans (`--stats` or `--timeline`).
#[inline]
pub fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

/// The instant all timestamps count from: the process's start, near enough.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Microseconds from [`epoch`] to `t`.
pub fn micros(t: Instant) -> f64 {
    t.saturating_duration_since(epoch()).as_nanos() as f64 / 1000.0
}

/// Writes the reports at exit, however the process exits: from the
/// launcher after CPython finalized, or from `exit()` when CPython ends the
/// process itself (see [`crate::ffi::embed::at_process_exit`]).
pub fn finish_at_exit() {
    extern "C" fn hook() {
        finish();
    }
    let s = settings();
    if s.stats.is_some() || s.timeline.is_some() {
        crate::ffi::embed::at_process_exit(hook);
    }
}

/// At exit, after every pool has ended: writes the `--stats` report and
/// the `--timeline` file, once. A file that cannot be written is reported
/// on stderr; the script's exit code stays its own.
pub fn finish() {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::SeqCst) {
        return;
    }
    let s = settings();
    let snapshot = record::snapshot();
    match &s.stats {
        Some(StatsOut::Table) => {
            let text = stats::table(&snapshot);
            progress::suspend(|| eprint!("{text}"));
        }
        Some(StatsOut::Json(path)) => {
            if let Err(e) = std::fs::write(path, stats::json(&snapshot)) {
                eprintln!(
                    "parpy: cannot write the --stats file {}: {e}",
                    path.display()
                );
            }
        }
        None => {}
    }
    if let Some(path) = &s.timeline
        && let Err(e) = std::fs::write(path, timeline::json(&snapshot))
    {
        eprintln!(
            "parpy: cannot write the --timeline file {}: {e}",
            path.display()
        );
    }
}
