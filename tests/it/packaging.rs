//! Packaging: the relocatable distribution (`packaging/dist.sh`: tarball and
//! .deb) and single-file bundles (`parpy bundle`), each run where no Python
//! can be found.
//!
//! "No Python" is a mount namespace (`unshare -m`, as root) in which the build
//! Python's prefix, pyenv, /usr/local and /usr/lib/python3* are empty tmpfs
//! folders, every /usr/bin/python* and libpython* file is /dev/null, and the
//! environment is empty (`env -i`). Where unshare is not permitted, the tests
//! fall back to an empty environment with `PATH=/nonexistent` and rely on the
//! check that the test scripts make themselves (`isolated`): no loaded module,
//! no mapped libpython and no `sys.prefix` under the build Python's prefix,
//! in the main interpreter and in the workers. They print which one they used
//! (`--nocapture`); PARPY_TEST_NO_UNSHARE=1 forces the fallback.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::common::*;

fn stub_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_parpy-bundle-stub"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The prefix of the Python that parpy was built against (e.g. a pyenv version,
/// or /usr for a distribution's python3.X).
fn build_prefix() -> PathBuf {
    let exe = fs::canonicalize(python_bin()).unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// A distribution's Python lives in /usr among everything else, which cannot be hidden
/// or forbidden as a whole: there its own files stand for it.
fn is_distribution_python() -> bool {
    build_prefix() == Path::new("/usr")
}

/// The build Python's "3.X", its ABI flags ("d" for a debug build), and the folder
/// of lib/python3.X/ that its `site` searches ("site-packages", or "dist-packages"
/// with Debian's site.py), which name the parts of a distribution tree or a bundle.
fn py_version() -> &'static (String, String, String) {
    static V: OnceLock<(String, String, String)> = OnceLock::new();
    V.get_or_init(|| {
        let o = Run::python()
            .args([
                "-I",
                "-S",
                "-c",
                "import sys, site; print('%d.%d' % sys.version_info[:2]); print(sys.abiflags)\n\
                 lib = '/p/lib/python%d.%d/' % sys.version_info[:2]\n\
                 print([p[len(lib):] for p in site.getsitepackages(['/p']) if p.startswith(lib)][0])",
            ])
            .run();
        let mut lines = ok(&o).lines().map(String::from);
        let version = lines.next().unwrap();
        let abiflags = lines.next().unwrap();
        let site_dir = lines.next().unwrap();
        (version, abiflags, site_dir)
    })
}

/// lib/python3.X/site-packages (or dist-packages), where a tree or bundle keeps dependencies.
fn lib_site() -> String {
    format!("{}/{}", lib_python(), py_version().2)
}

/// lib/python3.X, where a distribution tree or an unpacked bundle keeps the stdlib.
fn lib_python() -> String {
    format!("lib/python{}", py_version().0)
}

/// Where nothing the isolated app loads may come from, as a Python str or tuple.
fn forbidden_prefixes() -> String {
    if is_distribution_python() {
        let (v, flags, _) = py_version();
        format!(
            "('/usr/lib/python{v}', '/usr/bin/python', '/usr/lib/x86_64-linux-gnu/libpython{v}{flags}', '/usr/lib/aarch64-linux-gnu/libpython{v}{flags}')"
        )
    } else {
        format!("{:?}", build_prefix().to_string_lossy())
    }
}

