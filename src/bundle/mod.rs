//! Single-file app bundles.
//!
//! * [`create`]: `parpy bundle SCRIPT -o APP`, which writes the bundle.
//! * [`format`]: the file layout: launcher stub, payload, trailer.
//! * [`extract`]: what the launcher stub (`stub.rs`, the `parpy-bundle-stub`
//!   binary) does at start: verify, unpack into the per-user cache, reuse.
//! * [`cache`]: that cache: where, trust checks, in-use locks, clean-up
//!   (also `parpy bundle --cache` and `--clean`).
//! * [`Launch`]: the last step, inside the unpacked parpy, which the stub
//!   starts as `parpy --bundled APP <cache>/app/SCRIPT ARGS...`.

pub mod cache;
pub mod create;
pub mod extract;
pub mod format;

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};

use crate::ffi::{Gil, PyResult};
// For `cache`, which the launcher stub compiles in too, with its own `os`.
use crate::ffi::os;

/// A run of a bundled app (`parpy --bundled APP script args…`).
pub struct Launch {
    app: OsString,
    home: PathBuf,
}

impl Launch {
    /// `exe` is the unpacked `<cache>/bin/parpy`; `app` is the bundle file as
    /// its user named it, which becomes `sys.argv[0]`.
    pub fn new(app: OsString, exe: &Path) -> Result<Launch> {
        let home = exe
            .parent()
            .and_then(Path::parent)
            .filter(|h| h.join("lib").is_dir())
            .ok_or_else(|| {
                anyhow!(
                    "--bundled is for bundles: {} is not inside an unpacked bundle",
                    exe.display()
                )
            })?;
        Ok(Launch {
            app,
            home: home.to_path_buf(),
        })
    }

    /// The runtime's prefix (`PyConfig.home`): the unpacked bundle, whatever
    /// `PYTHONHOME` says, so the app never mixes in another Python's library.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Runs after CPython started and parpy's own set-up, before the script:
    /// `sys.argv[0]` becomes the app's path, as `python` shows for a script
    /// named like the app. Workers copy `sys.argv` and `sys.path` from here.
    pub fn setup(&self, gil: Gil<'_>) -> PyResult<()> {
        let sys = gil.import("sys")?;
        let argv = sys.getattr(gil, c"argv")?;
        let fsdecode = gil.import("os")?.getattr(gil, c"fsdecode")?;
        let app = fsdecode.call(gil, &[&gil.bytes(self.app.as_bytes())?])?;
        argv.getattr(gil, c"__setitem__")?
            .call(gil, &[&gil.int(0)?, &app])?;
        Ok(())
    }
}
