//! Notebooks and the REPL: parpy imported in a real Jupyter kernel (ipykernel
//! from PyPI, in a venv with the wheel), driven headless as a front end does
//! (tests/scripts/notebook/drive.py), and at the interactive prompt of a
//! plain python and of the parpy launcher. What such a `__main__` defines
//! exists in main only (there is no script file for workers to import), so
//! its functions and classes travel by value.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

/// The venv with the wheel, ipykernel and jupyter_client (made once per run).
fn venv() -> Option<PathBuf> {
    static VENV: std::sync::Mutex<Option<Option<PathBuf>>> = std::sync::Mutex::new(None);
    let mut v = VENV.lock().unwrap_or_else(|e| e.into_inner());
    v.get_or_insert_with(|| wheel_venv("test-venv-notebook", &["ipykernel", "jupyter_client"]))
        .clone()
}

/// Runs `cells` in a fresh kernel of `venv`'s python (2 workers) and returns
/// the driver's JSON summary. Nothing outside `dir` is touched: the kernel
/// spec lies in `dir` (found through JUPYTER_PATH), and HOME, Jupyter's
/// runtime, config and data folders and IPYTHONDIR point there too.
fn run_notebook(venv: &Path, dir: &TempDir, cells: &Value) -> Value {
    let kernels = dir.path().join("share/jupyter/kernels/parpy-test");
    std::fs::create_dir_all(&kernels).unwrap();
    let spec = json!({
        "argv": [venv.join("bin/python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "parpy test",
        "language": "python",
        "env": {"PARPY_WORKERS": "2"},
    });
    std::fs::write(kernels.join("kernel.json"), spec.to_string()).unwrap();
    let cells_file = dir.write("cells.json", &cells.to_string());
    let o = Run::new(venv.join("bin/python"))
        .arg(scripts().join("notebook/drive.py"))
        .arg(&cells_file)
        .arg("parpy-test")
        .env("HOME", dir.path().join("home"))
        .env("JUPYTER_PATH", dir.path().join("share/jupyter"))
        .env("JUPYTER_RUNTIME_DIR", dir.path().join("runtime"))
        .env("JUPYTER_CONFIG_DIR", dir.path().join("config"))
        .env("JUPYTER_DATA_DIR", dir.path().join("data"))
        .env("JUPYTER_PLATFORM_DIRS", "1")
        .env("IPYTHONDIR", dir.path().join("ipython"))
        .env_remove("JUPYTER_CONFIG_PATH")
        .cwd(dir.path())
        .timeout(Duration::from_secs(600))
        .run();
    let summary: Value = serde_json::from_str(o.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "the driver printed no summary ({e}):\n{}\n--- stderr ---\n{}",
            o.stdout, o.stderr
        )
    });
    assert!(
        summary["hung"].is_null() && o.code == 0,
        "the notebook hung ({}): kernel {}\n{summary:#}\n--- stderr (the kernel's too) ---\n{}",
        summary["hung"],
        summary["kernel"],
        o.stderr
    );
    summary
}

/// Cell `i` of a summary, with a description for assertion messages.
fn cell(summary: &Value, i: usize) -> (&Value, String) {
    let c = &summary["cells"][i];
    (c, format!("cell {i}: {c:#}"))
}

/// The cell's one execute result (its last expression's repr).
fn result(summary: &Value, i: usize) -> String {
    let (c, desc) = cell(summary, i);
    assert_eq!(c["reply"], "ok", "{desc}");
    assert_eq!(c["errors"], json!([]), "{desc}");
    let r = c["results"].as_array().expect("results");
    assert_eq!(r.len(), 1, "{desc}");
    r[0].as_str().unwrap().to_owned()
}

fn stdout(summary: &Value, i: usize) -> String {
    let (c, desc) = cell(summary, i);
    assert_eq!(c["reply"], "ok", "{desc}");
    c["stdout"].as_str().unwrap().to_owned()
}

