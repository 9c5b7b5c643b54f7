//! The native functions of the `parpy` module (names start with `_`; the
//! Python half wraps them).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};

use super::observe;
use crate::ffi::module::NativeFn;
use crate::ffi::{ExcKind, Gil, Kind, Obj, PyErr, PyResult};
use crate::runtime::{self, Event, FuncRef, Job, Outcome, Payload, Pool, Reply, TaskState};
use crate::transfer::{Lender, Value, decode, encode};

/// The functions, in the order they are added to the module.
pub(super) static FUNCTIONS: &[NativeFn] = &[
    NativeFn::new(c"_worker_id", worker_id),
    NativeFn::new(c"_worker_unraisable", worker_unraisable),
    NativeFn::new(c"_next_id", next_id),
    NativeFn::new(c"_cancel", cancel),
    NativeFn::new(c"_task_started", task_started),
    NativeFn::new(c"_interrupt_all", interrupt_all),
    NativeFn::new(c"_default_workers", default_workers),
    NativeFn::new(c"_fallback_mode", fallback_mode),
    NativeFn::new(c"_script_path", script_path),
    NativeFn::new(c"_set_script_path", set_script_path),
    NativeFn::new(c"_set_pickle_by_value", set_pickle_by_value),
    NativeFn::new(c"_pickle_by_value", pickle_by_value),
    NativeFn::new(c"_cluster_info", crate::cluster::info),
    NativeFn::new(c"_set_exit_code", set_exit_code),
    NativeFn::new(c"_set_died_of_sigint", set_died_of_sigint),
    NativeFn::new(c"_emit", emit),
    NativeFn::new(c"_share", share),
    NativeFn::new(c"_pool_start", pool_start),
    NativeFn::new(c"_pool_init", pool_init),
    NativeFn::new(c"_pool_shutdown", pool_shutdown),
    NativeFn::new(c"_pool_shutdown_all", pool_shutdown_all),
    NativeFn::new(c"_seal_exit", seal_exit),
    NativeFn::new(c"_park_forever", park_forever),
    NativeFn::new(c"_count_refusal", count_refusal),
    NativeFn::new(c"_ext_init_enter", ext_init_enter),
    NativeFn::new(c"_ext_init_exit", ext_init_exit),
    NativeFn::new(c"_func_register", func_register),
    NativeFn::new(c"_func_forget", func_forget),
    NativeFn::new(c"_submit", submit),
    NativeFn::new(c"_collect", collect),
    NativeFn::new(c"_collect_stop", collect_stop),
    NativeFn::new(c"_wake_direct", wake_direct),
    NativeFn::new(c"_map_start", map_start),
    NativeFn::new(c"_spmd_start", spmd_start),
    NativeFn::new(c"_map_next", map_next),
    NativeFn::new(c"_call_end", call_end),
    NativeFn::new(c"_queue_new", queue_new),
    NativeFn::new(c"_queue_attach", queue_attach),
    NativeFn::new(c"_queue_release", queue_release),
    NativeFn::new(c"_queue_put", queue_put),
    NativeFn::new(c"_queue_get", queue_get),
    NativeFn::new(c"_queue_len", queue_len),
    NativeFn::new(c"_observe_flags", observe::flags),
    NativeFn::new(c"_observe_now", observe::now),
    NativeFn::new(c"_observe_fallback", observe::fallback_task),
    NativeFn::new(c"_log", observe::log),
    NativeFn::new(c"_progress_start", observe::progress_start),
    NativeFn::new(c"_progress_add", observe::progress_add),
    NativeFn::new(c"_progress_set", observe::progress_set),
    NativeFn::new(c"_progress_end", observe::progress_end),
    NativeFn::new(c"_progress_write", observe::progress_write),
];

// ----- process-wide state of the main interpreter's side -------------------

static EXIT_CODE: AtomicI32 = AtomicI32::new(-1);
static DIED_OF_SIGINT: AtomicBool = AtomicBool::new(false);

fn lock<T>(m: &'static Mutex<T>) -> MutexGuard<'static, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

static POOLS: Mutex<Option<HashMap<u64, Arc<Pool>>>> = Mutex::new(None);
static FUNCS: Mutex<Option<HashMap<u64, Arc<FuncRef>>>> = Mutex::new(None);
static CALLS: Mutex<Option<HashMap<u64, Call>>> = Mutex::new(None);
/// States of submitted futures' jobs, by future tag, until their outcome arrives.
static FUTURES: Mutex<Option<HashMap<u64, Arc<TaskState>>>> = Mutex::new(None);

/// A running `map` or `spmd`: its own event channel, cancel flag and pool.
struct Call {
    rx: Receiver<Event>,
    cancel: Arc<AtomicBool>,
    pool: Arc<Pool>,
}

/// The channel of futures results and of output written outside tasks.
fn futures_channel() -> &'static (Sender<Event>, Receiver<Event>) {
    static CH: OnceLock<(Sender<Event>, Receiver<Event>)> = OnceLock::new();
    CH.get_or_init(unbounded)
}

/// Whether the script ended with an unhandled `KeyboardInterrupt` (recorded
/// at exit, because CPython's own flag for it is process-wide and any
/// interpreter evaluating a string, a worker for instance, resets it).
pub fn died_of_sigint() -> bool {
    DIED_OF_SIGINT.load(Ordering::SeqCst)
}

/// An exit code set by the `__parallel__` hook, to use when the script itself ended with 0.
pub fn exit_code_override() -> Option<i32> {
    let c = EXIT_CODE.load(Ordering::SeqCst);
    (c >= 0).then_some(c)
}

