# atexit handlers registered before the first pool run after parpy's own
# exit hook (last in, first out), in the thread that finalizes: their waits
# in parpy (Queue.get, Future.result) go on and return, in every way in.
import atexit

import parpy

q = parpy.Queue()


def drain():
    print("drained", q.get(timeout=5), fut.result(timeout=5))


atexit.register(drain)
ex = parpy.Executor(1)
fut = ex.submit(abs, -5)
print(ex.submit(abs, -3).result())
q.put(7)
