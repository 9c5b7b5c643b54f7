//! parpy: a `python` replacement that runs functions in parallel on
//! sub-interpreters that each own their GIL (PEP 684).
//!
//! * [`cli`]: parpy's own options, a prefix before python's.
//! * [`launcher`]: the main interpreter, started through CPython's `Py_RunMain`.
//! * [`runtime`]: the worker pool: one own-GIL sub-interpreter per OS thread.
//! * [`transfer`]: moving values between interpreters as plain Rust data.
//! * [`api`]: the `parpy` Python module that scripts import.
//! * [`observe`]: `--stats`, `--timeline`, `--progress` and `PARPY_LOG`.
//! * [`bundle`]: `parpy bundle`, single-file executables of a script and its runtime.
//! * [`check`]: `parpy check`, which of a script's modules run in workers.
//! * [`cluster`]: `parpy worker` and `--cluster`, running scripts on a Dask cluster.
//! * [`ffi`]: the only module with `unsafe` code.

pub mod api;
pub mod bundle;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod ffi;
pub mod launcher;
pub mod observe;
pub mod runtime;
pub mod transfer;

use std::ffi::OsString;

/// The `parpy` command: runs parpy with the process's argv and returns the
/// status to exit with (C's `exit()` keeps the low byte: 256 is 0, -1 is 255).
/// The cargo-built binary's `main` and the wheel's command both end here.
pub fn command_main() -> i32 {
    match run(std::env::args_os().collect()) {
        Ok(code) => (code as u8).into(),
        Err(err) => {
            eprintln!("parpy: {err:#}");
            2
        }
    }
}

/// Runs parpy with a full argv and returns the process exit code.
pub fn run(args: Vec<OsString>) -> anyhow::Result<i32> {
    let cmd = match cli::parse(args) {
        Ok(cmd) => cmd,
        Err(e) => {
            eprintln!("parpy: {e}");
            return Ok(2);
        }
    };
    if cmd.options.help {
        print!("{}", cli::help());
        return Ok(0);
    }
    if cmd.options.version {
        println!(
            "parpy {} (Python {})",
            env!("CARGO_PKG_VERSION"),
            ffi::embed::python_version()
        );
        return Ok(0);
    }
    // `parpy ./bundle`, `parpy ./check` and `parpy ./worker` run scripts of those names.
    let first = cmd
        .python_args
        .first()
        .filter(|_| cmd.options.bundled.is_none());
    if first.is_some_and(|a| a == "bundle") {
        return bundle::create::run(&cmd.python_args[1..]);
    }
    if first.is_some_and(|a| a == "check") {
        return check::run(cmd);
    }
    if first.is_some_and(|a| a == "worker") {
        let args = cmd.python_args[1..].to_vec();
        return cluster::worker::run(cmd, &args);
    }
    launcher::run(cmd)
}
