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

import sys as _sys

__all__ = [
    "parallel", "ParallelFunction", "Executor", "Queue", "Context", "spmd",
    "workers", "worker_id", "RemoteTraceback", "share", "SharedBytes",
]

# The native half (_pool_start, _submit, …): a built-in module of the
# launcher, an extension module of the wheel; the same Rust code either way.
from parpy import _native
globals().update({k: v for k, v in vars(_native).items() if not k.startswith("__")})

_IN_WORKER = _worker_id() is not None
_WID = _worker_id()
# --stats or --timeline on; maps draw a bar unless told not to (--progress);
# --timeline on. Fixed for the process's life.
_RECORDING, _PROGRESS_DEFAULT, _TIMELINE = _observe_flags()
_bars = set()  # progress bars being drawn: output is written around them


# --- compat -----------------------------------------------------------------
# Everything that differs between the CPython versions parpy runs on, or that
# reaches into a private part of the standard library, is here and only here.
# Each entry names the upstream issue and the versions it applies to, so that
# dropping a version deletes lines. (Releases parpy refuses outright, and the
# Rust-side quirks, are in src/ffi/compat/.) One block of this file rather
# than a module of its own: the launcher freezes one module, parpy.py.

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

# --- end of compat ----------------------------------------------------------


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, attached as ``__cause__``."""

    def __init__(self, tb):
        super().__init__(tb)
        self.tb = tb

    def __str__(self):
        return self.tb


class _StopLoad(BaseException):
    """Ends a worker's import of the script at its first parallel call."""


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


# ---------------------------------------------------------------------------
# Functions as they travel
# ---------------------------------------------------------------------------

_spec_cache = None      # weakref(fn) -> (fid, spec), for as long as fn lives
_next_fid = 0


def _no_ref():
    return None


_last_spec = (_no_ref, None)  # (weakref to the last function looked up, its (fid, spec))


def _lookup(module, qualname):
    obj = module
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _script_loadable():
    return _script_path() is not None or _main_module_name() is not None


def _main_module_name():
    main = _sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None)
    return name if name and name != "__main__" else None


def _func_spec(fn):
    """``(id, spec)`` for a callable; cached per function while it lives.

    The spec is registered with the native side under the id, which workers
    cache the resolved function by. Nothing here keeps ``fn`` alive: when it
    dies, its entry goes and :func:`_spec_dead` tells the native side, which
    drops its copy and, once no job needs it, lets workers drop theirs. A
    callable that cannot be weakly referenced (or hashed) gets a fresh,
    unregistered id each time: it travels with its job and is dropped after."""
    global _spec_cache, _next_fid, _last_spec
    last = _last_spec
    if last[0]() is fn:
        return last[1]  # the common case: the same function again
    if isinstance(fn, ParallelFunction):
        fn = fn.__wrapped__
    if _spec_cache is None:
        _spec_cache = {}
    import _weakref
    try:
        key = _weakref.ref(fn)
        hit = _spec_cache.get(key)
    except TypeError:
        key = hit = None
    if hit is not None:
        _last_spec = (key, hit)
        return hit
    spec = _make_spec(fn)
    _next_fid += 1
    out = (_next_fid, spec)
    if key is None:
        return out  # not weakly referenceable or not hashable: built anew each time
    _func_register(_next_fid, spec)
    key = _weakref.ref(fn, _spec_dead)
    _spec_cache[key] = out
    _last_spec = (key, out)
    return out


def _spec_dead(key):
    """A function with a cached spec died: forget its id everywhere."""
    try:
        entry = _spec_cache.pop(key, None)
        if entry is not None:
            _fallback_fids.discard(entry[0])
            _func_forget(entry[0])
    except Exception:
        pass  # at interpreter exit, parts of this module may be gone


def _make_spec(fn):
    import types
    if not callable(fn):
        raise TypeError(f"parpy: {type(fn).__name__!r} object is not callable")
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    named = isinstance(fn, (types.FunctionType, types.BuiltinFunctionType, type))
    if named and isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
        if module != "__main__" or _script_loadable():
            mod = _sys.modules.get(module)
            try:
                found = _lookup(mod, qualname) if mod is not None else None
            except AttributeError:
                found = None
            if isinstance(found, ParallelFunction):
                found = found.__wrapped__
            if found is fn:
                return ("name", module, qualname)
    if isinstance(fn, types.FunctionType):
        return _code_spec(fn)
    import pickle
    try:
        return ("pickle", pickle.dumps(fn, 5))
    except Exception as e:
        raise TypeError(
            f"parpy: cannot send {fn!r} to a worker: {type(e).__name__}: {e}. "
            "Use a module-level function, a lambda, or a picklable callable."
        ) from e


def _closure_values(fn):
    values = []
    for cell in fn.__closure__ or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:
            raise TypeError(
                f"parpy: cannot send {fn.__qualname__}: it refers to a variable "
                "of its enclosing function that has no value yet"
            ) from None
    return tuple(values)


def _code_parts(fn):
    import marshal
    return (marshal.dumps(fn.__code__), fn.__name__, fn.__qualname__,
            fn.__defaults__, fn.__kwdefaults__, _closure_values(fn))


def _code_spec(fn):
    """A lambda or nested function: its code travels marshalled, its closure
    and the globals it uses as values (modules by name, functions of the
    same module as code). A worker that has the module loaded keeps that
    module's globals and adds only the names it lacks (for example ones
    defined under ``if __name__ == "__main__":``)."""
    module = fn.__module__ if isinstance(fn.__module__, str) else "__main__"
    return ("code", module, _code_parts(fn), _capture_globals(fn))


