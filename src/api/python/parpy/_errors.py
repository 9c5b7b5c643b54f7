"""Exceptions as they travel: a worker packs what a task raised
(:func:`_pack_exc`), main rebuilds it with the worker's traceback as its
cause (:func:`_unpack_exc`, :class:`RemoteTraceback`); an ImportError that
says a module refused a sub-interpreter (:func:`_refused_module`); the
native status codes of outcomes (:func:`_outcome`); ``parpy.BrokenWorker``."""

import sys as _sys

from ._base import _lookup
from ._byvalue import _pickler


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, attached as ``__cause__``."""

    def __init__(self, tb):
        super().__init__(tb)
        self.tb = tb

    def __str__(self):
        return self.tb


RemoteTraceback.__module__ = "parpy"  # as pickles and tracebacks name it


def _pack_exc(exc):
    """Worker side: ``(pickled or None, module, qualname, message, traceback)``."""
    import traceback
    import pickle
    cls = type(exc)
    refused = _refused_module(exc)
    if refused:
        name = refused
        new = ImportError(
            f"module {name!r} cannot be loaded in a parpy worker: it does not support "
            "sub-interpreters with their own GIL (it is a single-phase or "
            "PyO3-built extension, like numpy). Run parpy with --fallback=process "
            "(the default) or --fallback=main to run such tasks elsewhere.",
            name=name)
        new.__traceback__ = exc.__traceback__
        exc = new
    tb = "".join(traceback.format_exception(exc))
    try:
        data = _pickler()(exc, 5)
        pickle.loads(data)
    except Exception:
        data = None
    try:
        msg = str(exc)
    except Exception:
        msg = "<unprintable exception>"
    return (data, cls.__module__, cls.__qualname__, msg, tb, refused)


def _refused_module(exc):
    """The module's name if ``exc`` (or what caused it) says that it cannot
    load in a sub-interpreter, else None."""
    import re
    seen = 0
    while isinstance(exc, BaseException) and seen < 8:
        if isinstance(exc, ImportError):
            m = re.search(r"module '?([\w.]+)'? does not support loading in subinterpreters", str(exc))
            if m:
                return m.group(1)
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _unpack_exc(packed):
    """Main side: rebuild a worker's exception, with its traceback as ``__cause__``."""
    data, module, qualname, msg, tb, _refused = packed
    exc = None
    if data is not None:
        import pickle
        try:
            exc = pickle.loads(data)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = None
        try:
            mod = _sys.modules.get("__main__" if module == "__mp_main__" else module)
            cls = _lookup(mod, qualname) if mod is not None else None
            if isinstance(cls, type) and issubclass(cls, BaseException):
                exc = cls(msg)
        except Exception:
            exc = None
        if exc is None:
            exc = RuntimeError(f"{qualname}: {msg}")
    exc.__cause__ = RemoteTraceback('\n"""\n' + tb + '"""')
    return exc


_BrokenWorker = None


def _broken_worker():
    """``parpy.BrokenWorker``, a ``concurrent.futures.BrokenExecutor``
    (made at first use: concurrent.futures is a 20 ms import)."""
    global _BrokenWorker
    if _BrokenWorker is None:
        from concurrent.futures import BrokenExecutor

        class BrokenWorker(BrokenExecutor):
            """parpy could not run a task: a worker failed to start, the
            pool's initializer failed, or the task was stopped by
            ``terminate_workers()``."""

        BrokenWorker.__module__ = "parpy"  # and its __qualname__: pickles name it so
        BrokenWorker.__qualname__ = "BrokenWorker"
        _BrokenWorker = BrokenWorker
    return _BrokenWorker


def _outcome(status, payload):
    """``(ok, value_or_exception)`` from a native status code."""
    if status == 0:
        return True, payload
    if status == 1:
        return False, _unpack_exc(payload)
    if status == 2:
        return False, _broken_worker()("parpy: " + payload)
    if status == 3:
        import concurrent.futures
        return False, concurrent.futures.CancelledError()
    return False, payload  # 4: the exception raised while decoding
