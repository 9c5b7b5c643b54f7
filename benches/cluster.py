"""parpy workers against Dask's own workers, on one host, with the same kernels.

    VENV=target/test-venv-dask   # dask + distributed for the Python parpy embeds
    $VENV/bin/python benches/cluster.py --parpy target/release/parpy [-j 2] [--rounds 3] [--out docs/cluster-benchmarks.md]

For each kind of worker it starts a `dask scheduler` on 127.0.0.1 and one worker
process set, then a client, and measures:

* start-up: from starting the worker(s) to the client's first result of a trivial task;
* speedup: T kernel calls (benches/kernels.py) one after another in the client,
  against the same calls on the cluster;
* tiny tasks per second: a map of trivial calls (parpy: its chunked map;
  Dask: `client.map`, one task per item, as Dask users write it);
* RSS of the worker processes (the process tree) after the run.

Kinds: `parpy worker -j N` (1 process x N sub-interpreters), `dask worker
--nthreads N` (1 process x N GIL-bound threads), `dask worker --nworkers N
--nthreads 1` (N processes, behind a nanny).
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELS = ("nbody", "fannkuch")
CALLS = 8
TINY = 20_000


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _wait_port(port, limit=60):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the scheduler did not start")


def _tree_rss(pid):
    import psutil
    p = psutil.Process(pid)
    return sum(q.memory_info().rss for q in [p] + p.children(recursive=True))


# ---------------------------------------------------------------------------
# The client (run under parpy --cluster, or the venv's python for Dask)
# ---------------------------------------------------------------------------

def client_main(address, kind, t0, sizes):
    sys.path.insert(0, HERE)
    import kernels
    result = {}
    if kind == "parpy":
        import parpy
        ex = parpy.Executor(cluster=address)
        ex._client.wait_for_workers(1, timeout=60)
        ex.submit(kernels.tiny, 1).result()
        result["startup_s"] = time.time() - t0
        ex._client.wait_for_workers(1, timeout=60)

        def run_calls(fn, args):
            return list(ex.map(fn, *zip(*args)))

        def run_tiny(n):
            return list(ex.map(kernels.tiny, range(n)))
    else:
        import distributed
        client = distributed.Client(address)
        client.wait_for_workers(1, timeout=60)
        client.submit(kernels.tiny, 1, pure=False).result()
        result["startup_s"] = time.time() - t0

        def run_calls(fn, args):
            return client.gather(client.map(fn, *zip(*args), pure=False))

        def run_tiny(n):
            return client.gather(client.map(kernels.tiny, range(n), pure=False))
    for name in KERNELS:
        fn = getattr(kernels, name)
        args = [(t, sizes[name]) for t in range(CALLS)]
        run_calls(fn, args[:2])  # warm: every worker imports the kernels
        t = time.perf_counter()
        seq = [fn(*a) for a in args]
        t_seq = time.perf_counter() - t
        t = time.perf_counter()
        par = run_calls(fn, args)
        t_par = time.perf_counter() - t
        assert par == seq, name
        result[name] = {"sequential_s": t_seq, "parallel_s": t_par, "speedup": t_seq / t_par}
    run_tiny(1000)
    t = time.perf_counter()
    out = run_tiny(TINY)
    result["tiny_per_s"] = TINY / (time.perf_counter() - t)
    assert out == [x + 1 for x in range(TINY)]
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------
# The orchestrator
# ---------------------------------------------------------------------------

def run_kind(kind, parpy_bin, n, sizes):
    venv_bin = os.path.dirname(sys.executable)
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=HERE, VIRTUAL_ENV=os.path.dirname(venv_bin))
    quiet = subprocess.DEVNULL
    procs = []
    try:
        procs.append(subprocess.Popen(
            [os.path.join(venv_bin, "dask"), "scheduler", "--host", "127.0.0.1",
             "--port", str(port), "--no-dashboard"], stdout=quiet, stderr=quiet, env=env))
        _wait_port(port)
        t0 = time.time()
        if kind == "parpy":
            cmd = [parpy_bin, "worker", address, "-j", str(n), "--host", "127.0.0.1"]
        elif kind == "dask-threads":
            cmd = [os.path.join(venv_bin, "dask"), "worker", address, "--nthreads", str(n),
                   "--host", "127.0.0.1", "--no-nanny", "--no-dashboard"]
        else:
            cmd = [os.path.join(venv_bin, "dask"), "worker", address, "--nworkers", str(n),
                   "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"]
        worker = subprocess.Popen(cmd, stdout=quiet, stderr=quiet, env=env)
        procs.append(worker)
        client = ([parpy_bin, "--cluster", address] if kind == "parpy" else [sys.executable])
        client += [os.path.abspath(__file__), "--client", address, "--kind", kind,
                   "--t0", repr(t0), "--sizes", json.dumps(sizes)]
        out = subprocess.run(client, capture_output=True, text=True, env=env, timeout=600)
        line = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
        if not line:
            raise RuntimeError(f"{kind}: the client failed:\n{out.stderr[-3000:]}")
        result = json.loads(line[0][7:])
        result["rss_mb"] = _tree_rss(worker.pid) / 2**20
        return result
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def calibrate(target_s):
    sys.path.insert(0, HERE)
    import kernels
    sizes = {}
    for name in KERNELS:
        fn = getattr(kernels, name)
        size = 1
        while True:
            t = time.perf_counter()
            fn(0, size)
            dt = time.perf_counter() - t
            if dt > target_s / 4:
                sizes[name] = max(1, int(size * target_s / dt))
                break
            size *= 2
    return sizes


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--parpy", default=os.path.join(HERE, "..", "target", "release", "parpy"))
    p.add_argument("-j", type=int, default=2, help="slots per worker host (default 2)")
    p.add_argument("--call-s", type=float, default=0.25, help="seconds per kernel call")
    p.add_argument("--out", default=None, help="also write the table (markdown) here")
    p.add_argument("--rounds", type=int, default=3, help="rounds of every kind (default 3)")
    p.add_argument("--client", default=None, help=argparse.SUPPRESS)
    p.add_argument("--kind", default=None, help=argparse.SUPPRESS)
    p.add_argument("--t0", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--sizes", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.client:
        return client_main(a.client, a.kind, a.t0, json.loads(a.sizes))
    sizes = calibrate(a.call_s)
    kinds = [("parpy", f"parpy worker -j {a.j} (1 process x {a.j} sub-interpreters)"),
             ("dask-threads", f"dask worker --nthreads {a.j} (1 process x {a.j} threads)"),
             ("dask-procs", f"dask worker --nworkers {a.j} --nthreads 1 ({a.j} processes)")]
    runs = {kind: [] for kind, _ in kinds}
    loads = []
    for rnd in range(a.rounds):
        # Alternating order, so that a drift of the machine's speed hits every kind alike.
        order = kinds[rnd % len(kinds):] + kinds[:rnd % len(kinds)]
        for kind, label in order:
            r = run_kind(kind, os.path.abspath(a.parpy), a.j, sizes)
            runs[kind].append(r)
            loads.append(os.getloadavg()[0])
            print(f"round {rnd + 1}", label, json.dumps(r), file=sys.stderr)

    def cell(kind, get, fmt):
        values = sorted(get(r) for r in runs[kind])
        med = statistics.median(values)
        if len(values) == 1:
            return fmt(med)
        return f"{fmt(med)} ({fmt(values[0])}-{fmt(values[-1])})"

    lines = [
        f"One host, {os.cpu_count()} CPUs, {a.j} slots; {CALLS} calls per kernel of about "
        f"{a.call_s} s each (sizes {sizes}); {TINY} tiny tasks; medians of {a.rounds} rounds "
        f"(range in brackets), the kinds alternating. Load average after each run: "
        f"{min(loads):.1f} to {max(loads):.1f}.",
        "",
        "| workers | " + " | ".join(f"{k} speedup" for k in KERNELS)
        + " | tiny tasks/s | worker RSS | start-up to first result |",
        "| --- | " + " | ".join("---:" for _ in KERNELS) + " | ---: | ---: | ---: |",
    ]
    for kind, label in kinds:
        cells = [cell(kind, lambda r, k=k: r[k]["speedup"], lambda v: f"{v:.2f}x") for k in KERNELS]
        cells.append(cell(kind, lambda r: r["tiny_per_s"], lambda v: f"{v:,.0f}"))
        cells.append(cell(kind, lambda r: r["rss_mb"], lambda v: f"{v:.0f} MB"))
        cells.append(cell(kind, lambda r: r["startup_s"], lambda v: f"{v:.2f} s"))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
