"""One measurement in a fresh process, for benches/run.py (not run by hand).

    INTERPRETER benches/harness.py '{"bench": "scaling", "peer": "threads", ...}'

run.py starts this script with the interpreter that the peer needs (the
reference python of the private venv, a free-threaded python, or parpy), so
that every peer runs on the same CPython and every measurement starts from a
clean process. The last line of stdout is ``RESULT <json>``.

Only the standard library (and parpy, or the InterpreterPoolExecutor
backport, for those peers) is imported here, so that any python >= 3.12 can
run it.
"""

import json
import os
import sys
import time

import kernels

# Workers of some backends import this script as __mp_main__: nothing below
# runs on import.


def make_pool(peer, workers):
    """A fresh executor of ``workers`` workers for ``peer``."""
    import concurrent.futures as cf
    if peer in ("threads", "free-threaded"):
        return cf.ThreadPoolExecutor(workers)
    if peer in ("process-spawn", "process-fork"):
        import multiprocessing as mp
        import warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads around
        return cf.ProcessPoolExecutor(workers, mp_context=mp.get_context(peer.split("-")[1]))
    if peer == "interpreters":
        return interpreter_pool_class()(workers)
    if peer == "subinterpreters":
        return SubinterpreterPool(workers)
    if peer == "parpy":
        import parpy
        return parpy.Executor(workers)
    raise ValueError(f"no pool for peer {peer!r}")


def interpreter_pool_class():
    """concurrent.futures.InterpreterPoolExecutor (3.14+) or its 3.13 backport."""
    import concurrent.futures as cf
    cls = getattr(cf, "InterpreterPoolExecutor", None)
    if cls is None:
        from interpreters_backport.concurrent.futures import InterpreterPoolExecutor as cls
    return cls


class SubinterpreterPool:
    """The least pool on ``concurrent.interpreters`` (3.14+) alone: one thread
    per interpreter, each taking the next task from a queue and running it
    with ``Interpreter.call``. What a user would write without
    InterpreterPoolExecutor; submit, map and shutdown are all the benchmarks use."""

    def __init__(self, workers):
        import queue
        import threading
        from concurrent import interpreters
        self._tasks = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._serve, args=(interpreters.create(),))
                         for _ in range(workers)]
        for t in self._threads:
            t.start()

    def _serve(self, interp):
        try:
            while (task := self._tasks.get()) is not None:
                fut, fn, args = task
                if fut.set_running_or_notify_cancel():
                    try:
                        fut.set_result(interp.call(fn, *args))
                    except BaseException as exc:
                        fut.set_exception(exc)
        finally:
            interp.close()

    def submit(self, fn, *args):
        import concurrent.futures as cf
        fut = cf.Future()
        self._tasks.put((fut, fn, args))
        return fut

    def map(self, fn, *iterables):
        futs = [self.submit(fn, *args) for args in zip(*iterables)]
        return (f.result() for f in futs)

    def shutdown(self, wait=True):
        for _ in self._threads:
            self._tasks.put(None)
        if wait:
            for t in self._threads:
                t.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()


def warm(pool, workers):
    """Starts every worker (k naps hold k workers at once) and makes each
    import the kernels; start-up is measured by the cold-start benchmark."""
    list(pool.map(kernels.nap, [0.05] * workers))
    list(pool.map(kernels.tiny, range(workers)))


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


