"""Everything that differs between the CPython versions parpy runs on, or
that reaches into a private part of the standard library, is here and only
here. Each entry names the upstream issue and the versions it applies to,
so that dropping a version deletes lines. (Releases parpy refuses outright,
and the Rust-side quirks, are in src/ffi/compat/.)"""

import sys as _sys


# 3.12 runs a single-phase extension module's init function in the
# importing own-GIL worker, and refuses the module only after it returned
# (3.13 runs it in the main interpreter: gh-117953). Two workers importing
# such a module at once (readline, in spmd ranks) then race in its C
# globals: a segfault now and then. Workers there initialise extension
# modules one at a time (see :func:`_watch_refusals`).
_COMPAT_SERIAL_EXT_INIT = _sys.version_info < (3, 13)


def _compat_main_preimports():
    """Main interpreter, once, before the first worker starts.

    3.13+: ``_datetime`` imported in two or more sub-interpreters corrupts
    the heap when they end unless the main interpreter imported it first
    (gh-136421, gh-136423). 3.12: nothing; ``_datetime`` and ``_decimal``
    are single-phase modules there that workers refuse to load at all."""
    if _sys.version_info >= (3, 13):
        try:
            import _datetime  # noqa: F401
        except ImportError:
            pass


def _compat_worker_start():
    """Worker interpreter, first thing.

    3.12 only: ``_datetime`` is a single-phase extension module (multi-phase
    from 3.13, gh-117398), refused by own-GIL interpreters, so ``datetime``
    falls back to ``_pydatetime``. Its classes name themselves
    ``_pydatetime.date`` and so on, and a date returned to the main
    interpreter unpickled there as that pure-Python class, unequal to
    ``datetime.date``. Relabelled ``datetime``, they unpickle as the main
    interpreter's own types (``_pydecimal`` does the same for ``decimal``).
    ``_zoneinfo`` needs the C datetime API that workers lack and fails with
    AttributeError rather than ImportError; blocked, ``zoneinfo`` uses its
    pure-Python ``zoneinfo._zoneinfo``, relabelled likewise."""
    if _sys.version_info >= (3, 13):
        return
    _sys.modules.setdefault("_zoneinfo", None)
    _sys.meta_path.insert(0, _Relabel312())


class _Relabel312:
    """3.12 workers (see :func:`_compat_worker_start`): a meta path finder
    that lets ``_pydatetime`` and ``zoneinfo._zoneinfo`` load as usual, then
    gives their public classes the module name that pickles them as the
    main interpreter's C types. Loaded only when a task imports them."""

    _modules = {"_pydatetime": "datetime", "zoneinfo._zoneinfo": "zoneinfo"}

    def find_spec(self, name, path=None, target=None):
        label = self._modules.get(name)
        if label is None:
            return None
        from importlib.machinery import PathFinder
        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_relabel(module):
            exec_module(module)
            for attr in ("date", "datetime", "time", "timedelta", "tzinfo", "timezone", "ZoneInfo"):
                cls = module.__dict__.get(attr)
                if isinstance(cls, type) and cls.__module__ == name:  # not an imported one
                    cls.__module__ = label
            tz = module.__dict__.get("timezone")
            if name == "_pydatetime" and isinstance(tz, type):
                # Pickled as the C type is: (timezone, (offset[, name])).
                # _pydatetime's own pickle adds slot state that the C
                # timezone cannot take.
                tz.__reduce__ = lambda self: (type(self), self.__getinitargs__())

        spec.loader.exec_module = exec_and_relabel
        return spec


def _compat_register_early_exit(fn):
    """Runs ``fn`` when the main thread ends, before non-daemon threads are
    joined and before ``atexit``. 3.12+: the private
    ``threading._register_atexit`` (a public one is asked for in gh-86128 and
    gh-126168). On 3.12.0-3.12.2 no thread can start there (gh-113964, fixed
    in 3.12.3); parpy refuses those releases for gh-119213 anyway."""
    import threading
    threading._register_atexit(fn)


def _compat_forget_atexit():
    """Drops the ``atexit`` handlers registered in this (worker)
    interpreter. 3.12+: the private ``atexit._clear``."""
    import atexit
    atexit._clear()


def _compat_refuse_tracemalloc():
    """Main, before each pool starts. 3.12-3.14: while tracemalloc traces,
    creating a sub-interpreter on a thread that has no thread state (every
    worker's) deadlocks in CPython: the runtime's lock is held around an
    allocation that tracemalloc's hook answers with PyGILState_Ensure, which
    takes that lock again (gh-155725, fixed in 3.15; the pattern of
    gh-96071). Refused with the way out, instead of a hang."""
    if _sys.version_info >= (3, 15):
        return
    tm = _sys.modules.get("tracemalloc")
    if tm is not None and tm.is_tracing():
        raise RuntimeError(
            "parpy: cannot start workers while tracemalloc is tracing: on Python "
            f"{_sys.version_info[0]}.{_sys.version_info[1]} creating a sub-interpreter then "
            "deadlocks in CPython (python/cpython#155725, fixed in 3.15). Call "
            "tracemalloc.stop() first, or use Python 3.15.")


def _compat_drop_dummy_thread():
    """A task that called ``threading.current_thread()`` made a dummy Thread
    for the (non-Python) worker thread; let it go while ``threading`` still
    works, not during finalization, where it complains. 3.13+: it is kept
    alive by the private ``threading._thread_local_info``; 3.12 has no such
    reference."""
    threading = _sys.modules.get("threading")
    info = getattr(threading, "_thread_local_info", None)
    try:
        del info._track_dummy_thread_ref
    except AttributeError:
        pass


def _update_wrapper(wrapper, fn):
    """``functools.update_wrapper(wrapper, fn)``. 3.12 and 3.13: without
    importing functools (and collections), copying the attributes that
    these versions copy; 3.14+ copies ``__annotate__`` as well, so use it."""
    if _sys.version_info >= (3, 14):
        import functools
        functools.update_wrapper(wrapper, fn)
        return
    for attr in ("__module__", "__name__", "__qualname__", "__doc__", "__annotations__", "__type_params__"):
        try:
            value = getattr(fn, attr)
        except AttributeError:
            pass
        else:
            setattr(wrapper, attr, value)
    wrapper.__dict__.update(getattr(fn, "__dict__", {}))
    wrapper.__wrapped__ = fn


# gh-119213 (3.12.0-3.12.3, refused at build time, built anyway only with
# PARPY_ALLOW_REFUSED_PYTHON=1): parpy's own calls into C functions pass their
# arguments positionally, as in ``pickle.dumps(x, 5)``, so that parpy itself
# never makes a worker the first caller with keyword arguments.
