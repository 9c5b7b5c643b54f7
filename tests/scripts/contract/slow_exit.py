# A task still running when the script ends: parpy waits for it, as
# concurrent.futures does, and prints nothing of its own.
import time

import parpy


def slow(seconds):
    time.sleep(seconds)
    print("slow task done")


if __name__ == "__main__":
    ex = parpy.Executor(1)
    ex.submit(slow, 1.5)
    ex.shutdown(wait=False)
