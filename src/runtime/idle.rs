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
//! No job is left behind while a worker sleeps:
//! * a worker registers as a sleeper *before* it stops counting as a poller
//!   and looks at the queues once more before it parks, while a submitter
//!   queues the job *before* it looks for pollers and sleepers;
//! * a worker that takes a job stops counting as a poller and *then* looks
//!   whether more jobs wait, waking a sleeper for them if no poller is left
//!   (a submitter may have seen it still polling and woken nobody).
//!
//! Sequentially consistent fences on both sides of each pair make sure that
//! at least one of the two sees the other. The `loom` model checks below
//! prove it for small cases (a sleeper there never wakes on its own, so a
//! missed wake-up is a deadlock); in the real pool a sleeper also wakes now
//! and then as a last guard.

use sync::{AtomicUsize, Mutex, MutexGuard, Ordering, Thread, fence};

/// The synchronisation primitives: std's, or loom's for the model checks
/// (`RUSTFLAGS="--cfg loom"`, see `.ci/model-check`).
#[cfg(not(loom))]
mod sync {
    pub use std::sync::atomic::{AtomicUsize, Ordering, fence};
    pub use std::sync::{Mutex, MutexGuard};
    pub use std::thread::{Thread, current};

    /// Sleeps until unparked, or [`super::NAP`] at most.
    pub fn park() {
        std::thread::park_timeout(super::NAP);
    }

    /// Polls `f` for a while (see [`crate::runtime::spin`]).
    pub fn spin<T>(f: impl FnMut() -> Option<T>) -> Option<T> {
        crate::runtime::spin(f)
    }
}

#[cfg(loom)]
mod sync {
    pub use loom::sync::atomic::{AtomicUsize, Ordering, fence};
    use loom::sync::{Arc, Condvar};
    pub use loom::sync::{Mutex, MutexGuard};

    /// A thread's park token, like std's. (loom's own `unpark` also wakes a
    /// thread blocked on a mutex, which then fails loom's lock assertion.)
    #[derive(Clone)]
    pub struct Thread {
        id: loom::thread::ThreadId,
        token: Arc<(Mutex<bool>, Condvar)>,
    }

    impl Thread {
        pub fn id(&self) -> loom::thread::ThreadId {
            self.id
        }

        pub fn unpark(&self) {
            *self.token.0.lock().unwrap() = true;
            self.token.1.notify_one();
        }
    }

    loom::thread_local! {
        static ME: Thread = Thread {
            id: loom::thread::current().id(),
            token: Arc::new((Mutex::new(false), Condvar::new())),
        };
    }

    pub fn current() -> Thread {
        ME.with(|t| t.clone())
    }

    /// Sleeps until unparked (no timeout: a missed wake-up is a deadlock).
    pub fn park() {
        let me = current();
        let mut set = me.token.0.lock().unwrap();
        while !*set {
            set = me.token.1.wait(set).unwrap();
        }
        *set = false;
    }

    /// Two polls: enough to explore a job arriving while a worker polls.
    pub fn spin<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
        for _ in 0..2 {
            if let Some(v) = f() {
                return Some(v);
            }
            loom::thread::yield_now();
        }
        None
    }
}

/// How many idle workers of a pool may poll at once: every poller takes a
/// CPU from the threads doing work (on two cores, two polling workers
/// starve the main thread).
const MAX_SPINNERS: usize = 1;

/// How long a sleeping worker waits before it looks at its queues anyway.
#[cfg_attr(loom, allow(dead_code))]
const NAP: std::time::Duration = std::time::Duration::from_millis(100);

/// The idle workers of one pool.
#[derive(Default)]
pub struct Idle {
    /// Workers polling, plus (briefly) workers on their way to sleep.
    spinners: AtomicUsize,
    /// Sleeping (or about to sleep) workers: (worker index, thread).
    sleepers: Mutex<Vec<(usize, Thread)>>,
    /// `sleepers.len()`, readable without the lock; written only under it.
    sleeping: AtomicUsize,
}

