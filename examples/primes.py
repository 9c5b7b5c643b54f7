#!/usr/bin/env parpy
"""Count the primes below N with @parpy.parallel and map.

    parpy examples/primes.py [N]
"""
import sys
import time

import parpy


@parpy.parallel
def count_primes(lo: int, hi: int) -> int:
    """Primes in [lo, hi), by trial division: deliberately pure-Python CPU work."""
    count = 0
    for n in range(max(lo, 2), hi):
        if n % 2 == 0:
            count += n == 2
            continue
        d = 3
        while d * d <= n:
            if n % d == 0:
                break
            d += 2
        else:
            count += 1
    return count


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    step = 50_000
    bounds = [(lo, min(lo + step, n)) for lo in range(0, n, step)]
    t = time.perf_counter()
    total = sum(count_primes.map([lo for lo, _ in bounds], [hi for _, hi in bounds]))
    took = time.perf_counter() - t
    print(f"{total} primes below {n:,} ({parpy.workers()} workers, {took:.2f} s)")


if __name__ == "__main__":
    main()
