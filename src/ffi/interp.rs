//! Sub-interpreters with their own GIL (PEP 684), one per OS thread.

use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pyo3_ffi as ffi;

use super::object::{Gil, Obj, PyResult};

/// Creates an isolated sub-interpreter with its own GIL on the current thread,
/// runs `f` attached to it, then ends it (waiting for its non-daemon threads).
///
/// The thread must not be attached to any interpreter when calling this. All
/// objects created inside `f` are dropped before the interpreter ends, because
/// `Obj` cannot escape the closure (it is `!Send` and the result must be `Send`).
///
/// The interpreter is published in `slot` while `f` runs, so that other
/// threads can interrupt it ([`InterruptSlot::interrupt`]); it is withdrawn
/// before the interpreter ends.
pub fn run_in_new_interpreter<T: Send>(
    slot: &InterruptSlot,
    f: impl FnOnce(Gil<'_>) -> T,
) -> Result<T, String> {
    let config = ffi::PyInterpreterConfig {
        use_main_obmalloc: 0,
        allow_fork: 0,
        allow_exec: 0,
        allow_threads: 1,
        allow_daemon_threads: 0,
        check_multi_interp_extensions: 1,
        gil: ffi::PyInterpreterConfig_OWN_GIL,
    };
    let mut tstate: *mut ffi::PyThreadState = std::ptr::null_mut();
    // SAFETY: the main interpreter is initialised (the pool only starts from
    // it) and this thread has no thread state; on success the new
    // interpreter's fresh thread state is attached to this thread.
    let status = unsafe { ffi::Py_NewInterpreterFromConfig(&mut tstate, &config) };
    // SAFETY: reading a plain status struct.
    if unsafe { ffi::PyStatus_Exception(status) } != 0 || tstate.is_null() {
        let msg = if status.err_msg.is_null() {
            "unknown error".to_string()
        } else {
            // SAFETY: err_msg points at a static C string.
            unsafe { CStr::from_ptr(status.err_msg) }
                .to_string_lossy()
                .into_owned()
        };
        return Err(format!("could not create a sub-interpreter: {msg}"));
    }
    // SAFETY: attached to the new interpreter (just created on this thread).
    let gil = unsafe { Gil::assume() };
    slot.publish(gil);
    let out = f(gil);
    slot.withdraw(gil);
    // SAFETY: `tstate` is this thread's current state for the interpreter being
    // ended; no object of it is alive outside (see above).
    unsafe { ffi::Py_EndInterpreter(tstate) };
    Ok(out)
}

/// The id of the interpreter this thread is attached to (0 for the main one).
pub fn current_interpreter_id(_gil: Gil<'_>) -> i64 {
    // SAFETY: attached (token), so there is a current interpreter.
    unsafe { ffi::PyInterpreterState_GetID(ffi::PyInterpreterState_Get()) }
}

/// Where a worker's interpreter and thread are, so that another thread can
/// interrupt the Python code it runs.
#[derive(Clone, Copy)]
struct InterpHandle {
    interp: *mut ffi::PyInterpreterState,
    thread_id: u64,
}

// SAFETY: the pointer is only dereferenced by CPython inside
// `InterruptSlot::interrupt`, while the slot's lock guarantees that the
// interpreter is alive (it is withdrawn, under that lock, before it ends).
unsafe impl Send for InterpHandle {}

/// The handle of the interpreter and thread this thread is attached to.
fn current_handle(_gil: Gil<'_>) -> InterpHandle {
    // SAFETY: attached (token), so there is a current thread state and interpreter.
    unsafe {
        let ts = ffi::PyThreadState_Get();
        InterpHandle {
            interp: ffi::PyThreadState_GetInterpreter(ts),
            // The OS-level ident that PyThreadState_SetAsyncExc matches
            // (threading.get_ident()), not the thread state's serial number.
            thread_id: ffi::PyThread_get_thread_ident() as u64,
        }
    }
}

/// Where a worker publishes its interpreter while it lives, for other
/// threads to interrupt what it runs. Filled and emptied by
/// [`run_in_new_interpreter`].
#[derive(Default)]
pub struct InterruptSlot {
    handle: Mutex<Option<InterpHandle>>,
    /// Set, under the target's GIL, when an exception was raised in it.
    sent: AtomicBool,
}

impl InterruptSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<InterpHandle>> {
        self.handle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops an asynchronous exception still pending for this thread (one
    /// that arrived after its task ended), so it cannot hit the next task.
    /// Called by the worker thread of this slot's interpreter.
    pub fn clear_pending(&self, gil: Gil<'_>) {
        // Only after an interrupt: clearing takes a runtime-wide lock.
        if self.sent.swap(false, Ordering::SeqCst) {
            clear_async_exc(gil);
        }
    }

    /// Delivers an asynchronous exception (an interrupt) pending for this
    /// thread, which is blocked in parpy's own Rust code and so runs no
    /// bytecode that would see it. Cheap unless an interrupt was sent: only
    /// then is a tiny expression evaluated, whose start makes CPython raise
    /// what is pending, exactly as between bytecodes (nothing when the task
    /// already saw the exception, or when it was cleared).
    /// Called by the worker thread of this slot's interpreter.
    pub fn deliver_pending(&self, gil: Gil<'_>) -> PyResult<()> {
        if !self.sent.load(Ordering::SeqCst) {
            return Ok(());
        }
        let globals = gil.dict()?;
        // SAFETY: attached (token); the source is a static C string and
        // `globals` a dict we hold for the call. CPython checks its eval
        // breaker (where a pending async exception is flagged) as the code
        // object starts.
        unsafe {
            Obj::result(
                gil,
                ffi::PyRun_StringFlags(
                    c"None".as_ptr(),
                    ffi::Py_eval_input,
                    globals.ptr(),
                    globals.ptr(),
                    std::ptr::null_mut(),
                ),
            )?;
        }
        Ok(())
    }

    fn publish(&self, gil: Gil<'_>) {
        *self.lock() = Some(current_handle(gil));
    }

    /// Detached: an interrupting thread may hold the lock while it waits for
    /// this interpreter's GIL.
    fn withdraw(&self, gil: Gil<'_>) {
        gil.allow_threads(|| self.lock().take());
    }

    /// From a new thread, raises `KeyboardInterrupt` asynchronously in the
    /// published interpreter's worker thread if `still_wanted()` (called while
    /// holding that interpreter's GIL, so between bytecodes) says so. The new
    /// thread waits while a long C call holds that GIL.
    pub fn interrupt(self: &Arc<Self>, still_wanted: impl FnOnce() -> bool + Send + 'static) {
        let slot = Arc::clone(self);
        let _ = std::thread::Builder::new()
            .name("parpy-interrupt".into())
            .spawn(move || {
                if let Some(delay) = test_interrupt_delay() {
                    std::thread::sleep(delay);
                }
                let guard = slot.lock();
                let Some(h) = guard.as_ref() else { return };
                // SAFETY: the handle is published, so its interpreter is alive, and it
                // cannot end while we hold the lock (it is withdrawn under it first).
                // This new thread has no thread state: we attach a fresh one to that
                // interpreter, use it, and delete it.
                unsafe {
                    let ts = ffi::PyThreadState_New(h.interp);
                    if ts.is_null() {
                        return;
                    }
                    ffi::PyEval_RestoreThread(ts);
                    if still_wanted() {
                        ffi::PyThreadState_SetAsyncExc(
                            h.thread_id as _,
                            ffi::PyExc_KeyboardInterrupt,
                        );
                        slot.sent.store(true, Ordering::SeqCst);
                    }
                    ffi::PyThreadState_Clear(ts);
                    ffi::PyThreadState_DeleteCurrent();
                }
            });
    }
}

impl InterruptSlot {
    /// Raises once more, at this thread's next bytecode, an interrupt that
    /// parpy sent and CPython could only report: one that landed in a
    /// `__del__` or a weakref callback, where exceptions are printed as
    /// "Exception ignored" and the task goes on. Returns whether an
    /// interrupt was sent to the running task. Called by the worker thread
    /// of this slot's interpreter.
    pub fn rearm(&self, gil: Gil<'_>) -> bool {
        if !self.sent.load(Ordering::SeqCst) {
            return false;
        }
        let id = current_handle(gil).thread_id;
        // SAFETY: attached (token) to this worker's own interpreter, whose
        // thread state for this very thread is `id`; the exception object is
        // the static KeyboardInterrupt type, valid in every interpreter.
        unsafe {
            ffi::PyThreadState_SetAsyncExc(id as _, ffi::PyExc_KeyboardInterrupt);
        }
        true
    }
}

/// For tests only: `PARPY_TEST_INTERRUPT_DELAY_MS` holds every interrupt
/// back that long before it attaches to its worker, as a busy machine can,
/// so that a test can make the job it was meant for end first.
fn test_interrupt_delay() -> Option<std::time::Duration> {
    static DELAY: std::sync::OnceLock<Option<std::time::Duration>> = std::sync::OnceLock::new();
    *DELAY.get_or_init(|| {
        std::env::var("PARPY_TEST_INTERRUPT_DELAY_MS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(std::time::Duration::from_millis)
    })
}

/// Drops an asynchronous exception pending for this thread.
fn clear_async_exc(gil: Gil<'_>) {
    let id = current_handle(gil).thread_id;
    // SAFETY: attached (token); NULL clears this thread's pending async exception.
    unsafe {
        ffi::PyThreadState_SetAsyncExc(id as _, std::ptr::null_mut());
    }
}
