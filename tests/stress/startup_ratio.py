#!/usr/bin/env python3
"""Start-up of `parpy -c pass` against the same CPython's `python3.X -c pass`:

    python3 tests/stress/startup_ratio.py PARPY [PYTHON]

Medians of 30 alternating runs."""
import subprocess, time, statistics, sys
P = sys.argv[1]
Q = sys.argv[2] if len(sys.argv) > 2 else "/root/.pyenv/versions/3.13.0/bin/python3.13"
a, b = [], []
for i in range(30):
    for exe, acc in ((P, a), (Q, b)):
        t = time.perf_counter(); subprocess.run([exe, "-c", "pass"]); acc.append(time.perf_counter() - t)
ma, mb = statistics.median(a), statistics.median(b)
print(f"parpy -c pass: {ma*1000:.1f} ms, python3.13 -c pass: {mb*1000:.1f} ms, ratio {ma/mb:.2f} (medians of 30, alternating)")
