# Real parallelism: process CPU time exceeds wall time while 2 workers loop.
import os
import time
import parpy


def spin(n):
    t = 0
    for i in range(n):
        t += i % 7
    return t


if __name__ == "__main__":
    with parpy.Executor(2) as ex:
        ex.submit(spin, 10).result()  # workers are up
        c0, w0 = time.process_time(), time.perf_counter()
        list(ex.map(spin, [4_000_000] * 4, chunksize=1))
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    print(f"ratio {cpu / wall:.2f}")
