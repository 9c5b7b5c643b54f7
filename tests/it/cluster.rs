//! parpy on a Dask cluster: a real `dask scheduler` on loopback and two
//! `parpy worker` processes, started and stopped here (a Drop guard kills
//! them), with the scripts' results checked against a run without a cluster.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Run, TempDir, native_stacks, pypi_venv, python_bin, skip_without_wheel};

/// The virtualenv with Dask (see [`pypi_venv`]).
fn dask_venv(test: &str) -> Option<PathBuf> {
    let venv = pypi_venv(
        "test-venv-dask",
        &["dask", "distributed"],
        "import dask, distributed",
    );
    if venv.is_none() {
        skip_without_wheel(test, "dask/distributed");
    }
    venv
}

/// This machine's name as Python's `socket.gethostname()` gives it (the workers' `[host]` prefix).
fn hostname() -> String {
    let out = std::process::Command::new(python_bin())
        .args(["-c", "import socket; print(socket.gethostname())"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// Every log of the cluster in `dir`.
fn logs_in(dir: &Path) -> String {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    names.retain(|p| p.extension().is_some_and(|e| e == "log"));
    names.sort();
    names
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            format!("--- {} ---\n{text}", p.display())
        })
        .collect()
}

/// A scheduler and its workers; all are killed when it is dropped.
struct Cluster {
    venv: PathBuf,
    address: String,
    dir: TempDir,
    scheduler: Option<Child>,
    workers: Vec<Child>,
    /// The folder of ca.pem, node.pem and node.key, for a cluster on tls://.
    tls: Option<PathBuf>,
}

impl Cluster {
    /// A scheduler on 127.0.0.1 and `workers` parpy workers of 2 sub-interpreters each.
    fn start(venv: &Path, workers: usize) -> Cluster {
        Cluster::start_with(venv, workers, None)
    }

    /// The same, on tls:// with the certificates in `tls` when given.
    fn start_with(venv: &Path, workers: usize, tls: Option<&Path>) -> Cluster {
        let dir = TempDir::new("cluster");
        let port = free_port();
        let scheme = if tls.is_some() { "tls" } else { "tcp" };
        let address = format!("{scheme}://127.0.0.1:{port}");
        let mut c = Cluster {
            venv: venv.to_path_buf(),
            address,
            dir,
            scheduler: None,
            workers: Vec::new(),
            tls: tls.map(Path::to_path_buf),
        };
        let log = std::fs::File::create(c.dir.path().join("scheduler.log")).unwrap();
        let sched = Run::new(venv.join("bin").join("dask"))
            .args(["scheduler", "--host", "127.0.0.1", "--no-dashboard"])
            .args(["--port", &port.to_string(), "--protocol", scheme])
            .args(c.tls_args())
            .cwd(c.dir.path())
            .command()
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dask scheduler");
        c.scheduler = Some(sched);
        c.wait_for("the scheduler to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        for i in 0..workers {
            c.add_worker(i);
        }
        c
    }

    /// `--tls-ca-file … --tls-cert … --tls-key …`, or nothing.
    fn tls_args(&self) -> Vec<PathBuf> {
        let Some(d) = &self.tls else {
            return Vec::new();
        };
        let mut v = Vec::new();
        for (opt, file) in [
            ("ca-file", "ca.pem"),
            ("cert", "node.pem"),
            ("key", "node.key"),
        ] {
            v.push(PathBuf::from(format!("--tls-{opt}")));
            v.push(d.join(file));
        }
        v
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    fn logs(&self) -> String {
        logs_in(self.dir.path())
    }

    /// Polls `ready` for up to 60 s; on a time-out, fails with every log and the workers' stacks.
    fn wait_for(&self, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready() {
            if Instant::now() > deadline {
                let stacks: String = self.workers.iter().map(|w| native_stacks(w.id())).collect();
                panic!(
                    "timed out waiting for {what}\n{}\n--- worker stacks ---\n{stacks}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts `parpy worker` number `i`, in a folder of its own, and waits until it registered.
    fn add_worker(&mut self, i: usize) {
        let name = format!("worker{i}.log");
        let log = std::fs::File::create(self.dir.path().join(&name)).unwrap();
        let cwd = self.dir.path().join(format!("w{i}"));
        std::fs::create_dir_all(&cwd).unwrap();
        let child = Run::parpy()
            .env("VIRTUAL_ENV", &self.venv)
            .args(["worker", &self.address, "-j", "2", "--host", "127.0.0.1"])
            .args(["--name", &format!("w{i}")])
            .args(self.tls_args())
            .cwd(cwd)
            .command()
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start parpy worker");
        self.workers.push(child);
        let scheme = self
            .address
            .split("://")
            .next()
            .unwrap_or("tcp")
            .to_string();
        let registered = format!("parpy worker {scheme}://127.0.0.1:");
        self.wait_for("a parpy worker to register", || {
            self.log(&name).contains(&registered)
        });
    }

    /// A script run on this cluster.
    fn script(&self, path: &Path) -> Run {
        let mut run = Run::parpy().env("VIRTUAL_ENV", &self.venv);
        if let Some(d) = &self.tls {
            // The client takes Dask's own settings.
            run = run
                .env("DASK_DISTRIBUTED__COMM__TLS__CA_FILE", d.join("ca.pem"))
                .env(
                    "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT",
                    d.join("node.pem"),
                )
                .env(
                    "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY",
                    d.join("node.key"),
                )
                .env("DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION", "True");
        }
        run.args(["--cluster", &self.address])
            .arg(path)
            .arg(&self.address)
            .timeout(Duration::from_secs(120))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for w in &mut self.workers {
            let _ = w.kill();
            let _ = w.wait();
        }
        if let Some(s) = &mut self.scheduler {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

/// A script run whose stdout lines the test sees as they come.
struct Streamed {
    child: Child,
    rx: std::sync::mpsc::Receiver<String>,
    err: Option<std::thread::JoinHandle<String>>,
    lines: Vec<String>,
}

impl Streamed {
    fn spawn(run: Run) -> Streamed {
        let mut child = run.spawn_piped();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
            s
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Streamed {
            child,
            rx,
            err: Some(err),
            lines: Vec::new(),
        }
    }

    /// Hands each line to `on_line` until stdout closes; a hang fails with the stacks.
    fn lines_until(&mut self, logs: &Path, limit: Duration, mut on_line: impl FnMut(&str)) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    on_line(&line);
                    self.lines.push(line);
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    let stacks = native_stacks(self.child.id());
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "the script hung; stdout {:?}\n--- stacks ---\n{stacks}\n{}",
                        self.lines,
                        logs_in(logs)
                    );
                }
            }
        }
    }

    fn finish(mut self) -> (std::process::ExitStatus, Vec<String>, String) {
        let status = self.child.wait().unwrap();
        let err = self
            .err
            .take()
            .map(|e| e.join().unwrap())
            .unwrap_or_default();
        (status, std::mem::take(&mut self.lines), err)
    }
}

impl Drop for Streamed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every API form; prints only results (worker output is checked apart).
const FORMS: &str = r#"
import sys
import parpy

class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y
    def __eq__(self, other):
        return (self.x, self.y) == (other.x, other.y)
    def __repr__(self):
        return f"Point({self.x}, {self.y})"

SCALE = 3

@parpy.parallel
def score(n, weight=1):
    return sum(i * i for i in range(n)) * weight * SCALE

@parpy.parallel
def move(p, dx):
    return Point(p.x + dx, p.y - dx)

def fails(x):
    if x == 7:
        raise ValueError(f"no {x}")
    return x

@parpy.parallel
def talk(x):
    print(f"line {x}")
    return x

OFFSET = None

def setup(base):
    global OFFSET
    OFFSET = base

def offset(x):
    return (x + OFFSET, parpy.worker_id() is not None)

if __name__ == "__main__":
    address = sys.argv[1] if len(sys.argv) > 1 else None
    items = list(range(300))
    print("map", score.map(items) == [score(i) for i in items])
    print("map chunksize", score.map(items, chunksize=7) == [score(i) for i in items])
    print("map 2 iterables", move.map([Point(i, i) for i in range(50)], range(50))
          == [move(Point(i, i), i) for i in range(50)])
    print("unordered", sorted(score.map_unordered(items)) == sorted(score(i) for i in items))
    print("submit", score.submit(40, weight=2).result() == score(40, weight=2))
    print("empty", score.map([]))
    ex = parpy.Executor(cluster=address) if address else parpy.Executor()
    with ex:
        print("Executor.map", list(ex.map(score, items)) == [score(i) for i in items])
        print("Executor.submit", ex.submit(pow, 3, 4).result())
        print("lambda", list(ex.map(lambda v: v * SCALE, [1, 2, 3])))
        print("builtin", list(ex.map(abs, [-1, -2])))
        try:
            list(ex.map(fails, range(10)))
        except ValueError as e:
            cause = e.__cause__
            print("error", e, type(cause).__name__, "Traceback" in str(cause),
                  "fails" in str(cause))
        try:
            ex.submit(fails, 7).result()
        except ValueError as e:
            print("error submit", e)
    def executor(**kw):
        return parpy.Executor(cluster=address, **kw) if address else parpy.Executor(**kw)
    with executor(initializer=setup, initargs=(100,)) as ex:
        print("initializer", list(ex.map(offset, range(5))), ex.submit(offset, 1).result())
    with executor(initializer=fails, initargs=(7,)) as ex:
        try:
            ex.submit(abs, -1).result()
        except Exception as e:
            print("failing initializer", type(e).__name__, isinstance(e, parpy.BrokenWorker))
    try:
        executor(initializer=3)
    except TypeError as e:
        print("initializer not callable:", e)
    print("talk", talk.map(range(3)))
"#;

#[test]
fn every_api_form_matches_a_run_without_cluster() {
    let Some(venv) = dask_venv("every_api_form_matches_a_run_without_cluster") else {
        return;
    };
    let cluster = Cluster::start(&venv, 2);
    let dir = TempDir::new("cluster-forms");
    let script = dir.write("forms.py", FORMS);
    let local = Run::parpy()
        .arg(&script)
        .timeout(Duration::from_secs(60))
        .run();
    assert_eq!(local.code, 0, "without a cluster: {local:?}");
    let out = cluster.script(&script).run();
    assert_eq!(out.code, 0, "{out:?}\n{}", cluster.logs());
    // Worker output arrives line by line, each line naming its host.
    let host = hostname();
    let prefix = format!("[{host}] ");
    // The tasks' lines come in the order their tasks ran, on the cluster as
    // on one machine: compared as sets, the rest line for line.
    let talk = |text: &str| {
        let mut t: Vec<String> = text
            .lines()
            .filter(|l| l.contains("line "))
            .map(str::to_string)
            .collect();
        t.sort();
        t
    };
    let rest = |text: &str| -> String {
        text.lines()
            .filter(|l| !l.contains("line "))
            .map(|l| l.strip_prefix(&prefix).unwrap_or(l).to_string() + "\n")
            .collect()
    };
    assert_eq!(
        talk(&out.stdout),
        ["line 0", "line 1", "line 2"].map(|l| format!("{prefix}{l}")),
        "{out:?}"
    );
    assert_eq!(
        talk(&local.stdout),
        ["line 0", "line 1", "line 2"],
        "{local:?}"
    );
    assert_eq!(rest(&out.stdout), rest(&local.stdout), "{out:?}");
    assert!(local.stdout.contains("map True\n"), "{local:?}");
    assert!(
        local.stdout.contains(
            "initializer [(100, True), (101, True), (102, True), (103, True), (104, True)] (101, True)\n\
             failing initializer BrokenWorker True\n\
             initializer not callable: initializer must be a callable\n"
        ),
        "{local:?}"
    );
    assert!(!local.stdout.contains("False"), "{local:?}");
    assert!(
        local
            .stdout
            .contains("error no 7 RemoteTraceback True True\n"),
        "{local:?}"
    );
}

/// Where the items ran, and how many Dask tasks the map became.
const SPREAD: &str = r#"
import os, sys, time
import parpy

@parpy.parallel
def where(i):
    time.sleep(0.05)
    return os.getpid(), parpy.worker_id(), os.getcwd(), __file__

if __name__ == "__main__":
    import distributed  # (it refuses sub-interpreters: not where workers load the script)
    ex = parpy._default_executor()
    with distributed.get_task_stream(client=ex._client) as ts:
        out = where.map(range(80))
    print("pids", len({p for p, _, _, _ in out}))
    print("subinterpreters", len({(p, w) for p, w, _, _ in out}))
    print("in worker", all(w is not None for _, w, _, _ in out))
    print("not here", all(p != os.getpid() for p, _, _, _ in out))
    print("own cwd", all(c != os.getcwd() for _, _, c, _ in out))
    print("file", sorted({os.path.basename(f) for _, _, _, f in out}))
    print("tasks", len(ts.data))
"#;

#[test]
fn a_map_is_chunked_over_every_subinterpreter_of_every_worker() {
    let Some(venv) = dask_venv("a_map_is_chunked_over_every_subinterpreter_of_every_worker") else {
        return;
    };
    let cluster = Cluster::start(&venv, 2);
    let dir = TempDir::new("cluster-spread");
    let script = dir.write("spread.py", SPREAD);
    let out = cluster.script(&script).run();
    assert_eq!(out.code, 0, "{out:?}\n{}", cluster.logs());
    let line = |key: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} in {out:?}"))
            .to_string()
    };
    assert_eq!(line("pids"), "2", "{out:?}");
    let subs: u32 = line("subinterpreters").parse().unwrap();
    assert!(
        subs >= 3,
        "only {subs} sub-interpreters of 4 were used: {out:?}"
    );
    assert_eq!(line("in worker"), "True");
    assert_eq!(line("not here"), "True");
    assert_eq!(line("own cwd"), "True");
    assert_eq!(line("file"), "['spread.py']");
    // 4 chunks per sub-interpreter (16 tasks of 5 items), not 80 tasks.
    let tasks: u32 = line("tasks").parse().unwrap();
    assert!(
        (4..=20).contains(&tasks),
        "{tasks} Dask tasks for 80 items: {out:?}"
    );
}

/// A task that prints a line, then waits until the client has printed it: only
/// output that reaches the client while the task runs lets it finish in time.
const LIVE: &str = r#"
import io, os, sys, time
import parpy

def ready_then_wait(marker):
    print("ready", flush=True)
    print("to stderr", file=sys.stderr)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if os.path.exists(marker):
            print("after")
            return True
        time.sleep(0.01)
    return False

class Watch(io.TextIOBase):
    """The client's stdout: makes the marker when the task's line shows."""
    def __init__(self, real, marker):
        self.real, self.marker = real, marker
    def write(self, text):
        if "ready" in text:
            open(self.marker, "w").close()
        return self.real.write(text)
    def flush(self):
        self.real.flush()

if __name__ == "__main__":
    marker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seen")
    sys.stdout = Watch(sys.stdout, marker)
    with parpy.Executor(cluster=sys.argv[1]) as ex:
        print("seen while running", ex.submit(ready_then_wait, marker).result())
"#;

#[test]
fn worker_output_reaches_the_client_while_the_task_runs() {
    let Some(venv) = dask_venv("worker_output_reaches_the_client_while_the_task_runs") else {
        return;
    };
    let cluster = Cluster::start(&venv, 1);
    let dir = TempDir::new("cluster-live");
    let script = dir.write("live.py", LIVE);
    let out = cluster.script(&script).run();
    assert_eq!(out.code, 0, "{out:?}\n{}", cluster.logs());
    let host = hostname();
    // Each line once, in the task's order, and the result after them.
    assert_eq!(
        out.stdout,
        format!("[{host}] ready\n[{host}] after\nseen while running True\n"),
        "{out:?}"
    );
    assert_eq!(out.stderr, format!("[{host}] to stderr\n"), "{out:?}");
}

/// Prints each result as it arrives, so that the test can kill a worker mid-map.
const LONG_MAP: &str = r#"
import sys, time
import parpy

@parpy.parallel
def slow(i):
    time.sleep(0.1)
    return i * i

if __name__ == "__main__":
    got = []
    for r in slow.map_unordered(range(120), chunksize=2):
        got.append(r)
        if len(got) == 4:
            print("FIRST", flush=True)
    print("complete", sorted(got) == [i * i for i in range(120)], flush=True)
"#;

#[test]
fn sigkill_of_a_worker_mid_map_loses_nothing() {
    let Some(venv) = dask_venv("sigkill_of_a_worker_mid_map_loses_nothing") else {
        return;
    };
    let mut cluster = Cluster::start(&venv, 2);
    let dir = TempDir::new("cluster-kill");
    let script = dir.write("long.py", LONG_MAP);
    let mut s = Streamed::spawn(cluster.script(&script));
    let mut killed = false;
    let mut victim = cluster.workers.remove(0);
    s.lines_until(cluster.dir.path(), Duration::from_secs(120), |line| {
        if line == "FIRST" && !killed {
            // SIGKILL, as a crash or the OOM killer would.
            victim.kill().unwrap();
            let _ = victim.wait();
            killed = true;
        }
    });
    let _ = victim.kill();
    let _ = victim.wait();
    let (status, lines, stderr) = s.finish();
    assert!(killed, "no FIRST line: {lines:?} {stderr}");
    assert!(
        status.success(),
        "{status:?} {lines:?}\n{stderr}\n{}",
        cluster.logs()
    );
    assert_eq!(lines, ["FIRST", "complete True"], "{stderr}");
}

#[test]
fn a_bad_address_is_one_line_and_exit_2() {
    let Some(venv) = dask_venv("a_bad_address_is_one_line_and_exit_2") else {
        return;
    };
    let dir = TempDir::new("cluster-bad");
    let script = dir.write("s.py", "print('ran')\n");
    let nobody = format!("tcp://127.0.0.1:{}", free_port());
    // Dask's reason for a port where nothing listens depends on timing
    // (a refused connection, or its connect timeout on a loaded machine).
    for (address, says) in [(nobody.as_str(), ""), ("bogus", "missing port number")] {
        let out = Run::parpy()
            .env("VIRTUAL_ENV", &venv)
            .args(["--cluster", address])
            .arg(&script)
            .timeout(Duration::from_secs(60))
            .run();
        assert_eq!(out.code, 2, "{out:?}");
        assert_eq!(out.stdout, "", "the script must not run: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
        assert!(
            out.stderr.starts_with(&format!(
                "parpy: cannot reach the Dask scheduler at '{address}' ("
            )) && out.stderr.contains(says),
            "{out:?}"
        );
    }
    // PARPY_CLUSTER means the same.
    let out = Run::parpy()
        .env("VIRTUAL_ENV", &venv)
        .env("PARPY_CLUSTER", "bogus")
        .arg(&script)
        .timeout(Duration::from_secs(60))
        .run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("missing port number"), "{out:?}");
}

#[test]
fn without_dask_cluster_says_pip_install_dask_distributed() {
    let has_dask = std::process::Command::new(python_bin())
        .args(["-c", "import distributed"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_dask {
        eprintln!("SKIPPED: the Python under test has distributed installed");
        return;
    }
    let dir = TempDir::new("cluster-nodask");
    let script = dir.write("s.py", "print('ran')\n");
    let prefix = std::process::Command::new(python_bin())
        .args(["-c", "import sys; print(sys.prefix)"])
        .output()
        .unwrap();
    let prefix = String::from_utf8_lossy(&prefix.stdout).trim().to_string();
    let want = |what: &str| {
        format!(
            "parpy: {what} needs Dask, which is not installed: run `pip install dask distributed` \
             in the environment parpy runs with ({prefix})\n"
        )
    };
    let out = Run::parpy()
        .args(["--cluster", "tcp://127.0.0.1:8786"])
        .arg(&script)
        .run();
    assert_eq!((out.code, out.stdout.as_str()), (2, ""), "{out:?}");
    assert_eq!(out.stderr, want("--cluster"));
    let out = Run::parpy().args(["worker", "tcp://127.0.0.1:8786"]).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(out.stderr, want("parpy worker"));
}

#[test]
fn a_script_named_worker_still_runs_as_dot_slash_worker() {
    let dir = TempDir::new("cluster-named");
    dir.write("worker", "import sys; print('script', sys.argv[1:])\n");
    let out = Run::parpy().args(["./worker", "x"]).cwd(dir.path()).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "script ['x']\n");
}

/// A map long enough to be interrupted.
const SLOW_MAP: &str = r#"
import time
import parpy

@parpy.parallel
def slow(i):
    time.sleep(0.2)
    return i

if __name__ == "__main__":
    print("start", flush=True)
    print(len(slow.map(range(400), chunksize=1)))
"#;

/// Waits for the script's "start" line and then a little, so that its tasks run.
fn after_start(signal: impl FnOnce()) -> impl FnMut(&str) {
    let mut signal = Some(signal);
    move |line| {
        if line == "start" {
            std::thread::sleep(Duration::from_secs(2));
            if let Some(f) = signal.take() {
                f();
            }
        }
    }
}

#[test]
fn a_scheduler_that_goes_away_is_a_clear_error() {
    let Some(venv) = dask_venv("a_scheduler_that_goes_away_is_a_clear_error") else {
        return;
    };
    let mut cluster = Cluster::start(&venv, 1);
    let dir = TempDir::new("cluster-nosched");
    let script = dir.write("slow.py", SLOW_MAP);
    let mut s = Streamed::spawn(cluster.script(&script));
    let mut sched = cluster.scheduler.take().unwrap();
    s.lines_until(
        cluster.dir.path(),
        Duration::from_secs(60),
        after_start(|| {
            sched.kill().unwrap();
            let _ = sched.wait();
        }),
    );
    let _ = sched.kill();
    let _ = sched.wait();
    let (status, lines, stderr) = s.finish();
    assert_eq!(status.code(), Some(1), "{lines:?} {stderr}");
    assert_eq!(lines, ["start"], "{stderr}");
    let last = stderr.lines().last().unwrap_or("");
    assert!(
        last.starts_with(&format!(
            "ConnectionError: parpy: lost the connection to the Dask scheduler at {}; ",
            cluster.address
        )),
        "{stderr}"
    );
}

#[test]
fn ctrl_c_of_the_client_cancels_its_tasks() {
    let Some(venv) = dask_venv("ctrl_c_of_the_client_cancels_its_tasks") else {
        return;
    };
    let cluster = Cluster::start(&venv, 2);
    let dir = TempDir::new("cluster-sigint");
    let script = dir.write("slow.py", SLOW_MAP);
    let mut s = Streamed::spawn(cluster.script(&script));
    let pid = s.child.id() as i32;
    s.lines_until(
        cluster.dir.path(),
        Duration::from_secs(60),
        after_start(|| {
            // SAFETY: kill(2) on our own child, not reaped yet.
            unsafe { libc::kill(pid, libc::SIGINT) };
        }),
    );
    let (status, lines, stderr) = s.finish();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGINT), "{lines:?} {stderr}");
    assert!(stderr.contains("KeyboardInterrupt"), "{stderr}");
    // The scheduler forgets the client's 400 tasks (the client is gone and
    // cancelled them), instead of running them on.
    let check = format!(
        "import time, distributed\n\
         c = distributed.Client({:?}, timeout=10)\n\
         for _ in range(100):\n\
         \x20   n = c.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))\n\
         \x20   if n == 0: break\n\
         \x20   time.sleep(0.1)\n\
         print('tasks', n)\n",
        cluster.address
    );
    let out = Run::new(venv.join("bin").join("python"))
        .args(["-c", &check])
        .timeout(Duration::from_secs(60))
        .run();
    assert_eq!(out.stdout, "tasks 0\n", "{out:?}");
}

/// A CA made here and one certificate it signed for 127.0.0.1 (openssl).
fn make_certificates(dir: &Path) -> bool {
    let run = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=parpy test CA",
    ]) && run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "node.key",
        "-out",
        "node.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]) && run(&[
        "x509",
        "-req",
        "-in",
        "node.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "node.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ])
}

