# tracemalloc tracing when the first pool starts: a clear error where CPython
# would deadlock (3.12-3.14), results where it does not (3.15+). Either way
# the pool works once tracing starts after it is up.
import sys
import tracemalloc

import parpy


def f(x):
    return x + 1


if __name__ == "__main__":
    tracemalloc.start()
    try:
        print(parpy.parallel(f).map(range(3)))
    except RuntimeError as e:
        print("refused:", str(e).split(":")[1].strip())
    tracemalloc.stop()
    print(parpy.parallel(f).map(range(3)))
    tracemalloc.start()  # once the pool is up, tracing is fine
    print(parpy.parallel(f).map(range(3)), tracemalloc.is_tracing())
