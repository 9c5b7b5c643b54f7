//! The wheel (packaging/wheel): installed with pip, uv or pipx into a venv
//! of the Python under test, its `parpy` command runs scripts on that venv's
//! Python, and `import parpy` / `python -m parpy` work in the plain python.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::*;

fn wheel_script(name: &str) -> PathBuf {
    scripts().join("wheel").join(name)
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// The venv with the wheel and more-itertools (a pure-Python PyPI package).
fn venv() -> Option<PathBuf> {
    static VENV: std::sync::Mutex<Option<Option<PathBuf>>> = std::sync::Mutex::new(None);
    let mut v = VENV.lock().unwrap_or_else(|e| e.into_inner());
    v.get_or_insert_with(|| wheel_venv("test-venv-wheel", &["more-itertools"]))
        .clone()
}

/// `program` of the venv, run from a neutral directory with no venv activated.
fn in_venv(venv: &Path, program: &str) -> Run {
    Run::new(venv.join("bin").join(program))
        .env_remove("VIRTUAL_ENV")
        .env_remove("PYTHONPATH")
        .env("PARPY_WORKERS", "2")
        .cwd(std::env::temp_dir())
        .timeout(Duration::from_secs(120))
}

/// The three ways in give one result: the venv's `parpy` command, its
/// `python -m parpy`, and (where `plain`) its plain `python`.
fn three_ways(venv: &Path, script: &Path, args: &[&str], plain: bool) -> Output {
    three_ways_seen(venv, script, args, plain, str::to_owned)
}

/// [`three_ways`], comparing stdout as `seen` makes it (timings masked).
fn three_ways_seen(
    venv: &Path,
    script: &Path,
    args: &[&str],
    plain: bool,
    seen: fn(&str) -> String,
) -> Output {
    let command = in_venv(venv, "parpy").arg(script).args(args).run();
    let mut others = vec![(
        "python -m parpy",
        in_venv(venv, "python")
            .args(["-m", "parpy"])
            .arg(script)
            .args(args)
            .run(),
    )];
    if plain {
        others.push((
            "plain python",
            in_venv(venv, "python").arg(script).args(args).run(),
        ));
    }
    for (way, o) in others {
        assert_eq!(
            (seen(&o.stdout), &o.stderr, o.code),
            (seen(&command.stdout), &command.stderr, command.code),
            "{way} differs from the parpy command on {script:?}"
        );
    }
    command
}

/// Each run of digits as one `#`: timings and per-worker counts differ run to run.
fn mask_digits(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('#') {
            out.push('#');
        }
    }
    out
}

macro_rules! venv_or_skip {
    ($test:literal) => {
        match venv() {
            Some(v) => v,
            None => {
                skip_without_wheel($test, "more-itertools");
                return;
            }
        }
    };
}

#[test]
fn the_command_sees_the_venv_exactly_as_its_python_does() {
    let venv = venv_or_skip!("the_command_sees_the_venv_exactly_as_its_python_does");
    let script = wheel_script("paths.py");
    let command = in_venv(&venv, "parpy").arg(&script).arg("x").run();
    let python = in_venv(&venv, "python").arg(&script).arg("x").run();
    assert_eq!(command.code, 0, "{}", command.stderr);
    assert_eq!(command.stdout, python.stdout);
    let prefix = format!("prefix {}\n", venv.display());
    assert!(command.stdout.starts_with(&prefix), "{}", command.stdout);
    // pip's record: bin/parpy is the wheel's command, not a Python script.
    let head = std::fs::read(venv.join("bin/parpy")).unwrap();
    assert_eq!(&head[..4], b"\x7fELF");
}

