//! `PARPY_LOG`: pool events on stderr, one line each, for when something
//! behaves unexpectedly. `info` tells pool starts and closes, replaced
//! workers and fallbacks; `debug` adds each worker's start and every
//! interrupt. Lines look like `parpy[debug] +0.052s pool 1: worker 0 ready in 18.3 ms`.

use std::sync::OnceLock;

/// How much `PARPY_LOG` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Off,
    Info,
    Debug,
}

static LEVEL: OnceLock<Level> = OnceLock::new();

/// Parses `PARPY_LOG` (unset, empty, `0` and `off` are off).
pub fn level_from_env() -> Result<Level, String> {
    match std::env::var("PARPY_LOG") {
        Err(_) => Ok(Level::Off),
        Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
            "" | "0" | "off" => Ok(Level::Off),
            "info" => Ok(Level::Info),
            "debug" | "1" => Ok(Level::Debug),
            _ => Err(format!("PARPY_LOG must be debug, info or off, not {v:?}")),
        },
    }
}

/// Sets the level once (the launcher calls it; elsewhere the environment decides).
pub fn set_level(level: Level) {
    let _ = LEVEL.set(level);
}

/// The level in force.
pub fn level() -> Level {
    *LEVEL.get_or_init(|| level_from_env().unwrap_or(Level::Off))
}

/// Whether lines of `at` are written.
#[inline]
pub fn enabled(at: Level) -> bool {
    at != Level::Off && level() >= at
}

/// Writes one line, if `at` is enabled (above any progress bar).
pub fn line(at: Level, text: std::fmt::Arguments<'_>) {
    if !enabled(at) {
        return;
    }
    let name = match at {
        Level::Debug => "debug",
        _ => "info",
    };
    let t = super::epoch().elapsed().as_secs_f64();
    let msg = format!("parpy[{name}] +{t:.3}s {text}\n");
    super::progress::suspend(|| {
        use std::io::Write;
        let _ = std::io::stderr().lock().write_all(msg.as_bytes());
    });
}

/// `debug!(...)`: a [`Level::Debug`] line.
macro_rules! debug {
    ($($t:tt)*) => {
        if $crate::observe::log::enabled($crate::observe::log::Level::Debug) {
            $crate::observe::log::line($crate::observe::log::Level::Debug, format_args!($($t)*))
        }
    };
}

/// `info!(...)`: a [`Level::Info`] line.
macro_rules! info {
    ($($t:tt)*) => {
        if $crate::observe::log::enabled($crate::observe::log::Level::Info) {
            $crate::observe::log::line($crate::observe::log::Level::Info, format_args!($($t)*))
        }
    };
}

pub(crate) use {debug, info};
