"""parpy on a Dask cluster (``parpy worker``, ``--cluster``, ``Executor(cluster=...)``).

Loaded by ``parpy._cluster()`` in any interpreter, as module ``parpy_cluster``.

How a parallel call travels:

* The client (the script's main interpreter) cuts a map into chunks. Each chunk
  is one Dask task ``run_chunk(info, payload)``: ``info`` names the script (its
  source travels with it, so nothing is copied by hand) and ``payload`` is the
  pickled ``(function reference, argument tuples, kwargs)``.
* On a ``parpy worker``, Dask runs ``run_chunk`` in one of its threads in the
  main interpreter. It writes the script's source to a private temporary folder
  once, starts a parpy pool whose sub-interpreters import it as ``__mp_main__``
  (as on one machine), and hands the payload, still as bytes, to one
  sub-interpreter (``parpy._cluster_call``). Dask's ``nthreads`` equals the
  pool size, so every sub-interpreter is kept busy.
* The sub-interpreter unpickles the payload (script classes resolve in its
  ``__mp_main__``), runs the calls, and returns the pickled results, the
  first exception (packed as parpy packs a worker's), and the chunk's output.
* Output is live: each line a task prints goes, through a ``parpy.Queue``, to the
  worker's main interpreter, which sends it to the client as a Dask event on the
  executor's own topic; the client prints it, prefixed with the host. The chunk's
  result carries every line again, numbered, so the client prints there what no
  event brought (events and results travel by different routes), and a chunk that
  runs again after its worker died prints only the lines beyond those seen.
  Results are yielded in input order.
"""

import io
import os
import pickle
import sys
import threading

import parpy

_SOURCE, _ADDRESS, VERSION = parpy._cluster_info()

NEED_DASK = "pip install dask distributed"


def _dask_missing(what):
    return (f"parpy: {what} needs Dask, which is not installed: run `{NEED_DASK}` "
            f"in the environment parpy runs with ({sys.prefix})")


def _import_distributed(what):
    try:
        import distributed
    except ImportError:
        raise ImportError(_dask_missing(what)) from None
    return distributed


def _dumps(obj):
    try:
        return pickle.dumps(obj, 5)
    except Exception:
        import cloudpickle
        return cloudpickle.dumps(obj, 5)


def _host():
    import socket
    return socket.gethostname()


# ---------------------------------------------------------------------------
# Client side
# ---------------------------------------------------------------------------

_default = None
_default_lock = threading.Lock()


def connect(address, timeout=10):
    """A ``distributed.Client`` of the scheduler at ``address``, or a one-line error."""
    distributed = _import_distributed("--cluster")
    try:
        return distributed.Client(address, timeout=timeout, set_as_default=False)
    except Exception as e:
        text = " ".join(str(e).split()) or type(e).__name__
        raise ConnectionError(
            f"parpy: cannot reach the Dask scheduler at {address!r} ({text}); "
            "start one with `dask scheduler` and pass the address it prints"
        ) from None


def default_executor():
    """The executor ``@parallel`` uses under ``--cluster``/``PARPY_CLUSTER``, or None."""
    global _default
    if _ADDRESS is None:
        return None
    with _default_lock:
        if _default is None or _default._shutdown:
            _default = ClusterExecutor(_ADDRESS)
        return _default


def start_from_cli():
    """``--cluster``: connect before the script runs; a failure is one line and exit 2."""
    try:
        default_executor()
    except (ImportError, ConnectionError) as e:
        sys.stderr.write(f"{e}\n")
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(2)


_info = None


def _script_info():
    """What a worker needs to import the script as ``__mp_main__``."""
    global _info
    if _info is None:
        import hashlib
        path = parpy._script_path()
        source = name = module = None
        if path is not None:
            with open(path, "rb") as f:
                source = f.read()
            name = os.path.basename(path)
        else:
            module = parpy._main_module_name()
        digest = hashlib.sha256(repr((name, module)).encode() + (source or b"")).hexdigest()
        _info = {
            "id": digest[:16],
            "source": source,
            "name": name,
            "module": module,
            "argv": list(sys.argv[1:]),
            "python": tuple(sys.version_info[:3]),
            "parpy": VERSION,
        }
    return _info


