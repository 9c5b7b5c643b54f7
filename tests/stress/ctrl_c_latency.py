#!/usr/bin/env python3
"""Ctrl-C latency over repeated real SIGINTs (documented command, not in cargo test):

    python3 tests/stress/ctrl_c_latency.py [PARPY] [RUNS]

Each run starts `PARPY -j 2 tests/scripts/resilience/ctrl_c.py catch`, waits
until its workers are busy, sends SIGINT, and measures the time until the
main interpreter has caught KeyboardInterrupt (its "caught" line) and until
the process, which then reuses the pool, has exited. Every run must end with
exit code 0: no hang, no abort.
"""
import os
import signal
import statistics
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
parpy = sys.argv[1] if len(sys.argv) > 1 else "parpy"
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 50
script = os.path.join(here, "..", "scripts", "resilience", "ctrl_c.py")
caught, ended = [], []
for i in range(runs):
    p = subprocess.Popen([parpy, "-j", "2", script, "catch"], stdout=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert p.stdout.readline() == "ready\n"
    time.sleep(0.2)
    t = time.monotonic()
    p.send_signal(signal.SIGINT)
    line = p.stdout.readline()
    caught.append(time.monotonic() - t)
    assert line.startswith("caught"), line
    rest = p.stdout.read()
    code = p.wait(timeout=30)
    ended.append(time.monotonic() - t)
    assert code == 0 and rest.startswith("again"), (code, rest)
ms = lambda xs: f"median {statistics.median(xs) * 1000:.1f} ms, max {max(xs) * 1000:.1f} ms"
print(f"{runs} runs, all exited 0 after reusing the pool")
print(f"SIGINT -> KeyboardInterrupt caught in main: {ms(caught)}")
print(f"SIGINT -> process exit: {ms(ended)}")
