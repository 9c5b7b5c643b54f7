"""Misuses of parpy's API that both type checkers must report
(tests/it/typing.rs): each line whose comment reads "error:" then a mypy
error code and a pyright rule must get exactly that error from mypy --strict
and from pyright strict, and no other line any error."""
import concurrent.futures

import parpy


@parpy.parallel
def square(n: int) -> int:
    return n * n


def per_rank(ctx: parpy.Context) -> int:
    return ctx.rank


def no_context(n: int) -> int:
    return n


def misuse() -> None:
    x: str = square.map([1])[0]  # error: assignment reportAssignmentType
    square.submit("three")  # error: arg-type reportArgumentType
    square("four")  # error: arg-type reportArgumentType
    y: concurrent.futures.Future[str] = square.submit(3)  # error: assignment reportAssignmentType
    with parpy.Executor() as ex:
        ex.submit(square, 1, 2)  # error: call-arg reportCallIssue
        ex.spmd(no_context)  # error: arg-type reportArgumentType
    ranks: list[str] = parpy.spmd(per_rank)  # error: arg-type reportAssignmentType
    q: parpy.Queue[int] = parpy.Queue()
    q.put("five")  # error: arg-type reportArgumentType
    parpy.share(6)  # error: arg-type reportArgumentType
    print(x, y, ranks)
