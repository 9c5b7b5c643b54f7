# Property test of the value codec (src/transfer): random nested values go
# main -> worker -> main, and each side checks what it got against the same
# value generated on its own from the same seed, with type identity at every
# level (bool is not int, a tuple is not a list, an int subclass stays one)
# and float sign and nan respected.
#
# A fixed-seed generator rather than hypothesis: every case is replayable in
# a worker from its seed alone, so both directions are checked against a
# value the receiving interpreter built itself; and the run is the same on
# every machine, with no extra dependency for CI.
import collections
import datetime
import decimal
import enum
import fractions
import math
import random
import sys
import parpy


class IntSub(int):
    pass


class StrSub(str):
    pass


class Color(enum.IntEnum):
    RED = 1
    BLUE = 2


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return type(other) is Point and same(self.x, other.x) and same(self.y, other.y)

    __hash__ = None


Pair = collections.namedtuple("Pair", "a b")

EDGE_INTS = [0, 1, -1, 2**31, -2**31, 2**63 - 1, -2**63, 2**63, -2**63 - 1, 2**64, 10**40, -10**100]
EDGE_FLOATS = [0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, -5e-324, sys.float_info.max, 1e-300, 0.1]
EDGE_STRS = ["", "\0", "a\0b", "é", "日本", "\U0001f600", "\ud800", "\udfff", "x\udc80y",
             "\ud83d\ude00", "\ud800\udc00", "\r\n", "\x7f\x80\xff"]
TZ = datetime.timezone(datetime.timedelta(hours=-3, minutes=-30))


def rand_str(rng):
    n = rng.choice([0, 1, 3, 10, 40])
    parts = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.5:
            parts.append(chr(rng.randrange(32, 127)))
        elif kind < 0.7:
            parts.append(chr(rng.randrange(0x80, 0xD800)))
        elif kind < 0.85:
            parts.append(chr(rng.randrange(0x10000, 0x110000)))
        else:
            parts.append(chr(rng.randrange(0xD800, 0xE000)))  # lone surrogates
    return "".join(parts)


def leaf(rng):
    k = rng.randrange(24)
    if k == 0:
        return None
    if k == 1:
        return rng.random() < 0.5
    if k == 2:
        return rng.choice(EDGE_INTS)
    if k == 3:
        return rng.randrange(-10**6, 10**6)
    if k == 4:
        return rng.getrandbits(rng.choice([64, 65, 200, 1000])) * rng.choice([1, -1])
    if k == 5:
        return rng.choice(EDGE_FLOATS)
    if k == 6:
        return rng.uniform(-1e6, 1e6) * 10.0 ** rng.randrange(-300, 300)
    if k == 7:
        return rng.choice(EDGE_STRS)
    if k == 8:
        return rand_str(rng)
    if k == 9:
        return rng.randbytes(rng.choice([0, 1, 7, 100]))
    if k == 10:
        return bytearray(rng.randbytes(rng.choice([0, 5, 60])))
    if k == 11:
        return complex(rng.choice(EDGE_FLOATS), rng.uniform(-5, 5))
    if k == 12:
        return decimal.Decimal(rng.randrange(-10**30, 10**30)).scaleb(rng.randrange(-40, 40))
    if k == 13:
        return fractions.Fraction(rng.randrange(-10**20, 10**20), rng.randrange(1, 10**12))
    if k == 14:
        return datetime.datetime(rng.randrange(1, 10000), rng.randrange(1, 13), rng.randrange(1, 29),
                                 rng.randrange(24), rng.randrange(60), rng.randrange(60),
                                 rng.randrange(10**6), tzinfo=rng.choice([None, datetime.timezone.utc, TZ]))
    if k == 15:
        return datetime.date(rng.randrange(1, 10000), rng.randrange(1, 13), rng.randrange(1, 29))
    if k == 16:
        return datetime.timedelta(microseconds=rng.randrange(-10**15, 10**15))
    if k == 17:
        return IntSub(rng.choice(EDGE_INTS))
    if k == 18:
        return StrSub(rng.choice(EDGE_STRS))
    if k == 19:
        return rng.choice(list(Color))
    if k == 20:
        return range(rng.randrange(-5, 5), rng.randrange(-5, 50), rng.choice([1, 2, -1]))
    if k == 21:
        return rng.choice([int, str, Ellipsis, type(None)])
    if k == 22:
        return Point(rng.randrange(100), rng.choice(EDGE_FLOATS[:2] + EDGE_STRS[:4]))
    # Large enough to be lent when it is an argument (LEND_MIN is 4 KiB).
    return rng.choice([b"L" * 5000 + rng.randbytes(10), "\u00e9" * 3000 + rand_str(rng)])


