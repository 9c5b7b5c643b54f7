//! Seeing what the workers do: progress bars (through a pseudo-terminal),
//! `--stats`, `--timeline` and `PARPY_LOG`, checked by parsing what they write.

use std::collections::HashMap;

use crate::common::*;

fn script(name: &str) -> std::path::PathBuf {
    scripts().join("observe").join(name)
}

/// What `parpy ARGS` wrote on a pseudo-terminal (stdout and stderr both),
/// and its exit code.
fn on_terminal(args: &[&str], env: &[(&str, &str)]) -> (String, i32) {
    // A terminal that can move its cursor: with TERM unset (as in CI's
    // chroot) or dumb, no bar is drawn, only the summary line.
    let mut run = Run::python()
        .env("TERM", "xterm")
        .arg(script("pty_run.py"))
        .arg(parpy_bin())
        .args(args);
    for (k, v) in env {
        run = run.env(k, v);
    }
    let o = run.run();
    let mut lines = o.stdout.lines();
    let text = lines.next().unwrap_or_default();
    let code = lines
        .next()
        .and_then(|l| l.strip_prefix("exit "))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("pty_run.py: {o:#?}"));
    // pty_run.py prints repr() of the text: undo it with Python itself.
    let undo = Run::python()
        .args([
            "-c",
            "import ast, sys; sys.stdout.write(ast.literal_eval(sys.stdin.read()))",
        ])
        .stdin(text)
        .run();
    (undo.stdout, code)
}

