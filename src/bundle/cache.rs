//! The cache of unpacked bundles: where it is, whether it can be trusted,
//! which of its entries are in use, and what is removed when.
//!
//! Shared by the launcher stub, which compiles this file on its own
//! (`#[path]`; it uses only `std`, `libc` and its sibling `format`), and by
//! `parpy bundle --cache` and `--clean`.
//!
//! ```text
//! <root>/             $PARPY_BUNDLE_CACHE, else $XDG_CACHE_HOME/parpy/bundles,
//!                     else ~/.cache/parpy/bundles, else /tmp/parpy-<uid>/bundles
//!   .parpy-lock       a first run holds a shared flock on it while it unpacks;
//!                     its mtime is the last automatic clean-up
//!   <sha256>/         one unpacked bundle, an "entry"
//!     .parpy-use      every running copy holds a shared flock on it for as long as
//!                     the app runs; its mtime is the last start ("last use")
//!     .parpy-origin   the bundle file that last verified the entry (for `--cache`)
//!     .parpy-complete, .verified/, bin/, lib/, app/, parpy-bundle.txt
//!   .tmp-…/           a first run's unpacking, renamed to <sha256> when complete
//!   .trash-…/         an entry or a leftover on its way out
//! ```
//!
//! * **Trust.** Every start checks the root: the folders it creates are 0700;
//!   the root must be a folder of the current (effective) user that no one
//!   else can write; every folder above it must belong to that user or to root
//!   and be writable by no one else (sticky folders such as /tmp, and
//!   group-writable folders of the user's own, excepted); a symbolic link on
//!   the way must belong to the user or to root. An entry must be a folder of
//!   the user (or the user's own link to one) that no one else can write.
//! * **In use.** A starting copy takes a shared `flock` on its entry's
//!   `.parpy-use` *before* it trusts the entry, and the launcher keeps that
//!   descriptor open across its `exec` (no `FD_CLOEXEC`), so the lock lasts as
//!   long as the app (and children that inherit it, such as `fork`s). A cleaner
//!   takes an exclusive lock without waiting; if it gets it, it checks that the
//!   file is still its entry's, renames the entry to `.trash-…`, unlocks and
//!   deletes. A copy that was waiting for its shared lock meanwhile sees that
//!   its file moved, and looks again (and unpacks anew).
//! * **Temporary folders.** A first run holds a shared lock on the root's
//!   `.parpy-lock` from before it creates its `.tmp-…` folder until that is
//!   renamed into place (or dropped). A cleaner that gets an exclusive lock on
//!   it knows that no first run is unpacking, so every `.tmp-…` is the leftover
//!   of a killed one; otherwise it leaves them for later.
//! * **Policy.** A bundle's start runs the automatic clean-up at most once a
//!   day (by the root's `.parpy-lock` mtime): it removes the entries unused for
//!   [`MAX_UNUSED`] (30 days) that no copy is running, never the starting
//!   one, and the leftovers. `parpy bundle --clean` removes every entry not in
//!   use, whatever its age.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{format, os};

