//! The main interpreter: starts CPython exactly as `python` would, with parpy's
//! built-in module registered and `sys.executable` pointing at parpy.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::cli::Command;
use crate::ffi::embed::{MainConfig, run_main};
use crate::ffi::{Gil, PyResult};
use crate::{api, bundle, observe, runtime};

/// Runs the program described by `cmd` and returns its exit code.
pub fn run(cmd: Command) -> Result<i32> {
    run_with(cmd, |_| Ok(()))
}

/// [`run`], with `setup` run in the main interpreter after parpy's own
/// set-up, before the program (`parpy check` installs its Python half there).
pub fn run_with(cmd: Command, setup: impl FnOnce(Gil<'_>) -> PyResult<()>) -> Result<i32> {
    if let Some(why) = crate::ffi::compat::refused_runtime() {
        eprintln!("parpy: {why}.");
        return Ok(1);
    }
    let workers = match cmd.options.workers {
        Some(n) => Some(n as usize),
        None => runtime::workers_from_env().map_err(anyhow::Error::msg)?,
    };
    runtime::set_default_workers(workers);
    runtime::set_fallback(cmd.options.fallback.as_deref()).map_err(anyhow::Error::msg)?;
    observe::log::set_level(observe::log::level_from_env().map_err(anyhow::Error::msg)?);
    observe::configure(observe_settings(&cmd)?);
    observe::finish_at_exit();
    crate::cluster::address::init(cmd.options.cluster.as_deref());

    let exe = resolve_executable(&cmd.argv0).context("cannot locate the parpy executable")?;
    // A bundled app (started by its bundle's launcher) runs on the runtime it carries.
    let bundle = match &cmd.options.bundled {
        Some(app) => Some(bundle::Launch::new(app.clone(), &exe)?),
        None => None,
    };
    // CPython finds a virtualenv (pyvenv.cfg) next to the executable it is told
    // about. An activated venv whose bin/ does not hold parpy is announced only
    // by VIRTUAL_ENV, so let CPython compute paths as that venv's python would.
    let path_exe = activated_venv(&exe)
        .filter(|_| bundle.is_none())
        .map(|venv| venv.join("bin").join("python3"));

    let mut argv = Vec::with_capacity(cmd.python_args.len() + 1);
    argv.push(cmd.argv0.clone());
    argv.extend(cmd.python_args.iter().cloned());

    api::register();
    let config = MainConfig {
        argv: &argv,
        executable: Some(path_exe.as_deref().unwrap_or(&exe)),
        home: bundle.as_ref().map(bundle::Launch::home),
    };
    let code = run_main(&config, |gil| {
        api::setup_main(gil, &exe)?;
        bundle.as_ref().map_or(Ok(()), |b| b.setup(gil))?;
        setup(gil)
    });
    // Every pool has ended (parpy's atexit hook joined them): report.
    observe::finish();
    if api::died_of_sigint() && code != 0 {
        return Ok(crate::ffi::embed::exit_by_sigint());
    }
    // `__parallel__` runs after the script body, when its exit code is fixed.
    Ok(match api::exit_code_override() {
        Some(c) if code == 0 => c,
        _ => code,
    })
}

/// What `--stats`, `--timeline`, `--progress` and `PARPY_PROGRESS` ask for.
fn observe_settings(cmd: &Command) -> Result<observe::Settings> {
    let o = &cmd.options;
    // Made absolute now: the reports are written at exit, after the script
    // may have changed its working directory.
    let absolute = |p: &OsString| std::path::absolute(p).unwrap_or_else(|_| PathBuf::from(p));
    let stats = match (o.stats.as_deref(), &o.stats_file) {
        (None, _) => None,
        (Some("json"), Some(path)) => Some(observe::StatsOut::Json(absolute(path))),
        (Some("json"), None) => anyhow::bail!("--stats=json needs a file: --stats=json PATH"),
        (Some(_), _) => Some(observe::StatsOut::Table),
    };
    let progress_env = std::env::var("PARPY_PROGRESS").map(|v| {
        !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "" | "0" | "false" | "no" | "off"
        )
    });
    Ok(observe::Settings {
        stats,
        timeline: o.timeline.as_ref().map(absolute),
        progress: o.progress || progress_env.unwrap_or(false),
    })
}

/// The path of the running parpy as `python` would compute `sys.executable`:
/// argv[0] made absolute when it has a slash (symlinks kept, so a parpy linked
/// into a venv's bin/ finds that venv), else the PATH entry that is this very
/// binary, else the kernel's idea of it.
///
/// A link to a parpy that lives in a venv (pipx links the wheel's command
/// into ~/.local/bin from its venv), from a directory of no venv, is the
/// venv's parpy: that is where `pyvenv.cfg` is found.
fn resolve_executable(argv0: &OsString) -> Result<PathBuf> {
    let real = std::env::current_exe()?;
    let p = Path::new(argv0);
    let found = if argv0.to_string_lossy().contains('/') {
        Some(std::path::absolute(p)?)
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(p))
                .find(|cand| same_file(cand, &real))
                .and_then(|cand| std::path::absolute(cand).ok())
        })
    };
    Ok(match found {
        Some(exe) if in_venv(&exe) || !in_venv(&real) => exe,
        _ => real,
    })
}

/// Whether `exe` sits in a venv's `bin/` (or its root), as CPython looks for `pyvenv.cfg`.
fn in_venv(exe: &Path) -> bool {
    let Some(dir) = exe.parent() else {
        return false;
    };
    dir.join("pyvenv.cfg").is_file() || dir.parent().is_some_and(|d| d.join("pyvenv.cfg").is_file())
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// The venv named by `VIRTUAL_ENV`, unless parpy itself lives in a venv
/// (whose pyvenv.cfg CPython finds on its own).
fn activated_venv(exe: &Path) -> Option<PathBuf> {
    let venv = PathBuf::from(std::env::var_os("VIRTUAL_ENV")?);
    if !venv.join("pyvenv.cfg").is_file() {
        return None;
    }
    (!in_venv(exe)).then_some(venv)
}
