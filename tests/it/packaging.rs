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

/// The unpacked bundles in a cache folder (`XDG_CACHE_HOME`).
fn unpacked(cache: &Path) -> Vec<PathBuf> {
    entries(&cache.join("parpy").join("bundles"))
        .into_iter()
        .map(|n| cache.join("parpy").join("bundles").join(n))
        .collect()
}

/// The entries (sha256-named folders) of a bundle cache root, sorted.
fn entries(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = match fs::read_dir(root) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Temporary and trash folders left in a bundle cache root.
fn leftovers(root: &Path) -> Vec<String> {
    match fs::read_dir(root) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".tmp-") || n.starts_with(".trash-"))
            .collect(),
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
        // (the cache's own lock)
        .filter(|n| n != ".parpy-lock")
        .collect();
    assert_eq!(
        left.len(),
        1,
        "one unpacked runtime, no leftovers: {left:?}"
    );
}

// ---------------------------------------------------------------------------
// The bundle cache: PARPY_BUNDLE_CACHE, --cache, --clean, the age policy, trust
// ---------------------------------------------------------------------------

/// Runs a bundle with `PARPY_BUNDLE_CACHE=root` and `env`, no Python around.
fn run_in_cache(app: &Path, root: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut vars = vec![
        ("PARPY_WORKERS", "2"),
        ("PARPY_BUNDLE_CACHE", root.to_str().unwrap()),
    ];
    vars.extend_from_slice(env);
    run_without_python(app, args, &vars, None, app.parent().unwrap())
}

/// `parpy bundle --cache` or `parpy bundle --clean` on the cache `root`.
fn cache_cmd(flag: &str, root: &Path) -> Output {
    Run::parpy()
        .args(["bundle", flag])
        .env("PARPY_BUNDLE_CACHE", root)
        .run()
}

/// Sets the mtime of `p` to a little over `days` days ago.
fn set_days_ago(p: &Path, days: u64) {
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(days * 86400 + 3600);
    fs::File::open(p).unwrap().set_modified(t).unwrap();
}

/// Waits until `p` exists (as long as a run may take).
fn wait_for(p: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120) * slowdown();
    while !p.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            p.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The row of `parpy bundle --cache`'s listing about entry `name`.
fn cache_row<'a>(listing: &'a str, name: &str) -> &'a str {
    listing
        .lines()
        .find(|l| l.starts_with(&name[..12]))
        .unwrap_or_else(|| panic!("no row for {name} in:\n{listing}"))
}

/// A script that says it started (creates argv[1]), then runs until argv[2] exists.
const WAITER: &str = "import os, sys, time\n\
                      open(sys.argv[1], 'w').close()\n\
                      while not os.path.exists(sys.argv[2]):\n    time.sleep(0.02)\n\
                      print('waited')\n";

