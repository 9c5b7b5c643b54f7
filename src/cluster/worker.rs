//! `parpy worker SCHEDULER [-j N] [--name NAME] [--host HOST]`: the main
//! interpreter runs a `distributed.Worker` (see `parpy_cluster.worker_main`)
//! whose Dask threads hand each task to this process's sub-interpreters.

use std::ffi::OsString;

use crate::cli::Command;

/// What the main interpreter runs; the worker's own arguments follow in `sys.argv[1:]`.
const BOOTSTRAP: &str = "import parpy; parpy._cluster().worker_main()";

/// Runs `parpy worker ARGS…` (`args` are the words after `worker`).
pub fn run(mut cmd: Command, args: &[OsString]) -> anyhow::Result<i32> {
    let mut python_args: Vec<OsString> = vec!["-c".into(), BOOTSTRAP.into()];
    python_args.extend(args.iter().cloned());
    // The pool itself never falls back: its one function (the chunk runner)
    // would be sent to the fallback for every script at once. A refused chunk
    // comes back to the worker, which runs it in a fallback process that
    // loaded that chunk's script (`--fallback` chooses whether it does).
    let mode = cmd.options.fallback.replace("error".into());
    if let Some(mode) = mode {
        python_args.extend(["--fallback".into(), mode.into()]);
    }
    cmd.python_args = python_args;
    super::address::disable();
    crate::launcher::run(cmd)
}
