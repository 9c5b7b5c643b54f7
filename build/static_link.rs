//! Static libpython, where the distribution ships one (part of build.rs).
//!
//! Debian's and Ubuntu's `/usr/bin/python3.X` do not use `libpython3.X.so`:
//! they contain an optimised static libpython, and the same Python code runs
//! about 40% slower through the shared one. Their `libpython3.X-dev` ships
//! that static build as `config-3.X-*/libpython3.X-pic.a`. When it is there,
//! parpy links it the way the distribution links its interpreter: the
//! archive, the interpreter's own `LIBS`/`SYSLIBS`/`MODLIBS`, and
//! `-export-dynamic` (its `LINKFORSHARED`), so that extension modules find
//! the `Py*` symbols in the executable.
//!
//! PyO3's own `-lpython3.X` stays on the link line after the archive; every
//! symbol is resolved by then, so `--as-needed` drops it.
//!
//! The archive leaves out the HACL* objects that `_md5`, `_sha1`, `_sha2`,
//! `_sha3` and `_blake2` need (the distribution links them from separate
//! archives it does not ship). The first four are replaced by stubs that
//! raise `ImportError`; `hashlib` then takes MD5, SHA-1, SHA-2 and SHA-3 from
//! OpenSSL (`_hashlib`), as it prefers to anyway. `_blake2` is build/blake2.py,
//! the same API in Python (OpenSSL for plain hashes), because hashlib has no
//! other BLAKE2.
//!
//! Before saying so to cargo, a small C program is linked the same way and
//! run; if anything is missing, parpy links the shared libpython as before and
//! cargo prints a warning that says why. `PARPY_LIBPYTHON=shared` asks for the
//! shared link outright.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the interpreter says about how it was built.
struct Config {
    /// `config-3.X-*`, where the archive and `Makefile` are.
    libpl: PathBuf,
    /// `LIBDIR`, where the system libraries usually are.
    libdir: PathBuf,
    /// `INCLUDEPY`.
    include: PathBuf,
    /// `python3.X`, the stem of `libpython3.X-pic.a`.
    stem: String,
    /// The `-l` names from `LIBS`, `SYSLIBS` and `MODLIBS`, in order, once each.
    libs: Vec<String>,
}

/// Links the static libpython of `python` when it has one and it links and
/// runs; returns whether it did.
pub fn link(python: &str) -> bool {
    println!("cargo:rerun-if-env-changed=PARPY_LIBPYTHON");
    // For the tests (tests/it/static_link.rs): what was asked.
    if std::env::var("PARPY_LIBPYTHON").is_ok_and(|v| v == "shared") {
        println!("cargo:rustc-env=PARPY_LIBPYTHON_LINK=shared (asked)");
        return false;
    }
    let linked = link_static(python);
    let how = if linked { "static" } else { "shared" };
    println!("cargo:rustc-env=PARPY_LIBPYTHON_LINK={how}");
    linked
}