#[test]
fn bundle_cache_lists_and_cleans_but_keeps_running_apps() {
    let dir = app_dir("bundle-cache");
    let app = build_app(&dir);
    dir.write("waiter.py", WAITER);
    bundle(dir.path(), &["waiter.py", "-o", "waiter"]);
    let root = dir.path().join("my cache");
    let xdg = dir.path().join("xdg");

    // Nothing there yet: --cache says so and creates nothing.
    let o = cache_cmd("--cache", &root);
    assert!(ok(&o).contains("no bundle cache"), "{o:#?}");
    assert!(!root.exists());

    // PARPY_BUNDLE_CACHE is the cache folder itself, whatever XDG_CACHE_HOME says.
    let xdg_s = xdg.to_str().unwrap();
    let o = run_in_cache(&app, &root, &["x", "y z"], &[("XDG_CACHE_HOME", xdg_s)]);
    assert_eq!(o.code, 0, "{o:#?}");
    assert_eq!(o.stdout, EXPECTED, "{}", o.stderr);
    assert!(!xdg.exists(), "XDG_CACHE_HOME was used");
    let app_entry = entries(&root);
    assert_eq!(app_entry.len(), 1, "{app_entry:?}");
    let app_entry = app_entry[0].clone();
    assert_eq!(
        fs::metadata(&root).unwrap().permissions().mode() & 0o777,
        0o700,
        "the cache folder it created is private"
    );

    // The waiter runs, and holds its unpacked runtime, until `go` appears.
    let (started, go) = (dir.path().join("started"), dir.path().join("go"));
    let waiter = {
        let (w, r) = (dir.path().join("waiter"), root.clone());
        let (s, g) = (started.clone(), go.clone());
        std::thread::spawn(move || {
            run_in_cache(&w, &r, &[s.to_str().unwrap(), g.to_str().unwrap()], &[])
        })
    };
    wait_for(&started);
    let both = entries(&root);
    assert_eq!(both.len(), 2, "{both:?}");
    let waiter_entry = both.into_iter().find(|n| *n != app_entry).unwrap();

    // --cache: each with its size, last use, whether it runs, and its app.
    let o = cache_cmd("--cache", &root);
    let listing = ok(&o);
    assert!(listing.contains(root.to_str().unwrap()), "{listing}");
    let real_app = fs::canonicalize(&app).unwrap();
    // (A loaded machine may take over a minute from the app's run to here.)
    let recent = |row: &str| row.contains("(just now)") || row.contains(" minute");
    let row = cache_row(listing, &app_entry);
    for want in [" MB", " no ", "app.py", real_app.to_str().unwrap()] {
        assert!(row.contains(want), "{want:?} not in {row:?}:\n{listing}");
    }
    assert!(recent(row), "{listing}");
    let row = cache_row(listing, &waiter_entry);
    for want in [" MB", " yes ", "waiter.py"] {
        assert!(row.contains(want), "{want:?} not in {row:?}:\n{listing}");
    }
    assert!(recent(row), "{listing}");
    assert!(listing.contains("2 unpacked bundles"), "{listing}");

    // --clean removes the idle one and keeps the running one.
    let o = cache_cmd("--clean", &root);
    let report = ok(&o);
    assert_eq!(entries(&root), [waiter_entry.as_str()], "{report}");
    assert!(
        report.contains(&format!("removed {}", &app_entry[..12])),
        "{report}"
    );
    assert!(
        report
            .lines()
            .any(|l| l.contains(&waiter_entry[..12]) && l.contains("in use")),
        "{report}"
    );

    // The running app was not disturbed; once it ends, its runtime goes too.
    fs::write(&go, "").unwrap();
    let o = waiter.join().unwrap();
    assert_eq!(ok(&o), "waited\n", "{}", o.stderr);
    let o = cache_cmd("--clean", &root);
    assert!(entries(&root).is_empty(), "{o:#?}");
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));

    // A removed runtime is unpacked again on the next run.
    assert_app_runs(
        &app,
        &["x", "y z"],
        &[
            ("PARPY_WORKERS", "2"),
            ("PARPY_BUNDLE_CACHE", root.to_str().unwrap()),
        ],
        None,
        dir.path(),
    );
    assert_eq!(entries(&root), [app_entry]);

    // A read-only cache (say, unpacked into an image that runs with a read-only
    // file system) still starts what it holds.
    if sandbox() == Sandbox::Namespace {
        let script = format!(
            "mount --bind '{r}' '{r}' && mount -o remount,bind,ro '{r}' && exec \"$0\" x 'y z'",
            r = root.display()
        );
        assert_app_runs(
            Path::new("/bin/sh"),
            &["-c", &script, app.to_str().unwrap()],
            &[
                ("PARPY_WORKERS", "2"),
                ("PARPY_BUNDLE_CACHE", root.to_str().unwrap()),
                ("PATH", "/usr/bin:/bin"),
            ],
            None,
            dir.path(),
        );
    }
}

