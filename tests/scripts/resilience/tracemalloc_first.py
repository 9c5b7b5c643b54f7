# tracemalloc tracing when the first pool starts: a clear error where CPython
# would deadlock (3.12-3.14), results where it does not (3.15+). Once tracing
# stops, the pool starts. (tracemalloc is imported in main only: workers
# refuse its _tracemalloc, which would send f to the fallback.)
import parpy


def f(x):
    return x + 1


if __name__ == "__main__":
    import tracemalloc

    tracemalloc.start()
    try:
        print(parpy.parallel(f).map(range(3)))
    except RuntimeError as e:
        print("refused:", str(e).split(":")[1].strip())
    tracemalloc.stop()
    print(parpy.parallel(f).map(range(3)))