_CLK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def machine_busy():
    """CPU seconds the whole machine has spent busy (all CPUs, steal included)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return (sum(v) - v[3] - v[4]) / _CLK


def _ours():
    """CPU seconds used so far by this process and its live descendants."""
    total = 0
    for pid in _tree(os.getpid()):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / _CLK


def measured(fn):
    """``(seconds, others, result)``: ``others`` is how many CPUs other
    processes on the machine kept busy meanwhile, on average (None off Linux)."""
    b0, o0 = machine_busy(), _ours()
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    b1, o1 = machine_busy(), _ours()
    others = None if b0 is None or b1 is None else max(0.0, (b1 - b0) - (o1 - o0)) / dt
    return dt, others, out


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


# ---------------------------------------------------------------------------
# Benchmarks: each takes the spec and returns a JSON-able dict
# ---------------------------------------------------------------------------


def bench_calibrate(spec):
    """Seconds per unit of ``size`` for each kernel, on this interpreter."""
    out = {}
    for name in spec["kernels"]:
        fn, base = kernels.KERNELS[name]
        fn(0, base)  # warm caches
        best = min(timed(fn, t, base)[0] for t in range(3))
        out[name] = best / base
    return {"seconds_per_unit": out}


def bench_scaling(spec):
    """Time to map one kernel over ``tasks`` calls: sequentially on this
    interpreter (if asked) and with a pool of k workers for each k."""
    fn = kernels.KERNELS[spec["kernel"]][0]
    size, tasks = spec["size"], spec["tasks"]
    ids = list(range(tasks))
    sizes = [size] * tasks
    out = {"par": {}, "par_others": {}}
    expected = None
    fn(0, max(1, size // 10))  # warm up this interpreter before the first timing
    if spec.get("seq"):
        dt, others, res = measured(lambda: [fn(i, size) for i in ids])
        out["seq"], out["seq_others"] = dt, others
        expected = res
    for k in spec.get("workers", []):
        pool = make_pool(spec["peer"], k)
        try:
            warm(pool, k)
            dt, others, res = measured(lambda: list(pool.map(fn, ids, sizes)))
        finally:
            pool.shutdown(wait=True)
        out["par"][str(k)] = dt
        out["par_others"][str(k)] = others
        if expected is not None and res != expected:
            raise AssertionError(f"{spec['peer']} with {k} workers computed other results")
        expected = res
    out["checksum"] = repr(expected)
    return out


def bench_roundtrip(spec):
    """Microseconds per ``submit(tiny, i).result()``, one call at a time;
    median of three runs of about ``seconds`` each."""
    seconds = spec["seconds"]
    if spec["peer"] == "sequential":
        f = kernels.tiny

        def one(n):
            for i in range(n):
                f(i)
    else:
        pool = make_pool(spec["peer"], spec["workers"])
        warm(pool, spec["workers"])

        def one(n):
            for i in range(n):
                if pool.submit(kernels.tiny, i).result() != i + 1:
                    raise AssertionError("wrong result")
    # Size the batch so that one run takes about `seconds`.
    n = 10
    while True:
        dt, _ = timed(one, n)
        if dt >= seconds / 10 or n >= 10_000_000:
            break
        n *= 4
    n = max(n, int(n * seconds / max(dt, 1e-9)))
    runs = [timed(one, n)[0] / n * 1e6 for _ in range(3)]
    if spec["peer"] != "sequential":
        pool.shutdown(wait=True)
    return {"us": median(runs), "runs_us": runs, "calls": n}


def _rate(run, max_items, budget, least):
    """Tasks/s of ``run(n)``: measured on ``max_items`` items, or, for a setting
    that would take longer than ``budget`` seconds, on as many as fit (at
    least ``least``, so that every worker gets work)."""
    n = min(max_items, 1000)
    while True:  # a first, growing guess at the rate
        dt, _ = timed(run, n)
        if dt >= budget / 10 or n >= max_items:
            break
        n = min(max_items, n * 10)
    guess = n / dt
    n = max_items if guess * budget >= max_items else max(min(least, max_items), int(guess * budget) // 1000 * 1000)
    dt, _ = timed(run, n)
    return {"rate": n / dt, "items": n, "seconds": dt}


def bench_throughput(spec):
    """map over ``items`` trivial calls with the default chunking (and, for
    process pools, a few chunk sizes): tasks/s per setting."""
    peer, k = spec["peer"], spec["workers"]
    max_items, budget = spec["items"], spec["budget"]
    out = {}

    def checked(results, n):
        if len(results) != n or results[-1] != n:
            raise AssertionError("wrong results")

    if peer == "sequential":
        def run(n):
            checked(list(map(kernels.tiny, range(n))), n)
        out["map (no pool)"] = _rate(run, max_items, budget, 1000)
        return {"settings": out}

    if peer == "parpy":
        import parpy
        pool = make_pool(peer, k)
        warm(pool, k)

        def run(n):
            checked(list(pool.map(kernels.tiny, range(n))), n)
        out["Executor.map (chunksize=1)"] = _rate(run, max_items, budget, 1000)
        pool.shutdown(wait=True)
        f = parpy.parallel(kernels.tiny)
        parpy.parallel(kernels.nap).map([0.05] * parpy.workers())

        def run(n):
            checked(f.map(range(n)), n)
        out["@parallel .map (default)"] = _rate(run, max_items, budget, 1000)
        return {"settings": out, "default_workers": parpy.workers()}

    pool = make_pool(peer, k)
    warm(pool, k)
    if peer.startswith("process"):
        for c in spec["chunksizes"]:
            def run(n, c=c):
                checked(list(pool.map(kernels.tiny, range(n), chunksize=c)), n)
            label = f"map (chunksize={c}{', default' if c == 1 else ''})"
            out[label] = _rate(run, max_items, budget, 2 * c * k)
    else:
        def run(n):
            checked(list(pool.map(kernels.tiny, range(n))), n)
        out["map (default)"] = _rate(run, max_items, budget, 1000)
    pool.shutdown(wait=True)
    return {"settings": out}


def _children():
    """pid -> ppid for every process."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        out[int(name)] = int(stat[stat.rindex(")") + 2:].split()[1])
    return out


