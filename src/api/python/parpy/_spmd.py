"""SPMD ranks: :class:`Context`, what ``__parallel__(ctx)`` and ``spmd()``
functions receive, made in the worker by :func:`_spmd_entry`; the error of
a rank whose module refused its sub-interpreter (:func:`_spmd_refused`)."""

from ._native import _fallback_mode
from ._queue import Queue
from ._shipping import _fn_name


class Context:
    """What ``__parallel__(ctx)`` and :func:`spmd` functions receive."""

    def __init__(self, rank, size, queue):
        self.rank = rank
        self.size = size
        self.queue = queue

    def __repr__(self):
        return f"<parpy.Context rank={self.rank} size={self.size}>"


Context.__module__ = "parpy"


def _spmd_entry(fn, rank, size, qid, args, kwargs):
    return fn(Context(rank, size, Queue._attach(qid)), *args, **kwargs)


def _spmd_refused(fn, module, exc):
    """The error of an SPMD rank whose module refused its sub-interpreter."""
    err = ImportError(
        f"parpy: {_fn_name(fn)} needs module {module!r}, which cannot load in a "
        "sub-interpreter. spmd() and __parallel__ have no fallback: their ranks run "
        "at once and share ctx.queue, a parpy.Queue that worker processes cannot "
        f"reach, so --fallback={_fallback_mode()} (which covers submit() and map()) "
        "cannot fall back for them. Use that module in functions run with submit() "
        "or map(), or do without it in the SPMD function.", name=module)
    err.__cause__ = exc
    return err
