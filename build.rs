//! Build script: checks the CPython that PyO3 links against and embeds an
//! rpath to its libpython, so `parpy` runs without `LD_LIBRARY_PATH`.

use std::path::PathBuf;
use std::process::Command;

#[path = "build/static_link.rs"]
mod static_link;

// The table of refused releases, shared with the launcher's run-time check.
#[allow(dead_code)]
#[path = "src/ffi/compat/releases.rs"]
mod releases;

fn main() {
    println!("cargo:rerun-if-env-changed=PARPY_PYTHON");
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    println!("cargo:rerun-if-env-changed=PARPY_ALLOW_REFUSED_PYTHON");
    println!("cargo:rerun-if-changed=packaging/find-python");
    println!("cargo:rerun-if-changed=src/ffi/compat/releases.rs");
    println!("cargo::rustc-check-cfg=cfg(parpy_allow_refused)");
    println!("cargo:rerun-if-changed=src/api/python/parpy");
    println!("cargo:rerun-if-changed=src/api/python/parpy_check.py");

    let python = std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "packaging/find-python".into());
    // (The marker comment lets the finder's tests answer with fake interpreters.)
    let probe = "# parpy-probe: build\n\
                 import sys, sysconfig\n\
                 print(sys.version_info[0]); print(sys.version_info[1])\n\
                 print(sysconfig.get_config_var('Py_ENABLE_SHARED') or 0)\n\
                 print(sysconfig.get_config_var('LIBDIR') or '')\n\
                 print(sys.executable)\n\
                 print(1 if sysconfig.get_config_var('Py_GIL_DISABLED') else 0)\n\
                 print(getattr(sys, 'abiflags', ''))\n\
                 print(sys.prefix)\n\
                 print(sys.version_info[2])";
    let out = match Command::new(&python).arg("-c").arg(probe).output() {
        Ok(out) => out,
        Err(err) => fail(&format!(
            "could not run the Python interpreter `{python}`: {err}"
        )),
    };
    if !out.status.success() {
        fail(&format!(
            "the Python interpreter `{python}` failed:\n{}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let major: u32 = lines.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let minor: u32 = lines.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let shared = lines.next().unwrap_or("0").trim() == "1";
    let libdir = PathBuf::from(lines.next().unwrap_or("").trim());
    let exe = lines.next().unwrap_or("").trim().to_string();
    let free_threaded = lines.next().unwrap_or("0").trim() == "1";
    let abiflags = lines.next().unwrap_or("").trim().to_string();
    let prefix = lines.next().unwrap_or("").trim().to_string();
    let micro: u32 = lines.next().and_then(|s| s.parse().ok()).unwrap_or(0);

    if (major, minor) < (3, 12) {
        fail(&format!(
            "{exe} is Python {major}.{minor}; parpy needs CPython 3.12 or newer, \
             the first with a GIL per sub-interpreter (PEP 684). \
             Point PARPY_PYTHON at a newer python3.X."
        ));
    }
    if free_threaded {
        fail(&format!(
            "{exe} is a free-threaded build of Python {major}.{minor} (Py_GIL_DISABLED). \
             parpy gets its parallelism from one GIL per sub-interpreter, and its design \
             for a Python without a GIL is not built yet (docs/free-threaded.md). \
             Point PARPY_PYTHON at the default build, python{major}.{minor} instead of \
             python{major}.{minor}t."
        ));
    }
    if let Some(why) = releases::refused_release(major, minor, micro) {
        if std::env::var_os("PARPY_ALLOW_REFUSED_PYTHON").is_some_and(|v| v == "1") {
            // For parpy's own tests on the only 3.12 at hand (pyenv 3.12.1):
            // the launcher then starts on it too.
            println!("cargo:rustc-cfg=parpy_allow_refused");
            println!(
                "cargo:warning=building against a refused Python ({major}.{minor}.{micro}) \
                 because PARPY_ALLOW_REFUSED_PYTHON=1: {why}"
            );
        } else {
            fail(&format!(
                "{exe} is Python {major}.{minor}.{micro}, which parpy refuses: {why}. \
                 Point PARPY_PYTHON at a newer python3.X."
            ));
        }
    }
    // The wheel's extension module (packaging/wheel) links no libpython: it
    // runs inside a python, or is loaded after one by the wheel's command.
    println!("cargo:rerun-if-env-changed=PYO3_BUILD_EXTENSION_MODULE");
    let extension = std::env::var_os("PYO3_BUILD_EXTENSION_MODULE").is_some();
    if !shared && !extension {
        fail(&format!(
            "{exe} was not built with --enable-shared; parpy embeds CPython and needs its \
             shared libpython. Point PARPY_PYTHON at a shared build."
        ));
    }
    // PyO3 links -lpython3.X, which needs the unversioned libpython3.X.so: distributions
    // ship that link in a -dev package, apart from the interpreter.
    let lib = format!("libpython{major}.{minor}{abiflags}.so");
    if !extension && !libdir.join(&lib).exists() {
        let fix = if prefix == "/usr" {
            format!("install libpython{major}.{minor}-dev (Debian, Ubuntu) or its equivalent")
        } else {
            "rebuild it with --enable-shared".to_string()
        };
        fail(&format!(
            "{exe} has no {lib} in {}: {fix}, or point PARPY_PYTHON at another python3.X.",
            libdir.display()
        ));
    }
    check_pyo3_agrees(major, minor, &exe);
    if !extension {
        static_link::link(&exe);
    }
    // A parpy laid out as bin/parpy next to lib/libpython3.X.so (the
    // distribution of packaging/dist.sh, an unpacked bundle) uses that
    // libpython; any other keeps finding the one it was built against.
    println!("cargo:rustc-link-arg-bins=-Wl,-rpath,$ORIGIN/../lib");
    println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{}", libdir.display());
    println!("cargo:rustc-env=PARPY_BUILD_PYTHON={exe}");
    println!("cargo:rustc-env=PARPY_PYTHON_VERSION={major}.{minor}");
    println!("cargo:rustc-env=PARPY_PYTHON_ABIFLAGS={abiflags}");
    freeze_package(&exe, "parpy");
    compile_api(&exe, "parpy_check.py", "parpy_check.marshal");
}

/// PyO3 probes its interpreter once and caches the result; after a switch of
/// `PARPY_PYTHON` its cached configuration can name another Python than the
/// one found now. Building on would give a binary that crashes, so say what to do.
fn check_pyo3_agrees(major: u32, minor: u32, exe: &str) {
    let Ok(hex) = std::env::var("DEP_PYTHON_PYO3_CONFIG") else {
        return;
    };
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    let config = String::from_utf8_lossy(&bytes);
    let field = |key: &str| {
        config
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_owned)
    };
    let version = field("version").unwrap_or_default();
    let configured_exe = field("executable").unwrap_or_default();
    let wanted = format!("{major}.{minor}");
    if version != wanted || (!configured_exe.is_empty() && configured_exe != exe) {
        fail(&format!(
            "PyO3 is configured for Python {version} ({configured_exe}) by an earlier build, \
             but this build uses Python {wanted} ({exe}). Run `cargo clean` and build again."
        ));
    }
}

/// Compiles Python source of `src/api/python/` (the Python half of the
/// `parpy` module, and `parpy check`'s) once, here, with the very CPython
/// it is built against, so that no interpreter (the main one or a worker)
/// spends ~10 ms compiling it at import: they unmarshal the code.
fn compile_api(python: &str, source: &str, marshal: &str) {
    compile_as(
        python,
        source,
        marshal,
        &format!("<{}>", source.trim_end_matches(".py")),
    );
}

/// Compiles `src/api/python/<source>` to `OUT_DIR/<marshal>`, with `name` as its file name.
fn compile_as(python: &str, source: &str, marshal: &str, name: &str) {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join(marshal);
    let script = "import marshal, sys\n\
                  src = open(sys.argv[1], encoding='utf-8').read()\n\
                  code = compile(src, sys.argv[3], 'exec', dont_inherit=True, optimize=0)\n\
                  open(sys.argv[2], 'wb').write(marshal.dumps(code))";
    let path = format!("src/api/python/{source}");
    let status = Command::new(python)
        .args(["-I", "-c", script, &path])
        .arg(&out)
        .arg(name)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        fail(&format!("could not compile {path}"));
    }
}

