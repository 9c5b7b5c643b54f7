"""Main side: the pool class behind ``parpy.Executor`` (:func:`_define_pool`)
and its maps; the default pool (:func:`_default_executor`); parallel calls
made inside a worker, which run right there (:class:`_Inline`); Dask
clusters (``parpy_cluster.py``, loaded at first use: :func:`_cluster`)."""

import sys as _sys

from ._native import (
    _call_end, _cancel, _cluster_info, _default_workers, _map_next, _map_start, _next_id,
    _pool_init, _pool_shutdown, _pool_start, _progress_add, _progress_set, _spmd_start, _submit,
)
from . import _base, _futures, _lifecycle, _shipping, _workerio
from ._base import _IN_WORKER, _PROGRESS_DEFAULT
from ._byvalue import _pickle_main_by_value
from ._compat import _compat_refuse_tracemalloc
from ._errors import _broken_worker, _outcome
from ._workerio import _StopLoad, _worker_config
from ._shipping import _fallback_fids, _fn_name, _func_spec
from ._output import _bar_end, _bar_start, _write_output
from ._queue import Queue
from ._spmd import _spmd_refused
from ._fallback import _fallback, _use_fallback
from ._futures import _materialize, _new_future, _pending, _stopped_pools
from ._lifecycle import _first_pool, _first_pool_rest, _live, _stop_daemon_thread, _too_late


_default = None     # the default pool (see _default_executor)
_PoolClass = None   # the pool class, made at first use (see _pool_class)


def _default_executor():
    global _default
    if _IN_WORKER or _base._IN_FALLBACK:
        return _Inline()
    if _default is None or _default._shutdown:
        cluster = _cluster_info()[1] is not None and _cluster().default_executor()
        _default = cluster or _pool_class()()
    return _default


def _check_chunksize(chunksize):
    if chunksize is not None and (not isinstance(chunksize, int) or chunksize < 1):
        raise ValueError("chunksize must be a positive integer")


class _Inline:
    """Inside a worker, parallel calls run right there (no nested pools)."""

    def _guard(self):
        if _workerio._loading_script:
            raise _StopLoad

    def submit(self, fn, /, *args, **kwargs):
        self._guard()
        import concurrent.futures
        fut = concurrent.futures.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as e:
            fut.set_exception(e)
        return fut

    def map(self, fn, *iterables, timeout=None, chunksize=None):
        self._guard()
        _check_chunksize(chunksize)
        return map(fn, *iterables)

    def _map(self, fn, iterables, chunksize, timeout, ordered=True, chunks=False, progress=None):
        it = self.map(fn, *iterables)
        return (list(it),) if chunks else it

    def spmd(self, fn, *args, **kwargs):
        self._guard()
        raise RuntimeError("parpy: spmd() cannot run inside a worker")


