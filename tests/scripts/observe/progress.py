# Maps with progress bars; tasks print now and then. argv[1]: which map.
import sys
import time

import parpy


@parpy.parallel
def work(i):
    time.sleep(0.05)  # long enough for the bar to draw frames between 0 and the end
    if i % 5 == 0:
        print(f"task {i} says hi")
    return i


if __name__ == "__main__":
    how = sys.argv[1]
    if how == "kw":
        print(sum(work.map(range(40), chunksize=1, progress=True)))
    elif how == "default":  # --progress or PARPY_PROGRESS decides
        print(sum(work.map(range(40), chunksize=1)))
    elif how == "off":  # progress=False wins over --progress
        print(sum(work.map(range(40), chunksize=1, progress=False)))
    elif how == "unordered":
        print(sum(work.map_unordered(range(40), chunksize=1, progress=True)))
    elif how == "executor":
        with parpy.Executor(2) as ex:
            print(sum(ex.map(work, range(40), progress=True)))
            print(sum(ex.map(work, iter(range(10)), buffersize=2, progress=True)))
