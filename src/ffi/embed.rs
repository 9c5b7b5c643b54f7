//! Starting and running the main interpreter through CPython's own `Py_RunMain`.

use std::ffi::{CStr, CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use pyo3_ffi as ffi;

use super::object::{Gil, PyResult};

/// How the main interpreter is started.
pub struct MainConfig<'a> {
    /// The full `argv`, as `python` would receive it (argv[0] first).
    pub argv: &'a [OsString],
    /// The executable path that CPython computes `sys.prefix` and virtualenv
    /// detection from; `None` lets CPython derive it from argv[0].
    pub executable: Option<&'a Path>,
    /// The Python prefix (`PyConfig.home`, as `PYTHONHOME` would set it) for
    /// the standard library; `None` lets CPython search from the executable.
    pub home: Option<&'a Path>,
}

/// The version string of the CPython that parpy runs, e.g. `3.13.0 (main, …)`.
pub fn python_version() -> String {
    // SAFETY: Py_GetVersion returns a static string and may be called before
    // the interpreter is initialised.
    unsafe { CStr::from_ptr(ffi::Py_GetVersion()) }
        .to_string_lossy()
        .into_owned()
}

/// Initialises the main interpreter from `cfg`, runs `setup` in it, then runs
/// the program as `python` would (script, `-c`, `-m`, REPL…) and finalises.
/// Returns the process exit code.
pub fn run_main(cfg: &MainConfig<'_>, setup: impl FnOnce(Gil<'_>) -> PyResult<()>) -> i32 {
    let args: Vec<CString> = cfg
        .argv
        .iter()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_else(|_| CString::new("?").unwrap()))
        .collect();
    let mut argv: Vec<*const std::os::raw::c_char> = args.iter().map(|a| a.as_ptr()).collect();

    // SAFETY: single-threaded start-up on the main thread; `config` is
    // initialised by PyConfig_InitPythonConfig before any other use and cleared
    // once; `argv` outlives the calls that read it.
    unsafe {
        let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::zeroed();
        ffi::PyConfig_InitPythonConfig(config.as_mut_ptr());
        let mut config = config.assume_init();

        let status = ffi::PyConfig_SetBytesArgv(&mut config, argv.len() as _, argv.as_mut_ptr());
        if let Some(code) = status_exit(&mut config, status) {
            return code;
        }
        if let Some(exe) = cfg.executable {
            let c = CString::new(exe.as_os_str().as_bytes()).unwrap_or_default();
            let status =
                ffi::PyConfig_SetBytesString(&mut config, &mut config.executable, c.as_ptr());
            if let Some(code) = status_exit(&mut config, status) {
                return code;
            }
        }
        if let Some(home) = cfg.home {
            let c = CString::new(home.as_os_str().as_bytes()).unwrap_or_default();
            let status = ffi::PyConfig_SetBytesString(&mut config, &mut config.home, c.as_ptr());
            if let Some(code) = status_exit(&mut config, status) {
                return code;
            }
        }
        let status = ffi::Py_InitializeFromConfig(&config);
        if let Some(code) = status_exit(&mut config, status) {
            return code;
        }
        ffi::PyConfig_Clear(&mut config);
    }

    // SAFETY: Py_InitializeFromConfig succeeded, so this (main) thread is
    // attached to the main interpreter.
    let gil = unsafe { Gil::assume() };
    if let Err(err) = setup(gil) {
        eprintln!("parpy: start-up hook failed:");
        err.print(gil);
    }
    // SAFETY: initialised and attached; Py_RunMain runs the program and finalises.
    unsafe { ffi::Py_RunMain() }
}

/// Handles a start-up status: `None` to go on, `Some(code)` to exit with.
/// An error status prints CPython's fatal message and exits, like `python`.
///
/// # Safety
/// `config` was initialised by `PyConfig_InitPythonConfig`.
unsafe fn status_exit(config: &mut ffi::PyConfig, status: ffi::PyStatus) -> Option<i32> {
    // SAFETY: forwarded from the caller; PyStatus is a plain struct.
    unsafe {
        if ffi::PyStatus_Exception(status) == 0 {
            return None;
        }
        ffi::PyConfig_Clear(config);
        if ffi::PyStatus_IsExit(status) != 0 {
            return Some(status.exitcode);
        }
        ffi::Py_ExitStatusException(status)
    }
}

/// Ends the process the way CPython does after an unhandled
/// `KeyboardInterrupt`: by SIGINT with its default action, so the parent
/// (a shell) sees death by signal. Returns 130 if the signal did not end it.
pub fn exit_by_sigint() -> i32 {
    // SAFETY: plain libc calls on this process; no interpreter state is touched.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::kill(libc::getpid(), libc::SIGINT);
    }
    130
}

/// Ends the process now with `code`, after flushing C's stdio buffers (no
/// further exit handlers run: for a hook of [`at_process_exit`]).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: plain libc calls; CPython has finalized (the caller's context).
    unsafe {
        libc::fflush(std::ptr::null_mut());
        libc::_exit(code)
    }
}

/// Runs `hook` when the process exits through `exit()`: after `main`
/// returns, and also when CPython ends the process itself (`Py_Exit`, which
/// `sys.exit()` in `-c` code or a script reaches through `PyErr_Print`,
/// never returns to us).
pub fn at_process_exit(hook: extern "C" fn()) {
    // SAFETY: atexit(3) only records the pointer; `hook` is a plain
    // function that touches no interpreter state (it runs after CPython
    // finalized, on whatever thread calls exit()).
    unsafe {
        libc::atexit(hook);
    }
}
