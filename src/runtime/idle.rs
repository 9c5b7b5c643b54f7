//! How idle workers wait for jobs without costing the submitter a wake-up
//! per job.
//!
//! A caller submitting in a loop has its next job ready within microseconds,
//! and a futex wake-up costs more than that, so one idle worker per pool
//! polls (spins) for a while. The others sleep, and a submitter wakes one
//! only when nobody polls. Blocking on the channel itself would not do:
//! every send would wake a sleeping receiver, even when the polling worker
//! takes the job first.
//!
//! No job is left behind: a worker registers as a sleeper *before* it stops
//! polling and looks at the queues once more before it parks, while a
//! submitter queues the job *before* it looks for pollers and sleepers.
//! Sequentially consistent fences on both sides make sure that at least one
//! of the two sees the other. A sleeper also wakes on its own now and then,
//! as a last guard.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::thread::Thread;
use std::time::Duration;

/// How many idle workers of a pool may poll at once: every poller takes a
/// CPU from the threads doing work (on two cores, two polling workers
/// starve the main thread).
const MAX_SPINNERS: usize = 1;

/// How long a sleeping worker waits before it looks at its queues anyway.
const NAP: Duration = Duration::from_millis(100);

/// The idle workers of one pool.
#[derive(Default)]
pub struct Idle {
    spinners: AtomicUsize,
    /// Sleeping (or about to sleep) workers: (worker index, thread).
    sleepers: Mutex<Vec<(usize, Thread)>>,
    /// `sleepers.len()`, readable without the lock.
    sleeping: AtomicUsize,
}

impl Idle {
    /// Worker side: waits for `poll` to yield. `poll` returns `Some` when
    /// there is a job or the queues are closed.
    pub fn wait<T>(&self, worker: usize, mut poll: impl FnMut() -> Option<T>) -> T {
        loop {
            if let Some(v) = poll() {
                return v;
            }
            let spinning = self.spinners.fetch_add(1, Ordering::SeqCst) < MAX_SPINNERS;
            if spinning && let Some(v) = super::spin(&mut poll) {
                self.spinners.fetch_sub(1, Ordering::SeqCst);
                return v;
            }
            // Registered before no longer counting as a poller (see above).
            self.register(worker);
            self.spinners.fetch_sub(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if let Some(v) = poll() {
                self.unregister();
                return v;
            }
            std::thread::park_timeout(NAP);
            self.unregister();
        }
    }

    /// Submitter side, after queueing a job for any worker, with `queued`
    /// jobs now waiting: wakes a sleeping worker unless the polling ones are
    /// enough to take them.
    pub fn job_queued(&self, queued: usize) {
        fence(Ordering::SeqCst);
        if self.spinners.load(Ordering::SeqCst) < queued.max(1)
            && self.sleeping.load(Ordering::SeqCst) > 0
        {
            let woken = lock(&self.sleepers).pop();
            if let Some((_, t)) = woken {
                self.sleeping.fetch_sub(1, Ordering::SeqCst);
                t.unpark();
            }
        }
    }

    /// Submitter side, after queueing a job for worker `worker` only.
    pub fn job_queued_for(&self, worker: usize) {
        fence(Ordering::SeqCst);
        self.wake(|w| w == worker);
    }

    /// Wakes every sleeper (the queues closed).
    pub fn wake_all(&self) {
        fence(Ordering::SeqCst);
        self.wake(|_| true);
    }

    fn wake(&self, which: impl Fn(usize) -> bool) {
        let mut sleepers = lock(&self.sleepers);
        sleepers.retain(|(w, t)| {
            if which(*w) {
                t.unpark();
                false
            } else {
                true
            }
        });
        self.sleeping.store(sleepers.len(), Ordering::SeqCst);
    }

    fn register(&self, worker: usize) {
        let mut sleepers = lock(&self.sleepers);
        sleepers.push((worker, std::thread::current()));
        self.sleeping.store(sleepers.len(), Ordering::SeqCst);
    }

    /// Removes this thread from the sleepers, if a waker has not already.
    fn unregister(&self) {
        let me = std::thread::current().id();
        let mut sleepers = lock(&self.sleepers);
        sleepers.retain(|(_, t)| t.id() != me);
        self.sleeping.store(sleepers.len(), Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
