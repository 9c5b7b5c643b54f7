//! `parpy check`: the modules a script imports and whether each runs in
//! workers, against real packages from PyPI (see `common::pypi_venv`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;

/// `parpy [prefix...] check args...` in `dir`, with `venv` activated.
fn check(dir: &Path, venv: Option<&Path>, prefix: &[&str], args: &[&str]) -> Output {
    let mut run = Run::parpy().cwd(dir).args(prefix).arg("check").args(args);
    if let Some(v) = venv {
        run = run.env("VIRTUAL_ENV", v);
    }
    run.run()
}

/// The table's rows: each line split into its cells (two or more spaces apart).
fn rows(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

/// The row of `module` (its first cell).
fn row(o: &Output, module: &str) -> Vec<String> {
    rows(&o.stdout)
        .into_iter()
        .find(|r| r.first().is_some_and(|c| c == module))
        .unwrap_or_else(|| panic!("no row for {module}:\n{}\n{}", o.stdout, o.stderr))
}

fn advice(o: &Output) -> Vec<&str> {
    o.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("advice: "))
        .collect()
}

fn last_line(o: &Output) -> &str {
    o.stdout.lines().last().unwrap_or("")
}

#[test]
fn check_lists_installed_stdlib_local_and_missing_modules() {
    let Some(venv) = pypi_venv("test-venv-six", &["six"], "import six") else {
        skip_without_wheel(
            "check_lists_installed_stdlib_local_and_missing_modules",
            "six",
        );
        return;
    };
    let dir = TempDir::new("check-pure");
    dir.write(
        "app.py",
        "import json\nimport os.path\nimport six\nimport helper\n\
         try:\n    import parpy_check_optional\nexcept ImportError:\n    parpy_check_optional = None\n",
    );
    dir.write(
        "helper.py",
        "def later():\n    import parpy_check_missing\n",
    );
    let o = check(dir.path(), Some(&venv), &[], &["app.py"]);
    assert_eq!(o.code, 1, "{o:#?}");
    assert_eq!(
        o.stdout.lines().next().unwrap(),
        format!(
            "parpy check app.py: Python {}, {}",
            python_version(),
            venv.display()
        )
    );
    assert_eq!(
        rows(&o.stdout)[1],
        ["module", "status", "imported at", "detail"]
    );
    assert_eq!(
        row(&o, "parpy_check_missing"),
        [
            "parpy_check_missing",
            "not installed",
            "helper.py:2 (in a function)"
        ]
    );
    assert_eq!(
        row(&o, "parpy_check_optional"),
        [
            "parpy_check_optional",
            "not installed",
            "app.py:6 (optional)"
        ]
    );
    assert_eq!(row(&o, "six"), ["six", "runs in workers", "app.py:3"]);
    assert_eq!(
        row(&o, "helper"),
        ["helper", "local source", "app.py:4", "helper.py, scanned"]
    );
    assert_eq!(
        row(&o, "stdlib"),
        ["stdlib", "runs in workers", "json, os.path"]
    );
    // The optional one is no failure, and gets no advice.
    assert_eq!(
        advice(&o),
        [format!(
            "parpy_check_missing: not installed for this Python ({}): install it there, e.g. \
             `parpy -m pip install parpy_check_missing` (its package may have another name)",
            venv.display()
        )]
    );
    assert_eq!(
        last_line(&o),
        "result: 1 of 6 modules do not run in workers as under python"
    );

    dir.write("fine.py", "import six, json\n");
    let o = check(dir.path(), Some(&venv), &[], &["fine.py"]);
    assert_eq!(o.code, 0, "{o:#?}");
    assert_eq!(row(&o, "six"), ["six", "runs in workers", "fine.py:1"]);
    assert!(advice(&o).is_empty(), "{}", o.stdout);
    assert_eq!(last_line(&o), "result: all 2 modules run in workers");
}

