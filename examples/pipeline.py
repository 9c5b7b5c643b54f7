#!/usr/bin/env parpy
"""A producer/consumer pipeline with parpy.Queue.

Workers take numbers from a task queue, factorise them, and put the results on a
result queue that the main interpreter consumes as they arrive.

    parpy examples/pipeline.py [COUNT]
"""
import sys

import parpy


def factorise(n: int) -> list[int]:
    factors: list[int] = []
    d = 2
    while d * d <= n:
        while n % d == 0:
            factors.append(d)
            n //= d
        d += 1
    if n > 1:
        factors.append(n)
    return factors


def consumer(
    ctx: parpy.Context,
    tasks: parpy.Queue[int | None],
    results: parpy.Queue[tuple[int, list[int]]],
) -> int:
    """Runs on every worker: take numbers until a None arrives."""
    done = 0
    while (n := tasks.get()) is not None:
        results.put((n, factorise(n)))
        done += 1
    return done


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    tasks: parpy.Queue[int | None] = parpy.Queue()
    results: parpy.Queue[tuple[int, list[int]]] = parpy.Queue()
    numbers = [10**9 + 7 * i for i in range(count)]
    for n in numbers:
        tasks.put(n)
    for _ in range(parpy.workers()):
        tasks.put(None)  # one stop sign per worker
    with parpy.Executor() as ex:
        done = ex.spmd(consumer, tasks, results)
    got = dict(results.get() for _ in range(count))
    assert sorted(got) == numbers
    primes = sum(len(f) == 1 for f in got.values())
    print(f"factorised {count} numbers ({primes} primes); per worker: {done}")


if __name__ == "__main__":
    main()
