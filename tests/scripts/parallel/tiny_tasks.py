# 100,000 tiny tasks through map and 2,000 through submit.
import parpy


@parpy.parallel
def inc(x):
    return x + 1


if __name__ == "__main__":
    n = 100_000
    assert inc.map(range(n)) == list(range(1, n + 1))
    futs = [inc.submit(i) for i in range(2000)]
    assert [f.result() for f in futs] == list(range(1, 2001))
    print("tiny OK")