/// The environment variable that names the cache folder itself.
pub const ENV: &str = "PARPY_BUNDLE_CACHE";
/// Inside an entry: the in-use lock; its mtime is the last start.
pub const USE: &str = ".parpy-use";
/// Inside an entry: the path of the bundle file that last verified it.
pub const ORIGIN: &str = ".parpy-origin";
/// Inside the root: shared-locked by unpacking first runs; its mtime is the
/// last automatic clean-up.
pub const ROOT_LOCK: &str = ".parpy-lock";
/// Entries unused for this long are removed by the automatic clean-up.
pub const MAX_UNUSED: Duration = Duration::from_secs(30 * 24 * 3600);
/// The automatic clean-up runs at most this often.
pub const SWEEP_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Why the cache cannot be used. Each message is one line.
#[derive(Debug)]
pub enum CacheError {
    /// The cache (or an entry) is not safe to use.
    Refused(String),
    Io(String, io::Error),
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheError::Refused(why) => write!(f, "{why}"),
            CacheError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

fn io_err(what: impl fmt::Display) -> impl FnOnce(io::Error) -> CacheError {
    move |e| CacheError::Io(what.to_string(), e)
}

/// The effective user id, whose cache this is.
pub fn euid() -> u32 {
    os::euid()
}

/// The cache folder (the root, which holds one folder per unpacked bundle).
pub fn root_path() -> Result<PathBuf, CacheError> {
    if let Some(p) = std::env::var_os(ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if !p.is_absolute() {
            return Err(CacheError::Refused(format!(
                "{ENV}={} is not an absolute path",
                p.display()
            )));
        }
        return Ok(p);
    }
    let abs = |k: &str| {
        std::env::var_os(k)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(x) = abs("XDG_CACHE_HOME") {
        return Ok(x.join("parpy").join("bundles"));
    }
    if let Some(h) = abs("HOME") {
        return Ok(h.join(".cache").join("parpy").join("bundles"));
    }
    // No home (an empty environment): a private folder in /tmp.
    Ok(PathBuf::from(format!("/tmp/parpy-{}/bundles", euid())))
}

/// `flock(2)` on `f`; `Ok(false)` when `LOCK_NB` was asked and the lock is taken.
fn flock(f: &File, op: i32) -> io::Result<bool> {
    os::flock(f, op)
}

/// Lets `f` (an entry's in-use lock) stay open across `exec`, so that the lock
/// lasts as long as the program that the launcher becomes.
pub fn keep_across_exec(f: &File) -> io::Result<()> {
    os::keep_open_across_exec(f)
}

/// Creates the in-use lock of the entry being unpacked in `dir` (a temporary
/// folder), already locked shared, so that the entry is in use from the
/// moment it is renamed into place.
pub fn create_use_lock(dir: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join(USE))?;
    flock(&f, libc::LOCK_SH)?;
    Ok(f)
}

/// Whether the open file `f` is still the file at `path`.
fn same_file(f: &File, path: &Path) -> bool {
    match (f.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// A name for a temporary or trash folder in the root.
pub fn unique_name(prefix: &str, hex: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let short = hex.get(..16).unwrap_or(hex);
    format!(".{prefix}-{short}-{}-{nanos}", std::process::id())
}

/// Whether `name` (a `.trash-…` folder) is being deleted by a live process:
/// the one named in it (see [`unique_name`]), which deletes it itself.
fn trash_of_live_process(name: &str) -> bool {
    let pid = name
        .rsplit('-')
        .nth(1)
        .and_then(|p| p.parse::<libc::pid_t>().ok());
    pid.is_some_and(os::process_exists)
}

/// Whether `name` is an entry's: 64 lowercase hex digits (a sha256).
pub fn is_entry_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// How long ago `t` was (zero if it is in the future).
fn age(t: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(t).unwrap_or(Duration::ZERO)
}

/// Checks one folder on the way to the root (`last`: the root itself).
fn check_dir(p: &Path, m: &fs::Metadata, uid: u32, last: bool) -> Result<(), String> {
    let mode = m.mode() & 0o7777;
    if !m.is_dir() {
        return Err(format!("{} is not a folder", p.display()));
    }
    if last {
        if m.uid() != uid {
            return Err(format!(
                "it is owned by uid {}, not by you (uid {uid})",
                m.uid()
            ));
        }
        if mode & 0o022 != 0 {
            return Err(format!(
                "other users can write to it (mode {mode:04o}; `chmod go-w` it)"
            ));
        }
        return Ok(());
    }
    if m.uid() != uid && m.uid() != 0 {
        return Err(format!(
            "{} is owned by uid {}, who could replace what is in it (you are uid {uid})",
            p.display(),
            m.uid()
        ));
    }
    let sticky = mode & 0o1000 != 0;
    if !sticky && (mode & 0o002 != 0 || (mode & 0o020 != 0 && m.uid() != uid)) {
        return Err(format!(
            "other users can write to {} (mode {mode:04o}) and could replace what is in it",
            p.display()
        ));
    }
    Ok(())
}

/// Walks `path` from `/`, creating the missing folders (0700) when `create`,
/// and checks each one (see the module's "Trust"). `Ok(false)`: it does not
/// exist (and `create` is false).
fn check_chain(path: &Path, uid: u32, create: bool) -> Result<bool, CacheError> {
    let refuse = |why: String| {
        CacheError::Refused(format!(
            "refusing to use the bundle cache {}: {why}; set {ENV} to a folder of your own",
            path.display()
        ))
    };
    let comps: Vec<_> = path.components().collect();
    let mut cur = PathBuf::new();
    let mut linked = false;
    for (i, c) in comps.iter().enumerate() {
        cur.push(c.as_os_str());
        let last = i + 1 == comps.len();
        let m = match fs::symlink_metadata(&cur) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                match fs::DirBuilder::new().mode(0o700).create(&cur) {
                    // (0700 whatever the umask)
                    Ok(()) => fs::set_permissions(&cur, fs::Permissions::from_mode(0o700))
                        .map_err(io_err(format!("cannot create {}", cur.display())))?,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        return Err(CacheError::Io(
                            format!("cannot create {}", cur.display()),
                            e,
                        ));
                    }
                }
                fs::symlink_metadata(&cur).map_err(io_err(cur.display()))?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(CacheError::Io(cur.display().to_string(), e)),
        };
        let m = if m.file_type().is_symlink() {
            if m.uid() != uid && m.uid() != 0 {
                return Err(refuse(format!(
                    "{} is a symbolic link owned by uid {}, not by you (uid {uid})",
                    cur.display(),
                    m.uid()
                )));
            }
            linked = true;
            match fs::metadata(&cur) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(false),
                Err(e) => {
                    return Err(CacheError::Io(
                        format!("{} (a symbolic link)", cur.display()),
                        e,
                    ));
                }
            }
        } else {
            m
        };
        check_dir(&cur, &m, uid, last).map_err(refuse)?;
    }
    if linked {
        // Through links: the folders above the one it resolves to count too.
        let real = fs::canonicalize(path).map_err(io_err(path.display()))?;
        let comps: Vec<_> = real.components().collect();
        let mut cur = PathBuf::new();
        for (i, c) in comps.iter().enumerate() {
            cur.push(c.as_os_str());
            let m = fs::symlink_metadata(&cur).map_err(io_err(cur.display()))?;
            if m.file_type().is_symlink() {
                return Err(refuse(format!(
                    "{} changed while it was checked",
                    cur.display()
                )));
            }
            check_dir(&cur, &m, uid, i + 1 == comps.len()).map_err(refuse)?;
        }
    }
    Ok(true)
}

