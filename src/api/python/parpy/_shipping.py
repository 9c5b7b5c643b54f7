"""Functions as they travel: the spec that a worker turns back into the
callable (by name, as marshalled code with the globals it uses, or
pickled), made once per function and registered with the native side under
an id (:func:`_func_spec`); the worker side (:func:`_resolve`)."""

import sys as _sys

# The package: ParallelFunction, defined there (after this module is loaded).
import parpy as _parpy
from ._native import _func_forget, _func_register
from ._base import _lookup
from ._errors import _refused_module
from ._refusals import _refused_during, _refused_here
from . import _workerio
from ._workerio import _script_loadable
from ._byvalue import _pickler


_spec_cache = None      # weakref(fn) -> (fid, spec), for as long as fn lives
_next_fid = 0


def _no_ref():
    return None


# (weakref to the last function looked up, its (fid, spec)); reassigned, so
# other modules read it as _shipping._last_spec.
_last_spec = (_no_ref, None)

# Functions (by id) that run in the fallback from now on (see _fallback._use_fallback).
_fallback_fids = set()


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
    if isinstance(fn, _parpy.ParallelFunction):
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


def _forget_captured_specs():
    """Each new IPython cell: the specs that captured values (functions as
    code with the globals they use, pickled callables) are made anew at
    their next call, since the cell may have rebound those globals (a
    notebook's parameter cell run again). Those of functions that run in
    the fallback stay, with their fallback."""
    global _last_spec
    _last_spec = (_no_ref, None)
    for key, (fid, spec) in list((_spec_cache or {}).items()):
        if spec[0] != "name" and fid not in _fallback_fids:
            del _spec_cache[key]
            _func_forget(fid)


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
            if isinstance(found, _parpy.ParallelFunction):
                found = found.__wrapped__
            if found is fn:
                return ("name", module, qualname)
    if isinstance(fn, types.FunctionType):
        return _code_spec(fn)
    try:
        return ("pickle", _pickler()(fn, 5))
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
    dumps = _pickler()
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
            if isinstance(v, _parpy.ParallelFunction):
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
                    dumps(v, 5)
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
                if _refused_module(_workerio._main_load_exc):
                    raise _workerio._main_load_exc from None
                if _workerio._main_load_exc is not None and _refused_here:
                    # Most likely what broke the script here: a package went
                    # on without its refused module, and the script then
                    # used what that module provides.
                    raise _refused_during(_workerio._main_load_exc)
                raise NameError(_not_in_script_message(qualname)) from None
        else:
            import importlib
            obj = _lookup(importlib.import_module(module), qualname)
        if isinstance(obj, _parpy.ParallelFunction):
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
    if _workerio._main_load_error:
        msg += "\nLoading the script in the worker failed:\n" + _workerio._main_load_error
    return msg


def _spec_label(spec):
    """A function's name from its spec (see :func:`_make_spec`)."""
    if spec[0] == "name":
        return spec[2]
    if spec[0] == "code":
        return spec[2][2]
    return "<pickled callable>"


def _fn_name(fn):
    if isinstance(fn, _parpy.ParallelFunction):
        fn = fn.__wrapped__
    return getattr(fn, "__qualname__", None) or repr(fn)
