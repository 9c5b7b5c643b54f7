# A Ctrl-C that reaches a worker late (PARPY_TEST_INTERRUPT_DELAY_MS holds it
# back, as a busy machine can) must not hit a task submitted after it was
# caught: only the task that ran when Ctrl-C came may be interrupted.
import os
import signal
import time
import parpy


def busy(seconds, tag):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return tag


if __name__ == "__main__":
    ex = parpy.Executor(1)
    ex.submit(busy, 0, "warm").result()
    first = ex.submit(busy, 0.3, "first")
    time.sleep(0.1)  # it runs now; it ends on its own 0.2 s later
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # KeyboardInterrupt comes here
    except KeyboardInterrupt:
        pass
    # Runs from 0.2 s to 2.2 s after Ctrl-C; the held-back interrupt
    # arrives 1 s after Ctrl-C, while this runs.
    second = ex.submit(busy, 2.0, "second")
    try:
        print("first:", first.result())
    except KeyboardInterrupt:
        print("first: interrupted")  # only on a machine slower than the delay
    print("second:", second.result())
    ex.shutdown()
