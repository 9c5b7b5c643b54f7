//! The native functions behind `--stats`, `--timeline`, progress bars and
//! `PARPY_LOG` (see [`crate::observe`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::native::{arg, arg_u64};
use crate::ffi::{Gil, Obj, PyResult};
use crate::observe::log::Level;
use crate::observe::progress::Bar;
use crate::observe::{self as obs, record};
use crate::runtime::Pool;

/// Progress bars, by id, until `_progress_end`.
static BARS: Mutex<Option<HashMap<u64, Arc<Bar>>>> = Mutex::new(None);

fn bars() -> MutexGuard<'static, Option<HashMap<u64, Arc<Bar>>>> {
    BARS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The bar `id`, while it lasts.
pub(super) fn bar(id: u64) -> Option<Arc<Bar>> {
    bars().as_ref().and_then(|b| b.get(&id).cloned())
}

/// `_progress_start(pool, label, total) -> bar id`: a bar of `total` calls
/// (None: not known), which shows how many of `pool`'s workers are busy.
pub(super) fn progress_start(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let pool: Option<Arc<Pool>> = super::native::pool_by_id(arg_u64(gil, args, 0)?);
    let label = arg(gil, args, 1)?.as_str(gil)?.to_owned();
    let total = match arg(gil, args, 2)? {
        t if t.is_none() => None,
        t => t.as_i64(gil)?.map(|n| n.max(0) as u64),
    };
    let workers = pool.as_ref().map_or(0, |p| p.size());
    let p = pool.as_ref().map(Arc::downgrade);
    let bar = Bar::start(label, total, workers, move || {
        p.as_ref().and_then(|p| p.upgrade()).map_or(0, |p| p.busy())
    });
    let id = crate::runtime::next_id();
    bars().get_or_insert_with(HashMap::new).insert(id, bar);
    gil.int(id as i64)
}

/// `_observe_flags() -> (recording, progress by default, timeline)`.
pub(super) fn flags(gil: Gil<'_>, _: &[Obj]) -> PyResult<Obj> {
    let s = obs::settings();
    gil.tuple(vec![
        gil.bool(obs::recording()),
        gil.bool(s.progress),
        gil.bool(s.timeline.is_some()),
    ])
}

/// `_observe_now() -> µs since the process started` (the timeline's clock).
pub(super) fn now(gil: Gil<'_>, _: &[Obj]) -> PyResult<Obj> {
    gil.float(obs::micros(Instant::now()))
}

fn instant(us: f64) -> Instant {
    obs::epoch() + Duration::from_secs_f64(us.max(0.0) / 1e6)
}

/// `_observe_fallback(name, mode, thread, start_us, end_us)`: a task ran in
/// the fallback.
pub(super) fn fallback_task(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    if obs::recording() {
        record::fallback_task(
            arg(gil, args, 0)?.as_str(gil)?.to_owned(),
            arg(gil, args, 1)?.as_str(gil)?.to_owned(),
            arg_u64(gil, args, 2)?,
            instant(arg(gil, args, 3)?.as_f64(gil)?),
            instant(arg(gil, args, 4)?.as_f64(gil)?),
        );
    }
    Ok(gil.none())
}

/// `_log(level, text)`: a `PARPY_LOG` line ("info" or "debug") from Python;
/// returns whether that level is on (`_log(level, None)` only asks).
pub(super) fn log(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let level = match arg(gil, args, 0)?.as_str(gil)? {
        "debug" => Level::Debug,
        _ => Level::Info,
    };
    let on = obs::log::enabled(level);
    if on && let Some(text) = args.get(1).filter(|t| !t.is_none()) {
        obs::log::line(level, format_args!("{}", text.as_str(gil)?));
    }
    Ok(gil.bool(on))
}

/// `_progress_add(bar, n)`: `n` more calls finished (in the fallback, or
/// read by a map that counts as it reads).
pub(super) fn progress_add(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    if let Some(b) = bar(arg_u64(gil, args, 0)?) {
        b.add(arg_u64(gil, args, 1)?);
    }
    Ok(gil.none())
}

/// `_progress_set(bar, n)`: exactly `n` calls are done (a map that moves
/// to the fallback redoes the calls its workers refused).
pub(super) fn progress_set(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    if let Some(b) = bar(arg_u64(gil, args, 0)?) {
        b.done
            .store(arg_u64(gil, args, 1)?, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(gil.none())
}

/// `_progress_end(bar)`: the map's results are all read (or it stopped):
/// the bar goes, and one line says how it went.
pub(super) fn progress_end(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let id = arg_u64(gil, args, 0)?;
    let b = bars().as_mut().and_then(|b| b.remove(&id));
    if let Some(b) = b {
        // Joins the drawing thread, which never needs this GIL.
        gil.allow_threads(|| b.end());
    }
    Ok(gil.none())
}

/// `_progress_write(stream, text)`: writes and flushes `text` on `stream`
/// (a file object) with every progress bar cleared, so they never mix.
pub(super) fn progress_write(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let out = arg(gil, args, 0)?;
    let text = arg(gil, args, 1)?;
    obs::progress::suspend(|| -> PyResult<()> {
        out.getattr(gil, c"write")?.call(gil, &[text])?;
        out.getattr(gil, c"flush")?.call(gil, &[])?;
        Ok(())
    })?;
    Ok(gil.none())
}
