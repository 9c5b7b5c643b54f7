# Pools created and ended repeatedly, with extension modules imported in workers.
import sys
import parpy


def work(x):
    import datetime, decimal, json, re, math  # noqa: E401
    return json.dumps([x, str(decimal.Decimal(x) / 3)[:6], datetime.date(2020, 1, 1 + x % 28).isoformat()])


if __name__ == "__main__":
    cycles = int(sys.argv[1])
    for c in range(cycles):
        with parpy.Executor(2) as ex:
            assert len(list(ex.map(work, range(4)))) == 4
    print("cycles OK", cycles)