#[test]
fn tls_with_a_self_signed_ca() {
    let Some(venv) = dask_venv("tls_with_a_self_signed_ca") else {
        return;
    };
    let certs = TempDir::new("cluster-certs");
    if !make_certificates(certs.path()) {
        eprintln!("SKIPPED tls_with_a_self_signed_ca: no openssl to make certificates");
        return;
    }
    let cluster = Cluster::start_with(&venv, 2, Some(certs.path()));
    assert!(cluster.address.starts_with("tls://"));
    let dir = TempDir::new("cluster-tls");
    let script = dir.write(
        "t.py",
        "import parpy\n\
         @parpy.parallel\n\
         def sq(x):\n    return x * x\n\
         print(sq.map(range(50)) == [x * x for x in range(50)])\n",
    );
    let out = cluster.script(&script).run();
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "True\n"),
        "{out:?}\n{}",
        cluster.logs()
    );
    // Without the client's certificate, the scheduler is not reachable.
    let out = Run::parpy()
        .env("VIRTUAL_ENV", &venv)
        .args(["--cluster", &cluster.address])
        .arg(&script)
        .timeout(Duration::from_secs(60))
        .run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .starts_with("parpy: cannot reach the Dask scheduler"),
        "{out:?}"
    );
}

/// `readline` refuses sub-interpreters: such chunks run in a fallback process on the worker's host.
const REFUSED: &str = r#"
import os
import parpy