/// The cache folder, checked.
#[derive(Debug)]
pub struct Root {
    pub path: PathBuf,
    uid: u32,
}

/// What the cache knows about one entry.
#[derive(Debug, Clone)]
pub struct EntryInfo {
    /// The sha256 of the payload (the folder's name).
    pub name: String,
    /// Disk usage in bytes (0 when not measured).
    pub bytes: u64,
    pub last_use: Option<SystemTime>,
    pub in_use: bool,
    /// The script the bundle runs.
    pub main: Option<String>,
    /// The bundle file that last verified it.
    pub origin: Option<String>,
}

/// What a clean-up did.
#[derive(Debug, Default)]
pub struct Sweep {
    pub removed: Vec<EntryInfo>,
    /// Entries left because a running copy uses them.
    pub in_use: Vec<EntryInfo>,
    /// Entries left because they were used recently.
    pub recent: usize,
    /// Leftover temporary and trash folders removed, and their size.
    pub leftovers: usize,
    pub leftover_bytes: u64,
    /// A first run was unpacking: temporary folders were left alone.
    pub unpacking: bool,
}

enum Taken {
    Removed(EntryInfo),
    InUse(EntryInfo),
    Recent,
    Skipped,
}

impl Root {
    /// The cache at [`root_path`], checked; its missing folders are created
    /// (0700) when `create`, else `Ok(None)` when it does not exist.
    pub fn open(create: bool) -> Result<Option<Root>, CacheError> {
        Root::open_at(root_path()?, create)
    }

    pub fn open_at(path: PathBuf, create: bool) -> Result<Option<Root>, CacheError> {
        let uid = euid();
        Ok(check_chain(&path, uid, create)?.then_some(Root { path, uid }))
    }