// ----- argument helpers ----------------------------------------------------

pub(super) fn arg<'a>(gil: Gil<'_>, args: &'a [Obj], i: usize) -> PyResult<&'a Obj> {
    args.get(i).ok_or_else(|| {
        PyErr::new(
            gil,
            ExcKind::TypeError,
            "parpy: missing argument to a native function",
        )
    })
}

pub(super) fn arg_u64(gil: Gil<'_>, args: &[Obj], i: usize) -> PyResult<u64> {
    match arg(gil, args, i)?.as_i64(gil)? {
        Some(v) if v >= 0 => Ok(v as u64),
        _ => Err(PyErr::new(
            gil,
            ExcKind::ValueError,
            "parpy: expected a non-negative int",
        )),
    }
}

/// `None` → None, else seconds as a Duration (negative → zero).
fn arg_timeout(gil: Gil<'_>, args: &[Obj], i: usize) -> PyResult<Option<Duration>> {
    let o = arg(gil, args, i)?;
    if o.is_none() {
        return Ok(None);
    }
    let secs = o.as_f64(gil)?;
    if secs.is_nan() {
        return Err(PyErr::new(
            gil,
            ExcKind::ValueError,
            "timeout must be a number",
        ));
    }
    Ok(Some(Duration::from_secs_f64(secs.clamp(0.0, 1e9))))
}

/// The running pool `id`, if there is one.
pub(super) fn pool_by_id(id: u64) -> Option<Arc<Pool>> {
    lock(&POOLS).as_ref().and_then(|p| p.get(&id).cloned())
}

fn pool(gil: Gil<'_>, id: u64) -> PyResult<Arc<Pool>> {
    lock(&POOLS)
        .get_or_insert_with(HashMap::new)
        .get(&id)
        .cloned()
        .ok_or_else(|| {
            PyErr::new(
                gil,
                ExcKind::RuntimeError,
                "cannot schedule new futures after shutdown",
            )
        })
}

/// A snapshot of every running pool.
fn all_pools() -> Vec<Arc<Pool>> {
    lock(&POOLS)
        .get_or_insert_with(HashMap::new)
        .values()
        .cloned()
        .collect()
}

fn pool_err(gil: Gil<'_>, e: runtime::PoolError) -> PyErr {
    PyErr::new(gil, ExcKind::RuntimeError, &e.to_string())
}

/// The function registered under `fid`, or else (a callable that Python
/// does not cache) one made for this call only from `spec`.
fn func(gil: Gil<'_>, fid: u64, spec: &Obj) -> PyResult<Arc<FuncRef>> {
    if let Some(f) = lock(&FUNCS).get_or_insert_with(HashMap::new).get(&fid) {
        return Ok(Arc::clone(f));
    }
    new_func(gil, fid, spec)
}

fn new_func(gil: Gil<'_>, fid: u64, spec: &Obj) -> PyResult<Arc<FuncRef>> {
    let spec = encode(gil, spec).map_err(|e| e.into_type_error(gil, "the function", "function"))?;
    Ok(Arc::new(FuncRef { id: fid, spec }))
}

/// `_count_refusal()`: in a worker, a module refused its interpreter.
/// `_ext_init_enter()`: waits (detached) until no other worker initialises
/// an extension module; see `runtime::ext_init`.
fn ext_init_enter(gil: Gil<'_>, _: &[Obj]) -> PyResult<Obj> {
    gil.allow_threads(runtime::ext_init::enter);
    Ok(gil.none())
}

/// `_ext_init_exit()`: the end of what `_ext_init_enter` began.
fn ext_init_exit(gil: Gil<'_>, _: &[Obj]) -> PyResult<Obj> {
    runtime::ext_init::exit();
    Ok(gil.none())
}

fn count_refusal(gil: Gil<'_>, _: &[Obj]) -> PyResult<Obj> {
    runtime::count_refusal();
    Ok(gil.none())
}

/// `_func_register(fid, spec)`: keeps the encoded spec of a live function,
/// until `_func_forget(fid)`.
fn func_register(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let fid = arg_u64(gil, args, 0)?;
    let f = new_func(gil, fid, arg(gil, args, 1)?)?;
    lock(&FUNCS).get_or_insert_with(HashMap::new).insert(fid, f);
    Ok(gil.none())
}

/// `_func_forget(fid)`: the function died. Its spec goes once no queued job
/// holds it, and then workers drop their resolved copy (see `FuncRef`).
/// Called from a weakref callback, so at any point: it only takes the lock.
fn func_forget(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let fid = arg_u64(gil, args, 0)?;
    let gone = lock(&FUNCS).get_or_insert_with(HashMap::new).remove(&fid);
    drop(gone); // outside the lock
    Ok(gil.none())
}

/// Encodes positional arguments one by one, naming the one that cannot travel.
/// Large buffers are lent to the workers (see [`Lender`]).
fn encode_args(gil: Gil<'_>, lender: &mut Lender, args: &Obj) -> PyResult<Value> {
    let mut out = Vec::new();
    for (i, a) in args.seq_items().iter().enumerate() {
        match lender.encode(gil, a) {
            Ok(v) => out.push(v),
            Err(e) => {
                return Err(e.into_type_error(gil, &format!("argument {i}"), &a.type_name(gil)));
            }
        }
    }
    Ok(Value::Tuple(out))
}

