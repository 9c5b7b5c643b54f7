# Run under PARPY_FAULT or resource limits: every failure is a clear
# exception, and the process ends normally afterwards.
import sys

import parpy


def rank(ctx):
    return ctx.rank


def attempt(what, f):
    try:
        print(what, "->", f())
    except Exception as e:
        print(what, "->", type(e).__name__ + ":", e)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    ex = parpy.Executor(n)
    try:
        attempt("map", lambda: sum(ex.map(abs, range(-100, 0), chunksize=1)))
        attempt("submit", lambda: ex.submit(abs, -7).result())
        attempt("spmd", lambda: ex.spmd(rank)[:2])
    finally:
        ex.shutdown()
    attempt("new pool", lambda: parpy.Executor(2).submit(abs, -3).result())
    print("done")