/// Compiles every module of the package `src/api/python/<name>/` (as
/// `compile_api` does) and writes `OUT_DIR/frozen_<name>.rs`: a `FROZEN`
/// table of `FrozenModule`s that the launcher hands to CPython's frozen importer.
fn freeze_package(python: &str, name: &str) {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let dir = PathBuf::from("src/api/python").join(name);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", dir.display())))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .collect();
    files.sort();
    let mut table = String::from("static FROZEN: &[FrozenModule] = &[\n");
    for file in files {
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        let (module, is_package) = if stem == "__init__" {
            (name.to_string(), true)
        } else {
            (format!("{name}.{stem}"), false)
        };
        let marshal = format!("{module}.marshal");
        let source = format!("{name}/{stem}.py");
        compile_as(python, &source, &marshal, &format!("<frozen {module}>"));
        table += &format!(
            "    FrozenModule {{ name: c{module:?}, code: include_bytes!({:?}), is_package: {is_package} }},\n",
            out_dir.join(&marshal).display().to_string()
        );
    }
    table += "];\n";
    std::fs::write(out_dir.join(format!("frozen_{name}.rs")), table)
        .unwrap_or_else(|e| fail(&format!("cannot write the frozen table: {e}")));
}

fn fail(msg: &str) -> ! {
    eprintln!("error: parpy build: {msg}");
    std::process::exit(1);
}
