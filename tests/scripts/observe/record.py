# Every API form, a pickled type, a fallback and an interrupt, for --stats,
# --timeline and PARPY_LOG. Prints how many calls went to the pool.
import time

import parpy


class Box:
    def __init__(self, v):
        self.v = v


def square(x):
    return x * x


def boxed(x):
    return Box(x)


def uses_readline(x):
    import readline  # noqa: F401  (refuses sub-interpreters: runs in the fallback)
    return x


def spin():
    while True:
        pass


def rank(ctx):
    return ctx.rank


if __name__ == "__main__":
    ex = parpy.Executor(2)
    assert sum(ex.map(square, range(100), chunksize=7)) == sum(x * x for x in range(100))
    assert [f.result() for f in [ex.submit(square, i) for i in range(5)]] == [i * i for i in range(5)]
    assert [b.v for b in ex.map(boxed, range(3))] == [0, 1, 2]
    assert ex.spmd(rank) == [0, 1]
    # A running task, stopped: an interrupt on its worker's track.
    f = ex.submit(spin)
    while not f.running():
        time.sleep(0.01)
    ex.terminate_workers()
    assert isinstance(f.exception(timeout=30), parpy.BrokenWorker), f.exception()
    # 100 + 5 + 3 + 2 ranks + 1 spin on the pool; the readline calls go to
    # the fallback after the first refusal.
    print("pool calls", 100 + 5 + 3 + 2 + 1)
    print(parpy.Executor(1).submit(uses_readline, 7).result())
