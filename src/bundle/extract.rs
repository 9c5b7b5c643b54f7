//! The launcher stub's side of a bundle: find the bundle's cache folder,
//! verify and unpack the payload the first time, start quickly afterwards.
//!
//! The stub compiles this file on its own (`#[path]`), so it uses only `std`,
//! `libc`, `tar`, `zstd` and its siblings `cache` and `format`.
//!
//! * The cache folder is `<cache root>/<sha256 of the payload>`, one folder
//!   (an entry) per distinct payload; `cache` says where the root is, how it
//!   is checked before use, how a running copy marks its entry in use, and
//!   what the daily clean-up removes.
//! * The first run hashes the payload, refuses it on a mismatch, unpacks it
//!   into a private temporary folder and renames that into place, so two first
//!   runs at once never see a half-written tree (the loser of the rename
//!   throws its copy away).
//! * Every successful check leaves a stamp `.verified/<dev>-<inode>-<size>-<mtime>-<ctime>`
//!   of the bundle file. A later run whose file still has that stamp skips the
//!   hash; any write to the file changes its ctime (which no user can set
//!   back), so a modified bundle is hashed again and refused.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use super::cache::{self, CacheError, Root};
use super::format::{self, ReadError, Trailer};

/// Inside a cache folder: the file written last before the folder is renamed into place.
pub const COMPLETE: &str = ".parpy-complete";
/// Inside a cache folder: stamps of bundle files whose payload hashed correctly.
pub const VERIFIED: &str = ".verified";

/// Why a bundle cannot run. Each message is one line.
#[derive(Debug)]
pub enum Error {
    NotABundle,
    Damaged(String),
    Corrupt { expected: String, actual: String },
    Cache(String),
    Io(String, io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotABundle => write!(
                f,
                "this is the launcher stub of parpy bundles and it carries no bundle; \
                 build one with `parpy bundle SCRIPT -o APP`"
            ),
            Error::Damaged(why) => write!(f, "refusing to run a damaged bundle: {why}"),
            Error::Corrupt { expected, actual } => write!(
                f,
                "refusing to run: the bundle's payload fails its sha256 check \
                 (expected {expected}, found {actual}); the file is damaged or was modified"
            ),
            Error::Cache(why) => write!(f, "{why}"),
            Error::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl Error {
    /// The exit status for this error: 126 (found but cannot run), like a shell.
    pub fn exit_code(&self) -> u8 {
        126
    }
}

impl From<CacheError> for Error {
    fn from(e: CacheError) -> Self {
        match e {
            CacheError::Refused(why) => Error::Cache(why),
            CacheError::Io(what, e) => Error::Io(what, e),
        }
    }
}

fn io_err(what: impl fmt::Display) -> impl FnOnce(io::Error) -> Error {
    move |e| Error::Io(what.to_string(), e)
}

/// An unpacked, verified bundle, ready to run.
#[derive(Debug)]
pub struct Ready {
    /// The cache folder: the runtime root (`bin/`, `lib/`, `app/`).
    pub dir: PathBuf,
    /// The script's file name inside `app/`.
    pub main: String,
    /// Whether this run hashed the payload (first run, or the file changed).
    pub hashed: bool,
    /// The entry's in-use lock (`cache::Root::use_entry`): the launcher keeps
    /// it open across its `exec`, for as long as the app runs.
    pub lock: File,
    /// How many unused entries the daily clean-up removed, when it ran.
    pub swept: Option<usize>,
}

/// The stamp of a bundle file: changes whenever the file is written or replaced.
fn stamp(m: &fs::Metadata) -> String {
    format!(
        "{:x}-{:x}-{}-{}.{:09}-{}.{:09}",
        m.dev(),
        m.ino(),
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    )
}

/// Makes the bundle in file `exe` ready to run: verifies its payload unless
/// this very file was verified before, unpacks it unless its cache folder
/// exists, and marks that folder in use (see `cache`).
pub fn prepare(exe: &Path) -> Result<Ready, Error> {
    let file = File::open(exe).map_err(io_err(format!("cannot open {}", exe.display())))?;
    let meta = file.metadata().map_err(io_err(exe.display()))?;
    let trailer = match Trailer::read(&file, meta.len()) {
        Ok(t) => t,
        Err(ReadError::NotABundle) => return Err(Error::NotABundle),
        Err(ReadError::Damaged(why)) => return Err(Error::Damaged(why)),
        Err(ReadError::Io(e)) => {
            return Err(Error::Io(format!("cannot read {}", exe.display()), e));
        }
    };
    let hex = trailer.hex();
    let root = Root::open(true)?.ok_or_else(|| Error::Cache("no bundle cache".into()))?;
    let dir = root.path.join(&hex);
    let marker = dir.join(VERIFIED).join(stamp(&meta));
    let origin = fs::read_link(exe).unwrap_or_else(|_| exe.to_path_buf());

    let mut payload = None;
    // A cleaner may remove the entry between our looks: then we unpack it anew.
    for _ in 0..4 {
        if let Some(lock) = root.use_entry(&hex)? {
            if marker.is_file() {
                return finish(&root, dir, &hex, lock, false);
            }
            if dir.join(COMPLETE).is_file() {
                verified(&mut payload, &file, &trailer, exe)?;
                record(&dir, &marker, &origin);
                return finish(&root, dir, &hex, lock, true);
            }
            // A folder without its completion mark: unpacked anew below.
            drop(lock);
        }
        let data = verified(&mut payload, &file, &trailer, exe)?;
        if let Some(lock) = unpack(data, &root, &hex, &origin)? {
            // Best effort: without the stamp, the next run hashes again.
            let _ = File::create(&marker);
            return finish(&root, dir, &hex, lock, true);
        }
        // Another first run put its copy in place first: use that one.
    }
    Err(Error::Cache(format!(
        "cannot keep an unpacked copy in {}: other processes keep removing it",
        dir.display()
    )))
}

/// The payload, read and checked against the trailer's sha256 once.
fn verified<'a>(
    payload: &'a mut Option<Vec<u8>>,
    file: &File,
    trailer: &Trailer,
    exe: &Path,
) -> Result<&'a [u8], Error> {
    if payload.is_none() {
        let data = read_payload(file, trailer)
            .map_err(io_err(format!("cannot read {}", exe.display())))?;
        let actual = format::sha256(&data);
        if actual != trailer.sha256 {
            return Err(Error::Corrupt {
                expected: trailer.hex(),
                actual: format::hex(&actual),
            });
        }
        *payload = Some(data);
    }
    Ok(payload.as_deref().unwrap_or_default())
}

