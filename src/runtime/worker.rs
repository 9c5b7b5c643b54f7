//! One worker: an own-GIL sub-interpreter on one OS thread, running jobs.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use super::fault;
use super::idle::Idle;
use super::{Event, FuncRef, Job, Outcome, Payload, Reply};
use crate::ffi::interp::{InterruptSlot, current_interpreter_id, run_in_new_interpreter};
use crate::ffi::{Gil, Obj, PyErr, PyResult};
use crate::observe::log::debug;
use crate::observe::record::{JobDone, WorkerRec, func_label};
use crate::transfer::{Value, decode, encode};

/// What a worker thread needs to start.
pub(super) struct WorkerSetup {
    pub id: usize,
    pub size: usize,
    pub setup: Arc<Value>,
    pub own: Receiver<Job>,
    pub shared: Receiver<Job>,
    pub global: Sender<Event>,
    pub ctl: Arc<super::pool::WorkerCtl>,
    pub exited: Sender<usize>,
    pub idle: Arc<Idle>,
}

thread_local! {
    static WORKER_ID: Cell<Option<usize>> = const { Cell::new(None) };
    /// Where output of the running task goes (this thread only).
    static CURRENT: RefCell<Option<Reply>> = const { RefCell::new(None) };
    /// Where output goes outside tasks (this worker's other threads use the
    /// main interpreter's collector too, through the value copied at start).
    static GLOBAL: RefCell<Option<Sender<Event>>> = const { RefCell::new(None) };
    /// This worker's interrupt slot.
    static SLOT: RefCell<Option<Arc<InterruptSlot>>> = const { RefCell::new(None) };
    /// How many extension modules refused this worker's interpreter on this
    /// thread (see `parpy._watch_refusals`).
    static REFUSALS: Cell<u64> = const { Cell::new(0) };
}

/// In a worker: re-raises an interrupt of the running task that CPython
/// swallowed (see [`InterruptSlot::rearm`]); false when there was none, or
/// outside a worker.
pub fn rearm_interrupt(gil: Gil<'_>) -> bool {
    SLOT.with(|s| s.borrow().as_ref().is_some_and(|slot| slot.rearm(gil)))
}

/// Raises, in a worker's own thread, an interrupt (cancel, timeout, Ctrl-C,
/// shutdown) that is pending for it. parpy's blocking calls (queue waits)
/// call it between slices of their wait: a thread waiting in Rust runs no
/// bytecode, so it would otherwise never see the interrupt. Does nothing on
/// other threads.
pub fn deliver_interrupt(gil: Gil<'_>) -> PyResult<()> {
    match SLOT.with(|s| s.borrow().clone()) {
        Some(slot) => slot.deliver_pending(gil),
        None => Ok(()),
    }
}

/// Counts a module that refused the current worker's interpreter, caught or
/// not; read after each call. (A refusal on another thread of the
/// interpreter, one that a task started, is not counted here, only listed
/// in `parpy._refused_here`.)
pub fn count_refusal() {
    REFUSALS.with(|r| r.set(r.get() + 1));
}

fn refusals_counted() -> u64 {
    REFUSALS.with(|r| r.get())
}

/// The worker index of the current thread: `None` outside worker threads.
pub fn current_worker() -> Option<usize> {
    WORKER_ID.with(|w| w.get())
}

/// Sends text written to a worker's stdout (1) or stderr (2) to the main
/// interpreter: to the running task's caller, so it arrives before the
/// task's result, or else to the futures collector. Returns false when
/// called outside a worker.
pub fn emit_output(gil: Gil<'_>, stream: u8, text: Vec<u8>) -> bool {
    let ev = Event::Output { stream, text };
    // To the running task's caller; if that caller is gone, to the collector.
    let ev = match CURRENT.with(|c| c.borrow().as_ref().map(|r| r.tx.clone())) {
        Some(tx) => match tx.send(ev) {
            Ok(()) => return true,
            Err(e) => e.into_inner(),
        },
        None => ev,
    };
    let global = GLOBAL.with(|g| g.borrow().clone()).or_else(|| {
        interpreter_outputs()
            .get(&current_interpreter_id(gil))
            .cloned()
    });
    match global {
        Some(tx) => tx.send(ev).is_ok(),
        None => false,
    }
}

