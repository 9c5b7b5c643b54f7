# Bad input and hard cases: each gets a clear outcome, never a crash or hang.
import os
import signal
import sys
import tempfile
import threading

import parpy


def identity(x):
    return x


def recurse(n):
    return recurse(n + 1)


def exits(code):
    sys.exit(code)


def forks():
    return os.fork()


def signals():
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)


def deep_value(depth):
    v = []
    for _ in range(depth):
        v = [v]
    return v


def big_result(n):
    return b"x" * n


def with_thread(n):
    out = []
    t = threading.Thread(target=lambda: out.append(sum(range(n))))
    t.start()
    t.join()
    return out[0]


def outcome(fut):
    e = fut.exception()
    return "ok" if e is None else f"{type(e).__name__}: {str(e)[:70]}"


if __name__ == "__main__":
    ex = parpy.Executor(2)
    with open(__file__) as f:
        try:
            ex.submit(identity, f)
        except TypeError as e:
            print("open file:", str(e)[:80])
    print("recursion:", outcome(ex.submit(recurse, 0)))
    try:
        ex.submit(exits, 3).result()
    except SystemExit as e:
        print("sys.exit in a task: SystemExit", e.code)
    print("fork:", outcome(ex.submit(forks)))
    print("signal:", outcome(ex.submit(signals)))
    try:
        ex.submit(identity, deep_value(100_000))
    except (TypeError, RecursionError) as e:
        print("100,000-deep argument:", type(e).__name__)
    # Pickled past parpy's native depth: 3.14's stack-based recursion limit
    # lets it arrive; on 3.12 and 3.13 pickle raises RecursionError, as it
    # does for a process pool.
    deep = ex.submit(deep_value, 100_000)
    if deep.exception() is None:
        v, depth = deep.result(), 0
        while v:
            v, depth = v[0], depth + 1
        print("100,000-deep result:", "arrived intact" if depth == 100_000 else f"wrong depth {depth}")
    else:
        print("100,000-deep result:", outcome(deep))
    print("1,000-deep round trip:", ex.submit(identity, deep_value(1000)).result() == deep_value(1000))
    print("threads in a task:", ex.submit(with_thread, 1000).result())
    # A module directory added to sys.path before the first parallel call.
    d = tempfile.mkdtemp()
    with open(os.path.join(d, "helper_mod.py"), "w") as f:
        f.write("def triple(x):\n    return 3 * x\n")
    sys.path.insert(0, d)
    os.chdir(d)
    import helper_mod
    ex2 = parpy.Executor(2)
    print("sys.path and cwd:", list(ex2.map(helper_mod.triple, [1, 2])),
          ex2.submit(os.getcwd).result() == d)
    print("worker survives all of it:", list(ex.map(identity, [1, 2])))
