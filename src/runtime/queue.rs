//! `parpy.Queue`: a FIFO shared by the main interpreter and every worker.
//!
//! Items are [`Value`]s, so they are copied in and out like call arguments.
//! Queues live in a process-wide registry, found by id; each Python-side
//! handle (in any interpreter) holds one reference.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender, bounded, unbounded};

use crate::transfer::Value;

struct Queue {
    tx: Sender<Value>,
    rx: Receiver<Value>,
    refs: usize,
}

static QUEUES: Mutex<Option<HashMap<u64, Queue>>> = Mutex::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Why a queue operation did not complete.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the queue is empty")]
    Empty,
    #[error("the queue is full")]
    Full,
    #[error("parpy.Queue {0} no longer exists")]
    Gone(u64),
}

fn with<T>(id: u64, f: impl FnOnce(&mut Queue) -> T) -> Result<T, QueueError> {
    let mut guard = QUEUES.lock().unwrap_or_else(|e| e.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    map.get_mut(&id).map(f).ok_or(QueueError::Gone(id))
}

/// Creates a queue (unbounded when `maxsize` is 0) with one reference.
pub fn queue_new(maxsize: usize) -> u64 {
    let (tx, rx) = if maxsize == 0 {
        unbounded()
    } else {
        bounded(maxsize)
    };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut guard = QUEUES.lock().unwrap_or_else(|e| e.into_inner());
    guard
        .get_or_insert_with(HashMap::new)
        .insert(id, Queue { tx, rx, refs: 1 });
    id
}

/// Adds a reference for a handle in another interpreter.
pub fn queue_attach(id: u64) -> Result<(), QueueError> {
    with(id, |q| q.refs += 1)
}

/// Drops a handle's reference; the queue goes away with the last one.
pub fn queue_release(id: u64) {
    let mut guard = QUEUES.lock().unwrap_or_else(|e| e.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    if let Some(q) = map.get_mut(&id) {
        q.refs -= 1;
        if q.refs == 0 {
            map.remove(&id);
        }
    }
}

fn ends(id: u64) -> Result<(Sender<Value>, Receiver<Value>), QueueError> {
    with(id, |q| (q.tx.clone(), q.rx.clone()))
}

/// Puts `v`, waiting up to `timeout` for room (`None`: forever). When the
/// queue stays full, `v` comes back with the error, so a caller can retry
/// without copying it. Call it detached from the interpreter when it may wait.
pub fn queue_put(id: u64, v: Value, timeout: Option<Duration>) -> Result<(), (QueueError, Value)> {
    let tx = match ends(id) {
        Ok((tx, _)) => tx,
        Err(e) => return Err((e, v)),
    };
    match timeout {
        None => tx
            .send(v)
            .map_err(|e| (QueueError::Gone(id), e.into_inner())),
        Some(t) => tx.send_timeout(v, t).map_err(|e| match e {
            SendTimeoutError::Timeout(v) => (QueueError::Full, v),
            SendTimeoutError::Disconnected(v) => (QueueError::Gone(id), v),
        }),
    }
}

/// Takes the oldest item, waiting up to `timeout`.
pub fn queue_get(id: u64, timeout: Duration) -> Result<Value, QueueError> {
    let (_, rx) = ends(id)?;
    rx.recv_timeout(timeout).map_err(|e| match e {
        RecvTimeoutError::Timeout => QueueError::Empty,
        RecvTimeoutError::Disconnected => QueueError::Gone(id),
    })
}

/// The number of items waiting.
pub fn queue_len(id: u64) -> Result<usize, QueueError> {
    with(id, |q| q.rx.len())
}
