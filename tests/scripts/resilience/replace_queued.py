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
    stuck_calls = ex.map(stuck, [2, 2], chunksize=1, timeout=0.6)
    time.sleep(0.3)

    def abandon():
        try:
            list(stuck_calls)
        except TimeoutError:
            pass  # the map's calls are interrupted, and stay stuck

    # Both ranks wait behind the stuck calls, on each worker's own queue.
    threading.Thread(target=abandon).start()
    t = time.monotonic()
    print("spmd:", ex.spmd(rank))
    print("before the stuck calls returned:", time.monotonic() - t < 1.5)