fn encode_kwargs(gil: Gil<'_>, lender: &mut Lender, kwargs: &Obj) -> PyResult<Value> {
    if kwargs.is_none() {
        return Ok(Value::None);
    }
    let mut out = Vec::new();
    for (k, v) in kwargs.dict_items() {
        let name = k.as_str(gil)?.to_owned();
        match lender.encode(gil, &v) {
            Ok(val) => out.push((Value::Str(name), val)),
            Err(e) => {
                return Err(e.into_type_error(
                    gil,
                    &format!("keyword argument '{name}'"),
                    &v.type_name(gil),
                ));
            }
        }
    }
    Ok(Value::Dict(out))
}

// ----- events to Python ----------------------------------------------------

/// `(status, payload)` for an outcome: 0 value, 1 packed exception,
/// 2 parpy failure text, 3 cancelled, 4 exception raised while decoding.
fn outcome_obj(gil: Gil<'_>, o: &Outcome) -> PyResult<Obj> {
    let (status, payload) = match o {
        Outcome::Ok(v) => match decode(gil, v) {
            Ok(obj) => (0, obj),
            Err(e) => (4, e.value().clone()),
        },
        Outcome::Err(v) => match decode(gil, v) {
            Ok(obj) => (1, obj),
            Err(e) => (4, e.value().clone()),
        },
        Outcome::Failed(s) => (2, gil.str(s)?),
        Outcome::Cancelled => (3, gil.none()),
    };
    gil.tuple(vec![gil.int(status)?, payload])
}

/// `(0, stream, text)`, `(1, tag, status, payload)` or
/// `(2, tag, start, [values…] | None, None | [(status, payload)…])`.
fn event_obj(gil: Gil<'_>, ev: &Event) -> PyResult<Option<Obj>> {
    Ok(Some(match ev {
        Event::Output { stream, text } => gil.tuple(vec![
            gil.int(0)?,
            gil.int(*stream as i64)?,
            gil.str_lossless(text)?,
        ])?,
        Event::Done { tag, outcome } => {
            let o = outcome_obj(gil, outcome)?.seq_items();
            let mut items = vec![gil.int(1)?, gil.int(*tag as i64)?];
            items.extend(o);
            gil.tuple(items)?
        }
        Event::Chunk {
            tag,
            start,
            outcomes,
        } => {
            // All values (the common case) as one list; else (status, payload) per item.
            let mut values = Vec::with_capacity(outcomes.len());
            for o in outcomes {
                match o {
                    Outcome::Ok(v) => match decode(gil, v) {
                        Ok(obj) => values.push(obj),
                        Err(_) => break,
                    },
                    _ => break,
                }
            }
            let (values, outcomes) = if values.len() == outcomes.len() {
                (gil.list(values)?, gil.none())
            } else {
                drop(values);
                let list = outcomes
                    .iter()
                    .map(|o| outcome_obj(gil, o))
                    .collect::<PyResult<Vec<_>>>()?;
                (gil.none(), gil.list(list)?)
            };
            gil.tuple(vec![
                gil.int(2)?,
                gil.int(*tag as i64)?,
                gil.int(*start as i64)?,
                values,
                outcomes,
            ])?
        }
        Event::Stop | Event::Wake => return Ok(None),
    }))
}

/// Waits for events on `rx` without holding the GIL, waking every 50 ms to
/// run signal handlers (so Ctrl-C interrupts a waiting main thread).
/// Returns what arrived (possibly empty on timeout); `None` when the channel closed.
fn wait_events(
    gil: Gil<'_>,
    rx: &Receiver<Event>,
    timeout: Option<Duration>,
) -> PyResult<Option<Vec<Event>>> {
    const SLICE: Duration = Duration::from_millis(50);
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let slice = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
            None => SLICE,
        };
        let first = detached(gil, || match runtime::spin(|| rx.try_recv().ok()) {
            Some(ev) => Ok(ev),
            None => rx.recv_timeout(slice),
        });
        match first {
            Ok(ev) => {
                let mut evs = vec![ev];
                while evs.len() < 4096 {
                    match rx.try_recv() {
                        Ok(ev) => evs.push(ev),
                        Err(_) => break,
                    }
                }
                return Ok(Some(evs));
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(None),
            Err(RecvTimeoutError::Timeout) => {
                gil.check_signals()?;
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(Some(Vec::new()));
                }
            }
        }
    }
}

/// Set by `_seal_exit` once parpy's exit hook is done: the interpreter
/// finalizes next.
static EXITING: AtomicBool = AtomicBool::new(false);
/// Threads between the end of a detached wait and holding the GIL again.
static REATTACHING: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The thread that sealed the exit: the one finalizing the interpreter,
    /// whose own waits in later atexit handlers must go on. (Not "the thread
    /// named main": in a plain python, Rust never named Python's main thread.)
    static SEALED_HERE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs a wait detached, like `allow_threads`; but once the exit is sealed,
/// a thread of the main interpreter other than the finalizing one (a daemon
/// thread blocked in `Queue.get()` or `result()`) never attaches again: it
/// parks until the process ends. CPython 3.12/3.13 ends a thread that
/// attaches during finalization with `pthread_exit`, which would unwind
/// through these Rust frames and abort.
fn detached<T, F: FnOnce() -> T + Send>(gil: Gil<'_>, f: F) -> T {
    let may_park = crate::ffi::interp::current_interpreter_id(gil) == 0 && !SEALED_HERE.get();
    let out = gil.allow_threads(|| {
        let out = f();
        REATTACHING.fetch_add(1, Ordering::SeqCst);
        if may_park && EXITING.load(Ordering::SeqCst) {
            REATTACHING.fetch_sub(1, Ordering::SeqCst);
            park_until_exit();
        }
        out
    });
    REATTACHING.fetch_sub(1, Ordering::SeqCst);
    out
}