    /// Checks the entry folder `dir`; `Ok(false)` when there is none.
    fn check_entry(&self, dir: &Path) -> Result<bool, CacheError> {
        let refuse = |why: String| {
            CacheError::Refused(format!(
                "refusing to use {}: {why}; delete it to unpack the bundle again",
                dir.display()
            ))
        };
        let m = match fs::symlink_metadata(dir) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(CacheError::Io(dir.display().to_string(), e)),
        };
        let m = if m.file_type().is_symlink() {
            if m.uid() != self.uid {
                return Err(refuse(format!(
                    "it is a symbolic link owned by uid {}, not by you (uid {})",
                    m.uid(),
                    self.uid
                )));
            }
            fs::metadata(dir).map_err(|e| refuse(format!("it is a symbolic link: {e}")))?
        } else {
            m
        };
        if !m.is_dir() {
            return Err(refuse("it is not a folder".into()));
        }
        if m.uid() != self.uid {
            return Err(refuse(format!(
                "it is owned by uid {}, not by you (uid {})",
                m.uid(),
                self.uid
            )));
        }
        if m.mode() & 0o022 != 0 {
            return Err(refuse(format!(
                "other users can write to it (mode {:04o})",
                m.mode() & 0o7777
            )));
        }
        Ok(true)
    }

    /// Marks entry `hex` in use: a shared lock on its `.parpy-use`, held for as
    /// long as the returned file stays open, taken before the entry is
    /// trusted. `Ok(None)` when there is no such entry (any more).
    pub fn use_entry(&self, hex: &str) -> Result<Option<File>, CacheError> {
        let dir = self.path.join(hex);
        let lock_path = dir.join(USE);
        for _ in 0..8 {
            if !self.check_entry(&dir)? {
                return Ok(None);
            }
            let lock = match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&lock_path)
            {
                Ok(f) => f,
                // Removed just now: look again.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                // A read-only cache (say, unpacked into an image that runs
                // with a read-only file system): nobody can remove anything
                // there, and a read-only descriptor locks as well.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EROFS | libc::EACCES)) => {
                    let ro = |p: &Path, flags| {
                        OpenOptions::new()
                            .read(true)
                            .custom_flags(libc::O_NOFOLLOW | flags)
                            .open(p)
                    };
                    match ro(&lock_path, 0) {
                        Ok(f) => f,
                        // Unpacked by an older parpy: no lock file to open.
                        Err(n) if n.kind() == io::ErrorKind::NotFound => {
                            let f = ro(&dir, libc::O_DIRECTORY)
                                .map_err(io_err(format!("cannot open {}", dir.display())))?;
                            flock(&f, libc::LOCK_SH)
                                .map_err(io_err(format!("cannot lock {}", dir.display())))?;
                            return Ok(Some(f));
                        }
                        Err(_) => {
                            return Err(CacheError::Io(
                                format!("cannot open {}", lock_path.display()),
                                e,
                            ));
                        }
                    }
                }
                Err(e) => {
                    return Err(CacheError::Io(
                        format!("cannot open {}", lock_path.display()),
                        e,
                    ));
                }
            };
            flock(&lock, libc::LOCK_SH)
                .map_err(io_err(format!("cannot lock {}", lock_path.display())))?;
            if same_file(&lock, &lock_path) {
                return Ok(Some(lock));
            }
            // A cleaner moved the entry away while we waited: look again.
        }
        Err(CacheError::Io(
            format!("cannot use {}", dir.display()),
            io::Error::other("other processes keep replacing it"),
        ))
    }

    /// Shared while a first run unpacks (see the module's "Temporary folders").
    pub fn unpack_lock(&self) -> Result<File, CacheError> {
        let p = self.path.join(ROOT_LOCK);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&p)
            .map_err(io_err(format!("cannot open {}", p.display())))?;
        flock(&f, libc::LOCK_SH).map_err(io_err(format!("cannot lock {}", p.display())))?;
        Ok(f)
    }

    /// Whether the automatic clean-up is due (last one a day ago or more).
    pub fn sweep_due(&self) -> bool {
        let now = SystemTime::now();
        match fs::metadata(self.path.join(ROOT_LOCK)).and_then(|m| m.modified()) {
            Ok(t) => age(t, now) >= SWEEP_EVERY || age(now, t) >= SWEEP_EVERY,
            Err(_) => true,
        }
    }

    /// The automatic clean-up at a start, when due: removes the entries unused
    /// for [`MAX_UNUSED`] that nobody runs, except `keep` (the starting one),
    /// and the leftovers. Returns how many entries went, when it ran.
    pub fn auto_sweep(&self, keep: &str) -> Option<usize> {
        if !self.sweep_due() {
            return None;
        }
        // Claimed first, so that copies starting at the same moment skip it.
        let p = self.path.join(ROOT_LOCK);
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&p)
            .ok()?;
        f.set_modified(SystemTime::now()).ok()?;
        drop(f);
        let s = self.sweep(Some(MAX_UNUSED), Some(keep), false).ok()?;
        Some(s.removed.len())
    }

    /// Removes the entries that no running copy uses, except `keep`, and that
    /// (with `max_unused`) were last used that long ago or more; then the
    /// leftover temporary and trash folders. `measure`: sizes of what went.
    pub fn sweep(
        &self,
        max_unused: Option<Duration>,
        keep: Option<&str>,
        measure: bool,
    ) -> Result<Sweep, CacheError> {
        let now = SystemTime::now();
        let mut out = Sweep::default();
        let mut tmps = Vec::new();
        let mut trash = Vec::new();
        let items = fs::read_dir(&self.path)
            .map_err(io_err(format!("cannot read {}", self.path.display())))?;
        let mut names: Vec<String> = items
            .filter_map(|i| i.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        for name in names {
            if is_entry_name(&name) {
                if keep == Some(name.as_str()) {
                    continue;
                }
                match self.take_entry(&name, max_unused, now, measure) {
                    Taken::Removed(e) => out.removed.push(e),
                    Taken::InUse(e) => out.in_use.push(e),
                    Taken::Recent => out.recent += 1,
                    Taken::Skipped => {}
                }
            } else if name.starts_with(".trash-") && !trash_of_live_process(&name) {
                trash.push(self.path.join(&name));
            } else if name.starts_with(".tmp-") {
                tmps.push(self.path.join(&name));
            }
        }
        if !tmps.is_empty() {
            match self.try_exclusive(&self.path.join(ROOT_LOCK)) {
                // No first run is unpacking: these are leftovers of killed ones.
                Some(_lock) => {
                    for t in tmps {
                        if self.owned_dir(&t) {
                            let to = self.path.join(unique_name("trash", "tmp"));
                            if fs::rename(&t, &to).is_ok() {
                                trash.push(to);
                            }
                        }
                    }
                }
                None => out.unpacking = true,
            }
        }
        for t in trash {
            if self.owned_dir(&t) {
                if measure {
                    out.leftover_bytes += disk_usage(&t);
                }
                let _ = fs::remove_dir_all(&t);
                out.leftovers += 1;
            }
        }
        Ok(out)
    }

    /// Whether `p` is a folder (not a link) of ours.
    fn owned_dir(&self, p: &Path) -> bool {
        fs::symlink_metadata(p).is_ok_and(|m| m.is_dir() && m.uid() == self.uid)
    }

    /// An exclusive lock on `p`, if nobody holds one; `None` also when `p` is missing.
    fn try_exclusive(&self, p: &Path) -> Option<File> {
        let f = File::open(p).ok()?;
        flock(&f, libc::LOCK_EX | libc::LOCK_NB).ok()?.then_some(f)
    }

    /// Removes entry `name` if nobody uses it (and it is old enough).
    fn take_entry(
        &self,
        name: &str,
        max_unused: Option<Duration>,
        now: SystemTime,
        measure: bool,
    ) -> Taken {
        let dir = self.path.join(name);
        // Links and folders of others are left alone.
        if !self.owned_dir(&dir) {
            return Taken::Skipped;
        }
        let lock_path = dir.join(USE);
        let open = |create: bool| {
            OpenOptions::new()
                .read(true)
                .write(create)
                .create(create)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&lock_path)
        };
        let lock = match open(false) {
            Ok(f) => f,
            // Unpacked by an older parpy: its use starts being tracked now.
            Err(e) if e.kind() == io::ErrorKind::NotFound => match open(true) {
                Ok(f) => f,
                Err(_) => return Taken::Skipped,
            },
            Err(_) => return Taken::Skipped,
        };
        match flock(&lock, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(true) => {}
            Ok(false) => {
                let mut info = entry_info(&dir, name, Some(&lock), measure);
                info.in_use = true;
                return Taken::InUse(info);
            }
            Err(_) => return Taken::Skipped,
        }
        let last_use = lock.metadata().and_then(|m| m.modified()).ok();
        if let (Some(max), Some(t)) = (max_unused, last_use)
            && age(t, now) < max
        {
            return Taken::Recent;
        }
        // Another cleaner may have moved it away (and a first run put a new
        // one in its place) while we opened the file.
        if !same_file(&lock, &lock_path) {
            return Taken::Skipped;
        }
        let trash = self.path.join(unique_name("trash", name));
        if fs::rename(&dir, &trash).is_err() {
            return Taken::Skipped;
        }
        // Copies waiting for the lock now find that it moved.
        let info = entry_info(&trash, name, Some(&lock), measure);
        drop(lock);
        let _ = fs::remove_dir_all(&trash);
        Taken::Removed(info)
    }

    /// Every entry, most recently used first, and the leftover folders
    /// (count, bytes). Sizes are measured; nothing is created or changed.
    pub fn list(&self) -> Result<(Vec<EntryInfo>, usize, u64), CacheError> {
        let items = fs::read_dir(&self.path)
            .map_err(io_err(format!("cannot read {}", self.path.display())))?;
        let mut entries = Vec::new();
        let (mut leftovers, mut leftover_bytes) = (0, 0);
        for item in items.flatten() {
            let Ok(name) = item.file_name().into_string() else {
                continue;
            };
            let path = item.path();
            if is_entry_name(&name) {
                let lock = File::open(path.join(USE)).ok();
                let in_use = lock
                    .as_ref()
                    .is_some_and(|f| matches!(flock(f, libc::LOCK_EX | libc::LOCK_NB), Ok(false)));
                let mut info = entry_info(&path, &name, lock.as_ref(), true);
                info.in_use = in_use;
                entries.push(info);
            } else if (name.starts_with(".tmp-")
                || (name.starts_with(".trash-") && !trash_of_live_process(&name)))
                && self.owned_dir(&path)
            {
                leftovers += 1;
                leftover_bytes += disk_usage(&path);
            }
        }
        entries.sort_by(|a, b| b.last_use.cmp(&a.last_use).then(a.name.cmp(&b.name)));
        Ok((entries, leftovers, leftover_bytes))
    }
}

