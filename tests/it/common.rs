//! Shared helpers: run `parpy` or the reference `python3.x` on the same
//! input and compare stdout, stderr and exit code.

#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The parpy binary under test.
pub fn parpy_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_parpy"))
}

/// The CPython parpy was built against (its real binary, not a shim).
pub fn python_bin() -> PathBuf {
    PathBuf::from(env!("PARPY_BUILD_PYTHON"))
}

/// The folder of test scripts.
pub fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("scripts")
}

/// How many times slower than a release build the CPython under test runs
/// Python code: 8 for a `--with-pydebug` build (CPython's assertions on;
/// measured 7-10x on the test scripts), else 1.
pub fn slowdown() -> u32 {
    static FACTOR: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *FACTOR.get_or_init(|| {
        let debug = Command::new(python_bin())
            .args(["-c", "import sys; print(hasattr(sys, 'gettotalrefcount'))"])
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"True"));
        if debug { 8 } else { 1 }
    })
}

/// On a CPython release that parpy refuses (3.12.0-3.12.3: see the README's
/// "Supported Pythons"; CI still builds its pyenv 3.12.1 for everything
/// else), a test that an upstream bug of that release breaks says so and
/// returns true: the caller then skips. `bug` names the CPython issue.
pub fn skipped_on_refused_release(bug: &str) -> bool {
    static VERSION: std::sync::OnceLock<(u32, u32, u32)> = std::sync::OnceLock::new();
    let v = *VERSION.get_or_init(|| {
        let o = Command::new(python_bin())
            .args(["-c", "import sys; print(*sys.version_info[:3])"])
            .output()
            .expect("run the Python under test");
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let n: Vec<u32> = text
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        (n[0], n[1], n[2])
    });
    let refused = ((3, 12, 0)..(3, 12, 4)).contains(&v);
    if refused {
        eprintln!("SKIPPED on refused CPython {}.{}.{}: {bug}", v.0, v.1, v.2);
    }
    refused
}

/// What a finished process left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    /// The exit code, or `-signal` when killed by a signal.
    pub code: i32,
}

/// A command to run, built step by step.
#[derive(Clone)]
pub struct Run {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    stdin: Option<Vec<u8>>,
    cwd: Option<PathBuf>,
    timeout: Duration,
}

impl Run {
    /// `parpy` with no arguments yet.
    pub fn parpy() -> Run {
        Run::new(parpy_bin())
    }

    /// The reference `python3.x` with no arguments yet.
    pub fn python() -> Run {
        Run::new(python_bin())
    }

    pub fn new(program: impl Into<PathBuf>) -> Run {
        Run {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            cwd: None,
            timeout: Duration::from_secs(120) * slowdown(),
        }
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Run {
        self.args.push(a.as_ref().to_owned());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Run {
        for a in args {
            self.args.push(a.as_ref().to_owned());
        }
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Run {
        self.env
            .push((k.as_ref().to_owned(), Some(v.as_ref().to_owned())));
        self
    }

    pub fn env_remove(mut self, k: impl AsRef<OsStr>) -> Run {
        self.env.push((k.as_ref().to_owned(), None));
        self
    }

    pub fn stdin(mut self, data: impl AsRef<[u8]>) -> Run {
        self.stdin = Some(data.as_ref().to_vec());
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Run {
        self.cwd = Some(dir.into());
        self
    }

    /// The time limit, for a release build of CPython: a debug build gets
    /// [`slowdown`] times as long.
    pub fn timeout(mut self, t: Duration) -> Run {
        self.timeout = t * slowdown();
        self
    }

    /// The time limit exactly as given (for tests of the harness itself).
    pub fn exact_timeout(mut self, t: Duration) -> Run {
        self.timeout = t;
        self
    }

    /// The same command with another program.
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> Run {
        self.program = program.into();
        self
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        // A stable, predictable environment for comparisons.
        cmd.env("PYTHONDONTWRITEBYTECODE", "1");
        // A hung run is ended with SIGABRT, so that Python prints every
        // thread's traceback before it dies (see `dump_and_kill`).
        cmd.env("PYTHONFAULTHANDLER", "1");
        for var in [
            "PARPY_WORKERS",
            "PARPY_PROGRESS",
            "PARPY_LOG",
            "PARPY_VERBOSE",
        ] {
            cmd.env_remove(var);
        }
        cmd.env_remove("VIRTUAL_ENV");
        cmd.env_remove("PYTHONPATH");
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if let Some(d) = &self.cwd {
            cmd.current_dir(d);
        }
        // Ctrl-C as a terminal delivers it, whatever this process inherited:
        // a test suite started in the background of a non-interactive shell
        // ignores SIGINT, its children inherit that, and CPython (so python
        // and parpy alike) then installs no handler, so the SIGINT tests
        // would wait for a KeyboardInterrupt that never comes.
        use std::os::unix::process::CommandExt;
        // SAFETY: signal(2) is async-signal-safe, as pre_exec requires.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::signal(libc::SIGQUIT, libc::SIG_DFL);
                Ok(())
            });
        }
        cmd
    }

    /// Starts it with no stdin and piped stdout and stderr, for a test that
    /// reads its output as it comes (the caller ends it).
    pub fn spawn_piped(&self) -> std::process::Child {
        self.command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", self.program))
    }

    /// Runs to completion (killing it after the timeout) and collects its output.
    pub fn run(&self) -> Output {
        let mut cmd = self.command();
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", self.program));
        if let Some(data) = &self.stdin {
            let mut sin = child.stdin.take().unwrap();
            let data = data.clone();
            std::thread::spawn(move || {
                let _ = sin.write_all(&data);
            });
        }
        let pid = child.id();
        let timeout = self.timeout;
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let killer = std::thread::spawn(move || {
            match done_rx.recv_timeout(timeout) {
                // Hung: dump its stacks and kill it, so the test fails with
                // a picture of the hang instead of stalling CI.
                Err(_) => Some(dump_and_kill(pid, &done_rx)),
                Ok(()) => None,
            }
        });
        let out = child.wait_with_output().expect("wait");
        let _ = done_tx.send(());
        if let Some(native) = killer.join().unwrap_or(None) {
            panic!(
                "{:?} {:?} timed out after {:?}\n--- native stacks ---\n{native}\n\
                 --- stderr (Python tracebacks of every thread) ---\n{}\n--- stdout ---\n{}",
                self.program,
                self.args,
                self.timeout,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout),
            );
        }
        Output {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: exit_code(&out.status),
        }
    }
}

