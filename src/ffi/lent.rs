//! Large immutable buffers of the main interpreter, lent to workers without a copy.
//!
//! A [`Lent`] holds one strong reference to an exact `bytes` or `str` of the
//! main interpreter, and the address and length of its contents (the bytes
//! themselves, or the str's UTF-8). A worker copies straight from that
//! memory into its own new object, so the data is copied once per worker
//! and never in main.
//!
//! Lifetime: the reference is taken in the main interpreter, with its GIL.
//! Dropping a `Lent` (on any thread: usually a worker, after its job) does
//! not touch the object: it puts the reference on a release list, which
//! [`release_lent`] empties, decref'ing each object, only on a thread
//! attached to the main interpreter. Every native `parpy` call does so
//! after its body runs (see `module::trampoline`). So the memory stays
//! valid while any `Lent` can still read it, a decref never happens outside
//! the main interpreter, and what is dropped after the last such call
//! (at process exit) is leaked, never freed twice.

use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3_ffi as ffi;

use super::object::{Gil, Kind, Obj, PyResult};

/// What the lent memory holds, so a worker rebuilds the same type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LentKind {
    Bytes,
    /// UTF-8 of a str (without lone surrogates).
    Str,
}

/// A strong reference to an immutable `bytes`/`str` of the main interpreter,
/// readable from any thread, released in the main interpreter only.
pub struct Lent {
    obj: NonNull<ffi::PyObject>,
    data: *const u8,
    len: usize,
    kind: LentKind,
}

// SAFETY: from other threads a `Lent` only reads `data[..len]`, memory that
// the object owns, never changes (bytes and str are immutable, and the
// reference we hold rules out CPython's in-place resize of a sole
// reference) and never frees while the reference is held. The object itself
// (its refcount) is touched only in `release_lent`, on a thread attached to
// the main interpreter.
unsafe impl Send for Lent {}
// SAFETY: as above; shared access reads immutable memory only.
unsafe impl Sync for Lent {}

/// References whose `Lent` was dropped, waiting for the main interpreter.
struct Released(NonNull<ffi::PyObject>);
// SAFETY: the pointer is only carried, and dereferenced (decref'd) in
// `release_lent` on a thread attached to the main interpreter.
unsafe impl Send for Released {}

static RELEASED: Mutex<Vec<Released>> = Mutex::new(Vec::new());
/// How many references wait in `RELEASED` (written under its lock, read without).
static WAITING: AtomicUsize = AtomicUsize::new(0);

fn released() -> std::sync::MutexGuard<'static, Vec<Released>> {
    RELEASED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether this thread is attached to the main interpreter.
pub fn in_main_interpreter(_gil: Gil<'_>) -> bool {
    // SAFETY: attached (token), so there is a current interpreter; the main
    // one exists while any interpreter does. Pointer comparison only.
    unsafe { ffi::PyInterpreterState_Get() == ffi::PyInterpreterState_Main() }
}

impl Lent {
    /// Lends an exact `bytes` or `str` (one that has UTF-8, i.e. no lone
    /// surrogates). `None` for anything else, or when this thread is not
    /// attached to the main interpreter (only main's objects are lent, because
    /// only main releases them).
    pub fn new(gil: Gil<'_>, obj: &Obj) -> Option<Lent> {
        if !in_main_interpreter(gil) {
            return None;
        }
        let (data, len, kind) = match obj.kind() {
            Kind::Bytes => {
                let b = obj.as_bytes(gil).ok()?;
                (b.as_ptr(), b.len(), LentKind::Bytes)
            }
            Kind::Str => match obj.as_str(gil) {
                Ok(s) => (s.as_ptr(), s.len(), LentKind::Str),
                Err(_) => return None, // lone surrogates: the exception is dropped
            },
            _ => return None,
        };
        // `data` lives as long as the object (bytes: inline; str: its data or
        // its cached UTF-8); our own strong reference keeps it alive.
        let obj = obj.clone().into_ptr();
        Some(Lent {
            obj: NonNull::new(obj).expect("live object"),
            data,
            len,
            kind,
        })
    }

    /// The lent memory: the bytes, or the str's UTF-8.
    pub fn data(&self) -> &[u8] {
        // SAFETY: `data[..len]` belongs to the object we hold a strong
        // reference to, is immutable, and is freed only after that reference
        // is released, which happens after `self` is dropped.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }

    pub fn kind(&self) -> LentKind {
        self.kind
    }

    /// A new object of the current interpreter with the same contents
    /// (one copy).
    pub fn to_object(&self, gil: Gil<'_>) -> PyResult<Obj> {
        match self.kind {
            LentKind::Bytes => gil.bytes(self.data()),
            // SAFETY: a `Str` loan's memory came from `PyUnicode_AsUTF8AndSize`,
            // which returns valid UTF-8 (it fails on lone surrogates).
            LentKind::Str => gil.str(unsafe { std::str::from_utf8_unchecked(self.data()) }),
        }
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        // Never decref here: this may be any thread. Main releases it later.
        let mut list = released();
        list.push(Released(self.obj));
        WAITING.store(list.len(), Ordering::Release);
    }
}

impl std::fmt::Debug for Lent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lent({:?}, {} bytes)", self.kind, self.len)
    }
}

impl PartialEq for Lent {
    fn eq(&self, other: &Lent) -> bool {
        self.kind == other.kind && self.data() == other.data()
    }
}

/// Releases the references of every dropped [`Lent`], if this thread is
/// attached to the main interpreter (else does nothing). Cheap when none wait.
pub fn release_lent(gil: Gil<'_>) {
    if WAITING.load(Ordering::Acquire) == 0 || !in_main_interpreter(gil) {
        return;
    }
    let list = {
        let mut guard = released();
        WAITING.store(0, Ordering::Release);
        std::mem::take(&mut *guard)
    };
    for r in list {
        // SAFETY: attached to the main interpreter (checked above), which
        // owns the object; this is the strong reference taken in `Lent::new`,
        // whose `Lent` is gone. Deallocating a bytes or str runs no Python code.
        unsafe { ffi::Py_DECREF(r.0.as_ptr()) };
    }
}
