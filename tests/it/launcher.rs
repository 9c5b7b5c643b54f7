//! The launcher: `parpy` must start scripts exactly as `python3.x` does (same
//! command line, flags, environment, exit codes and signals), with
//! `sys.executable` pointing at parpy, plus parpy's own `-j`/`--version`/`--help`.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A script in tests/scripts/launcher.
fn script(name: &str) -> PathBuf {
    scripts().join("launcher").join(name)
}

/// The `name=value` lines that flags.py prints, as one string per line.
fn flag_lines(out: &Output) -> Vec<&str> {
    ok(out).lines().collect()
}

/// Asserts that flags.py printed `line` (e.g. `optimize=2`).
fn assert_flag(out: &Output, line: &str) {
    let lines = flag_lines(out);
    assert!(
        lines.contains(&line),
        "expected `{line}` among:\n{}",
        lines.join("\n")
    );
}

/// parpy's absolute, symlink-free path.
fn parpy_canonical() -> PathBuf {
    parpy_bin().canonicalize().unwrap()
}

// ---------------------------------------------------------------------------
// Ways to name the program: script, -c, -m, -, stdin, directory, zip, -i
// ---------------------------------------------------------------------------

#[test]
fn script_sees_its_argv_path_file_and_main_name() {
    let out =
        assert_same(
            Run::python()
                .arg(script("argv.py"))
                .args(["one", "two words", "--three"]),
        );
    let s = out.stdout;
    assert!(s.contains("'one', 'two words', '--three']"), "{s}");
    assert!(s.contains("path0 is the script folder: True"), "{s}");
    assert!(
        s.contains(&format!("file: {}", script("argv.py").display())),
        "{s}"
    );
    assert!(s.contains("name: __main__"), "{s}");
}

#[test]
fn script_given_by_a_relative_path() {
    let out = assert_same(
        Run::python()
            .cwd(scripts())
            .arg("launcher/argv.py")
            .arg("rel"),
    );
    assert!(
        out.stdout.contains("argv: ['launcher/argv.py', 'rel']"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("path0 is the script folder: True"),
        "{}",
        out.stdout
    );
}

#[test]
fn arguments_that_are_not_utf8_arrive_surrogate_escaped() {
    use std::os::unix::ffi::OsStrExt;
    let raw = std::ffi::OsStr::from_bytes(b"caf\xe9");
    let out = assert_same(
        Run::python()
            .args(["-c", "import sys; print(ascii(sys.argv[1]))"])
            .arg(raw),
    );
    assert_eq!(out.stdout, "'caf\\udce9'\n");
}

#[test]
fn dash_c_runs_code_with_the_remaining_args() {
    let code = "import sys; print(sys.argv, repr(sys.path[0]), __name__)";
    let out = assert_same(Run::python().args(["-c", code, "a", "-b"]));
    assert_eq!(out.stdout, "['-c', 'a', '-b'] '' __main__\n");
}

#[test]
fn dash_m_runs_a_module_found_on_pythonpath() {
    let dir = TempDir::new("dash-m");
    let module = dir.write(
        "greeter.py",
        "import sys\nprint('module', __name__, sys.argv[1:])\nprint('file', sys.argv[0] == __file__)\n",
    );
    let out = assert_same(
        Run::python()
            .env("PYTHONPATH", dir.path())
            .args(["-m", "greeter", "x", "y"]),
    );
    assert_eq!(out.stdout, "module __main__ ['x', 'y']\nfile True\n");
    assert!(module.is_file());
}

#[test]
fn dash_m_runs_a_package_dunder_main() {
    let dir = TempDir::new("dash-m-pkg");
    dir.write("tool/__init__.py", "print('init', __name__)\n");
    dir.write(
        "tool/__main__.py",
        "import sys\nprint('main', __name__, __package__, sys.argv[1:])\n",
    );
    let out = assert_same(
        Run::python()
            .env("PYTHONPATH", dir.path())
            .args(["-m", "tool", "z"]),
    );
    assert_eq!(out.stdout, "init tool\nmain __main__ tool ['z']\n");
}

#[test]
fn dash_m_of_a_missing_module_exits_1() {
    let out = assert_same(Run::python().args(["-m", "no_such_module_here"]));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("No module named no_such_module_here"),
        "{}",
        out.stderr
    );
}

