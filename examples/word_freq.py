#!/usr/bin/env parpy
"""Word frequencies over a folder of text files with parpy.Executor.

    parpy examples/word_freq.py [FOLDER] [TOP]

With no folder, it counts the words of Python's own standard library
(its .py files), which every Python installation has.
"""
import collections
import os
import re
import sys
from collections.abc import Iterator

import parpy

WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")


def count_file(path: str) -> collections.Counter[str]:
    """Word counts of one file (lower-cased)."""
    counts: collections.Counter[str] = collections.Counter()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            counts.update(w.lower() for w in WORD.findall(line))
    return counts


def text_files(folder: str, suffixes: tuple[str, ...]) -> Iterator[str]:
    for root, _dirs, files in os.walk(folder):
        for name in files:
            if name.endswith(suffixes):
                yield os.path.join(root, name)


def main() -> None:
    suffixes: tuple[str, ...]
    if len(sys.argv) > 1:
        folder, suffixes = sys.argv[1], (".txt", ".md", ".rst", ".py")
    else:
        folder, suffixes = os.path.dirname(os.__file__), (".py",)
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    files = sorted(text_files(folder, suffixes))
    total: collections.Counter[str] = collections.Counter()
    with parpy.Executor() as ex:
        for counts in ex.map(count_file, files, chunksize=8):
            total.update(counts)
    print(f"{len(files)} files, {sum(total.values()):,} words, {len(total):,} distinct")
    for word, n in total.most_common(top):
        print(f"{n:>10,}  {word}")


if __name__ == "__main__":
    main()
