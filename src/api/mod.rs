//! The `parpy` Python module: a built-in module whose native half (pools,
//! channels, value transfer) is Rust and whose user-facing half
//! (`@parallel`, `Executor`, `Queue`, `__parallel__`) is Python source
//! embedded in the binary (`python/parpy.py`).

mod native;
mod observe;

use std::path::Path;
use std::sync::OnceLock;

use crate::ffi::module::{self, ModuleSpec};
use crate::ffi::{Gil, Obj, PyResult};

pub use native::{died_of_sigint, exit_code_override};

/// The Python half of the module (`python/parpy.py`), compiled by build.rs.
const CODE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/parpy.marshal"));

static SPEC: ModuleSpec = ModuleSpec {
    functions: native::FUNCTIONS,
    exec: exec_module,
};

/// Registers `parpy` as a built-in module of every interpreter.
pub fn register() {
    module::register(&SPEC);
}

fn exec_module(gil: Gil<'_>, module: &Obj) -> PyResult<()> {
    let dict = module.getattr(gil, c"__dict__")?;
    // Code run from a dict without __builtins__ cannot import (PyImport_Import looks there).
    dict.dict_set(gil, &gil.str("__builtins__")?, &gil.import("builtins")?)?;
    module.setattr(
        gil,
        c"SharedBytes",
        &crate::ffi::shared::make_type(gil, module)?,
    )?;
    gil.exec_marshalled(CODE, &dict)
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