/// Output channels by interpreter, for threads that a task started itself.
fn interpreter_outputs() -> std::sync::MutexGuard<'static, HashMap<i64, Sender<Event>>> {
    static MAP: std::sync::OnceLock<std::sync::Mutex<HashMap<i64, Sender<Event>>>> =
        std::sync::OnceLock::new();
    MAP.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Python-side helpers of the worker, looked up once.
struct Hooks {
    parpy: Obj,
    /// The name `_unflushed`, made once: it is read after every job.
    unflushed_name: Obj,
    resolve: Obj,
    pack_exc: Obj,
    flush: Obj,
    spmd: Obj,
    teardown: Obj,
    taint: Obj,
    refused_during: Obj,
}

/// How many times a worker tries to create its sub-interpreter.
const START_ATTEMPTS: usize = 3;

/// Whether there is room (address space, under `RLIMIT_AS`) for a new
/// interpreter: CPython treats a failed allocation while it creates one as a
/// fatal error, so a worker checks first (a reservation, never touched).
fn memory_headroom() -> bool {
    const HEADROOM: usize = 64 << 20;
    let mut v: Vec<u8> = Vec::new();
    let ok = v.try_reserve_exact(HEADROOM).is_ok();
    std::hint::black_box(&v);
    ok
}

/// The message of a panic payload.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}

/// The worker thread's body.
pub(super) fn run(ws: WorkerSetup) {
    let spawned = Instant::now();
    WORKER_ID.with(|w| w.set(Some(ws.id)));
    SLOT.with(|s| *s.borrow_mut() = Some(Arc::clone(&ws.ctl.slot)));
    GLOBAL.with(|g| *g.borrow_mut() = Some(ws.global.clone()));
    let own = ws.own.clone();
    let shared = ws.shared.clone();
    // A failed start is tried again. Creating sub-interpreters on several
    // threads at once fails now and then with "Failed to import encodings
    // module", an upstream race (python/cpython#128381, #131485): one
    // benchmark run here hit it once in thousands of pool starts. CPython
    // undoes a failed creation, so the next try starts from scratch.
    let mut result = Err(String::new());
    for attempt in 0..START_ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if fault::hit(fault::Point::Interp) {
            result = Err("could not create a sub-interpreter: injected by PARPY_FAULT".into());
            continue;
        }
        if !memory_headroom() {
            // CPython aborts the process when memory runs out while it
            // creates an interpreter; fail this worker cleanly instead.
            result = Err("could not create a sub-interpreter: out of memory".into());
            break;
        }
        // A panic (a bug in parpy) ends this worker cleanly: its interpreter
        // is ended, the job it ran answers itself (see `Job`'s Drop), and the
        // jobs left are failed below; it never unwinds out of the thread
        // unnoticed, nor across CPython's frames.
        result = run_in_new_interpreter(&ws.ctl.slot, |gil| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve(gil, &ws, spawned)))
                .map_err(|p| {
                    CURRENT.with(|c| c.borrow_mut().take());
                    ws.ctl.running.store(0, Ordering::SeqCst);
                    interpreter_outputs().remove(&current_interpreter_id(gil));
                    format!("worker {} failed: {}", ws.id, panic_text(&*p))
                })
        })
        .and_then(|r| r.and_then(|r| r));
        match &result {
            Ok(()) => break,
            // Not tried again: jobs may already have run.
            Err(_) if ws.ctl.started.load(Ordering::SeqCst) => break,
            Err(_) => {}
        }
    }
    if let Err(msg) = result {
        // No interpreter: answer every job with the reason, so nothing waits forever.
        for job in Jobs::new(ws.id, own, shared, Arc::clone(&ws.idle)) {
            let ev = failed(&job, &msg);
            job.answer(ev);
        }
    }
    GLOBAL.with(|g| g.borrow_mut().take());
    if let Some(rec) = &ws.ctl.rec {
        rec.ended();
    }
    let _ = ws.exited.send(ws.id);
}