/// Records a successful check of the bundle file (best effort: without the
/// stamp, the next run hashes again).
fn record(dir: &Path, marker: &Path, origin: &Path) {
    let _ = fs::create_dir_all(dir.join(VERIFIED));
    let _ = File::create(marker);
    let _ = fs::write(dir.join(cache::ORIGIN), format!("{}\n", origin.display()));
}

fn read_payload(file: &File, t: &Trailer) -> io::Result<Vec<u8>> {
    let len = usize::try_from(t.len).map_err(|_| io::Error::other("payload too large"))?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, t.offset)?;
    Ok(buf)
}

/// The last steps of a start: the entry's last use is now, the daily
/// clean-up of the others when due, and the manifest.
fn finish(root: &Root, dir: PathBuf, hex: &str, lock: File, hashed: bool) -> Result<Ready, Error> {
    // Best effort: a stale stamp only makes the entry look older.
    let _ = lock.set_modified(std::time::SystemTime::now());
    let swept = root.auto_sweep(hex);
    let path = dir.join(format::MANIFEST);
    let text = fs::read_to_string(&path).map_err(io_err(format!(
        "the unpacked bundle in {} is incomplete (delete that folder to unpack it again)",
        dir.display()
    )))?;
    let main = format::manifest_value(&text, "main")
        .filter(|m| !m.is_empty() && !m.contains('/'))
        .ok_or_else(|| Error::Damaged(format!("{} names no main script", path.display())))?
        .to_string();
    Ok(Ready {
        dir,
        main,
        hashed,
        lock,
        swept,
    })
}

/// Removes a folder when dropped, unless disarmed.
struct Cleanup(Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_dir_all(p);
        }
    }
}

