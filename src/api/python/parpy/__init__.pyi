# Type stubs for parpy (PEP 561: py.typed sits next to this file). parpy
# runs on CPython 3.12+ only, so these use 3.12 syntax (PEP 695 generics).
# The runtime module is __init__.py and its native half parpy._native; what
# is declared here is its public API, as README.md documents it.

import concurrent.futures
from collections.abc import Buffer, Callable, Iterable, Iterator
from multiprocessing.context import BaseContext
from types import TracebackType
from typing import Any, Concatenate, Literal, Self, final, overload

__all__ = [
    "parallel", "ParallelFunction", "Executor", "Queue", "Context", "spmd",
    "workers", "worker_id", "RemoteTraceback", "share", "SharedBytes",
]

# --- values shared between interpreters ------------------------------------

@final
class SharedBytes:
    """Read-only bytes shared by all interpreters without copying; see
    :func:`share`. Not instantiable: ``share(data)`` makes them. Use
    ``memoryview(s)``, ``len(s)`` or ``bytes(s)`` (a copy)."""

    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...

def share(data: Buffer) -> SharedBytes:
    """Copy ``data`` (bytes-like) once into memory that every interpreter reads."""
    ...

def workers() -> int:
    """The size of the default pool (``-j N``, ``PARPY_WORKERS`` or the CPUs usable)."""
    ...

def worker_id() -> int | None:
    """``None`` in the main interpreter, ``0..N-1`` inside a worker."""
    ...

