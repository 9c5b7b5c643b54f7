# Lambdas, closures and nested functions run in workers.
import math
import parpy

OFFSET = 100


def outer(k):
    def inner(x):
        return x * k + OFFSET
    return inner


if __name__ == "__main__":
    local = 7
    with parpy.Executor(2) as ex:
        assert ex.submit(lambda x: x + 1, 1).result() == 2
        assert ex.submit(lambda x: x + local, 1).result() == 8
        assert list(ex.map(outer(3), [1, 2])) == [103, 106]
        assert ex.submit(lambda: math.sqrt(16) + OFFSET).result() == 104.0
        assert ex.submit(lambda *a, **k: (a, sorted(k)), 1, 2, z=3).result() == ((1, 2), ["z"])
        assert ex.submit(sorted, [3, 1, 2], reverse=True).result() == [3, 2, 1]
        import functools
        assert ex.submit(functools.partial(pow, 2), 10).result() == 1024
    print("functions OK")
