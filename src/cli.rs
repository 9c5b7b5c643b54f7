//! parpy's own command-line options.
//!
//! They form a prefix that CPython never sees: `parpy [parpy options] [python
//! options and arguments…]`. Parsing stops at the first argument that is not a
//! parpy option, so every `python` flag keeps its meaning after it. This
//! matters because `sys.executable` is parpy, and tools such as
//! `multiprocessing` re-run it with python's flags.

use std::ffi::OsString;

use clap::Parser;

/// parpy's options (the part of the command line before python's).
#[derive(Debug, Default, Parser)]
#[command(
    name = "parpy",
    disable_help_flag = true,
    disable_version_flag = true,
    override_usage = "parpy [PARPY OPTIONS] [PYTHON OPTIONS] [script.py | -c CMD | -m MOD | -] [ARGS]...",
    about = "Run Python scripts with true parallelism: own-GIL sub-interpreters on OS threads.",
    after_help = "Every python option (-c, -m, -i, -I, -E, -s, -S, -u, -O, -B, -W, -X, -P, -q, -V, -h …) \
works after parpy's options, exactly as with python3. `parpy -h` shows python's own option list.\n\n\
Packaging:\n  parpy bundle SCRIPT -o APP [--add PATH]... [-r REQS | --venv DIR]\n                    build a single-file executable of SCRIPT and its Python runtime\n                    (`parpy bundle --help`; to run a script named `bundle`, use `parpy ./bundle`)\n  parpy bundle --cache | --clean\n                    list the unpacked bundles, or remove those not in use\n\n\
Checking:\n  parpy check SCRIPT | -m MODULE [--json] [--timeout SECS]\n                    list the modules SCRIPT imports and whether each runs in workers,\n                    refuses sub-interpreters (--fallback) or is not installed; exit 0 when\n                    all run in workers (`parpy check --help`; a script named `check`: `parpy ./check`)\n\n\
Cluster (needs `pip install dask distributed`):\n  parpy worker SCHEDULER [-j N] [--name NAME] [--host HOST]\n                    a Dask worker whose tasks run on N sub-interpreters\n                    (to run a script named `worker`, use `parpy ./worker`)\n  parpy --cluster tcp://HOST:PORT script.py\n                    run the script's parallel calls on every worker of that scheduler\n\n\
Environment:\n  PARPY_WORKERS=N   worker count when -j is not given\n  PARPY_FALLBACK=M  --fallback when it is not given\n  PARPY_PROGRESS=1  --progress\n  PARPY_CLUSTER=ADDR --cluster when it is not given\n  PARPY_LOG=LEVEL   pool events on stderr: info, or debug for more\n  PARPY_BUNDLE_CACHE=DIR where bundles unpack (default ~/.cache/parpy/bundles)\n  PARPY_PYTHON=PATH (build time) the python3.X to build against"
)]
pub struct Options {
    /// Number of worker sub-interpreters in the parallel pool (default: the CPUs this process may use)
    #[arg(short = 'j', long = "workers", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub workers: Option<u32>,

    /// Where tasks go whose modules refuse sub-interpreters (numpy, PyO3 extensions):
    /// worker processes, the main interpreter, or nowhere (raise ImportError)
    #[arg(long, value_name = "MODE", value_parser = ["process", "main", "error"])]
    pub fallback: Option<String>,

    /// Draw a progress bar for every map (unless it says progress=False); also PARPY_PROGRESS=1
    #[arg(long)]
    pub progress: bool,

    /// At exit, print per-pool and per-worker statistics (a table on stderr);
    /// `--stats=json PATH` writes them as JSON instead
    #[arg(long, value_name = "FORMAT", num_args = 0..=1, require_equals = true,
          default_missing_value = "table", value_parser = ["table", "json"])]
    pub stats: Option<String>,

    /// The file of `--stats=json PATH` (set by the parser from the argument after it)
    #[arg(long, value_name = "PATH", hide = true)]
    pub stats_file: Option<OsString>,

    /// Write every task as a span on its worker's track to PATH (Chrome trace
    /// events: open it in Perfetto or chrome://tracing)
    #[arg(long, value_name = "PATH")]
    pub timeline: Option<OsString>,

    /// Run the script's parallel calls on the Dask cluster whose scheduler is at
    /// ADDR (tcp://HOST:PORT or tls://…); also PARPY_CLUSTER
    #[arg(long, value_name = "ADDR")]
    pub cluster: Option<String>,

    /// Print parpy's version and the embedded Python's version, then exit
    #[arg(long)]
    pub version: bool,

    /// Print this help, then exit
    #[arg(long)]
    pub help: bool,

    /// Run as the bundled app APP (set by a bundle's launcher; see src/bundle)
    #[arg(long, value_name = "APP", hide = true)]
    pub bundled: Option<OsString>,
}

/// A parsed command line.
pub struct Command {
    /// parpy's own options.
    pub options: Options,
    /// argv[0] as parpy was started.
    pub argv0: OsString,
    /// Everything from the first non-parpy argument on, for CPython.
    pub python_args: Vec<OsString>,
}

/// An invalid parpy option, with a one-line message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Splits `args` into parpy's prefix and python's arguments, and parses the prefix.
pub fn parse(args: Vec<OsString>) -> Result<Command, UsageError> {
    let mut it = args.into_iter();
    let argv0 = it.next().unwrap_or_else(|| "parpy".into());
    let rest: Vec<OsString> = it.collect();

    let mut prefix: Vec<OsString> = vec!["parpy".into()];
    let mut i = 0;
    while i < rest.len() {
        let a = rest[i].to_string_lossy();
        let takes_value = a == "-j"
            || a == "--workers"
            || a == "--fallback"
            || a == "--bundled"
            || a == "--timeline"
            || a == "--cluster";
        let inline = (a.starts_with("-j") && a.len() > 2)
            || a.starts_with("--workers=")
            || a.starts_with("--fallback=")
            || a.starts_with("--timeline=")
            || a.starts_with("--cluster=")
            || (a.starts_with("--stats=") && a != "--stats=json");
        let flag = a == "--version" || a == "--help" || a == "--progress" || a == "--stats";
        if a == "--stats=json" {
            // `--stats=json PATH`: the file is the next argument.
            prefix.push(rest[i].clone());
            match rest.get(i + 1) {
                Some(path) => prefix.extend(["--stats-file".into(), path.clone()]),
                None => {
                    return Err(UsageError(
                        "--stats=json needs a file: --stats=json PATH".into(),
                    ));
                }
            }
            i += 2;
        } else if takes_value {
            prefix.push(rest[i].clone());
            if let Some(v) = rest.get(i + 1) {
                prefix.push(v.clone());
            }
            i += 2;
        } else if inline || flag {
            prefix.push(rest[i].clone());
            i += 1;
        } else {
            break;
        }
    }
    let python_args = rest[i.min(rest.len())..].to_vec();
    let options = Options::try_parse_from(prefix).map_err(|e| {
        let text = e.render().to_string();
        let first = text
            .lines()
            .next()
            .unwrap_or("invalid option")
            .trim_start_matches("error: ");
        UsageError(first.to_string())
    })?;
    Ok(Command {
        options,
        argv0,
        python_args,
    })
}

/// The help text for `--help`.
pub fn help() -> String {
    use clap::CommandFactory;
    Options::command().render_help().to_string()
}