def _define_pool():
    """The pool class. It needs no concurrent.futures (a 25 ms import) until
    something asks for a Future, so ``@parallel`` map calls start faster."""
    import threading
    import time

    class _Pool:
        """A pool of own-GIL sub-interpreters (see :class:`Executor`)."""

        def __init__(self, max_workers=None, mp_context=None, initializer=None, initargs=()):
            # mp_context: accepted as ProcessPoolExecutor accepts it, and
            # unused: workers are sub-interpreters, never processes.
            if max_workers is None:
                max_workers = _default_workers()
            elif not isinstance(max_workers, int) or max_workers <= 0:
                raise ValueError("max_workers must be greater than 0")
            if initializer is not None and not callable(initializer):
                raise TypeError("initializer must be a callable")
            self._max_workers = max_workers
            self._initializer = initializer
            self._initargs = tuple(initargs)
            self._pool = None
            self._shutdown = False
            self._broken = False
            self._lock = threading.Lock()

        def _start(self):
            if _IN_WORKER or _base._IN_FALLBACK:
                return None
            if _too_late():
                _stop_daemon_thread()
                raise RuntimeError("cannot schedule new futures after interpreter shutdown")
            with self._lock:
                if self._broken:
                    raise _broken_worker()(self._broken)
                if self._shutdown:
                    raise RuntimeError("cannot schedule new futures after shutdown")
                if self._pool is None:
                    _compat_refuse_tracemalloc()
                    _first_pool()
                    # (_cfg: a parpy worker's pool for a script sent by a cluster client)
                    cfg = getattr(self, "_cfg", None)
                    if cfg is None:
                        cfg = _worker_config()
                        if cfg["script"] is None and cfg["module"] is None:
                            # The REPL, a notebook, -c: no file that workers
                            # could import what __main__ defines from.
                            _pickle_main_by_value()
                    self._pool = _pool_start(self._max_workers, cfg)
                    _first_pool_rest()
                    _live.add(self)
                    if self._initializer is not None:
                        import concurrent.futures as cf
                        import weakref
                        fid, spec = _func_spec(self._initializer)
                        report = _init_failure_reporter(weakref.ref(self), self._pool)
                        for tag in _pool_init(self._pool, fid, spec, self._initargs, _new_tags(self._max_workers)):
                            fut = cf.Future()
                            fut.add_done_callback(report)
                            _pending[tag] = fut
                return self._pool

        def submit(self, fn, /, *args, **kwargs):
            pool = self._pool
            if pool is None or self._shutdown or self._broken or _lifecycle._finalizing:
                pool = self._start()
                if pool is None:
                    return _Inline().submit(fn, *args, **kwargs)
            last = _shipping._last_spec
            fid, spec = last[1] if last[0]() is fn else _func_spec(fn)
            if fid in _fallback_fids:
                return _fallback().submit(spec, args, kwargs)
            tag = _next_id()
            call = (fid, spec, fn, args, kwargs)
            if _futures._future_cls is not None:
                fut = _futures._future_cls(pool, tag, call)
            else:
                fut = _new_future(pool, tag, call)
            _pending[tag] = fut
            try:
                _submit(pool, fid, spec, args, kwargs or None, tag)
            except BaseException:
                _pending.pop(tag, None)
                raise
            return fut

        submit.__doc__ = """Run ``fn(*args, **kwargs)`` on the pool; returns a Future."""

        def map(self, fn, *iterables, timeout=None, chunksize=1, buffersize=None, progress=None):
            """Like ``concurrent.futures.Executor.map``: all calls are queued
            now; results come back in input order. With ``buffersize`` (as in
            Python 3.14), at most ``buffersize * chunksize`` calls are queued
            or unread at a time, and the input is read only that far ahead.
            ``progress=True`` draws a live bar on stderr (default: ``--progress``)."""
            if buffersize is not None:
                if not isinstance(buffersize, int):
                    raise TypeError("buffersize must be an integer or None")
                if buffersize < 1:
                    raise ValueError("buffersize must be None or > 0")
                _check_chunksize(chunksize)
                return self._map_buffered(fn, iterables, timeout, buffersize * (chunksize or 1), progress)
            return self._map(fn, iterables, chunksize, timeout, ordered=True, progress=progress)

        def _map_buffered(self, fn, iterables, timeout, window, progress=None):
            """``map`` with a bounded window, one future per call, as the
            standard library's: the input is consumed as results are read."""
            import collections
            import itertools
            import weakref
            end = None if timeout is None else time.monotonic() + timeout
            total = None
            if progress or (progress is None and _PROGRESS_DEFAULT):
                try:
                    total = min(len(it) for it in iterables)
                except TypeError:
                    pass  # an iterator: the bar counts without a total
            bar = _bar_start(self._start(), fn, total, progress)
            args = zip(*iterables)
            fs = collections.deque(self.submit(fn, *a) for a in itertools.islice(args, window))
            me = weakref.ref(self)

            def results():
                try:
                    while fs:
                        ex = me()
                        if ex is not None:
                            nxt = next(args, None)
                            if nxt is not None:
                                fs.append(ex.submit(fn, *nxt))
                        del ex
                        fut = fs.popleft()
                        left = None if end is None else end - time.monotonic()
                        try:
                            result = fut.result(left)
                            if bar is not None:
                                _progress_add(bar, 1)
                            yield result
                        finally:
                            del fut
                            result = None
                finally:
                    for f in fs:
                        f.cancel()
                    _bar_end(bar)

            gen = results()
            if bar is not None:
                weakref.finalize(gen, _bar_end, bar)
            return gen

        def _map(self, fn, iterables, chunksize, timeout, ordered, chunks=False, progress=None):
            """The results of ``fn`` over ``iterables``: an iterator of values,
            or with ``chunks``, of lists of consecutive values. ``progress``:
            draw a bar (None: as ``--progress`` says)."""
            _check_chunksize(chunksize)
            pool = self._start()
            if not iterables:
                return iter(())  # zip() of nothing, as in concurrent.futures
            if pool is None:
                return _Inline()._map(fn, iterables, chunksize, timeout, chunks=chunks)
            if len(iterables) == 1:
                items, star = iterables[0], False
                if type(items) is not range and type(items) is not tuple:
                    items = list(items)  # a snapshot: immutable inputs need none
            else:
                items, star = list(zip(*iterables)), True
            end = None if timeout is None else time.monotonic() + timeout
            n = len(items)
            if n == 0:
                return iter(())
            if chunksize is None:
                chunksize = max(1, min(4096, n // (self._max_workers * 8)))
            fid, spec = _func_spec(fn)
            job = (fid, spec, fn, items, star)
            bar = _bar_start(pool, fn, n, progress)
            if fid in _fallback_fids:
                gen = _fallback_results(job, range(n), {}, end, ordered, bar=bar)
                return gen if chunks else (box.pop() for box in gen)
            try:
                call = _map_start(pool, fid, spec, items, star, chunksize, bar)
            except BaseException:
                _bar_end(bar)
                raise
            gen = (_result_chunks if chunks else _results)(call, n, end, ordered, job, bar)
            # A generator dropped before it starts never runs its finally; as
            # with concurrent.futures, its tasks still run (output included).
            import weakref
            weakref.finalize(gen, _map_dropped, call, bar)
            return gen

        def spmd(self, fn, *args, **kwargs):
            """Call ``fn(ctx, *args, **kwargs)`` on every worker at once;
            returns the results in rank order (``ctx.rank``)."""
            pool = self._start()
            if pool is None:
                return _Inline().spmd(fn, *args, **kwargs)
            fid, spec = _func_spec(fn)
            queue = Queue()
            call = _spmd_start(pool, fid, spec, args, kwargs, queue._id)
            results = [None] * self._max_workers
            errors = []
            try:
                got = 0
                while got < self._max_workers:
                    for ev in _map_next(call, None):
                        if ev[0] == 0:
                            _write_output(ev[1], ev[2])
                            continue
                        _, rank, status, payload = ev
                        got += 1
                        ok, value = _outcome(status, payload)
                        if status == 1 and payload[5]:
                            value = _spmd_refused(fn, payload[5], value)
                        if ok:
                            results[rank] = value
                        else:
                            errors.append((rank, value))
            finally:
                _call_end(call)
            if errors:
                errors.sort(key=lambda e: e[0])
                raise errors[0][1]
            return results

        def shutdown(self, wait=True, *, cancel_futures=False):
            self._shutdown_pool(wait, cancel_futures, stop=False)

        shutdown.__doc__ = """Stop accepting work; with ``wait``, wait for the workers to end.
            ``cancel_futures=True`` cancels the tasks that have not started;
            running ones finish, as in ``concurrent.futures``."""

        def _shutdown_pool(self, wait, cancel_futures, stop):
            with self._lock:
                self._shutdown = True
                pool = self._pool
            if pool is not None:
                if cancel_futures:
                    for fut in list(_pending.values()):
                        if getattr(fut, "_parpy_job", (None,))[0] == pool:
                            fut.cancel()
                if stop:
                    _stopped_pools.add(pool)
                _pool_shutdown(pool, wait, cancel_futures, stop)
                if wait:
                    _live.discard(self)

        def terminate_workers(self):
            """As ``ProcessPoolExecutor.terminate_workers()`` (Python 3.14):
            shuts the pool down at once, cancels the tasks that have not
            started and stops the running ones. Workers are sub-interpreters,
            which no signal can end: a running task gets ``KeyboardInterrupt``
            (its future then fails with ``parpy.BrokenWorker``), and a task
            stuck in C code ends when that call returns."""
            self._force_shutdown(operation="terminate")

        def kill_workers(self):
            """As ``ProcessPoolExecutor.kill_workers()`` (Python 3.14); for
            sub-interpreters the same as :meth:`terminate_workers`."""
            self._force_shutdown(operation="kill")

        def _force_shutdown(self, operation):
            if operation not in ("terminate", "kill"):
                raise ValueError(f"Unsupported operation: {operation!r}")
            self._shutdown_pool(False, True, stop=True)

        def __enter__(self):
            return self

        def __exit__(self, exc_type, exc_val, exc_tb):
            self.shutdown(wait=True)
            return False

        @property
        def max_workers(self):
            return self._max_workers

        def __del__(self):
            if getattr(self, "_pool", None) is not None and not self._shutdown:
                try:
                    self.shutdown(wait=False)
                except Exception:
                    pass

    def _chunks(call, n, end):
        """``(start, values, outcomes)`` per finished chunk; writes output."""
        got = 0
        while got < n:
            timeout = None if end is None else max(0.0, end - time.monotonic())
            events = _map_next(call, timeout)
            if not events:
                raise TimeoutError()
            for ev in events:
                if ev[0] == 0:
                    _write_output(ev[1], ev[2])
                    continue
                _, _tag, start, values, outcomes = ev
                got += len(values if values is not None else outcomes)
                yield start, values, outcomes

    def _map_dropped(call, bar):
        _call_end(call, False)
        _bar_end(bar)

    def _results(call, n, end, ordered, job, bar):
        """Yields a map's results one by one (see ``_result_chunks``)."""
        for values in _result_chunks(call, n, end, ordered, job, bar):
            # Popped as yielded: a result is not kept alive by its chunk
            # once the caller has it.
            values.reverse()
            while values:
                yield values.pop()

    def _result_chunks(call, n, end, ordered, job, bar):
        """Yields a map's results as lists, a chunk at a time: a per-item
        step here would cost more than the task itself. Items refused by a
        sub-interpreter (and everything not yet done) move to the fallback
        pool. A failed item raises after the lists of the items before it.
        The caller may empty each list it gets: nothing here reads one after
        handing it out, so results are not kept alive here."""
        waiting = {}      # ordered: start -> (values, has failures) of a chunk done early
        nxt = 0           # ordered: the index of the next result to yield
        seen = []         # unordered: (start, count) of the chunks yielded
        try:
            for start, values, outcomes in _chunks(call, n, end):
                failures = values is None
                if failures:
                    values = []
                    for status, payload in outcomes:
                        if status == 1 and payload[5] and _use_fallback(job[0], _fn_name(job[2]), payload[5]):
                            # Skip what has not started; running chunks of a
                            # refused function end by themselves: an interrupt
                            # could land in their imports (a leaked file there).
                            _call_end(call, True, False)
                            if ordered:
                                done = {start + i: v for i, v in enumerate(values)}
                                for s, (vs, _f) in waiting.items():
                                    done.update((s + i, v) for i, v in enumerate(vs))
                                todo = [i for i in range(nxt, n) if i not in done]
                            else:
                                seen.append((start, len(values)))
                                yield values
                                finished = set()
                                for s, c in seen:
                                    finished.update(range(s, s + c))
                                todo = [i for i in range(n) if i not in finished]
                                done = {}
                            if bar is not None:
                                _progress_set(bar, n - len(todo))  # the refused calls are redone
                            yield from _fallback_results(job, todo, done, end, ordered, nxt, bar)
                            return
                        ok, value = _outcome(status, payload)
                        if not ok:
                            if not ordered:
                                yield values
                                raise value
                            value = _Failed(value)
                        values.append(value)
                    outcomes.clear()  # they hold the results too
                    status = payload = value = None
                if not ordered:
                    seen.append((start, len(values)))
                    yield values
                    continue
                if start != nxt:
                    waiting[start] = (values, failures)
                    continue
                while True:
                    if failures:
                        for i, v in enumerate(values):
                            if type(v) is _Failed:
                                exc = v.exc
                                del values[i:], v
                                yield values
                                raise exc
                        v = None
                    nxt += len(values)
                    yield values
                    values, failures = waiting.pop(nxt, (None, False))
                    if values is None:
                        break
        finally:
            _call_end(call)
            _bar_end(bar)

    class _Failed:
        """A map item's exception, waiting for its turn (ordered results)."""
        __slots__ = ("exc",)

        def __init__(self, exc):
            self.exc = exc

    def _fallback_results(job, todo, done, end, ordered, first=0, bar=None):
        """Runs items ``todo`` of a map in the fallback pool; ``done`` holds
        results already computed (ordered mode). Yields one-item lists that
        the caller may empty (nothing here keeps a yielded result)."""
        fid, spec, fn, items, star = job
        fb = _fallback()
        futs = {i: fb.submit(spec, tuple(items[i]) if star else (items[i],), None) for i in todo}
        if bar is not None:
            for f in futs.values():
                f.add_done_callback(lambda f: f.cancelled() or _progress_add(bar, 1))
        try:
            if ordered:
                for i in range(first, len(items)):
                    if i in done:
                        box = [done.pop(i)]
                        if type(box[0]) is _Failed:
                            raise box[0].exc
                    else:
                        timeout = None if end is None else max(0.0, end - time.monotonic())
                        box = [futs.pop(i).result(timeout)]
                    yield box
            else:
                import concurrent.futures as cf
                index = {id(f): i for i, f in futs.items()}
                for f in cf.as_completed(list(futs.values()), None if end is None else max(0.0, end - time.monotonic())):
                    del futs[index[id(f)]]
                    box = [f.result()]
                    f = None
                    yield box
        finally:
            for f in futs.values():
                f.cancel()
            _bar_end(bar)

    return _Pool


def _init_failure_reporter(executor_ref, pool):
    """The done-callback of an initializer's run in one worker. A failure
    is logged as ``concurrent.futures`` logs it, breaks the executor, and
    fails its pending futures with ``parpy.BrokenWorker``."""
    def report(fut):
        exc = fut.exception()
        if exc is None:
            return
        from concurrent.futures import _base
        _base.LOGGER.critical("Exception in initializer:", exc_info=exc)
        ex = executor_ref()
        if ex is None or ex._broken:
            return
        ex._broken = "A worker's initializer failed, the parpy pool is not usable anymore"
        broken = _broken_worker()
        for tag, f in list(_pending.items()):
            if getattr(f, "_parpy_job", (None,))[0] == pool and _cancel(pool, tag):
                _pending.pop(tag, None)
                try:
                    _materialize(f).set_exception(broken(ex._broken))
                except Exception:
                    pass
    return report


def _new_tag():
    return _next_id()


def _new_tags(n):
    return [_new_tag() for _ in range(n)]


def _pool_class():
    global _PoolClass
    if _PoolClass is None:
        _PoolClass = _define_pool()
    return _PoolClass


# ---------------------------------------------------------------------------
# Dask clusters (parpy_cluster.py, embedded as source)
# ---------------------------------------------------------------------------

def _cluster():
    """The ``parpy_cluster`` module, compiled at first use in this interpreter."""
    mod = _sys.modules.get("parpy_cluster")
    if mod is None:
        import types
        mod = types.ModuleType("parpy_cluster")
        _sys.modules["parpy_cluster"] = mod
        try:
            exec(compile(_cluster_info()[0], "<parpy_cluster>", "exec"), mod.__dict__)
        except BaseException:
            del _sys.modules["parpy_cluster"]
            raise
    return mod


def _cluster_call(payload, live=None):
    """A cluster chunk, run in a parpy worker's sub-interpreter (``live``: the
    ``parpy.Queue`` its output lines go to as they are printed, or None)."""
    return _cluster().run_payload(payload, live)


def _cluster_init(payload):
    """A cluster executor's initializer, run in each sub-interpreter of a parpy worker's pool."""
    _cluster().run_init(payload)
