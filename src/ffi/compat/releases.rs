//! CPython releases that parpy refuses: an upstream bug breaks own-GIL
//! sub-interpreters there in a way that parpy cannot work around. build.rs
//! refuses to build against them (it includes this file), and the launcher
//! refuses to start on one (the libpython a binary loads can be another
//! release of the same minor version: they share one soname).
//!
//! Dropping a version drops its entry.

/// Why parpy refuses CPython `major.minor.micro`, or `None` if it does not.
pub fn refused_release(major: u32, minor: u32, micro: u32) -> Option<&'static str> {
    match (major, minor, micro) {
        // python/cpython#119213, fixed in 3.12.4 (backport #119425): the
        // first call with keyword arguments of an Argument Clinic function of
        // an extension module (`zlib.compress(b, level=9)`,
        // `bisect.bisect(a, x, lo=0)`, `pickle.dumps(x, protocol=5)`), when
        // made in a sub-interpreter, caches a tuple allocated by that
        // interpreter in a process-wide static. The main interpreter frees it
        // at exit: `free(): invalid pointer`, abort. Any task can do that, so
        // parpy cannot avoid it. tests/it/compat.rs reproduces it with the
        // plain python3.12 and `_xxsubinterpreters`.
        (3, 12, 0..=3) => Some(
            "own-GIL sub-interpreters crash the process at exit once a worker calls a C \
             function with keyword arguments before the main interpreter does \
             (python/cpython#119213, fixed in 3.12.4); parpy needs 3.12.4 or newer",
        ),
        _ => None,
    }
}

/// `(major, minor, micro)` from a version string such as `3.12.1 (main, …)`
/// or `3.15.0a2+`.
pub fn parse_version(s: &str) -> Option<(u32, u32, u32)> {
    let head = s.split_whitespace().next()?;
    let mut parts = head.splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let micro_text = parts.next().unwrap_or("0");
    let digits: String = micro_text
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor, digits.parse().unwrap_or(0)))
}
