//! Live progress bars of maps (`progress=True`, `--progress`), drawn on
//! stderr by a thread of their own from the runtime's counters: workers add
//! to [`Bar::done`] as their jobs finish, so a bar costs no Python call per
//! task. Worker output and parpy's own lines are written through
//! [`suspend`], so they never mix with a bar.
//!
//! When stderr is not a terminal no bar is drawn: a map with progress on
//! says how it went in one line when it ends.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a bar is redrawn.
const TICK: Duration = Duration::from_millis(100);

/// Every bar of the process, stacked, so that [`suspend`] clears them all.
fn multi() -> &'static MultiProgress {
    static MULTI: OnceLock<MultiProgress> = OnceLock::new();
    MULTI.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// Bars being drawn now.
static DRAWN: AtomicUsize = AtomicUsize::new(0);

/// Runs `f` (which writes to the terminal) with every bar cleared, and
/// redraws them after; just runs `f` when no bar is drawn.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    if DRAWN.load(Ordering::SeqCst) == 0 {
        f()
    } else {
        multi().suspend(f)
    }
}

/// The progress of one map.
pub struct Bar {
    /// Calls finished: the workers' counter.
    pub done: AtomicU64,
    /// Calls in all, when known (a map over an iterator with `buffersize`
    /// does not know).
    total: Option<u64>,
    label: String,
    started: Instant,
    ended: AtomicBool,
    drawer: Mutex<Option<(ProgressBar, JoinHandle<()>)>>,
}

impl Bar {
    /// A bar for `total` calls of `label`, drawn at once when stderr is a
    /// terminal; `busy` says how many of the pool's `workers` run a job now.
    pub fn start(
        label: String,
        total: Option<u64>,
        workers: usize,
        busy: impl Fn() -> usize + Send + 'static,
    ) -> Arc<Bar> {
        let bar = Arc::new(Bar {
            done: AtomicU64::new(0),
            total,
            label,
            started: Instant::now(),
            ended: AtomicBool::new(false),
            drawer: Mutex::new(None),
        });
        if std::io::stderr().is_terminal() {
            let (pb, template) = match total {
                Some(n) => (
                    ProgressBar::new(n),
                    "{prefix} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {msg}",
                ),
                None => (
                    ProgressBar::no_length(),
                    "{prefix} {spinner} {pos} done {per_sec} {msg}",
                ),
            };
            pb.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            pb.set_prefix(bar.label.clone());
            let pb = multi().add(pb);
            DRAWN.fetch_add(1, Ordering::SeqCst);
            let (me, shown) = (Arc::clone(&bar), pb.clone());
            let drawer = std::thread::Builder::new()
                .name("parpy-progress".into())
                .spawn(move || {
                    while !me.ended.load(Ordering::SeqCst) {
                        shown.set_position(me.count());
                        shown.set_message(format!("{}/{workers} busy", busy()));
                        std::thread::park_timeout(TICK);
                    }
                });
            match drawer {
                Ok(h) => *bar.drawer.lock().unwrap_or_else(|e| e.into_inner()) = Some((pb, h)),
                Err(_) => {
                    pb.finish_and_clear();
                    multi().remove(&pb);
                    DRAWN.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
        bar
    }

    /// Calls done, never more than the total.
    fn count(&self) -> u64 {
        let done = self.done.load(Ordering::Relaxed);
        self.total.map_or(done, |t| done.min(t))
    }

    /// Counts `n` more calls finished.
    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// Ends the bar: it is cleared and one line says how the map went.
    /// Only the first call does anything.
    pub fn end(&self) {
        if self.ended.swap(true, Ordering::SeqCst) {
            return;
        }
        let drawer = self.drawer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((pb, thread)) = drawer {
            thread.thread().unpark();
            let _ = thread.join();
            pb.finish_and_clear();
            multi().remove(&pb);
            DRAWN.fetch_sub(1, Ordering::SeqCst);
        }
        let line = self.summary();
        suspend(|| eprintln!("{line}"));
    }

    /// `parpy: score: 1000/1000 tasks in 1.23 s (813/s)`.
    fn summary(&self) -> String {
        let done = self.count();
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let rate = if rate >= 100.0 {
            format!("{rate:.0}/s")
        } else {
            format!("{rate:.2}/s")
        };
        let (of, tail) = match self.total {
            Some(t) if done < t => (format!("/{t}"), ", stopped early"),
            Some(t) => (format!("/{t}"), ""),
            None => (String::new(), ""),
        };
        format!(
            "parpy: {}: {done}{of} tasks in {} ({rate}){tail}",
            self.label,
            super::stats::human_time(Duration::from_secs_f64(secs))
        )
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.end();
    }
}
