//! A pool: N worker threads, each owning one sub-interpreter.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, unbounded};

use super::worker::{self, WorkerSetup};
use super::{Event, Job, Outcome};
use crate::ffi::interp::{InterpHandle, interrupt};
use crate::transfer::Value;

/// What other threads may know about a running worker.
#[derive(Default)]
pub(super) struct WorkerCtl {
    /// The worker's interpreter while it is alive (withdrawn, detached, before it ends).
    pub handle: Mutex<Option<InterpHandle>>,
    /// The group (call or future id) of the job running now; 0 when idle.
    /// Changed only while the worker holds its own GIL.
    pub running: AtomicU64,
}

impl WorkerCtl {
    /// Interrupts the worker's current job if it belongs to `group` (any job
    /// when `group` is 0), from a throwaway thread: attaching to the worker's
    /// interpreter waits for its GIL, which a long C call can hold.
    fn interrupt(self: &Arc<Self>, group: u64) {
        let running = self.running.load(Ordering::SeqCst);
        if running == 0 || (group != 0 && running != group) {
            return;
        }
        let ctl = Arc::clone(self);
        let _ = std::thread::Builder::new()
            .name("parpy-interrupt".into())
            .spawn(move || {
                let guard = ctl.handle.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(h) = guard.as_ref() {
                    // SAFETY: the handle is present, so the interpreter is alive, and
                    // it cannot end while we hold the lock; this new thread is detached.
                    unsafe {
                        interrupt(h, || {
                            let now = ctl.running.load(Ordering::SeqCst);
                            now != 0 && (group == 0 || now == group)
                        })
                    };
                }
            });
    }
}

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

/// A running pool of workers.
pub struct Pool {
    size: usize,
    shared: Mutex<Option<Sender<Job>>>,
    own: Mutex<Vec<Sender<Job>>>,
    /// Kept to drain pending jobs on `cancel_pending`.
    pending: Receiver<Job>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    ctls: Vec<Arc<WorkerCtl>>,
    /// Each worker thread sends its index here as it ends.
    exited: Receiver<usize>,
    closed: AtomicBool,
}

impl Pool {
    /// Starts `size` workers. Each creates its sub-interpreter on its own
    /// thread and runs `setup` (a value for `parpy._worker_setup`) first.
    /// `global` receives output written outside any task.
    pub fn start(size: usize, setup: Value, global: Sender<Event>) -> Result<Arc<Pool>, PoolError> {
        let (shared_tx, shared_rx) = unbounded::<Job>();
        let setup = Arc::new(setup);
        let (exited_tx, exited) = unbounded::<usize>();
        let mut own = Vec::with_capacity(size);
        let mut threads = Vec::with_capacity(size);
        let mut ctls = Vec::with_capacity(size);
        for id in 0..size {
            let (tx, rx) = unbounded::<Job>();
            own.push(tx);
            let ctl = Arc::new(WorkerCtl::default());
            ctls.push(Arc::clone(&ctl));
            let ws = WorkerSetup {
                id,
                size,
                setup: Arc::clone(&setup),
                own: rx,
                shared: shared_rx.clone(),
                global: global.clone(),
                ctl,
                exited: exited_tx.clone(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("parpy-worker-{id}"))
                .stack_size(WORKER_STACK)
                .spawn(move || worker::run(ws))
                .map_err(|e| PoolError::Spawn(e.to_string()))?;
            threads.push(handle);
        }
        Ok(Arc::new(Pool {
            size,
            shared: Mutex::new(Some(shared_tx)),
            own: Mutex::new(own),
            pending: shared_rx,
            threads: Mutex::new(threads),
            ctls,
            exited,
            closed: AtomicBool::new(false),
        }))
    }

    /// Number of workers.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Queues a job for whichever worker is free first.
    pub fn submit(&self, job: Job) -> Result<(), PoolError> {
        let guard = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let tx = guard.as_ref().ok_or(PoolError::Shutdown)?;
        tx.send(job).map_err(|_| PoolError::Shutdown)
    }

    /// Queues a job for one worker.
    pub fn submit_to(&self, worker: usize, job: Job) -> Result<(), PoolError> {
        let guard = self.own.lock().unwrap_or_else(|e| e.into_inner());
        let tx = guard.get(worker).ok_or(PoolError::Shutdown)?;
        tx.send(job).map_err(|_| PoolError::Shutdown)
    }

    /// Answers every job still waiting in the shared queue as cancelled.
    pub fn cancel_pending(&self) {
        while let Ok(job) = self.pending.try_recv() {
            let _ = job.reply.tx.send(Event::Done {
                tag: job.reply.tag,
                outcome: Outcome::Cancelled,
            });
        }
    }

    /// Interrupts (with `KeyboardInterrupt`) the running jobs of `group`, or
    /// every running job when `group` is 0.
    pub fn interrupt(&self, group: u64) {
        for ctl in &self.ctls {
            ctl.interrupt(group);
        }
    }

    /// Stops accepting work. Workers finish what is queued, then end their
    /// interpreters; see [`Pool::wait_exited`].
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.shared.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.own.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Waits up to `timeout` for every worker thread to end; true when all
    /// have (their threads are then joined). Call it detached.
    pub fn wait_exited(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        while !threads.is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.exited.recv_timeout(left) {
                Ok(_) => {
                    // Join every thread that has finished.
                    let (done, alive): (Vec<_>, Vec<_>) =
                        threads.drain(..).partition(|t| t.is_finished());
                    *threads = alive;
                    for t in done {
                        let _ = t.join();
                    }
                }
                Err(_) => {
                    let (done, alive): (Vec<_>, Vec<_>) =
                        threads.drain(..).partition(|t| t.is_finished());
                    *threads = alive;
                    for t in done {
                        let _ = t.join();
                    }
                    return threads.is_empty();
                }
            }
        }
        true
    }

    /// `close`, then (with `wait`) wait for all workers. Call it detached.
    pub fn shutdown(&self, wait: bool) {
        self.close();
        if wait {
            while !self.wait_exited(Duration::from_secs(3600)) {}
        }
    }

    /// Whether `shutdown` was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}