/// `_seal_exit()`: the end of parpy's exit hook (pools and collector gone).
/// From now on waiting threads of the main interpreter stay detached (see
/// [`detached`]); returns once those already on their way back hold the
/// GIL no more than any running thread does.
fn seal_exit(gil: Gil<'_>, _: &[Obj]) -> PyResult<Obj> {
    SEALED_HERE.set(true);
    EXITING.store(true, Ordering::SeqCst);
    gil.allow_threads(|| {
        while REATTACHING.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    Ok(gil.none())
}

/// `_park_forever()`: the calling thread lets go of the GIL for good and
/// sleeps until the process ends; how `_lifecycle._stop_daemon_thread`
/// stops a daemon thread that asks for work once the interpreter exits.
fn park_forever(gil: Gil<'_>, _: &[Obj]) -> PyResult<Obj> {
    gil.allow_threads(|| {
        park_until_exit();
    });
    Ok(gil.none())
}

fn park_until_exit() -> ! {
    loop {
        std::thread::park();
    }
}

// ----- the functions -------------------------------------------------------

fn next_id(gil: Gil<'_>, _: &[Obj]) -> PyResult<Obj> {
    gil.int(runtime::next_id() as i64)
}

/// `_cancel(pool, tag) -> bool`: cancels a future's job unless a worker has
/// started it (as `concurrent.futures` does, a running task is left to
/// finish). False when it has started, or its outcome is already on its way.
fn cancel(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let state = future_state(arg_u64(gil, args, 1)?);
    Ok(gil.bool(state.is_some_and(|s| s.cancel())))
}

/// `_task_started(tag) -> bool`: whether a worker has started a future's job
/// (and its outcome has not arrived yet).
fn task_started(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let state = future_state(arg_u64(gil, args, 0)?);
    Ok(gil.bool(state.is_some_and(|s| s.started())))
}

/// The shared state of the future `tag`'s job, while its outcome has not arrived.
fn future_state(tag: u64) -> Option<Arc<TaskState>> {
    lock(&FUTURES)
        .get_or_insert_with(HashMap::new)
        .get(&tag)
        .cloned()
}

/// `_interrupt_all()`: Ctrl-C: every pending job is cancelled, every running one interrupted.
fn interrupt_all(gil: Gil<'_>, _: &[Obj]) -> PyResult<Obj> {
    let pools = all_pools();
    for call in lock(&CALLS).get_or_insert_with(HashMap::new).values() {
        call.cancel.store(true, Ordering::SeqCst);
    }
    for state in lock(&FUTURES).get_or_insert_with(HashMap::new).values() {
        state.cancel();
    }
    for p in &pools {
        p.cancel_pending();
        p.interrupt(0);
    }
    Ok(gil.none())
}

/// `_worker_unraisable(u)`: workers' `sys.unraisablehook`. An interrupt
/// that parpy sent to a task and that landed in a `__del__` or a weakref
/// callback cannot propagate from there: instead of "Exception ignored", it
/// is raised again at the task's next bytecode. Native, because once it is
/// re-armed no bytecode of the hook may run: the interrupt would fire there.
fn worker_unraisable(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let u = args
        .first()
        .ok_or_else(|| PyErr::new(gil, ExcKind::TypeError, "unraisablehook needs 1 argument"))?;
    let exc = u.getattr(gil, c"exc_value")?;
    if exc.is_keyboard_interrupt(gil) && runtime::rearm_interrupt(gil) {
        return Ok(gil.none());
    }
    gil.import("sys")?
        .getattr(gil, c"__unraisablehook__")?
        .call(gil, &[u])
}

fn worker_id(gil: Gil<'_>, _: &[Obj]) -> PyResult<Obj> {
    match runtime::current_worker() {
        Some(id) => gil.int(id as i64),
        None => Ok(gil.none()),
    }
}

fn default_workers(gil: Gil<'_>, _: &[Obj]) -> PyResult<Obj> {
    gil.int(runtime::default_workers() as i64)
}

fn fallback_mode(gil: Gil<'_>, _: &[Obj]) -> PyResult<Obj> {
    gil.str(runtime::fallback().name())
}

fn script_path(gil: Gil<'_>, _: &[Obj]) -> PyResult<Obj> {
    match super::script_path() {
        Some(p) => gil.str(p),
        None => Ok(gil.none()),
    }
}

/// `_set_script_path(path)`: `python -m parpy` names the script it runs.
fn set_script_path(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let path = arg(gil, args, 0)?.as_str(gil)?.to_owned();
    super::set_script_path(Some(path));
    Ok(gil.none())
}

/// `_set_pickle_by_value(on)`: pickles go through `parpy._dumps` from now
/// on (see [`crate::transfer::set_pickle_main_by_value`]).
fn set_pickle_by_value(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    crate::transfer::set_pickle_main_by_value(arg(gil, args, 0)?.is_true(gil)?);
    Ok(gil.none())
}

/// `_pickle_by_value()`: whether pickles go through `parpy._dumps`.
fn pickle_by_value(gil: Gil<'_>, _: &[Obj]) -> PyResult<Obj> {
    Ok(gil.bool(crate::transfer::pickle_main_by_value()))
}

fn set_exit_code(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let code = arg(gil, args, 0)?.as_i64(gil)?.unwrap_or(1);
    EXIT_CODE.store((code & 0xff) as i32, Ordering::SeqCst);
    exit_status_at_process_exit();
    Ok(gil.none())
}

fn set_died_of_sigint(gil: Gil<'_>, _: &[Obj]) -> PyResult<Obj> {
    DIED_OF_SIGINT.store(true, Ordering::SeqCst);
    exit_status_at_process_exit();
    Ok(gil.none())
}

/// In a plain python (no launcher to read them), the exit status that the
/// `__parallel__` hook or `python -m parpy` set takes effect when the
/// process exits: after CPython finalized, as the launcher would end it.
fn exit_status_at_process_exit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if !super::launched() {
        ONCE.call_once(|| crate::ffi::embed::at_process_exit(apply_exit_status));
    }
}

extern "C" fn apply_exit_status() {
    if died_of_sigint() {
        crate::ffi::embed::exit_by_sigint();
    } else if let Some(code) = exit_code_override().filter(|&c| c != 0) {
        crate::ffi::embed::exit_now(code);
    }
}

/// `_share(data: bytes) -> SharedBytes`: one copy, into memory all interpreters share.
fn share(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let data: std::sync::Arc<[u8]> = std::sync::Arc::from(arg(gil, args, 0)?.as_bytes(gil)?);
    let tp = gil.import("parpy")?.getattr(gil, c"SharedBytes")?;
    crate::ffi::shared::new_shared(gil, &tp, data)
}

/// `_emit(stream, text) -> bool`: a worker's output line(s) to the main interpreter.
fn emit(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let stream = arg_u64(gil, args, 0)? as u8;
    let text = arg(gil, args, 1)?.str_bytes_lossless(gil)?;
    Ok(gil.bool(runtime::emit_output(gil, stream, text)))
}

/// `_pool_start(size, setup) -> pool id`.
fn pool_start(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let size = arg_u64(gil, args, 0)? as usize;
    let setup = encode(gil, arg(gil, args, 1)?)
        .map_err(|e| e.into_type_error(gil, "the worker set-up", "dict"))?;
    let global = futures_channel().0.clone();
    // Detached: a pool that fails part-way joins the workers it started,
    // and their start may need this GIL (extension module imports).
    let p = gil
        .allow_threads(|| Pool::start(size, setup, global))
        .map_err(|e| pool_err(gil, e))?;
    let id = runtime::next_id();
    lock(&POOLS).get_or_insert_with(HashMap::new).insert(id, p);
    gil.int(id as i64)
}

/// `_pool_init(pool, fid, spec, initargs, tags)`: the initializer, once per worker.
fn pool_init(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let p = pool(gil, arg_u64(gil, args, 0)?)?;
    let f = func(gil, arg_u64(gil, args, 1)?, arg(gil, args, 2)?)?;
    let initargs = encode_args(gil, &mut Lender::new(gil), arg(gil, args, 3)?)?;
    let tags = arg(gil, args, 4)?.seq_items();
    for (w, tag) in tags.iter().enumerate().take(p.size()) {
        let job = Job::new(
            runtime::next_id(),
            Arc::clone(&f),
            Payload::Init {
                args: initargs.clone(),
            },
            Reply {
                tx: futures_channel().0.clone(),
                tag: tag.as_i64(gil)?.unwrap_or(0) as u64,
            },
            None,
        );
        p.submit_to(w, job).map_err(|e| pool_err(gil, e))?;
    }
    Ok(arg(gil, args, 4)?.clone())
}

/// `_pool_shutdown(pool, wait, cancel_pending, stop_running)`: with
/// `cancel_pending`, jobs not started are answered as cancelled; with
/// `stop_running` (`terminate_workers()`), running ones are interrupted.
fn pool_shutdown(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let id = arg_u64(gil, args, 0)?;
    let wait = arg(gil, args, 1)?.is_true(gil)?;
    let cancel = arg(gil, args, 2)?.is_true(gil)?;
    let stop = match args.get(3) {
        Some(o) => o.is_true(gil)?,
        None => false,
    };
    let p = lock(&POOLS)
        .get_or_insert_with(HashMap::new)
        .get(&id)
        .cloned();
    if let Some(p) = p {
        if cancel {
            p.cancel_pending();
        }
        if stop {
            p.interrupt(0);
        }
        p.close();
        if wait {
            wait_for_workers(gil, &p)?;
            lock(&POOLS).get_or_insert_with(HashMap::new).remove(&id);
        }
    }
    Ok(gil.none())
}

/// Waits for a closed pool's workers without the GIL, running signal
/// handlers every 50 ms (a second Ctrl-C can end a stuck shutdown). Says once
/// on stderr what it waits for, after a second, when a task ignored an
/// interrupt (or always, with `PARPY_VERBOSE=1`): a correct program that just
/// waits for its tasks prints nothing of parpy's, as with `concurrent.futures`.
fn wait_for_workers(gil: Gil<'_>, p: &Pool) -> PyResult<()> {
    let start = Instant::now();
    let mut told = false;
    while !gil.allow_threads(|| p.wait_exited(Duration::from_millis(50))) {
        gil.check_signals()?;
        if !told && start.elapsed() > Duration::from_secs(1) && (p.has_stuck() || verbose()) {
            told = true;
            eprintln!(
                "parpy: waiting for running tasks to finish (a task stuck in C code cannot be interrupted); press Ctrl-C to quit now"
            );
        }
    }
    Ok(())
}

/// `PARPY_VERBOSE` set to anything but empty or `0`.
fn verbose() -> bool {
    std::env::var_os("PARPY_VERBOSE").is_some_and(|v| !v.is_empty() && v != "0")
}

/// `_pool_shutdown_all()`: at exit, ends every pool and joins its threads.
fn pool_shutdown_all(gil: Gil<'_>, _: &[Obj]) -> PyResult<Obj> {
    let pools = all_pools();
    for p in &pools {
        p.close();
    }
    // Never return while a worker lives: the interpreter finalizes next. A
    // signal handler that raises meanwhile (a script's own SIGINT handler)
    // stops the running tasks instead, and its exception is raised once
    // all have ended; a second one ends the process as Ctrl-C would.
    let mut raised: Option<PyErr> = None;
    for p in &pools {
        while let Err(e) = wait_for_workers(gil, p) {
            if raised.is_some() {
                std::process::exit(crate::ffi::embed::exit_by_sigint());
            }
            raised = Some(e);
            for q in &pools {
                q.cancel_pending();
                q.interrupt(0);
            }
        }
    }
    lock(&POOLS).get_or_insert_with(HashMap::new).clear();
    match raised {
        Some(e) => Err(e),
        None => Ok(gil.none()),
    }
}

/// `_submit(pool, fid, spec, args, kwargs, tag)`: one call; its outcome goes to the collector.
fn submit(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let p = pool(gil, arg_u64(gil, args, 0)?)?;
    let f = func(gil, arg_u64(gil, args, 1)?, arg(gil, args, 2)?)?;
    let mut lender = Lender::new(gil);
    let call_args = encode_args(gil, &mut lender, arg(gil, args, 3)?)?;
    let kwargs = encode_kwargs(gil, &mut lender, arg(gil, args, 4)?)?;
    let tag = arg_u64(gil, args, 5)?;
    let state = Arc::new(TaskState::default());
    let job = Job::new(
        tag,
        f,
        Payload::Call {
            args: call_args,
            kwargs,
        },
        Reply {
            tx: futures_channel().0.clone(),
            tag,
        },
        None,
    )
    .with_task(Arc::clone(&state));
    lock(&FUTURES)
        .get_or_insert_with(HashMap::new)
        .insert(tag, state);
    if let Err(e) = p.submit(job) {
        lock(&FUTURES).get_or_insert_with(HashMap::new).remove(&tag);
        return Err(pool_err(gil, e));
    }
    Ok(gil.none())
}

/// `_collect(timeout) -> list of events | None`: for the collector thread.
/// Threads waiting in `_collect(…, direct=True)` for a future of their own.
static DIRECT: AtomicUsize = AtomicUsize::new(0);

/// `_collect(timeout, direct) -> list of events | None (stop)`.
///
/// The collector thread calls it with `direct=False`; a thread blocked in
/// `Future.result()` calls it with `direct=True` to take its result straight
/// from the channel (one wake-up instead of three). While a direct waiter
/// exists the collector steps aside, and after settling futures it sends a
/// `Wake` so that a direct waiter whose result it took looks again.
fn collect(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let timeout = arg_timeout(gil, args, 0)?;
    let direct = match args.get(1) {
        Some(o) => o.is_true(gil)?,
        None => false,
    };
    let rx = &futures_channel().1;
    let evs = if direct {
        DIRECT.fetch_add(1, Ordering::SeqCst);
        let got = wait_events(gil, rx, timeout);
        DIRECT.fetch_sub(1, Ordering::SeqCst);
        got?
    } else {
        // The collector: stay out of the way of direct waiters, without the GIL.
        let deadline = Instant::now() + timeout.unwrap_or(Duration::from_secs(1));
        let got = detached(gil, || {
            while Instant::now() < deadline {
                if DIRECT.load(Ordering::SeqCst) > 0 {
                    std::thread::sleep(Duration::from_micros(200));
                    continue;
                }
                match rx.recv_timeout(Duration::from_millis(5)) {
                    Ok(ev) => return Ok(Some(ev)),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return Err(()),
                }
            }
            Ok(None)
        });
        match got {
            Err(()) => None,
            Ok(None) => Some(Vec::new()),
            Ok(Some(ev)) => {
                let mut evs = vec![ev];
                while let Ok(ev) = rx.try_recv() {
                    evs.push(ev);
                    if evs.len() >= 4096 {
                        break;
                    }
                }
                Some(evs)
            }
        }
    };
    let Some(evs) = evs else {
        return Ok(gil.none());
    };
    {
        let mut flags = lock(&FUTURES);
        let flags = flags.get_or_insert_with(HashMap::new);
        for ev in &evs {
            if let Event::Done { tag, .. } = ev {
                flags.remove(tag);
            }
        }
    }
    let mut out = Vec::with_capacity(evs.len());
    let mut stop = false;
    for ev in &evs {
        match ev {
            Event::Stop => stop = true,
            Event::Wake => {}
            _ => out.extend(event_obj(gil, ev)?),
        }
    }
    if stop {
        // The stop is the collector's: hand it on (after what came before it).
        let _ = futures_channel().0.send(Event::Stop);
        if out.is_empty() {
            return Ok(gil.none());
        }
    }
    gil.list(out)
}

/// `_wake_direct()`: after the collector settled futures, nudge direct waiters.
fn wake_direct(gil: Gil<'_>, _: &[Obj]) -> PyResult<Obj> {
    for _ in 0..DIRECT.load(Ordering::SeqCst) {
        let _ = futures_channel().0.send(Event::Wake);
    }
    Ok(gil.none())
}

fn collect_stop(gil: Gil<'_>, _: &[Obj]) -> PyResult<Obj> {
    let _ = futures_channel().0.send(Event::Stop);
    Ok(gil.none())
}

fn new_call(pool: &Arc<Pool>) -> (u64, Sender<Event>, Arc<AtomicBool>) {
    let (tx, rx) = unbounded();
    let cancel = Arc::new(AtomicBool::new(false));
    let id = runtime::next_id();
    lock(&CALLS).get_or_insert_with(HashMap::new).insert(
        id,
        Call {
            rx,
            cancel: Arc::clone(&cancel),
            pool: Arc::clone(pool),
        },
    );
    (id, tx, cancel)
}

/// `_map_start(pool, fid, spec, items, star, chunksize[, bar]) -> call id`.
///
/// `items` is a list, a tuple or a range. With a `bar` (an id from
/// `_progress_start`, or None), workers count the calls they finish on it. Each chunk is queued as soon as
/// it is encoded, so the workers start while the rest is still encoding. An
/// item that cannot travel raises TypeError: chunks already running finish,
/// unread, and the others never start.
fn map_start(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let p = pool(gil, arg_u64(gil, args, 0)?)?;
    let f = func(gil, arg_u64(gil, args, 1)?, arg(gil, args, 2)?)?;
    let items = arg(gil, args, 3)?;
    let star = arg(gil, args, 4)?.is_true(gil)?;
    let chunk = (arg_u64(gil, args, 5)? as usize).max(1);
    // One lender for all items: an object repeated in the input is lent once.
    let mut lender = Lender::new(gil);
    let (id, tx, cancel) = new_call(&p);
    let bar = match args.get(6).filter(|o| !o.is_none()) {
        Some(b) => observe::bar(b.as_i64(gil)?.unwrap_or(0) as u64),
        None => None,
    };
    let send = |start: usize, batch: Vec<Value>| {
        p.submit(
            Job::new(
                id,
                Arc::clone(&f),
                Payload::Chunk {
                    start,
                    items: batch,
                    star,
                },
                Reply {
                    tx: tx.clone(),
                    tag: id,
                },
                Some(Arc::clone(&cancel)),
            )
            .with_progress(bar.clone()),
        )
    };
    let sent = match int_range(gil, items)? {
        // A range of machine ints: no int object is made on this side at all.
        Some((first, step, n)) => (0..n).step_by(chunk).try_for_each(|start| {
            let end = (start + chunk).min(n);
            let batch = (start..end)
                .map(|i| Value::Int((first + step * i as i128) as i64))
                .collect();
            send(start, batch).map_err(|e| pool_err(gil, e))
        }),
        None => {
            let objs = match items.kind() {
                Kind::List | Kind::Tuple => items.seq_items(),
                _ => items.iter_items(gil)?,
            };
            objs.chunks(chunk).enumerate().try_for_each(|(c, part)| {
                let start = c * chunk;
                let mut batch = Vec::with_capacity(part.len());
                for (k, item) in part.iter().enumerate() {
                    match lender.encode(gil, item) {
                        Ok(v) => batch.push(v),
                        Err(e) => {
                            // What is queued already runs; the rest never starts.
                            cancel.store(true, Ordering::SeqCst);
                            return Err(e.into_type_error(
                                gil,
                                &format!("item {} of the input", start + k),
                                &item.type_name(gil),
                            ));
                        }
                    }
                }
                send(start, batch).map_err(|e| pool_err(gil, e))
            })
        }
    };
    match sent {
        Ok(()) => gil.int(id as i64),
        Err(e) => {
            end_call(id, false, false);
            Err(e)
        }
    }
}

/// `(start, step, len)` of a `range` whose every item fits an i64.
fn int_range(gil: Gil<'_>, obj: &Obj) -> PyResult<Option<(i128, i128, usize)>> {
    if !obj.is_range() {
        return Ok(None);
    }
    let field =
        |name: &std::ffi::CStr| -> PyResult<Option<i64>> { obj.getattr(gil, name)?.as_i64(gil) };
    let (Some(start), Some(stop), Some(step)) =
        (field(c"start")?, field(c"stop")?, field(c"step")?)
    else {
        return Ok(None);
    };
    let (start, stop, step) = (start as i128, stop as i128, step as i128);
    let n = if step > 0 && stop > start {
        (stop - start + step - 1) / step
    } else if step < 0 && stop < start {
        (start - stop - step - 1) / -step
    } else {
        0
    };
    Ok(usize::try_from(n).ok().map(|n| (start, step, n)))
}

/// `_spmd_start(pool, fid, spec, args, kwargs, queue) -> call id`: one job per worker.
fn spmd_start(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let p = pool(gil, arg_u64(gil, args, 0)?)?;
    let f = func(gil, arg_u64(gil, args, 1)?, arg(gil, args, 2)?)?;
    let mut lender = Lender::new(gil);
    let call_args = encode_args(gil, &mut lender, arg(gil, args, 3)?)?;
    let kwargs = encode_kwargs(gil, &mut lender, arg(gil, args, 4)?)?;
    let kwargs = if kwargs == Value::None {
        Value::Dict(Vec::new())
    } else {
        kwargs
    };
    let queue = arg_u64(gil, args, 5)?;
    let (id, tx, cancel) = new_call(&p);
    for rank in 0..p.size() {
        let job = Job::new(
            id,
            Arc::clone(&f),
            Payload::Spmd {
                rank,
                size: p.size(),
                args: call_args.clone(),
                kwargs: kwargs.clone(),
                queue,
            },
            Reply {
                tx: tx.clone(),
                tag: rank as u64,
            },
            Some(Arc::clone(&cancel)),
        );
        if let Err(e) = p.submit_to(rank, job) {
            end_call(id, true, true);
            return Err(pool_err(gil, e));
        }
    }
    gil.int(id as i64)
}

/// `_map_next(call, timeout) -> list of events` (empty on timeout).
fn map_next(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let id = arg_u64(gil, args, 0)?;
    let timeout = arg_timeout(gil, args, 1)?;
    let rx = lock(&CALLS)
        .get_or_insert_with(HashMap::new)
        .get(&id)
        .map(|c| c.rx.clone())
        .ok_or_else(|| PyErr::new(gil, ExcKind::RuntimeError, "parpy: this call has ended"))?;
    // Every job answers, even one dropped unrun (see `Job`): a channel
    // that closed with answers missing is an error, never an empty result.
    let Some(evs) = wait_events(gil, &rx, timeout)? else {
        return Err(PyErr::new(
            gil,
            ExcKind::RuntimeError,
            &format!("parpy: {}", runtime::LOST),
        ));
    };
    let out = evs
        .iter()
        .filter_map(|ev| event_obj(gil, ev).transpose())
        .collect::<PyResult<Vec<_>>>()?;
    gil.list(out)
}

/// Forgets a call. With `stop`, skips its jobs that have not started, and
/// with `interrupt` too, interrupts running ones; without, they run to the
/// end, unread.
fn end_call(id: u64, stop: bool, interrupt: bool) {
    let call = lock(&CALLS).get_or_insert_with(HashMap::new).remove(&id);
    if let Some(call) = call {
        if stop {
            call.cancel.store(true, Ordering::SeqCst);
            if interrupt {
                call.pool.interrupt(id);
            }
        }
        // Output that nobody will read here still reaches the screen.
        let global = &futures_channel().0;
        while let Ok(ev) = call.rx.try_recv() {
            if let Event::Output { .. } = ev {
                let _ = global.send(ev);
            }
        }
    }
}

/// `_call_end(call[, stop=True[, interrupt=stop]])`: the caller is done with
/// a map or spmd (see `end_call`).
fn call_end(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let stop = match args.get(1) {
        Some(o) => o.is_true(gil)?,
        None => true,
    };
    let interrupt = match args.get(2) {
        Some(o) => o.is_true(gil)?,
        None => stop,
    };
    end_call(arg_u64(gil, args, 0)?, stop, interrupt);
    Ok(gil.none())
}

fn queue_error(gil: Gil<'_>, e: runtime::QueueError) -> PyErr {
    PyErr::new(gil, ExcKind::RuntimeError, &format!("parpy: {e}"))
}

fn queue_new(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    gil.int(runtime::queue_new(arg_u64(gil, args, 0)? as usize) as i64)
}

fn queue_attach(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    runtime::queue_attach(arg_u64(gil, args, 0)?).map_err(|e| queue_error(gil, e))?;
    Ok(gil.none())
}

fn queue_release(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    runtime::queue_release(arg_u64(gil, args, 0)?);
    Ok(gil.none())
}

/// Runs a blocking queue operation in 50 ms slices without the GIL, running
/// signal handlers (main thread) and delivering interrupts (a worker's
/// thread: cancel, timeouts, Ctrl-C) between slices.
fn interruptible<T: Send>(
    gil: Gil<'_>,
    timeout: Option<Duration>,
    mut op: impl FnMut(Duration) -> Result<T, runtime::QueueError> + Send,
    is_timeout: fn(&runtime::QueueError) -> bool,
) -> PyResult<Option<T>> {
    const SLICE: Duration = Duration::from_millis(50);
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let slice = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
            None => SLICE,
        };
        match detached(gil, || op(slice)) {
            Ok(v) => return Ok(Some(v)),
            Err(e) if is_timeout(&e) => {
                gil.check_signals()?;
                runtime::deliver_interrupt(gil)?;
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(None);
                }
            }
            Err(e) => return Err(queue_error(gil, e)),
        }
    }
}

