//! One extension-module initialisation at a time across workers, where the
//! Python needs it (3.12: see `_COMPAT_SERIAL_EXT_INIT` in parpy/_compat.py).
//!
//! Reentrant per thread: an extension's init may import another extension.

use std::sync::{Condvar, Mutex};
use std::thread::ThreadId;

struct State {
    owner: Option<ThreadId>,
    depth: usize,
}

static STATE: Mutex<State> = Mutex::new(State {
    owner: None,
    depth: 0,
});
static FREED: Condvar = Condvar::new();

/// Waits until no other thread initialises an extension module, then marks
/// this one as doing so. Call it detached (it may wait for another worker).
pub fn enter() {
    let me = std::thread::current().id();
    let mut s = STATE.lock().unwrap_or_else(|e| e.into_inner());
    while s.owner.is_some_and(|o| o != me) {
        s = FREED.wait(s).unwrap_or_else(|e| e.into_inner());
    }
    s.owner = Some(me);
    s.depth += 1;
}

/// Ends what the matching [`enter`] began.
pub fn exit() {
    let me = std::thread::current().id();
    let mut s = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if s.owner == Some(me) {
        s.depth -= 1;
        if s.depth == 0 {
            s.owner = None;
            FREED.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn one_thread_at_a_time_and_reentrant() {
        let inside = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let inside = Arc::clone(&inside);
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        enter();
                        enter(); // an init importing another extension
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                        inside.fetch_sub(1, Ordering::SeqCst);
                        exit();
                        exit();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
