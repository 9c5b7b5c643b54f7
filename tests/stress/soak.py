#!/usr/bin/env parpy
"""Soak run (not part of `cargo test`; see README):

    parpy tests/stress/soak.py [TASKS]      # default 10,000,000

Runs TASKS tasks in batches of 50,000, each batch through another API form:
Executor.map, submit + result, @parallel.map_unordered, @parallel.map with a
fresh closure per batch, as_completed over submits, and spmd ranks that pull
task ids from a parpy.Queue and read a parpy.share() buffer. Checks that no
result is lost or duplicated, samples RSS after every batch, and fails if
RSS grows by more than 20 MB from the 10% mark to the end, by the slope of
each API form's own samples (the worst form counts). Prints the slopes.
"""
import sys
import time
from concurrent.futures import as_completed

import parpy


class Box:
    def __init__(self, v):
        self.v = v


def value(i):
    """Task ``i``'s value, of a kind chosen by ``i``."""
    kind = i % 6
    if kind == 0:
        return i
    if kind == 1:
        return (i, str(i), float(i))
    if kind == 2:
        return {"i": i, "l": [i, i + 1], "s": {i}}
    if kind == 3:
        return Box(i)
    if kind == 4:
        return b"%d" % i
    return [i] * 3


def work(i):
    return i, value(i)


@parpy.parallel
def pwork(i):
    return i, value(i)


def same(i, v):
    w = value(i)
    return (type(v) is Box and v.v == i) if type(w) is Box else v == w


def ranks(ctx, shared, q):
    """One SPMD rank: takes ids from the queue until it reads None."""
    out = []
    view = memoryview(shared)
    while (i := q.get()) is not None:
        assert view[i % len(view)] == i % len(view) % 251
        out.append(work(i))
    return out


def slope(points):
    """Least-squares slope of (x, y) points; 0 for fewer than two."""
    if len(points) < 2:
        return 0.0
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024


def run_batch(mode, ids, ex, shared):
    if mode == 0:
        return ex.map(work, ids, chunksize=256)
    if mode == 1:
        return [f.result() for f in [ex.submit(work, i) for i in ids]]
    if mode == 2:
        return pwork.map_unordered(ids)
    if mode == 3:
        base = ids.start  # a fresh closure each batch: it must not be kept

        def closure(k):
            return base + k, value(base + k)

        return parpy.parallel(closure).map(range(len(ids)))
    if mode == 4:
        return [f.result() for f in as_completed([ex.submit(work, i) for i in ids])]
    q = parpy.Queue()
    for i in ids:
        q.put(i)
    n = parpy.workers()
    for _ in range(n):
        q.put(None)
    return [r for rank in parpy.spmd(ranks, shared, q) for r in rank]


MODES = ["Executor.map", "submit", "map_unordered", "closure map", "as_completed", "spmd+Queue"]


def main():
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    batch = 50_000
    ex = parpy.Executor()
    shared = parpy.share(bytes(i % 251 for i in range(1 << 16)))
    list(ex.map(work, range(10)))
    pwork.map(range(10))
    # Filled now: a zeroed bytearray's pages (calloc) would become resident
    # one by one as results are marked, 1 MB per million tasks of "growth".
    seen = bytearray(b"\x00") * total
    samples = []
    t = time.perf_counter()
    for b, start in enumerate(range(0, total, batch)):
        ids = range(start, min(start + batch, total))
        for i, v in run_batch(b % len(MODES), ids, ex, shared):
            if not same(i, v):
                raise AssertionError(f"wrong result for task {i}: {v!r}")
            if seen[i]:
                raise AssertionError(f"duplicate result for task {i}")
            seen[i] = 1
        samples.append((ids.stop, rss_mb(), b % len(MODES)))
    missing = total - sum(seen)
    assert missing == 0, f"{missing} results lost"
    took = time.perf_counter() - t
    # RSS depends on the API form of the batch just run (up to 100 MB apart),
    # so growth is the least-squares slope of each form's own samples after
    # the 10% mark, and the worst form counts.
    late = [(n, r, m) for n, r, m in samples if n > total // 10]
    slopes = {MODES[m]: slope([(n / 1e6, r) for n, r, mm in late if mm == m])
              for m in range(len(MODES))}
    worst = max(slopes, key=slopes.get)
    growth = slopes[worst] * (total - total // 10) / 1e6
    print(f"{total:,} tasks over {', '.join(MODES)}: none lost or duplicated, {took:.1f} s "
          f"({total / took / 1e3:.0f} k tasks/s)")
    print(f"RSS samples: {len(samples)}, min {min(r for _, r, _ in samples):.1f} MB, "
          f"max {max(r for _, r, _ in samples):.1f} MB; growth per million tasks after the 10% mark: "
          + ", ".join(f"{k} {v:+.2f} MB" for k, v in slopes.items())
          + f"; worst ({worst}) over the run: {growth:+.1f} MB")
    assert growth < 20, f"RSS grew by {growth:.1f} MB ({worst})"
    ex.shutdown()


if __name__ == "__main__":
    main()
