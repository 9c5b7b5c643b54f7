#!/usr/bin/env python3
"""Per-core speed: parpy's main interpreter against the python3.X it embeds.

    python3 benches/percore.py PARPY PYTHON [--rounds 5] [--scale 2] [--starts 20]

Runs the kernels of benches/kernels.py one after another, in one process of
`PARPY benches/percore.py --child` and one of `PYTHON benches/percore.py
--child`, alternating which goes first in each round, and prints per round the
summed kernel time of each, then the medians and the ratio parpy / python
(at most 1.03 is the goal: a user's code runs as fast under parpy as under
their own python3.X). The kernel time is measured inside the child, so
start-up is not in it; `--starts N` also times N alternating `-c pass`
start-ups of each and prints that ratio.

SCALE multiplies per-kernel sizes chosen so that scale 1 takes about 0.3 s
per kernel on this machine. The headline ratio is the median of the rounds'
ratios, each round's two runs being close in time (the machine's load drifts).
Kernel times are the CPU time of the thread that runs them (time.thread_time),
so that on a loaded machine the time spent waiting for a CPU does not count;
the start-up times are wall-clock.
"""

import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# Multiples of the sizes in kernels.KERNELS that take about 0.3 s each.
MULTIPLE = {"nbody": 20, "fannkuch": 16, "spectral_norm": 40, "raytrace": 100}


def child(scale):
    sys.path.insert(0, HERE)
    import kernels

    times = {}
    for name, (fn, size) in kernels.KERNELS.items():
        fn(0, max(1, size // 10))  # warm-up: imports, specialisation
        t = time.thread_time()
        fn(1, size * MULTIPLE.get(name, 1) * scale)
        times[name] = time.thread_time() - t
    print(json.dumps(times))


def run_child(exe, scale):
    out = subprocess.run(
        [exe, os.path.abspath(__file__), "--child", str(scale)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def starts(exe, n):
    t = time.perf_counter()
    subprocess.run([exe, "-c", "pass"], check=True)
    return time.perf_counter() - t


def main():
    args = sys.argv[1:]
    if args[:1] == ["--child"]:
        child(int(args[1]))
        return
    opts = {"--rounds": 5, "--scale": 1, "--starts": 20}
    pos = []
    while args:
        a = args.pop(0)
        if a in opts:
            opts[a] = int(args.pop(0))
        else:
            pos.append(a)
    if len(pos) != 2:
        sys.exit(__doc__)
    parpy, python = pos
    per = {parpy: [], python: []}
    ratios = []
    kernel_times = {parpy: {}, python: {}}
    for r in range(opts["--rounds"]):
        order = (parpy, python) if r % 2 == 0 else (python, parpy)
        for exe in order:
            t = run_child(exe, opts["--scale"])
            per[exe].append(sum(t.values()))
            for k, v in t.items():
                kernel_times[exe].setdefault(k, []).append(v)
        ratios.append(per[parpy][-1] / per[python][-1])
        print(
            f"round {r + 1}: parpy {per[parpy][-1]:.3f} s, python {per[python][-1]:.3f} s, "
            f"ratio {per[parpy][-1] / per[python][-1]:.3f}",
            flush=True,
        )
    mp, mq = statistics.median(per[parpy]), statistics.median(per[python])
    for k in kernel_times[parpy]:
        a = statistics.median(kernel_times[parpy][k])
        b = statistics.median(kernel_times[python][k])
        print(f"  {k:14s} parpy {a:.3f} s, python {b:.3f} s, ratio {a / b:.3f} (CPU time)")
    print(
        f"kernels (sequential, CPU time, medians of {opts['--rounds']} alternating rounds, scale "
        f"{opts['--scale']}): parpy {mp:.3f} s, {os.path.basename(python)} {mq:.3f} s, "
        f"ratio {statistics.median(ratios):.3f} (median of the rounds' ratios; "
        f"ratio of medians {mp / mq:.3f})"
    )
    if opts["--starts"]:
        a, b = [], []
        for _ in range(opts["--starts"]):
            a.append(starts(parpy, 1))
            b.append(starts(python, 1))
        sa, sb = statistics.median(a), statistics.median(b)
        print(
            f"start-up (-c pass, medians of {opts['--starts']} alternating): parpy "
            f"{sa * 1000:.1f} ms, {os.path.basename(python)} {sb * 1000:.1f} ms, "
            f"ratio {sa / sb:.2f}"
        )


if __name__ == "__main__":
    main()
