# Two workers print 10,000 lines each at once: every line arrives whole.
import sys
import parpy


def talk(n):
    w = parpy.worker_id()
    for i in range(n):
        print(f"worker-line {w} {i} " + "x" * (i % 50))
        if i % 1000 == 0:
            print(f"err-line {w} {i}", file=sys.stderr)
    print("tail-without-newline", end="")
    return w


if __name__ == "__main__":
    print("before")
    with parpy.Executor(2) as ex:
        ws = ex.spmd(lambda ctx: talk(10000))
    print()
    print("after", ws)
