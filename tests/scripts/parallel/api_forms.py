# Every API form gives the same results as a sequential run.
import parpy


@parpy.parallel
def score(item, weight=1):
    return sum(i * i for i in range(item)) * weight


def add(a, b):
    return a + b


class Ops:
    @staticmethod
    def mul(a, b):
        return a * b

    class Inner:
        @staticmethod
        def tag(x):
            return f"tag-{x}"


if __name__ == "__main__":
    items = list(range(50))
    seq = [score(i) for i in items]
    assert score(7) == sum(i * i for i in range(7))
    assert score.submit(30, weight=2).result() == score(30, weight=2)
    assert score.map(items) == seq
    assert score.map(items, chunksize=7) == seq
    assert score.map(items, chunksize=1) == seq
    assert score.map(items, [3] * 50) == [score(i, 3) for i in items]
    assert sorted(score.map_unordered(items)) == sorted(seq)
    assert score.map([]) == []
    with parpy.Executor(max_workers=2) as ex:
        assert ex.submit(add, 2, b=3).result() == 5
        assert list(ex.map(add, range(10), range(10))) == [2 * i for i in range(10)]
        assert list(ex.map(Ops.mul, [2, 3], [4, 5])) == [8, 15]
        assert ex.submit(Ops.Inner.tag, 1).result() == "tag-1"
        assert list(ex.map(add, [], [])) == []
        ranks = ex.spmd(lambda ctx, base: (ctx.rank, ctx.size, base), 10)
        assert ranks == [(0, 2, 10), (1, 2, 10)], ranks
    assert parpy.worker_id() is None
    ids = parpy.Executor(2).map(lambda _: parpy.worker_id(), range(20), chunksize=1)
    assert set(ids) <= {0, 1}, ids
    print("api forms OK", parpy.workers())