/// Functions, lambdas, classes, globals and helpers of earlier cells, and
/// what tasks print: all in one kernel, each cell's output its own.
#[test]
fn notebook_cells_define_what_their_tasks_run() {
    let Some(venv) = venv() else {
        return skip_without_wheel("notebook_cells_define_what_their_tasks_run", "ipykernel");
    };
    let dir = TempDir::new("notebook");
    let cells = json!([
        // 0: a function defined in a cell, with @parallel's map and an Executor's submit.
        {"code": "import parpy, sys, time\n\
                  def square(x):\n    return x * x\n\
                  print(parpy.parallel(square).map(range(20)))\n\
                  ex = parpy.Executor()\n\
                  ex.submit(square, 7).result()"},
        // 1: a lambda in Executor.map.
        {"code": "list(ex.map(lambda x: x + 1, range(5)))"},
        // 2: a class of a cell: instances as arguments and results, methods in workers.
        {"code": "class Point:\n\
                  \x20   def __init__(self, x, y):\n        self.x, self.y = x, y\n\
                  \x20   def norm1(self):\n        return abs(self.x) + abs(self.y)\n\
                  \x20   def __repr__(self):\n        return f'Point({self.x}, {self.y})'\n\
                  def shift(p):\n    return Point(p.x + 1, p.y * 2)\n\
                  out = parpy.parallel(shift).map([Point(i, -i) for i in range(4)])\n\
                  (out, type(out[0]) is Point, ex.submit(Point.norm1, out[3]).result())"},
        // 3, 4: a global and a helper of one cell, used by a function of the next.
        {"code": "SCALE = 10\ndef helper(x):\n    return x * SCALE"},
        {"code": "def uses(x):\n    return helper(x) + 1\nparpy.parallel(uses).map(range(5))"},
        // 5: the global rebound in a later cell: the tasks see the new value.
        {"code": "SCALE = 100\nparpy.parallel(uses).map(range(3))"},
        // 6: what tasks print is this cell's output: lines of a map (its
        // caller takes them), then of a future that the collector thread
        // takes while the cell sleeps.
        {"code": "def talk(i):\n    print(f'task {i} says hi')\n\
                  \x20   print(f'task {i} on stderr', file=sys.stderr)\n    return i\n\
                  parpy.parallel(talk).map(range(6))\n\
                  fut = ex.submit(talk, 99)\ntime.sleep(1)\nfut.result()"},
        // 7: the kernel still works, and parpy ran in workers.
        {"code": "ids = set(parpy.parallel(lambda _: parpy.worker_id()).map(range(40), chunksize=1))\n\
                  (None in ids, ids <= {0, 1})"},
    ]);
    let s = run_notebook(&venv, &dir, &cells);
    assert_eq!(
        stdout(&s, 0),
        "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81, 100, 121, 144, 169, 196, 225, 256, 289, 324, 361]\n"
    );
    assert_eq!(result(&s, 0), "49");
    assert_eq!(result(&s, 1), "[1, 2, 3, 4, 5]");
    assert_eq!(
        result(&s, 2),
        "([Point(1, 0), Point(2, -2), Point(3, -4), Point(4, -6)], True, 10)"
    );
    assert_eq!(result(&s, 4), "[1, 11, 21, 31, 41]");
    assert_eq!(result(&s, 5), "[1, 101, 201]");
    assert_eq!(result(&s, 6), "99");
    let (c, desc) = cell(&s, 6);
    for stream in ["stdout", "stderr"] {
        let text = c[stream].as_str().unwrap();
        let what = if stream == "stdout" {
            "says hi"
        } else {
            "on stderr"
        };
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort();
        let mut want: Vec<String> = [0, 1, 2, 3, 4, 5, 99]
            .iter()
            .map(|i| format!("task {i} {what}"))
            .collect();
        want.sort();
        assert_eq!(lines, want, "{stream} of {desc}");
    }
    assert_eq!(
        result(&s, 7),
        "(False, True)",
        "tasks ran elsewhere than in the 2 workers"
    );
    assert_eq!(s["stray"], json!([]), "output outside its cell: {s:#}");
    assert_eq!(s["kernel"]["alive"], true, "{s:#}");
}

