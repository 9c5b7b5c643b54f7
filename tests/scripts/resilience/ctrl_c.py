# Busy workers; Ctrl-C arrives while main waits in map().
import sys
import time
import parpy


def spin(n):
    t = 0
    for i in range(n):
        t += i
    return t


if __name__ == "__main__":
    ex = parpy.Executor(2)
    ex.submit(spin, 1).result()
    print("ready", flush=True)
    if sys.argv[1:] == ["catch"]:
        try:
            list(ex.map(spin, [10**10] * 6))
        except KeyboardInterrupt:
            print("caught", time.monotonic(), flush=True)
        # The pool is still usable afterwards, and nothing is left running.
        print("again", list(ex.map(spin, [10, 20])), flush=True)
    else:
        list(ex.map(spin, [10**10] * 6))
