# A spawn-mode multiprocessing pool: each worker process re-runs sys.executable.
import multiprocessing
import sys


def square(x):
    return x * x


def interpreter(_):
    return sys.executable


if __name__ == "__main__":
    multiprocessing.set_start_method("spawn")
    with multiprocessing.Pool(2) as pool:
        print(pool.map(square, range(10)))
        print(sorted(set(pool.map(interpreter, range(4)))))
