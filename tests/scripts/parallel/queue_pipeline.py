# Producers in workers, a consumer in main, through parpy.Queue.
import queue
import parpy


def produce(q, start, n):
    for i in range(start, start + n):
        q.put(i * i)
    q.put(None)
    return n


if __name__ == "__main__":
    q = parpy.Queue()
    with parpy.Executor(2) as ex:
        futs = [ex.submit(produce, q, 0, 500), ex.submit(produce, q, 500, 500)]
        got, done = [], 0
        while done < 2:
            item = q.get(timeout=30)
            if item is None:
                done += 1
            else:
                got.append(item)
        assert sorted(got) == [i * i for i in range(1000)]
        assert [f.result() for f in futs] == [500, 500]
    try:
        q.get(timeout=0.05)
    except queue.Empty:
        pass
    else:
        raise AssertionError("expected queue.Empty")
    small = parpy.Queue(maxsize=1)
    small.put(1)
    try:
        small.put(2, timeout=0.05)
    except queue.Full:
        pass
    else:
        raise AssertionError("expected queue.Full")
    print("queue OK", len(got))