impl Idle {
    /// Worker side: waits for `poll` to yield. `poll` returns `Some` when
    /// there is a job or the queues are closed; `queued` tells how many jobs
    /// any worker may take are still waiting.
    pub fn wait<T>(
        &self,
        worker: usize,
        mut poll: impl FnMut() -> Option<T>,
        queued: impl Fn() -> usize,
    ) -> T {
        loop {
            if let Some(v) = poll() {
                self.took(&queued);
                return v;
            }
            let spinning = self.spinners.fetch_add(1, Ordering::SeqCst) < MAX_SPINNERS;
            if spinning && let Some(v) = sync::spin(&mut poll) {
                self.spinners.fetch_sub(1, Ordering::SeqCst);
                self.took(&queued);
                return v;
            }
            // Registered before no longer counting as a poller (see above).
            self.register(worker);
            self.spinners.fetch_sub(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if let Some(v) = poll() {
                self.unregister();
                self.took(&queued);
                return v;
            }
            sync::park();
            self.unregister();
        }
    }

    /// After this worker took a job (and counts as a poller no more): jobs
    /// still waiting get a sleeper woken, unless pollers are enough.
    fn took(&self, queued: &impl Fn() -> usize) {
        fence(Ordering::SeqCst);
        let n = queued();
        if n > 0 {
            self.job_queued(n);
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
            let woken = {
                let mut sleepers = lock(&self.sleepers);
                let woken = sleepers.pop();
                self.sleeping.store(sleepers.len(), Ordering::SeqCst);
                woken
            };
            if let Some((_, t)) = woken {
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
        sleepers.push((worker, sync::current()));
        self.sleeping.store(sleepers.len(), Ordering::SeqCst);
    }

    /// Removes this thread from the sleepers, if a waker has not already.
    fn unregister(&self) {
        let me = sync::current().id();
        let mut sleepers = lock(&self.sleepers);
        sleepers.retain(|(_, t)| t.id() != me);
        self.sleeping.store(sleepers.len(), Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Model checks: every interleaving (up to loom's preemption bound) of
    //! workers waiting and a submitter queueing. A missed wake-up leaves a
    //! job queued while every worker parks forever: loom reports a deadlock.

    use super::*;
    use loom::sync::Arc;
    use std::collections::VecDeque;

    /// A shared queue and its closed flag, as the pool has.
    #[derive(Default)]
    struct Queue {
        jobs: Mutex<(VecDeque<u32>, bool)>,
    }

    impl Queue {
        fn poll(&self) -> Option<Option<u32>> {
            let mut q = lock(&self.jobs);
            match q.0.pop_front() {
                Some(j) => Some(Some(j)),
                None if q.1 => Some(None),
                None => None,
            }
        }

        fn len(&self) -> usize {
            lock(&self.jobs).0.len()
        }

        fn push(&self, j: u32) -> usize {
            let mut q = lock(&self.jobs);
            q.0.push_back(j);
            q.0.len()
        }

        fn close(&self) {
            lock(&self.jobs).1 = true;
        }
    }

    /// `workers` workers serve the queue; the submitter queues `jobs` jobs
    /// and waits (parked, woken by the worker that finishes) for each before
    /// queueing the next or, with `burst`, queues them all at once (and the
    /// first waits for another to finish); then closes. Every job runs
    /// exactly once and every thread ends.
    fn model(workers: usize, jobs: u32, burst: bool) {
        // The bound keeps the run short; a burst's bug needs one preemption.
        check(if burst { 1 } else { 2 }, move || {
            let idle = Arc::new(Idle::default());
            let queue = Arc::new(Queue::default());
            let done = Arc::new(AtomicUsize::new(0));
            let main = sync::current();
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let (idle, queue, done, main) =
                        (idle.clone(), queue.clone(), done.clone(), main.clone());
                    loom::thread::spawn(move || {
                        while let Some(job) = idle.wait(w, || queue.poll(), || queue.len()) {
                            if burst && job == 0 {
                                // The first job waits for the second (tasks
                                // that talk through a queue): the second must
                                // reach another worker.
                                while done.load(Ordering::SeqCst) == 0 {
                                    loom::thread::yield_now();
                                }
                            }
                            done.fetch_add(1, Ordering::SeqCst);
                            main.unpark();
                        }
                    })
                })
                .collect();
            if burst {
                // Fewer preemptions to explore: the workers are idle first.
                while idle.spinners.load(Ordering::SeqCst) + idle.sleeping.load(Ordering::SeqCst)
                    < workers
                {
                    loom::thread::yield_now();
                }
            }
            for j in 0..jobs {
                if j > 0 {
                    loom::thread::yield_now();
                }
                let n = queue.push(j);
                idle.job_queued(n);
                if !burst {
                    while done.load(Ordering::SeqCst) <= j as usize {
                        sync::park();
                    }
                }
            }
            while done.load(Ordering::SeqCst) < jobs as usize {
                sync::park();
            }
            queue.close();
            idle.wake_all();
            for h in handles {
                h.join().unwrap();
            }
            assert_eq!(done.load(Ordering::SeqCst), jobs as usize);
        });
    }

    /// Explores `f` with at most `preemptions` preemptions per execution.
    fn check(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(preemptions);
        b.check(f);
    }

    #[test]
    fn loom_one_worker_never_misses_a_job() {
        model(1, 2, false);
    }

    #[test]
    fn loom_two_workers_never_miss_a_job() {
        model(2, 2, false);
    }

    #[test]
    fn loom_a_burst_wakes_enough_workers() {
        // Before the fix, the polling worker took job 0 while still counting
        // as a poller, the submitter woke nobody for job 1, and job 0 waited
        // for it forever (up to a 100 ms nap in the real pool).
        model(2, 2, true);
    }

    #[test]
    fn loom_a_job_for_one_worker_wakes_it() {
        check(3, || {
            let idle = Arc::new(Idle::default());
            let own = Arc::new(Queue::default());
            let shared = Arc::new(Queue::default());
            let h = {
                let (idle, own, shared) = (idle.clone(), own.clone(), shared.clone());
                loom::thread::spawn(move || {
                    // As the pool's workers poll: their own queue first,
                    // and once more after the shared one closed.
                    let poll = || {
                        if let Some(Some(j)) = own.poll() {
                            return Some(Some(j));
                        }
                        match shared.poll() {
                            Some(None) => Some(own.poll().flatten()),
                            other => other,
                        }
                    };
                    let mut got = 0;
                    while idle.wait(0, poll, || shared.len()).is_some() {
                        got += 1;
                    }
                    got
                })
            };
            own.push(7);
            idle.job_queued_for(0);
            shared.close();
            idle.wake_all();
            assert_eq!(h.join().unwrap(), 1);
        });
    }
}
