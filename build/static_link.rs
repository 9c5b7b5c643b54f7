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
//! archives it does not ship). Those modules are replaced: the first four by
//! ones that hand out OpenSSL's hashes (`_hashlib`, which hashlib prefers
//! anyway), `_blake2` by build/blake2.py, the same API in Python (OpenSSL for
//! plain hashes), because OpenSSL has no keyed or tree BLAKE2.
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
///
/// Only with `PARPY_LIBPYTHON=static`: the static link runs Python code
/// faster, but costs fidelity that a default must not lose. The archive has
/// no HACL* code (BLAKE2 with a key runs in Python, hashlib's private
/// attributes differ), and 3.14's remote debugging (`sys.remote_exec`,
/// `pdb -p`) finds the runtime only in a mapped file named like python.
pub fn link(python: &str) -> bool {
    println!("cargo:rerun-if-env-changed=PARPY_LIBPYTHON");
    // For the tests (tests/it/static_link.rs): what was asked.
    if !std::env::var("PARPY_LIBPYTHON").is_ok_and(|v| v == "static") {
        println!("cargo:rustc-env=PARPY_LIBPYTHON_LINK=shared (default)");
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
            println!("cargo:rustc-link-lib=static:+whole-archive,-bundle=parpy_libpython");
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

    let whole = repack(archive, out)?;

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
        .arg(&whole)
        .arg("-Wl,--no-whole-archive");
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
        "import _ctypes, zlib, pyexpat, decimal, _json, _pickle, _datetime, _blake2, _md5, _sha3\n\
         import _interpreters\n\
         assert _blake2.blake2b(b'', digest_size=8).hexdigest() == 'e4a6a0577479b2b4'",
    ]))?;
    Ok(libs)
}

/// The archive as `libparpy_libpython.a` in `out`, without the members whose
/// modules the stubs replace (they need the HACL* code the archive lacks),
/// to be linked whole: as the distribution links its own interpreter, every
/// object is in, so that extension modules (lib-dynload's `_interpreters`,
/// a venv's) find every C-API function they use, not only those that parpy
/// itself pulls from the archive.
fn repack(archive: &Path, out: &Path) -> Result<PathBuf, String> {
    let listing = Command::new("nm")
        .args(["-A", "--defined-only"])
        .arg(archive)
        .output()
        .map_err(|e| format!("cannot run nm: {e}"))?;
    let text = String::from_utf8_lossy(&listing.stdout);
    let stubbed: Vec<String> = HASH_MODULES
        .iter()
        .map(|(m, _)| *m)
        .chain(["_blake2"])
        .map(|m| format!("PyInit_{m}"))
        .collect();
    // Lines read `ARCHIVE:MEMBER:ADDRESS T SYMBOL`.
    let mut members: Vec<String> = text
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .last()
                .is_some_and(|s| stubbed.iter().any(|x| x == s))
        })
        .filter_map(|l| {
            let (head, _) = l.rsplit_once(':')?;
            let (_, member) = head.rsplit_once(':')?;
            Some(member.to_string())
        })
        .collect();
    members.sort();
    members.dedup();
    if members.len() != stubbed.len() {
        return Err(format!(
            "expected one member of {} for each of {stubbed:?}, found {members:?}",
            archive.display()
        ));
    }
    let whole = out.join("libparpy_libpython.a");
    std::fs::copy(archive, &whole)
        .map_err(|e| format!("cannot copy {}: {e}", archive.display()))?;
    run(Command::new("ar").arg("d").arg(&whole).args(&members))?;
    Ok(whole)
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

/// The built-in modules whose HACL* code the archive leaves out, as Python:
/// the first four hand out OpenSSL's objects (what hashlib prefers anyway),
/// `_blake2` is build/blake2.py.
const HASH_MODULES: [(&str, &str); 4] = [
    (
        "_md5",
        "from _hashlib import openssl_md5 as md5\nMD5Type = type(md5())\n_GIL_MINSIZE = 2048\n",
    ),
    (
        "_sha1",
        "from _hashlib import openssl_sha1 as sha1\nSHA1Type = type(sha1())\n_GIL_MINSIZE = 2048\n",
    ),
    (
        "_sha2",
        "from _hashlib import (openssl_sha224 as sha224, openssl_sha256 as sha256,\n\
         \x20   openssl_sha384 as sha384, openssl_sha512 as sha512)\n\
         SHA224Type = SHA256Type = SHA384Type = SHA512Type = type(sha256())\n\
         _GIL_MINSIZE = 2048\n",
    ),
    (
        "_sha3",
        "from _hashlib import (openssl_sha3_224 as sha3_224, openssl_sha3_256 as sha3_256,\n\
         \x20   openssl_sha3_384 as sha3_384, openssl_sha3_512 as sha3_512,\n\
         \x20   openssl_shake_128 as shake_128, openssl_shake_256 as shake_256)\n\
         implementation = 'OpenSSL'\n\
         _GIL_MINSIZE = 2048\n",
    ),
];

/// Init functions for those modules. Defining them here keeps the archive's
/// objects, which need the missing code, out of the link. Each module runs
/// its Python source (multi-phase init, so sub-interpreters with their own
/// GIL can import it).
const STUBS: &str = r#"
static const char *source_of(const char *name)
{
    if (strcmp(name, "_md5") == 0) return SRC__md5;
    if (strcmp(name, "_sha1") == 0) return SRC__sha1;
    if (strcmp(name, "_sha2") == 0) return SRC__sha2;
    if (strcmp(name, "_sha3") == 0) return SRC__sha3;
    return SRC__blake2;
}

static int exec_source(PyObject *module)
{
    const char *name = PyModule_GetName(module);
    if (name == NULL)
        return -1;
    char filename[64];
    snprintf(filename, sizeof filename, "<parpy %s>", name);
    PyObject *code = Py_CompileString(source_of(name), filename, Py_file_input);
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

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_source},
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {0, NULL},
};

#define HASH_MODULE(NAME)                                                   \
    static struct PyModuleDef def_##NAME = {                                \
        PyModuleDef_HEAD_INIT, #NAME, NULL, 0, NULL, slots,                 \
    };                                                                      \
    PyMODINIT_FUNC PyInit_##NAME(void) { return PyModuleDef_Init(&def_##NAME); }

HASH_MODULE(_md5)
HASH_MODULE(_sha1)
HASH_MODULE(_sha2)
HASH_MODULE(_sha3)
HASH_MODULE(_blake2)
"#;

/// `bytes` as a C string constant `name`.
fn c_string(name: &str, bytes: &[u8]) -> String {
    let mut c = format!("static const char {name}[] = {{");
    for (i, b) in bytes.iter().enumerate() {
        if i % 16 == 0 {
            c.push_str("\n   ");
        }
        c.push_str(&format!(" {b},"));
    }
    c.push_str(" 0\n};\n");
    c
}

/// The stubs' C source: the modules' Python sources as C strings, then `STUBS`.
fn stubs_source() -> Result<String, String> {
    println!("cargo:rerun-if-changed=build/blake2.py");
    let py = std::fs::read("build/blake2.py").map_err(|e| format!("build/blake2.py: {e}"))?;
    let mut c = String::from("#include <Python.h>\n#include <string.h>\n\n");
    c.push_str(&c_string("SRC__blake2", &py));
    for (name, src) in HASH_MODULES {
        c.push_str(&c_string(&format!("SRC_{name}"), src.as_bytes()));
    }
    c.push_str(STUBS);
    Ok(c)
}
