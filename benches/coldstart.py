"""A script that makes one parallel call, for the cold-start benchmark of
benches/run.py (not run by hand):

    INTERPRETER benches/coldstart.py PEER WORKERS

Prints ``FIRST <time.monotonic()>`` as soon as the first parallel result is
back; run.py started its clock just before starting this process.
"""

import sys
import time

import kernels


def main():
    peer, workers = sys.argv[1], int(sys.argv[2])
    if peer == "sequential":
        got = kernels.tiny(1)
    elif peer == "parpy":
        import parpy
        got = parpy.parallel(kernels.tiny).submit(1).result()
    else:
        import concurrent.futures as cf
        if peer in ("threads", "free-threaded"):
            pool = cf.ThreadPoolExecutor(workers)
        elif peer == "interpreters":
            cls = getattr(cf, "InterpreterPoolExecutor", None)
            if cls is None:
                from interpreters_backport.concurrent.futures import InterpreterPoolExecutor as cls
            pool = cls(workers)
        elif peer == "subinterpreters":
            from harness import SubinterpreterPool
            pool = SubinterpreterPool(workers)
        else:
            import multiprocessing as mp
            pool = cf.ProcessPoolExecutor(workers, mp_context=mp.get_context(peer.split("-")[1]))
        with pool:
            got = pool.submit(kernels.tiny, 1).result()
            print(f"FIRST {time.monotonic()!r}", flush=True)
    if peer in ("sequential", "parpy"):
        print(f"FIRST {time.monotonic()!r}", flush=True)
    if got != 2:
        sys.exit("wrong result")


if __name__ == "__main__":
    main()
