# Large bytes and str sent to workers (lent by main, copied once by each
# worker), and bytearray (copied natively): contents and types arrive intact, a repeated object is fine, main's
# objects are released as soon as the results are in, and memory stays flat.
import hashlib
import sys

import parpy

LEND_MIN = 4096  # src/transfer/value.rs


def digest(v):
    if isinstance(v, str):
        raw = v.encode("utf-8", "surrogatepass")
    else:
        raw = bytes(v)
    return type(v).__name__, len(v), hashlib.sha256(raw).hexdigest()


def digest_all(*args, **kwargs):
    return [digest(a) for a in args], {k: digest(v) for k, v in kwargs.items()}


def nested(box):
    return [digest(x) for x in box["items"]], digest(box["t"][1])


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024


def main():
    big = bytes(range(256)) * (40 * 1024 * 1024 // 256)  # 40 MiB
    text = "parpy " * 2_000_000
    uni = "\u00e9\u20ac\U0001f600" * 100_000
    surrogates = "a\ud800b" * 5000  # no UTF-8: travels the copying way
    edges = [b"", b"x" * (LEND_MIN - 1), b"y" * LEND_MIN, b"z" * (LEND_MIN + 1),
             "s" * (LEND_MIN - 1), "t" * LEND_MIN]
    values = [big, text, uni, surrogates, bytearray(big[:5_000_000]), *edges]
    base = [sys.getrefcount(v) for v in values]
    with parpy.Executor(2) as ex:
        for v in values:
            assert ex.submit(digest, v).result() == digest(v), digest(v)[:2]
        args, kw = ex.submit(digest_all, big, text, b=big, u=uni).result()
        assert args == [digest(big), digest(text)] and kw == {"b": digest(big), "u": digest(uni)}
        box = {"items": [big, uni, big], "t": (1, text)}
        assert ex.submit(nested, box).result() == ([digest(big), digest(uni), digest(big)], digest(text))
        back = ex.submit(bytearray.__add__, values[4], b"!").result()
        assert type(back) is bytearray and back == values[4] + b"!"

        # The same object many times in one map, in several chunk sizes.
        want = digest(big)
        for chunk in (1, 3, 50):
            got = list(ex.map(digest, [big] * 50, chunksize=chunk))
            assert got == [want] * 50, chunk
        got = list(ex.map(digest_all, [big, text] * 10, [big] * 20))
        assert got == [([digest(x), want], {}) for x in [big, text] * 10]
        # Every loan of main's objects is released once its results are in.
        del box, v
        now = [sys.getrefcount(v) for v in values]
        assert now == base, (base, now)

        # Repeated sends of fresh 50 MB objects: memory stays flat.
        for i in range(30):
            d = bytes([i]) + big[1:] + big[:10 * 1024 * 1024]
            assert ex.submit(len, d).result() == len(d)
            del d
            if i == 4:
                after5 = rss_mb()
        grew = rss_mb() - after5
        assert grew < 60, f"RSS grew by {grew} MB over 25 sends of 50 MB"
    print("large values OK")


if __name__ == "__main__":
    main()
