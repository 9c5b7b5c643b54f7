# parpy.share(): large read-only data reaches every worker without a copy.
import parpy


def describe(s):
    m = memoryview(s)
    return type(s).__name__, len(s), m.readonly, bytes(m[:4]), bytes(m[-2:])


def checksum(s, start, stop):
    return sum(memoryview(s)[start:stop])


if __name__ == "__main__":
    data = bytes(range(256)) * 40_000  # 10 MB
    sh = parpy.share(data)
    assert len(sh) == len(data) and bytes(sh) == data
    with parpy.Executor(2) as ex:
        assert ex.submit(describe, sh).result() == ("SharedBytes", len(data), True, b"\x00\x01\x02\x03", b"\xfe\xff")
        parts = [(i, i + 1_000_000) for i in range(0, len(data), 1_000_000)]
        assert sum(ex.map(checksum, [sh] * len(parts), *zip(*parts))) == sum(data)
        # Inside containers, and back again.
        back = ex.submit(lambda d: d["blob"], {"blob": sh}).result()
        assert type(back) is parpy.SharedBytes and bytes(memoryview(back)[:2]) == b"\x00\x01"
    view = memoryview(sh)
    del sh, back
    assert view[:3].tobytes() == b"\x00\x01\x02"  # the view keeps the data alive
    try:
        parpy.SharedBytes()
    except TypeError:
        pass
    else:
        raise AssertionError("SharedBytes() should not be constructible")
    print("shared OK")
