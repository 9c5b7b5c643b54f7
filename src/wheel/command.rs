//! `parpy-wheel-command`: the `parpy` command that the wheel installs into
//! a venv's (or a prefix's) `bin/`.
//!
//! A wheel cannot know where the venv's base Python keeps its libpython, so
//! this launcher links only libc. It finds, from where it is installed:
//!
//! * the wheel's `parpy/_native.so` in that prefix's site-packages: the
//!   whole parpy runtime, the same Rust code as the cargo-built `parpy`;
//! * the libpython of the Python that prefix belongs to: the venv's
//!   `pyvenv.cfg` names the base Python's `bin/` (`home`); a prefix without
//!   one is its own base. The library is looked for where CPython installs
//!   it, then the base interpreter is asked (`sysconfig`'s `LIBDIR` and
//!   `INSTSONAME`).
//!
//! It loads libpython with its symbols global (the extension module
//! resolves against them, as it does inside `python`), then `_native.so`,
//! and runs its `parpy_command_main`: parpy with this process's argv, which
//! computes `sys.prefix` from this file's path exactly as the venv's own
//! `python` would from its own.

#[allow(dead_code)]
#[path = "../ffi/os.rs"]
mod os;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The Python minor version this wheel was built for ("3.13").
const VERSION: &str = env!("PARPY_PYTHON_VERSION");
/// Its ABI flags: "" for the default build, "d" for a debug build.
const ABIFLAGS: &str = env!("PARPY_PYTHON_ABIFLAGS");

fn main() -> ExitCode {
    match run() {
        Ok(code) => ExitCode::from(code as u8),
        Err(msg) => {
            eprintln!("parpy: {msg}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<i32, String> {
    // The installed file itself: pipx links it into ~/.local/bin from its venv.
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|e| format!("cannot locate the parpy command: {e}"))?;
    let bin = exe.parent().ok_or("the parpy command has no directory")?;
    let prefix = bin.parent().unwrap_or(bin);
    let native = find_native(prefix).ok_or_else(|| {
        format!(
            "cannot find parpy's extension module (parpy/_native*.so) for Python {VERSION} \
             under {}/lib: is the parpy wheel for Python {VERSION} installed there?",
            prefix.display()
        )
    })?;
    let base_bin = base_bin(prefix).unwrap_or_else(|| bin.to_path_buf());
    let libpython = find_libpython(&base_bin)?;
    os::Library::open(&libpython, true)
        .map_err(|e| format!("cannot load {}: {e}", libpython.display()))?;
    let lib = os::Library::open(&native, false)
        .map_err(|e| format!("cannot load {}: {e}", native.display()))?;
    lib.call_entry(c"parpy_command_main")
        .map_err(|e| format!("{} is not parpy's: {e}", native.display()))
}

/// `parpy/_native*.so` in the site-packages of `prefix` (a venv's, a
/// `--user` or `--prefix` install's, a distribution's dist-packages).
fn find_native(prefix: &Path) -> Option<PathBuf> {
    let lib = prefix.join("lib");
    let dirs = [
        lib.join(format!("python{VERSION}")).join("site-packages"),
        lib.join(format!("python{VERSION}")).join("dist-packages"),
        lib.join("python3").join("dist-packages"),
        prefix
            .join("local/lib")
            .join(format!("python{VERSION}"))
            .join("dist-packages"),
    ];
    let tag = format!("cpython-{}{ABIFLAGS}-", VERSION.replace('.', ""));
    dirs.iter().find_map(|d| {
        let pkg = d.join("parpy");
        let entries = std::fs::read_dir(&pkg).ok()?;
        entries.filter_map(Result::ok).map(|e| e.path()).find(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("_native.")
                && name.ends_with(".so")
                && (name.contains(&tag) || name == "_native.so")
        })
    })
}

/// The base Python's `bin/` that the venv at `prefix` names in `pyvenv.cfg`.
fn base_bin(prefix: &Path) -> Option<PathBuf> {
    let cfg = std::fs::read_to_string(prefix.join("pyvenv.cfg")).ok()?;
    cfg.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "home").then(|| PathBuf::from(value.trim()))
    })
}

/// The shared libpython3.X of the Python installed in `base_bin`.
fn find_libpython(base_bin: &Path) -> Result<PathBuf, String> {
    let soname = format!("libpython{VERSION}{ABIFLAGS}.so.1.0");
    let root = base_bin.parent().unwrap_or(base_bin);
    // pyenv, python.org and uv builds keep it in <prefix>/lib; Debian and
    // Ubuntu in the multiarch directory.
    let guesses = [
        root.join("lib").join(&soname),
        root.join("lib")
            .join(format!("{}-linux-gnu", std::env::consts::ARCH))
            .join(&soname),
    ];
    if let Some(found) = guesses.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let python = [
        format!("python{VERSION}{ABIFLAGS}"),
        format!("python{VERSION}"),
        "python3".into(),
    ]
    .iter()
    .map(|n| base_bin.join(n))
    .find(|p| p.is_file())
    .ok_or_else(|| {
        format!(
            "no python{VERSION} in {}, the venv's base Python",
            base_bin.display()
        )
    })?;
    let probe = "import sysconfig as s; print(s.get_config_var('LIBDIR') or ''); \
                 print(s.get_config_var('INSTSONAME') or ''); \
                 print(s.get_config_var('Py_ENABLE_SHARED') or 0)";
    let out = Command::new(&python)
        .args(["-I", "-c", probe])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let (libdir, instsoname) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    for name in [instsoname, soname.as_str()] {
        let p = Path::new(libdir).join(name);
        if !name.is_empty() && name.contains(".so") && p.is_file() {
            return Ok(p);
        }
    }
    let fix = if root == Path::new("/usr") {
        format!("install it (Debian and Ubuntu: apt install libpython{VERSION})")
    } else {
        "use a Python built with --enable-shared (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared)"
            .into()
    };
    Err(format!(
        "{} has no shared {soname}, which the parpy command runs on: {fix}. \
         Without it, `python -m parpy script.py` runs scripts in that python itself.",
        python.display()
    ))
}