/// Ends a hung process `pid`: first the native stack of every thread (gdb,
/// else eu-stack, when installed), then SIGABRT, on which Python's
/// faulthandler prints every thread's traceback to stderr, then SIGKILL if
/// it is still there. Returns the native stacks.
pub fn dump_and_kill(pid: u32, exited: &std::sync::mpsc::Receiver<()>) -> String {
    let native = native_stacks(pid);
    // kill(2), not the kill program: a minimal system (the sid chroot) has none.
    // SAFETY: plain kill(2) on our own child, which has not been reaped yet.
    unsafe { libc::kill(pid as i32, libc::SIGABRT) };
    if exited.recv_timeout(Duration::from_secs(5)).is_err() {
        // SAFETY: as above.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    native
}

/// Every thread's native stack of process `pid` (gdb, else eu-stack).
pub fn native_stacks(pid: u32) -> String {
    let pid_s = pid.to_string();
    let tools: [(&str, &[&str]); 2] = [
        (
            "gdb",
            &["-batch", "-p", &pid_s, "-ex", "thread apply all bt 40"],
        ),
        ("eu-stack", &["-p", &pid_s]),
    ];
    let mut native = String::from("(no gdb or eu-stack installed)");
    for (tool, args) in tools {
        if let Ok(o) = Command::new(tool).args(args).stdin(Stdio::null()).output() {
            native = String::from_utf8_lossy(&o.stdout).into_owned();
            break;
        }
    }
    native
}

pub fn exit_code(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| -status.signal().unwrap_or(0))
}

/// Runs `run` under parpy and under python, and asserts that stdout, stderr
/// and the exit code are the same (each binary's path reads `PYTHON`).
pub fn assert_same(run: Run) -> Output {
    let p = run.clone().with_program(parpy_bin()).run();
    let q = run.with_program(python_bin()).run();
    let p = normalize(p, &parpy_bin());
    let q = normalize(q, &python_bin());
    assert_eq!(
        p.code, q.code,
        "exit codes differ\nparpy: {p:#?}\npython: {q:#?}"
    );
    assert_eq!(
        p.stdout, q.stdout,
        "stdout differs\nparpy stderr: {}",
        p.stderr
    );
    assert_eq!(p.stderr, q.stderr, "stderr differs");
    p
}

fn normalize(mut o: Output, exe: &Path) -> Output {
    let exe = exe.to_string_lossy();
    o.stdout = o.stdout.replace(exe.as_ref(), "PYTHON");
    o.stderr = o.stderr.replace(exe.as_ref(), "PYTHON");
    o
}

/// Asserts a successful run and returns its stdout.
pub fn ok(o: &Output) -> &str {
    assert_eq!(o.code, 0, "failed: {o:#?}");
    &o.stdout
}

/// A fresh temporary folder, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "parpy-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a file (creating folders) and returns its path.
    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.0.join(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&p, content).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A virtualenv named `name` in this build's target directory, with `packages` from