def _capture_globals(fn):
    import types
    import pickle
    g = fn.__globals__
    values, modules, funcs = {}, {}, {}
    todo, seen = [fn.__code__], set()
    while todo:
        co = todo.pop()
        if id(co) in seen:
            continue
        seen.add(id(co))
        todo.extend(c for c in co.co_consts if isinstance(c, types.CodeType))
        for name in co.co_names:
            if name in values or name in modules or name in funcs or name not in g:
                continue
            v = g[name]
            if isinstance(v, ParallelFunction):
                v = v.__wrapped__
            if isinstance(v, types.ModuleType):
                modules[name] = v.__name__
            elif isinstance(v, types.FunctionType) and v.__globals__ is g:
                funcs[name] = _code_parts(v)
                todo.append(v.__code__)
            elif isinstance(v, (int, float, str, bytes, bool, type(None), tuple, list, dict, set, frozenset)):
                values[name] = v
            else:
                try:
                    pickle.dumps(v, 5)
                except Exception:
                    continue
                values[name] = v
    return (values, modules, funcs)


def _build_function(g, parts):
    import marshal
    import types
    code, name, qualname, defaults, kwdefaults, closure = parts
    cells = tuple(types.CellType(v) for v in closure)
    f = types.FunctionType(marshal.loads(code), g, name, defaults, cells or None)
    f.__kwdefaults__ = kwdefaults
    f.__qualname__ = qualname
    return f


def _resolve(spec):
    """Worker side: turn a spec from :func:`_func_spec` back into a callable."""
    kind = spec[0]
    if kind == "name":
        _, module, qualname = spec
        if module == "__main__":
            mod = _sys.modules.get("__mp_main__")
            if mod is None:
                raise RuntimeError("parpy: the script is not loaded in this worker")
            try:
                obj = _lookup(mod, qualname)
            except AttributeError:
                if _refused_module(_main_load_exc):
                    raise _main_load_exc from None
                if _main_load_exc is not None and _refused_here:
                    # Most likely what broke the script here: a package went
                    # on without its refused module, and the script then
                    # used what that module provides.
                    raise _refused_during(_main_load_exc)
                raise NameError(_not_in_script_message(qualname)) from None
        else:
            import importlib
            obj = _lookup(importlib.import_module(module), qualname)
        if isinstance(obj, ParallelFunction):
            obj = obj.__wrapped__
        return obj
    if kind == "code":
        import builtins
        import importlib
        _, module, parts, (values, modules, funcs) = spec
        name = "__mp_main__" if module == "__main__" else module
        mod = _sys.modules.get(name)
        if mod is None and module != "__main__":
            try:
                mod = importlib.import_module(name)
            except ImportError:
                mod = None
        if mod is not None:
            g = dict(mod.__dict__)
        else:
            g = {"__name__": module, "__builtins__": builtins}
        for n, m in modules.items():
            if n not in g:
                g[n] = importlib.import_module(m)
        for n, v in values.items():
            g[n] = v
        for n, p in funcs.items():
            if n not in g:
                g[n] = _build_function(g, p)
        return _build_function(g, parts)
    if kind == "pickle":
        import pickle
        return pickle.loads(spec[1])
    raise RuntimeError(f"parpy: unknown function spec {kind!r}")


def _not_in_script_message(qualname):
    msg = (f"parpy: {qualname!r} is not defined in the script as workers load it. "
           "Workers import the script under the name '__mp_main__' and stop at its "
           "first parallel call, so define functions before that call, or put the "
           "script's work under `if __name__ == \"__main__\":`.")
    if _main_load_error:
        msg += "\nLoading the script in the worker failed:\n" + _main_load_error
    return msg


# ---------------------------------------------------------------------------
# Exceptions as they travel
# ---------------------------------------------------------------------------

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
        data = pickle.dumps(exc, 5)
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


# ---------------------------------------------------------------------------
# Worker side: extension modules that refuse this interpreter
# ---------------------------------------------------------------------------

_refused_here = []   # worker: modules that refused this interpreter, in order


def _watch_refusals():
    """Worker: notes every extension module that refuses this interpreter,
    even when its package catches the ImportError and goes on without it
    (PyYAML without ``yaml._yaml``, simplejson without ``_speedups``: slow,
    and not quite the same API). The worker loop then sends the functions
    that use such a package to the fallback (see :func:`_taint`)."""
    import _frozen_importlib_external as external
    loader = external.ExtensionFileLoader
    create = loader.create_module

    def create_module(self, spec):
        if _COMPAT_SERIAL_EXT_INIT:
            _ext_init_enter()
        try:
            return create(self, spec)
        except ImportError as e:
            if _refused_module(e):
                _note_refused(spec.name)
            raise
        finally:
            if _COMPAT_SERIAL_EXT_INIT:
                _ext_init_exit()

    loader.create_module = create_module


def _note_refused(name):
    if name not in _refused_here:
        _refused_here.append(name)
    _count_refusal()


def _refusal_error(name):
    """The ImportError that tells main to run a task in the fallback."""
    return ImportError(f"module {name} does not support loading in subinterpreters "
                       "(its package went on without it)", name=name)


def _refused_during(exc):
    """Worker: a module refused this interpreter while a task ran (which then
    raised ``exc``, or None): the refusal is the task's outcome."""
    err = _refusal_error(_refused_here[-1])
    err.__cause__ = exc
    return err


from _functools import partial as _partial


