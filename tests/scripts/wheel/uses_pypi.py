# A package from PyPI (more-itertools, pure Python), installed in the venv,
# used by the main interpreter and inside workers.
import sys

import more_itertools as mi

import parpy


@parpy.parallel
def chunk_sum(chunk):
    import more_itertools
    return sum(chunk), more_itertools.__file__.startswith(sys.prefix)


if __name__ == "__main__":
    out = chunk_sum.map(list(mi.chunked(range(100), 10)))
    print(out[:2], all(inside for _, inside in out), sum(s for s, _ in out))
    print(len(list(mi.distinct_permutations("aab"))))
