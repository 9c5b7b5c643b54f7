# Threads left running by a task, parallel calls from atexit handlers, and
# atexit handlers registered by the script (which must not run in workers).
import atexit
import threading
import time

import parpy


def too_late():
    try:
        parpy.Executor(1).submit(abs, -1).result()
    except RuntimeError as e:
        print("atexit before the pool:", e)


atexit.register(too_late)


def leaves_thread():
    def background():
        time.sleep(0.3)
        print("background thread done")

    threading.Thread(target=background).start()
    return "task done"


if __name__ == "__main__":
    ex = parpy.Executor(1)
    print(ex.submit(leaves_thread).result())
    atexit.register(lambda: print("atexit after the pool:", ex.submit(abs, -2).result()))
