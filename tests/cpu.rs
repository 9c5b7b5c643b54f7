//! Proof of real parallelism by CPU time, in its own test binary: cargo runs
//! test binaries one after another, so no other test of ours competes for
//! the CPUs. Other programs may: a user's laptop is never idle. So each
//! round first measures what two plain processes get, and parpy is held to
//! that, not to an idle machine's figure.

#[path = "it/common.rs"]
mod common;

use common::*;

/// CPU time over wall time that a single GIL can never exceed by much:
/// anything above it needs two threads running Python at once.
const ONE_CORE: f64 = 1.15;

fn ratio(o: &Output) -> f64 {
    ok(o)
        .trim()
        .strip_prefix("ratio ")
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no ratio in {o:#?}"))
}

#[test]
fn workers_run_truly_in_parallel_by_cpu_time() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        eprintln!("skipped: this machine has 1 CPU, so CPU time cannot exceed wall time");
        return;
    }
    let parallel = scripts().join("parallel");
    // Alternating rounds, best of each: load only lowers a ratio, never raises it.
    let (mut plain, mut parpy) = (0.0f64, 0.0f64);
    for _ in 0..4 {
        plain = plain.max(ratio(
            &Run::python().arg(parallel.join("cpu_baseline.py")).run(),
        ));
        parpy = parpy.max(ratio(
            &Run::parpy()
                .args(["-j", "2"])
                .arg(parallel.join("cpu_time.py"))
                .run(),
        ));
        if parpy >= 1.5 {
            return;
        }
    }
    if plain < 1.3 {
        eprintln!(
            "skipped: the machine cannot give two cores now (two plain processes reached \
             CPU/wall {plain:.2}; parpy's 2 workers {parpy:.2})"
        );
        return;
    }
    let want = (0.85 * plain).clamp(ONE_CORE, 1.5);
    assert!(
        parpy >= want,
        "process CPU time / wall time = {parpy:.2} with 2 busy workers, where two plain \
         processes reached {plain:.2} in the same rounds (want >= {want:.2})"
    );
}