/// The text a terminal shows for each line: what follows the line's last
/// carriage return, with escape sequences dropped.
fn shown_lines(raw: &str) -> Vec<String> {
    raw.split('\n')
        .map(|l| {
            let l = l.trim_end_matches('\r');
            let tail = l.rsplit('\r').next().unwrap_or("");
            strip_ansi(tail).trim_end().to_string()
        })
        .collect()
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Counts `k` of the frames `label [...] k/total` a bar drew.
fn bar_counts(raw: &str, label: &str, total: u32) -> Vec<u32> {
    let suffix = format!("/{total} ");
    strip_ansi(raw)
        .split(['\r', '\n'])
        .filter(|f| f.starts_with(&format!("{label} [")))
        .filter_map(|f| {
            let end = f.find(&suffix)?;
            f[..end].rsplit(' ').next()?.parse().ok()
        })
        .collect()
}

/// The bar moved (a count strictly between 0 and the total was drawn), the
/// map's output lines are whole, and it ended with its summary line.
fn assert_bar(raw: &str, label: &str, total: u32, says_hi: usize) {
    let counts = bar_counts(raw, label, total);
    assert!(
        counts.iter().any(|&k| k > 0 && k < total),
        "no frame between 0 and {total}: {counts:?}\n{raw:?}"
    );
    assert!(raw.contains(" busy"), "no busy-worker count: {raw:?}");
    let shown = shown_lines(raw);
    let hi: Vec<&String> = shown.iter().filter(|l| l.contains("says hi")).collect();
    assert_eq!(hi.len(), says_hi, "{shown:#?}");
    for l in hi {
        assert!(
            l.starts_with("task ") && l.ends_with(" says hi") && !l.contains('['),
            "a worker line mixed with the bar: {l:?} in {raw:?}"
        );
    }
    assert!(
        shown
            .iter()
            .any(|l| l.starts_with(&format!("parpy: {label}: {total}/{total} tasks in "))),
        "no summary line: {shown:#?}"
    );
}

#[test]
fn progress_bars_draw_on_a_terminal_and_never_mix_with_output() {
    let (raw, code) = on_terminal(
        &["-j", "2", script("progress.py").to_str().unwrap(), "kw"],
        &[],
    );
    assert_eq!(code, 0, "{raw}");
    assert_bar(&raw, "work", 40, 8);
    assert!(shown_lines(&raw).contains(&"780".to_string()), "{raw:?}");

    for (how, says_hi) in [("unordered", 8), ("executor", 10)] {
        let p = script("progress.py");
        let (raw, code) = on_terminal(&["-j", "2", p.to_str().unwrap(), how], &[]);
        assert_eq!(code, 0, "{raw}");
        assert_bar(&raw, "work", 40, says_hi);
        if how == "executor" {
            // An iterator with buffersize: no total, a count.
            assert!(
                shown_lines(&raw)
                    .iter()
                    .any(|l| l.starts_with("parpy: work: 10 tasks in ")),
                "{raw:?}"
            );
        }
    }
}

#[test]
fn dash_dash_progress_and_the_env_turn_bars_on_for_every_map() {
    let p = script("progress.py");
    let p = p.to_str().unwrap();
    for (args, env) in [
        (vec!["--progress", "-j", "2", p, "default"], vec![]),
        (vec!["-j", "2", p, "default"], vec![("PARPY_PROGRESS", "1")]),
    ] {
        let (raw, code) = on_terminal(&args, &env);
        assert_eq!(code, 0, "{raw}");
        assert_bar(&raw, "work", 40, 8);
    }
    // progress=False wins, and without a request there is no bar at all.
    for how in ["off", "default"] {
        let args = if how == "off" {
            vec!["--progress", "-j", "2", p, how]
        } else {
            vec!["-j", "2", p, how]
        };
        let (raw, code) = on_terminal(&args, &[]);
        assert_eq!(code, 0, "{raw}");
        assert!(!raw.contains("work ["), "{raw:?}");
        assert!(!raw.contains("parpy:"), "{raw:?}");
    }
    // A dumb terminal gets the summary line only.
    let (raw, code) = on_terminal(&["-j", "2", p, "kw"], &[("TERM", "dumb")]);
    assert_eq!(code, 0, "{raw}");
    assert!(!raw.contains("work ["), "{raw:?}");
    assert!(raw.contains("parpy: work: 40/40 tasks in "), "{raw:?}");
}

#[test]
fn progress_without_a_terminal_is_one_line_at_the_end() {
    let o = Run::parpy()
        .args(["-j", "2"])
        .arg(script("progress.py"))
        .arg("kw")
        .run();
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mut hi: Vec<&str> = o.stdout.lines().filter(|l| l.contains("says hi")).collect();
    hi.sort();
    assert_eq!(hi.len(), 8, "{}", o.stdout);
    assert_eq!(o.stdout.lines().last(), Some("780"));
    let err: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(err.len(), 1, "{}", o.stderr);
    assert!(
        err[0].starts_with("parpy: work: 40/40 tasks in "),
        "{}",
        o.stderr
    );
    assert!(
        !o.stderr.contains('\r') && !o.stderr.contains('\x1b'),
        "{:?}",
        o.stderr
    );
}

#[test]
fn tqdm_bars_move_as_results_arrive() {
    let Some(venv) = pypi_venv("test-venv-tqdm", &["tqdm"], "import tqdm") else {
        skip_without_wheel("tqdm_bars_move_as_results_arrive", "tqdm");
        return;
    };
    let o = Run::parpy()
        .args(["-j", "2"])
        .env("VIRTUAL_ENV", &venv)
        .arg(script("tqdm_bars.py"))
        .run();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "120 120\n");
    for desc in ["unordered", "completed"] {
        let counts: Vec<u32> = o
            .stderr
            .split(['\r', '\n'])
            .filter_map(|f| f.strip_prefix(&format!("{desc}: ")))
            .filter_map(|f| {
                let end = f.find("/16")?;
                f[..end].rsplit(['|', ' ']).next()?.parse().ok()
            })
            .collect();
        let mut counts = counts;
        counts.dedup(); // tqdm draws its last frame again when it closes
        // One frame per result: 0, 1, …, 16, in order.
        assert_eq!(
            counts,
            (0..=16).collect::<Vec<_>>(),
            "{desc}: {:?}",
            o.stderr
        );
    }
}

