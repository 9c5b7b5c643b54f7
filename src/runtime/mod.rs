//! The parallel runtime: pools of worker sub-interpreters, one per OS thread.
//!
//! A task's trip: the main interpreter encodes the call into [`Value`]s, the
//! pool hands a [`Job`] to a worker over a channel, the worker decodes, runs
//! and encodes the outcome, and sends [`Event`]s back to whoever waits (the
//! futures collector or a `map` call). No Python object crosses threads.

pub mod ext_init;
pub mod fault;
mod idle;
mod pool;
mod queue;
mod worker;

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use crossbeam_channel::Sender;

pub use pool::{Pool, PoolError};
pub use queue::{
    QueueError, queue_attach, queue_get, queue_len, queue_new, queue_put, queue_release,
};
pub use worker::{count_refusal, current_worker, deliver_interrupt, emit_output, rearm_interrupt};

use crate::transfer::Value;

/// A function as it travels: an id that workers cache the resolved function
/// by, and the spec that `parpy._resolve` turns back into a callable.
///
/// Main keeps one while the Python function lives, and each job holds one.
/// A worker's cache holds only a weak reference next to the resolved
/// function: once the last `FuncRef` of an id is dropped, workers drop the
/// function (and what it captured) after their next job.
#[derive(Debug)]
pub struct FuncRef {
    /// Unique per function per process.
    pub id: u64,
    /// How to find or rebuild the function (see `parpy._func_spec`).
    pub spec: Value,
}

/// How many `FuncRef`s were dropped so far: workers sweep their caches when
/// it changes.
static FUNCS_DROPPED: AtomicU64 = AtomicU64::new(0);

