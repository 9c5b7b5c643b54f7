//! Releases parpy refuses: each entry of `parpy::ffi::compat::releases`
//! comes with a reproduction of the upstream bug on that very release, run
//! with the plain `python3.X` (no parpy), wherever such a Python is found.

use std::path::PathBuf;

use parpy::ffi::compat::releases::{parse_version, refused_release};

use crate::common::*;

/// python/cpython#119213 in four lines: a sub-interpreter is the first to
/// call `zlib.compress` with a keyword argument. `MAIN_FIRST` makes the main
/// interpreter call it first, which is the control.
const KWTUPLE_REPRO: &str = "
import sys, _xxsubinterpreters as interpreters
if sys.argv[1] == 'main-first':
    import zlib; zlib.compress(b'abc', level=9)
i = interpreters.create()
interpreters.run_string(i, 'import zlib; zlib.compress(b\"abc\", level=9)')
interpreters.destroy(i)
print('ok', flush=True)
";

/// Pythons of refused releases on this machine: the one parpy was built
/// with (only with PARPY_ALLOW_REFUSED_PYTHON=1) and pyenv's.
fn refused_pythons() -> Vec<(PathBuf, (u32, u32, u32))> {
    let mut candidates = vec![python_bin()];
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")));
    if let Some(Ok(dir)) = root.map(|r| std::fs::read_dir(r.join("versions"))) {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some((major, minor, _)) = parse_version(&name) {
                candidates.push(entry.path().join(format!("bin/python{major}.{minor}")));
            }
        }
    }
    let mut found = Vec::new();
    for python in candidates {
        let o = Run::new(&python)
            .args(["-c", "import platform; print(platform.python_version())"])
            .run();
        if o.code != 0 {
            continue;
        }
        if let Some(v) = parse_version(o.stdout.trim())
            && refused_release(v.0, v.1, v.2).is_some()
            && !found.iter().any(|(_, w)| *w == v)
        {
            found.push((python, v));
        }
    }
    found
}

#[test]
fn refused_3_12_releases_abort_at_exit_without_parpy() {
    let pythons = refused_pythons();
    if pythons.is_empty() {
        eprintln!("no Python of a refused release here: nothing to reproduce");
        return;
    }
    for (python, v) in pythons {
        let crash = Run::new(&python)
            .args(["-c", KWTUPLE_REPRO, "worker-first"])
            .run();
        assert_eq!(crash.stdout, "ok\n", "{python:?} {v:?}: {crash:#?}");
        assert_eq!(
            crash.code, -6,
            "{python:?} {v:?} should abort at exit (gh-119213): {crash:#?}"
        );
        // glibc words the bad free() by what its heap checks catch first:
        // "free(): invalid pointer", "munmap_chunk(): invalid pointer" or
        // "double free or corruption (out)" (all three seen here, on one
        // machine), so any of its malloc-check messages counts.
        assert!(
            ["invalid pointer", "double free", "corruption"]
                .iter()
                .any(|m| crash.stderr.contains(m)),
            "{python:?}: glibc names the bad free(): {crash:#?}"
        );
        let control = Run::new(&python)
            .args(["-c", KWTUPLE_REPRO, "main-first"])
            .run();
        assert_eq!(
            (control.code, control.stdout.as_str()),
            (0, "ok\n"),
            "{python:?} {v:?}, main interpreter first: {control:#?}"
        );
    }
}
