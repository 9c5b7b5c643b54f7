# Daemon threads of main blocked in parpy waits when the script ends: in
# Queue.get(), in a get() loop with a timeout, and in result(). The process
# exits cleanly; none of them re-attaches while the interpreter finalizes.
import threading
import time

import parpy

q = parpy.Queue()
ex = parpy.Executor(1)


def getter():
    q.get()


def poller():
    while True:
        try:
            q.get(timeout=0.01)
        except Exception:
            pass


def waiter():
    ex.submit(time.sleep, 0.5).result()
    while True:
        ex.submit(abs, -1).result()


for target in (getter, poller, waiter):
    threading.Thread(target=target, daemon=True).start()
time.sleep(0.2)
print("main done")