/// PyPI for the Python that parpy embeds, made here on first use; `probe` is Python code
/// that succeeds once they are usable. Each Python of CI's matrix (one `CARGO_TARGET_DIR`
/// each) has its own. `None` when PyPI has no wheel for this Python (a new minor version,
/// or a debug build, whose ABI tag is `cp3Xd`).
pub fn pypi_venv(name: &str, packages: &[&str], probe: &str) -> Option<std::path::PathBuf> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // target/release/parpy -> target/<name>
    let venv = parpy_bin()
        .parent()
        .and_then(|p| p.parent())
        .expect("the parpy binary lives in <target>/<profile>/")
        .join(name);
    let py = venv.join("bin").join("python");
    let usable = |py: &std::path::Path| {
        std::process::Command::new(py)
            .args(["-c", probe])
            .status()
            .is_ok_and(|s| s.success())
    };
    if usable(&py) {
        return Some(venv);
    }
    let s = std::process::Command::new(python_bin())
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .status()
        .unwrap();
    assert!(s.success(), "cannot create {venv:?}");
    // Wheels only: building numpy from source takes many minutes and a Fortran-free
    // toolchain that CI does not promise, and PyYAML built without libyaml has no
    // C extension to test.
    let only_binary = ["--only-binary=:all:"];
    pip_install(&py, only_binary.iter().chain(packages))?;
    assert!(usable(&py), "{packages:?} installed, but `{probe}` fails");
    Some(venv)
}

/// The virtualenv with numpy (see [`pypi_venv`]).
pub fn numpy_venv() -> Option<std::path::PathBuf> {
    pypi_venv("test-venv", &["numpy"], "import numpy")
}

/// The virtualenv with PyPI's PyYAML and simplejson wheels, whose C accelerators
/// (`yaml._yaml`, `simplejson._speedups`) refuse sub-interpreters while the packages
/// go on without them (see [`pypi_venv`]).
pub fn c_ext_venv() -> Option<std::path::PathBuf> {
    let probe = "import yaml, simplejson.encoder as e; \
                 assert yaml.__with_libyaml__ and e.c_make_encoder";
    pypi_venv("test-venv-c-ext", &["pyyaml", "simplejson"], probe)
}

/// Says on stderr, past the test harness's capture, that a test was skipped
/// because PyPI has no wheel of `what` for this Python, so that CI's log says so.
pub fn skip_without_wheel(test: &str, what: &str) {
    let msg = format!(
        "SKIPPED {test}: PyPI has no {what} wheel for {} (pip: No matching distribution found)\n",
        python_bin().display()
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), msg.as_bytes());
}

/// The parpy wheel for the Python under test, built once per test run by
/// `packaging/wheel/build` into `<target>/test-wheels/`.
pub fn built_wheel() -> PathBuf {
    static WHEEL: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);
    let mut w = WHEEL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = w.as_ref() {
        return p.clone();
    }
    let target = parpy_bin()
        .parent()
        .and_then(|p| p.parent())
        .expect("the parpy binary lives in <target>/<profile>/")
        .to_path_buf();
    let out_dir = target.join("test-wheels");
    let _ = std::fs::remove_dir_all(&out_dir);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/wheel/build");
    let out = Run::new(script)
        .arg(python_bin())
        .arg(&out_dir)
        // Its own cargo target beside this one: the wheel's crates build with
        // other flags (no libpython link), which must not evict ours.
        .env("PARPY_WHEEL_TARGET", target.join("wheel"))
        .exact_timeout(Duration::from_secs(1500))
        .run();
    assert_eq!(out.code, 0, "packaging/wheel/build failed:\n{}", out.stderr);
    let wheel = PathBuf::from(out.stdout.trim().lines().last().unwrap_or_default());
    assert!(wheel.is_file(), "no wheel reported: {}", out.stdout);
    *w = Some(wheel.clone());
    wheel
}

/// A fresh venv of the Python under test at `<target>/<name>` with the
/// parpy wheel installed by pip, plus `packages` from PyPI; None when PyPI
/// has none of them for this Python.
pub fn wheel_venv(name: &str, packages: &[&str]) -> Option<PathBuf> {
    let wheel = built_wheel();
    let venv = parpy_bin()
        .parent()
        .and_then(|p| p.parent())
        .expect("the parpy binary lives in <target>/<profile>/")
        .join(name);
    let s = Command::new(python_bin())
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .status()
        .unwrap();
    assert!(s.success(), "cannot create {venv:?}");
    let wheel = wheel.to_string_lossy().into_owned();
    pip_install(
        &venv.join("bin/python"),
        std::iter::once(&wheel.as_str()).chain(packages),
    )?;
    Some(venv)
}

/// `python -m pip install ARGS`; None when PyPI has no distribution of one
/// of them for this Python, a panic with pip's words on any other failure.
fn pip_install<'a>(python: &Path, args: impl IntoIterator<Item = &'a &'a str>) -> Option<()> {
    let args: Vec<&str> = args.into_iter().copied().collect();
    let out = Command::new(python)
        .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
        .args(&args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("No matching distribution found") {
        return None;
    }
    assert!(
        out.status.success(),
        "pip install {args:?} failed:\n{stderr}"
    );
    Some(())
}
