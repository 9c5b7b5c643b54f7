# Futures, map timeouts and shutdown stop tasks that are already running.
import time
import parpy


def spin(n):
    t = 0
    for i in range(n):
        t += i
    return t


def slow_sleep(s):
    time.sleep(s)
    return s


if __name__ == "__main__":
    ex = parpy.Executor(2)
    assert ex.submit(spin, 10).result() == 45
    f = ex.submit(spin, 10**11)
    time.sleep(0.2)
    t = time.monotonic()
    assert f.cancel() and f.cancelled()
    # The worker is free again at once: both workers answer quickly.
    assert list(ex.map(spin, [10, 10], chunksize=1)) == [45, 45]
    print("cancel stops a running task:", time.monotonic() - t < 5)
    try:
        list(ex.map(spin, [10**11] * 2, timeout=0.2))
    except TimeoutError:
        print("map timeout: TimeoutError")
    t = time.monotonic()
    assert ex.submit(spin, 10).result() == 45
    print("workers free after the timeout:", time.monotonic() - t < 5)
    f = ex.submit(spin, 10**11)
    try:
        f.result(timeout=0.1)
    except TimeoutError:
        print("result timeout: TimeoutError")
    futs = [ex.submit(spin, 10**11) for _ in range(4)]
    time.sleep(0.2)
    t = time.monotonic()
    ex.shutdown(wait=True, cancel_futures=True)
    print("shutdown(cancel_futures=True) fast:", time.monotonic() - t < 5, all(x.cancelled() for x in futs))