def _fn_ref(fn, info):
    """A script function by name (the workers import the same script), anything else pickled."""
    if getattr(fn, "__module__", None) == "__main__" and (info["source"] or info["module"]):
        qualname = getattr(fn, "__qualname__", "")
        try:
            found = parpy._lookup(sys.modules["__main__"], qualname)
        except Exception:
            found = None
        if found is fn or getattr(found, "__wrapped__", None) is fn:
            return ("main", qualname)
    try:
        return ("pickle", pickle.dumps(fn, 5))
    except Exception:
        import cloudpickle
        return ("pickle", cloudpickle.dumps(fn, 5))


class _Output:
    """The client's side of live output: which lines of each chunk (by Dask key)
    have been printed, so that each line is printed once, in its chunk's order,
    whether an event or the chunk's result brings it first."""

    _DONE_KEPT = 4096  # finished chunks remembered, so that late events are dropped

    def __init__(self):
        import collections
        self._lock = threading.Lock()
        self._printed = {}                        # key -> lines printed so far
        self._done = collections.OrderedDict()    # keys whose result has come

    def _print(self, host, lines):
        streams = set()
        for stream, line in lines:
            out = sys.stderr if stream == "err" else sys.stdout
            out.write(f"[{host}] {line}\n")
            streams.add(out)
        for out in streams:
            out.flush()

    def event(self, event):
        """A Dask event ``(time, {"key", "host", "lines": [[seq, stream, line], ...]})``."""
        try:
            msg = event[1]
            key, host = msg["key"], msg["host"]
            with self._lock:
                if key in self._done:
                    return
                n = self._printed.get(key, 0)
                fresh = []
                for seq, stream, line in msg["lines"]:
                    if seq == n + 1:      # a rerun's lines up to n were printed already
                        fresh.append((stream, line))
                        n = seq
                self._printed[key] = n
                self._print(host, fresh)
        except Exception:
            pass  # never break the client's event loop; the result brings the lines

    def finish(self, key, host, lines):
        """The chunk's result has come, with all its lines: print those not printed."""
        with self._lock:
            n = self._printed.pop(key, 0)
            self._done[key] = None
            while len(self._done) > self._DONE_KEPT:
                self._done.popitem(last=False)
            self._print(host, lines[n:])


