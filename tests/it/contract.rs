//! `parpy.Executor` as a `concurrent.futures` drop-in: CPython's own
//! `test_concurrent_futures`, and the regressions of issue 11 defect 10.

use std::time::Duration;

use crate::common::*;

fn script(name: &str) -> std::path::PathBuf {
    scripts().join("contract").join(name)
}

/// CPython's `test_concurrent_futures` against `parpy.Executor`
/// (tests/contract/run_stdlib_cf.py lists every skip and adaptation).
#[test]
fn stdlib_concurrent_futures_tests_pass() {
    let runner = scripts()
        .parent()
        .unwrap()
        .join("contract")
        .join("run_stdlib_cf.py");
    let o = Run::parpy()
        .arg(runner)
        .timeout(Duration::from_secs(900))
        .run();
    if o.code == 77 {
        // Python 3.12 whose test package lacks the suite (pyenv's 3.12.1).
        eprintln!("skipped: {}", o.stderr.trim());
        return;
    }
    let last = o.stdout.lines().last().unwrap_or_default().to_string();
    assert!(
        o.code == 0
            && last.contains(" 0 failures, 0 errors,")
            && last.ends_with(" 0 unexpected successes"),
        "{last}\nstdout:\n{}\nstderr:\n{}",
        o.stdout,
        o.stderr
    );
}

#[test]
fn futures_follow_the_concurrent_futures_contract() {
    let o = Run::parpy()
        .arg(script("futures.py"))
        .timeout(Duration::from_secs(120))
        .run();
    assert_eq!(
        ok(&o),
        "running: True False\n\
         cancel running: False False True\n\
         cancel pending: True True False\n\
         shutdown(cancel_futures=True): True False True\n\
         the running one finishes: released False True\n\
         manager dict: ['a'] {'a': 1}\n\
         initializer: BrokenWorker True\n\
         submit to a broken executor: BrokenWorker\n\
         result pickling error: PicklingError refuses pickling\n\
         SystemExit while pickling a result: 7\n\
         argument: parpy: argument 0 of type 'BadResult' cannot b PicklingError\n\
         SystemExit while pickling an argument: 7\n\
         buffersize: 0 3\n\
         buffersize '2' TypeError buffersize must be an integer or None\n\
         buffersize 0 ValueError buffersize must be None or > 0\n\
         map without iterables: []\n",
        "{}",
        o.stderr
    );
    // The initializer's failure is logged as concurrent.futures logs it.
    assert!(
        o.stderr.starts_with("Exception in initializer:")
            && o.stderr.contains("ValueError: no init"),
        "{}",
        o.stderr
    );
}

#[test]
fn waiting_for_a_slow_task_at_exit_prints_nothing_unless_verbose() {
    let o = Run::parpy()
        .arg(script("slow_exit.py"))
        .timeout(Duration::from_secs(60))
        .run();
    assert_eq!(ok(&o), "slow task done\n");
    assert_eq!(o.stderr, "");
    let o = Run::parpy()
        .arg(script("slow_exit.py"))
        .env("PARPY_VERBOSE", "1")
        .timeout(Duration::from_secs(60))
        .run();
    assert_eq!(ok(&o), "slow task done\n");
    assert!(
        o.stderr
            .starts_with("parpy: waiting for running tasks to finish"),
        "{}",
        o.stderr
    );
}
