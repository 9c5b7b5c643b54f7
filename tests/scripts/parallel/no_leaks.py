# Nothing that a task used is kept alive after the caller let go of it, and
# fresh callables do not pile up in main or in the workers.
import gc
import weakref
import parpy


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024


def closure_over(i):
    big = bytes([i % 256]) * 100_000  # each closure captures 100 KB
    return lambda x: len(big) + x + big[0]


def fresh_closures(ex, start, n):
    for i in range(start, start + n):
        f = closure_over(i)
        assert ex.submit(f, 1).result() == 100_001 + i % 256
    # map() over fresh callables too
    for i in range(start, start + n // 10):
        f = closure_over(i)
        assert list(ex.map(f, [1, 2], chunksize=1)) == [100_001 + i % 256, 100_002 + i % 256]


class Box:
    def __init__(self, v):
        self.v = v

    def get(self, x):
        return self.v + x


def boxed(x):
    return Box(x)


def double(x):
    return 2 * x


def dead(ref):
    gc.collect()
    return ref() is None


if __name__ == "__main__":
    ex = parpy.Executor(2)

    # 2. Memory stays bounded with fresh closures: 1,200 closures of 100 KB
    # each would leave more than 100 MB in main and 2 workers if cached.
    fresh_closures(ex, 0, 300)
    gc.collect()
    base = rss_mb()
    fresh_closures(ex, 300, 1200)
    gc.collect()
    growth = rss_mb() - base
    assert growth < 40, f"RSS grew by {growth:.0f} MB over 1,200 fresh closures"

    # 3. The executor keeps neither the last callable nor a bound method's object.
    obj = Box(5)
    ref = weakref.ref(obj)
    fut = ex.submit(obj.get, 1)
    assert fut.result() == 6
    del obj
    assert dead(ref), "a bound method's object outlived its submit()"

    arg = Box(1)
    ref = weakref.ref(arg)
    fut = ex.submit(double, [1])  # a plain function in between
    fut = ex.submit(boxed, 3)
    fut2 = ex.submit(id, arg)
    fut2.result()
    del arg
    assert dead(ref), "a finished future kept its argument alive"
    assert fut.result().v == 3

    f = closure_over(7)
    ref = weakref.ref(f)
    ex.submit(f, 1).result()
    del f
    assert dead(ref), "the last submitted callable was kept alive"

    # A map iterator keeps no result it has yielded, even within a chunk.
    it = ex.map(boxed, range(10), chunksize=10)
    first = next(it)
    ref = weakref.ref(first)
    del first
    assert dead(ref), "map() kept a yielded result alive"
    second = next(it)
    assert second.v == 1 and [b.v for b in it] == list(range(2, 10))
    for gen in (ex.map(boxed, range(6), chunksize=3), parpy.parallel(boxed).map_unordered(range(6), chunksize=3)):
        got = next(gen)
        ref = weakref.ref(got)
        del got
        assert dead(ref), "a map kept a yielded result alive"
        gen.close()

    ex.shutdown()
    print("no leaks OK")
