//! Rust-side differences between the CPython versions parpy runs on, in one
//! place; each entry names the upstream issue and the versions it applies
//! to, so that dropping a version deletes lines. The Python-side entries are
//! in `src/api/python/parpy/_compat.py`.
//!
//! * Releases refused outright: [`releases`] (3.12.0-3.12.3,
//!   python/cpython#119213), checked by build.rs and by [`refused_runtime`].
//! * PEP 788 (3.15) soft-deprecates the `PyGILState_*` calls in favour of
//!   `PyThreadState_Ensure` and interpreter guards and views. parpy calls no
//!   `PyGILState_*` function: a worker thread creates its interpreter and is
//!   attached by `Py_NewInterpreterFromConfig`, and the thread that
//!   interrupts a worker (`interp::InterruptSlot::interrupt`) attaches with
//!   `PyThreadState_New` + `PyEval_RestoreThread`, which PEP 788 keeps, while
//!   the slot's lock keeps the interpreter alive. So nothing is replaced on
//!   3.15 (checked against Debian's 3.15.2 headers, where no thread-state
//!   call parpy makes is deprecated).

pub mod releases;

/// Why the libpython this process loaded is one that parpy refuses, or
/// `None`. A binary built against an accepted 3.12.x can load a refused one
/// at run time (every 3.12.x has the soname `libpython3.12.so.1.0`); refusing
/// here, before the interpreter starts, keeps that from a crash at exit.
pub fn refused_runtime() -> Option<String> {
    if cfg!(parpy_allow_refused) {
        return None; // built with PARPY_ALLOW_REFUSED_PYTHON=1 (build.rs)
    }
    let (major, minor, micro) = releases::parse_version(&super::embed::python_version())?;
    releases::refused_release(major, minor, micro).map(|why| {
        format!("this parpy runs on libpython {major}.{minor}.{micro}, which parpy refuses: {why}")
    })
}

#[cfg(test)]
mod tests {
    use super::releases::{parse_version, refused_release};

    #[test]
    fn versions_parse_with_their_suffixes() {
        assert_eq!(parse_version("3.12.1 (main, Jan 1 2024)"), Some((3, 12, 1)));
        assert_eq!(parse_version("3.15.0a2+ (heads/main)"), Some((3, 15, 0)));
        assert_eq!(parse_version("3.14.10"), Some((3, 14, 10)));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn only_the_first_3_12_releases_are_refused() {
        for micro in 0..=3 {
            let why = refused_release(3, 12, micro).expect("refused");
            assert!(why.contains("119213") && why.contains("3.12.4"), "{why}");
        }
        assert_eq!(refused_release(3, 12, 4), None);
        assert_eq!(refused_release(3, 13, 0), None);
        assert_eq!(refused_release(3, 15, 2), None);
    }
}