#[test]
fn dash_m_runs_a_stdlib_module_on_stdin() {
    let out = assert_same(
        Run::python()
            .args(["-m", "json.tool"])
            .stdin(r#"{"b": [1, 2], "a": null}"#),
    );
    assert_eq!(
        out.stdout,
        "{\n    \"b\": [\n        1,\n        2\n    ],\n    \"a\": null\n}\n"
    );
}

#[test]
fn dash_reads_the_program_from_piped_stdin() {
    let program = "import sys\nprint('from stdin', sys.argv)\nprint(sum(range(5)))\n";
    let out = assert_same(Run::python().args(["-", "arg1", "arg2"]).stdin(program));
    assert_eq!(out.stdout, "from stdin ['-', 'arg1', 'arg2']\n10\n");
}

#[test]
fn no_arguments_runs_the_program_piped_on_stdin() {
    let program = "import sys\nprint('argv', sys.argv)\nx = 6 * 7\nx\nprint(x)\n";
    let out = assert_same(Run::python().stdin(program));
    // Not a tty: a plain program, so the bare expression `x` prints nothing.
    assert_eq!(out.stdout, "argv ['']\n42\n");
}

#[test]
fn no_arguments_with_empty_stdin_exits_cleanly() {
    let out = assert_same(Run::python().stdin(""));
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", "")
    );
}

#[test]
fn a_directory_with_dunder_main_runs_it() {
    let dir = script("app_dir");
    let out = assert_same(Run::python().arg(&dir).arg("x"));
    assert!(
        out.stdout.starts_with("running __main__ from "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("path0: {}", dir.display())),
        "{}",
        out.stdout
    );
}

#[test]
fn a_zip_file_with_dunder_main_runs_it() {
    let dir = TempDir::new("zipapp");
    let zip = dir.path().join("app.zip");
    // The reference python builds the archive (`__main__.py` at its root).
    ok(&Run::python()
        .args(["-m", "zipfile", "-c"])
        .arg(&zip)
        .arg(script("app_dir").join("__main__.py"))
        .run());
    let out = assert_same(Run::python().arg(&zip).arg("x"));
    assert!(
        out.stdout.contains(&format!("path0: {}", zip.display())),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("argv: ['{}', 'x']", zip.display())),
        "{}",
        out.stdout
    );
}

#[test]
fn dash_i_with_piped_stdin_shows_the_interactive_prompt() {
    let out = assert_same(
        Run::python()
            .arg("-i")
            .stdin("x = 5\nx * 2\nimport sys; print(sys.flags.interactive)\n"),
    );
    assert_eq!(out.stdout, "10\n1\n");
    assert!(out.stderr.contains(">>> "), "no prompt: {}", out.stderr);
    assert!(
        out.stderr.starts_with("Python 3."),
        "no banner: {}",
        out.stderr
    );
}

#[test]
fn dash_i_after_a_script_enters_the_prompt_with_its_globals() {
    let out = assert_same(Run::python().args(["-i", "-c", "y = 21"]).stdin("y * 2\n"));
    assert_eq!(out.stdout, "42\n");
}

// ---------------------------------------------------------------------------
// Python's flags
// ---------------------------------------------------------------------------

#[test]
fn flag_isolated_ignores_environment_and_script_folder() {
    let extra = TempDir::new("isolated");
    let out = assert_same(
        Run::python()
            .env("PYTHONPATH", extra.path())
            .arg("-I")
            .arg(script("flags.py")),
    );
    for line in [
        "isolated=1",
        "ignore_environment=1",
        "no_user_site=1",
        "safe_path=True",
        "script_folder_on_path=False",
        "pythonpath_on_path=False",
    ] {
        assert_flag(&out, line);
    }
}

#[test]
fn flag_ignore_environment_drops_pythonpath() {
    let extra = TempDir::new("dash-e");
    let run = Run::python().env("PYTHONPATH", extra.path());
    assert_flag(
        &assert_same(run.clone().arg(script("flags.py"))),
        "pythonpath_on_path=True",
    );
    let out = assert_same(run.arg("-E").arg(script("flags.py")));
    assert_flag(&out, "ignore_environment=1");
    assert_flag(&out, "pythonpath_on_path=False");
}

#[test]
fn flag_no_user_site() {
    let out = assert_same(Run::python().arg("-s").arg(script("flags.py")));
    assert_flag(&out, "no_user_site=1");
    assert_flag(&out, "site_imported=True");
}

#[test]
fn flag_no_site_skips_importing_site() {
    let out = assert_same(Run::python().arg("-S").arg(script("flags.py")));
    assert_flag(&out, "no_site=1");
    assert_flag(&out, "site_imported=False");
}

