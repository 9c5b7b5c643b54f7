//! `parpy-bundle-stub`: the launcher at the front of every bundle built by
//! `parpy bundle`.
//!
//! parpy itself links libpython, so it cannot even be loaded where no Python
//! is installed: the dynamic loader refuses it before `main`. This stub links
//! only libc. It verifies and unpacks the bundle's payload into the per-user
//! cache (see `extract`), then replaces itself (`exec`) with the unpacked
//! `bin/parpy`, which finds `../lib/libpython` through its `$ORIGIN` rpath:
//!
//! ```text
//! <cache>/bin/parpy --bundled <app path> <cache>/app/<script> ARGS...
//! ```
//!
//! The descriptor of the runtime's in-use lock (see `cache`) stays open
//! across that `exec`, so the cache clean-up leaves the runtime alone for as
//! long as the app runs.
//!
//! It deliberately does not depend on the parpy library crate, which would
//! bring libpython into its link.

#[allow(dead_code)]
#[path = "cache.rs"]
mod cache;
#[allow(dead_code)]
#[path = "extract.rs"]
mod extract;
#[allow(dead_code)]
#[path = "format.rs"]
mod format;
#[allow(dead_code)]
#[path = "../ffi/os.rs"]
mod os;

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| OsString::from("bundle"));
    let name = argv0.to_string_lossy().into_owned();
    let exe = Path::new("/proc/self/exe");

    let ready = match extract::prepare(exe) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    if std::env::var_os("PARPY_BUNDLE_DEBUG").is_some() {
        eprintln!(
            "{name}: runtime {} ({})",
            ready.dir.display(),
            if ready.hashed {
                "verified now"
            } else {
                "verified before"
            }
        );
        if let Some(n) = ready.swept {
            eprintln!("{name}: daily clean-up of the bundle cache: {n} unused runtime(s) removed");
        }
    }
    // The in-use mark of the runtime lasts as long as the app: its lock
    // stays open in the process that `exec` turns into parpy.
    let _ = cache::keep_across_exec(&ready.lock);
    let parpy = ready.dir.join("bin").join("parpy");
    let script = ready.dir.join("app").join(&ready.main);
    let err = Command::new(&parpy)
        .arg("--bundled")
        .arg(extract::app_path(&argv0, exe))
        .arg(&script)
        .args(args)
        .exec();
    eprintln!(
        "{name}: cannot start the bundled runtime {}: {err} (delete {} to unpack it again)",
        parpy.display(),
        ready.dir.display()
    );
    ExitCode::from(127)
}
