//! Plain libc calls with a safe interface, for code that runs with no
//! Python at all (the bundle launcher compiles this file in too, with
//! `#[path]`, so it must use nothing but std and libc).

use std::io;
use std::os::unix::io::AsRawFd;

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// `flock(2)` with `op` on the open file `f`, retried on EINTR;
/// `Ok(false)` when `LOCK_NB` was asked and another holder has the lock.
pub fn flock(f: &impl AsRawFd, op: i32) -> io::Result<bool> {
    loop {
        // SAFETY: flock on a descriptor that `f` keeps open.
        if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// Clears `FD_CLOEXEC` on the open file `f`, so it stays open across `exec`.
pub fn keep_open_across_exec(f: &impl AsRawFd) -> io::Result<()> {
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on a descriptor that `f` keeps open.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether process `pid` exists (one of another user's counts).
pub fn process_exists(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only asks whether the process exists.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// `secs` since the epoch in local time: (year, month 1-12, day, hour, minute).
pub fn local_time(secs: i64) -> Option<(i32, i32, i32, i32, i32)> {
    let secs = secs as libc::time_t;
    // SAFETY: an all-zero `tm` is valid (integers and a null pointer).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r only writes into `tm`.
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return None;
    }
    Some((
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
    ))
}

/// A shared library loaded with `dlopen(3)`; it stays loaded for the
/// process's life (never `dlclose`d: code from it may still run at exit).
pub struct Library(*mut libc::c_void);

impl Library {
    /// Loads `path` with every symbol bound now; `global` makes its symbols
    /// available to libraries loaded after it (libpython, for the extension
    /// module that needs its symbols). The error is `dlerror()`'s text.
    pub fn open(path: &std::path::Path, global: bool) -> Result<Library, String> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
        let flags = libc::RTLD_NOW
            | if global {
                libc::RTLD_GLOBAL
            } else {
                libc::RTLD_LOCAL
            };
        // SAFETY: a NUL-terminated path; running the library's initialisers is
        // what loading it means (the caller chose the file).
        let h = unsafe { libc::dlopen(c.as_ptr(), flags) };
        if h.is_null() {
            Err(dl_error())
        } else {
            Ok(Library(h))
        }
    }

    /// Calls the library's `extern "C" fn name() -> c_int` and returns its result.
    ///
    /// The caller vouches that `name`, if the library exports it, has exactly
    /// that signature (the wheel's `_native.so` and its command are built
    /// from one tree).
    pub fn call_entry(&self, name: &std::ffi::CStr) -> Result<i32, String> {
        // SAFETY: a handle from dlopen and a NUL-terminated name.
        let sym = unsafe { libc::dlsym(self.0, name.as_ptr()) };
        if sym.is_null() {
            return Err(dl_error());
        }
        // SAFETY: the symbol is that function (the caller's contract above).
        let f: extern "C" fn() -> libc::c_int = unsafe { std::mem::transmute(sym) };
        Ok(f())
    }
}

fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated message owned by libc,
    // read here at once on the thread that made the failed call.
    let msg = unsafe { libc::dlerror() };
    if msg.is_null() {
        "unknown dlopen error".into()
    } else {
        // SAFETY: as above.
        unsafe { std::ffi::CStr::from_ptr(msg) }
            .to_string_lossy()
            .into_owned()
    }
}