/// Runs record.py with `flags` and returns (its output, the JSON of `file`).
fn record(flags: &[&str], file: &str) -> (Output, serde_json::Value) {
    let dir = TempDir::new("observe");
    let path = dir.path().join(file);
    let args: Vec<String> = flags
        .iter()
        .map(|f| f.replace("FILE", path.to_str().unwrap()))
        .collect();
    let o = Run::parpy().args(&args).arg(script("record.py")).run();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "pool calls 111\n7\n");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    (
        o,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

#[test]
fn stats_count_every_task_of_every_pool() {
    let (_, doc) = record(&["-j", "2", "--stats=json", "FILE"], "stats.json");
    let pools = doc["pools"].as_array().unwrap();
    assert_eq!(pools.len(), 2, "{doc:#}");
    let first = &pools[0];
    assert_eq!(first["workers"], 2);
    let per: Vec<&serde_json::Value> = first["per_worker"].as_array().unwrap().iter().collect();
    assert_eq!(per.len(), 2);
    let tasks: u64 = per.iter().map(|w| w["tasks"].as_u64().unwrap()).sum();
    assert_eq!(tasks, 111, "{doc:#}");
    assert_eq!(first["total"]["tasks"], 111);
    for w in &per {
        let busy = w["busy_s"].as_f64().unwrap();
        let util = w["utilisation"].as_f64().unwrap();
        assert!(busy > 0.0 && (0.0..=1.0).contains(&util), "{w:#}");
        assert!(w["startup_s"].as_f64().unwrap() > 0.0, "{w:#}");
    }
    assert!(first["startup_s"].as_f64().unwrap() > 0.0);
    // Which worker got which job is the scheduler's business; together they
    // received every argument and sent back every result.
    assert!(
        first["total"]["bytes_sent"].as_u64().unwrap() >= 100,
        "{doc:#}"
    );
    assert!(
        first["total"]["bytes_received"].as_u64().unwrap() >= 100,
        "{doc:#}"
    );
    // The Box results had no native encoding; the readline call ran in the fallback.
    assert_eq!(
        doc["pickled"],
        serde_json::json!([{"type": "Box", "where": "worker", "calls": 3}])
    );
    assert_eq!(
        doc["fallback"],
        serde_json::json!([{"function": "uses_readline", "mode": "process", "tasks": 1}])
    );

    // The table: one row per worker and a total, whose tasks add up.
    let o = Run::parpy()
        .args(["-j", "2", "--stats"])
        .arg(script("record.py"))
        .run();
    assert_eq!(o.code, 0, "{}", o.stderr);
    let lines: Vec<&str> = o.stderr.lines().collect();
    let head = lines
        .iter()
        .position(|l| l.starts_with("parpy stats: pool 1: 2 workers, start-up "))
        .unwrap_or_else(|| panic!("{}", o.stderr));
    let cols: Vec<Vec<&str>> = lines[head + 2..head + 5]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[head + 1].split_whitespace().next(), Some("worker"));
    assert_eq!(
        [cols[0][0], cols[1][0], cols[2][0]],
        ["0", "1", "all"],
        "{}",
        o.stderr
    );
    let n = |r: &Vec<&str>| r[1].parse::<u64>().unwrap();
    assert_eq!(n(&cols[0]) + n(&cols[1]), 111, "{}", o.stderr);
    assert_eq!(n(&cols[2]), 111, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("parpy stats: pickled (no native encoding): Box ×3 (worker)")
    );
    assert!(
        o.stderr
            .contains("parpy stats: fallback tasks: uses_readline ×1 (process)")
    );
}

