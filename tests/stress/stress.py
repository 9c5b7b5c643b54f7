#!/usr/bin/env parpy
"""Long-run stress test (not part of `cargo test`; see README):

    parpy tests/stress/stress.py [TASKS]      # default 1,000,000

Runs TASKS tasks with mixed values through submit, map and map_unordered,
checks that no result is lost or duplicated, and that RSS grows by less than
20 MB from the 100,000th task to the end.
"""
import sys
import time

import parpy


class Box:
    def __init__(self, v):
        self.v = v


def work(i):
    """Task ``i``: its id with a value of a kind chosen by ``i``."""
    kind = i % 6
    if kind == 0:
        v = i
    elif kind == 1:
        v = (i, str(i), float(i))
    elif kind == 2:
        v = {"i": i, "l": [i, i + 1], "s": {i}}
    elif kind == 3:
        v = Box(i)
    elif kind == 4:
        v = b"%d" % i
    else:
        v = [i] * 3
    return i, v


def check(i, v):
    kind = i % 6
    ok = (v == i if kind == 0 else v == (i, str(i), float(i)) if kind == 1 else
          v == {"i": i, "l": [i, i + 1], "s": {i}} if kind == 2 else
          type(v) is Box and v.v == i if kind == 3 else v == b"%d" % i if kind == 4 else v == [i] * 3)
    if not ok:
        raise AssertionError(f"wrong result for task {i}: {v!r}")


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024


def main():
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    ex = parpy.Executor()
    # Start both pools (this executor's and the default one) before measuring.
    list(ex.map(work, range(10)))
    list(parpy.parallel(work).map_unordered(range(10)))
    seen = bytearray(total)
    done = 0
    rss_at_100k = None
    t = time.perf_counter()
    batch = 50_000
    for start in range(0, total, batch):
        ids = range(start, min(start + batch, total))
        mode = (start // batch) % 3
        if mode == 0:
            results = ex.map(work, ids, chunksize=256)
        elif mode == 1:
            results = [f.result() for f in [ex.submit(work, i) for i in ids]]
        else:
            results = parpy.parallel(work).map_unordered(ids)
        for i, v in results:
            check(i, v)
            if seen[i]:
                raise AssertionError(f"duplicate result for task {i}")
            seen[i] = 1
            done += 1
        if rss_at_100k is None and done >= 100_000:
            rss_at_100k = rss_mb()
    missing = total - sum(seen)
    assert missing == 0, f"{missing} results lost"
    growth = rss_mb() - (rss_at_100k or rss_mb())
    took = time.perf_counter() - t
    print(f"{total:,} tasks, none lost or duplicated, {took:.1f} s, "
          f"RSS {rss_at_100k:.1f} MB at 100k -> {rss_mb():.1f} MB at the end (+{growth:.1f} MB)")
    assert growth < 20, f"RSS grew by {growth:.1f} MB"
    ex.shutdown()


if __name__ == "__main__":
    main()
