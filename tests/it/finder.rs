//! packaging/find-python (which CPython a build uses) and build.rs (which ones it
//! refuses), run against fake interpreters: small shell scripts that answer the
//! two probes (marked `# parpy-probe: finder` and `# parpy-probe: build`) as a
//! given CPython would, in fake uv, pyenv and PATH trees, with an empty environment.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What a fake interpreter claims to be.
struct Fake {
    version: (u32, u32, u32),
    free_threaded: bool,
    /// sys.prefix: "/usr" makes it a distribution's python.
    prefix: String,
    /// sysconfig's LIBDIR.
    libdir: PathBuf,
    /// Whether LIBDIR holds its libpython3.X.so.
    with_so: bool,
}

/// Writes an executable fake python at `exe`.
fn fake_python(exe: &Path, f: &Fake) {
    let (maj, min, mic) = f.version;
    let flags = if f.free_threaded { "t" } else { "" };
    let ft = u8::from(f.free_threaded);
    let lib = format!("libpython{maj}.{min}{flags}.so");
    let libdir = f.libdir.display();
    let prefix = &f.prefix;
    let script = format!(
        "#!/bin/sh\n\
         case \"$2\" in\n\
         *'parpy-probe: finder'*) printf '%s\\n' '{maj} {min} {mic} {ft} {lib}' \"$0\" '{libdir}' '{prefix}' ;;\n\
         *'parpy-probe: build'*) printf '%s\\n' {maj} {min} 1 '{libdir}' \"$0\" {ft} '{flags}' '{prefix}' {mic} ;;\n\
         *) echo \"FAKE $0 $*\" ;;\n\
         esac\n"
    );
    fs::create_dir_all(exe.parent().unwrap()).unwrap();
    fs::write(exe, script).unwrap();
    fs::set_permissions(exe, fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir_all(&f.libdir).unwrap();
    if f.with_so {
        fs::write(f.libdir.join(lib), "").unwrap();
    }
}

/// An interpreter that exists but does not run (a pyenv shim of an inactive version).
fn broken_python(exe: &Path) {
    fs::create_dir_all(exe.parent().unwrap()).unwrap();
    fs::write(
        exe,
        "#!/bin/sh\necho 'pyenv: python3.12: command not found' >&2\nexit 127\n",
    )
    .unwrap();
    fs::set_permissions(exe, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A folder with only the tools the finder needs besides the shell's built-ins
/// (so that no real python3.X of this machine is on its PATH).
fn tools(dir: &Path) -> PathBuf {
    let tools = dir.join("tools");
    fs::create_dir_all(&tools).unwrap();
    for tool in ["sed", "readlink"] {
        let o = Run::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .run();
        let path = o.stdout.trim();
        assert!(path.starts_with('/'), "no {tool}: {o:?}");
        std::os::unix::fs::symlink(path, tools.join(tool)).unwrap();
    }
    tools
}

/// Runs packaging/find-python with only `vars` set, asking the chosen python for
/// its sys.executable (a fake answers "FAKE <path> <args>").
fn find(vars: &[(&str, String)]) -> Output {
    let mut run = Run::new("env").arg("-i");
    for (k, v) in vars {
        run = run.arg(format!("{k}={v}"));
    }
    run.arg(repo().join("packaging/find-python"))
        .args(["-c", "import sys; print(sys.executable)"])
        .run()
}

fn chosen(o: &Output) -> &str {
    assert_eq!(o.code, 0, "the finder failed: {o:#?}");
    o.stdout
        .strip_prefix("FAKE ")
        .and_then(|s| s.split(' ').next())
        .unwrap_or_else(|| panic!("not a fake's answer: {o:#?}"))
}

#[test]
fn finder_prefers_parpy_python_then_uv_then_pyenv_then_path() {
    let dir = TempDir::new("finder-order");
    let d = dir.path();
    let home = d.join("home");
    let tools = tools(d);
    let usable = |prefix: &Path, v| Fake {
        version: v,
        free_threaded: false,
        prefix: prefix.display().to_string(),
        libdir: prefix.join("lib"),
        with_so: true,
    };
    // uv: the default folder and $UV_PYTHON_INSTALL_DIR
    let uv_default = home.join(".local/share/uv/python/cpython-3.13.1-linux-x86_64-gnu");
    fake_python(
        &uv_default.join("bin/python3.13"),
        &usable(&uv_default, (3, 13, 1)),
    );
    let uv_custom = d.join("uvpy/cpython-3.14.2-linux-x86_64-gnu");
    fake_python(
        &uv_custom.join("bin/python3.14"),
        &usable(&uv_custom, (3, 14, 2)),
    );
    // pyenv, and a newer python3.X on PATH
    let pyenv = home.join(".pyenv/versions/3.14.0");
    fake_python(&pyenv.join("bin/python3.14"), &usable(&pyenv, (3, 14, 0)));
    let usr = d.join("usr");
    fake_python(
        &usr.join("bin/python3.15"),
        &Fake {
            version: (3, 15, 2),
            free_threaded: false,
            prefix: "/usr".into(),
            libdir: usr.join("lib/x86_64-linux-gnu"),
            with_so: true,
        },
    );
    let path = format!("{}:{}", usr.join("bin").display(), tools.display());
    let base = vec![("HOME", home.display().to_string()), ("PATH", path.clone())];
    let with = |extra: &[(&'static str, String)]| {
        let mut v = base.clone();
        v.extend_from_slice(extra);
        v
    };

    // The newest uv Python, wherever uv keeps it, before pyenv and PATH.
    let uv_dir = (
        "UV_PYTHON_INSTALL_DIR",
        d.join("uvpy").display().to_string(),
    );
    let o = find(&with(std::slice::from_ref(&uv_dir)));
    assert_eq!(
        chosen(&o),
        uv_custom.join("bin/python3.14").to_str().unwrap()
    );
    let o = find(&base);
    assert_eq!(
        chosen(&o),
        uv_default.join("bin/python3.13").to_str().unwrap()
    );

    // PARPY_PYTHON before everything, used as given.
    let mine = d.join("mine/python3.12");
    fake_python(&mine, &usable(&d.join("mine"), (3, 12, 8)));
    let o = find(&with(&[
        uv_dir,
        ("PARPY_PYTHON", mine.display().to_string()),
    ]));
    assert_eq!(chosen(&o), mine.to_str().unwrap());

    // Without uv: pyenv (found through HOME, or PYENV_ROOT), though PATH has a newer one.
    fs::remove_dir_all(home.join(".local")).unwrap();
    let o = find(&base);
    assert_eq!(chosen(&o), pyenv.join("bin/python3.14").to_str().unwrap());
    fs::remove_dir_all(home.join(".pyenv")).unwrap();
    let elsewhere = d.join("pyenv-elsewhere/versions/3.12.9");
    fake_python(
        &elsewhere.join("bin/python3.12"),
        &usable(&elsewhere, (3, 12, 9)),
    );
    let o = find(&with(&[(
        "PYENV_ROOT",
        d.join("pyenv-elsewhere").display().to_string(),
    )]));
    assert_eq!(
        chosen(&o),
        elsewhere.join("bin/python3.12").to_str().unwrap()
    );

    // Without pyenv: python3.X on PATH, a distribution build with its multiarch libpython.
    let o = find(&base);
    assert_eq!(chosen(&o), usr.join("bin/python3.15").to_str().unwrap());
}

#[test]
fn finder_takes_the_newest_usable_and_explains_every_refusal() {
    let dir = TempDir::new("finder-refusals");
    let d = dir.path();
    let tools = tools(d);
    let bin = d.join("bin");
    let multiarch = d.join("usr/lib/x86_64-linux-gnu");
    let distro = |v, with_so| Fake {
        version: v,
        free_threaded: false,
        prefix: "/usr".into(),
        libdir: multiarch.clone(),
        with_so,
    };
    fake_python(&bin.join("python3.11"), &distro((3, 11, 9), true));
    fake_python(&bin.join("python3.13"), &distro((3, 13, 5), false));
    fake_python(
        &bin.join("python3.14t"),
        &Fake {
            version: (3, 14, 0),
            free_threaded: true,
            prefix: "/usr".into(),
            libdir: multiarch.clone(),
            with_so: true,
        },
    );
    broken_python(&bin.join("python3.12"));
    let pyenv_static = d.join("home/.pyenv/versions/3.13.2");
    fake_python(
        &pyenv_static.join("bin/python3.13"),
        &Fake {
            version: (3, 13, 2),
            free_threaded: false,
            prefix: pyenv_static.display().to_string(),
            libdir: pyenv_static.join("lib"),
            with_so: false,
        },
    );
    let pyenv_refused = d.join("home/.pyenv/versions/3.12.1");
    fake_python(
        &pyenv_refused.join("bin/python3.12"),
        &Fake {
            version: (3, 12, 1),
            free_threaded: false,
            prefix: pyenv_refused.display().to_string(),
            libdir: pyenv_refused.join("lib"),
            with_so: true,
        },
    );
    let vars = vec![
        ("HOME", d.join("home").display().to_string()),
        ("PATH", format!("{}:{}", bin.display(), tools.display())),
    ];

    let o = find(&vars);
    assert_eq!(o.code, 1, "{o:#?}");
    assert_eq!(o.stdout, "");
    let b = bin.display();
    let m = multiarch.display();
    for line in [
        "parpy: no usable CPython found.".to_string(),
        format!("  {b}/python3.11: Python 3.11.9: older than 3.12\n"),
        format!("  {b}/python3.13: no libpython3.13.so in {m}, install libpython3.13-dev\n"),
        format!(
            "  {b}/python3.14t: Python 3.14.0 free-threaded: refused, see docs/free-threaded.md\n"
        ),
        format!("  {b}/python3.12: does not run"),
        format!(
            "  {}/bin/python3.13: no libpython3.13.so in {}/lib: not built with --enable-shared",
            pyenv_static.display(),
            pyenv_static.display()
        ),
        format!(
            "  {}/bin/python3.12: Python 3.12.1: refused, its sub-interpreters abort the process \
             at exit (python/cpython#119213, fixed in 3.12.4)\n",
            pyenv_refused.display()
        ),
        "Fix: install one".to_string(),
        "PARPY_PYTHON".to_string(),
    ] {
        assert!(o.stderr.contains(&line), "no {line:?} in:\n{}", o.stderr);
    }

    // With libpython3.13-dev "installed", that one is taken; the others are still
    // listed with PARPY_FIND_PYTHON_VERBOSE.
    fs::write(multiarch.join("libpython3.13.so"), "").unwrap();
    let mut verbose = vars.clone();
    verbose.push(("PARPY_FIND_PYTHON_VERBOSE", "1".into()));
    let o = find(&verbose);
    assert_eq!(chosen(&o), bin.join("python3.13").to_str().unwrap());
    assert!(o.stderr.contains("older than 3.12"), "{}", o.stderr);
    assert!(
        o.stderr
            .contains(&format!("parpy: chose {}/python3.13\n", b)),
        "{}",
        o.stderr
    );
}

/// build.rs, compiled on its own (it uses only std) and run as cargo would run it.
fn build_script(dir: &Path) -> PathBuf {
    let exe = dir.join("build-script");
    let o = Run::new("rustc")
        .args(["--edition", "2024", "-o"])
        .arg(&exe)
        .arg(repo().join("build.rs"))
        .run();
    assert_eq!(o.code, 0, "cannot compile build.rs: {o:#?}");
    exe
}

#[test]
fn build_refuses_old_free_threaded_and_libless_pythons_saying_why() {
    let dir = TempDir::new("finder-build");
    let d = dir.path();
    let script = build_script(d);
    let multiarch = d.join("lib/x86_64-linux-gnu");
    let multiarch_s = multiarch.display().to_string();
    let distro = |v: (u32, u32, u32), free_threaded, with_so| Fake {
        version: v,
        free_threaded,
        prefix: "/usr".into(),
        libdir: multiarch.clone(),
        with_so,
    };
    let cases = [
        (
            distro((3, 14, 0), true, true),
            "python3.14t",
            "is a free-threaded build of Python 3.14 (Py_GIL_DISABLED)".to_string(),
        ),
        (
            distro((3, 11, 9), false, true),
            "python3.11",
            "is Python 3.11; parpy needs CPython 3.12 or newer".to_string(),
        ),
        (
            distro((3, 12, 3), false, true),
            "python3.12",
            "is Python 3.12.3, which parpy refuses: own-GIL sub-interpreters crash the process \
             at exit once a worker calls a C function with keyword arguments before the main \
             interpreter does (python/cpython#119213, fixed in 3.12.4)"
                .to_string(),
        ),
        (
            distro((3, 13, 5), false, false),
            "python3.13",
            format!("has no libpython3.13.so in {multiarch_s}: install libpython3.13-dev"),
        ),
    ];
    for (fake, name, want) in cases {
        let exe = d.join("bin").join(name);
        fake_python(&exe, &fake);
        let o = Run::new("env")
            .arg("-i")
            .arg(format!("PYO3_PYTHON={}", exe.display()))
            .arg(format!("OUT_DIR={}", d.display()))
            .arg(&script)
            .cwd(repo())
            .run();
        assert_eq!(o.code, 1, "{name}: {o:#?}");
        assert!(
            o.stderr.starts_with("error: parpy build: ") && o.stderr.contains(&want),
            "{name}: no {want:?} in {}",
            o.stderr
        );
    }
    // The free-threaded refusal points at the design note, which exists.
    assert!(repo().join("docs/free-threaded.md").is_file());
}