#[test]
fn examples_run_alike_under_the_command_python_m_parpy_and_plain_python() {
    let venv =
        venv_or_skip!("examples_run_alike_under_the_command_python_m_parpy_and_plain_python");
    let words = TempDir::new("wheel-words");
    words.write("a.txt", "the cat and the hat\nThe end\n");
    let cases: [(&str, Vec<&str>, bool); 4] = [
        ("primes.py", vec!["20000"], true),
        // __parallel__ needs the launcher or python -m parpy.
        ("monte_carlo_pi.py", vec!["4000"], false),
        (
            "word_freq.py",
            vec![words.path().to_str().unwrap(), "2"],
            true,
        ),
        ("pipeline.py", vec!["60"], true),
    ];
    let no_entry = skipped_on_refused_release(
        "__parallel__ runs in threading's exit hooks, where 3.12.0-3.12.2 start no thread (python/cpython#113964)",
    );
    for (name, args, plain) in cases {
        if no_entry && name == "monte_carlo_pi.py" {
            continue;
        }
        let command = three_ways_seen(&venv, &example(name), &args, plain, mask_digits);
        assert_eq!(command.code, 0, "{name}: {}", command.stderr);
        assert!(!command.stdout.is_empty(), "{name} printed nothing");
    }
    let o = in_venv(&venv, "python")
        .arg(example("word_freq.py"))
        .arg(words.path())
        .arg("2")
        .run();
    assert_eq!(
        o.stdout, "1 files, 7 words, 5 distinct\n         3  the\n         1  cat\n",
        "{}",
        o.stderr
    );
}

#[test]
fn a_pypi_package_of_the_venv_works_in_workers_every_way() {
    let venv = venv_or_skip!("a_pypi_package_of_the_venv_works_in_workers_every_way");
    let o = three_ways(&venv, &wheel_script("uses_pypi.py"), &[], true);
    assert_eq!(
        o.stdout, "[(45, True), (145, True)] True 4950\n3\n",
        "{}",
        o.stderr
    );
}

#[test]
fn failures_and_the_entry_convention_end_as_under_the_launcher() {
    let venv = venv_or_skip!("failures_and_the_entry_convention_end_as_under_the_launcher");
    // A failing script: python's traceback (no frames of parpy's runner) and status.
    let o = three_ways(&venv, &wheel_script("failing.py"), &[], true);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.ends_with("ValueError: from the script\n"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("parpy"), "{}", o.stderr);
    // __parallel__ and __gather__, and the exit status __gather__ sets.
    let cases = if skipped_on_refused_release(
        "__parallel__ runs in threading's exit hooks, where 3.12.0-3.12.2 start no thread (python/cpython#113964)",
    ) {
        vec![]
    } else {
        vec![(vec![], 0), (vec!["3"], 3)]
    };
    for (args, code) in cases {
        let o = three_ways(&venv, &wheel_script("entry.py"), &args, false);
        assert_eq!(o.stdout, "body ran\n");
        assert_eq!(o.stderr, "gathered [0, 10]\n");
        assert_eq!(o.code, code);
    }
    // A missing script: python's message, status 2.
    let o = in_venv(&venv, "python")
        .args(["-m", "parpy", "no-such.py"])
        .run();
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains("can't open file 'no-such.py'"),
        "{}",
        o.stderr
    );
}

#[test]
fn waits_in_later_atexit_handlers_return_in_every_way() {
    let venv = venv_or_skip!("waits_in_later_atexit_handlers_return_in_every_way");
    // Before the fix they parked for good: Rust never named a plain python's
    // main thread "main", so parpy took it for a daemon thread at exit.
    let o = three_ways(&venv, &wheel_script("atexit_waits.py"), &[], true);
    assert_eq!(
        (o.stdout.as_str(), o.code),
        ("3\ndrained 7 5\n", 0),
        "{}",
        o.stderr
    );
}

#[test]
fn numpy_falls_back_under_the_command_and_plain_python() {
    let Some(venv) = wheel_venv("test-venv-wheel-numpy", &["numpy"]) else {
        skip_without_wheel(
            "numpy_falls_back_under_the_command_and_plain_python",
            "numpy",
        );
        return;
    };
    let script = scripts().join("parallel").join("numpy_tasks.py");
    let o = three_ways(&venv, &script, &[], true);
    assert_eq!(o.stdout, "numpy OK 12\n", "{}", o.stderr);
    assert!(
        o.stderr
            .starts_with("parpy: stats needs module 'numpy._core._multiarray_umath'"),
        "{}",
        o.stderr
    );
}