/// What `dir` (entry `name`, with its open `.parpy-use`) says about itself.
fn entry_info(dir: &Path, name: &str, lock: Option<&File>, measure: bool) -> EntryInfo {
    let last_use = lock
        .and_then(|f| f.metadata().ok())
        .or_else(|| fs::metadata(dir).ok())
        .and_then(|m| m.modified().ok());
    let main = fs::read_to_string(dir.join(format::MANIFEST))
        .ok()
        .and_then(|t| format::manifest_value(&t, "main").map(String::from));
    let origin = fs::read_to_string(dir.join(ORIGIN))
        .ok()
        .map(|s| s.trim_end().to_string())
        .filter(|s| !s.is_empty());
    EntryInfo {
        name: name.to_string(),
        bytes: if measure { disk_usage(dir) } else { 0 },
        last_use,
        in_use: false,
        main,
        origin,
    }
}

/// Bytes of disk that `p` and everything below it take (links not followed).
pub fn disk_usage(p: &Path) -> u64 {
    let mut total = 0;
    let mut todo = vec![p.to_path_buf()];
    while let Some(p) = todo.pop() {
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        total += m.blocks() * 512;
        if m.is_dir()
            && let Ok(d) = fs::read_dir(&p)
        {
            todo.extend(d.flatten().map(|e| e.path()));
        }
    }
    total
}

// ---------------------------------------------------------------------------
// `parpy bundle --cache` and `--clean`
// ---------------------------------------------------------------------------

/// `12.3 MB`.
pub fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000_000 => format!("{:.1} GB", b as f64 / 1e9),
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}

/// `2025-06-01 12:03` in local time.
pub fn local_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    match os::local_time(secs) {
        Some((year, month, day, hour, minute)) => {
            format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}")
        }
        None => format!("@{secs}"),
    }
}