/// Unpacks `payload` into entry `hex` through a temporary sibling folder and
/// one rename, and returns the entry's in-use lock; `None` when another first
/// run put its copy in place first.
fn unpack(payload: &[u8], root: &Root, hex: &str, origin: &Path) -> Result<Option<File>, Error> {
    let dir = root.path.join(hex);
    // Held until the temporary folder is renamed or gone: cleaners leave
    // temporary folders alone while any first run holds it.
    let _unpacking = root.unpack_lock()?;
    let tmp = root.path.join(cache::unique_name("tmp", hex));
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .map_err(io_err(format!("cannot create {}", tmp.display())))?;
    let mut cleanup = Cleanup(Some(tmp.clone()));

    let what = format!("cannot unpack the bundle into {}", tmp.display());
    let decoder = zstd::stream::read::Decoder::with_buffer(payload).map_err(io_err(&what))?;
    let mut archive = tar::Archive::new(decoder);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    unpack_members(&mut archive, &tmp).map_err(io_err(&what))?;
    fs::create_dir(tmp.join(VERIFIED)).map_err(io_err(&what))?;
    // In use from the moment it is in place.
    let lock = cache::create_use_lock(&tmp).map_err(io_err(&what))?;
    fs::write(tmp.join(cache::ORIGIN), format!("{}\n", origin.display())).map_err(io_err(&what))?;
    fs::write(tmp.join(COMPLETE), hex).map_err(io_err(&what))?;

    match fs::rename(&tmp, &dir) {
        Ok(()) => {
            cleanup.0 = None;
            Ok(Some(lock))
        }
        // Another first run finished before us: use its copy, drop ours.
        Err(_) if dir.join(COMPLETE).is_file() => Ok(None),
        Err(e) if dir.exists() => {
            // A leftover without its completion mark (say, a half-deleted
            // cache): move it aside, then take its place.
            let trash = root.path.join(cache::unique_name("trash", hex));
            if fs::rename(&dir, &trash).is_ok() {
                let _ = fs::remove_dir_all(&trash);
            }
            match fs::rename(&tmp, &dir) {
                Ok(()) => {
                    cleanup.0 = None;
                    Ok(Some(lock))
                }
                Err(_) if dir.join(COMPLETE).is_file() => Ok(None),
                Err(_) => Err(Error::Io(
                    format!("cannot move the bundle into {}", dir.display()),
                    e,
                )),
            }
        }
        Err(e) => Err(Error::Io(
            format!("cannot move the bundle into {}", dir.display()),
            e,
        )),
    }
}

/// Unpacks every member of `archive` below `dst`. Unlike `Archive::unpack`,
/// which resolves each member's folder on disk (dozens of `readlink` calls per
/// file), it accepts only plain relative paths of folders and regular files:
/// with no links in the archive, those cannot lead outside `dst`.
fn unpack_members<R: io::Read>(archive: &mut tar::Archive<R>, dst: &Path) -> io::Result<()> {
    let mut made: HashSet<PathBuf> = HashSet::new();
    made.insert(dst.to_path_buf());
    for entry in archive.entries()? {
        let mut entry = entry?;
        let rel = entry.path()?.into_owned();
        let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
        if rel.as_os_str().is_empty() || !plain {
            return Err(io::Error::other(format!("unsafe path {}", rel.display())));
        }
        let path = dst.join(&rel);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                if !made.contains(&path) {
                    fs::create_dir_all(&path)?;
                    made.insert(path);
                }
            }
            tar::EntryType::Regular => {
                if let Some(parent) = path.parent()
                    && !made.contains(parent)
                {
                    fs::create_dir_all(parent)?;
                    made.insert(parent.to_path_buf());
                }
                entry.unpack(&path)?;
            }
            other => {
                return Err(io::Error::other(format!(
                    "{}: unexpected member type {other:?}",
                    rel.display()
                )));
            }
        }
    }
    Ok(())
}

/// The path to show as the app's `sys.argv[0]`: what the user typed when it
/// has a slash (like `python ./app`), else the `PATH` entry that is this file
/// (like a `#!` script found on `PATH`), else the file itself.
pub fn app_path(argv0: &OsStr, exe: &Path) -> PathBuf {
    let p = Path::new(argv0);
    if argv0.as_encoded_bytes().contains(&b'/') {
        return p.to_path_buf();
    }
    let me = fs::metadata(exe).ok();
    if let (Some(me), Some(path)) = (&me, std::env::var_os("PATH")) {
        for d in std::env::split_paths(&path) {
            let cand = d.join(p);
            if let Ok(m) = fs::metadata(&cand)
                && m.dev() == me.dev()
                && m.ino() == me.ino()
            {
                return std::path::absolute(&cand).unwrap_or(cand);
            }
        }
    }
    fs::read_link(exe).unwrap_or_else(|_| exe.to_path_buf())
}
