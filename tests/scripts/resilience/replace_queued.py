# A worker stuck in a call that cannot be interrupted is replaced; the jobs
# already queued for it (an spmd rank) go to its successor, not lost.
import threading
import time

import parpy


def stuck(seconds):
    time.sleep(seconds)  # not interruptible until it returns
    return "woke"


def rank(ctx):
    return ctx.rank


if __name__ == "__main__":
    ex = parpy.Executor(2)
    futs = [ex.submit(stuck, 2) for _ in range(2)]
    time.sleep(0.3)
    # Both ranks wait behind the stuck calls, on each worker's own queue.
    threading.Timer(0.3, lambda: [f.cancel() for f in futs]).start()
    t = time.monotonic()
    print("spmd:", ex.spmd(rank))
    print("before the stuck calls returned:", time.monotonic() - t < 1.5)
