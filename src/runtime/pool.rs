//! A pool: N worker threads, each owning one sub-interpreter.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, unbounded};

use super::worker::{self, WorkerSetup};
use super::{Event, Job, Outcome};
use crate::transfer::Value;

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
    closed: AtomicBool,
}

impl Pool {
    /// Starts `size` workers. Each creates its sub-interpreter on its own
    /// thread and runs `setup` (a value for `parpy._worker_setup`) first.
    /// `global` receives output written outside any task.
    pub fn start(size: usize, setup: Value, global: Sender<Event>) -> Result<Arc<Pool>, PoolError> {
        let (shared_tx, shared_rx) = unbounded::<Job>();
        let setup = Arc::new(setup);
        let mut own = Vec::with_capacity(size);
        let mut threads = Vec::with_capacity(size);
        for id in 0..size {
            let (tx, rx) = unbounded::<Job>();
            own.push(tx);
            let ws = WorkerSetup {
                id,
                size,
                setup: Arc::clone(&setup),
                own: rx,
                shared: shared_rx.clone(),
                global: global.clone(),
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

    /// Stops accepting work. Workers finish what is queued, then end their
    /// interpreters. With `wait`, blocks until all have (call it detached).
    pub fn shutdown(&self, wait: bool) {
        self.closed.store(true, Ordering::SeqCst);
        self.shared.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.own.lock().unwrap_or_else(|e| e.into_inner()).clear();
        if wait {
            let threads: Vec<_> = self.threads.lock().unwrap_or_else(|e| e.into_inner()).drain(..).collect();
            for t in threads {
                let _ = t.join();
            }
        }
    }

    /// Whether `shutdown` was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}
