//! A pool: N worker threads, each owning one sub-interpreter.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, unbounded};

use super::idle::Idle;
use super::worker::{self, WorkerSetup};
use super::{Event, Job, Outcome};
use crate::ffi::interp::InterruptSlot;
use crate::observe::log::{debug, info};
use crate::observe::record::{PoolRec, WorkerRec};
use crate::transfer::Value;

/// What other threads may know about a running worker.
#[derive(Default)]
pub(super) struct WorkerCtl {
    /// The worker's interpreter while it is alive.
    pub slot: Arc<InterruptSlot>,
    /// The group (call or future id) of the job running now; 0 when idle.
    /// Changed only while the worker holds its own GIL.
    pub running: AtomicU64,
    /// Set when a replacement took this worker's place: it ends after its
    /// current (stuck) job instead of taking more.
    pub abandoned: AtomicBool,
    /// Set once the worker's interpreter is up and it takes jobs.
    pub started: AtomicBool,
    /// What it did, while `--stats` or `--timeline` records.
    pub rec: Option<Arc<WorkerRec>>,
    /// Its pool's number and its index, for log lines.
    pub pool: usize,
    pub index: usize,
}

impl WorkerCtl {
    /// Interrupts the worker's current job if it belongs to `group` (any job
    /// when `group` is 0), from a throwaway thread: attaching to the worker's
    /// interpreter waits for its GIL, which a long C call can hold.
    /// Returns the group it interrupted, if any.
    ///
    /// Only the group running now is hit: by the time the thread holds the
    /// GIL, that job may have ended and a later one (submitted after a
    /// caught Ctrl-C, say) may run, which must go on.
    fn interrupt(self: &Arc<Self>, group: u64) -> Option<u64> {
        let running = self.running.load(Ordering::SeqCst);
        if running == 0 || (group != 0 && running != group) {
            return None;
        }
        debug!(
            "pool {}: interrupting worker {} (call {running})",
            self.pool, self.index
        );
        if let Some(rec) = &self.rec {
            rec.mark("interrupt", format!("call {running}"));
        }
        let ctl = Arc::clone(self);
        self.slot
            .interrupt(move || ctl.running.load(Ordering::SeqCst) == running);
        Some(running)
    }
}

/// How long an interrupted job may take to stop before its worker is
/// replaced (it is stuck in C code, or ignores `KeyboardInterrupt`).
const STOP_GRACE: Duration = Duration::from_millis(500);

/// Stack size of worker threads: as large as a typical main thread's, so deep
/// recursion ends in `RecursionError`, as in the main interpreter, not a crash.
const WORKER_STACK: usize = 64 << 20;

/// Why a job could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("cannot schedule new work after the pool was shut down")]
    Shutdown,
    #[error("could not start a worker thread: {0}")]
    Spawn(String),
}

/// The workers of a pool, by index.
#[derive(Default)]
struct Workers {
    closed: bool,
    /// Both ends of each worker's own queue. A successor takes over the
    /// receiver, and so the jobs queued for the worker it replaces.
    own: Vec<(Sender<Job>, Receiver<Job>)>,
    ctls: Vec<Arc<WorkerCtl>>,
}

/// Worker threads not yet joined.
#[derive(Default)]
struct Threads {
    handles: Vec<JoinHandle<()>>,
    /// Exit messages taken from the channel whose thread is not joined yet.
    signalled: usize,
}

/// A running pool of workers.
pub struct Pool {
    me: Weak<Pool>,
    /// 1, 2, … in the order pools started (for log lines and reports).
    number: usize,
    size: usize,
    setup: Arc<Value>,
    global: Sender<Event>,
    shared: Mutex<Option<Sender<Job>>>,
    /// Each worker's own queue and control; `closed` once the pool closes.
    /// One lock, so that replacing a stuck worker and closing the pool
    /// cannot interleave.
    workers: Mutex<Workers>,
    /// Kept to drain pending jobs on `cancel_pending`, and for new workers.
    pending: Receiver<Job>,
    /// Every worker thread not yet joined, abandoned ones included.
    threads: Mutex<Threads>,
    /// Each worker thread sends its index here as it ends.
    exited_tx: Sender<usize>,
    exited: Receiver<usize>,
    closed: AtomicBool,
    /// Set when a job went on running after it was interrupted (it is
    /// stuck in C code, or ignores `KeyboardInterrupt`).
    stuck: AtomicBool,
    /// How idle workers wait, and how submitters wake them.
    idle: Arc<Idle>,
    /// What it did, while `--stats` or `--timeline` records.
    rec: Option<Arc<PoolRec>>,
}

