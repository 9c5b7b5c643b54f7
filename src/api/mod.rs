//! The `parpy` Python package. Its native half, `parpy._native` (pools,
//! channels, value transfer), is Rust; its user-facing half (`@parallel`,
//! `Executor`, `Queue`, `__parallel__`) is the Python package in
//! `python/parpy/`. The launcher registers the native half as a built-in
//! module and freezes the package (compiled by build.rs); the wheel makes
//! the same Rust code an extension module and ships the package as source.

mod native;
mod observe;

use std::path::Path;
use std::sync::OnceLock;

use crate::ffi::module::{self, FrozenModule, ModuleSpec};
use crate::ffi::{Gil, Obj, PyResult};

pub use native::{died_of_sigint, exit_code_override};

// `FROZEN`: the package's modules (`python/parpy/`), compiled by build.rs.
include!(concat!(env!("OUT_DIR"), "/frozen_parpy.rs"));

static SPEC: ModuleSpec = ModuleSpec {
    functions: native::FUNCTIONS,
    exec: exec_module,
};

/// Makes `parpy` importable in every interpreter: `parpy._native` built in,
/// the package frozen.
pub fn register() {
    module::register(&SPEC);
    module::register_frozen(FROZEN);
}

/// `PyInit__native` of the wheel's extension module.
pub fn extension_init() -> *mut pyo3_ffi::PyObject {
    module::extension_init(&SPEC)
}

fn exec_module(gil: Gil<'_>, module: &Obj) -> PyResult<()> {
    module.setattr(
        gil,
        c"SharedBytes",
        &crate::ffi::shared::make_type(gil, module)?,
    )
}

static SCRIPT: OnceLock<Option<String>> = OnceLock::new();

/// Main interpreter set-up, after CPython initialised and before the program
/// runs: `sys.executable` becomes parpy, and a script that uses the
/// `__parallel__` convention gets parpy imported so its hook is registered.
pub fn setup_main(gil: Gil<'_>, exe: &Path) -> PyResult<()> {
    let sys = gil.import("sys")?;
    sys.setattr(gil, c"executable", &gil.str(&exe.to_string_lossy())?)?;

    // The script is sys.argv[0] when it names a file (not -c, -m, - or the REPL).
    let argv = sys.getattr(gil, c"argv")?;
    let first = argv.seq_items().into_iter().next();
    let script = match first {
        Some(a) => {
            let a = a.as_str(gil)?.to_owned();
            let p = Path::new(&a);
            (!a.is_empty() && a != "-c" && a != "-m" && a != "-" && p.is_file())
                .then(|| std::path::absolute(p).ok())
                .flatten()
        }
        None => None,
    };
    let _ = SCRIPT.set(script.as_ref().map(|p| p.to_string_lossy().into_owned()));
    if crate::cluster::address::get().is_some() {
        // --cluster: connect before the script runs (a failure is one line, exit 2).
        let cluster = gil
            .import("parpy")?
            .getattr(gil, c"_cluster")?
            .call(gil, &[])?;
        cluster.getattr(gil, c"start_from_cli")?.call(gil, &[])?;
    }
    if let Some(path) = &script
        && std::fs::read(path).is_ok_and(|src| contains(&src, b"__parallel__"))
    {
        gil.import("parpy")?;
    }
    Ok(())
}

/// The script file the main interpreter runs, made absolute at start-up.
pub(crate) fn script_path() -> Option<&'static str> {
    SCRIPT.get().and_then(|s| s.as_deref())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
