# tqdm over parpy's iterators: the bars move as results arrive.
import sys
import time
from concurrent.futures import as_completed

import parpy
from tqdm import tqdm


@parpy.parallel
def work(i):
    time.sleep(0.03)
    return i


if __name__ == "__main__":
    n = 16
    got = sum(tqdm(work.map_unordered(range(n), chunksize=1), total=n, mininterval=0,
                   miniters=1, file=sys.stderr, desc="unordered"))
    futs = [work.submit(i) for i in range(n)]
    done = sum(f.result() for f in tqdm(as_completed(futs), total=n, mininterval=0,
                                        miniters=1, file=sys.stderr, desc="completed"))
    print(got, done)