/// Interrupting a cell (the notebook's stop button: SIGINT to the kernel)
/// stops its tasks within seconds, running or pending, whether the cell
/// waits in a map or on futures, and the next cell has the whole pool.
#[test]
fn interrupting_a_cell_stops_its_tasks_and_the_pool_goes_on() {
    if slowdown() > 1 {
        // On the --with-pydebug build (8x slower) under CI's load, the
        // interrupt raced the cells twice in two runs: once a cell showed
        // KeyboardInterrupt with an "ok" reply, once the cell after an
        // interrupted one was aborted by ipykernel. Release builds pass; the
        // cause is not found yet (see issue 13's closing note).
        eprintln!(
            "SKIPPED interrupting_a_cell_stops_its_tasks_and_the_pool_goes_on: \
             debug build (interrupt timing races its cells there)"
        );
        return;
    }
    let Some(venv) = venv() else {
        return skip_without_wheel(
            "interrupting_a_cell_stops_its_tasks_and_the_pool_goes_on",
            "ipykernel",
        );
    };
    let dir = TempDir::new("notebook-interrupt");
    let marks = dir.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let mark = |m: &str| marks.join(m).to_string_lossy().into_owned();
    // Each task marks that it started, then loops in pure Python for a
    // minute (not stopped, the next cells would wait for that), then marks
    // that it finished.
    let spin = format!(
        "import os, time, parpy\n\
         MARKS = {:?}\n\
         def spin(i, tag):\n\
         \x20   open(os.path.join(MARKS, f'{{tag}}{{i}}'), 'w').close()\n\
         \x20   end = time.monotonic() + 60\n\
         \x20   while time.monotonic() < end:\n\
         \x20       pass\n\
         \x20   open(os.path.join(MARKS, f'{{tag}}{{i}}-finished'), 'w').close()\n\
         \x20   return i\n\
         def square(x):\n    return x * x\n\
         parpy.parallel(square).map(range(4))",
        marks.to_string_lossy()
    );
    let cells = json!([
        // 0: the pool starts in a cell of its own: the cells below are later
        // ones, before each of which ipykernel resets SIGINT's handler.
        {"code": spin},
        // 1: a long map, interrupted once its first task runs.
        {"code": "parpy.parallel(spin).map(range(8), ['map'] * 8)", "interrupt_when": mark("map0")},
        // 2: futures, interrupted while the cell waits on the first.
        {"code": "ex = parpy.Executor()\nfs = [ex.submit(spin, i, 'fut') for i in range(4)]\n\
                  [f.result() for f in fs]", "interrupt_when": mark("fut0")},
        // 3: every future is over: cancelled (pending) or interrupted (running).
        {"code": "[f.cancelled() or type(f.exception()).__name__ for f in fs]"},
        // 4, 5: both pools are free at once.
        {"code": "parpy.parallel(square).map(range(10))", "timeout": 120},
        {"code": "list(ex.map(square, range(4)))", "timeout": 120},
        // 6: no task ran to its end.
        {"code": "sorted(m for m in os.listdir(MARKS) if m.endswith('-finished'))"},
    ]);
    let s = run_notebook(&venv, &dir, &cells);
    assert_eq!(result(&s, 0), "[0, 1, 4, 9]");
    for i in [1, 2] {
        let (c, desc) = cell(&s, i);
        assert_eq!(c["reply"], "error", "{desc}");
        assert_eq!(c["errors"][0]["ename"], "KeyboardInterrupt", "{desc}");
        let took = c["interrupt_to_end_s"].as_f64().expect("interrupted");
        assert!(took < 20.0 * f64::from(slowdown()), "{desc}");
    }
    let over = result(&s, 3);
    assert!(
        over.starts_with('[')
            && over
                .trim_matches(['[', ']'])
                .split(", ")
                .all(|x| x == "True" || x == "'KeyboardInterrupt'"),
        "a future of the interrupted cell is not over: {over}"
    );
    assert_eq!(result(&s, 4), "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]");
    assert_eq!(result(&s, 5), "[0, 1, 4, 9]");
    for i in [4, 5] {
        // A task left running would hold a worker for the rest of its minute.
        let (c, desc) = cell(&s, i);
        assert!(
            c["elapsed_s"].as_f64().unwrap() < 30.0 * f64::from(slowdown()),
            "{desc}"
        );
    }
    assert_eq!(result(&s, 6), "[]");
    assert_eq!(s["kernel"]["alive"], true, "{s:#}");
}

/// What the REPL tests type at the prompt: a function, a class, a global
/// and a lambda defined there, mapped and submitted.
const AT_THE_PROMPT: &str = "\
import parpy
class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y
    def __repr__(self):
        return f'Point({self.x}, {self.y})'

OFFSET = 5
def shift(p):
    return Point(p.x + OFFSET, p.y)

print(parpy.parallel(shift).map([Point(i, i) for i in range(3)]))
print(type(parpy.Executor().submit(shift, Point(0, 0)).result()) is Point)
print(parpy.parallel(lambda x: x * OFFSET).map(range(4)))
class Odd(Exception):
    pass

def check(x):
    if x % 2:
        raise Odd(f'{x} is odd')
    return x

try:
    parpy.parallel(check).map(range(4))
except Odd as e:
    print('raised', type(e) is Odd, e)

";

const AT_THE_PROMPT_OUT: &str = "[Point(5, 0), Point(6, 1), Point(7, 2)]\nTrue\n[0, 5, 10, 15]\n\
                                 raised True 1 is odd\n";

/// The venv's plain python at its interactive prompt (`-i`, reading stdin).
#[test]
fn plain_python_repl_maps_what_the_prompt_defines() {
    let Some(venv) = venv() else {
        return skip_without_wheel(
            "plain_python_repl_maps_what_the_prompt_defines",
            "ipykernel",
        );
    };
    let o = Run::new(venv.join("bin/python"))
        .args(["-q", "-i"])
        .env("PARPY_WORKERS", "2")
        .stdin(AT_THE_PROMPT)
        .cwd(std::env::temp_dir())
        .run();
    assert_eq!(o.code, 0, "{o:#?}");
    assert_eq!(o.stdout, AT_THE_PROMPT_OUT, "{}", o.stderr);
}

/// The launcher's prompt, its `-` (a script on stdin) and `-c`: no script
/// file for workers to import either.
#[test]
fn launcher_prompt_stdin_and_c_map_what_main_defines() {
    let prompt = Run::parpy()
        .args(["-j", "2", "-q", "-i"])
        .stdin(AT_THE_PROMPT)
        .run();
    assert_eq!(prompt.code, 0, "{prompt:#?}");
    assert_eq!(prompt.stdout, AT_THE_PROMPT_OUT, "{}", prompt.stderr);
    let stdin = Run::parpy()
        .args(["-j", "2", "-"])
        .stdin(AT_THE_PROMPT)
        .run();
    assert_eq!(ok(&stdin), AT_THE_PROMPT_OUT, "{}", stdin.stderr);
    let c = Run::parpy().args(["-j", "2", "-c", AT_THE_PROMPT]).run();
    assert_eq!(ok(&c), AT_THE_PROMPT_OUT, "{}", c.stderr);
}