def _taint(fn):
    """Worker: raises :func:`_refusal_error` when ``fn`` may use a package one
    of whose modules refused this interpreter: when its code (or code it
    reaches through globals, closures, classes and module attributes) names
    that package or holds something from it."""
    import types
    roots = {}
    for name in _refused_here:
        roots.setdefault(name.partition(".")[0], name)

    def refused(obj):
        if isinstance(obj, types.ModuleType):
            name = obj.__name__
        elif isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, type)):
            name = obj.__module__
        else:
            name = type(obj).__module__  # never the object's own __getattr__
        return roots.get(name.partition(".")[0]) if isinstance(name, str) else None

    todo, seen, budget = [fn], set(), 2000
    while todo and budget > 0:
        budget -= 1
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        hit = refused(obj)
        if hit:
            raise _refusal_error(hit)
        if isinstance(obj, types.MethodType):
            todo += (obj.__func__, obj.__self__)
        elif isinstance(obj, type):
            todo += [v for v in vars(obj).values() if isinstance(v, (types.FunctionType, classmethod, staticmethod))]
        elif isinstance(obj, (classmethod, staticmethod)):
            todo.append(obj.__func__)
        elif isinstance(obj, types.FunctionType):
            g = obj.__globals__
            mods = []
            codes = [obj.__code__]
            for cell in obj.__closure__ or ():
                try:
                    todo.append(cell.cell_contents)
                except ValueError:
                    pass
            while codes:
                co = codes.pop()
                codes += [c for c in co.co_consts if isinstance(c, types.CodeType)]
                for n in co.co_names:
                    hit = roots.get(n.partition(".")[0])
                    if hit:
                        raise _refusal_error(hit)
                    v = g.get(n)
                    if v is not None:
                        todo.append(v)
                        if isinstance(v, types.ModuleType):
                            mods.append(v)
                for m in mods:
                    for n in co.co_names:
                        v = m.__dict__.get(n)  # not getattr: no lazy imports
                        if isinstance(v, (types.FunctionType, type)):
                            todo.append(v)
        elif isinstance(obj, _partial):
            todo += (obj.func, *obj.args, *obj.keywords.values())
        elif not isinstance(obj, types.ModuleType):
            call = getattr(type(obj), "__call__", None)
            if isinstance(call, types.FunctionType):
                todo.append(call)


def _probe_import(ctx, name, fromlist):
    """Worker side of ``parpy check`` (``parpy_check.py``), run as the one
    rank of a fresh 1-worker pool (an ``spmd`` rank's result is kept,
    whatever refused meanwhile): imports ``name`` as ``from name import
    *fromlist`` would, and says what happened. ``refused``: every module
    that refused this interpreter during the import, caught by its package
    or not (noted by :func:`_watch_refusals`, in order); ``fatal``: the one
    that the import's error names, if any; ``absent``: names of ``fromlist``
    that are neither attributes nor submodules here."""
    import importlib
    before = len(_refused_here)
    error = missing = named = None
    absent = []
    try:
        mod = importlib.import_module(name)
        for attr in fromlist:
            if not hasattr(mod, attr):
                try:
                    importlib.import_module(f"{name}.{attr}")
                except ModuleNotFoundError as e:
                    if e.name != f"{name}.{attr}":
                        raise
                    absent.append(attr)
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        error = f"{type(e).__name__}: {e}"
        if isinstance(e, ModuleNotFoundError):
            missing = e.name
        named = _refused_module(e)
    refused = _refused_here[before:]
    if named and named not in refused:
        refused.append(named)
    return {"error": error, "missing": missing, "refused": refused, "fatal": named, "absent": absent}


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

        BrokenWorker.__module__ = "parpy"
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


def _write_output(stream, text):
    out = _sys.stdout if stream == 1 else _sys.stderr
    if out is None:
        return
    try:
        if _bars:
            _progress_write(out, text)  # the bars are cleared around it
        else:
            out.write(text)
    except Exception:
        pass


# ---------------------------------------------------------------------------
# Worker side
# ---------------------------------------------------------------------------

_main_load_error = None
_main_load_exc = None
_loading_script = False
_IN_FALLBACK = False


class _LineWriter:
    """A worker's sys.stdout/sys.stderr: whole lines go to the main
    interpreter's stream, so lines of different workers never mix."""

    encoding = "utf-8"
    errors = "strict"
    newlines = None
    closed = False
    line_buffering = True

    def __init__(self, stream):
        self._stream = stream
        self._parts = []

    def write(self, s):
        global _unflushed
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        nl = s.rfind("\n")
        if nl < 0:
            if s:
                self._parts.append(s)
                _unflushed = True
            return len(s)
        head = s[:nl + 1]
        if self._parts:
            head = "".join(self._parts) + head
            self._parts.clear()
        if nl + 1 < len(s):
            self._parts.append(s[nl + 1:])
            _unflushed = True
        self._send(head)
        return len(s)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        if self._parts:
            text = "".join(self._parts)
            self._parts.clear()
            self._send(text)

    def _send(self, text):
        if _loading_script:
            return  # the main interpreter already ran the script body and printed it
        if not _emit(self._stream, text):
            import os
            os.write(self._stream, text.encode("utf-8", "surrogateescape"))

    def fileno(self):
        return self._stream

    def isatty(self):
        return False

    def readable(self):
        return False

    def writable(self):
        return True

    def seekable(self):
        return False


_unflushed = False  # a _LineWriter may hold a partial line (read by the worker loop)


def _flush_output():
    global _unflushed
    _unflushed = False
    for s in (_sys.stdout, _sys.stderr):
        if isinstance(s, _LineWriter):
            s.flush()


_worker_stdin = None


def _worker_setup(wid, size, cfg):
    """Runs first in every new worker: paths, output, then the script."""
    _compat_worker_start()
    _watch_refusals()
    _sys.stdout = _LineWriter(1)
    _sys.stderr = _LineWriter(2)
    _sys.unraisablehook = _worker_unraisable  # native: see its doc
    import os
    global _worker_stdin
    try:
        _sys.stdin = _worker_stdin = open(os.devnull)
    except OSError:
        _sys.stdin = None
    if cfg.get("authkey") is not None:
        from multiprocessing import process
        process.current_process().authkey = cfg["authkey"]
    _load_main(cfg)


