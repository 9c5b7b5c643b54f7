"""True parallelism for Python: own-GIL sub-interpreters on OS threads.

parpy runs under the ``parpy`` launcher (which freezes this package) or in
an ordinary ``python`` (the wheel ships it as source). Each worker is a
sub-interpreter with its own GIL (PEP 684) running on its own OS thread;
the main interpreter orchestrates. Values travel between interpreters as
copies (built-in data natively, anything else through pickle).

    import parpy

    @parpy.parallel
    def score(item, weight=1):
        ...

    score(3)                         # a plain call runs right here
    fut = score.submit(3, weight=2)  # concurrent.futures.Future
    out = score.map(items)           # results in input order

    with parpy.Executor(max_workers=4) as ex:
        ex.submit(fn, *args)

A script may define ``__parallel__(ctx)``: after the script body has run,
parpy calls it on every worker at once (``ctx.rank`` in 0..N-1, ``ctx.size``
is N) and passes the results, in rank order, to ``__gather__(results)`` if
the script defines it.
"""

__all__ = [
    "parallel", "ParallelFunction", "Executor", "Queue", "Context", "spmd",
    "workers", "worker_id", "RemoteTraceback", "share", "SharedBytes",
]

# The native half (_pool_start, _submit, …): a built-in module of the
# launcher, an extension module of the wheel; the same Rust code either way.
# Each module imports the native functions it uses from it.
from types import GenericAlias as _GenericAlias

from parpy import _native
from ._native import SharedBytes, _cluster_info, _default_workers, _fallback_mode, _script_path, _share

# A worker's _LineWriter may hold a partial line: set by _workerio, read by
# the worker loop (Rust, as parpy._unflushed) after each job.
_unflushed = False

# The modules, each on the ones before it. The private names here are the
# ones reached as parpy.X: by the Rust side (the worker loop's hooks,
# _cluster), parpy_check.py and parpy_cluster.py, a fallback process's
# command line (_fallback_child), and tests.
from ._base import _IN_WORKER, _WID, _lookup
from ._byvalue import _dumps
from ._compat import _update_wrapper
from ._errors import RemoteTraceback, _broken_worker, _pack_exc, _refused_module, _unpack_exc
from ._refusals import _probe_import, _refused_during, _refused_here, _taint, _watch_refusals
from ._workerio import _flush_output, _main_module_name, _worker_setup, _worker_teardown
from ._shipping import _func_spec, _make_spec, _resolve
from ._queue import Queue
from ._spmd import Context, _spmd_entry
from ._fallback import _FallbackPool, _fallback_child
from ._futures import _drive, _future_class
from ._pool import _cluster, _cluster_call, _cluster_init, _default_executor, _pool_class
from ._entry import _install_main_hooks, _main_body_returned


def share(data):
    """Copy ``data`` (bytes-like) once into memory that every interpreter can
    read: passing the result to tasks costs a pointer, not a copy, however
    large it is. Workers get a :class:`SharedBytes`; use ``memoryview(s)``,
    ``len(s)`` or ``bytes(s)`` (a copy) on it."""
    return _share(data if type(data) is bytes else bytes(data))


def workers():
    """The size of the default pool (``-j N``, ``PARPY_WORKERS`` or the CPUs usable)."""
    return _default_workers()


def worker_id():
    """``None`` in the main interpreter, ``0..N-1`` inside a worker."""
    return _WID


# ---------------------------------------------------------------------------
# @parallel
# ---------------------------------------------------------------------------

class ParallelFunction:
    """A function that can also run on the worker pool (see :func:`parallel`)."""

    # ParallelFunction[P, R] in annotations evaluated at run time (the stubs' generic).
    __class_getitem__ = classmethod(_GenericAlias)

    def __init__(self, fn):
        if not callable(fn):
            raise TypeError(f"parpy.parallel needs a callable, not {type(fn).__name__}")
        _update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        return self.__wrapped__(*args, **kwargs)

    def __repr__(self):
        return f"<parpy.parallel {self.__wrapped__!r}>"

    def __reduce__(self):
        # Pickled by reference, like the function it wraps.
        return self.__qualname__

    def submit(self, *args, **kwargs):
        """Run ``fn(*args, **kwargs)`` on the default pool; returns a Future."""
        return _default_executor().submit(self.__wrapped__, *args, **kwargs)

    def map(self, *iterables, chunksize=None, timeout=None, progress=None):
        """``list(map(fn, *iterables))`` computed on the pool, in input order.
        ``progress=True`` draws a live bar on stderr (default: ``--progress``)."""
        out = []
        for values in _default_executor()._map(self.__wrapped__, iterables, chunksize,
                                               timeout, ordered=True, chunks=True,
                                               progress=progress):
            out += values
        return out

    def map_unordered(self, *iterables, chunksize=None, timeout=None, progress=None):
        """Yields ``fn(*args)`` results as they complete, in any order."""
        return _default_executor()._map(self.__wrapped__, iterables, chunksize, timeout,
                                        ordered=False, progress=progress)



def parallel(fn):
    """Decorator: ``fn`` still runs normally when called, and gains
    ``.submit()``, ``.map()`` and ``.map_unordered()`` that run it on the pool."""
    return ParallelFunction(fn)


def spmd(fn, *args, **kwargs):
    """Call ``fn(ctx, *args, **kwargs)`` on every worker of the default pool at
    once; returns the results in rank order."""
    return _default_executor().spmd(fn, *args, **kwargs)


_Executor = None


def __getattr__(name):
    global _Executor
    if name == "BrokenWorker":
        return _broken_worker()
    if name == "Executor":
        if _Executor is None:
            import concurrent.futures as cf

            class Executor(_pool_class(), cf.Executor):
                """A pool of own-GIL sub-interpreters: a ``concurrent.futures.Executor``
                and a drop-in for ``ProcessPoolExecutor``, plus ``spmd()``.

                ``Executor(max_workers=None, mp_context=None, initializer=None, initargs=())``; the
                workers start on first use. ``Executor(cluster="tcp://HOST:PORT")`` runs
                the tasks on the sub-interpreters of a Dask cluster's ``parpy worker``s."""

                def __new__(cls, *args, cluster=None, **kwargs):
                    if cluster is not None:
                        return _cluster().ClusterExecutor(cluster, *args, **kwargs)
                    return super().__new__(cls)

                def __init__(self, *args, cluster=None, **kwargs):
                    super().__init__(*args, **kwargs)

            Executor.__module__ = "parpy"
            _Executor = Executor
        return _Executor
    raise AttributeError(f"module 'parpy' has no attribute {name!r}")


if not _IN_WORKER:
    _install_main_hooks()