fn serve(gil: Gil<'_>, ws: &WorkerSetup, spawned: Instant) -> Result<(), String> {
    let interp = current_interpreter_id(gil);
    interpreter_outputs().insert(interp, ws.global.clone());
    let mut broken: Option<String> = None;
    let hooks = match start(gil, ws) {
        Ok(h) => Some(h),
        Err(err) => {
            broken = Some(format!(
                "worker {} could not start: {}",
                ws.id,
                describe(gil, &err)
            ));
            None
        }
    };
    if hooks.is_some() {
        debug!(
            "pool {}: worker {} ready in {}",
            ws.ctl.pool,
            ws.id,
            crate::observe::stats::human_time(spawned.elapsed())
        );
    }
    if let Some(rec) = &ws.ctl.rec {
        rec.ready();
    }
    let mut funcs: HashMap<u64, Cached> = HashMap::new();
    let mut swept = super::funcs_dropped();
    let mut refusals = refusals_counted();
    let jobs = Jobs::new(
        ws.id,
        ws.own.clone(),
        ws.shared.clone(),
        Arc::clone(&ws.idle),
    );
    ws.ctl.started.store(true, Ordering::SeqCst);
    loop {
        let Some(job) = gil.allow_threads(|| jobs.next()) else {
            break;
        };
        if job
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
            || job.task.as_ref().is_some_and(|t| !t.start())
        {
            let ev = cancelled(&job);
            job.answer(ev);
            continue;
        }
        let (Some(hooks), None) = (&hooks, &broken) else {
            let ev = failed(&job, broken.as_deref().unwrap_or("worker unavailable"));
            job.answer(ev);
            continue;
        };
        CURRENT.with(|c| *c.borrow_mut() = Some(job.reply.clone()));
        let began = ws.ctl.rec.as_ref().map(|_| Instant::now());
        ws.ctl.running.store(job.group, Ordering::SeqCst);
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if fault::hit(fault::Point::Panic) {
                panic!("injected by PARPY_FAULT");
            }
            run_job(gil, hooks, &mut funcs, &job, &mut broken, &mut refusals)
        }));
        ws.ctl.running.store(0, Ordering::SeqCst);
        let event = match run {
            Ok(event) => event,
            Err(p) => {
                // A bug in parpy: this job fails with the reason, and the
                // worker ends (its interpreter too); the jobs left for it
                // fail the same way (see `run`).
                let msg = format!("worker {} failed: {}", ws.id, panic_text(&*p));
                CURRENT.with(|c| c.borrow_mut().take());
                let ev = failed(&job, &msg);
                job.answer(ev);
                interpreter_outputs().remove(&interp);
                return Err(msg);
            }
        };
        ws.ctl.slot.clear_pending(gil);
        // The task's output reaches its caller before its result. Whole
        // lines went already; a partial one is flushed now (a Python call,
        // so only when `_LineWriter` says it holds one).
        if hooks.unflushed(gil)
            && let Err(e) = hooks.flush.call(gil, &[])
        {
            e.print(gil);
        }
        CURRENT.with(|c| c.borrow_mut().take());
        if let Some(bar) = &job.progress {
            bar.add(job.calls() as u64);
        }
        if let (Some(rec), Some(began)) = (&ws.ctl.rec, began) {
            record_job(rec, &job, &event, began);
        }
        job.answer(event);
        // Functions that main forgot, and no job needs, go (with what they captured).
        let dropped = super::funcs_dropped();
        if dropped != swept {
            swept = dropped;
            funcs.retain(|_, c| c.func.strong_count() > 0);
        }
        if ws.ctl.abandoned.load(Ordering::SeqCst) {
            break; // a replacement took this worker's place
        }
    }
    drop(funcs);
    if let Some(h) = &hooks
        && let Err(e) = h.teardown.call(gil, &[])
    {
        e.print(gil);
    }
    drop(hooks);
    interpreter_outputs().remove(&interp);
    Ok(())
}

