"""parpy's API as a type checker sees it (tests/it/typing.rs): every
``assert_type`` must hold under mypy --strict and pyright strict, and the
script also runs under parpy, so the types claimed are the ones at run time."""
# parpy.Queue and ParallelFunction are generic at run time too: the
# annotations here are evaluated (no `from __future__ import annotations`).

import concurrent.futures
import queue
from collections.abc import Callable, Iterator
from typing import assert_type

import parpy


@parpy.parallel
def score(item: int, weight: int = 1) -> int:
    return sum(i * i for i in range(item)) * weight


def label(n: int, prefix: str = "#") -> str:
    return f"{prefix}{n}"


def rank_times(ctx: parpy.Context, factor: int) -> tuple[int, int]:
    return ctx.rank, ctx.size * factor


def init(tag: str) -> None:
    pass


def main() -> None:
    as_pf: parpy.ParallelFunction[[int, int], int] = score
    plain: Callable[[int], int] = score.__wrapped__
    assert plain(2) == as_pf(2, 1) == 1
    here: int = score(3)
    assert_type(score(3, weight=2), int)

    fut: concurrent.futures.Future[int] = score.submit(3, weight=2)
    assert_type(fut, concurrent.futures.Future[int])
    assert isinstance(fut, concurrent.futures.Future)
    assert fut.result(timeout=60) == 10

    out: list[int] = score.map(range(6))
    assert_type(score.map(range(6), [2] * 6, chunksize=2, timeout=60, progress=False), list[int])
    unordered: Iterator[int] = score.map_unordered(range(4), timeout=60)
    assert sorted(unordered) == [0, 0, 1, 5]

    with parpy.Executor(max_workers=2) as ex:
        assert_type(ex, parpy.Executor)
        named = ex.submit(label, 7, prefix="n")
        assert_type(named, concurrent.futures.Future[str])
        mapped: Iterator[str] = ex.map(label, range(3), chunksize=None, buffersize=2)
        assert list(mapped) == ["#0", "#1", "#2"]
        ranks = ex.spmd(rank_times, 10)
        assert_type(ranks, list[tuple[int, int]])
        assert ex.max_workers == 2
    assert named.result() == "n7"
    assert ranks == [(0, 20), (1, 20)]

    with parpy.Executor(1, None, init, ("x",)) as ex2:
        assert ex2.submit(score, 2).result() == 1
    cf_ex: concurrent.futures.Executor = parpy.Executor(initializer=init, initargs=("y",))
    cf_ex.shutdown(wait=True, cancel_futures=False)

    every: list[tuple[int, int]] = parpy.spmd(rank_times, 1)

    q: parpy.Queue[int] = parpy.Queue(maxsize=4)
    q.put(5)
    q.put_nowait(6)
    assert_type(q.get(timeout=1.0), int)
    got: int = q.get_nowait()
    try:
        q.get(block=False)
    except queue.Empty:
        pass

    shared = parpy.share(b"abc")
    assert_type(shared, parpy.SharedBytes)
    view = memoryview(shared)
    assert bytes(shared) == b"abc" and len(shared) == 3 and view[0] == ord("a")
    parpy.share(bytearray(b"xy"))
    parpy.share(memoryview(b"xy"))

    wid: int | None = parpy.worker_id()
    n: int = parpy.workers()
    assert issubclass(parpy.BrokenWorker, concurrent.futures.BrokenExecutor)
    cause = parpy.RemoteTraceback("Traceback ...")
    assert_type(cause.tb, str)
    assert isinstance(cause, Exception) and str(cause) == cause.tb
    print(here, out, every, got, wid, n > 0, q.empty(), q.qsize())


if __name__ == "__main__":
    main()