impl Pool {
    /// Starts `size` workers. Each creates its sub-interpreter on its own
    /// thread and runs `setup` (a value for `parpy._worker_setup`) first.
    /// `global` receives output written outside any task.
    pub fn start(size: usize, setup: Value, global: Sender<Event>) -> Result<Arc<Pool>, PoolError> {
        let (shared_tx, shared_rx) = unbounded::<Job>();
        let (exited_tx, exited) = unbounded::<usize>();
        static POOLS_STARTED: AtomicUsize = AtomicUsize::new(0);
        let number = POOLS_STARTED.fetch_add(1, Ordering::Relaxed) + 1;
        info!(
            "pool {number}: starting {size} worker{}",
            if size == 1 { "" } else { "s" }
        );
        let pool = Arc::new_cyclic(|me| Pool {
            me: me.clone(),
            number,
            size,
            setup: Arc::new(setup),
            global,
            shared: Mutex::new(Some(shared_tx)),
            workers: Mutex::new(Workers::default()),
            pending: shared_rx,
            threads: Mutex::new(Threads::default()),
            exited_tx,
            exited,
            closed: AtomicBool::new(false),
            stuck: AtomicBool::new(false),
            idle: Arc::default(),
            rec: crate::observe::record::pool_started(number, size),
        });
        for id in 0..size {
            let (tx, rx) = unbounded::<Job>();
            match pool.spawn_worker(id, rx.clone()) {
                Ok(ctl) => {
                    let mut w = lock(&pool.workers);
                    w.own.push((tx, rx));
                    w.ctls.push(ctl);
                }
                Err(e) => {
                    // The workers already started end (they have no work)
                    // and are joined: none outlives a pool that never was.
                    pool.close();
                    while !pool.wait_exited(Duration::from_secs(3600)) {}
                    return Err(e);
                }
            }
        }
        Ok(pool)
    }

    /// Starts worker `id` on a new thread, serving the own queue `own`;
    /// returns its control.
    fn spawn_worker(&self, id: usize, own: Receiver<Job>) -> Result<Arc<WorkerCtl>, PoolError> {
        let ctl = Arc::new(WorkerCtl {
            rec: self.rec.as_ref().map(|r| r.worker(id)),
            pool: self.number,
            index: id,
            ..WorkerCtl::default()
        });
        let ws = WorkerSetup {
            id,
            size: self.size,
            setup: Arc::clone(&self.setup),
            own,
            shared: self.pending.clone(),
            global: self.global.clone(),
            ctl: Arc::clone(&ctl),
            exited: self.exited_tx.clone(),
            idle: Arc::clone(&self.idle),
        };
        let handle = super::fault::spawn(
            std::thread::Builder::new()
                .name(format!("parpy-worker-{id}"))
                .stack_size(WORKER_STACK),
            move || worker::run(ws),
        )
        .map_err(|e| PoolError::Spawn(e.to_string()))?;
        lock(&self.threads).handles.push(handle);
        Ok(ctl)
    }

    /// Puts a fresh worker in the place of worker `id`, which is abandoned:
    /// it ends on its own when its stuck call returns. The successor serves
    /// the same own queue, so jobs already queued for `id` are not lost.
    /// When no thread can be started, the stuck worker keeps its place.
    fn replace(&self, id: usize, stuck: &Arc<WorkerCtl>) {
        let mut w = lock(&self.workers);
        if w.closed || !w.ctls.get(id).is_some_and(|c| Arc::ptr_eq(c, stuck)) {
            return;
        }
        let own = w.own[id].1.clone();
        if let Ok(ctl) = self.spawn_worker(id, own) {
            stuck.abandoned.store(true, Ordering::SeqCst);
            info!(
                "pool {}: worker {id} did not stop within {} ms of an interrupt; a new worker takes its place",
                self.number,
                STOP_GRACE.as_millis()
            );
            if let Some(rec) = &stuck.rec {
                rec.mark("replaced", "stuck after an interrupt".into());
            }
            w.ctls[id] = ctl;
        }
    }

    /// Number of workers.
    pub fn size(&self) -> usize {
        self.size
    }

