# A task stuck in a call that cannot be interrupted: when its map is
# abandoned, its worker is replaced at once, and the stuck one ends when the
# call returns.
import time

import parpy


def stuck(seconds):
    time.sleep(seconds)  # not interruptible until it returns
    return "woke"


if __name__ == "__main__":
    ex = parpy.Executor(1)
    try:
        next(ex.map(stuck, [2], timeout=0.2))
    except TimeoutError:
        print("timed out")
    t = time.monotonic()
    print("replacement answers:", ex.submit(abs, -5).result(), time.monotonic() - t < 3)