/// uv (from PyPI) makes the venv and installs the wheel into it.
#[test]
fn uv_installs_the_wheel() {
    let Some(tools) = pypi_venv("test-venv-uv", &["uv"], "import uv") else {
        skip_without_wheel("uv_installs_the_wheel", "uv");
        return;
    };
    let uv = tools.join("bin/uv");
    let dir = TempDir::new("wheel-uv");
    let venv = dir.path().join("venv");
    let cache = dir.path().join("cache");
    let run = |args: &[&std::ffi::OsStr]| {
        let o = Run::new(&uv)
            .args(args)
            .env("UV_CACHE_DIR", &cache)
            .env("UV_NO_CONFIG", "1")
            .env("UV_PYTHON_DOWNLOADS", "never")
            .env_remove("VIRTUAL_ENV")
            .timeout(Duration::from_secs(300))
            .run();
        assert_eq!(o.code, 0, "uv {args:?}: {}", o.stderr);
    };
    run(&[
        "venv".as_ref(),
        "-q".as_ref(),
        "-p".as_ref(),
        python_bin().as_os_str(),
        venv.as_os_str(),
    ]);
    let py = venv.join("bin/python");
    run(&[
        "pip".as_ref(),
        "install".as_ref(),
        "-q".as_ref(),
        "--python".as_ref(),
        py.as_os_str(),
        built_wheel().as_os_str(),
    ]);
    let o = in_venv(&venv, "parpy").arg(wheel_script("paths.py")).run();
    let python = in_venv(&venv, "python").arg(wheel_script("paths.py")).run();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, python.stdout);
    let o = in_venv(&venv, "parpy")
        .args([
            "-c",
            "import parpy; print(parpy.parallel(abs).map([-1, -2]))",
        ])
        .run();
    assert_eq!(ok(&o), "[1, 2]\n");
}

/// pipx (from PyPI) installs the command into its own venv and links it
/// into its bin directory: the link runs on pipx's venv.
#[test]
fn pipx_installs_the_command() {
    let Some(tools) = pypi_venv("test-venv-pipx", &["pipx"], "import pipx") else {
        skip_without_wheel("pipx_installs_the_command", "pipx");
        return;
    };
    let dir = TempDir::new("wheel-pipx");
    let (home, bin) = (dir.path().join("home"), dir.path().join("bin"));
    let o = Run::new(tools.join("bin/pipx"))
        .args(["install", "--python"])
        .arg(python_bin())
        .arg(built_wheel())
        .env("PIPX_HOME", &home)
        .env("PIPX_BIN_DIR", &bin)
        .env("PIPX_MAN_DIR", dir.path().join("man"))
        .env_remove("VIRTUAL_ENV")
        .timeout(Duration::from_secs(300))
        .run();
    assert_eq!(o.code, 0, "pipx install: {}", o.stderr);
    let link = bin.join("parpy");
    assert!(link.is_symlink() || link.is_file(), "{}", o.stdout);
    let o = Run::new(&link)
        .args([
            "-c",
            "import sys, parpy; print(sys.prefix); print(parpy.parallel(abs).map([-3]))",
        ])
        .env_remove("VIRTUAL_ENV")
        .run();
    assert_eq!(
        ok(&o),
        format!("{}\n[3]\n", home.join("venvs/parpy").display())
    );
}

