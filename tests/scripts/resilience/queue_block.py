# Tasks blocked inside parpy.Queue.get()/put() can be stopped: by a map
# timeout, by terminate_workers(), and by Ctrl-C; and a script that ends
# after terminate_workers() with such a task exits. (cancel() of a running
# task returns False, as in concurrent.futures: the task runs on.)
import sys
import time

import parpy


def wait_get(q):
    return q.get()


def wait_put(q):
    q.put(1)
    q.put(2)  # maxsize=1: waits for room forever
    return "put"


def until(cond):
    deadline = time.monotonic() + 30
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.005)


if __name__ == "__main__":
    ex = parpy.Executor(2)
    q = parpy.Queue()
    full = parpy.Queue(maxsize=1)
    if sys.argv[1:] == ["ctrl_c"]:
        f = ex.submit(wait_get, q)
        print("ready", flush=True)
        f.result()
        sys.exit(0)
    # Every worker decodes a Queue (a pickle) once first: the first one
    # imports pickle there, and on a slow (debug) build the 0.2 s timeout
    # below could otherwise interrupt that import (a leaked .pyc file).
    ex.spmd(lambda ctx, q: None, q)
    t = time.monotonic()
    try:
        list(ex.map(wait_get, [q, q], timeout=0.2))
    except TimeoutError:
        print("map timeout (get): TimeoutError")
    print("workers answer:", sorted(ex.map(abs, [-1, -2, -3, -4], chunksize=1)))
    try:
        list(ex.map(wait_put, [full, full], timeout=0.2))
    except TimeoutError:
        print("map timeout (put): TimeoutError")
    print("workers answer:", sorted(ex.map(abs, [-5, -6], chunksize=1)))
    f = ex.submit(wait_get, q)
    g = ex.submit(wait_put, parpy.Queue(maxsize=1))
    until(lambda: f.running() and g.running())
    print("cancel running get:", f.cancel(), "put:", g.cancel())
    ex.terminate_workers()
    print("terminate_workers:", type(f.exception(timeout=5)).__name__, type(g.exception(timeout=5)).__name__)
    ex.shutdown(wait=True)
    print("all stopped fast:", time.monotonic() - t < 3)
    # The script ends after stopping a task that waited in get().
    ex2 = parpy.Executor(1)
    k = ex2.submit(wait_get, q)
    until(k.running)
    ex2.terminate_workers()
    print("terminated at the end")