@parpy.parallel
def uses(x):
    import readline
    return x * 2, os.getpid()

@parpy.parallel
def plain(x):
    return x * 2, os.getpid()

if __name__ == "__main__":
    r = uses.map(range(20))
    p = plain.map(range(20))
    print([x for x, _ in r] == [x for x, _ in p] == [x * 2 for x in range(20)])
    print("elsewhere", not ({q for _, q in r} & {q for _, q in p}))
    print(plain.map(range(3)))
"#;

#[test]
fn a_module_that_refuses_subinterpreters_runs_in_the_workers_fallback() {
    let Some(venv) =
        dask_venv("a_module_that_refuses_subinterpreters_runs_in_the_workers_fallback")
    else {
        return;
    };
    let has_readline = std::process::Command::new(python_bin())
        .args(["-c", "import readline"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_readline {
        eprintln!("SKIPPED: the Python under test has no readline");
        return;
    }
    let cluster = Cluster::start(&venv, 1);
    let dir = TempDir::new("cluster-refused");
    let script = dir.write("refused.py", REFUSED);
    let out = cluster.script(&script).run();
    assert_eq!(out.code, 0, "{out:?}\n{}", cluster.logs());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[..2], ["True", "elsewhere True"], "{out:?}");
    // The pool is still the worker's own after a refusal: later chunks run there.
    assert!(lines[2].starts_with("[(0, "), "{out:?}");
}

/// SPMD ranks count across the cluster.
const RANKS: &str = r#"
import os
import parpy

def whoami(ctx, base):
    return base + ctx.rank, ctx.size, os.getpid(), ctx.queue

def __parallel__(ctx):
    return ctx.rank, ctx.size, os.getpid()

def __gather__(results):
    print("gather ranks", [r for r, _, _ in results])
    print("gather size", {s for _, s, _ in results})
    print("gather pids", len({p for _, _, p in results}))

if __name__ == "__main__":
    out = parpy.spmd(whoami, 100)
    print("spmd", [r for r, _, _, _ in out], {s for _, s, _, _ in out}, {q for *_, q in out})
"#;

#[test]
fn spmd_and_parallel_ranks_count_across_the_cluster() {
    let Some(venv) = dask_venv("spmd_and_parallel_ranks_count_across_the_cluster") else {
        return;
    };
    let cluster = Cluster::start(&venv, 2);
    let dir = TempDir::new("cluster-ranks");
    let script = dir.write("ranks.py", RANKS);
    let out = cluster.script(&script).run();
    assert_eq!(out.code, 0, "{out:?}\n{}", cluster.logs());
    assert_eq!(
        out.stdout,
        "spmd [100, 101, 102, 103] {4} {None}\n\
         gather ranks [0, 1, 2, 3]\n\
         gather size {4}\n\
         gather pids 2\n",
        "{out:?}"
    );
}

/// Two network namespaces joined by a veth pair ("hosts" A and B, 10.213.N.1 and
/// 10.213.N.2), removed with every process started in them when dropped.
struct TwoHosts {
    names: [String; 2],
    addrs: [String; 2],
    children: Vec<Child>,
}

impl TwoHosts {
    fn new() -> Option<TwoHosts> {
        let id = std::process::id();
        let n = id % 250 + 1;
        let names = [format!("parpy-{id}-a"), format!("parpy-{id}-b")];
        let addrs = [format!("10.213.{n}.1"), format!("10.213.{n}.2")];
        let ip = |args: &[&str]| {
            std::process::Command::new("ip")
                .args(args)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ip(&["netns", "add", &names[0]]) {
            return None;
        }
        let hosts = TwoHosts {
            names,
            addrs,
            children: Vec::new(),
        };
        let (a, b) = (&hosts.names[0], &hosts.names[1]);
        let (va, vb) = (format!("pv{id}a"), format!("pv{id}b"));
        let ok = ip(&["netns", "add", b])
            && ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])
            && ip(&["link", "set", &va, "netns", a])
            && ip(&["link", "set", &vb, "netns", b])
            && ip(&[
                "-n",
                a,
                "addr",
                "add",
                &format!("{}/24", hosts.addrs[0]),
                "dev",
                &va,
            ])
            && ip(&[
                "-n",
                b,
                "addr",
                "add",
                &format!("{}/24", hosts.addrs[1]),
                "dev",
                &vb,
            ])
            && ip(&["-n", a, "link", "set", &va, "up"])
            && ip(&["-n", b, "link", "set", &vb, "up"])
            && ip(&["-n", a, "link", "set", "lo", "up"])
            && ip(&["-n", b, "link", "set", "lo", "up"]);
        ok.then_some(hosts)
    }

    /// `run` inside host `h`, where `hidden` (the client's folder) is an empty tmpfs.
    fn spawn(&mut self, h: usize, run: Run, hidden: &Path, log: &Path) {
        let cmd = run.command();
        let mut wrapped = Run::new("ip")
            .args(["netns", "exec", &self.names[h], "unshare", "-m", "sh", "-c"])
            .arg("mount -t tmpfs tmpfs \"$0\" && exec \"$@\"")
            .arg(hidden)
            .arg(cmd.get_program())
            .args(cmd.get_args());
        if let Some(d) = cmd.get_current_dir() {
            wrapped = wrapped.cwd(d);
        }
        for (k, v) in cmd.get_envs() {
            wrapped = match v {
                Some(v) => wrapped.env(k, v),
                None => wrapped.env_remove(k),
            };
        }
        let f = std::fs::File::create(log).unwrap();
        let child = wrapped
            .command()
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("ip netns exec");
        self.children.push(child);
    }
}