/// The wheel's platform tag is manylinux_2_N for the newest glibc symbol
/// version that its extension module or its command needs.
#[test]
fn the_platform_tag_is_the_glibc_the_wheel_needs() {
    let wheel = built_wheel();
    let dir = TempDir::new("wheel-unpacked");
    let o = Run::new(python_bin())
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(dir.path())
        .run();
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mut newest = 0;
    for elf in walk(dir.path())
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| b.starts_with(b"\x7fELF")))
    {
        let out = Command::new("objdump")
            .arg("-T")
            .arg(&elf)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        for v in text.split("GLIBC_2.").skip(1) {
            let n: u32 = v
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .unwrap_or(0);
            newest = newest.max(n);
        }
    }
    assert!(newest >= 17, "no glibc versions read from {wheel:?}");
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.ends_with(&format!("-manylinux_2_{newest}_x86_64.whl")),
        "{name} but the files need GLIBC_2.{newest}"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A venv whose base Python has no shared libpython (as Debian's python3.X
/// without the libpython3.X package): a clear error naming the way out.
#[test]
fn a_base_python_without_libpython_gets_a_clear_error() {
    let venv = venv_or_skip!("a_base_python_without_libpython_gets_a_clear_error");
    let dir = TempDir::new("wheel-no-libpython");
    let fake = dir.path().join("venv");
    let (version, abiflags) = python_version();
    let site = fake.join(format!("lib/python{version}/site-packages"));
    std::fs::create_dir_all(fake.join("bin")).unwrap();
    std::fs::create_dir_all(&site).unwrap();
    let base = dir.path().join("base/bin");
    std::fs::create_dir_all(&base).unwrap();
    // A python that answers sysconfig as a static build does.
    let py = base.join(format!("python{version}"));
    std::fs::write(&py, "#!/bin/sh\necho /nowhere; echo; echo 0\n").unwrap();
    Command::new("chmod").arg("755").arg(&py).status().unwrap();
    std::fs::write(
        fake.join("pyvenv.cfg"),
        format!("home = {}\n", base.display()),
    )
    .unwrap();
    std::fs::copy(venv.join("bin/parpy"), fake.join("bin/parpy")).unwrap();
    std::os::unix::fs::symlink(
        venv.join(format!("lib/python{version}/site-packages/parpy")),
        site.join("parpy"),
    )
    .unwrap();
    let o = Run::new(fake.join("bin/parpy"))
        .args(["-c", "print(1)"])
        .run();
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr.starts_with(&format!(
            "parpy: {} has no shared libpython{version}{abiflags}.so.1.0",
            py.display()
        )),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("python -m parpy script.py"),
        "{}",
        o.stderr
    );
}

/// ("3.14", "d") for python3.14d.
fn python_version() -> (String, String) {
    let o = Run::new(python_bin())
        .args([
            "-c",
            "import sys; print('%d.%d' % sys.version_info[:2], sys.abiflags)",
        ])
        .run();
    let out = ok(&o).to_string();
    let mut words = out.split_whitespace().map(str::to_owned);
    (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    )
}

/// `python -m parpy -c CODE` and `-m MODULE` as `python -c` and `python -m`.
#[test]
fn python_m_parpy_runs_code_and_modules_as_python_does() {
    let venv = venv_or_skip!("python_m_parpy_runs_code_and_modules_as_python_does");
    let dir = TempDir::new("wheel-m");
    dir.write(
        "tool.py",
        "import sys\nprint(__name__, sys.argv[1:], sys.path[0] == __import__('os').getcwd())\n\
         import parpy\nprint(parpy.parallel(len).map(['ab', 'c']))\n",
    );
    let code = "import sys, parpy; print(sys.argv, sys.path[0] == ''); \
                print(parpy.parallel(abs).map([-1, 2]))";
    for args in [vec!["-c", code, "x"], vec!["-m", "tool", "y"]] {
        let plain = in_venv(&venv, "python").args(&args).cwd(dir.path()).run();
        let module = in_venv(&venv, "python")
            .args(["-m", "parpy"])
            .args(&args)
            .cwd(dir.path())
            .run();
        assert_eq!(plain.code, 0, "{args:?}: {}", plain.stderr);
        assert_eq!(
            (&module.stdout, &module.stderr, module.code),
            (&plain.stdout, &plain.stderr, plain.code),
            "{args:?}"
        );
    }
}

/// spmd, Queue, share and Executor in a plain python as under the launcher.
#[test]
fn the_whole_api_works_in_a_plain_python() {
    let venv = venv_or_skip!("the_whole_api_works_in_a_plain_python");
    let o = three_ways(&venv, &wheel_script("api.py"), &[], true);
    assert_eq!(
        o.stdout,
        "[(0, 2, b'abc', 3000), (1, 2, b'abc', 3000)]\n[0, 1]\n[1, 2, 3] 1024\n[0, 1]\nNone 2 SharedBytes\n",
        "{}",
        o.stderr
    );
}