impl Hooks {
    /// Whether a worker's stdout or stderr may hold a partial line.
    fn unflushed(&self, gil: Gil<'_>) -> bool {
        self.parpy
            .getattr_str(gil, &self.unflushed_name)
            .and_then(|v| v.is_true(gil))
            .unwrap_or(true)
    }
}

/// Adds a finished job to its worker's record (`--stats`, `--timeline`).
fn record_job(rec: &WorkerRec, job: &Job, event: &Event, began: Instant) {
    let end = Instant::now();
    let (kind, first, bytes_in) = match &job.payload {
        Payload::Call { args, kwargs } => ("call", 0, args.wire_size() + kwargs.wire_size()),
        Payload::Chunk { start, items, .. } => {
            ("map", *start, items.iter().map(Value::wire_size).sum())
        }
        Payload::Spmd { args, kwargs, .. } => ("spmd", 0, args.wire_size() + kwargs.wire_size()),
        Payload::Init { args } => ("init", 0, args.wire_size()),
    };
    let outcome_size = |o: &Outcome| match o {
        Outcome::Ok(v) | Outcome::Err(v) => v.wire_size(),
        Outcome::Failed(m) => m.len() as u64,
        Outcome::Cancelled => 0,
    };
    let bytes_out = match event {
        Event::Done { outcome, .. } => outcome_size(outcome),
        Event::Chunk { outcomes, .. } => outcomes.iter().map(outcome_size).sum(),
        _ => 0,
    };
    rec.job_done(
        JobDone {
            kind,
            start: began,
            end,
            queued: job.queued,
            tasks: job.calls(),
            first,
            bytes_in,
            bytes_out,
        },
        || func_label(&job.func.spec),
    );
}

/// Imports `parpy` in the new interpreter and runs `parpy._worker_setup`.
fn start(gil: Gil<'_>, ws: &WorkerSetup) -> PyResult<Hooks> {
    let parpy = gil.import("parpy")?;
    let setup = decode(gil, &ws.setup)?;
    let id = gil.int(ws.id as i64)?;
    let size = gil.int(ws.size as i64)?;
    parpy
        .getattr(gil, c"_worker_setup")?
        .call(gil, &[&id, &size, &setup])?;
    Ok(Hooks {
        parpy: parpy.clone(),
        unflushed_name: gil.str("_unflushed")?,
        resolve: parpy.getattr(gil, c"_resolve")?,
        pack_exc: parpy.getattr(gil, c"_pack_exc")?,
        flush: parpy.getattr(gil, c"_flush_output")?,
        spmd: parpy.getattr(gil, c"_spmd_entry")?,
        teardown: parpy.getattr(gil, c"_worker_teardown")?,
        taint: parpy.getattr(gil, c"_taint")?,
        refused_during: parpy.getattr(gil, c"_refused_during")?,
    })
}

/// A resolved function, kept while its `FuncRef` lives (see [`FuncRef`]).
struct Cached {
    func: Weak<FuncRef>,
    obj: Obj,
    /// The count of refused modules when `refused` was last worked out.
    checked: u64,
    /// The answer for every call while the function may use a package whose
    /// extension module refused this interpreter (see `parpy._taint`).
    refused: Option<Outcome>,
}

