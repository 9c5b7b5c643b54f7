#!/usr/bin/env parpy
"""The parallel runtime's headline numbers, measured side by side in one run.

    parpy benches/runtime.py [--rounds 5]

Prints, as medians over alternating rounds:
  * the speedup of score.map over a sequential loop for 8 CPU-bound tasks on 2 workers,
    and the same for ProcessPoolExecutor(2) (spawn);
  * the round trip of submit(f, x).result() for a trivial f, in microseconds;
  * the throughput of map over 1,000,000 tiny items, in tasks/s (and of
    ProcessPoolExecutor.map with a large chunksize, for comparison).
"""
import argparse
import concurrent.futures as cf
import multiprocessing as mp
import statistics
import time

import parpy


def score(n):
    """CPU-bound pure Python: a small n-body-free polynomial loop."""
    acc = 0
    for i in range(n):
        acc = (acc * 31 + i * i) % 1_000_003
    return acc


def tiny(x):
    return x + 1


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--work", type=int, default=1_500_000, help="loop length of one CPU task")
    ap.add_argument("--items", type=int, default=1_000_000)
    args = ap.parse_args()
    work = [args.work] * 8
    ex = parpy.Executor(2)
    ppe = cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn"))
    # Warm both pools up (start-up is measured elsewhere).
    list(ex.map(score, [10, 10])), list(ppe.map(score, [10, 10]))

    seq, par, proc = [], [], []
    for _ in range(args.rounds):
        seq.append(timed(lambda: [score(n) for n in work]))
        par.append(timed(lambda: list(ex.map(score, work))))
        proc.append(timed(lambda: list(ppe.map(score, work))))
    s = statistics.median(seq)
    print(f"cpu-bound 8 tasks, 2 workers: sequential {s:.3f} s | parpy {statistics.median(par):.3f} s "
          f"= {s / statistics.median(par):.2f}x | ProcessPoolExecutor {statistics.median(proc):.3f} s "
          f"= {s / statistics.median(proc):.2f}x")

    rt_parpy, rt_ppe = [], []
    for _ in range(args.rounds):
        n = 20000
        rt_parpy.append(timed(lambda: [ex.submit(tiny, i).result() for i in range(n)]) / n * 1e6)
        n = 2000
        rt_ppe.append(timed(lambda: [ppe.submit(tiny, i).result() for i in range(n)]) / n * 1e6)
    print(f"round trip submit().result(): parpy {statistics.median(rt_parpy):.1f} us | "
          f"ProcessPoolExecutor {statistics.median(rt_ppe):.1f} us")

    items = range(args.items)
    tp_parpy, tp_ppe = [], []
    for _ in range(args.rounds):
        tp_parpy.append(args.items / timed(lambda: parpy.parallel(tiny).map(items)))
        tp_ppe.append(args.items / timed(lambda: list(ppe.map(tiny, items, chunksize=10_000))))
    print(f"map over {args.items:,} tiny items: parpy {statistics.median(tp_parpy):,.0f} tasks/s | "
          f"ProcessPoolExecutor(chunksize=10000) {statistics.median(tp_ppe):,.0f} tasks/s")
    ex.shutdown()
    ppe.shutdown()


if __name__ == "__main__":
    main()