#[test]
fn flag_unbuffered_stdout() {
    let run = Run::python().env_remove("PYTHONUNBUFFERED");
    assert_flag(
        &assert_same(run.clone().arg(script("flags.py"))),
        "stdout_buffer='BufferedWriter'",
    );
    assert_flag(
        &assert_same(run.arg("-u").arg(script("flags.py"))),
        "stdout_buffer='FileIO'",
    );
}

#[test]
fn flag_optimize_drops_asserts() {
    let out = assert_same(Run::python().arg("-O").arg(script("flags.py")));
    assert_flag(&out, "optimize=1");
    assert_flag(&out, "debug=False");
    assert_flag(&out, "docstring='a docstring that -OO strips'");
    let out = assert_same(Run::python().args([
        "-O",
        "-c",
        "assert False, 'kept'; print('asserts skipped')",
    ]));
    assert_eq!(out.stdout, "asserts skipped\n");
}

#[test]
fn flag_double_optimize_drops_docstrings() {
    let out = assert_same(Run::python().arg("-OO").arg(script("flags.py")));
    assert_flag(&out, "optimize=2");
    assert_flag(&out, "docstring=None");
}

#[test]
fn flag_dont_write_bytecode() {
    let dir = TempDir::new("dash-b");
    dir.write("imported_mod.py", "VALUE = 1\n");
    let run = Run::python()
        .env_remove("PYTHONDONTWRITEBYTECODE")
        .env("PYTHONPATH", dir.path())
        .args([
            "-B",
            "-c",
            "import sys, imported_mod; print(sys.dont_write_bytecode, imported_mod.VALUE)",
        ]);
    let out = assert_same(run);
    assert_eq!(out.stdout, "True 1\n");
    assert!(
        !dir.path().join("__pycache__").exists(),
        "-B wrote bytecode"
    );
}

#[test]
fn flag_w_default_prints_the_warning() {
    let out = assert_same(Run::python().arg(script("warns.py")));
    assert_eq!(out.stdout, "after the warning\n");
    assert!(
        out.stderr.contains("UserWarning: careful now"),
        "{}",
        out.stderr
    );
}