    /// How many workers run a job now.
    pub fn busy(&self) -> usize {
        lock(&self.workers)
            .ctls
            .iter()
            .filter(|c| c.running.load(Ordering::Relaxed) != 0)
            .count()
    }

    /// Queues a job for whichever worker is free first.
    pub fn submit(&self, job: Job) -> Result<(), PoolError> {
        let queued = {
            let guard = lock(&self.shared);
            let tx = guard.as_ref().ok_or(PoolError::Shutdown)?;
            tx.send(job).map_err(|_| PoolError::Shutdown)?;
            tx.len()
        };
        self.idle.job_queued(queued);
        Ok(())
    }

    /// Queues a job for one worker.
    pub fn submit_to(&self, worker: usize, job: Job) -> Result<(), PoolError> {
        {
            let guard = lock(&self.workers);
            let (tx, _) = guard.own.get(worker).ok_or(PoolError::Shutdown)?;
            tx.send(job).map_err(|_| PoolError::Shutdown)?;
        }
        self.idle.job_queued_for(worker);
        Ok(())
    }

    /// Answers every job still waiting in the shared queue as cancelled.
    pub fn cancel_pending(&self) {
        while let Ok(job) = self.pending.try_recv() {
            let tag = job.reply.tag;
            job.answer(Event::Done {
                tag,
                outcome: Outcome::Cancelled,
            });
        }
    }

    /// Interrupts (with `KeyboardInterrupt`) the running jobs of `group`, or
    /// every running job when `group` is 0.
    /// Workers whose job does not stop within [`STOP_GRACE`] are replaced.
    pub fn interrupt(&self, group: u64) {
        let ctls = lock(&self.workers).ctls.clone();
        let hit: Vec<(usize, Arc<WorkerCtl>, u64)> = ctls
            .iter()
            .enumerate()
            .filter_map(|(i, ctl)| ctl.interrupt(group).map(|g| (i, Arc::clone(ctl), g)))
            .collect();
        if hit.is_empty() {
            return;
        }
        let me = self.me.clone();
        let _ = std::thread::Builder::new()
            .name("parpy-watchdog".into())
            .spawn(move || {
                std::thread::sleep(STOP_GRACE);
                let Some(pool) = me.upgrade() else { return };
                for (i, ctl, g) in hit {
                    if ctl.running.load(Ordering::SeqCst) == g {
                        pool.stuck.store(true, Ordering::SeqCst);
                        pool.replace(i, &ctl);
                    }
                }
            });
    }

    /// Stops accepting work. Workers finish what is queued, then end their
    /// interpreters; see [`Pool::wait_exited`].
    pub fn close(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            info!("pool {}: closing", self.number);
            if let Some(rec) = &self.rec {
                rec.closed();
            }
        }
        lock(&self.shared).take();
        {
            let mut w = lock(&self.workers);
            w.closed = true;
            w.own.clear();
        }
        self.idle.wake_all();
    }

    /// Waits up to `timeout` for every worker thread to end; true when all
    /// have (their threads are then joined). Call it detached.
    pub fn wait_exited(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut guard = lock(&self.threads);
        let Threads { handles, signalled } = &mut *guard;
        loop {
            // A thread says it ends just before it does: so every finished
            // thread's message is in the channel, and after joining the
            // finished ones, `signalled` counts the live threads that are
            // ending (not yet finished, but about to).
            while self.exited.try_recv().is_ok() {
                *signalled += 1;
            }
            let (done, alive): (Vec<_>, Vec<_>) = handles.drain(..).partition(|t| t.is_finished());
            *handles = alive;
            *signalled -= done.len();
            for t in done {
                let _ = t.join();
            }
            if handles.len() <= *signalled {
                *signalled = 0;
                for t in handles.drain(..) {
                    let _ = t.join();
                }
                return true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.exited.recv_timeout(left) {
                Ok(_) => *signalled += 1,
                Err(_) => return false,
            }
        }
    }

    /// `close`, then (with `wait`) wait for all workers. Call it detached.
    pub fn shutdown(&self, wait: bool) {
        self.close();
        if wait {
            while !self.wait_exited(Duration::from_secs(3600)) {}
        }
    }

    /// Whether a job went on running after it was interrupted, for longer
    /// than it takes Python code to stop.
    pub fn has_stuck(&self) -> bool {
        self.stuck.load(Ordering::SeqCst)
    }

    /// Whether `shutdown` was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
