"""Worker side: extension modules that refuse this interpreter. Every
refusal is noted (:func:`_watch_refusals`), even one that its package
catches and goes on without; functions that use such a package are sent to
the fallback (:func:`_taint`, :func:`_refused_during`). Also the worker side
of ``parpy check`` (:func:`_probe_import`)."""

from _functools import partial as _partial

from ._native import _count_refusal, _ext_init_enter, _ext_init_exit
from ._compat import _COMPAT_SERIAL_EXT_INIT
from ._errors import _refused_module


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
