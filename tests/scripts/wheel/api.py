# The API beyond @parallel, the same in a plain python as under the launcher.
import parpy


def rank_sum(ctx, blob, q):
    q.put(ctx.rank)
    return ctx.rank, ctx.size, bytes(memoryview(blob)[:3]), len(blob)


def drain(q, n):
    return sorted(q.get(timeout=30) for _ in range(n))


if __name__ == "__main__":
    blob = parpy.share(b"abc" * 1000)
    q = parpy.Queue()
    print(parpy.spmd(rank_sum, blob, q))
    print(drain(q, parpy.workers()))
    with parpy.Executor(max_workers=2) as ex:
        print(sorted(ex.map(len, ["a", "bb", "ccc"])), ex.submit(pow, 2, 10).result())
        print(ex.spmd(lambda ctx: ctx.rank))
    print(parpy.worker_id(), parpy.workers(), type(blob).__name__)
