# The script's own SIGINT handler raises while parpy waits, at exit, for a
# running task: the task is stopped and the workers end before the
# interpreter finalizes.
import signal
import sys

import parpy


def spin(n):
    t = 0
    try:
        for i in range(n):
            t += i
    except KeyboardInterrupt:
        print("task stopped", flush=True)
    return t


def handler(signum, frame):
    raise RuntimeError("from the script's SIGINT handler")


if __name__ == "__main__":
    signal.signal(signal.SIGINT, handler)
    ex = parpy.Executor(1)
    ex.submit(spin, 10).result()
    ex.submit(spin, 10**11)
    print("ready", flush=True)
