# datetime values made in a worker equal (and are of the same type as) the
# ones made in main, both ways. On 3.12 workers run the pure-Python
# _pydatetime, because _datetime refuses own-GIL interpreters there.
import datetime as dt
import parpy

UTC2 = dt.timezone(dt.timedelta(hours=2), "X")


def made_here():
    values = [
        dt.date(2024, 1, 2),
        dt.datetime(2024, 1, 2, 3, 4, 5, 678),
        dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC2),
        dt.time(12, 30, 1),
        dt.timedelta(days=3, seconds=7),
        dt.timezone.utc,
        UTC2,
    ]
    try:
        from zoneinfo import ZoneInfo
        values.append(dt.datetime(2024, 7, 1, 12, tzinfo=ZoneInfo("Europe/Paris")))
    except Exception:  # no time zone database on this machine
        pass
    return values


def same_as_mine(received):
    """Worker side: what main sent equals what this worker makes."""
    mine = made_here()
    return [r == m and type(r).__name__ == type(m).__name__ for r, m in zip(received, mine)]


if __name__ == "__main__":
    mine = made_here()
    with parpy.Executor(2) as ex:
        theirs = ex.submit(made_here).result()
        back = ex.submit(same_as_mine, mine).result()
    assert len(theirs) == len(mine), (theirs, mine)
    for t, m in zip(theirs, mine):
        assert type(t) is type(m), (type(t), type(m))
        assert t == m and hash(t) == hash(m), (t, m)
        assert repr(t) == repr(m), (t, m)
    assert all(back), back
    if len(mine) > 8:
        assert theirs[8].tzinfo is mine[8].tzinfo  # ZoneInfo's cache: one object per key
    print("datetimes OK", len(mine))