#[test]
fn bundle_cache_drops_runtimes_unused_for_30_days_once_a_day() {
    let dir = TempDir::new("bundle-age");
    dir.write("one.py", "print('one')\n");
    dir.write("two.py", "print('two')\n");
    bundle(dir.path(), &["one.py", "-o", "one"]);
    bundle(dir.path(), &["two.py", "-o", "two"]);
    let root = dir.path().join("cache");
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    assert_eq!(ok(&run_in_cache(&one, &root, &[], &[])), "one\n");
    let e1 = entries(&root).remove(0);
    assert_eq!(ok(&run_in_cache(&two, &root, &[], &[])), "two\n");
    let e2 = entries(&root).into_iter().find(|n| *n != e1).unwrap();

    // Two more entries, copies of one's: used 29 days ago, and 31 days ago but
    // in use (this test holds the lock that a running copy holds).
    let (recent, busy) = ("a".repeat(64), "b".repeat(64));
    for copy in [&recent, &busy] {
        let o = sh(&format!("cp -a {e1} {copy}"), &root);
        assert_eq!(o.code, 0, "{o:#?}");
    }
    let use_file = |e: &str| root.join(e).join(".parpy-use");
    set_days_ago(&use_file(&e1), 31);
    set_days_ago(&use_file(&recent), 29);
    set_days_ago(&use_file(&busy), 31);
    // The one starting is never removed, however old its stamp.
    set_days_ago(&use_file(&e2), 31);
    let held = fs::File::open(use_file(&busy)).unwrap();
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor that `held` keeps open.
        assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_SH) }, 0);
    }
    // The leftover of a first run that was killed while unpacking.
    let tmp = root.join(".tmp-0123456789abcdef-1-2");
    fs::create_dir_all(tmp.join("lib/python3")).unwrap();
    fs::write(tmp.join("lib/python3/os.py"), "").unwrap();

    let listing = ok(&cache_cmd("--cache", &root)).to_string();
    assert!(
        cache_row(&listing, &e1).contains("31 days ago"),
        "{listing}"
    );
    assert!(listing.contains("1 leftover folder"), "{listing}");

    // Not due yet (the last clean-up was the cache's creation, just now).
    let o = run_in_cache(&two, &root, &[], &[("PARPY_BUNDLE_DEBUG", "1")]);
    assert_eq!(ok(&o), "two\n");
    assert!(!o.stderr.contains("clean-up"), "{}", o.stderr);
    assert_eq!(entries(&root).len(), 4);

    // Due: the last one was two days ago.
    set_days_ago(&root.join(".parpy-lock"), 2);
    let o = run_in_cache(&two, &root, &[], &[("PARPY_BUNDLE_DEBUG", "1")]);
    assert_eq!(ok(&o), "two\n");
    assert!(
        o.stderr.contains("clean-up of the bundle cache: 1 unused"),
        "{}",
        o.stderr
    );
    let mut want = vec![recent.clone(), busy.clone(), e2.clone()];
    want.sort();
    assert_eq!(entries(&root), want, "only the old, idle one goes");
    assert!(!tmp.exists(), "the killed first run's leftover stayed");
    // Its own last use is now.
    let age = fs::metadata(use_file(&e2))
        .unwrap()
        .modified()
        .unwrap()
        .elapsed()
        .unwrap_or_default();
    assert!(age.as_secs() < 3600, "{age:?}");

    // At most once a day: an entry that turns old now stays until tomorrow.
    set_days_ago(&use_file(&recent), 31);
    assert_eq!(ok(&run_in_cache(&two, &root, &[], &[])), "two\n");
    assert_eq!(entries(&root), want);

    // --clean takes every idle one, whatever its age; the held one stays
    // until nobody holds it.
    let o = cache_cmd("--clean", &root);
    assert_eq!(entries(&root), [busy.as_str()], "{o:#?}");
    drop(held);
    let o = cache_cmd("--clean", &root);
    assert!(entries(&root).is_empty(), "{o:#?}");
}