class ClusterExecutor:
    """``parpy.Executor(cluster=ADDRESS)``: a ``concurrent.futures.Executor``
    whose tasks run on every sub-interpreter of every ``parpy worker`` of a
    Dask scheduler."""

    def __init__(self, cluster, max_workers=None, mp_context=None, initializer=None, initargs=()):
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._address = cluster
        self._init = None
        if initializer is not None:
            # It runs once in every sub-interpreter of every worker that takes
            # this executor's tasks, as a local pool's does in each of its own.
            self._init = _dumps((_fn_ref(initializer, _script_info()), tuple(initargs)))
        self._info_cache = None
        self._client = connect(cluster)
        self._shutdown = False
        import uuid
        self._output = _Output()
        self._topic = f"parpy-output-{uuid.uuid4().hex}"
        self._client.subscribe_topic(self._topic, self._output.event)
        main = sys.modules.get("__main__")
        if main is not None:
            # Objects pickled in a worker name the script '__mp_main__'.
            sys.modules.setdefault("__mp_main__", main)

    def __repr__(self):
        return f"<parpy.Executor cluster={self._address!r}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown(wait=True)
        return False

    # -- helpers ----------------------------------------------------------

    def _check(self):
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")

    def _slots(self):
        """The sub-interpreters of all connected workers (waits for the first worker)."""
        n = sum(self._client.nthreads().values())
        if n == 0:
            try:
                self._client.wait_for_workers(1, timeout=60)
            except Exception:
                raise RuntimeError(
                    f"parpy: no worker is connected to the Dask scheduler at {self._address}; "
                    f"start some with `parpy worker {self._address}`") from None
            n = sum(self._client.nthreads().values())
        return max(1, n)

    def _info(self):
        """The script's info, plus this executor's initializer: a worker keeps
        one pool per (script, initializer), so executors never share state."""
        if self._info_cache is None:
            info = _script_info()
            if self._init is not None:
                import hashlib
                digest = hashlib.sha256(info["id"].encode() + self._init).hexdigest()
                info = dict(info, id=digest[:16], init=self._init)
            # Not part of the id: executors that differ only in it share pools.
            self._info_cache = dict(info, output=self._topic)
        return self._info_cache

    def _task(self, payload, label):
        import uuid
        return self._client.submit(_chunk_task, self._info(), payload, pure=False,
                                   key=f"parpy-{label}-{uuid.uuid4().hex}")

    def _lost(self, e):
        """The error for a Dask failure that is not the task's own exception."""
        if self._client.status not in ("running", "newly-created"):
            text = " ".join(str(e).split())
            return ConnectionError(
                f"parpy: lost the connection to the Dask scheduler at {self._address}; "
                f"this call's tasks are lost ({type(e).__name__}: {text})")
        return e

    def _chunk_result(self, fut, deadline):
        """``(results, exception or None)`` of one chunk, its output echoed."""
        import time
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            data = fut.result(timeout=timeout)
        except TimeoutError:
            raise TimeoutError() from None
        except Exception as e:
            lost = self._lost(e)
            if lost is e:
                raise
            raise lost from None
        kind, host, results, packed, lines = pickle.loads(data)
        self._output.finish(fut.key, host, lines)
        exc = None
        if kind == "err":
            packed = packed[:4] + (f"(on {host})\n" + packed[4],) + packed[5:]
            exc = parpy._unpack_exc(packed)
        return results, exc

    # -- the Executor API ---------------------------------------------------

    def submit(self, fn, /, *args, **kwargs):
        self._check()
        import concurrent.futures as cf
        info = _script_info()
        dfut = self._task(_dumps((_fn_ref(fn, info), [args], kwargs)), _label(fn))
        fut = cf.Future()
        fut.set_running_or_notify_cancel()

        def done(_):
            try:
                results, exc = self._chunk_result(dfut, None)
            except BaseException as e:
                fut.set_exception(e)
                return
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(results[0])

        dfut.add_done_callback(done)
        return fut

    def map(self, fn, *iterables, timeout=None, chunksize=None, buffersize=None, progress=None):
        """Results in input order. ``chunksize=None`` (the default here) cuts the
        input into about four chunks per sub-interpreter of the cluster."""
        return self._map(fn, iterables, chunksize, timeout, ordered=True)

    def _map(self, fn, iterables, chunksize, timeout, ordered=True, chunks=False, progress=None):
        import math
        import time
        self._check()
        if chunksize is not None and (not isinstance(chunksize, int) or chunksize < 1):
            raise ValueError("chunksize must be a positive integer")
        deadline = None if timeout is None else time.monotonic() + timeout
        calls = list(zip(*iterables))
        if chunksize is None:
            chunksize = max(1, math.ceil(len(calls) / (4 * self._slots())))
        info = _script_info()
        ref = _fn_ref(fn, info)
        label = _label(fn)
        futs = [self._task(_dumps((ref, calls[i:i + chunksize], {})), label)
                for i in range(0, len(calls), chunksize)]
        return self._results(futs, ordered, chunks, deadline)

    def _results(self, futs, ordered, chunks, deadline):
        import distributed
        left = set(futs)
        try:
            for fut in (futs if ordered else distributed.as_completed(futs, loop=self._client.loop)):
                results, exc = self._chunk_result(fut, deadline)
                left.discard(fut)
                if chunks:
                    if results:
                        yield results
                else:
                    yield from results
                if exc is not None:
                    raise exc
        finally:
            if left and self._client.status == "running":
                # Ctrl-C, a timeout, an error or a dropped iterator: stop the rest.
                self._client.cancel(list(left))

    def spmd(self, fn, *args, **kwargs):
        """``fn(ctx, *args, **kwargs)`` once per sub-interpreter of the cluster (``ctx.size``
        of them, ``ctx.rank`` counting across every worker); results in rank order.
        ``ctx.queue`` is None here: there is no queue that spans hosts."""
        self._check()
        size = self._slots()
        info = _script_info()
        ref = ("rank", _fn_ref(fn, info))
        label = _label(fn)
        futs = [self._task(_dumps((ref, [(rank, size) + tuple(args)], kwargs)), label)
                for rank in range(size)]
        results = []
        errors = []
        try:
            for fut in futs:
                values, exc = self._chunk_result(fut, None)
                if exc is not None:
                    errors.append(exc)
                    results.append(None)
                else:
                    results.append(values[0])
        except BaseException:
            if self._client.status == "running":
                self._client.cancel(futs)
            raise
        if errors:
            raise errors[0]
        return results

    def shutdown(self, wait=True, *, cancel_futures=False):
        if self._shutdown:
            return
        self._shutdown = True
        try:
            self._client.unsubscribe_topic(self._topic)
        except Exception:
            pass
        try:
            self._client.close()
        except Exception:
            pass


