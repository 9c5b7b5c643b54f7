#!/usr/bin/env parpy
"""Pool start/stop soak (not part of `cargo test`; see README):

    parpy tests/stress/pool_cycles.py [CYCLES]      # default 2,000

Starts and ends a 2-worker pool CYCLES times, each running a small map that
imports extension modules in the workers, and samples RSS after every
cycle. Prints the growth per cycle: the least-squares slope over the second
half of the run (the first cycles warm caches and allocator arenas).
"""
import sys
import time

import parpy


def work(x):
    import datetime, decimal, json, math, re  # noqa: E401
    return json.dumps([x, str(decimal.Decimal(x) / 3)[:6], datetime.date(2020, 1, 1 + x % 28).isoformat()])


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


def slope(points):
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def main():
    cycles = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    samples = []
    t = time.perf_counter()
    for c in range(cycles):
        with parpy.Executor(2) as ex:
            assert len(list(ex.map(work, range(4)))) == 4
        samples.append((c, rss_kb()))
    took = time.perf_counter() - t
    half = samples[len(samples) // 2:]
    print(f"Python {sys.version.split()[0]}: {cycles} pool cycles in {took:.1f} s "
          f"({took / cycles * 1e3:.1f} ms each); RSS {samples[0][1] / 1024:.1f} MB after the first, "
          f"{samples[-1][1] / 1024:.1f} MB after the last; growth {slope(half):+.1f} KB per cycle "
          f"over the second half")


if __name__ == "__main__":
    main()