#[test]
fn flag_w_error_turns_warnings_into_exceptions() {
    let out = assert_same(Run::python().args(["-W", "error"]).arg(script("warns.py")));
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.starts_with("Traceback (most recent call last):"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.ends_with("UserWarning: careful now\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn flag_w_ignore_silences_warnings() {
    let out = assert_same(Run::python().args(["-W", "ignore"]).arg(script("warns.py")));
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("after the warning\n", "")
    );
}

#[test]
fn flag_x_utf8() {
    let out = assert_same(Run::python().args(["-X", "utf8"]).arg(script("flags.py")));
    assert_flag(&out, "utf8_mode=1");
    assert_flag(&out, "xoptions={'utf8': True}");
}

#[test]
fn flag_x_dev() {
    let out = assert_same(
        Run::python()
            .args(["-X", "dev", "-X", "custom=7"])
            .arg(script("flags.py")),
    );
    assert_flag(&out, "dev_mode=True");
    assert_flag(&out, "xoptions={'dev': True, 'custom': '7'}");
}

#[test]
fn flag_safe_path_keeps_the_script_folder_off_sys_path() {
    let out = assert_same(Run::python().arg("-P").arg(script("flags.py")));
    assert_flag(&out, "safe_path=True");
    assert_flag(&out, "script_folder_on_path=False");
    let out = assert_same(Run::python().arg(script("flags.py")));
    assert_flag(&out, "script_folder_on_path=True");
}

#[test]
fn flag_quiet_hides_the_banner() {
    let out = assert_same(Run::python().args(["-q", "-i"]).stdin("1 + 1\n"));
    assert_eq!(out.stdout, "2\n");
    assert!(
        !out.stderr.contains("Python 3."),
        "banner shown: {}",
        out.stderr
    );
    assert!(out.stderr.contains(">>> "), "{}", out.stderr);
}

#[test]
fn python_version_flag() {
    let out = assert_same(Run::python().arg("-V"));
    assert!(out.stdout.starts_with("Python 3."), "{}", out.stdout);
    let out = assert_same(Run::python().arg("-VV"));
    assert!(out.stdout.starts_with("Python 3."), "{}", out.stdout);
}

#[test]
fn python_long_version_after_a_python_option() {
    // `--version` is parpy's only before python's options.
    let out = assert_same(Run::python().args(["-O", "--version"]));
    assert!(out.stdout.starts_with("Python 3."), "{}", out.stdout);
}

#[test]
fn python_help_flag() {
    let out = assert_same(Run::python().arg("-h"));
    assert_eq!(out.code, 0);
    assert!(out.stdout.starts_with("usage: PYTHON"), "{}", out.stdout);
    assert!(out.stdout.contains("-X opt"), "{}", out.stdout);
}

#[test]
fn pythonpath_is_searched() {
    let dir = TempDir::new("pythonpath");
    dir.write("pkg_on_path/__init__.py", "WHERE = 'pythonpath'\n");
    let out = assert_same(Run::python().env("PYTHONPATH", dir.path()).args([
        "-c",
        "import pkg_on_path, sys; print(pkg_on_path.WHERE, sys.path[1])",
    ]));
    assert_eq!(out.stdout, format!("pythonpath {}\n", dir.path().display()));
}

#[test]
fn orig_argv_holds_the_full_command_line() {
    let out = assert_same(
        Run::python()
            .args(["-X", "utf8", "-W", "ignore"])
            .arg(script("orig_argv.py"))
            .args(["a", "-b"]),
    );
    let path = script("orig_argv.py");
    let path = path.display();
    assert_eq!(
        out.stdout,
        format!(
            "['ARGV0', '-X', 'utf8', '-W', 'ignore', '{path}', 'a', '-b']\n['{path}', 'a', '-b']\n"
        )
    );
}

// ---------------------------------------------------------------------------
// Text encoding
// ---------------------------------------------------------------------------

#[test]
fn non_ascii_output_in_the_default_locale() {
    let out = assert_same(
        Run::python()
            .env_remove("PYTHONIOENCODING")
            .arg(script("nonascii.py")),
    );
    assert!(out.stdout.starts_with("héllo ✓ 日本\n"), "{}", out.stdout);
}

#[test]
fn non_ascii_output_with_pythonioencoding() {
    let out = assert_same(
        Run::python()
            .env("PYTHONIOENCODING", "ascii:backslashreplace")
            .arg(script("nonascii.py")),
    );
    assert_eq!(
        out.stdout,
        "h\\xe9llo \\u2713 \\u65e5\\u672c\nencoding: ascii backslashreplace\n"
    );
}

#[test]
fn non_ascii_output_with_the_c_locale() {
    // PEP 538/540: the C locale is coerced to UTF-8.
    let out = assert_same(
        Run::python()
            .env_remove("PYTHONIOENCODING")
            .env_remove("LANG")
            .env("LC_ALL", "C")
            .arg(script("nonascii.py")),
    );
    assert_eq!(
        out.stdout,
        "héllo ✓ 日本\nencoding: utf-8 surrogateescape\n"
    );
}

// ---------------------------------------------------------------------------
// Exit codes
// ---------------------------------------------------------------------------

#[test]
fn system_exit_with_a_number_is_the_exit_code() {
    let out = assert_same(Run::python().arg(script("exit_code.py")));
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (7, "exiting with 7\n", "")
    );
}

#[test]
fn system_exit_codes_wrap_like_c_exit() {
    for (value, code) in [(256, 0), (-1, 255), (300, 44), (0xffff_ffffu32 as i64, 255)] {
        let out = assert_same(Run::python().args(["-c", &format!("raise SystemExit({value})")]));
        assert_eq!(out.code, code, "SystemExit({value})");
    }
}

#[test]
fn system_exit_with_a_message_prints_it_and_exits_1() {
    let out = assert_same(Run::python().arg(script("exit_message.py")));
    assert_eq!(out.code, 1);
    assert_eq!(out.stderr, "fatal: something went wrong\n");
}

#[test]
fn uncaught_exception_prints_a_traceback_and_exits_1() {
    let out = assert_same(Run::python().arg(script("uncaught.py")));
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "before\n");
    assert!(
        out.stderr
            .starts_with("Traceback (most recent call last):\n"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("in inner"), "{}", out.stderr);
    assert!(
        out.stderr.ends_with("KeyError: 'missing'\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn syntax_error_in_the_script_exits_1() {
    let out = assert_same(Run::python().arg(script("syntax_error.py")));
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("SyntaxError"), "{}", out.stderr);
}

#[test]
fn missing_script_file_exits_2() {
    let dir = TempDir::new("missing");
    let out = assert_same(Run::python().arg(dir.path().join("no_such_script.py")));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("can't open file"), "{}", out.stderr);
}