class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, attached as ``__cause__``."""

    tb: str
    def __init__(self, tb: str) -> None: ...

class BrokenWorker(concurrent.futures.BrokenExecutor):
    """``parpy.BrokenWorker``: a worker failed to start, the pool's
    initializer failed, or the task was stopped by ``terminate_workers()``.
    (Made at first use, through the module's ``__getattr__``: not in ``__all__``.)"""

# --- Queue and the SPMD context ---------------------------------------------

class Queue[T]:
    """A FIFO shared by the main interpreter and all workers; ``get``/``put``
    follow :class:`queue.Queue` (``queue.Full`` / ``queue.Empty``). Items are
    copied like task arguments. Annotate it as ``Queue[int]`` like ``queue.Queue``."""

    maxsize: int
    def __init__(self, maxsize: int = 0) -> None: ...
    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None: ...
    def put_nowait(self, item: T) -> None: ...
    def get(self, block: bool = True, timeout: float | None = None) -> T: ...
    def get_nowait(self) -> T: ...
    def qsize(self) -> int: ...
    def empty(self) -> bool: ...

class Context:
    """What ``__parallel__(ctx)`` and :func:`spmd` functions receive."""

    rank: int
    """This rank, ``0..size-1``."""
    size: int
    """How many ranks run at once."""
    queue: Queue[Any] | None
    """A queue shared by all ranks; None on a cluster (``--cluster``,
    ``Executor(cluster=...)``), where no queue spans hosts."""
    def __init__(self, rank: int, size: int, queue: Queue[Any] | None) -> None: ...

# --- @parallel ----------------------------------------------------------------

class ParallelFunction[**P, R]:
    """A function that can also run on the worker pool (see :func:`parallel`).
    A plain call runs it right here."""

    __name__: str
    __qualname__: str
    __module__: str
    @property
    def __wrapped__(self) -> Callable[P, R]: ...
    def __init__(self, fn: Callable[P, R]) -> None: ...
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...
    def submit(self, *args: P.args, **kwargs: P.kwargs) -> concurrent.futures.Future[R]:
        """Run ``fn(*args, **kwargs)`` on the default pool; returns a Future."""
        ...
    # ``map`` calls ``fn(*items)`` with one item of each iterable, which a
    # ParamSpec cannot split into per-iterable types (concurrent.futures'
    # own ``Executor.map`` is typed the same way): the items are unchecked,
    # the results are ``R``.
    def map(
        self,
        *iterables: Iterable[Any],
        chunksize: int | None = None,
        timeout: float | None = None,
        progress: bool | None = None,
    ) -> list[R]:
        """``list(map(fn, *iterables))`` computed on the pool, in input order.
        ``progress=True`` draws a live bar on stderr (default: ``--progress``)."""
        ...
    def map_unordered(
        self,
        *iterables: Iterable[Any],
        chunksize: int | None = None,
        timeout: float | None = None,
        progress: bool | None = None,
    ) -> Iterator[R]:
        """Yields ``fn(*args)`` results as they complete, in any order."""
        ...

def parallel[**P, R](fn: Callable[P, R]) -> ParallelFunction[P, R]:
    """Decorator: ``fn`` still runs normally when called, and gains
    ``.submit()``, ``.map()`` and ``.map_unordered()`` that run it on the pool."""
    ...

def spmd[**P, R](fn: Callable[Concatenate[Context, P], R], /, *args: P.args, **kwargs: P.kwargs) -> list[R]:
    """Call ``fn(ctx, *args, **kwargs)`` on every worker of the default pool at
    once; returns the results in rank order."""
    ...

# --- Executor -------------------------------------------------------------------

class Executor(concurrent.futures.Executor):
    """A pool of own-GIL sub-interpreters: a ``concurrent.futures.Executor``
    and a drop-in for ``ProcessPoolExecutor``, plus ``spmd()``. The workers
    start on first use. ``Executor(cluster="tcp://HOST:PORT")`` runs the tasks
    on a Dask cluster's ``parpy worker``s (its initializer runs in every
    sub-interpreter of every worker; it has ``submit``, ``map``, ``spmd``,
    ``shutdown`` and ``with``, not the rest)."""

    # As ProcessPoolExecutor: ``initializer(*initargs)`` runs in each worker.
    # ``mp_context`` is accepted and unused (workers are never processes).
    @overload
    def __init__(
        self,
        max_workers: int | None = None,
        mp_context: BaseContext | None = None,
        initializer: Callable[[], object] | None = None,
        initargs: tuple[()] = (),
        *,
        cluster: str | None = None,
    ) -> None: ...
    @overload
    def __init__[*Ts](
        self,
        max_workers: int | None = None,
        mp_context: BaseContext | None = None,
        *,
        initializer: Callable[[*Ts], object],
        initargs: tuple[*Ts],
        cluster: str | None = None,
    ) -> None: ...
    @overload
    def __init__[*Ts](
        self,
        max_workers: int | None,
        mp_context: BaseContext | None,
        initializer: Callable[[*Ts], object],
        initargs: tuple[*Ts],
        *,
        cluster: str | None = None,
    ) -> None: ...
    def submit[**P, R](
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[R]:
        """Run ``fn(*args, **kwargs)`` on the pool; returns a Future."""
        ...
    def map[R](
        self,
        fn: Callable[..., R],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = 1,
        buffersize: int | None = None,
        progress: bool | None = None,
    ) -> Iterator[R]:
        """Like ``concurrent.futures.Executor.map``: results in input order.
        ``chunksize=None`` picks one from the input's length; ``buffersize``
        (as in Python 3.14) bounds how far ahead the input is read;
        ``progress=True`` draws a live bar on stderr (default: ``--progress``)."""
        ...
    def spmd[**P, R](
        self, fn: Callable[Concatenate[Context, P], R], /, *args: P.args, **kwargs: P.kwargs
    ) -> list[R]:
        """Call ``fn(ctx, *args, **kwargs)`` on every worker at once;
        returns the results in rank order (``ctx.rank``)."""
        ...
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...
    def terminate_workers(self) -> None:
        """As ``ProcessPoolExecutor.terminate_workers()`` (Python 3.14)."""
        ...
    def kill_workers(self) -> None:
        """As ``ProcessPoolExecutor.kill_workers()``; the same as :meth:`terminate_workers`."""
        ...
    @property
    def max_workers(self) -> int: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> Literal[False]: ...