/// `just now`, `5 minutes ago`, `3 days ago`.
pub fn ago(d: Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = match s {
        0..60 => return "just now".into(),
        60..3600 => (s / 60, "minute"),
        3600..86400 => (s / 3600, "hour"),
        _ => (s / 86400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

fn when(t: Option<SystemTime>, now: SystemTime) -> String {
    match t {
        Some(t) => format!("{} ({})", local_time(t), ago(age(t, now))),
        None => "unknown".into(),
    }
}

fn app_of(e: &EntryInfo) -> String {
    let main = e.main.as_deref().unwrap_or("?");
    match &e.origin {
        Some(o) => format!("{main} ({o})"),
        None => main.to_string(),
    }
}

/// The cache named by the environment, or the line to print and the exit
/// code when there is none or it is refused.
fn open_for_command() -> Result<Root, (String, i32)> {
    let path = root_path().map_err(|e| (format!("parpy bundle: {e}"), 1))?;
    match Root::open_at(path.clone(), false) {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err((
            format!(
                "no bundle cache at {} (nothing unpacked yet)",
                path.display()
            ),
            0,
        )),
        Err(e) => Err((format!("parpy bundle: {e}"), 1)),
    }
}

/// Prints what `open_for_command` said instead of a cache (a note on stdout
/// for exit code 0, an error on stderr otherwise); returns the exit code.
fn say((msg, code): (String, i32)) -> i32 {
    if code == 0 {
        println!("{msg}");
    } else {
        eprintln!("{msg}");
    }
    code
}

/// `parpy bundle --cache`: prints the unpacked bundles; returns the exit code.
pub fn print_cache() -> i32 {
    let root = match open_for_command() {
        Ok(r) => r,
        Err(said) => return say(said),
    };
    let (entries, leftovers, leftover_bytes) = match root.list() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("parpy bundle: {e}");
            return 1;
        }
    };
    let now = SystemTime::now();
    println!("bundle cache {}", root.path.display());
    if !entries.is_empty() {
        println!(
            "{:<12}  {:>9}  {:<32}  {:<6}  APP",
            "BUNDLE", "SIZE", "LAST USE", "IN USE"
        );
    }
    let mut total = 0;
    for e in &entries {
        total += e.bytes;
        println!(
            "{:<12}  {:>9}  {:<32}  {:<6}  {}",
            &e.name[..12],
            human_size(e.bytes),
            when(e.last_use, now),
            if e.in_use { "yes" } else { "no" },
            app_of(e)
        );
    }
    let in_use = entries.iter().filter(|e| e.in_use).count();
    println!(
        "{} unpacked bundle{}, {} ({in_use} in use)",
        entries.len(),
        if entries.len() == 1 { "" } else { "s" },
        human_size(total)
    );
    if leftovers > 0 {
        println!(
            "{leftovers} leftover folder{} of interrupted runs, {} (`parpy bundle --clean` removes them)",
            if leftovers == 1 { "" } else { "s" },
            human_size(leftover_bytes)
        );
    }
    println!(
        "A bundle's start removes the ones unused for {} days (checked once a day); \
         `parpy bundle --clean` removes every one not in use.",
        MAX_UNUSED.as_secs() / 86400
    );
    0
}

/// `parpy bundle --clean`: removes every entry that no running copy uses,
/// and the leftovers; returns the exit code.
pub fn clean() -> i32 {
    let root = match open_for_command() {
        Ok(r) => r,
        Err(said) => return say(said),
    };
    let s = match root.sweep(None, None, true) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("parpy bundle: {e}");
            return 1;
        }
    };
    let now = SystemTime::now();
    for e in &s.removed {
        println!(
            "removed {} {}, {}, last used {}",
            &e.name[..12],
            app_of(e),
            human_size(e.bytes),
            when(e.last_use, now)
        );
    }
    for e in &s.in_use {
        println!("kept    {} {}: in use", &e.name[..12], app_of(e));
    }
    if s.leftovers > 0 {
        println!(
            "removed {} leftover folder{} of interrupted runs, {}",
            s.leftovers,
            if s.leftovers == 1 { "" } else { "s" },
            human_size(s.leftover_bytes)
        );
    }
    if s.unpacking {
        println!("left the temporary folders of a first run that is unpacking now");
    }
    let freed: u64 = s.removed.iter().map(|e| e.bytes).sum::<u64>() + s.leftover_bytes;
    println!(
        "{}: {} removed, {} kept in use, {} freed",
        root.path.display(),
        s.removed.len(),
        s.in_use.len(),
        human_size(freed)
    );
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the temporary folder, removed when dropped.
    struct Tmp(PathBuf);

    impl Tmp {
        fn new(tag: &str) -> Tmp {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "parpy-cache-unit-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            Tmp(p)
        }
    }

    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn hex(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    /// A root with a (fake) complete entry for each of `names`.
    fn root_with(t: &Tmp, names: &[&str]) -> Root {
        let root = Root::open_at(t.0.join("a/b/cache"), true).unwrap().unwrap();
        for n in names {
            let d = root.path.join(n);
            fs::DirBuilder::new().mode(0o700).create(&d).unwrap();
            fs::write(d.join(format::MANIFEST), "main=x.py\n").unwrap();
        }
        root
    }

    fn set_age(p: &Path, d: Duration) {
        File::open(p)
            .unwrap()
            .set_modified(SystemTime::now() - d)
            .unwrap();
    }

    #[test]
    fn created_folders_are_private_and_checked() {
        let t = Tmp::new("chain");
        let path = t.0.join("x/y/cache");
        assert!(Root::open_at(path.clone(), false).unwrap().is_none());
        assert!(!t.0.join("x").exists(), "looking created something");
        let root = Root::open_at(path.clone(), true).unwrap().unwrap();
        for p in [t.0.join("x"), t.0.join("x/y"), path.clone()] {
            assert_eq!(
                fs::metadata(&p).unwrap().mode() & 0o777,
                0o700,
                "{}",
                p.display()
            );
        }
        assert_eq!(root.path, path);

        fs::set_permissions(&path, fs::Permissions::from_mode(0o770)).unwrap();
        let e = Root::open_at(path.clone(), true).unwrap_err().to_string();
        assert!(e.contains("other users can write to it"), "{e}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
        // A world-writable folder above it, not sticky.
        fs::set_permissions(t.0.join("x"), fs::Permissions::from_mode(0o777)).unwrap();
        let e = Root::open_at(path.clone(), true).unwrap_err().to_string();
        assert!(e.contains("could replace"), "{e}");
        fs::set_permissions(t.0.join("x"), fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(Root::open_at(path.clone(), true).unwrap().is_some());

        let e = Root::open_at(t.0.join("x/y/cache/../f"), true);
        assert!(e.unwrap().is_some());
        fs::write(t.0.join("file"), "").unwrap();
        let e = Root::open_at(t.0.join("file"), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a folder"), "{e}");
    }

    #[test]
    fn foreign_folders_and_links_are_refused() {
        if euid() != 0 {
            eprintln!("SKIPPED: needs root to chown");
            return;
        }
        let t = Tmp::new("foreign");
        let theirs = t.0.join("theirs");
        fs::DirBuilder::new().mode(0o700).create(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        let e = Root::open_at(theirs.clone(), true).unwrap_err().to_string();
        assert!(e.contains("owned by uid 65534"), "{e}");
        // Below a folder of another user.
        let e = Root::open_at(theirs.join("cache"), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("owned by uid 65534"), "{e}");

        let mine = t.0.join("mine");
        fs::create_dir(&mine).unwrap();
        let link = t.0.join("link");
        std::os::unix::fs::symlink(&mine, &link).unwrap();
        assert!(Root::open_at(link.clone(), true).unwrap().is_some());
        std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
        let e = Root::open_at(link.join("cache"), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("symbolic link owned by uid 65534"), "{e}");

        // An entry of another user inside a good root.
        let root = root_with(&t, &[&hex('a')]);
        std::os::unix::fs::chown(root.path.join(hex('a')), Some(65534), None).unwrap();
        let e = root.use_entry(&hex('a')).unwrap_err().to_string();
        assert!(e.contains("owned by uid 65534"), "{e}");
    }

    #[test]
    fn clean_removes_idle_entries_and_keeps_used_ones() {
        let t = Tmp::new("clean");
        let root = root_with(&t, &[&hex('a'), &hex('b')]);
        let held = root.use_entry(&hex('a')).unwrap().unwrap();
        let s = root.sweep(None, None, true).unwrap();
        let names = |v: &[EntryInfo]| v.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&s.removed), [hex('b')]);
        assert_eq!(names(&s.in_use), [hex('a')]);
        assert!(s.removed[0].bytes > 0);
        assert_eq!(s.removed[0].main.as_deref(), Some("x.py"));
        assert!(root.path.join(hex('a')).is_dir());
        assert!(!root.path.join(hex('b')).exists());
        let (listed, _, _) = root.list().unwrap();
        assert!(listed[0].in_use);
        drop(held);
        let (listed, _, _) = root.list().unwrap();
        assert!(!listed[0].in_use);
        let s = root.sweep(None, None, false).unwrap();
        assert_eq!(names(&s.removed), [hex('a')]);
        assert!(root.use_entry(&hex('a')).unwrap().is_none());
        // Only the root's own lock is left.
        let left: Vec<_> = fs::read_dir(&root.path)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.iter().all(|n| n == ROOT_LOCK), "{left:?}");
    }

    #[test]
    fn the_age_policy_removes_only_old_unused_entries() {
        let t = Tmp::new("age");
        let (old, fresh, busy, me) = (hex('a'), hex('b'), hex('c'), hex('d'));
        let root = root_with(&t, &[&old, &fresh, &busy, &me]);
        for n in [&old, &fresh, &busy, &me] {
            drop(root.use_entry(n).unwrap().unwrap());
        }
        let day = Duration::from_secs(86400);
        set_age(&root.path.join(&old).join(USE), 31 * day);
        set_age(&root.path.join(&fresh).join(USE), 29 * day);
        set_age(&root.path.join(&busy).join(USE), 31 * day);
        set_age(&root.path.join(&me).join(USE), 31 * day);
        let _held = root.use_entry(&busy).unwrap().unwrap();
        // Swept a day ago: due.
        fs::write(root.path.join(ROOT_LOCK), "").unwrap();
        set_age(&root.path.join(ROOT_LOCK), day);
        assert!(root.sweep_due());
        assert_eq!(root.auto_sweep(&me), Some(1));
        assert!(!root.path.join(&old).exists());
        for n in [&fresh, &busy, &me] {
            assert!(root.path.join(n).is_dir());
        }
        // Not due again today.
        assert!(!root.sweep_due());
        assert_eq!(root.auto_sweep(&me), None);
    }

    #[test]
    fn leftover_temporary_folders_go_unless_a_first_run_is_unpacking() {
        let t = Tmp::new("tmp");
        let root = root_with(&t, &[]);
        let tmp = root.path.join(unique_name("tmp", &hex('a')));
        fs::create_dir_all(tmp.join("lib")).unwrap();
        let unpacking = root.unpack_lock().unwrap();
        let s = root.sweep(None, None, true).unwrap();
        assert!(s.unpacking);
        assert!(tmp.is_dir());
        drop(unpacking);
        // A trash folder of a cleaner that died (no such pid); one of a live
        // one (this process) is left to it.
        let trash = root.path.join(".trash-bbbbbbbbbbbbbbbb-999999999-1");
        fs::create_dir_all(trash.join("x")).unwrap();
        let live = root.path.join(unique_name("trash", &hex('c')));
        fs::create_dir_all(live.join("x")).unwrap();
        let (_, leftovers, _) = root.list().unwrap();
        assert_eq!(leftovers, 2);
        let s = root.sweep(None, None, true).unwrap();
        assert!(!s.unpacking);
        assert_eq!(s.leftovers, 2);
        assert!(!tmp.exists() && !trash.exists());
        assert!(live.exists());
    }

    #[test]
    fn concurrent_cleaners_and_starters_agree() {
        // Two cleaners and a starter at once, many times: each entry is removed
        // by at most one cleaner, and never while the starter holds it.
        let t = Tmp::new("race");
        let root = std::sync::Arc::new(root_with(&t, &[]));
        for round in 0..50 {
            let n = hex(if round % 2 == 0 { 'e' } else { 'f' });
            let d = root.path.join(&n);
            fs::DirBuilder::new().mode(0o700).create(&d).unwrap();
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(3));
            let cleaners: Vec<_> = (0..2)
                .map(|_| {
                    let (root, barrier) = (root.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        root.sweep(None, None, false).unwrap().removed.len()
                    })
                })
                .collect();
            barrier.wait();
            let used = root.use_entry(&n).unwrap();
            if used.is_some() {
                // Held: it must still be there, whatever the cleaners did.
                assert!(d.join(USE).is_file(), "round {round}: removed while in use");
            }
            let removed: usize = cleaners.into_iter().map(|c| c.join().unwrap()).sum();
            assert!(removed <= 1, "round {round}: removed twice");
            assert_eq!(used.is_some(), d.is_dir(), "round {round}");
            assert_eq!(removed == 1, !d.is_dir(), "round {round}");
            drop(used);
            let _ = fs::remove_dir_all(&d);
        }
    }

    #[test]
    fn a_read_only_entry_still_starts() {
        // (Root ignores permissions; a read-only mount needs privileges, so
        // this checks the fallback as another user would meet it.)
        if euid() == 0 {
            eprintln!("SKIPPED: root may write anywhere");
            return;
        }
        let t = Tmp::new("ro");
        let root = root_with(&t, &[&hex('a'), &hex('b')]);
        drop(root.use_entry(&hex('a')).unwrap().unwrap());
        for n in [hex('a'), hex('b')] {
            let d = root.path.join(&n);
            let _ = fs::set_permissions(d.join(USE), fs::Permissions::from_mode(0o400));
            fs::set_permissions(&d, fs::Permissions::from_mode(0o500)).unwrap();
        }
        assert!(root.use_entry(&hex('a')).unwrap().is_some());
        assert!(root.use_entry(&hex('b')).unwrap().is_some());
        for n in [hex('a'), hex('b')] {
            fs::set_permissions(root.path.join(n), fs::Permissions::from_mode(0o700)).unwrap();
        }
    }

    #[test]
    fn formats() {
        assert_eq!(ago(Duration::from_secs(5)), "just now");
        assert_eq!(ago(Duration::from_secs(60)), "1 minute ago");
        assert_eq!(ago(Duration::from_secs(7200)), "2 hours ago");
        assert_eq!(ago(Duration::from_secs(40 * 86400)), "40 days ago");
        assert_eq!(human_size(24_812_345), "24.8 MB");
        assert_eq!(local_time(UNIX_EPOCH + Duration::from_secs(3600)).len(), 16);
        assert!(is_entry_name(&hex('0')));
        assert!(!is_entry_name(".parpy-lock"));
        assert!(!is_entry_name(&hex('A')));
    }
}