fn run_job(
    gil: Gil<'_>,
    hooks: &Hooks,
    funcs: &mut HashMap<u64, Cached>,
    job: &Job,
    broken: &mut Option<String>,
    refusals: &mut u64,
) -> Event {
    let cached = match funcs.entry(job.func.id) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(e) => {
            let before = *refusals;
            let resolved =
                decode(gil, &job.func.spec).and_then(|spec| hooks.resolve.call(gil, &[&spec]));
            *refusals = refusals_counted(); // importing its module may have met one
            match resolved {
                Ok(f) => e.insert(Cached {
                    func: Arc::downgrade(&job.func),
                    obj: f,
                    checked: 0,
                    refused: None,
                }),
                Err(err) => return job.answer_all(failure(gil, hooks, err, before, *refusals)),
            }
        }
    };
    // A module refused this interpreter and its package went on without it:
    // a function that may use that package runs in main's fallback instead.
    if *refusals > 0 && cached.checked != *refusals {
        cached.checked = *refusals;
        cached.refused = hooks
            .taint
            .call(gil, &[&cached.obj])
            .err()
            .map(|err| pack(gil, hooks, err));
    }
    let tainted = cached.refused.is_some();
    let on_refusal = match job.payload {
        Payload::Call { .. } | Payload::Chunk { .. } => OnRefusal::Redo(*refusals),
        // No fallback for SPMD ranks: they run here, and a failure says why.
        Payload::Spmd { .. } => OnRefusal::Explain {
            before: *refusals,
            tainted,
        },
        // An initializer is not redone elsewhere: a refusal is no failure.
        Payload::Init { .. } => OnRefusal::Ignore,
    };
    if let (Some(outcome), OnRefusal::Redo(_)) = (&cached.refused, on_refusal) {
        return job.answer_all(outcome.clone());
    }
    let func = cached.obj.clone();
    let event = run_payload(gil, hooks, &func, job, broken, on_refusal);
    *refusals = refusals_counted();
    event
}

/// What a call's outcome becomes when a module refused this interpreter
/// (`before`: the count of refusals before the job).
#[derive(Clone, Copy)]
enum OnRefusal {
    /// Nothing.
    Ignore,
    /// A call during which a module refused is answered with that refusal,
    /// whatever it returned or raised, so that main runs it again in its
    /// fallback: the package went on without its extension, slower and not
    /// the same (PyYAML without `yaml._yaml` has no `CSafeLoader`), as it
    /// never would under python.
    Redo(u64),
    /// A call that failed is answered with the refusal (main says why it
    /// cannot fall back) when one happened during it or the function may
    /// use a refused package (`tainted`).
    Explain { before: u64, tainted: bool },
}

/// Runs the job's payload with its resolved function.
fn run_payload(
    gil: Gil<'_>,
    hooks: &Hooks,
    func: &Obj,
    job: &Job,
    broken: &mut Option<String>,
    on_refusal: OnRefusal,
) -> Event {
    let tag = job.reply.tag;
    let call = |f: &dyn Fn() -> PyResult<Obj>| call(gil, hooks, on_refusal, f);
    match &job.payload {
        Payload::Call { args, kwargs } => Event::Done {
            tag,
            outcome: call(&|| {
                let args = decode(gil, args)?;
                let kwargs = (!matches!(kwargs, Value::None))
                    .then(|| decode(gil, kwargs))
                    .transpose()?;
                func.call_tuple(gil, &args, kwargs.as_ref())
            }),
        },
        Payload::Chunk { start, items, star } => {
            let mut outcomes = Vec::with_capacity(items.len());
            for item in items {
                outcomes.push(call(&|| {
                    let item = decode(gil, item)?;
                    if *star {
                        func.call_tuple(gil, &item, None)
                    } else {
                        func.call(gil, &[&item])
                    }
                }));
            }
            Event::Chunk {
                tag,
                start: *start,
                outcomes,
            }
        }
        Payload::Spmd {
            rank,
            size,
            args,
            kwargs,
            queue,
        } => Event::Done {
            tag,
            outcome: call(&|| {
                let rank = gil.int(*rank as i64)?;
                let size = gil.int(*size as i64)?;
                let queue = gil.int(*queue as i64)?;
                let args = decode(gil, args)?;
                let kwargs = decode(gil, kwargs)?;
                hooks
                    .spmd
                    .call(gil, &[func, &rank, &size, &queue, &args, &kwargs])
            }),
        },
        Payload::Init { args } => {
            let outcome = call(&|| func.call_tuple(gil, &decode(gil, args)?, None));
            if let Outcome::Err(_) | Outcome::Failed(_) = outcome {
                *broken = Some("the pool's initializer failed in this worker".into());
            }
            Event::Done { tag, outcome }
        }
    }
}

