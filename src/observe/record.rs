//! What pools and workers did, recorded while `--stats` or `--timeline` is
//! on (see [`super::recording`]). Workers add to their own [`WorkerRec`]
//! after each job; nothing here is touched while recording is off.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::transfer::Value;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One pool, from its start to its close.
pub struct PoolRec {
    /// 1, 2, … in the order pools started.
    pub number: usize,
    /// Its worker count.
    pub size: usize,
    pub started: Instant,
    closed: Mutex<Option<Instant>>,
    workers: Mutex<Vec<Arc<WorkerRec>>>,
}

/// One worker thread of a pool (a replacement gets its own).
pub struct WorkerRec {
    /// The worker's index in its pool, `0..size`.
    pub index: usize,
    /// Its timeline track in the pool: `index` for the first thread of each
    /// index, then `size`, `size + 1`, … for replacements.
    pub track: usize,
    /// Whether it took the place of a stuck worker.
    pub replacement: bool,
    /// When its thread was spawned.
    pub spawned: Instant,
    ready: Mutex<Option<Instant>>,
    ended: Mutex<Option<Instant>>,
    tasks: AtomicU64,
    jobs: AtomicU64,
    busy_ns: AtomicU64,
    wait_ns: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    spans: Mutex<Vec<Span>>,
    marks: Mutex<Vec<Mark>>,
}

/// A job as it ran on one worker (or a fallback task on one thread).
#[derive(Debug, Clone)]
pub struct Span {
    /// The function's name.
    pub name: String,
    /// `call`, `map`, `spmd`, `init` or `fallback`.
    pub kind: &'static str,
    pub start: Instant,
    pub end: Instant,
    /// Calls it made (a map chunk makes one per item).
    pub items: usize,
    /// A map chunk's first item index.
    pub first: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// How long the job waited between being queued and starting.
    pub waited: Duration,
}

/// A moment on a worker's track: an interrupt, a replacement.
#[derive(Debug, Clone)]
pub struct Mark {
    pub name: &'static str,
    pub at: Instant,
    pub detail: String,
}