#[test]
fn check_names_numpys_refusal_found_through_a_local_module() {
    let Some(venv) = numpy_venv() else {
        skip_without_wheel(
            "check_names_numpys_refusal_found_through_a_local_module",
            "numpy",
        );
        return;
    };
    let dir = TempDir::new("check-numpy");
    dir.write("app.py", "import helper\n\nprint(helper.mean([1, 2]))\n");
    dir.write(
        "helper.py",
        "import numpy as np\nfrom numpy import linalg\n\ndef mean(xs):\n    return np.mean(xs)\n",
    );
    let refusal = "numpy._core._multiarray_umath refuses sub-interpreters";
    let o = check(dir.path(), Some(&venv), &["-j", "2"], &["app.py"]);
    assert_eq!(o.code, 1, "{o:#?}");
    assert_eq!(
        row(&o, "numpy"),
        ["numpy", "refuses", "helper.py:1", refusal]
    );
    assert_eq!(
        row(&o, "numpy.linalg"),
        ["numpy.linalg", "refuses", "helper.py:2", refusal]
    );
    assert_eq!(
        row(&o, "helper"),
        ["helper", "local source", "app.py:1", "helper.py, scanned"]
    );
    // One line of advice for the package.
    assert_eq!(
        advice(&o),
        [
            "numpy: numpy._core._multiarray_umath cannot load in a sub-interpreter, so tasks that \
          use it run in 2 worker processes instead (--fallback=process); to keep those tasks in \
          workers, use numpy in the main interpreter only and pass tasks plain values"
        ]
    );
    assert_eq!(
        last_line(&o),
        "result: 2 of 3 modules do not run in workers as under python"
    );
    assert_eq!(o.stderr, "");

    // parpy's options before `check`; a module name instead of a script.
    let o = check(dir.path(), Some(&venv), &["--fallback=main"], &["numpy"]);
    assert_eq!(o.code, 1, "{o:#?}");
    assert_eq!(
        row(&o, "numpy"),
        ["numpy", "refuses", "command line", refusal]
    );
    assert!(
        advice(&o)[0]
            .contains("tasks that use it run in the main interpreter instead (--fallback=main)"),
        "{}",
        o.stdout
    );
}

#[test]
fn check_names_the_accelerators_that_packages_go_on_without() {
    let Some(venv) = c_ext_venv() else {
        skip_without_wheel(
            "check_names_the_accelerators_that_packages_go_on_without",
            "PyYAML or simplejson",
        );
        return;
    };
    let dir = TempDir::new("check-c-ext");
    dir.write(
        "app.py",
        "import simplejson\nfrom yaml import CSafeLoader, safe_load\n",
    );
    let o = check(dir.path(), Some(&venv), &["-j", "2"], &["app.py"]);
    assert_eq!(o.code, 1, "{o:#?}");
    // On 3.12, `_decimal` and `_datetime` refuse too (single-phase there), and
    // the packages import decimal and datetime: their own accelerator comes first.
    let (simplejson, yaml) = if python_minor() == 12 {
        (
            "without simplejson._speedups and _decimal, which refuse sub-interpreters",
            "without yaml._yaml and _datetime, which refuse sub-interpreters (no CSafeLoader there)",
        )
    } else {
        (
            "without simplejson._speedups, which refuses sub-interpreters",
            "without yaml._yaml, which refuses sub-interpreters (no CSafeLoader there)",
        )
    };
    assert_eq!(
        row(&o, "simplejson"),
        ["simplejson", "pure Python", "app.py:1", simplejson]
    );
    assert_eq!(row(&o, "yaml"), ["yaml", "pure Python", "app.py:2", yaml]);
    assert_eq!(
        advice(&o),
        [
            "simplejson: workers load it without simplejson._speedups, as pure Python (slower, \
             and without what only simplejson._speedups provides), so tasks that use it run in 2 \
             worker processes instead (--fallback=process)",
            "yaml: workers load it without yaml._yaml, as pure Python (slower, and without what \
             only yaml._yaml provides), so tasks that use it run in 2 worker processes instead \
             (--fallback=process)"
        ]
    );

    let o = check(dir.path(), Some(&venv), &[], &["--json", "app.py"]);
    assert_eq!(o.code, 1, "{o:#?}");
    for line in [
        "\"module\": \"yaml\",",
        "\"status\": \"pure-python\",",
        "\"refused\": \"yaml._yaml\",",
        "\"refused\": \"simplejson._speedups\",",
        "\"exit_code\": 1",
    ] {
        assert!(
            o.stdout.lines().any(|l| l.trim() == line),
            "{line} in:\n{}",
            o.stdout
        );
    }
}

