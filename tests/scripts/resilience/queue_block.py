# Tasks blocked inside parpy.Queue.get()/put() can be stopped: by cancel(),
# by a map timeout, by shutdown(cancel_futures=True), and by Ctrl-C; and a
# script that ends after cancelling such a task exits.
import sys
import time

import parpy


def wait_get(q):
    return q.get()


def wait_put(q):
    q.put(1)
    q.put(2)  # maxsize=1: waits for room forever
    return "put"


if __name__ == "__main__":
    ex = parpy.Executor(2)
    q = parpy.Queue()
    full = parpy.Queue(maxsize=1)
    if sys.argv[1:] == ["ctrl_c"]:
        f = ex.submit(wait_get, q)
        print("ready", flush=True)
        f.result()
        sys.exit(0)
    f = ex.submit(wait_get, q)
    g = ex.submit(wait_put, full)
    time.sleep(0.3)
    t = time.monotonic()
    print("cancel get:", f.cancel(), "cancel put:", g.cancel())
    # Both workers are free again at once (no replacement needed).
    print("workers answer:", sorted(ex.map(abs, [-1, -2, -3, -4], chunksize=1)))
    try:
        list(ex.map(wait_get, [q, q], timeout=0.2))
    except TimeoutError:
        print("map timeout: TimeoutError")
    print("workers answer:", sorted(ex.map(abs, [-5, -6], chunksize=1)))
    h = ex.submit(wait_get, q)
    time.sleep(0.2)
    ex.shutdown(wait=True, cancel_futures=True)
    print("all stopped fast:", time.monotonic() - t < 3)
    # The script ends with a cancelled task that waited in get().
    ex2 = parpy.Executor(1)
    k = ex2.submit(wait_get, q)
    time.sleep(0.2)
    print("cancel at the end:", k.cancel())