def _worker_teardown():
    """Before a worker's interpreter ends: flush its output, and drop the
    atexit handlers that loading the script registered there (they belong to
    the main interpreter's run; multiprocessing's children skip them too)."""
    _flush_output()
    _compat_forget_atexit()
    # The /dev/null that _worker_setup opened (a debug build reports it as
    # an unclosed file when the interpreter ends).
    if _worker_stdin is not None:
        if _sys.stdin is _worker_stdin:
            _sys.stdin = None
        _worker_stdin.close()
    _compat_drop_dummy_thread()


def _load_main(cfg):
    """Imports the main script (or -m module) as ``__mp_main__``, aliased as
    ``__main__``, stopping at its first parallel call; its output is dropped
    (the main interpreter already ran the body and printed it)."""
    global _main_load_error, _main_load_exc, _loading_script
    _sys.path[:] = cfg["path"]
    _sys.argv[:] = cfg["argv"]
    if cfg["script"] is None and cfg["module"] is None:
        return
    import types
    import builtins
    mod = types.ModuleType("__mp_main__")
    mod.__builtins__ = builtins
    _sys.modules["__mp_main__"] = mod
    _sys.modules["__main__"] = mod
    _loading_script = True
    saved = _sys.stdout, _sys.stderr
    if not isinstance(_sys.stdout, _LineWriter):
        import io
        _sys.stdout = _sys.stderr = io.StringIO()
    try:
        if cfg["script"] is not None:
            path = cfg["script"]
            mod.__file__ = path
            with open(path, "rb") as f:
                source = f.read()
            code = compile(source, path, "exec", dont_inherit=True)
        else:
            import importlib.util
            spec = importlib.util.find_spec(cfg["module"])
            mod.__spec__ = spec
            mod.__file__ = spec.origin
            mod.__loader__ = spec.loader
            code = spec.loader.get_code(cfg["module"])
        exec(code, mod.__dict__)
    except _StopLoad:
        pass
    except BaseException as e:
        import traceback
        _main_load_exc = e
        _main_load_error = "".join(traceback.format_exception(e))
    finally:
        _loading_script = False
        _sys.stdout, _sys.stderr = saved


class Context:
    """What ``__parallel__(ctx)`` and :func:`spmd` functions receive."""

    def __init__(self, rank, size, queue):
        self.rank = rank
        self.size = size
        self.queue = queue

    def __repr__(self):
        return f"<parpy.Context rank={self.rank} size={self.size}>"


def _spmd_entry(fn, rank, size, qid, args, kwargs):
    return fn(Context(rank, size, Queue._attach(qid)), *args, **kwargs)


# ---------------------------------------------------------------------------
# Queue
# ---------------------------------------------------------------------------

class Queue:
    """A FIFO shared by the main interpreter and all workers.

    Pass it to tasks as an argument (or use ``ctx.queue``). Items are copied
    like task arguments. ``get``/``put`` follow :class:`queue.Queue`."""

    def __init__(self, maxsize=0):
        self._id = _queue_new(max(0, int(maxsize)))
        self.maxsize = maxsize

    @classmethod
    def _attach(cls, qid, maxsize=0):
        self = object.__new__(cls)
        _queue_attach(qid)
        self._id = qid
        self.maxsize = maxsize
        return self

    def __reduce__(self):
        return (_queue_from_id, (self._id, self.maxsize))

    def __del__(self):
        qid = getattr(self, "_id", None)
        if qid is not None:
            _queue_release(qid)

    def put(self, item, block=True, timeout=None):
        if not block:
            timeout = 0
        elif timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        if not _queue_put(self._id, item, timeout):
            import queue
            raise queue.Full

    def put_nowait(self, item):
        return self.put(item, block=False)

    def get(self, block=True, timeout=None):
        if not block:
            timeout = 0
        elif timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        ok, item = _queue_get(self._id, timeout)
        if not ok:
            import queue
            raise queue.Empty
        return item

    def get_nowait(self):
        return self.get(block=False)

    def qsize(self):
        return _queue_len(self._id)

    def empty(self):
        return self.qsize() == 0

    def __repr__(self):
        return f"<parpy.Queue id={self._id} size={self.qsize()}>"


def _queue_from_id(qid, maxsize=0):
    return Queue._attach(qid, maxsize)


# ---------------------------------------------------------------------------
# Fallback for modules that refuse sub-interpreters (numpy, PyO3 extensions)
# ---------------------------------------------------------------------------

_fallback_fids = set()   # functions that run in the fallback from now on
_fallback_pool = None


def _send_msg(fd, obj):
    import os
    import pickle
    data = pickle.dumps(obj, 5)
    data = len(data).to_bytes(8, "little") + data
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _recv_msg(fd):
    import os
    import pickle

    def exactly(n):
        parts = []
        while n:
            chunk = os.read(fd, min(n, 1 << 20))
            if not chunk:
                raise EOFError
            parts.append(chunk)
            n -= len(chunk)
        return b"".join(parts)

    return pickle.loads(exactly(int.from_bytes(exactly(8), "little")))


