# parpy.Executor as a concurrent.futures drop-in (issue 11, defect 10):
# running(), cancel() of a running task, shutdown(cancel_futures=True),
# a failing initializer, pickling errors, Manager proxies, map(buffersize=).
import concurrent.futures as cf
import multiprocessing
import pickle
import sys
import time

import parpy


def wait_for(event):
    event.wait()
    return "released"


def setitem(d, k, v):
    d[k] = v
    return sorted(d.keys())


def fails():
    raise ValueError("no init")


class BadResult:
    def __reduce__(self):
        raise pickle.PicklingError("refuses pickling")


class ExitAtPickle:
    def __reduce__(self):
        sys.exit(7)


def make(cls_name):
    return globals()[cls_name]()


def until(cond):
    deadline = time.monotonic() + 30
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.005)
    return cond()


if __name__ == "__main__":
    manager = multiprocessing.get_context("spawn").Manager()

    # running(), and cancel() as concurrent.futures: a started task runs on.
    ex = parpy.Executor(1)
    event = manager.Event()
    f1 = ex.submit(wait_for, event)
    f2 = ex.submit(abs, -2)
    f3 = ex.submit(abs, -3)
    print("running:", until(f1.running), f2.running())
    print("cancel running:", f1.cancel(), f1.cancelled(), f1.running())
    print("cancel pending:", f2.cancel(), f2.cancelled(), f2.running())
    ex.shutdown(wait=False, cancel_futures=True)
    print("shutdown(cancel_futures=True):", f3.cancelled(), f1.cancelled(), f1.running())
    event.set()
    print("the running one finishes:", f1.result(timeout=30), f1.running(), f1.done())
    ex.shutdown()

    # Manager proxies work in tasks (workers share main's authkey).
    with parpy.Executor(2) as ex:
        d = manager.dict()
        print("manager dict:", ex.submit(setitem, d, "a", 1).result(), dict(d))

    # A failing initializer breaks the executor with a BrokenExecutor.
    ex = parpy.Executor(2, initializer=fails)
    try:
        ex.submit(abs, 1).result(timeout=30)
    except cf.BrokenExecutor as e:
        print("initializer:", type(e).__name__, type(e) is parpy.BrokenWorker)
    until(lambda: ex._broken)
    try:
        ex.submit(abs, 1)
    except cf.BrokenExecutor as e:
        print("submit to a broken executor:", type(e).__name__)
    ex.shutdown()

    with parpy.Executor(1) as ex:
        # A result that cannot be pickled keeps its exception's type.
        e = ex.submit(make, "BadResult").exception()
        print("result pickling error:", type(e).__name__, e)
        try:
            ex.submit(make, "ExitAtPickle").result()
        except SystemExit as e:
            print("SystemExit while pickling a result:", e.code)
        # An argument that cannot be pickled: TypeError from submit(), naming it.
        try:
            ex.submit(id, BadResult())
        except TypeError as e:
            print("argument:", str(e)[:46], type(e.__cause__).__name__)
        try:
            ex.submit(id, ExitAtPickle())
        except SystemExit as e:
            print("SystemExit while pickling an argument:", e.code)
        # map(buffersize=): reads the input only that far ahead.
        ints = iter(range(10))
        res = ex.map(str, ints, buffersize=2)
        print("buffersize:", next(res), next(ints))
        for bad in ("2", 0):
            try:
                ex.map(str, range(3), buffersize=bad)
            except (TypeError, ValueError) as e:
                print("buffersize", repr(bad), type(e).__name__, e)
        print("map without iterables:", list(ex.map(str)))
    manager.shutdown()
