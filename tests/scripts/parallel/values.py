# Values of every kind travel both ways unchanged.
import parpy
from fractions import Fraction


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return type(other) is Point and (self.x, self.y) == (other.x, other.y)

    def __repr__(self):
        return f"Point({self.x}, {self.y})"


def echo(v):
    return v


def make_point(x):
    return Point(x, -x)


def kinds(v):
    return type(v).__name__


VALUES = [
    None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**200, -(3**100), 1.5, float("inf"), -0.0,
    "", "héllo ✓ 日本", "\ud800 lone surrogate", b"", b"\x00\xffbytes", [], [1, [2, [3]]], (), (1, "a", (2.5,)),
    {}, {"a": 1, (1, 2): [3], 5: {"n": None}}, set(), {1, 2, 3}, frozenset({"x"}), Point(1, 2),
    [Point(3, 4), {"p": Point(5, 6)}], Fraction(1, 3), range(5), bytearray(b"ab"), 1 + 2j,
]

if __name__ == "__main__":
    with parpy.Executor(2) as ex:
        back = list(ex.map(echo, VALUES))
        assert back == VALUES, (back, VALUES)
        assert [type(v) for v in back] == [type(v) for v in VALUES]
        assert list(ex.map(kinds, VALUES)) == [type(v).__name__ for v in VALUES]
        assert ex.submit(make_point, 7).result() == Point(7, -7)
        deep = []
        for _ in range(1000):
            deep = [deep]
        assert ex.submit(echo, deep).result() == deep
        nan = ex.submit(echo, float("nan")).result()
        assert nan != nan
    print("values OK", len(VALUES))