class _FallbackPool:
    """Runs tasks whose modules cannot load in a sub-interpreter: in worker
    processes that re-run this same parpy on the script (``process``), or
    in the main interpreter (``main``)."""

    def __init__(self, mode, size):
        import queue
        self.mode = mode
        self.size = size if mode == "process" else 1
        self._jobs = queue.SimpleQueue()
        self._threads = []
        self._lock = __import__("threading").Lock()

    def submit(self, spec, args, kwargs):
        import concurrent.futures as cf
        import threading
        fut = cf.Future()
        self._jobs.put((fut, spec, args, kwargs or {}))
        with self._lock:
            while len(self._threads) < self.size:
                t = threading.Thread(target=self._serve, args=(len(self._threads),),
                                     name="parpy-fallback", daemon=True)
                t.start()
                self._threads.append(t)
        return fut

    def _serve(self, number):
        child = self._start_child() if self.mode == "process" else None
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                fut, spec, args, kwargs = job
                if not fut.set_running_or_notify_cancel():
                    continue
                began = _observe_now() if _RECORDING else None
                try:
                    if child is None:
                        ok, value = True, _resolve(spec)(*args, **kwargs)
                    else:
                        _send_msg(child[1], (spec, args, kwargs))
                        ok, value = _recv_msg(child[2])
                        if not ok:
                            value = _unpack_exc(value)
                except BaseException as e:
                    ok, value = False, e
                if began is not None:
                    _observe_fallback(_spec_label(spec), self.mode, number, began, _observe_now())
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(value)
        finally:
            if child is not None:
                import os
                os.close(child[1])
                os.close(child[2])
                child[0].wait()

    def _start_child(self):
        import os
        import subprocess
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        code = f"import parpy; parpy._fallback_child({req_r}, {rep_w})"
        proc = subprocess.Popen([_sys.executable, "-c", code], pass_fds=(req_r, rep_w), stdin=subprocess.DEVNULL)
        os.close(req_r)
        os.close(rep_w)
        # (_cfg: a parpy worker's fallback for a script sent by a cluster client)
        _send_msg(req_w, getattr(self, "_cfg", None) or _worker_config())
        return proc, req_w, rep_r

    def shutdown(self):
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._jobs.put(None)
        for t in threads:
            t.join()


def _spec_label(spec):
    """A function's name from its spec (see :func:`_make_spec`)."""
    if spec[0] == "name":
        return spec[2]
    if spec[0] == "code":
        return spec[2][2]
    return "<pickled callable>"


def _fallback():
    global _fallback_pool
    if _fallback_pool is None:
        _fallback_pool = _FallbackPool(_fallback_mode(), _default_workers())
    return _fallback_pool


def _fallback_child(rfd, wfd):
    """The body of a fallback worker process."""
    global _IN_FALLBACK
    _IN_FALLBACK = True
    _load_main(_recv_msg(rfd))
    while True:
        try:
            spec, args, kwargs = _recv_msg(rfd)
        except EOFError:
            return
        try:
            reply = (True, _resolve(spec)(*args, **kwargs))
        except BaseException as e:
            reply = (False, _pack_exc(e))
        _flush_std()
        try:
            _send_msg(wfd, reply)
        except Exception as e:
            err = TypeError(f"parpy: the result of type {type(reply[1]).__name__!r} cannot be sent back: {e}")
            _send_msg(wfd, (False, _pack_exc(err)))


def _use_fallback(fid, fn_name, module):
    """Whether a task refused by a sub-interpreter should run in the fallback;
    announces it once per function."""
    mode = _fallback_mode()
    if mode == "error":
        return False
    if fid not in _fallback_fids:
        _fallback_fids.add(fid)
        where = (f"{_default_workers()} worker processes" if mode == "process" else "the main interpreter")
        _write_output(2, f"parpy: {fn_name} needs module {module!r}, which cannot load in a sub-interpreter; "
                         f"running it in {where} instead (--fallback={mode})\n")
        if _sys.stderr is not None:
            _sys.stderr.flush()
        _log("info", f"fallback: {fn_name} runs in {where} from now on (module {module!r} refused a sub-interpreter)")
    return True


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


def _fn_name(fn):
    if isinstance(fn, ParallelFunction):
        fn = fn.__wrapped__
    return getattr(fn, "__qualname__", None) or repr(fn)



# ---------------------------------------------------------------------------
# Main side: pools, futures, the collector
# ---------------------------------------------------------------------------

_pending = {}          # tag -> Future
# Guards the late parts of parpy's futures: a _LazyFuture becoming real, and
# a _Future's Condition being made or skipped. Reentrant: becoming real
# settles the real future under it. From _thread: no threading import.
_lazy_lock = __import__("_thread").RLock()
_collector = None
_live = set()          # executors with a running pool
_started = False
_finalizing = False
_default = None


_in_entry_point = False  # `__parallel__` runs (at exit, before atexit handlers)


def _too_late():
    """Whether no pool may start now: parpy's atexit hook already ran, or
    the interpreter is exiting and the hook is not registered yet (atexit
    handlers registered while they run are never called, so the pool's
    workers would outlive it and CPython would end their interpreters under
    them). ``concurrent.futures`` refuses the same way."""
    if _finalizing:
        return True
    if _collector is not None or _in_entry_point:
        return False
    threading = _sys.modules.get("threading")
    return bool(getattr(threading, "_SHUTTING_DOWN", False)) or _sys.is_finalizing()


def _first_pool():
    """Once, before the first worker starts. What can wait until the workers
    are starting is in :func:`_first_pool_rest`."""
    global _started
    if _started:
        return
    _started = True
    _compat_main_preimports()
    main = _sys.modules.get("__main__")
    if main is not None:
        # Objects pickled in a worker name the script '__mp_main__'.
        _sys.modules.setdefault("__mp_main__", main)


def _first_pool_rest():
    """Once, right after the first pool started its workers."""
    global _collector
    if _collector is not None:
        return
    import atexit
    import threading
    atexit.register(_shutdown_all)
    _install_sigint()
    collector = threading.Thread(target=_collect_loop, name="parpy-collector", daemon=True)
    collector.start()
    # Only a started thread is remembered: _shutdown_all joins it.
    _collector = collector