#[test]
fn unknown_python_option_exits_2() {
    let out = assert_same(Run::python().args(["-Z", "-c", "print('ran')"]));
    assert_eq!(out.code, 2);
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("-Z"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------

/// Starts loop_forever.py, waits for its "ready", interrupts it with SIGINT,
/// and returns what it left behind.
fn interrupt_when_ready(run: Run) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = run.arg(script("loop_forever.py")).command();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: signal() is async-signal-safe. A test runner started in the
    // background of a non-interactive shell ignores SIGINT, and python keeps
    // an ignored SIGINT ignored; give the child the default disposition.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child: Child = cmd.spawn().expect("spawn");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let out_reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = String::new();
        if let Some(Ok(first)) = lines.next() {
            let _ = tx.send(first.clone());
            seen.push_str(&first);
            seen.push('\n');
        }
        for l in lines.map_while(Result::ok) {
            seen.push_str(&l);
            seen.push('\n');
        }
        seen
    });
    let first = rx.recv_timeout(Duration::from_secs(60));
    if first.as_deref() != Ok("ready") {
        let _ = child.kill();
        panic!("no `ready` line: {first:?}");
    }
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running 30 s after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
        code: exit_code(&status),
    }
}

#[test]
fn sigint_raises_keyboard_interrupt_and_dies_by_sigint() {
    let p = interrupt_when_ready(Run::parpy());
    let q = interrupt_when_ready(Run::python());
    for (who, o) in [("parpy", &p), ("python", &q)] {
        assert_eq!(o.code, -libc::SIGINT, "{who}: {o:#?}");
        assert_eq!(o.stdout, "ready\n", "{who}");
        assert!(
            o.stderr.starts_with("Traceback (most recent call last):\n"),
            "{who}: {}",
            o.stderr
        );
        assert!(o.stderr.contains("loop_forever.py"), "{who}: {}", o.stderr);
        assert!(
            o.stderr.ends_with("KeyboardInterrupt\n"),
            "{who}: {}",
            o.stderr
        );
    }
    // Where the interrupt lands inside the loop may vary; the frames' files do not.
    let files = |s: &str| {
        s.lines()
            .filter(|l| l.trim_start().starts_with("File "))
            .count()
    };
    assert_eq!(
        files(&p.stderr),
        files(&q.stderr),
        "parpy:\n{}\npython:\n{}",
        p.stderr,
        q.stderr
    );
}

#[test]
fn segfault_dies_by_sigsegv_with_the_faulthandler_report() {
    let run = Run::python().args([
        "-X",
        "faulthandler",
        "-c",
        "import ctypes; ctypes.string_at(0)",
    ]);
    // Any core file lands in a folder that is removed afterwards.
    let dir = TempDir::new("segfault");
    let run = run.cwd(dir.path());
    let p = run.clone().with_program(parpy_bin()).run();
    let q = run.with_program(python_bin()).run();
    // The report names the crashing thread by address; since 3.14 it also lists C
    // frames ("  Binary file ..."), which differ between parpy (libpython3.X.so) and a
    // python3.X with libpython linked in. Compare the rest.
    let frames = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with("Current thread") && !l.starts_with("  Binary file "))
            .map(String::from)
            .collect()
    };
    for (who, o) in [("parpy", &p), ("python", &q)] {
        assert_eq!(o.code, -libc::SIGSEGV, "{who}: {o:#?}");
        assert!(
            o.stderr
                .starts_with("Fatal Python error: Segmentation fault"),
            "{who}: {}",
            o.stderr
        );
    }
    assert_eq!(frames(&p.stderr), frames(&q.stderr));
}

// ---------------------------------------------------------------------------
// sys.executable is parpy, and re-running it works
// ---------------------------------------------------------------------------

#[test]
fn sys_executable_is_parpy() {
    let out = Run::parpy().arg(script("executable.py")).run();
    assert_eq!(ok(&out).trim_end(), parpy_canonical().to_str().unwrap());
    assert_same(Run::python().arg(script("executable.py")));
}

#[test]
fn sys_executable_found_on_path_is_that_path() {
    let dir = parpy_bin().parent().unwrap().to_path_buf();
    let path = std::env::join_paths(std::iter::once(dir).chain(path_dirs())).unwrap();
    let out = Run::new("parpy")
        .env("PATH", path)
        .arg(script("executable.py"))
        .run();
    assert_eq!(ok(&out).trim_end(), parpy_canonical().to_str().unwrap());
}