def _tree(root):
    parents = _children()
    tree, todo = [root], [root]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        tree.extend(kids)
        todo.extend(kids)
    return tree


def _kb(path, key):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def bench_memory(spec):
    """RSS (and PSS) of this process and all its descendants with an idle,
    warmed-up pool of k workers."""
    peer, k = spec["peer"], spec["workers"]
    pool = None
    if peer != "sequential":
        pool = make_pool(peer, k)
        warm(pool, k)
    time.sleep(0.3)
    pids = _tree(os.getpid())
    rss = sum(_kb(f"/proc/{p}/status", "VmRSS:") for p in pids)
    pss = sum(_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids)
    if pool is not None:
        pool.shutdown(wait=True)
    return {"rss_kb": rss, "pss_kb": pss, "processes": len(pids)}


def bench_large(spec):
    """One ``mb`` MB bytes object sent to a worker, its length sent back:
    once at a time (``single``) and to every worker at once (``broadcast``)."""
    peer, k = spec["peer"], spec["workers"]
    n = spec["mb"] * 1_000_000
    data = (bytes(range(256)) * (n // 256 + 1))[:n]
    out = {"single": [], "broadcast": None}
    if peer == "sequential":
        for _ in range(spec["reps"]):
            dt, got = timed(kernels.size, data)
            out["single"].append(dt)
        out["broadcast"] = sum(timed(kernels.size, data)[0] for _ in range(k))
        return out
    pool = make_pool(peer, k)
    try:
        warm(pool, k)
        _send(pool, data, n, k, spec, out)
        if peer == "parpy" and spec.get("share"):
            import parpy
            if hasattr(parpy, "share"):
                # parpy's zero-copy path: one copy into shared memory, then
                # every send is a reference.
                dt, shared = timed(parpy.share, data)
                out["shared"] = {"single": [], "broadcast": None, "share_once": dt}
                _send(pool, shared, n, k, spec, out["shared"])
    finally:
        pool.shutdown(wait=True)
    return out


def _send(pool, data, n, k, spec, out):
    start = time.perf_counter()
    for _ in range(spec["reps"]):
        dt, got = timed(lambda: pool.submit(kernels.size, data).result())
        if got != n:
            raise AssertionError("wrong length")
        out["single"].append(dt)
        if time.perf_counter() - start > spec["cap"]:
            break
    dt, got = timed(lambda: list(pool.map(kernels.size, [data] * k)))
    if got != [n] * k:
        raise AssertionError("wrong lengths")
    out["broadcast"] = dt


def bench_copy(spec):
    """Seconds for one plain copy of an ``mb`` MB bytes object (best of three)."""
    n = spec["mb"] * 1_000_000
    data = (bytes(range(256)) * (n // 256 + 1))[:n]
    return {"copy": min(timed(bytearray, data)[0] for _ in range(3))}


def bench_probe(spec):
    """Can this peer run at all here? One trivial call through a pool."""
    info = {"python": sys.version.split()[0], "executable": sys.executable}
    gil = getattr(sys, "_is_gil_enabled", None)
    info["gil"] = gil() if gil else True
    if spec["peer"] == "interpreters":
        cls = interpreter_pool_class()
        info["module"] = cls.__module__
    if spec["peer"] == "parpy":
        import parpy
        info["default_workers"] = parpy.workers()
    if spec["peer"] != "sequential":
        pool = make_pool(spec["peer"], 1)
        try:
            if pool.submit(kernels.tiny, 1).result(timeout=60) != 2:
                raise AssertionError("wrong result")
        finally:
            pool.shutdown(wait=True)
    return info


def main():
    spec = json.loads(sys.argv[1])
    result = globals()["bench_" + spec["bench"]](spec)
    sys.stdout.flush()
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