def _dispatch(events):
    """Writes worker output and settles futures (collector or direct waiter)."""
    for ev in events:
        if ev[0] == 0:
            _write_output(ev[1], ev[2])
        else:
            _, tag, status, payload = ev
            fut = _pending.pop(tag, None)
            if fut is None:
                continue
            if status == 0 and type(fut) is _future_cls and fut._settle_fast(payload, None):
                continue  # the common case, without three more calls
            _settle(fut, status, payload)


def _collect_loop():
    while True:
        try:
            events = _collect(1.0, False)
            if events is None:
                return
            if events:
                _dispatch(events)
                events = None  # results are the futures' now: hold none while blocked
                _wake_direct()
        except BaseException:
            # Never let the collector die: every pending future depends on it.
            try:
                import traceback
                traceback.print_exc()
            except BaseException:
                pass


def _drive(fut, timeout):
    """Waits for ``fut`` by taking results from the channel in this very
    thread (the collector steps aside meanwhile). In slices of 50 ms: a
    future chained to the fallback pool is settled by that pool's thread,
    not through this channel."""
    end = None
    if timeout is not None:
        import time
        end = time.monotonic() + timeout
    while not fut.done():
        wait = 0.05
        if end is not None:
            wait = min(wait, end - time.monotonic())
            if wait <= 0:
                return
        events = _collect(wait, True)
        if events is None:
            return
        _dispatch(events)


def _install_sigint():
    """Ctrl-C also stops the workers: pending tasks are cancelled, running
    ones interrupted, then KeyboardInterrupt is raised as usual. Installed
    only over Python's default handler, and only from the main thread.
    (``_signal``, not ``signal``, which would import ``enum``.)"""
    import _signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if _signal.getsignal(_signal.SIGINT) is not _signal.default_int_handler:
            return
        _signal.signal(_signal.SIGINT, _on_sigint)
    except (ValueError, OSError):
        pass


def _on_sigint(signum, frame):
    if _finalizing:
        # A second Ctrl-C while parpy shuts down ends the process at once, as
        # an unhandled KeyboardInterrupt would.
        import os
        import signal
        _flush_std()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    _interrupt_all()
    raise KeyboardInterrupt


def _flush_std():
    for s in (_sys.stdout, _sys.stderr):
        try:
            s.flush()
        except Exception:
            pass


def _settle(fut, status, payload):
    call = getattr(fut, "_parpy_call", None)
    # The callable and its arguments are needed no more (unless the task
    # moves to the fallback, which takes them now): the future must not keep
    # them alive.
    fut._parpy_call = None
    if status == 0 and type(fut) is _LazyFuture:
        with _lazy_lock:
            if type(fut) is _LazyFuture:
                fut._parpy_value = payload
                return
    if status == 1 and payload[5] and call is not None:
        fid, spec, fn, args, kwargs = call
        if _use_fallback(fid, _fn_name(fn), payload[5]):
            _chain(_fallback().submit(spec, args, kwargs), fut)
            return
    ok, value = _outcome(status, payload)
    if (status == 1 and _stopped_pools and type(value) is KeyboardInterrupt
            and getattr(fut, "_parpy_job", (None,))[0] in _stopped_pools):
        value = _broken_worker()("parpy: the task was stopped by terminate_workers() or kill_workers()")
    try:
        if ok:
            fut.set_result(value)
        elif status == 3:
            fut = _materialize(fut)
            getattr(fut, "_cancelled_now", fut.cancel)()
        else:
            fut.set_exception(value)
    except Exception:
        pass  # cancelled by the caller meanwhile


def _chain(source, target):
    """Completes ``target`` with ``source``'s outcome."""
    def copy(f):
        if target.done():
            return
        try:
            if f.cancelled():
                target.cancel()
            elif f.exception() is not None:
                target.set_exception(f.exception())
            else:
                target.set_result(f.result())
        except Exception:
            pass
        _wake_direct()  # a thread in target.result() may be waiting on the channel
    source.add_done_callback(copy)


def _shutdown_all():
    global _finalizing
    _finalizing = True
    last = getattr(_sys, "last_exc", None)
    if isinstance(last, KeyboardInterrupt):
        _interrupt_all()  # the script died of Ctrl-C: do not finish its work
        if type(last) is KeyboardInterrupt:
            _set_died_of_sigint()
    for ex in list(_live):
        ex._shutdown = True
    try:
        # Returns only once every worker ended; what a signal handler raised
        # meanwhile comes out here, after the rest of the shutdown.
        _pool_shutdown_all()
    finally:
        _live.clear()
        if _fallback_pool is not None:
            _fallback_pool.shutdown()
        if _collector is not None:
            _collect_stop()
            _collector.join()
        _flush_output()
        _seal_exit()


def _worker_config():
    script = _script_path()
    return {
        "path": list(_sys.path),
        "argv": list(_sys.argv),
        "script": script,
        "module": None if script is not None else _main_module_name(),
        "authkey": _mp_authkey(),
    }


def _mp_authkey():
    """Main's ``multiprocessing`` authkey, if main uses multiprocessing:
    workers take it, as a process pool's children inherit it, so that
    ``multiprocessing.Manager()`` proxies passed to tasks can connect."""
    process = _sys.modules.get("multiprocessing.process")
    if process is None:
        return None
    try:
        return bytes(process.current_process().authkey)
    except Exception:
        return None


def _default_executor():
    global _default
    if _IN_WORKER or _IN_FALLBACK:
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
        if _loading_script:
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


