# A task interrupted while CPython runs a __del__ (or a weakref callback):
# the KeyboardInterrupt cannot propagate from there, so CPython reports it as
# "Exception ignored" and the task goes on. parpy must still stop the task,
# and print nothing.
import parpy


class Churn:
    def __del__(self):
        t = 0
        for i in range(5000):
            t += i


def task(i, q):
    if i == 0:
        q.get()  # the other task is churning
        raise ValueError("stop the map")
    q.put("churning")
    while True:
        x = Churn()  # noqa: F841  (each assignment runs the last one's __del__)


class BadDel:
    def __del__(self):
        raise ValueError("from __del__")


def drops_bad_del():
    BadDel()
    return "dropped"


if __name__ == "__main__":
    q = parpy.Queue()
    ex = parpy.Executor(2)
    try:
        list(ex.map(task, [0, 1], [q, q], chunksize=1))
    except ValueError as e:
        print("map ended:", e)
    # The churning task was interrupted: both workers serve new work.
    print("after:", sorted(ex.map(abs, [-1, -2, -3, -4], chunksize=1)))
    # Other exceptions there are still reported, as python does.
    print(ex.submit(drops_bad_del).result())
    ex.shutdown()
    print("done")