#[test]
fn sys_executable_from_a_relative_argv0_is_absolute() {
    let dir = parpy_bin().parent().unwrap().to_path_buf();
    let out = Run::new("./parpy")
        .cwd(&dir)
        .arg(script("executable.py"))
        .run();
    assert_eq!(ok(&out).trim_end(), parpy_canonical().to_str().unwrap());
}

#[test]
fn subprocess_of_sys_executable_works() {
    let out = assert_same(Run::python().arg(script("subprocess_child.py")));
    assert_eq!(out.stdout, "code: 0\nstdout: child PYTHON 45\nstderr: \n");
}

#[test]
fn multiprocessing_spawn_pool_runs_under_parpy() {
    let out = assert_same(
        Run::python()
            .arg(script("pool_spawn.py"))
            .timeout(Duration::from_secs(120)),
    );
    assert_eq!(
        out.stdout,
        "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]\n['PYTHON']\n"
    );
}

fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

/// Runs an executable script, retrying while another test thread's fork
/// briefly holds it open for writing (ETXTBSY).
fn run_fresh_executable(run: &Run) -> Output {
    for _ in 0..50 {
        let mut cmd = run.command();
        cmd.stdin(Stdio::null());
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("cannot run: {e}"),
            Ok(out) => {
                return Output {
                    stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                    code: exit_code(&out.status),
                };
            }
        }
    }
    panic!("script stayed busy");
}

#[test]
fn shebang_env_parpy_runs_the_script_under_parpy() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("shebang");
    let file = dir.write(
        "tool.py",
        "#!/usr/bin/env parpy\nimport sys\nprint(sys.executable)\nprint(sys.argv[1:])\n",
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin_dir = parpy_bin().parent().unwrap().to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(path_dirs())).unwrap();
    let out = run_fresh_executable(&Run::new(&file).env("PATH", path).arg("arg"));
    let expected = format!("{}\n['arg']\n", parpy_canonical().display());
    assert_eq!(ok(&out), expected);
}

// ---------------------------------------------------------------------------
// Virtual environments
// ---------------------------------------------------------------------------

/// A virtualenv made by the reference python (no pip), with a module `vmod`
/// in its site-packages.
struct Venv {
    _dir: TempDir,
    root: PathBuf,
}

impl Venv {
    fn new(tag: &str) -> Venv {
        let dir = TempDir::new(tag);
        let root = dir.path().join("venv");
        ok(&Run::python()
            .args(["-m", "venv", "--without-pip"])
            .arg(&root)
            .run());
        let lib = root.join("lib");
        let site = std::fs::read_dir(&lib)
            .unwrap()
            .map(|e| e.unwrap().path().join("site-packages"))
            .find(|p| p.is_dir())
            .expect("site-packages");
        std::fs::write(site.join("vmod.py"), "MARK = 'from the venv'\n").unwrap();
        Venv { _dir: dir, root }
    }

    fn bin(&self, name: &str) -> PathBuf {
        self.root.join("bin").join(name)
    }

    /// What the venv's own python prints for venv_probe.py.
    fn expected_probe(&self) -> Probe {
        let out = Run::new(self.bin("python"))
            .arg(script("venv_probe.py"))
            .run();
        Probe::parse(&out)
    }
}

/// The lines venv_probe.py prints.
#[derive(Debug)]
struct Probe {
    prefix: String,
    base_prefix: String,
    executable: String,
    vmod: String,
    path: String,
}

impl Probe {
    fn parse(out: &Output) -> Probe {
        let text = ok(out);
        let field = |name: &str| {
            let tag = format!("{name}: ");
            text.lines()
                .find_map(|l| l.strip_prefix(&tag))
                .unwrap_or_else(|| panic!("no {name} in {text}"))
                .to_string()
        };
        Probe {
            prefix: field("prefix"),
            base_prefix: field("base_prefix"),
            executable: field("executable"),
            vmod: field("vmod"),
            path: field("path"),
        }
    }
}

/// The reference python's own sys.prefix.
fn base_prefix() -> String {
    let out = Run::python()
        .args(["-c", "import sys; print(sys.prefix)"])
        .run();
    ok(&out).trim_end().to_string()
}

fn assert_in_venv(got: &Probe, venv: &Venv) {
    let want = venv.expected_probe();
    assert_eq!(got.prefix, venv.root.to_str().unwrap(), "{got:#?}");
    assert_eq!(got.base_prefix, base_prefix(), "{got:#?}");
    assert_eq!(got.vmod, "from the venv");
    assert_eq!(
        got.path, want.path,
        "sys.path differs from the venv's python"
    );
    assert_eq!(
        (&got.prefix, &got.base_prefix),
        (&want.prefix, &want.base_prefix)
    );
}