/// A virtualenv without pip, made here (no network), whose site-packages
/// holds the given modules.
fn local_venv(dir: &TempDir, modules: &[(&str, &str)]) -> PathBuf {
    let venv = dir.path().join("venv");
    let s = std::process::Command::new(python_bin())
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()
        .unwrap();
    assert!(s.success(), "cannot create {venv:?}");
    let lib = std::fs::read_dir(venv.join("lib"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for (name, source) in modules {
        std::fs::write(lib.join("site-packages").join(name), source).unwrap();
    }
    venv
}

#[test]
fn check_reports_imports_that_crash_hang_or_fail_in_workers_and_goes_on() {
    let dir = TempDir::new("check-crash");
    let venv = local_venv(
        &dir,
        &[
            ("aborts.py", "import os\nos.abort()\n"),
            (
                "hangs.py",
                "import time\nwhile True:\n    time.sleep(0.05)\n",
            ),
            (
                "signals.py",
                "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n",
            ),
            ("needs_dep.py", "import parpy_check_absent_dep\n"),
        ],
    );
    dir.write(
        "app.py",
        "import aborts\nimport hangs\nimport signals\nimport needs_dep\nimport json\n",
    );
    let start = Instant::now();
    let o = check(dir.path(), Some(&venv), &[], &["--timeout", "3", "app.py"]);
    assert!(start.elapsed() < Duration::from_secs(30) * slowdown());
    assert_eq!(o.code, 1, "{o:#?}");
    assert_eq!(
        row(&o, "aborts"),
        [
            "aborts",
            "crashed",
            "app.py:1",
            "its import in a sub-interpreter ended the process by SIGABRT"
        ]
    );
    assert_eq!(
        row(&o, "hangs"),
        [
            "hangs",
            "timed out",
            "app.py:2",
            "its import took over 3 s in a sub-interpreter (--timeout)"
        ]
    );
    let signals = row(&o, "signals");
    assert_eq!(signals[..3], ["signals", "import fails", "app.py:3"]);
    assert!(
        signals[3].starts_with("ValueError: signal only works in main thread")
            && signals[3].ends_with("(imports under python)"),
        "{signals:?}"
    );
    assert_eq!(
        row(&o, "needs_dep"),
        [
            "needs_dep",
            "import fails",
            "app.py:4",
            "needs parpy_check_absent_dep, which is not installed"
        ]
    );
    // The modules after the crash and the hang were probed all the same.
    assert_eq!(row(&o, "stdlib"), ["stdlib", "runs in workers", "json"]);
    let advice = advice(&o);
    assert_eq!(advice.len(), 4, "{}", o.stdout);
    assert!(
        advice.contains(
            &"signals: it imports under python but fails in a sub-interpreter, and only refusals \
              fall back: tasks that use it fail in workers, so keep signals out of tasks"
        ),
        "{advice:?}"
    );
}

#[test]
fn check_follows_local_packages_and_relative_imports() {
    let dir = TempDir::new("check-local");
    dir.write(
        "main.py",
        "from typing import TYPE_CHECKING\n\
         if TYPE_CHECKING:\n    import parpy_check_typing_only\n\
         from pkg import util, VALUE\n\
         import pkg.sub.deep\n\
         import importlib\n\
         csv = importlib.import_module('csv')\n\
         def later():\n    import readline\n",
    );
    dir.write("pkg/__init__.py", "VALUE = 1\nfrom .core import thing\n");
    dir.write("pkg/core.py", "import decimal\nthing = 2\n");
    dir.write("pkg/util.py", "import statistics\n");
    dir.write("pkg/sub/__init__.py", "");
    dir.write(
        "pkg/sub/deep.py",
        "from .. import core\nfrom . import broken\nimport zlib\n",
    );
    dir.write("pkg/sub/broken.py", "def oops(:\n");
    let o = check(dir.path(), None, &[], &["main.py"]);
    assert_eq!(o.code, 1, "{o:#?}");
    for (module, at, file) in [
        ("pkg", "main.py:4", "pkg/__init__.py"),
        ("pkg.core", "pkg/__init__.py:2", "pkg/core.py"),
        ("pkg.util", "main.py:4", "pkg/util.py"),
        ("pkg.sub", "main.py:5", "pkg/sub/__init__.py"),
        ("pkg.sub.deep", "main.py:5", "pkg/sub/deep.py"),
    ] {
        assert_eq!(
            row(&o, module),
            [module, "local source", at, &format!("{file}, scanned")]
        );
    }
    assert_eq!(
        row(&o, "pkg.sub.broken"),
        [
            "pkg.sub.broken",
            "import fails",
            "pkg/sub/deep.py:2",
            "pkg/sub/broken.py does not compile: SyntaxError, line 1: invalid syntax; \
             its imports are not known"
        ]
    );
    assert!(
        !o.stdout.contains("parpy_check_typing_only"),
        "{}",
        o.stdout
    );
    let has_readline = Run::python().args(["-c", "import readline"]).run().code == 0;
    if has_readline {
        // A standard library extension that refuses sub-interpreters.
        assert_eq!(
            row(&o, "readline"),
            [
                "readline",
                "refuses",
                "main.py:9 (in a function)",
                "readline refuses sub-interpreters"
            ]
        );
    }
    let stdlib = if python_minor() == 12 {
        // 3.12's `_decimal` is a single-phase module, which workers refuse:
        // decimal, and statistics that imports it, are pure Python there.
        for (module, at) in [
            ("decimal", "pkg/core.py:1"),
            ("statistics", "pkg/util.py:1"),
        ] {
            assert_eq!(
                row(&o, module),
                [
                    module,
                    "pure Python",
                    at,
                    "without _decimal, which refuses sub-interpreters"
                ]
            );
        }
        "csv, importlib, typing, zlib"
    } else {
        "csv, decimal, importlib, statistics, typing, zlib"
    };
    assert_eq!(row(&o, "stdlib"), ["stdlib", "runs in workers", stdlib]);

    // -m of a local module scans it (its relative imports included).
    let o = check(dir.path(), None, &[], &["-m", "pkg.sub.deep"]);
    assert_eq!(o.code, 1, "{o:#?}");
    assert_eq!(
        row(&o, "pkg.sub.deep"),
        [
            "pkg.sub.deep",
            "local source",
            "command line",
            "pkg/sub/deep.py, scanned"
        ]
    );
    assert_eq!(
        row(&o, "pkg.core")[..3],
        ["pkg.core", "local source", "pkg/__init__.py:2"]
    );
    let stdlib = if python_minor() == 12 {
        "zlib"
    } else {
        "decimal, zlib"
    };
    assert_eq!(row(&o, "stdlib"), ["stdlib", "runs in workers", stdlib]);
}

#[test]
fn check_refuses_a_missing_or_broken_script_with_exit_code_2() {
    let dir = TempDir::new("check-errors");
    let o = check(dir.path(), None, &[], &["missing.py"]);
    assert_eq!(
        (o.code, o.stdout.as_str(), o.stderr.as_str()),
        (
            2,
            "",
            "parpy: check: can't open file 'missing.py': No such file or directory\n"
        )
    );
    dir.write("bad.py", "import os\ndef f(:\n    pass\n");
    let o = check(dir.path(), None, &[], &["bad.py"]);
    assert_eq!((o.code, o.stdout.as_str()), (2, ""), "{o:#?}");
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(
        lines[0],
        "parpy: check: cannot check bad.py: it does not compile"
    );
    assert!(lines[1].ends_with("bad.py\", line 2"), "{}", o.stderr);
    assert_eq!(lines.last(), Some(&"SyntaxError: invalid syntax"));

    let o = check(dir.path(), None, &[], &[]);
    assert_eq!(o.code, 2, "{o:#?}");
    assert!(o.stderr.contains("<SCRIPT>"), "{}", o.stderr);
    let o = check(dir.path(), None, &[], &["--timeout", "0", "bad.py"]);
    assert_eq!(o.code, 2, "{o:#?}");
    assert!(o.stderr.contains("not a positive number"), "{}", o.stderr);
    let o = check(dir.path(), None, &[], &["--help"]);
    assert_eq!(o.code, 0, "{o:#?}");
    assert!(o.stdout.contains("Usage: parpy [PARPY OPTIONS] check"));
}

#[test]
fn check_is_a_command_and_dot_slash_check_a_script() {
    let dir = TempDir::new("check-script");
    dir.write("check", "print('the script named check ran')\n");
    let o = Run::parpy().cwd(dir.path()).arg("./check").run();
    assert_eq!(ok(&o), "the script named check ran\n");
    // `parpy check check` checks it.
    let o = check(dir.path(), None, &[], &["check"]);
    assert_eq!(o.code, 0, "{o:#?}");
    assert_eq!(
        o.stdout.lines().nth(1),
        Some("check imports no modules"),
        "{}",
        o.stdout
    );
}

/// `3.X.Y` of the Python under test.
fn python_version() -> String {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION
        .get_or_init(|| {
            let o = Run::python()
                .args(["-c", "import platform; print(platform.python_version())"])
                .run();
            ok(&o).trim().to_owned()
        })
        .clone()
}

/// X of `3.X.Y`.
fn python_minor() -> u32 {
    python_version().split('.').nth(1).unwrap().parse().unwrap()
}
