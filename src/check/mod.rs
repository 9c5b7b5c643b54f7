//! `parpy check`: which modules a script imports, and whether each one loads
//! in parpy's workers (own-GIL sub-interpreters), found without running it.
//!
//! This half reads the command line and starts the main interpreter as
//! `parpy -c` would (same virtualenv, `sys.path` and parpy options), with
//! the Python half, `api/python/parpy_check.py` (compiled by build.rs),
//! installed as the module `_parpy_check`. That half scans the imports with
//! `ast` and imports each module in a fresh 1-worker pool, in a child
//! `parpy check --probe` so that an import that crashes or hangs ends the
//! child, not the check. Its docstring has the details and the exit codes.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Parser;

use crate::cli::Command;
use crate::ffi::{Gil, PyResult};
use crate::launcher;

/// The Python half, compiled by build.rs.
const CODE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/parpy_check.marshal"));

/// What `parpy -c` runs: the Python half's `main`, given the request.
const BOOT: &str = "import sys, _parpy_check; sys.exit(_parpy_check.main(sys.argv[1:]))";

/// `parpy check`'s options.
#[derive(Debug, Parser)]
#[command(
    name = "parpy check",
    disable_version_flag = true,
    override_usage = "parpy [PARPY OPTIONS] check [--json] [--timeout SECS] SCRIPT | -m MODULE | MODULE",
    about = "List the modules that SCRIPT imports (found without running it) and say whether \
             each one runs in parpy's workers, refuses sub-interpreters (its tasks then use \
             --fallback), runs there as pure Python without its C accelerator, or is not installed.",
    after_help = "SCRIPT's imports and those of its local modules (source files in its folder or in \
PYTHONPATH), recursively, are read with `ast`; each other module is imported in a fresh own-GIL \
sub-interpreter made as parpy's workers are, in a child process, so that one that crashes or \
hangs is reported and the check goes on. Standard library modules that run in workers are \
listed on one line.\n\n\
Exit status: 0 when every module runs in workers; 1 when one refuses, runs as pure Python \
there, is not installed (unless imported inside try/except ImportError), fails to import, \
crashes or hangs; 2 when the check cannot run (usage, no such script, a script that does \
not compile).\n\n\
parpy's own options go before `check` (`parpy --fallback=main check app.py`); run with the \
virtualenv that the script uses (activated, or VIRTUAL_ENV=DIR)."
)]
pub struct Args {
    /// The script to check; a module name (`parpy check numpy`) checks that module as -m does
    #[arg(value_name = "SCRIPT", required_unless_present_any = ["module", "probe"],
          conflicts_with = "module")]
    pub target: Option<OsString>,

    /// Check the module that `parpy -m MODULE` runs (a local one is scanned, another probed)
    #[arg(short = 'm', value_name = "MODULE")]
    pub module: Option<String>,

    /// Print the result as JSON instead of a table
    #[arg(long)]
    pub json: bool,

    /// Seconds that one module's import may take before it counts as hung
    #[arg(long, value_name = "SECS", default_value_t = 30.0,
          value_parser = positive_seconds)]
    pub timeout: f64,

    /// The probe process (started by `parpy check` itself)
    #[arg(long, hide = true)]
    pub probe: bool,
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

/// What to check, as the Python half takes it.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Script(PathBuf),
    Module(String),
    Probe,
}

/// Runs `parpy check ARGS...` (`cmd.python_args` starts with `check`) and
/// returns the exit code.
pub fn run(cmd: Command) -> Result<i32> {
    let mut argv = vec![OsString::from("parpy check")];
    argv.extend(cmd.python_args.iter().skip(1).cloned());
    let args = match Args::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return Ok(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let target = match target(&args) {
        Ok(t) => t,
        Err(msg) => {
            eprintln!("parpy: check: {msg}");
            return Ok(2);
        }
    };
    let (mode, what): (&str, OsString) = match target {
        Target::Script(p) => ("script", p.into_os_string()),
        Target::Module(m) => ("module", m.into()),
        Target::Probe => ("probe", OsString::new()),
    };
    let fmt = if args.json { "json" } else { "table" };
    let python_args = vec![
        OsString::from("-c"),
        BOOT.into(),
        mode.into(),
        what,
        fmt.into(),
        args.timeout.to_string().into(),
    ];
    let cmd = Command { python_args, ..cmd };
    launcher::run_with(cmd, install)
}

/// What `args` asks to check: a file is a script (a folder, its
/// `__main__.py`, as python runs it); a dotted name that is no file is a
/// module. Else a one-line reason.
fn target(args: &Args) -> Result<Target, String> {
    if args.probe {
        return Ok(Target::Probe);
    }
    if let Some(m) = &args.module {
        return Ok(Target::Module(m.clone()));
    }
    let t = args.target.as_deref().unwrap_or_default();
    let path = Path::new(t);
    if path.is_file() {
        return Ok(Target::Script(path.to_path_buf()));
    }
    if path.is_dir() {
        let main = path.join("__main__.py");
        return if main.is_file() {
            Ok(Target::Script(main))
        } else {
            Err(format!("can't find '__main__.py' in '{}'", path.display()))
        };
    }
    match t.to_str() {
        Some(name) if is_module_name(name) => Ok(Target::Module(name.to_owned())),
        _ => Err(format!(
            "can't open file '{}': No such file or directory",
            path.display()
        )),
    }
}

/// `a.b.c` where each part is a Python identifier (ASCII letters, digits,
/// `_`; non-ASCII letters taken as is), not ending in `.py`.
fn is_module_name(s: &str) -> bool {
    !s.ends_with(".py")
        && s.split('.').all(|part| {
            part.chars().next().is_some_and(|c| !c.is_ascii_digit())
                && part.chars().all(|c| c == '_' || c.is_alphanumeric())
        })
}

/// Makes the Python half importable as `_parpy_check` in the main interpreter.
fn install(gil: Gil<'_>) -> PyResult<()> {
    let name = gil.str("_parpy_check")?;
    let module = gil
        .import("types")?
        .getattr(gil, c"ModuleType")?
        .call(gil, &[&name])?;
    let dict = module.getattr(gil, c"__dict__")?;
    dict.dict_set(gil, &gil.str("__builtins__")?, &gil.import("builtins")?)?;
    gil.exec_marshalled(CODE, &dict)?;
    gil.import("sys")?
        .getattr(gil, c"modules")?
        .dict_set(gil, &name, &module)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names() {
        for ok in ["numpy", "a.b_c.d2", "_x", "é"] {
            assert!(is_module_name(ok), "{ok}");
        }
        for bad in ["", "a..b", "2a", "a-b", "app.py", "./x", "a/b", ".a"] {
            assert!(!is_module_name(bad), "{bad}");
        }
    }
}
