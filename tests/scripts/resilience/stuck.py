# A task stuck in a call that cannot be interrupted: its worker is replaced
# at once, and the stuck one ends when the call returns.
import time

import parpy


def stuck(seconds):
    time.sleep(seconds)  # not interruptible until it returns
    return "woke"


if __name__ == "__main__":
    ex = parpy.Executor(1)
    f = ex.submit(stuck, 2)
    time.sleep(0.2)
    t = time.monotonic()
    print("cancelled:", f.cancel())
    print("replacement answers:", ex.submit(abs, -5).result(), time.monotonic() - t < 3)
