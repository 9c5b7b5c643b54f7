#!/usr/bin/env parpy
"""Does a worker run a kernel as fast as the main interpreter?

    PYTHONPATH=benches parpy benches/worker_vs_main.py [KERNEL] [SIZE] [ROUNDS]

SIZE defaults to 8 times the size benches/run.py starts calibrating from
(docs/benchmarks.json has the calibrated "kernel_sizes" of the published run).
Alternates, ROUNDS times: 4 calls of the kernel in the main interpreter, then
the same 4 calls on a pool of one worker, and prints each round's ratio
(1-worker time / main time). A ratio near 1 means a sub-interpreter costs
nothing per call; the spread between rounds is the machine's noise.
"""
import sys
import time

import kernels
import parpy


def main():
    name = sys.argv[1] if len(sys.argv) > 1 else "fannkuch"
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 8 * kernels.KERNELS[name][1]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    fn = kernels.KERNELS[name][0]
    with parpy.Executor(1) as ex:
        list(ex.map(fn, [0], [max(1, size // 10)]))  # warm both up
        fn(0, max(1, size // 10))
        for _ in range(rounds):
            t = time.perf_counter()
            here = [fn(i, size) for i in range(4)]
            a = time.perf_counter() - t
            t = time.perf_counter()
            there = list(ex.map(fn, range(4), [size] * 4))
            b = time.perf_counter() - t
            assert here == there
            print(f"{name} size {size}: main {a:.3f} s, 1 worker {b:.3f} s, ratio {b / a:.2f}")


if __name__ == "__main__":
    main()