impl Drop for FuncRef {
    fn drop(&mut self) {
        FUNCS_DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

/// The count of dropped `FuncRef`s (see [`FuncRef`]).
pub(crate) fn funcs_dropped() -> u64 {
    FUNCS_DROPPED.load(Ordering::SeqCst)
}

/// What a job asks a worker to do.
#[derive(Debug)]
pub enum Payload {
    /// `f(*args, **kwargs)`.
    Call { args: Value, kwargs: Value },
    /// `f(item)` (or `f(*item)` when `star`) for consecutive items of a map.
    Chunk {
        start: usize,
        items: Vec<Value>,
        star: bool,
    },
    /// `f(ctx, *args, **kwargs)` on one rank of an SPMD run.
    Spmd {
        rank: usize,
        size: usize,
        args: Value,
        kwargs: Value,
        queue: u64,
    },
    /// The pool's initializer, once per worker before any task.
    Init { args: Value },
}

/// One unit of work.
///
/// Every job is answered exactly once: a job dropped unanswered (its worker
/// panicked, or its queue went away) answers itself with a failure, so that
/// nobody waits forever for it.
pub struct Job {
    /// The call (map, spmd) or future this job belongs to; interrupting a
    /// group stops its running jobs.
    pub group: u64,
    pub func: Arc<FuncRef>,
    pub payload: Payload,
    pub reply: Reply,
    /// Set when the caller no longer wants the result; checked before running.
    pub cancel: Option<Arc<AtomicBool>>,
    answered: bool,
    /// A future's own state (submit only): whether it was cancelled, or
    /// has started, decided once by whichever side gets there first.
    pub task: Option<Arc<TaskState>>,
    /// When it was queued, while `--stats` or `--timeline` records.
    pub queued: Option<std::time::Instant>,
    /// The progress bar its calls count towards (a map with `progress=True`).
    pub progress: Option<Arc<crate::observe::progress::Bar>>,
}

/// Whether a future's job is pending, cancelled or started: one atomic
/// both sides race on, so that `Future.cancel()` and a worker taking the job
/// agree, as `concurrent.futures` requires (a started future cannot be
/// cancelled). Set by the worker without a message to main: `running()`
/// reads it when asked.
#[derive(Debug, Default)]
pub struct TaskState(AtomicU8);

impl TaskState {
    const PENDING: u8 = 0;
    const CANCELLED: u8 = 1;
    const STARTED: u8 = 2;

    /// Worker side: marks the job started; false if it was cancelled first.
    pub fn start(&self) -> bool {
        self.0
            .compare_exchange(
                Self::PENDING,
                Self::STARTED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .map_or_else(|now| now == Self::STARTED, |_| true)
    }

    /// Caller side: cancels the job unless it has started; true if it is
    /// (now or already) cancelled.
    pub fn cancel(&self) -> bool {
        match self.0.compare_exchange(
            Self::PENDING,
            Self::CANCELLED,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => true,
            Err(now) => now == Self::CANCELLED,
        }
    }

    /// Whether a worker has started the job.
    pub fn started(&self) -> bool {
        self.0.load(Ordering::Acquire) == Self::STARTED
    }
}

/// What a job dropped unanswered reports.
pub const LOST: &str = "the worker that took this task ended without answering it";

impl Job {
    /// A job, not yet answered.
    pub fn new(
        group: u64,
        func: Arc<FuncRef>,
        payload: Payload,
        reply: Reply,
        cancel: Option<Arc<AtomicBool>>,
    ) -> Job {
        Job {
            group,
            func,
            payload,
            reply,
            cancel,
            answered: false,
            task: None,
            queued: crate::observe::recording().then(std::time::Instant::now),
            progress: None,
        }
    }

    /// The job of a future, with the state its worker and `cancel()` share.
    pub fn with_task(mut self, task: Arc<TaskState>) -> Job {
        self.task = Some(task);
        self
    }

    /// The job of a map with a progress bar: its calls count towards `bar`.
    pub fn with_progress(mut self, bar: Option<Arc<crate::observe::progress::Bar>>) -> Job {
        self.progress = bar;
        self
    }

    /// How many calls the job makes (a map chunk: one per item; an
    /// initializer: none, it is no task).
    pub fn calls(&self) -> usize {
        match &self.payload {
            Payload::Chunk { items, .. } => items.len(),
            Payload::Init { .. } => 0,
            _ => 1,
        }
    }

    /// Sends `event` (this job's answer) to its caller. The payload, which
    /// may hold loans of main's memory (`Value::Lent`), is dropped first:
    /// when main handles the event, the loans already wait for release, and
    /// main releases them in that same call.
    pub fn answer(mut self, event: Event) {
        self.answered = true;
        self.payload = Payload::Init { args: Value::None };
        let _ = self.reply.tx.send(event);
    }

    /// The event that gives every call of this job the same `outcome`.
    pub fn answer_all(&self, outcome: Outcome) -> Event {
        match &self.payload {
            Payload::Chunk { start, items, .. } => Event::Chunk {
                tag: self.reply.tag,
                start: *start,
                outcomes: items.iter().map(|_| outcome.clone()).collect(),
            },
            _ => Event::Done {
                tag: self.reply.tag,
                outcome,
            },
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if !self.answered {
            let ev = self.answer_all(Outcome::Failed(LOST.into()));
            self.answered = true;
            self.payload = Payload::Init { args: Value::None };
            let _ = self.reply.tx.send(ev);
        }
    }
}

/// Where a job's output and outcome go.
#[derive(Clone)]
pub struct Reply {
    pub tx: Sender<Event>,
    pub tag: u64,
}

/// How one call ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The return value.
    Ok(Value),
    /// The exception, as packed by `parpy._pack_exc`.
    Err(Value),
    /// parpy itself could not run it (worker failed to start, …).
    Failed(String),
    /// Cancelled before it started.
    Cancelled,
}

/// A message from a worker to the main interpreter.
#[derive(Debug)]
pub enum Event {
    /// Whole lines (or a flushed tail) written to stdout (1) or stderr (2).
    Output { stream: u8, text: Vec<u8> },
    /// A call or SPMD rank finished.
    Done { tag: u64, outcome: Outcome },
    /// Consecutive items of a map finished.
    Chunk {
        tag: u64,
        start: usize,
        outcomes: Vec<Outcome>,
    },
    /// Asks the futures collector to stop.
    Stop,
    /// Nudges a thread that waits for one future itself (see `parpy._drive`):
    /// the collector settled something it may be waiting for.
    Wake,
}

/// How long a waiting thread polls its channel before sleeping on it.
const SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// How many times a waiting thread polls before it starts yielding its CPU
/// between polls (a few microseconds: a tiny task's answer often comes
/// sooner than one `sched_yield` call returns).
const HOT_POLLS: u32 = 256;

/// Polls `f` until it yields or [`SPIN`] has passed.
pub fn spin<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    for _ in 0..HOT_POLLS {
        if let Some(v) = f() {
            return Some(v);
        }
        std::hint::spin_loop();
    }
    let until = std::time::Instant::now() + SPIN;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() >= until {
            return None;
        }
        std::thread::yield_now();
    }
}

/// A process-wide unique id (for pools, calls, futures and jobs).
pub fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

static DEFAULT_WORKERS: OnceLock<Option<usize>> = OnceLock::new();
static FALLBACK: OnceLock<String> = OnceLock::new();

/// Where tasks go whose modules refuse sub-interpreters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Worker processes that parpy starts (the default).
    Process,
    /// The main interpreter.
    Main,
    /// Nowhere: the task fails with the ImportError.
    Error,
}

