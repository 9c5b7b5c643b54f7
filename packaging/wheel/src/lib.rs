//! `parpy/_native.so`: the exported symbols of the wheel's extension module.
//! All the code is the parpy library's; this file only names the entry points.

use std::os::raw::c_int;

/// CPython's extension-module entry point (multi-phase: one module per interpreter).
#[unsafe(no_mangle)]
pub extern "C" fn PyInit__native() -> *mut pyo3_ffi::PyObject {
    parpy::api::extension_init()
}

/// The wheel's `parpy` command, called by its launcher once it has loaded the
/// venv's libpython (globally) and this file: runs parpy with the process's
/// argv exactly as the cargo-built binary's `main` does.
#[unsafe(no_mangle)]
pub extern "C" fn parpy_command_main() -> c_int {
    parpy::command_main()
}