/// Runs one call and encodes its outcome (see [`OnRefusal`]).
fn call(
    gil: Gil<'_>,
    hooks: &Hooks,
    on_refusal: OnRefusal,
    f: &dyn Fn() -> PyResult<Obj>,
) -> Outcome {
    let result = f();
    let refused = match on_refusal {
        OnRefusal::Ignore => false,
        OnRefusal::Redo(before) => refusals_counted() > before,
        OnRefusal::Explain { before, tainted } => {
            result.is_err() && (tainted || refusals_counted() > before)
        }
    };
    if refused {
        let cause = match &result {
            Ok(_) => gil.none(),
            Err(err) => err.value().clone(),
        };
        if let Ok(refusal) = hooks.refused_during.call(gil, &[&cause]) {
            return pack_value(gil, hooks, &refusal, || {
                "a module refused this worker".into()
            });
        }
    }
    match result {
        Ok(result) => match encode(gil, &result) {
            Ok(v) => Outcome::Ok(v),
            Err(e) => {
                let ty = result.type_name(gil);
                pack(gil, hooks, e.into_original(gil, "the result", &ty))
            }
        },
        Err(err) => pack(gil, hooks, err),
    }
}

/// The outcome of resolving a function that failed with `err`: the refusal
/// if a module refused this interpreter meanwhile (see [`call`]).
fn failure(gil: Gil<'_>, hooks: &Hooks, err: PyErr, before: u64, now: u64) -> Outcome {
    if now > before
        && let Ok(refusal) = hooks.refused_during.call(gil, &[err.value()])
    {
        return pack_value(gil, hooks, &refusal, || describe(gil, &err));
    }
    pack(gil, hooks, err)
}

/// Packs an exception with `parpy._pack_exc` (type, message, pickled
/// instance, traceback text) for the main interpreter to rebuild.
fn pack(gil: Gil<'_>, hooks: &Hooks, err: PyErr) -> Outcome {
    pack_value(gil, hooks, err.value(), || describe(gil, &err))
}

/// [`pack`] for an exception object; `describe` says what it was if
/// packing fails.
fn pack_value(
    gil: Gil<'_>,
    hooks: &Hooks,
    exc: &Obj,
    describe: impl FnOnce() -> String,
) -> Outcome {
    match hooks
        .pack_exc
        .call(gil, &[exc])
        .map(|packed| encode(gil, &packed))
    {
        Ok(Ok(v)) => Outcome::Err(v),
        _ => Outcome::Failed(describe()),
    }
}

fn describe(gil: Gil<'_>, err: &PyErr) -> String {
    let ty = err.value().type_name(gil);
    let msg = err
        .value()
        .str(gil)
        .ok()
        .and_then(|s| s.as_str(gil).ok().map(str::to_owned))
        .unwrap_or_default();
    format!("{ty}: {msg}")
}

fn failed(job: &Job, msg: &str) -> Event {
    job.answer_all(Outcome::Failed(msg.to_string()))
}

fn cancelled(job: &Job) -> Event {
    job.answer_all(Outcome::Cancelled)
}

/// The jobs for one worker: its own queue first, then the shared one, until
/// the pool closes them and they are drained.
struct Jobs {
    id: usize,
    own: Receiver<Job>,
    shared: Receiver<Job>,
    idle: Arc<Idle>,
}

impl Jobs {
    fn new(id: usize, own: Receiver<Job>, shared: Receiver<Job>, idle: Arc<Idle>) -> Jobs {
        Jobs {
            id,
            own,
            shared,
            idle,
        }
    }

    /// `Some(Some(job))`, `Some(None)` once the shared queue is closed and
    /// both are empty, or `None` when there is nothing yet.
    fn poll(&self) -> Option<Option<Job>> {
        if let Ok(job) = self.own.try_recv() {
            return Some(Some(job));
        }
        match self.shared.try_recv() {
            Ok(job) => Some(Some(job)),
            Err(TryRecvError::Disconnected) => Some(self.own.try_recv().ok()),
            Err(TryRecvError::Empty) => None,
        }
    }

    fn next(&self) -> Option<Job> {
        self.idle
            .wait(self.id, || self.poll(), || self.shared.len())
    }
}

impl Iterator for Jobs {
    type Item = Job;
    fn next(&mut self) -> Option<Job> {
        Jobs::next(self)
    }
}