impl Fallback {
    /// The mode's name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Fallback::Process => "process",
            Fallback::Main => "main",
            Fallback::Error => "error",
        }
    }

    fn parse(s: &str) -> Option<Fallback> {
        match s {
            "process" => Some(Fallback::Process),
            "main" => Some(Fallback::Main),
            "error" => Some(Fallback::Error),
            _ => None,
        }
    }
}

/// Records `--fallback`, else `PARPY_FALLBACK`, validating the latter.
pub fn set_fallback(cli: Option<&str>) -> Result<(), String> {
    let mode = match cli {
        Some(m) => m.to_string(),
        None => match std::env::var("PARPY_FALLBACK") {
            Ok(v) if !v.trim().is_empty() => {
                let v = v.trim().to_string();
                if Fallback::parse(&v).is_none() {
                    return Err(format!(
                        "PARPY_FALLBACK must be process, main or error, not {v:?}"
                    ));
                }
                v
            }
            _ => "process".into(),
        },
    };
    let _ = FALLBACK.set(mode);
    Ok(())
}

/// The fallback mode in force.
pub fn fallback() -> Fallback {
    FALLBACK
        .get()
        .and_then(|m| Fallback::parse(m))
        .unwrap_or(Fallback::Process)
}

/// Records the worker count chosen on the command line or by `PARPY_WORKERS`.
pub fn set_default_workers(n: Option<usize>) {
    let _ = DEFAULT_WORKERS.set(n);
}

/// The size of the default pool: `-j`, `PARPY_WORKERS`, or the CPUs this
/// process may run on.
pub fn default_workers() -> usize {
    if let Some(Some(n)) = DEFAULT_WORKERS.get() {
        return *n;
    }
    if let Ok(Some(n)) = workers_from_env() {
        return n;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Parses `PARPY_WORKERS`; `Ok(None)` when unset or empty.
pub fn workers_from_env() -> Result<Option<usize>, String> {
    match std::env::var("PARPY_WORKERS") {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse::<usize>() {
            Ok(n) if (1..=4096).contains(&n) => Ok(Some(n)),
            _ => Err(format!(
                "PARPY_WORKERS must be a whole number from 1 to 4096, not {v:?}"
            )),
        },
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(payload: Payload) -> (Job, crossbeam_channel::Receiver<Event>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let func = Arc::new(FuncRef {
            id: 1,
            spec: Value::None,
        });
        (Job::new(1, func, payload, Reply { tx, tag: 9 }, None), rx)
    }

    #[test]
    fn a_job_dropped_unanswered_answers_itself_once() {
        let (j, rx) = job(Payload::Call {
            args: Value::None,
            kwargs: Value::None,
        });
        drop(j);
        match rx.try_recv() {
            Ok(Event::Done {
                tag: 9,
                outcome: Outcome::Failed(m),
            }) => assert_eq!(m, LOST),
            other => panic!("{other:?}"),
        }
        assert!(rx.try_recv().is_err());
        let (j, rx) = job(Payload::Chunk {
            start: 4,
            items: vec![Value::None, Value::None],
            star: false,
        });
        drop(j);
        match rx.try_recv() {
            Ok(Event::Chunk {
                start: 4, outcomes, ..
            }) => assert_eq!(outcomes.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_answered_job_answers_only_once() {
        let (j, rx) = job(Payload::Init { args: Value::None });
        j.answer(Event::Wake);
        assert!(matches!(rx.try_recv(), Ok(Event::Wake)));
        assert!(rx.try_recv().is_err());
    }
}