def spmd(fn, *args, **kwargs):
    """Call ``fn(ctx, *args, **kwargs)`` on every worker of the default pool at
    once; returns the results in rank order."""
    return _default_executor().spmd(fn, *args, **kwargs)


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
            if _IN_WORKER or _IN_FALLBACK:
                return None
            if _too_late():
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
                    cfg = getattr(self, "_cfg", None) or _worker_config()
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
            if pool is None or self._shutdown or self._broken or _finalizing:
                pool = self._start()
                if pool is None:
                    return _Inline().submit(fn, *args, **kwargs)
            last = _last_spec
            fid, spec = last[1] if last[0]() is fn else _func_spec(fn)
            if fid in _fallback_fids:
                return _fallback().submit(spec, args, kwargs)
            tag = _next_id()
            call = (fid, spec, fn, args, kwargs)
            if _future_cls is not None:
                fut = _future_cls(pool, tag, call)
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


def _bar_start(pool, fn, total, progress):
    """A progress bar for a map of ``fn`` (``progress``: True, False, or
    None for ``--progress``); None when there is to be none."""
    if progress is None:
        progress = _PROGRESS_DEFAULT
    if not progress:
        return None
    bar = _progress_start(pool or 0, _fn_name(fn), total)
    _bars.add(bar)
    return bar


def _bar_end(bar):
    """Ends a bar (once; later calls do nothing)."""
    if bar is not None and bar in _bars:
        _bars.discard(bar)
        _progress_end(bar)


_future_cls = None
_stopped_pools = set()  # pools whose running tasks terminate_workers() stopped


def _future_class():
    """The Future subclass of submit(), made at first use."""
    global _future_cls
    if _future_cls is None:
        import concurrent.futures as cf
        import threading
        from concurrent.futures import _base
        pending, running, finished = _base.PENDING, _base.RUNNING, _base.FINISHED
        final = (_base.CANCELLED, _base.CANCELLED_AND_NOTIFIED, finished)

        class _Future(cf.Future):
            """A Future whose ``cancel()`` also stops the task if it is running.

            ``concurrent.futures.Future()`` builds a Condition (about 3 µs,
            more than a task's whole trip). Most futures are settled before
            anyone waits on one, so it is made at first use: until then
            nothing can wait on the future or hold a callback (both need the
            Condition), and settling it is a plain assignment."""

            def __init__(self, pool, tag, call):
                self._state = pending
                self._result = None
                self._exception = None
                self._waiters = []
                self._done_callbacks = []
                self._parpy_job = (pool, tag)
                self._parpy_call = call

            def __getattr__(self, name):
                if name != "_condition":
                    raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
                with _lazy_lock:
                    cond = self.__dict__.get("_condition")
                    if cond is None:
                        cond = self.__dict__["_condition"] = threading.Condition()
                return cond

            def _settle_fast(self, result, exception):
                """Settles the future if it has no Condition yet; False if it has."""
                with _lazy_lock:
                    if "_condition" in self.__dict__:
                        return False
                    if self._state in final:
                        raise cf.InvalidStateError(f"{self._state}: <Future at {id(self):#x}>")
                    self._result = result
                    self._exception = exception
                    self._state = finished
                    self._parpy_call = None  # the callable and arguments: not needed now
                return True

            def set_result(self, result):
                if not self._settle_fast(result, None):
                    super().set_result(result)

            def set_exception(self, exception):
                if not self._settle_fast(None, exception):
                    super().set_exception(exception)

            def done(self):
                return self._state in final

            def result(self, timeout=None):
                if self._state not in final:
                    _drive(self, timeout)
                if self._state == finished:
                    if self._exception is None:
                        return self._result
                    try:
                        raise self._exception
                    finally:
                        self = None  # no reference cycle through the traceback
                return super().result(0 if self._state == pending else timeout)

            def exception(self, timeout=None):
                if self._state not in final:
                    _drive(self, timeout)
                if self._state == finished:
                    return self._exception
                return super().exception(0 if self._state == pending else timeout)

            def running(self):
                # A worker marks the job started in memory both sides share;
                # asking is cheaper than a message per task.
                if self._state == pending and self._parpy_job[0] is not None and _task_started(self._parpy_job[1]):
                    self._mark_running()
                return self._state == running

            def _mark_running(self):
                with _lazy_lock:
                    if self._state == pending:
                        self._state = running

            def cancel(self):
                """As ``concurrent.futures``: a task that has started cannot be
                cancelled (False); it runs to its end."""
                if self._state in final:
                    return self._state != finished
                if self._state == running:
                    return False
                if self._parpy_job[0] is not None and not _cancel(*self._parpy_job):
                    self._mark_running()  # started, or its outcome is on its way
                    return False
                return self._cancelled_now()

            def _cancelled_now(self):
                """Marks the future cancelled (its job will not run) and notifies."""
                if self._state in final:
                    return self._state != finished
                if not super().cancel():
                    return self.cancelled()
                self._parpy_call = None
                self.set_running_or_notify_cancel()
                return True

        _future_cls = _Future
    return _future_cls


def _new_future(pool, tag, call):
    """The Future for ``submit()``: a real one once concurrent.futures is
    loaded, else a :class:`_LazyFuture` that becomes one on demand."""
    if _future_cls is None and "concurrent.futures" not in _sys.modules:
        return _LazyFuture(pool, tag, call)
    return _future_class()(pool, tag, call)


_NO_VALUE = object()