def _make_task():
    """The function of every Dask task. The scheduler unpickles task graphs and has
    no parpy, so the task is a stub that cloudpickle sends by value (its module
    is not importable) and that finds ``run_chunk`` by name on the worker."""
    g = {"__name__": "parpy_cluster_task"}
    exec("def parpy_chunk(info, payload):\n"
         "    import sys\n"
         "    return sys.modules['parpy_cluster'].run_chunk(info, payload)\n", g)
    return g["parpy_chunk"]


_chunk_task = _make_task()


def _label(fn):
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


# ---------------------------------------------------------------------------
# Worker side: the parpy worker's main interpreter (a Dask thread)
# ---------------------------------------------------------------------------

_pool_size = None
_pools = {}            # script id -> parpy.Executor whose workers loaded that script
_pools_lock = threading.Lock()
_scratch = None        # the private folder the received scripts are written to
_KEEP_POOLS = 4


def _mismatch(info):
    mine = tuple(sys.version_info[:3])
    if tuple(info["python"][:2]) != mine[:2] or info["parpy"] != VERSION:
        py = ".".join(map(str, info["python"]))
        return (f"parpy worker on {_host()} runs parpy {VERSION} on Python "
                f"{'.'.join(map(str, mine))}, the client parpy {info['parpy']} on Python {py}: "
                "install the same parpy (and Python minor version) on every host")
    return None


def _pool_for(info):
    global _scratch
    with _pools_lock:
        ex = _pools.pop(info["id"], None)
        if ex is None:
            script = None
            path = [p for p in sys.path if p]
            if info["source"] is not None:
                import tempfile
                if _scratch is None:
                    import atexit
                    import shutil
                    # In the Dask worker's own folder, which Dask removes when
                    # the next worker on this host finds its owner dead.
                    try:
                        import distributed
                        base = distributed.get_worker().local_directory
                    except Exception:
                        base = None
                    _scratch = tempfile.mkdtemp(prefix="parpy-scripts-", dir=base)
                    atexit.register(shutil.rmtree, _scratch, True)
                folder = os.path.join(_scratch, info["id"])
                os.makedirs(folder, exist_ok=True)
                script = os.path.join(folder, info["name"])
                with open(script, "wb") as f:
                    f.write(info["source"])
                path.insert(0, folder)
            init = info.get("init")
            ex = parpy.Executor(max_workers=_pool_size or parpy.workers(),
                                initializer=None if init is None else parpy._cluster_init,
                                initargs=() if init is None else (init,))
            ex._cfg = {
                "path": path,
                "argv": [script or "-c"] + list(info["argv"]),
                "script": script,
                "module": info["module"],
                "authkey": None,
            }
        _pools[info["id"]] = ex          # most recently used last
        while len(_pools) > _KEEP_POOLS:
            old = _pools.pop(next(iter(_pools)))
            old.shutdown(wait=False)
        return ex


def run_chunk(info, payload):
    """A Dask task: runs one chunk on a sub-interpreter of this worker's pool."""
    why = _mismatch(info)
    if why is not None:
        raise RuntimeError(why)
    ex = _pool_for(info)
    try:
        return _forward_output(info["output"], lambda q: ex.submit(parpy._cluster_call, payload, q))
    except ImportError as e:
        if "cannot be loaded in a parpy worker" not in str(e) or _fallback_mode == "error":
            raise
    # A module of the chunk refuses sub-interpreters: run it in a process that
    # loaded the same script (parpy's fallback, with this script's config).
    return _fallback_for(ex).submit(("name", "parpy", "_cluster_call"), (payload, None), {}).result()


