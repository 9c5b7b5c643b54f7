# Stopping work: a running future cannot be cancelled (as in
# concurrent.futures), a map's timeout stops its tasks, and
# terminate_workers() stops running tasks and cancels pending ones.
import time
import parpy


def spin(n):
    t = 0
    for i in range(n):
        t += i
    return t


if __name__ == "__main__":
    ex = parpy.Executor(2)
    assert ex.submit(spin, 10).result() == 45
    f = ex.submit(spin, 10**11)
    deadline = time.monotonic() + 30
    while not f.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    print("a running task is not cancelled:", f.cancel(), f.running(), f.cancelled())
    try:
        list(ex.map(spin, [10**11] * 2, timeout=0.2))
    except TimeoutError:
        print("map timeout: TimeoutError")
    t = time.monotonic()
    assert ex.submit(spin, 10).result() == 45
    print("worker free after the timeout:", time.monotonic() - t < 5)
    f2 = ex.submit(spin, 10**11)
    try:
        f2.result(timeout=0.1)
    except TimeoutError:
        print("result timeout: TimeoutError")
    futs = [ex.submit(spin, 10**11) for _ in range(4)]
    t = time.monotonic()
    ex.terminate_workers()
    print("terminate_workers():", [type(x.exception()).__name__ for x in (f, f2)],
          all(x.cancelled() for x in futs))
    ex.shutdown(wait=True)
    print("fast:", time.monotonic() - t < 5)
