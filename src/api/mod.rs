//! The `parpy` Python package. Its native half, `parpy._native` (pools,
//! channels, value transfer), is Rust; its user-facing half (`@parallel`,
//! `Executor`, `Queue`, `__parallel__`) is the Python package in
//! `python/parpy/`. The launcher registers the native half as a built-in
//! module and freezes the package (compiled by build.rs); the wheel makes
//! the same Rust code an extension module and ships the package as source.

mod native;
mod observe;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

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
    // In a plain python's main interpreter (workers only start after it).
    if !launched() && crate::ffi::lent::in_main_interpreter(gil) {
        // Refused as the launcher refuses at start.
        if let Some(why) = crate::ffi::compat::refused_runtime() {
            return Err(crate::ffi::PyErr::new(
                gil,
                crate::ffi::ExcKind::ImportError,
                &format!("parpy: {why}"),
            ));
        }
        // Its script is what __main__ runs (when a file).
        set_script_path(main_script_file(gil));
    }
    module.setattr(
        gil,
        c"SharedBytes",
        &crate::ffi::shared::make_type(gil, module)?,
    )
}

/// The main script's absolute path (leaked: set once or twice per process).
static SCRIPT: std::sync::RwLock<Option<&'static str>> = std::sync::RwLock::new(None);
static LAUNCHED: AtomicBool = AtomicBool::new(false);

/// Whether this process is the parpy launcher (the cargo-built binary or
/// the wheel's command), as opposed to a plain `python` that imported parpy.
pub fn launched() -> bool {
    LAUNCHED.load(Ordering::SeqCst)
}

/// The file `python` is running as `__main__`, made absolute (at parpy's
/// first import, before the script can change directory): None for `-c`,
/// `-m` (a module's spec says how to import it), the REPL and notebooks.
fn main_script_file(gil: Gil<'_>) -> Option<String> {
    let main = gil.import("sys").ok()?.getattr(gil, c"modules").ok()?;
    let main = main
        .getattr(gil, c"get")
        .ok()?
        .call(gil, &[&gil.str("__main__").ok()?])
        .ok()?;
    let spec = main.getattr(gil, c"__spec__").ok();
    if spec.is_some_and(|s| !s.is_none()) {
        return None;
    }
    let file = main.getattr(gil, c"__file__").ok()?;
    let path = Path::new(file.as_str(gil).ok()?);
    path.is_file()
        .then(|| std::path::absolute(path).ok())
        .flatten()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Main interpreter set-up, after CPython initialised and before the program
/// runs: `sys.executable` becomes parpy, and a script that uses the
/// `__parallel__` convention gets parpy imported so its hook is registered.
pub fn setup_main(gil: Gil<'_>, exe: &Path) -> PyResult<()> {
    LAUNCHED.store(true, Ordering::SeqCst);
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
    set_script_path(script.as_ref().map(|p| p.to_string_lossy().into_owned()));
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
    *SCRIPT.read().unwrap_or_else(|e| e.into_inner())
}

/// Records the main script (the launcher's, a plain python's `__main__`
/// file, or the one `python -m parpy` runs), which workers import.
pub(crate) fn set_script_path(path: Option<String>) {
    let leaked = path.map(|p| &*Box::leak(p.into_boxed_str()));
    *SCRIPT.write().unwrap_or_else(|e| e.into_inner()) = leaked;
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
