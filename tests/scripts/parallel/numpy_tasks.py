# numpy cannot load in a sub-interpreter; parpy's fallback runs these tasks
# elsewhere with identical results.
import numpy as np

import parpy


@parpy.parallel
def stats(seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(10_000)
    return float(a.mean()), float(a.std()), int(np.argmax(a))


if __name__ == "__main__":
    seq = [stats(i) for i in range(12)]
    assert stats.map(range(12)) == seq
    assert stats.map(range(12), chunksize=1) == seq
    assert sorted(stats.map_unordered(range(12))) == sorted(seq)
    assert stats.submit(5).result() == seq[5]
    with parpy.Executor(2) as ex:
        assert ex.submit(lambda n: int(np.arange(n).sum()), 10).result() == 45
    print("numpy OK", len(seq))
