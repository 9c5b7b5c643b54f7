# Large arguments (lent by main to the workers) on every path where their
# jobs do not end normally: cancelled before running, abandoned maps, a stuck
# worker that is replaced, shutdown with cancel_futures, and results never
# collected at exit. Nothing may crash, and once the pool is shut down every
# loan of main's object is released.
import sys
import time

import parpy


def slow(data, seconds):
    time.sleep(seconds)  # not interruptible until it returns
    return len(data)


def first_byte(data):
    time.sleep(0.01)
    return data[0]


def main():
    big = b"\x07" * (20 * 1024 * 1024)
    base = sys.getrefcount(big)

    ex = parpy.Executor(1)
    busy = ex.submit(slow, big, 0.5)
    queued = [ex.submit(slow, big, 0) for _ in range(4)]
    print("cancelled before running:", [f.cancel() for f in queued[:2]])
    print("busy:", busy.result(), "rest:", [f.result() for f in queued[2:]])

    it = ex.map(first_byte, [big] * 40)
    print("first of an abandoned map:", next(it))
    del it

    stuck = ex.map(slow, [big], [1.5], timeout=0.2)
    try:
        next(stuck)
    except TimeoutError:
        print("stuck map timed out")
    print("replacement answers:", ex.submit(first_byte, big).result())

    for _ in range(5):
        ex.submit(slow, big, 0.05)
    ex.shutdown(wait=True, cancel_futures=True)
    # The abandoned worker has ended too (shutdown waits for it). Futures
    # keep their call's arguments: let them go first.
    del busy, queued, stuck
    extra = sys.getrefcount(big) - base
    print("all loans released:", extra == 0 or extra)

    # Never collected: still queued or running when the script ends.
    ex2 = parpy.Executor(2)
    for i in range(6):
        ex2.submit(slow, big + bytes([i]), 0.1)
    it2 = ex2.map(first_byte, [big] * 10)
    print("done")


if __name__ == "__main__":
    main()