class _LazyFuture:
    """What ``submit()`` returns while nothing has loaded concurrent.futures
    (a 20 ms import, a large part of a cold start). It stands in for the
    Future of :func:`_future_class`: ``isinstance(f, concurrent.futures.Future)``
    holds (through ``__class__``), and it becomes that Future, in place
    (``__class__`` assignment), as soon as anything but ``done()`` or
    ``result()`` is asked of it (any other method or attribute, ``repr``,
    pickling, ``concurrent.futures.wait``...). Only a successful outcome is
    kept here; any other is settled on the real Future, so concurrent.futures
    raises it as always."""

    def __init__(self, pool, tag, call):
        self._parpy_job = (pool, tag)
        self._parpy_call = call

    def done(self):
        if type(self) is not _LazyFuture:
            return self.done()  # became real meanwhile
        return "_parpy_value" in self.__dict__

    def result(self, timeout=None):
        if type(self) is not _LazyFuture:
            return self.result(timeout)  # became real meanwhile
        if "_parpy_value" not in self.__dict__:
            _drive(self, timeout)
            if timeout is not None:
                timeout = 0  # waited already
        value = self.__dict__.get("_parpy_value", _NO_VALUE)
        if value is _NO_VALUE:
            # Failed, or not done in time: concurrent.futures raises, from a
            # stack of the same shape as _Future.result's.
            return _future_class().__base__.result(_materialize(self), timeout)
        return value

    @property
    def __class__(self):
        # What isinstance() consults when type(self) is not a subclass.
        return _future_class()

    def __getattr__(self, name):
        if type(_materialize(self)) is _LazyFuture:
            raise AttributeError(name)
        return getattr(self, name)

    def __repr__(self):
        return repr(_materialize(self))

    def __dir__(self):
        return dir(_materialize(self))

    def __reduce_ex__(self, protocol):
        return _materialize(self).__reduce_ex__(protocol)


def _materialize(fut):
    """Turns a :class:`_LazyFuture` into the real Future it stands for, with
    its result if it has one; returns ``fut``."""
    if type(fut) is not _LazyFuture:
        return fut
    cls = _future_class()
    with _lazy_lock:
        if type(fut) is _LazyFuture:
            value = fut.__dict__.pop("_parpy_value", _NO_VALUE)
            object.__dict__["__class__"].__set__(fut, cls)
            cls.__init__(fut, *fut._parpy_job, fut._parpy_call)
            if value is not _NO_VALUE:
                fut.set_result(value)
    return fut


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


_Executor = None
_PoolClass = None


def _pool_class():
    global _PoolClass
    if _PoolClass is None:
        _PoolClass = _define_pool()
    return _PoolClass


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


def _cluster_call(payload):
    """A cluster chunk, run in a parpy worker's sub-interpreter."""
    return _cluster().run_payload(payload)


# ---------------------------------------------------------------------------
# The __parallel__ entry convention
# ---------------------------------------------------------------------------

def _run_entry_point():
    """Runs after the script body (before atexit handlers): calls
    ``__parallel__`` on every worker and ``__gather__`` with the results."""
    main = _sys.modules.get("__main__")
    if main is None:
        return
    entry = main.__dict__.get("__parallel__")
    if entry is None or not callable(entry):
        return
    if not _body_returned:
        return  # the body raised or called sys.exit(): python would just exit
    global _in_entry_point
    _in_entry_point = True
    try:
        results = spmd(entry)
        gather = main.__dict__.get("__gather__")
        if gather is not None:
            gather(results)
    except SystemExit as e:
        code = e.code
        if code is None:
            code = 0
        elif not isinstance(code, int):
            print(code, file=_sys.stderr)
            code = 1
        _set_exit_code(code)
    except BaseException as e:
        _sys.excepthook(type(e), e, e.__traceback__)
        _set_exit_code(130 if isinstance(e, KeyboardInterrupt) else 1)


_body_returned = False


def _main_body_returned():
    """``python -m parpy``: the script's body ran to its end (it runs it
    itself, so no body watch is needed)."""
    global _body_returned
    _body_returned = True


def _main_body_code():
    """The code object of the ``__main__`` body that is running now (it
    imported parpy: ``-c``, ``-m``, the REPL, a script without the
    ``__parallel__`` text), or None. The outermost one: code that the body
    runs with ``exec()`` in its own globals is a ``<module>`` too."""
    main = _sys.modules.get("__main__")
    found = None
    f = _sys._getframe(1)
    while f is not None:
        if f.f_code.co_name == "<module>" and main is not None and f.f_globals is main.__dict__:
            found = f.f_code
        f = f.f_back
    return found


def _watch_main_body():
    """Sets ``_body_returned`` when the ``__main__`` body's code returns,
    which it does only when the body neither raised nor called sys.exit().

    CPython's own traces of a normal end differ between versions (on 3.13
    ``__file__`` is removed only after a normal end, on 3.14 after
    sys.exit() too), so parpy watches the body itself with sys.monitoring
    (3.12+): a local PY_RETURN event on the body's code object alone. When
    parpy is imported before the script starts (the launcher does that for
    a script that mentions ``__parallel__``), a PY_START watch finds that
    code object first, disabled for every other code at its first start.
    Either way it costs nothing while the body runs."""
    import os
    mon = _sys.monitoring
    for tool in (4, 3, 5):
        try:
            mon.use_tool_id(tool, "parpy")
            break
        except ValueError:
            continue
    else:
        raise RuntimeError("parpy: no free sys.monitoring tool id for the __parallel__ entry point")
    events = mon.events

    def returned(code, offset, value):
        global _body_returned
        _body_returned = True
        mon.set_local_events(tool, code, 0)
        mon.free_tool_id(tool)

    mon.register_callback(tool, events.PY_RETURN, returned)
    running = _main_body_code()
    if running is not None:
        mon.set_local_events(tool, running, events.PY_RETURN)
        return
    path = _script_path()
    if path is None:
        mon.free_tool_id(tool)
        return
    path = os.path.abspath(path)

    def started(code, offset):
        if code.co_name == "<module>" and os.path.abspath(code.co_filename) == path:
            mon.set_events(tool, 0)
            mon.set_local_events(tool, code, events.PY_RETURN)
        return mon.DISABLE

    mon.register_callback(tool, events.PY_START, started)
    mon.set_events(tool, events.PY_START)


def _install_main_hooks():
    _watch_main_body()
    _compat_register_early_exit(_run_entry_point)


if not _IN_WORKER:
    _install_main_hooks()