#[test]
fn venv_activated_by_virtual_env() {
    let venv = Venv::new("venv-activated");
    let out = Run::parpy()
        .env("VIRTUAL_ENV", &venv.root)
        .arg(script("venv_probe.py"))
        .run();
    let got = Probe::parse(&out);
    assert_in_venv(&got, &venv);
    assert_eq!(got.executable, parpy_canonical().to_str().unwrap());
}

#[test]
fn venv_with_parpy_linked_into_its_bin() {
    let venv = Venv::new("venv-linked");
    let linked = venv.bin("parpy");
    std::os::unix::fs::symlink(parpy_bin(), &linked).unwrap();
    let out = Run::new(&linked).arg(script("venv_probe.py")).run();
    let got = Probe::parse(&out);
    assert_in_venv(&got, &venv);
    assert_eq!(got.executable, linked.to_str().unwrap());
}

#[test]
fn venv_with_parpy_linked_into_its_bin_found_on_path() {
    let venv = Venv::new("venv-on-path");
    let linked = venv.bin("parpy");
    std::os::unix::fs::symlink(parpy_bin(), &linked).unwrap();
    let path = std::env::join_paths(std::iter::once(venv.bin("")).chain(path_dirs())).unwrap();
    let out = Run::new("parpy")
        .env("PATH", path)
        .arg(script("venv_probe.py"))
        .run();
    let got = Probe::parse(&out);
    assert_in_venv(&got, &venv);
    assert_eq!(got.executable, linked.to_str().unwrap());
}

// ---------------------------------------------------------------------------
// parpy's own options
// ---------------------------------------------------------------------------

#[test]
fn parpy_version() {
    // parpy names the Python it embeds in full, as that python's own sys.version does.
    let out = Run::parpy().arg("--version").run();
    let python = Run::python()
        .args(["-c", "import sys; print(sys.version)"])
        .run();
    let want = format!(
        "parpy {} (Python {})\n",
        env!("CARGO_PKG_VERSION"),
        ok(&python).trim_end()
    );
    assert_eq!(ok(&out), want);
}

#[test]
fn parpy_help_mentions_workers_and_python_options() {
    let out = Run::parpy().arg("--help").run();
    let text = ok(&out);
    assert!(text.contains("-j, --workers <N>"), "{text}");
    assert!(text.contains("Every python option"), "{text}");
    assert!(text.contains("PARPY_WORKERS"), "{text}");
}

/// A usage error: exit code 2, nothing on stdout, one `parpy:` line on stderr
/// and no sign of a Rust panic.
fn assert_usage_error(out: &Output) {
    assert_eq!(out.code, 2, "{out:#?}");
    assert_eq!(out.stdout, "", "{out:#?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:#?}");
    assert!(out.stderr.starts_with("parpy:"), "{out:#?}");
    for panic_text in ["panicked", "RUST_BACKTRACE"] {
        assert!(!out.stderr.contains(panic_text), "{out:#?}");
    }
}

#[test]
fn parpy_zero_workers_is_a_usage_error() {
    let out = Run::parpy().args(["-j", "0"]).arg(script("argv.py")).run();
    assert_usage_error(&out);
    assert!(out.stderr.contains('0'), "{}", out.stderr);
}

#[test]
fn parpy_non_numeric_workers_is_a_usage_error() {
    let out = Run::parpy()
        .args(["-j", "abc"])
        .arg(script("argv.py"))
        .run();
    assert_usage_error(&out);
    assert!(out.stderr.contains("abc"), "{}", out.stderr);
}

#[test]
fn parpy_missing_workers_value_is_a_usage_error() {
    assert_usage_error(&Run::parpy().arg("-j").run());
}

#[test]
fn parpy_bad_parpy_workers_env_is_a_usage_error() {
    let out = Run::parpy()
        .env("PARPY_WORKERS", "abc")
        .arg(script("argv.py"))
        .run();
    assert_usage_error(&out);
    assert!(out.stderr.contains("PARPY_WORKERS"), "{}", out.stderr);
}

const PRINT_WORKERS: &str = "import parpy; print(parpy.workers())";