/// The parallel example every test runs: --add'ed modules used in workers,
/// `@parpy.parallel` map, `__parallel__` with `__gather__`, and a check that
/// nothing comes from the build machine's Python.
fn app_source() -> String {
    format!(
        r#"import os, sys
import parpy
import helper
from shapes import area

FORBIDDEN = {forbidden}
# A parpy linked to a static libpython (build/static_link.rs) maps none.
STATIC = {static_link}

def isolated():
    """Nothing of the build machine's Python is loaded here."""
    maps = [l.split(None, 5)[-1].strip() for l in open("/proc/self/maps")]
    libs = [m for m in maps if m.rsplit("/", 1)[-1].startswith("libpython")]
    files = [getattr(m, "__file__", None) or "" for m in list(sys.modules.values())]
    paths = libs + files + [sys.prefix, sys.base_prefix, sys.executable]
    return (bool(libs) or STATIC) and not any(p.startswith(FORBIDDEN) for p in paths)

@parpy.parallel
def work(n):
    return helper.square(n) + area.unit()

def __parallel__(ctx):
    return ctx.rank, helper.square(ctx.rank), isolated()

def __gather__(results):
    print("gather", results)

if __name__ == "__main__":
    print("args", sys.argv[1:])
    print("map", work.map(range(8)))
    print("isolated", isolated())
"#,
        forbidden = forbidden_prefixes(),
        static_link = if env!("PARPY_LIBPYTHON_LINK") == "static" {
            "True"
        } else {
            "False"
        },
    )
}

const EXPECTED: &str = "args ['x', 'y z']\n\
                        map [1, 2, 5, 10, 17, 26, 37, 50]\n\
                        isolated True\n\
                        gather [(0, 0, True), (1, 1, True)]\n";

/// A folder with app.py, helper.py and the package shapes/.
fn app_dir(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    dir.write("app.py", &app_source());
    dir.write("helper.py", "def square(n):\n    return n * n\n");
    dir.write("shapes/__init__.py", "");
    dir.write("shapes/area.py", "def unit():\n    return 1\n");
    dir
}

/// How the tests hide Python.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sandbox {
    /// A mount namespace without any Python in it.
    Namespace,
    /// Only an empty environment; the scripts' own `isolated()` check does the rest.
    EmptyEnv,
}

fn sandbox() -> Sandbox {
    static S: OnceLock<Sandbox> = OnceLock::new();
    *S.get_or_init(|| {
        // PARPY_TEST_NO_UNSHARE=1 tries the fallback on a machine that has unshare.
        let ok = std::env::var_os("PARPY_TEST_NO_UNSHARE").is_none()
            && Run::new("unshare")
                .args(["-m", "sh", "-c", "mount -t tmpfs tmpfs /mnt"])
                .run()
                .code
                == 0;
        let s = if ok {
            Sandbox::Namespace
        } else {
            Sandbox::EmptyEnv
        };
        eprintln!("packaging tests: no-Python sandbox = {s:?}");
        s
    })
}

/// Mounts that hide every Python, then `env -i "$@"`. With $OPT_PARPY set, that
/// folder appears as /opt/parpy (for the .deb).
const HIDE_PYTHON: &str = r#"set -e
IFS=:
for d in $HIDE_DIRS; do
    if [ -d "$d" ]; then mount -t tmpfs -o ro tmpfs "$d"; fi
done
unset IFS
for d in /usr/lib/python3*; do
    if [ -d "$d" ]; then mount -t tmpfs -o ro tmpfs "$d"; fi
