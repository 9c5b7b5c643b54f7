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
            unsafe { CStr::from_ptr(status.err_msg) }.to_string_lossy().into_owned()
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

/// An identifier for the current OS thread's Python thread state, usable to
/// interrupt it with an asynchronous exception later.
pub fn current_thread_id(_gil: Gil<'_>) -> u64 {
    // SAFETY: attached (token), so there is a current thread state.
    unsafe { ffi::PyThreadState_GetID(ffi::PyThreadState_Get()) as u64 }
}

/// The id of the interpreter this thread is attached to (0 for the main one).
pub fn current_interpreter_id(_gil: Gil<'_>) -> i64 {
    // SAFETY: attached (token), so there is a current interpreter.
    unsafe { ffi::PyInterpreterState_GetID(ffi::PyInterpreterState_Get()) }
}