#[test]
fn parpy_workers_option_sets_the_pool_size() {
    assert_eq!(
        ok(&Run::parpy().args(["-j", "3", "-c", PRINT_WORKERS]).run()),
        "3\n"
    );
    assert_eq!(
        ok(&Run::parpy()
            .args(["--workers=4", "-c", PRINT_WORKERS])
            .run()),
        "4\n"
    );
}

#[test]
fn parpy_workers_env_sets_the_pool_size() {
    let out = Run::parpy()
        .env("PARPY_WORKERS", "5")
        .args(["-c", PRINT_WORKERS])
        .run();
    assert_eq!(ok(&out), "5\n");
}

#[test]
fn parpy_workers_option_beats_the_env() {
    let out = Run::parpy()
        .env("PARPY_WORKERS", "5")
        .args(["-j", "2", "-c", PRINT_WORKERS])
        .run();
    assert_eq!(ok(&out), "2\n");
}

#[test]
fn options_after_the_script_belong_to_the_script() {
    let out =
        assert_same(
            Run::python()
                .arg(script("argv.py"))
                .args(["-j", "2", "--version", "--help"]),
        );
    assert!(
        out.stdout.contains("', '-j', '2', '--version', '--help']"),
        "{}",
        out.stdout
    );
}

#[test]
fn parpy_options_before_python_options() {
    let out = Run::parpy()
        .args([
            "-j",
            "2",
            "-O",
            "-c",
            "import sys, parpy; print(sys.flags.optimize, parpy.workers(), sys.argv)",
        ])
        .run();
    assert_eq!(ok(&out), "1 2 ['-c']\n");
}

// ---------------------------------------------------------------------------
// CPython's own test suite, run by parpy
// ---------------------------------------------------------------------------

/// Fast, deterministic stdlib test modules that need no network or tty.
const STDLIB_TESTS: &[&str] = &[
    "test_string",
    "test_textwrap",
    "test_bisect",
    "test_heapq",
    "test_re",
    "test_collections",
    "test_functools",
    "test_operator",
    "test_dataclasses",
    "test_fractions",
    "test_difflib",
    "test_base64",
    "test_binascii",
    "test_struct",
    "test_csv",
    "test_shlex",
    "test_fnmatch",
    "test_glob",
    "test_sys",
    "test_str",
    "test_list",
    "test_dict",
    "test_int",
    "test_float",
    "test_complex",
    "test_random",
    "test_copy",
    "test_pprint",
    "test_string_literals",
    "test_keyword",
    "test_abc",
    "test_contextlib",
    "test_typing",
    "test_zlib",
    "test_hashlib",
];

/// regrtest's summary: the lines that do not depend on timing or load.
fn regrtest_summary(out: &Output) -> Vec<String> {
    out.stdout
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.starts_with("Result:")
                || l.starts_with("All ")
                || l.starts_with("Total tests:")
                || l.starts_with("Total test files:")
                || l.starts_with("== Tests result:")
                || l.contains("failed")
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn cpython_stdlib_tests_pass_under_parpy() {
    // 3.13 renamed test_unicode to test_str.
    let old_names = ok(&Run::python()
        .args(["-c", "import sys; print(sys.version_info < (3, 13))"])
        .run())
    .trim()
        == "True";
    let tests: Vec<&str> = STDLIB_TESTS
        .iter()
        .map(|t| {
            if old_names && *t == "test_str" {
                "test_unicode"
            } else {
                *t
            }
        })
        .collect();
    // test_int's two denial-of-service checks skip themselves when a slow
    // conversion happened to run fast: the skip count then depends on the
    // machine's load, not on the interpreter (seen differing on 3.12).
    let run = Run::python()
        .args(["-m", "test", "-i", "test_denial_of_service_prevented_*"])
        .args(&tests)
        .timeout(Duration::from_secs(300));
    // One after the other, so the two do not compete for the CPUs.
    let p = run.clone().with_program(parpy_bin()).run();
    let q = run.with_program(python_bin()).run();
    assert_eq!(q.code, 0, "python failed:\n{}", q.stdout);
    assert_eq!(p.code, 0, "parpy failed:\n{}\n{}", p.stdout, p.stderr);
    let (ps, qs) = (regrtest_summary(&p), regrtest_summary(&q));
    assert!(
        qs.contains(&format!("All {} tests OK.", tests.len())),
        "{qs:#?}"
    );
    assert!(qs.contains(&"Result: SUCCESS".to_string()), "{qs:#?}");
    assert_eq!(ps, qs, "regrtest summaries differ");
}

#[allow(dead_code)]
fn _unused(_: &Path) {}