#[test]
fn bundle_cache_of_another_user_is_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root, to hand folders to another user (uid 65534)");
        return;
    }
    use std::os::unix::fs::{chown, lchown, symlink};
    let dir = TempDir::new("bundle-refuse");
    dir.write("hello.py", "print('hello')\n");
    bundle(dir.path(), &["hello.py", "-o", "hello"]);
    let app = dir.path().join("hello");
    let nobody = Some(65534);

    // A cache folder of another user, or one below a folder of theirs.
    let theirs = dir.path().join("theirs");
    fs::create_dir(&theirs).unwrap();
    chown(&theirs, nobody, nobody).unwrap();
    let o = run_in_cache(&app, &theirs, &[], &[]);
    assert_refused(&o, "it is owned by uid 65534, not by you (uid 0)");
    let o = run_in_cache(&app, &theirs.join("cache"), &[], &[]);
    assert_refused(&o, "owned by uid 65534");
    assert_eq!(fs::read_dir(&theirs).unwrap().count(), 0, "it wrote there");
    let o = cache_cmd("--clean", &theirs);
    assert_eq!(o.code, 1, "{o:#?}");
    assert_eq!(o.stderr.lines().count(), 1, "{o:#?}");
    assert!(o.stderr.contains("owned by uid 65534"), "{o:#?}");

    // A symbolic link planted by another user, as PARPY_BUNDLE_CACHE or on the
    // way to the default folder (XDG_CACHE_HOME/parpy -> a folder of ours).
    let target = dir.path().join("target");
    fs::create_dir(&target).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o700)).unwrap();
    let link = dir.path().join("link");
    symlink(&target, &link).unwrap();
    lchown(&link, nobody, nobody).unwrap();
    let o = run_in_cache(&app, &link, &[], &[]);
    assert_refused(&o, "is a symbolic link owned by uid 65534");
    let xdg = dir.path().join("xdg");
    fs::create_dir(&xdg).unwrap();
    symlink(&target, xdg.join("parpy")).unwrap();
    lchown(xdg.join("parpy"), nobody, nobody).unwrap();
    let o = run_without_python(
        &app,
        &[],
        &[("XDG_CACHE_HOME", xdg.to_str().unwrap())],
        None,
        dir.path(),
    );
    assert_refused(&o, "is a symbolic link owned by uid 65534");
    assert_eq!(fs::read_dir(&target).unwrap().count(), 0, "it wrote there");
    // The same link of our own is fine.
    lchown(&link, Some(0), Some(0)).unwrap();
    assert_eq!(ok(&run_in_cache(&app, &link, &[], &[])), "hello\n");

    // A cache folder that others can write to.
    let open = dir.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let o = run_in_cache(&app, &open, &[], &[]);
    assert_refused(&o, "other users can write to it");

    // An unpacked runtime of another user in our cache.
    let entry = target.join(&entries(&target)[0]);
    chown(&entry, nobody, nobody).unwrap();
    let o = run_in_cache(&app, &target, &[], &[]);
    assert_refused(&o, "it is owned by uid 65534");

    // And PARPY_BUNDLE_CACHE must be absolute.
    let o = run_without_python(
        &app,
        &[],
        &[("PARPY_BUNDLE_CACHE", "relative/cache")],
        None,
        dir.path(),
    );
    assert_refused(&o, "is not an absolute path");
}

#[test]
fn cleaning_while_first_runs_unpack_is_safe() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = app_dir("bundle-clean-race");
    let app = build_app(&dir);
    let root = dir.path().join("cache");
    let done = Arc::new(AtomicBool::new(false));
    // Two cleaners at once, over and over, while two copies at a time start
    // (unpacking, since each clean removes what is idle) and run.
    let cleaners: Vec<_> = (0..2)
        .map(|_| {
            let (root, done) = (root.clone(), done.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !done.load(Ordering::Relaxed) {
                    let o = cache_cmd("--clean", &root);
                    assert_eq!(o.code, 0, "{o:#?}");
                    n += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                n
            })
        })
        .collect();
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let (app, root) = (app.clone(), root.clone());
            std::thread::spawn(move || {
                (0..2)
                    .map(|_| run_in_cache(&app, &root, &["x", "y z"], &[]))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for r in runs {
        for o in r.join().unwrap() {
            assert_eq!(o.code, 0, "{o:#?}");
            assert_eq!(o.stdout, EXPECTED, "{}", o.stderr);
        }
    }
    done.store(true, Ordering::Relaxed);
    let cleans: usize = cleaners.into_iter().map(|c| c.join().unwrap()).sum();
    assert!(cleans >= 2, "{cleans}");
    // Nothing runs now: one more clean empties it, leftovers included.
    let o = cache_cmd("--clean", &root);
    assert_eq!(o.code, 0, "{o:#?}");
    assert!(entries(&root).is_empty(), "{o:#?}");
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));
}
