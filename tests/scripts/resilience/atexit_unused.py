# atexit handlers that submit to an executor never used before (made in the
# body, or in the handler): refused as concurrent.futures refuses, never an
# abort, and no pool is left running past parpy's own exit hook.
import atexit

import parpy

ex = parpy.Executor(1)


def unused():
    try:
        print(ex.submit(abs, -1).result())
    except RuntimeError as e:
        print("unused executor:", e)


def new():
    try:
        print(parpy.Executor(1).submit(abs, -1).result())
    except RuntimeError as e:
        print("new executor:", e)


atexit.register(new)
atexit.register(unused)
print("main done")