def key(rng):
    """A hashable value (no nan: equal keys must stay equal)."""
    k = rng.randrange(8)
    if k == 0:
        return rng.choice(EDGE_INTS)
    if k == 1:
        return rand_str(rng)
    if k == 2:
        return rng.randbytes(3)
    if k == 3:
        return (rng.randrange(9), rand_str(rng))
    if k == 4:
        return frozenset(rng.randrange(20) for _ in range(rng.randrange(4)))
    if k == 5:
        return rng.choice([None, True, False, 0.5, -0.0])
    if k == 6:
        return decimal.Decimal(rng.randrange(1000)) / 8
    return IntSub(rng.randrange(100))


def value(rng, depth=0):
    if depth > 4 or rng.random() < 0.35:
        return leaf(rng)
    n = rng.choice([0, 1, 2, 5])
    k = rng.randrange(12)
    if k == 0:
        return [value(rng, depth + 1) for _ in range(n)]
    if k == 1:
        return tuple(value(rng, depth + 1) for _ in range(n))
    if k == 2:
        return {key(rng): value(rng, depth + 1) for _ in range(n)}
    if k == 3:
        return {key(rng) for _ in range(n)}
    if k == 4:
        return frozenset(key(rng) for _ in range(n))
    if k == 5:
        return collections.OrderedDict((key(rng), value(rng, depth + 1)) for _ in range(n))
    if k == 6:
        return collections.defaultdict(list, {key(rng): [value(rng, depth + 1)] for _ in range(n)})
    if k == 7:
        return collections.Counter({rand_str(rng): rng.randrange(-3, 9) for _ in range(n)})
    if k == 8:
        return collections.deque(value(rng, depth + 1) for _ in range(n))
    if k == 9:
        return Pair(value(rng, depth + 1), value(rng, depth + 1))
    if k == 10:
        # Deeper than the codec nests natively (200): pickled from some depth on.
        deep = value(rng, 5)
        for i in range(rng.choice([150, 199, 200, 201, 260])):
            deep = [deep] if i % 3 else (deep,) if i % 2 else {"k": deep}
        return deep
    return [value(rng, depth + 1) for _ in range(n)]


def same(a, b):
    """Equal, with the same type at every level; nan equals nan, -0.0 is not 0.0."""
    if type(a) is not type(b):
        return False
    t = type(a)
    if t is float:
        return (a != a and b != b) or (a == b and math.copysign(1.0, a) == math.copysign(1.0, b))
    if t is complex:
        return same(a.real, b.real) and same(a.imag, b.imag)
    if t is list or t is tuple or t is collections.deque or t is Pair:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if t is dict or t is collections.OrderedDict or t is collections.defaultdict:
        if t is collections.defaultdict and a.default_factory is not b.default_factory:
            return False
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb) for (ka, va), (kb, vb) in zip(a.items(), b.items()))
    if t is set or t is frozenset:
        return len(a) == len(b) and all(any(same(x, y) for y in b) for x in a)
    if t is decimal.Decimal:
        return a == b and str(a) == str(b)
    if t is datetime.datetime:
        return a == b and a.tzinfo == b.tzinfo
    return a == b


def check(seed, got):
    """In a worker: ``got`` must be the value of ``seed``; returns that value
    made here, for main to check the way back."""
    want = value(random.Random(seed))
    if not same(got, want):
        raise AssertionError(f"main -> worker, seed {seed}: sent {want!r}, got {got!r}")
    return value(random.Random(seed))


def check_kw(seed, *, got):
    return check(seed, got)


if __name__ == "__main__":
    cases = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    seeds = range(1000, 1000 + cases)
    with parpy.Executor(2) as ex:
        values = [value(random.Random(s)) for s in seeds]
        back = list(ex.map(check, seeds, values, chunksize=40))
        futs = [ex.submit(check, s, values[i]) for i, s in enumerate(seeds[:300])]
        futs += [ex.submit(check_kw, s, got=values[i]) for i, s in enumerate(seeds[300:600], 300)]
        back_submit = [f.result() for f in futs]
    for s, got in zip(seeds, back):
        want = value(random.Random(s))
        assert same(got, want), f"worker -> main, seed {s}: sent {want!r}, got {got!r}"
    for s, got in zip(seeds, back_submit):
        assert same(got, value(random.Random(s))), f"worker -> main (submit), seed {s}"
    # The checker itself tells types apart.
    assert not same(1, True) and not same([1], (1,)) and not same(0.0, -0.0) and same(math.nan, math.nan)
    assert not same(IntSub(1), 1) and not same({1: 2}, collections.OrderedDict({1: 2}))
    print("codec round trip OK", cases)