_END = "parpy-end-of-output"


def _forward_output(topic, start):
    """Runs ``start(queue)`` (a future of the chunk) while sending each batch of
    lines that its sub-interpreter puts on ``queue`` to the client, as Dask events."""
    import queue as stdqueue
    import distributed
    worker = distributed.get_worker()
    key = worker.get_current_task()
    host = _host()
    q = parpy.Queue()
    fut = start(q)
    ended = False
    while not ended:
        try:
            # The sub-interpreter puts _END last; the timeout covers a worker that died.
            item = q.get(timeout=0.2)
        except stdqueue.Empty:
            if fut.done():
                break
            continue
        batch = []
        while True:
            if item == _END:
                ended = True
                break
            batch.append(list(item))
            try:
                item = q.get_nowait()
            except stdqueue.Empty:
                break
        if batch:
            try:
                worker.log_event(topic, {"key": key, "host": host, "lines": batch})
            except Exception:
                pass  # the chunk's result carries every line too
    return fut.result()


_fallback_mode = "process"


def _fallback_for(ex):
    with _pools_lock:
        fb = getattr(ex, "_cluster_fallback", None)
        if fb is None:
            fb = parpy._FallbackPool(_fallback_mode, _pool_size or parpy.workers())
            fb._cfg = ex._cfg
            ex._cluster_fallback = fb
            import atexit
            atexit.register(fb.shutdown)
        return fb


# ---------------------------------------------------------------------------
# Worker side: inside a sub-interpreter
# ---------------------------------------------------------------------------

def _resolve_ref(ref):
    if ref[0] == "main":
        # As on one machine: a clear error when the script, as the workers
        # load it, does not define the function.
        return parpy._resolve(("name", "__main__", ref[1]))
    if ref[0] == "rank":
        inner = _resolve_ref(ref[1])

        def rank(rank, size, *args, **kwargs):
            return inner(parpy.Context(rank, size, None), *args, **kwargs)
        return rank
    return pickle.loads(ref[1])


def run_init(payload):
    """``parpy._cluster_init``: a cluster executor's initializer, in a sub-interpreter."""
    ref, args = pickle.loads(payload)
    _resolve_ref(ref)(*args)


class _Lines(io.TextIOBase):
    """The chunk's ``sys.stdout`` or ``sys.stderr``: records each line, numbered
    across both, and puts it on the live queue as soon as it is complete
    (``io.TextIOBase`` gives the rest of a text stream: not a tty, no fileno)."""

    encoding, errors = "utf-8", "strict"

    def __init__(self, stream, record, live):
        self.stream, self.record, self.live = stream, record, live
        self.partial = ""

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        *done, self.partial = (self.partial + text).split("\n")
        for line in done:
            self._line(line)
        return len(text)

    def _line(self, line):
        self.record.append((self.stream, line))
        if self.live is not None:
            try:
                self.live.put((len(self.record), self.stream, line))
            except Exception:
                self.live = None  # the result still carries the line

    def end(self):
        if self.partial:
            self._line(self.partial)
            self.partial = ""

    def writable(self):
        return True


def run_payload(payload, live=None):
    """``parpy._cluster_call``: runs a chunk's calls here; returns the pickled
    ``(kind, host, results, packed exception, lines)``, ``lines`` being the
    ``(stream, line)`` the chunk printed, each also put on ``live`` as it came."""
    lines = []
    out, err = _Lines("out", lines, live), _Lines("err", lines, live)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    results = []
    packed = None
    try:
        try:
            ref, calls, kwargs = pickle.loads(payload)
            fn = _resolve_ref(ref)
        except KeyboardInterrupt:
            raise
        except BaseException as e:
            packed = parpy._pack_exc(e)
            calls = ()
        for args in calls:
            try:
                results.append(fn(*args, **kwargs))
            except KeyboardInterrupt:
                raise
            except ImportError as e:
                if parpy._IN_WORKER and parpy._refused_module(e):
                    raise  # the parpy worker runs the chunk again in its fallback
                packed = parpy._pack_exc(e)
                break
            except BaseException as e:
                packed = parpy._pack_exc(e)
                break
    finally:
        sys.stdout, sys.stderr = saved
        out.end()
        err.end()
        if live is not None:
            try:
                live.put(_END)
            except Exception:
                pass
    host = _host()
    kind = "ok" if packed is None else "err"
    try:
        return _dumps((kind, host, results, packed, lines))
    except Exception as e:
        e.add_note("parpy: a result of this chunk could not be sent back to the client")
        return _dumps(("err", host, [], parpy._pack_exc(e), lines))


