//! Sub-interpreters with their own GIL (PEP 684), one per OS thread.

use std::ffi::CStr;

use pyo3_ffi as ffi;

use super::object::Gil;

/// Creates an isolated sub-interpreter with its own GIL on the current thread,
/// runs `f` attached to it, then ends it (waiting for its non-daemon threads).
///
/// The thread must not be attached to any interpreter when calling this. All
/// objects created inside `f` are dropped before the interpreter ends, because
/// `Obj` cannot escape the closure (it is `!Send` and the result must be `Send`).
pub fn run_in_new_interpreter<T: Send>(f: impl FnOnce(Gil<'_>) -> T) -> Result<T, String> {
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
    let out = f(unsafe { Gil::assume() });
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
pub struct InterpHandle {
    interp: *mut ffi::PyInterpreterState,
    thread_id: u64,
}

// SAFETY: the pointer is only dereferenced by CPython inside `interrupt`,
// which the owner guarantees to call only while the interpreter is alive
// (the worker withdraws its handle before ending the interpreter).
unsafe impl Send for InterpHandle {}
// SAFETY: as above; the handle is read-only data.
unsafe impl Sync for InterpHandle {}

/// The handle of the interpreter and thread this thread is attached to.
pub fn current_handle(_gil: Gil<'_>) -> InterpHandle {
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

/// Raises `KeyboardInterrupt` asynchronously in the handle's thread, if
/// `still_wanted()` (called while holding that interpreter's GIL, so the
/// thread is between bytecodes) says so. Blocks while that interpreter's
/// GIL is held by a long C call. Returns whether the exception was set.
///
/// # Safety
/// The interpreter of `h` must stay alive for the whole call, and this
/// thread must not be attached to any interpreter.
pub unsafe fn interrupt(h: &InterpHandle, still_wanted: impl FnOnce() -> bool) -> bool {
    // SAFETY: per the contract the interpreter is alive and this thread has
    // no thread state; we attach a fresh one, use it, and delete it.
    unsafe {
        let ts = ffi::PyThreadState_New(h.interp);
        if ts.is_null() {
            return false;
        }
        ffi::PyEval_RestoreThread(ts);
        let set = still_wanted()
            && ffi::PyThreadState_SetAsyncExc(h.thread_id as _, ffi::PyExc_KeyboardInterrupt) > 0;
        ffi::PyThreadState_Clear(ts);
        ffi::PyThreadState_DeleteCurrent();
        set
    }
}

/// Drops an asynchronous exception still pending for this thread (one that
/// arrived after its task ended), so it cannot hit the next task.
pub fn clear_async_exc(gil: Gil<'_>) {
    let id = current_handle(gil).thread_id;
    // SAFETY: attached (token); NULL clears this thread's pending async exception.
    unsafe {
        ffi::PyThreadState_SetAsyncExc(id as _, std::ptr::null_mut());
    }
}
