#!/usr/bin/env parpy
"""Estimate pi with the __parallel__ convention: every worker throws darts.

    parpy examples/monte_carlo_pi.py [darts per worker]
"""
import random
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from parpy import Context

DARTS = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000


def __parallel__(ctx: "Context") -> int:
    # Runs on every worker at once, after this script's body ran in main.
    rng = random.Random(1234 + ctx.rank)
    hits = 0
    for _ in range(DARTS):
        x, y = rng.random(), rng.random()
        hits += x * x + y * y <= 1.0
    return hits


def __gather__(results: list[int]) -> None:
    # Runs in the main interpreter with the results in rank order.
    total = DARTS * len(results)
    print(f"pi ~ {4 * sum(results) / total:.5f} from {total:,} darts on {len(results)} workers")