# ---------------------------------------------------------------------------
# parpy worker SCHEDULER
# ---------------------------------------------------------------------------

def worker_main():
    import argparse
    p = argparse.ArgumentParser(
        prog="parpy worker",
        description="A Dask worker whose tasks run on this process's own-GIL sub-interpreters.")
    p.add_argument("scheduler", help="the scheduler's address, e.g. tcp://HOST:8786")
    p.add_argument("-j", "--workers", type=int, default=None, metavar="N",
                   help="sub-interpreters (and Dask threads); default: parpy's -j, or the CPUs")
    p.add_argument("--name", default=None, help="the worker's name on the scheduler")
    p.add_argument("--host", default=None,
                   help="the address this worker listens on for its peers (default: Dask's choice)")
    p.add_argument("--death-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="give up when the scheduler cannot be reached for this long (default 30)")
    for opt, what in (("ca-file", "the CA certificate"), ("cert", "this worker's certificate"),
                      ("key", "this worker's private key")):
        p.add_argument(f"--tls-{opt}", default=None, metavar="PATH",
                       help=f"{what} (PEM), for tls:// addresses")
    p.add_argument("--fallback", choices=("process", "error"), default="process",
                   help="where chunks go whose modules refuse sub-interpreters (default process)")
    args = p.parse_args(sys.argv[1:])
    if args.workers is not None and args.workers < 1:
        p.error("-j must be at least 1")
    try:
        _import_distributed("parpy worker")
    except ImportError as e:
        sys.stderr.write(f"{e}\n")
        raise SystemExit(2)
    global _pool_size, _fallback_mode
    _pool_size = args.workers or parpy.workers()
    _fallback_mode = args.fallback
    import asyncio
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass


def _no_foreign_frames():
    """``sys._current_frames()`` walks the threads of every interpreter and makes
    frame objects, in the calling (main) interpreter, for the sub-interpreters'
    running frames; when a sub-interpreter later frees one, the process aborts
    (``free(): invalid pointer``, seen on 3.13.0). Dask's worker profiler calls it
    every 10 ms, so it is off, and the function answers "no frame" for any thread."""
    import collections
    import dask
    dask.config.set({"distributed.worker.profile.enabled": False})
    sys._current_frames = lambda: collections.defaultdict(lambda: None)


async def _serve(args):
    import asyncio
    import distributed
    _no_foreign_frames()
    tls = {k: v for k, v in (("tls_ca_file", args.tls_ca_file), ("tls_worker_cert", args.tls_cert),
                             ("tls_worker_key", args.tls_key)) if v}
    # No TLS option: Dask's own settings (its config files, DASK_* variables) apply.
    security = distributed.Security(**tls, require_encryption=True) if tls else None
    try:
        worker = await distributed.Worker(
            args.scheduler, nthreads=_pool_size, name=args.name, host=args.host,
            death_timeout=args.death_timeout, security=security)
    except Exception as e:
        text = " ".join(str(e).split()) or type(e).__name__
        sys.stderr.write(f"parpy worker: cannot reach the Dask scheduler at {args.scheduler!r} "
                         f"({text})\n")
        raise SystemExit(1)
    import signal
    loop = asyncio.get_running_loop()
    # SIGTERM (a service manager stopping it): leave the scheduler cleanly.
    loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(worker.close()))
    sys.stderr.write(f"parpy worker {worker.address}: {_pool_size} sub-interpreters, "
                     f"scheduler {args.scheduler}\n")
    sys.stderr.flush()
    await worker.finished()