#[test]
fn timeline_spans_match_the_tasks_and_never_overlap_on_a_track() {
    let (_, doc) = record(&["-j", "2", "--timeline", "FILE"], "trace.json");
    let events = doc["traceEvents"].as_array().unwrap();
    let spans: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["cat"] != "pool")
        .collect();
    // Pool 1: every call of record.py, each span naming its function.
    let calls = |pid: u64, name: &str| -> u64 {
        spans
            .iter()
            .filter(|e| e["pid"] == pid && e["name"] == name)
            .map(|e| e["args"]["calls"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(calls(1, "square"), 105, "{doc:#}");
    assert_eq!(calls(1, "boxed"), 3);
    assert_eq!(calls(1, "rank"), 2);
    assert_eq!(calls(1, "spin"), 1);
    let chunks = spans
        .iter()
        .filter(|e| e["cat"] == "map" && e["name"] == "square")
        .count();
    assert_eq!(chunks, 15, "100 items in chunks of 7");
    assert_eq!(calls(0, "uses_readline"), 1, "the fallback task: {doc:#}");
    // Each worker started its interpreter once, on its own track.
    let starts = events
        .iter()
        .filter(|e| e["name"] == "start interpreter")
        .count();
    assert_eq!(starts, 3);
    // The interrupt of the spinning task is on its worker's track.
    assert!(
        events
            .iter()
            .any(|e| e["ph"] == "i" && e["name"] == "interrupt" && e["pid"] == 1),
        "{doc:#}"
    );
    // No two spans of one track overlap.
    let mut tracks: HashMap<(u64, u64), Vec<(f64, f64)>> = HashMap::new();
    for e in events.iter().filter(|e| e["ph"] == "X") {
        let ts = e["ts"].as_f64().unwrap();
        let dur = e["dur"].as_f64().unwrap();
        assert!(ts > 0.0 && dur >= 0.0, "{e}");
        tracks
            .entry((e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap()))
            .or_default()
            .push((ts, ts + dur));
    }
    for (track, mut spans) in tracks {
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in spans.windows(2) {
            assert!(w[0].1 <= w[1].0, "track {track:?}: {w:?} overlap");
        }
    }
    // Every track is named.
    for (pid, tid) in [(1, 0), (1, 1), (2, 0)] {
        assert!(
            events.iter().any(|e| e["ph"] == "M"
                && e["name"] == "thread_name"
                && e["pid"] == pid
                && e["tid"] == tid),
            "track {pid}/{tid} has no name"
        );
    }
}

#[test]
fn parpy_log_reports_pool_events_one_line_each() {
    let o = Run::parpy()
        .args(["-j", "2"])
        .env("PARPY_LOG", "debug")
        .arg(script("record.py"))
        .run();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "pool calls 111\n7\n");
    let logged: Vec<&str> = o
        .stderr
        .lines()
        .filter_map(|l| {
            l.split_once("s ")
                .filter(|(p, _)| p.starts_with("parpy["))
                .map(|(_, m)| m)
        })
        .collect();
    for want in [
        "pool 1: starting 2 workers",
        "pool 1: worker 0 ready in ",
        "pool 1: worker 1 ready in ",
        "pool 1: interrupting worker ",
        "pool 1: closing",
        "pool 2: starting 1 worker",
        "fallback: uses_readline runs in 2 worker processes from now on",
    ] {
        assert!(
            logged.iter().any(|l| l.starts_with(want)),
            "{want:?} not in {logged:#?}"
        );
    }
    // Every line of parpy's is a whole log line or the fallback notice.
    for l in o.stderr.lines() {
        assert!(
            l.starts_with("parpy[debug] +")
                || l.starts_with("parpy[info] +")
                || l.starts_with("parpy: uses_readline needs"),
            "{l:?}"
        );
    }
    // info leaves out the per-worker lines.
    let o = Run::parpy()
        .args(["-j", "2"])
        .env("PARPY_LOG", "info")
        .arg(script("record.py"))
        .run();
    assert!(
        o.stderr.contains("pool 1: starting 2 workers"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("ready in"), "{}", o.stderr);
}

#[test]
fn bad_observe_options_are_usage_errors() {
    for (args, env, msg) in [
        (
            vec!["--stats=json"],
            None,
            "parpy: --stats=json needs a file: --stats=json PATH\n",
        ),
        (vec!["--stats=csv", "-c", "pass"], None, ""),
        (
            vec!["-c", "pass"],
            Some(("PARPY_LOG", "loud")),
            "parpy: PARPY_LOG must be debug, info or off, not \"loud\"\n",
        ),
    ] {
        let mut run = Run::parpy().args(&args);
        if let Some((k, v)) = env {
            run = run.env(k, v);
        }
        let o = run.run();
        assert_eq!(o.code, 2, "{args:?}: {o:#?}");
        assert_eq!(o.stdout, "");
        if msg.is_empty() {
            assert!(
                o.stderr.starts_with("parpy: ") && o.stderr.lines().count() == 1,
                "{o:#?}"
            );
        } else {
            assert_eq!(o.stderr, msg);
        }
    }
    // A relative path is the working directory's at start-up, whatever the script does.
    let dir = TempDir::new("observe-cwd");
    std::fs::create_dir(dir.path().join("elsewhere")).unwrap();
    let o = Run::parpy()
        .cwd(dir.path())
        .args(["--stats=json", "s.json", "--timeline", "t.json", "-c"])
        .arg("import os, parpy; os.chdir('elsewhere'); parpy.parallel(abs).map([-1])")
        .run();
    assert_eq!(o.code, 0, "{o:#?}");
    assert!(dir.path().join("s.json").is_file() && dir.path().join("t.json").is_file());
    // A --stats file that cannot be written is said, and the exit code stays the script's.
    let o = Run::parpy()
        .args([
            "--stats=json",
            "/nonexistent/dir/s.json",
            "-c",
            "import sys; sys.exit(3)",
        ])
        .run();
    assert_eq!(o.code, 3, "{o:#?}");
    assert!(
        o.stderr
            .starts_with("parpy: cannot write the --stats file /nonexistent/dir/s.json: "),
        "{o:#?}"
    );
}