done
for f in /usr/bin/python* /usr/lib/*/libpython* /usr/lib/libpython*; do
    if [ -f "$f" ] && [ ! -L "$f" ]; then mount --bind /dev/null "$f"; fi
done
if [ -n "$OPT_PARPY" ]; then
    mount -t tmpfs tmpfs /opt
    mkdir /opt/parpy
    mount --bind "$OPT_PARPY" /opt/parpy
fi
for py in python3 python python3.15 python3.14 python3.14d python3.13 python3.12 python3.11; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c pass >/dev/null 2>&1; then
        echo "sandbox: $py still runs" >&2
        exit 97
    fi
done
exec env -i "$@"
"#;

/// Runs the test app with [`run_without_python`] and checks that it
/// exited 0 and printed [`EXPECTED`].
fn assert_app_runs(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    opt_parpy: Option<&Path>,
    cwd: &Path,
) {
    let o = run_without_python(program, args, env, opt_parpy, cwd);
    assert_eq!(o.code, 0, "{o:#?}");
    assert_eq!(o.stdout, EXPECTED, "{}", o.stderr);
}

/// Runs `program args` where no Python can be found, with only `env` set.
fn run_without_python(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    opt_parpy: Option<&Path>,
    cwd: &Path,
) -> Output {
    let mut vars: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    match sandbox() {
        Sandbox::Namespace => {
            let mut hide = vec![PathBuf::from("/usr/local")];
            // /usr/lib/python3*, /usr/bin/python* and libpython* are hidden one by one.
            if !is_distribution_python() {
                hide.push(build_prefix());
            }
            hide.push(PathBuf::from(
                std::env::var_os("PYENV_ROOT").unwrap_or_else(|| "/root/.pyenv".into()),
            ));
            // Never hide what the test itself runs from.
            let keep = [repo(), std::env::temp_dir(), parpy_bin()];
            hide.retain(|h| !keep.iter().any(|k| k.starts_with(h)));
            let hide: Vec<String> = hide
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            let mut run = Run::new("unshare")
                .args(["-m", "sh", "-c", HIDE_PYTHON, "sh"])
                .args(&vars)
                .arg(program)
                .args(args)
                .env("HIDE_DIRS", hide.join(":"))
                .env(
                    "OPT_PARPY",
                    opt_parpy.map(Path::as_os_str).unwrap_or_default(),
                )
                .cwd(cwd);
            run = run.env_remove("PYTHONDONTWRITEBYTECODE");
            run.run()
        }
        Sandbox::EmptyEnv => {
            if !vars.iter().any(|v| v.starts_with("PATH=")) {
                vars.push("PATH=/nonexistent".into());
            }
            Run::new("env")
                .arg("-i")
                .args(&vars)
                .arg(program)
                .args(args)
                .cwd(cwd)
                .run()
        }
    }
}

fn sh(cmd: &str, cwd: &Path) -> Output {
    Run::new("sh").args(["-c", cmd]).cwd(cwd).run()
}

// ---------------------------------------------------------------------------
// The distribution
// ---------------------------------------------------------------------------

#[test]
fn distribution_tarball_and_deb_run_parallel_scripts_without_python() {
    let work = app_dir("dist");
    let out = work.path().join("out");
    let built = Run::new(repo().join("packaging").join("dist.sh"))
        .arg(&out)
        .env("PARPY_BIN", parpy_bin())
        .env("PARPY_STUB", stub_bin())
        .env("PARPY_DIST_GZIP", "1")
        // A hang guard only: dist.sh copies the standard library twice and compresses
        // about 70 MB twice, which took over 2 minutes on the 2-core machine with a
        // load of 30 (other builds and test suites).
        .timeout(std::time::Duration::from_secs(600))
        .run();
    assert_eq!(built.code, 0, "dist.sh failed: {built:#?}");

    let version = env!("CARGO_PKG_VERSION");
    let names: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // Both names carry the Python tag: one parpy binary serves one CPython minor version.
    let (py, flags, _) = py_version();
    let pytag = format!("cp{}{flags}", py.replace('.', ""));
    let tarball = format!(
        "parpy-{version}-{pytag}-{}-linux.tar.gz",
        std::env::consts::ARCH
    );
    let debarch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let deb = format!("parpy_{version}+{pytag}_{debarch}.deb");
    assert!(names.contains(&tarball), "no {tarball} in {names:?}");
    assert!(names.contains(&deb), "no {deb} in {names:?}");

    // The tarball: one folder with bin/, lib/ and a standard library without tests.
    let unpacked = work.path().join("unpacked");
    fs::create_dir(&unpacked).unwrap();
    let o = sh(&format!("tar -xzf ../out/{tarball}"), &unpacked);
    assert_eq!(o.code, 0, "{o:#?}");
    let top = unpacked.join(tarball.trim_end_matches(".tar.gz"));
    let parpy = top.join("bin").join("parpy");
    let stdlib = top.join(lib_python());
    for p in [
        parpy.clone(),
        top.join("lib/parpy/parpy-bundle-stub"),
        stdlib.join("os.py"),
        stdlib.join("json/__init__.py"),
    ] {
        assert!(p.is_file(), "{} missing", p.display());
    }
    // libpython ships beside parpy unless parpy carries a static one.
    let libpython = top.join(format!(
        "lib/libpython{}{}.so.1.0",
        py_version().0,
        py_version().1
    ));
    assert_eq!(
        libpython.is_file(),
        env!("PARPY_LIBPYTHON_LINK") != "static",
        "{}",
        libpython.display()
    );
    assert!(stdlib.join("lib-dynload").is_dir());
    assert!(!stdlib.join("test").exists(), "the test suite was shipped");
    assert!(!stdlib.join("idlelib/idle_test").exists());
    assert_eq!(
        fs::read_dir(top.join(lib_site())).unwrap().count(),
        0,
        "site-packages of the build machine was shipped"
    );
    let dynload: Vec<String> = fs::read_dir(stdlib.join("lib-dynload"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // (_ctypes: _json is built into Debian's libpython, _ctypes is an extension everywhere)
    assert!(dynload.iter().any(|n| n.starts_with("_ctypes.")));
    assert!(!dynload.iter().any(|n| n.starts_with("_testcapi.")));
    let elf = sh(&format!("readelf -d '{}'", parpy.display()), &unpacked);
    if elf.code == 0 {
        assert!(elf.stdout.contains("$ORIGIN/../lib"), "{}", elf.stdout);
    }

    // It runs the parallel example with no Python around, wherever it is unpacked.
    let moved = work.path().join("elsewhere");
    fs::rename(&top, &moved).unwrap();
    let parpy = moved.join("bin").join("parpy");
    let app = work.path().join("app.py");
    let app_s = app.to_str().unwrap();
    assert_app_runs(
        &parpy,
        &[app_s, "x", "y z"],
        &[("PARPY_WORKERS", "2")],
        None,
        work.path(),
    );

    // The .deb: /opt/parpy and a /usr/bin/parpy link; run as `parpy` from PATH.
    let fields = sh(
        &format!("dpkg-deb -f ../out/{deb} Package Version Architecture Depends"),
        &unpacked,
    );
    assert_eq!(fields.code, 0, "{fields:#?}");
    assert!(
        fields.stdout.contains("Package: parpy"),
        "{}",
        fields.stdout
    );
    assert!(
        fields
            .stdout
            .contains(&format!("Version: {version}+{pytag}")),
        "{}",
        fields.stdout
    );
    let root = work.path().join("debroot");
    let o = sh(&format!("dpkg-deb -x out/{deb} debroot"), work.path());
    assert_eq!(o.code, 0, "{o:#?}");
    let link = fs::read_link(root.join("usr/bin/parpy")).unwrap();
    assert_eq!(link, Path::new("/opt/parpy/bin/parpy"));
    assert!(
        root.join("opt/parpy")
            .join(lib_python())
            .join("os.py")
            .is_file()
    );
    match sandbox() {
        Sandbox::Namespace => {
            // /usr/bin/parpy of the package, found on PATH, with the
            // package's /opt/parpy mounted in place.
            let path = format!("{}:/usr/bin:/bin", root.join("usr/bin").display());
            assert_app_runs(
                Path::new("/bin/sh"),
                &["-c", "exec parpy \"$@\"", "sh", app_s, "x", "y z"],
                &[("PARPY_WORKERS", "2"), ("PATH", &path)],
                Some(&root.join("opt/parpy")),
                work.path(),
            );
        }
        Sandbox::EmptyEnv => {
            assert_app_runs(
                &root.join("opt/parpy/bin/parpy"),
                &[app_s, "x", "y z"],
                &[("PARPY_WORKERS", "2")],
                None,
                work.path(),
            );
        }
    }

    // The distribution's own parpy builds bundles, with no Python around either.
    let o = run_without_python(
        &parpy,
        &[
            "bundle",
            app_s,
            "-o",
            "fromdist",
            "--add",
            "helper.py",
            "--add",
            "shapes",
            "--level",
            "1",
        ],
        &[],
        None,
        work.path(),
    );
    assert_eq!(o.code, 0, "{o:#?}");
    let cache = work.path().join("cache");
    assert_app_runs(
        &work.path().join("fromdist"),
        &["x", "y z"],
        &[
            ("PARPY_WORKERS", "2"),
            ("XDG_CACHE_HOME", cache.to_str().unwrap()),
        ],
        None,
        work.path(),
    );
}

// ---------------------------------------------------------------------------
// Bundles
// ---------------------------------------------------------------------------

/// `parpy bundle ARGS` in `dir`; asserts success.
fn bundle(dir: &Path, args: &[&str]) -> Output {
    let o = Run::parpy()
        .arg("bundle")
        .args(args)
        .args(["--level", "1"])
        .cwd(dir)
        .run();
    assert_eq!(o.code, 0, "parpy bundle {args:?} failed: {o:#?}");
    o
}

/// Builds `app` from app.py with helper.py and shapes/ in `dir`.
fn build_app(dir: &TempDir) -> PathBuf {
    bundle(
        dir.path(),
        &[
            "app.py",
            "-o",
            "app",
            "--add",
            "helper.py",
            "--add",
            "shapes",
        ],
    );
    dir.path().join("app")
}

/// Runs a bundle with its cache in `cache`, no Python around.
fn run_bundle(app: &Path, cache: &Path, args: &[&str]) -> Output {
    run_without_python(
        app,
        args,
        &[
            ("PARPY_WORKERS", "2"),
            ("XDG_CACHE_HOME", cache.to_str().unwrap()),
        ],
        None,
        app.parent().unwrap(),
    )
}

/// The unpacked bundles in a cache folder.
fn unpacked(cache: &Path) -> Vec<PathBuf> {
    match fs::read_dir(cache.join("parpy").join("bundles")) {
        Ok(d) => d.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn bundle_runs_like_the_script_without_python() {
    let dir = app_dir("bundle");
    let app = build_app(&dir);
    assert!(fs::metadata(&app).unwrap().permissions().mode() & 0o111 != 0);

    // The script itself, under parpy, for comparison.
    let reference = Run::parpy()
        .args(["app.py", "x", "y z"])
        .env("PARPY_WORKERS", "2")
        .cwd(dir.path())
        .run();
    assert_eq!(
        ok(&reference),
        EXPECTED.replace("True", "False"),
        "{}",
        reference.stderr
    );

    let cache = dir.path().join("cache");
    for run in ["first", "later"] {
        let o = run_bundle(&app, &cache, &["x", "y z"]);
        assert_eq!(o.code, 0, "{run} run: {o:#?}");
        assert_eq!(o.stdout, EXPECTED, "{run} run: {}", o.stderr);
    }
    let dirs = unpacked(&cache);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let name = dirs[0].file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(name.len(), 64, "cache folder named by the sha256: {name}");
    assert!(dirs[0].join("app/helper.py").is_file());
    assert!(dirs[0].join("app/shapes/area.py").is_file());

    // sys.argv[0] is the app as it was called, as python shows a script's path;
    // sys.executable is a parpy that runs python command lines.
    let probe = app_dir("bundle-argv");
    probe.write(
        "probe.py",
        "import sys, subprocess\nprint(sys.argv)\n\
         print(subprocess.run([sys.executable, '-c', 'print(6 * 7)'], capture_output=True, text=True).stdout.strip())\n",
    );
    bundle(probe.path(), &["probe.py", "-o", "probe"]);
    let o = run_without_python(
        Path::new("./probe"),
        &["a", "-b"],
        &[("XDG_CACHE_HOME", cache.to_str().unwrap())],
        None,
        probe.path(),
    );
    assert_eq!(ok(&o), "['./probe', 'a', '-b']\n42\n", "{}", o.stderr);
}

#[test]
fn bundle_carries_dependencies_from_requirements_and_venvs() {
    let dir = TempDir::new("bundle-deps");
    // A pure-Python wheel, made by hand, installed offline by pip.
    let make_wheel = r#"
import sys, zipfile, base64, hashlib
files = {
    "tinydep/__init__.py": "def hello(n):\n    return 'tinydep says %d' % n\n",
    "tinydep-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinydep\nVersion: 1.0\n",
    "tinydep-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for name, text in files.items():
        data = text.encode()
        z.writestr(name, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (name, digest, len(data)))
    record.append("tinydep-1.0.dist-info/RECORD,,")
    z.writestr("tinydep-1.0.dist-info/RECORD", "\n".join(record) + "\n")
"#;
    let wheel = dir.path().join("tinydep-1.0-py3-none-any.whl");
    let o = Run::python().args(["-c", make_wheel]).arg(&wheel).run();
    assert_eq!(o.code, 0, "{o:#?}");
    dir.write(
        "requirements.txt",
        &format!("--no-index\n{}\n", wheel.display()),
    );
    let script = "import parpy, tinydep\n\
                  @parpy.parallel\n\
                  def f(n):\n    return tinydep.hello(n)\n\
                  if __name__ == '__main__':\n    print(f.map([1, 2]))\n";
    dir.write("uses_dep.py", script);
    bundle(
        dir.path(),
        &["uses_dep.py", "-o", "with_req", "-r", "requirements.txt"],
    );
    let cache = dir.path().join("cache");
    let o = run_bundle(&dir.path().join("with_req"), &cache, &[]);
    assert_eq!(
        ok(&o),
        "['tinydep says 1', 'tinydep says 2']\n",
        "{}",
        o.stderr
    );
    let site = unpacked(&cache)[0].join(lib_site());
    assert!(site.join("tinydep-1.0.dist-info").is_dir());
    assert!(!site.join("bin").exists());

    // The same dependency from an existing virtualenv's site-packages.
    let venv = dir.path().join("venv");
    let o = Run::python()
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .run();
    assert_eq!(o.code, 0, "{o:#?}");
    let sp = venv.join(lib_python()).join("site-packages/tinydep");
    fs::create_dir_all(&sp).unwrap();
    fs::write(
        sp.join("__init__.py"),
        "def hello(n):\n    return 'venv dep %d' % n\n",
    )
    .unwrap();
    bundle(
        dir.path(),
        &["uses_dep.py", "-o", "with_venv", "--venv", "venv"],
    );
    let o = run_bundle(&dir.path().join("with_venv"), &cache, &[]);
    assert_eq!(ok(&o), "['venv dep 1', 'venv dep 2']\n", "{}", o.stderr);
}

#[test]
fn bundle_refuses_compiled_extensions_unless_allowed() {
    let dir = TempDir::new("bundle-native");
    dir.write("main.py", "print('ok')\n");
    dir.write("fastpkg/__init__.py", "");
    dir.write(
        "fastpkg/_speedups.cpython-313-x86_64-linux-gnu.so",
        "not really ELF",
    );
    let o = Run::parpy()
        .args(["bundle", "main.py", "-o", "app", "--add", "fastpkg"])
        .cwd(dir.path())
        .run();
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(
        o.stderr
            .contains("app/fastpkg/_speedups.cpython-313-x86_64-linux-gnu.so"),
        "the extension is not named: {}",
        o.stderr
    );
    assert!(!dir.path().join("app").exists());

    let o = bundle(
        dir.path(),
        &["main.py", "-o", "app", "--add", "fastpkg", "--allow-native"],
    );
    assert!(o.stderr.contains("warning"), "{}", o.stderr);
    assert!(dir.path().join("app").is_file());

    let help = Run::parpy().args(["bundle", "--help"]).run();
    assert!(
        ok(&help).contains("REFUSES compiled extension modules"),
        "{}",
        help.stdout
    );
}

/// The payload's offset and length, from the bundle's trailer.
fn payload_range(bundle: &[u8]) -> (usize, usize) {
    let t = &bundle[bundle.len() - 64..];
    assert_eq!(&t[..8], b"PARPYBN1");
    let off = u64::from_le_bytes(t[8..16].try_into().unwrap()) as usize;
    let len = u64::from_le_bytes(t[16..24].try_into().unwrap()) as usize;
    (off, len)
}

fn assert_refused(o: &Output, what: &str) {
    assert_eq!(o.code, 126, "{o:#?}");
    assert_eq!(o.stdout, "", "the app ran: {o:#?}");
    assert_eq!(o.stderr.lines().count(), 1, "{o:#?}");
    assert!(o.stderr.contains(what), "{o:#?}");
}

#[test]
fn tampered_bundles_are_refused() {
    let dir = TempDir::new("bundle-tamper");
    dir.write("hello.py", "print('hello')\n");
    bundle(dir.path(), &["hello.py", "-o", "hello"]);
    let good = fs::read(dir.path().join("hello")).unwrap();
    let (off, len) = payload_range(&good);
    let flip = |name: &str| {
        let mut bytes = good.clone();
        bytes[off + len / 2] ^= 0x01;
        let p = dir.path().join(name);
        fs::write(&p, &bytes).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    };

    // A fresh bundle with one flipped payload byte never runs.
    let cache = dir.path().join("cache");
    let bad = flip("bad");
    let o = run_bundle(&bad, &cache, &[]);
    assert_refused(&o, "fails its sha256 check");
    assert!(unpacked(&cache).is_empty(), "{:?}", unpacked(&cache));

    // Nor does one that ran before and was modified since (in place).
    let o = run_bundle(&dir.path().join("hello"), &cache, &[]);
    assert_eq!(ok(&o), "hello\n", "{}", o.stderr);
    let o = run_bundle(&dir.path().join("hello"), &cache, &[]);
    assert_eq!(ok(&o), "hello\n", "{}", o.stderr);
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("hello"))
            .unwrap();
        f.seek(SeekFrom::Start((off + len / 2) as u64)).unwrap();
        f.write_all(&[good[off + len / 2] ^ 0x01]).unwrap();
    }
    let o = run_bundle(&dir.path().join("hello"), &cache, &[]);
    assert_refused(&o, "fails its sha256 check");

    // A truncated bundle is damaged.
    let cut = dir.path().join("cut");
    fs::write(&cut, &good[..good.len() - 1000]).unwrap();
    fs::set_permissions(&cut, fs::Permissions::from_mode(0o755)).unwrap();
    let o = run_bundle(&cut, &cache, &[]);
    assert_eq!(o.code, 126, "{o:#?}");
    assert_eq!(o.stdout, "", "{o:#?}");
}

#[test]
fn concurrent_first_runs_share_one_unpacked_runtime() {
    let dir = app_dir("bundle-race");
    let app = build_app(&dir);
    let cache = dir.path().join("cache");
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let (app, cache) = (app.clone(), cache.clone());
            std::thread::spawn(move || run_bundle(&app, &cache, &["x", "y z"]))
        })
        .collect();
    for r in runs {
        let o = r.join().unwrap();
        assert_eq!(o.code, 0, "{o:#?}");
        assert_eq!(o.stdout, EXPECTED, "{}", o.stderr);
    }
    let left: Vec<OsString> = fs::read_dir(cache.join("parpy/bundles"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left.len(),
        1,
        "one unpacked runtime, no leftovers: {left:?}"
    );
}