impl Drop for TwoHosts {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in &self.names {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", n])
                .status();
        }
    }
}

#[test]
fn two_hosts_in_network_namespaces_share_no_files() {
    let Some(venv) = dask_venv("two_hosts_in_network_namespaces_share_no_files") else {
        return;
    };
    let Some(mut hosts) = TwoHosts::new() else {
        eprintln!(
            "SKIPPED two_hosts_in_network_namespaces_share_no_files: cannot create network namespaces (needs root and ip)"
        );
        return;
    };
    let logs = TempDir::new("cluster-netns-logs");
    let client_dir = TempDir::new("cluster-netns-client");
    let script = client_dir.write("spread.py", SPREAD);
    let port = 8786;
    let address = format!("tcp://{}:{port}", hosts.addrs[0]);
    let sched = Run::new(venv.join("bin").join("dask"))
        .args(["scheduler", "--host", &hosts.addrs[0], "--no-dashboard"])
        .args(["--port", &port.to_string()]);
    hosts.spawn(
        0,
        sched,
        client_dir.path(),
        &logs.path().join("scheduler.log"),
    );
    let all_logs = || logs_in(logs.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    for h in 0..2 {
        let worker = Run::parpy()
            .env("VIRTUAL_ENV", &venv)
            .args(["worker", &address, "-j", "2", "--host", &hosts.addrs[h]])
            .args(["--name", &format!("host{h}")])
            .cwd(logs.path());
        let log = logs.path().join(format!("worker{h}.log"));
        hosts.spawn(h, worker, client_dir.path(), &log);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("parpy worker tcp://")
        {
            assert!(Instant::now() < deadline, "no worker {h}:\n{}", all_logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // The client runs on host B, beside one worker; the other is across the veth.
    let client = Run::parpy()
        .env("VIRTUAL_ENV", &venv)
        .args(["--cluster", &address])
        .arg(&script)
        .timeout(Duration::from_secs(120));
    let cmd = client.command();
    let out = Run::new("ip")
        .args(["netns", "exec", &hosts.names[1]])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env("VIRTUAL_ENV", &venv)
        .cwd(client_dir.path())
        .timeout(Duration::from_secs(120))
        .run();
    assert_eq!(out.code, 0, "{out:?}\n{}", all_logs());
    for want in [
        "pids 2",
        "in worker True",
        "not here True",
        "own cwd True",
        "file ['spread.py']",
    ] {
        assert!(out.stdout.lines().any(|l| l == want), "{want}: {out:?}");
    }
}

#[test]
fn a_worker_of_another_parpy_version_says_what_to_do() {
    let Some(venv) = dask_venv("a_worker_of_another_parpy_version_says_what_to_do") else {
        return;
    };
    let cluster = Cluster::start(&venv, 1);
    let dir = TempDir::new("cluster-version");
    // The client claims another version (as a client built from another parpy would).
    let script = dir.write(
        "v.py",
        "import parpy\n\
         parpy._cluster()._script_info()['parpy'] = '0.0.0-other'\n\
         @parpy.parallel\n\
         def f(x):\n    return x\n\
         try:\n    f.map(range(3))\n\
         except RuntimeError as e:\n    print(e)\n",
    );
    let out = cluster.script(&script).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.lines().count(), 1, "{out:?}");
    assert!(
        out.stdout
            .contains("the client parpy 0.0.0-other on Python")
            && out
                .stdout
                .contains("install the same parpy (and Python minor version) on every host"),
        "{out:?}"
    );
}