/// `_queue_put(id, item, timeout) -> bool` (False when full at the deadline).
fn queue_put(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let id = arg_u64(gil, args, 0)?;
    let item = arg(gil, args, 1)?;
    let value = encode(gil, item)
        .map_err(|e| e.into_type_error(gil, "the queue item", &item.type_name(gil)))?;
    let timeout = arg_timeout(gil, args, 2)?;
    let mut slot = Some(value);
    let done = interruptible(
        gil,
        timeout,
        |slice| {
            let v = slot.take().expect("value");
            runtime::queue_put(id, v, Some(slice)).map_err(|(e, v)| {
                slot = Some(v);
                e
            })
        },
        |e| matches!(e, runtime::QueueError::Full),
    )?;
    Ok(gil.bool(done.is_some()))
}

/// `_queue_get(id, timeout) -> (True, item) | (False, None)`.
fn queue_get(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let id = arg_u64(gil, args, 0)?;
    let timeout = arg_timeout(gil, args, 1)?;
    let got = interruptible(
        gil,
        timeout,
        |slice| runtime::queue_get(id, slice),
        |e| matches!(e, runtime::QueueError::Empty),
    )?;
    match got {
        Some(v) => gil.tuple(vec![gil.bool(true), decode(gil, &v)?]),
        None => gil.tuple(vec![gil.bool(false), gil.none()]),
    }
}

fn queue_len(gil: Gil<'_>, args: &[Obj]) -> PyResult<Obj> {
    let n = runtime::queue_len(arg_u64(gil, args, 0)?).map_err(|e| queue_error(gil, e))?;
    gil.int(n as i64)
}
