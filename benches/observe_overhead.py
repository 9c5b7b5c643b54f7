#!/usr/bin/env python3
"""What --progress, --stats and --timeline cost, and that with all of them
off the runtime is as fast as another build (for example the commit before
they existed), measured side by side in alternating rounds.

    python3 benches/observe_overhead.py NEW_PARPY [BASE_PARPY] [--rounds 7]

Each round runs, with every binary and mode in turn, one process that
measures the round trip of submit(f, x).result() and the throughput of
map() over tiny items (2 workers). Prints medians, and each mode's ratio to
NEW with everything off.
"""
import argparse
import statistics
import subprocess
import sys

WORKLOAD = r"""
import sys, time, parpy
def tiny(x):
    return x + 1
ex = parpy.Executor(2)
ex.submit(tiny, 1).result()
n = 20000
t = time.perf_counter()
for i in range(n):
    ex.submit(tiny, i).result()
rt = (time.perf_counter() - t) / n * 1e6
f = parpy.parallel(tiny)
items = range(1_000_000)
t = time.perf_counter()
f.map(items)
tp = len(items) / (time.perf_counter() - t)
print(rt, tp)
"""

MODES = {
    "off": [],
    "--progress": ["--progress"],
    "--stats": ["--stats=json", "/dev/null"],
    "--timeline": ["--timeline", "/dev/null"],
}


def run(binary, flags):
    out = subprocess.run([binary, "-j", "2", *flags, "-c", WORKLOAD], capture_output=True,
                         text=True, check=True)
    rt, tp = out.stdout.split()
    return float(rt), float(tp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("new")
    ap.add_argument("base", nargs="?")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    cases = [(f"new {m}", args.new, f) for m, f in MODES.items()]
    if args.base:
        cases.insert(1, ("base", args.base, []))
    got = {name: ([], []) for name, _, _ in cases}
    for r in range(args.rounds):
        for name, binary, flags in cases if r % 2 == 0 else reversed(cases):
            rt, tp = run(binary, flags)
            got[name][0].append(rt)
            got[name][1].append(tp)
    ref_rt = statistics.median(got["new off"][0])
    ref_tp = statistics.median(got["new off"][1])
    print(f"{'case':<16} {'round trip':>12} {'x new off':>10} {'map tasks/s':>14} {'x new off':>10}")
    for name, _, _ in cases:
        rt = statistics.median(got[name][0])
        tp = statistics.median(got[name][1])
        print(f"{name:<16} {rt:>9.2f} us {rt / ref_rt:>10.3f} {tp:>14,.0f} {tp / ref_tp:>10.3f}")
    print(f"({args.rounds} alternating rounds, medians; one process per case and round)")


if __name__ == "__main__":
    sys.exit(main())