/// What a finished job reports (see [`WorkerRec::job_done`]).
pub struct JobDone {
    pub kind: &'static str,
    pub start: Instant,
    pub end: Instant,
    pub queued: Option<Instant>,
    /// Calls made (0 for an initializer, which is no task).
    pub tasks: usize,
    pub first: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

static POOLS: Mutex<Vec<Arc<PoolRec>>> = Mutex::new(Vec::new());
/// Values that had no native encoding, by (type, where they were pickled).
static PICKLED: Mutex<Option<HashMap<(String, &'static str), u64>>> = Mutex::new(None);
/// Tasks run in the fallback, by (function, mode), and their spans by thread.
static FALLBACK: Mutex<Option<HashMap<(String, String), u64>>> = Mutex::new(None);
static FALLBACK_SPANS: Mutex<Vec<(u64, Span)>> = Mutex::new(Vec::new());

/// A new pool (`number`, of `size` workers), when recording is on.
pub fn pool_started(number: usize, size: usize) -> Option<Arc<PoolRec>> {
    if !super::recording() {
        return None;
    }
    let rec = Arc::new(PoolRec {
        number,
        size,
        started: Instant::now(),
        closed: Mutex::new(None),
        workers: Mutex::new(Vec::new()),
    });
    lock(&POOLS).push(Arc::clone(&rec));
    Some(rec)
}

impl PoolRec {
    /// A worker thread for index `index`, spawned now.
    pub fn worker(&self, index: usize) -> Arc<WorkerRec> {
        let mut workers = lock(&self.workers);
        let replacement = workers.iter().any(|w| w.index == index);
        let track = if replacement {
            self.size + workers.iter().filter(|w| w.replacement).count()
        } else {
            index
        };
        let rec = Arc::new(WorkerRec {
            index,
            track,
            replacement,
            spawned: Instant::now(),
            ready: Mutex::new(None),
            ended: Mutex::new(None),
            tasks: AtomicU64::new(0),
            jobs: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            wait_ns: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            spans: Mutex::new(Vec::new()),
            marks: Mutex::new(Vec::new()),
        });
        workers.push(Arc::clone(&rec));
        rec
    }

    /// The pool stopped taking work.
    pub fn closed(&self) {
        lock(&self.closed).get_or_insert_with(Instant::now);
    }
}

impl WorkerRec {
    /// Its interpreter is up and it takes jobs.
    pub fn ready(&self) {
        *lock(&self.ready) = Some(Instant::now());
    }

    /// Its thread is ending.
    pub fn ended(&self) {
        *lock(&self.ended) = Some(Instant::now());
    }

    /// Adds a finished job (`name` only matters with `--timeline`).
    pub fn job_done(&self, job: JobDone, name: impl FnOnce() -> String) {
        let busy = job.end.saturating_duration_since(job.start);
        let waited = job
            .queued
            .map_or(Duration::ZERO, |q| job.start.saturating_duration_since(q));
        self.tasks.fetch_add(job.tasks as u64, Ordering::Relaxed);
        self.jobs.fetch_add(1, Ordering::Relaxed);
        self.busy_ns
            .fetch_add(busy.as_nanos() as u64, Ordering::Relaxed);
        self.wait_ns
            .fetch_add(waited.as_nanos() as u64, Ordering::Relaxed);
        self.bytes_in.fetch_add(job.bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(job.bytes_out, Ordering::Relaxed);
        if super::settings().timeline.is_some() {
            lock(&self.spans).push(Span {
                name: name(),
                kind: job.kind,
                start: job.start,
                end: job.end,
                items: job.tasks,
                first: job.first,
                bytes_in: job.bytes_in,
                bytes_out: job.bytes_out,
                waited,
            });
        }
    }

    /// A moment on this worker's track.
    pub fn mark(&self, name: &'static str, detail: String) {
        lock(&self.marks).push(Mark {
            name,
            at: Instant::now(),
            detail,
        });
    }
}

/// Counts a value of type `ty` that went through pickle.
pub fn pickled(ty: String, in_worker: bool) {
    let side = if in_worker { "worker" } else { "main" };
    *lock(&PICKLED)
        .get_or_insert_with(HashMap::new)
        .entry((ty, side))
        .or_default() += 1;
}

/// Adds a task that ran in the fallback (`mode`: process or main), on
/// fallback thread `thread`, from `start` to `end`.
pub fn fallback_task(name: String, mode: String, thread: u64, start: Instant, end: Instant) {
    if super::settings().timeline.is_some() {
        lock(&FALLBACK_SPANS).push((
            thread,
            Span {
                name: name.clone(),
                kind: "fallback",
                start,
                end,
                items: 1,
                first: 0,
                bytes_in: 0,
                bytes_out: 0,
                waited: Duration::ZERO,
            },
        ));
    }
    *lock(&FALLBACK)
        .get_or_insert_with(HashMap::new)
        .entry((name, mode))
        .or_default() += 1;
}

/// The name of a function from its spec (see `parpy._make_spec`):
/// `("name", module, qualname)`, `("code", module, (code, name, qualname, …), …)`
/// or `("pickle", data)`.
pub fn func_label(spec: &Value) -> String {
    let Value::Tuple(parts) = spec else {
        return "<function>".into();
    };
    let text = |v: Option<&Value>| match v {
        Some(Value::Str(s)) => Some(s.clone()),
        _ => None,
    };
    match text(parts.first()).as_deref() {
        Some("name") => text(parts.get(2)),
        Some("code") => match parts.get(2) {
            Some(Value::Tuple(code)) => text(code.get(2)),
            _ => None,
        },
        Some("pickle") => Some("<pickled callable>".into()),
        _ => None,
    }
    .unwrap_or_else(|| "<function>".into())
}

/// Everything recorded, copied out for the reports.
pub struct Snapshot {
    pub taken: Instant,
    pub pools: Vec<PoolSnap>,
    /// `(type, where, count)`, most first.
    pub pickled: Vec<(String, &'static str, u64)>,
    /// `(function, mode, tasks)`, most first.
    pub fallback: Vec<(String, String, u64)>,
    pub fallback_spans: Vec<(u64, Span)>,
}

/// One pool in a [`Snapshot`].
pub struct PoolSnap {
    pub number: usize,
    pub size: usize,
    pub started: Instant,
    pub closed: Option<Instant>,
    pub workers: Vec<WorkerSnap>,
}

/// One worker thread in a [`Snapshot`].
pub struct WorkerSnap {
    pub index: usize,
    pub track: usize,
    pub replacement: bool,
    pub spawned: Instant,
    pub ready: Option<Instant>,
    pub ended: Option<Instant>,
    pub tasks: u64,
    pub jobs: u64,
    pub busy: Duration,
    pub waited: Duration,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub spans: Vec<Span>,
    pub marks: Vec<Mark>,
}

impl PoolSnap {
    /// From the pool's start until its last first-generation worker was
    /// ready: what starting it cost before every worker took jobs.
    pub fn startup(&self) -> Option<Duration> {
        self.workers
            .iter()
            .filter(|w| !w.replacement)
            .map(|w| w.ready.map(|r| r.saturating_duration_since(self.started)))
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.into_iter().max())
    }

    /// From its start to its close (or to the snapshot).
    pub fn open_for(&self, taken: Instant) -> Duration {
        self.closed
            .unwrap_or(taken)
            .saturating_duration_since(self.started)
    }
}

impl PoolSnap {
    /// Its workers' busy time over the time they were up.
    pub fn utilisation(&self, taken: Instant) -> f64 {
        let busy: f64 = self.workers.iter().map(|w| w.busy.as_secs_f64()).sum();
        let up: f64 = self.workers.iter().map(|w| w.up(taken).as_secs_f64()).sum();
        if up > 0.0 { (busy / up).min(1.0) } else { 0.0 }
    }
}

impl WorkerSnap {
    /// From the moment it took jobs until its thread ended (or the snapshot).
    pub fn up(&self, taken: Instant) -> Duration {
        self.ready.map_or(Duration::ZERO, |ready| {
            self.ended.unwrap_or(taken).saturating_duration_since(ready)
        })
    }

    /// Busy time over the time it was [`up`](Self::up).
    pub fn utilisation(&self, taken: Instant) -> f64 {
        let up = self.up(taken);
        if up.is_zero() {
            0.0
        } else {
            (self.busy.as_secs_f64() / up.as_secs_f64()).min(1.0)
        }
    }
}

/// Copies out everything recorded so far.
pub fn snapshot() -> Snapshot {
    let pools = lock(&POOLS)
        .iter()
        .map(|p| PoolSnap {
            number: p.number,
            size: p.size,
            started: p.started,
            closed: *lock(&p.closed),
            workers: lock(&p.workers)
                .iter()
                .map(|w| WorkerSnap {
                    index: w.index,
                    track: w.track,
                    replacement: w.replacement,
                    spawned: w.spawned,
                    ready: *lock(&w.ready),
                    ended: *lock(&w.ended),
                    tasks: w.tasks.load(Ordering::Relaxed),
                    jobs: w.jobs.load(Ordering::Relaxed),
                    busy: Duration::from_nanos(w.busy_ns.load(Ordering::Relaxed)),
                    waited: Duration::from_nanos(w.wait_ns.load(Ordering::Relaxed)),
                    bytes_in: w.bytes_in.load(Ordering::Relaxed),
                    bytes_out: w.bytes_out.load(Ordering::Relaxed),
                    spans: lock(&w.spans).clone(),
                    marks: lock(&w.marks).clone(),
                })
                .collect(),
        })
        .collect();
    let most_first = |a: &u64, b: &u64| b.cmp(a);
    let mut pickled: Vec<_> = lock(&PICKLED)
        .iter()
        .flatten()
        .map(|((t, s), n)| (t.clone(), *s, *n))
        .collect();
    pickled.sort_by(|a, b| most_first(&a.2, &b.2).then_with(|| a.0.cmp(&b.0)));
    let mut fallback: Vec<_> = lock(&FALLBACK)
        .iter()
        .flatten()
        .map(|((f, m), n)| (f.clone(), m.clone(), *n))
        .collect();
    fallback.sort_by(|a, b| most_first(&a.2, &b.2).then_with(|| a.0.cmp(&b.0)));
    Snapshot {
        taken: Instant::now(),
        pools,
        pickled,
        fallback,
        fallback_spans: lock(&FALLBACK_SPANS).clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    #[test]
    fn labels_come_from_every_kind_of_spec() {
        let named = Value::Tuple(vec![s("name"), s("__main__"), s("Ops.mul")]);
        assert_eq!(func_label(&named), "Ops.mul");
        let code = Value::Tuple(vec![
            s("code"),
            s("__main__"),
            Value::Tuple(vec![
                Value::Bytes(vec![]),
                s("<lambda>"),
                s("f.<locals>.<lambda>"),
            ]),
            Value::Dict(vec![]),
        ]);
        assert_eq!(func_label(&code), "f.<locals>.<lambda>");
        let pickled = Value::Tuple(vec![s("pickle"), Value::Bytes(vec![1])]);
        assert_eq!(func_label(&pickled), "<pickled callable>");
        assert_eq!(func_label(&Value::None), "<function>");
    }
}