fn link_static(python: &str) -> bool {
    let Some(config) = probe(python) else {
        return false;
    };
    let archive = config.libpl.join(format!("lib{}-pic.a", config.stem));
    if !archive.is_file() {
        // pyenv, python.org and uv builds: their python3.X links the shared
        // libpython too, so parpy already runs at its speed.
        return false;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    match try_link(&config, &archive, &out) {
        Ok(libs) => {
            println!("cargo:rerun-if-changed={}", archive.display());
            println!("cargo:rustc-link-search=native={}", out.display());
            println!("cargo:rustc-link-lib=static:+whole-archive,-bundle=parpy_hacl_stubs");
            println!("cargo:rustc-link-search=native={}", config.libpl.display());
            println!("cargo:rustc-link-lib=static:-bundle={}-pic", config.stem);
            for lib in libs {
                println!("cargo:rustc-link-lib=dylib:+verbatim={lib}");
            }
            println!("cargo:rustc-link-arg=-Wl,--export-dynamic");
            true
        }
        Err(why) => {
            println!(
                "cargo:warning=parpy links the shared libpython, which runs Python code slower \
                 than {python} does: {why}"
            );
            false
        }
    }
}

fn probe(python: &str) -> Option<Config> {
    let script = "import sysconfig as s\n\
                  for k in ('LIBPL', 'LIBDIR', 'INCLUDEPY', 'LDVERSION', 'LIBS', 'SYSLIBS', 'MODLIBS'):\n\
                  \x20   print(' '.join(str(s.get_config_var(k) or '').split()))";
    let out = Command::new(python)
        .args(["-I", "-c", script])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let v: Vec<&str> = text.lines().collect();
    if v.len() < 7 || v[0].is_empty() {
        return None;
    }
    let mut libs: Vec<String> = Vec::new();
    for word in v[4..7].iter().flat_map(|l| l.split_whitespace()) {
        if let Some(name) = word.strip_prefix("-l")
            && !libs.iter().any(|l| l == name)
        {
            libs.push(name.to_string());
        }
    }
    Some(Config {
        libpl: v[0].into(),
        libdir: v[1].into(),
        include: v[2].into(),
        stem: format!("python{}", v[3]),
        libs,
    })
}

/// Builds the stubs, finds each system library, then links and runs a
/// program that starts the interpreter and imports what depends on them.
/// Returns the system libraries as file names for `-l:`.
fn try_link(config: &Config, archive: &Path, out: &Path) -> Result<Vec<String>, String> {
    let stubs_c = out.join("parpy_hacl_stubs.c");
    let stubs_o = out.join("parpy_hacl_stubs.o");
    let stubs_a = out.join("libparpy_hacl_stubs.a");
    std::fs::write(&stubs_c, stubs_source()?).map_err(|e| e.to_string())?;
    run(Command::new(cc())
        .args(["-O2", "-fPIC", "-c", "-o"])
        .arg(&stubs_o)
        .arg(format!("-I{}", config.include.display()))
        .arg(&stubs_c))?;
    let _ = std::fs::remove_file(&stubs_a);
    run(Command::new("ar").arg("rcs").arg(&stubs_a).arg(&stubs_o))?;

    let mut libs = Vec::new();
    for name in &config.libs {
        libs.push(find_lib(name, &config.libdir).ok_or_else(|| {
            format!("the library -l{name} that the static libpython needs is not installed")
        })?);
    }

    let main_c = out.join("parpy_static_check.c");
    let main_exe = out.join("parpy_static_check");
    std::fs::write(
        &main_c,
        "int Py_BytesMain(int, char **);\nint main(int c, char **v) { return Py_BytesMain(c, v); }\n",
    )
    .map_err(|e| e.to_string())?;
    let mut cmd = Command::new(cc());
    cmd.arg("-o")
        .arg(&main_exe)
        .arg(&main_c)
        .arg("-Wl,--whole-archive")
        .arg(&stubs_a)
        .arg("-Wl,--no-whole-archive")
        .arg(archive);
    for lib in &libs {
        cmd.arg(format!("-l:{lib}"));
    }
    cmd.args(["-Wl,--export-dynamic", "-lpthread"]);
    run(&mut cmd)?;
    // The modules that load system libraries or resolve Py* symbols in the
    // executable: a missing one shows up here, not at a user's import.
    run(Command::new(&main_exe).args([
        "-I",
        "-c",
        "import _ctypes, zlib, pyexpat, decimal, _json, _pickle, _datetime, _blake2\n\
         assert _blake2.blake2b(b'', digest_size=8).hexdigest() == 'e4a6a0577479b2b4'",
    ]))?;
    Ok(libs)
}

/// `-lNAME` as a file name: `libNAME.so` when the development link is
/// installed, otherwise the runtime `libNAME.so.N` (for example libzstd.so.1
/// without libzstd-dev), which links the same.
fn find_lib(name: &str, libdir: &Path) -> Option<String> {
    let multiarch = Path::new("/usr/lib").join(libdir.file_name()?);
    let dirs = [
        libdir.to_path_buf(),
        multiarch,
        PathBuf::from("/lib").join(libdir.file_name()?),
        PathBuf::from("/usr/lib"),
        PathBuf::from("/lib"),
    ];
    let plain = format!("lib{name}.so");
    for dir in &dirs {
        if dir.join(&plain).exists() {
            return Some(plain);
        }
        if dir.join(format!("lib{name}.a")).exists() {
            return Some(format!("lib{name}.a"));
        }
    }
    for dir in &dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut found: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|f| {
                f.strip_prefix(&plain)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect();
        found.sort();
        if let Some(f) = found.into_iter().next() {
            return Some(f);
        }
    }
    None
}

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

fn run(cmd: &mut Command) -> Result<(), String> {
    match cmd.output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .take(5)
                .collect::<Vec<_>>()
                .join("; ")
        )),
        Err(e) => Err(format!("cannot run {:?}: {e}", cmd.get_program())),
    }
}

/// Init functions for the built-in modules whose HACL* code the archive
/// leaves out. Defining them here keeps their objects out of the link.
/// `_blake2` runs build/blake2.py (`BLAKE2_SRC`, prepended by `stubs_source`).
const STUBS: &str = r#"
static PyObject *missing(const char *name)
{
    PyErr_Format(PyExc_ImportError,
                 "No module named '%s': parpy links the distribution's static libpython, "
                 "which leaves out its HACL* hash code; hashlib uses OpenSSL instead",
                 name);
    return NULL;
}

PyMODINIT_FUNC PyInit__md5(void) { return missing("_md5"); }
PyMODINIT_FUNC PyInit__sha1(void) { return missing("_sha1"); }
PyMODINIT_FUNC PyInit__sha2(void) { return missing("_sha2"); }
PyMODINIT_FUNC PyInit__sha3(void) { return missing("_sha3"); }

static int blake2_exec(PyObject *module)
{
    PyObject *code = Py_CompileString(BLAKE2_SRC, "<parpy _blake2>", Py_file_input);
    if (code == NULL)
        return -1;
    PyObject *dict = PyModule_GetDict(module);
    PyObject *res = PyEval_EvalCode(code, dict, dict);
    Py_DECREF(code);
    if (res == NULL)
        return -1;
    Py_DECREF(res);
    return 0;
}

static PyModuleDef_Slot blake2_slots[] = {
    {Py_mod_exec, blake2_exec},
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {0, NULL},
};

static struct PyModuleDef blake2_def = {
    PyModuleDef_HEAD_INIT, "_blake2", NULL, 0, NULL, blake2_slots,
};

PyMODINIT_FUNC PyInit__blake2(void) { return PyModuleDef_Init(&blake2_def); }
"#;

/// The stubs' C source: Python.h, build/blake2.py as a C string, `STUBS`.
fn stubs_source() -> Result<String, String> {
    println!("cargo:rerun-if-changed=build/blake2.py");
    let py = std::fs::read("build/blake2.py").map_err(|e| format!("build/blake2.py: {e}"))?;
    let mut c = String::from("#include <Python.h>\n\nstatic const char BLAKE2_SRC[] = {");
    for (i, b) in py.iter().enumerate() {
        if i % 16 == 0 {
            c.push_str("\n   ");
        }
        c.push_str(&format!(" {b},"));
    }
    c.push_str(" 0\n};\n");
    c.push_str(STUBS);
    Ok(c)
}
