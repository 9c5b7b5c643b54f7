"""Classes and functions of an interactive ``__main__``, by value.

With a script file (or ``-m`` module), workers import it as ``__mp_main__``,
so what it defines travels by name. The REPL, a notebook (IPython's kernel)
and ``-c`` have no such file: what their ``__main__`` defines exists in main
only, and ``pickle.dumps`` would name it ``__main__.Point``, which a worker
cannot find. Then (:func:`_pickle_main_by_value`, when such a main starts
its first pool) the native codec pickles with :func:`_dumps` instead, in
main and in the workers alike, and so do parpy's own pickles: classes and
functions of ``__main__`` go by value, as cloudpickle sends them. A class as
its name, bases and namespace (methods by value in turn), a function as its
marshalled code, closure and the globals it uses. Each class main sends gets
a token: a worker builds it once (and puts it in its own ``__main__``, where
``pickle.dumps`` finds it by name), and its results name it by the token,
so main gets its own class back (``type(r) is Point`` holds).

In a worker, functions built here share one namespace, the worker's
``__main__``, which stands for main's: each function's globals are updated
there as main sent them last."""

import sys as _sys

from ._native import _pickle_by_value, _set_pickle_by_value
from ._base import _IN_WORKER


def _pickle_main_by_value():
    """From now on, in this process, every pickle sends what ``__main__``
    defines by value (see the module's doc)."""
    _set_pickle_by_value(True)


def _pickler():
    """What parpy pickles with: :func:`_dumps` once the process pickles
    ``__main__`` by value, else ``pickle.dumps``."""
    if _pickle_by_value():
        return _dumps
    import pickle
    return pickle.dumps


_by_value_pickler = None
_class_token = {}       # id(class) -> token: classes main sent, or a worker built
_token_class = {}       # token -> class (held: a worker may send its instances back)
_next_class_token = 0
_types = None           # the types module, once _dumps first runs


def _dumps(obj, protocol=5):
    """``pickle.dumps(obj, protocol)``, with what ``__main__`` defines by
    value (the native codec calls it as ``parpy._dumps``)."""
    global _by_value_pickler, _types
    import io
    if _by_value_pickler is None:
        import pickle
        import types

        class _ByValuePickler(pickle.Pickler):
            def reducer_override(self, obj):
                return _reduce_by_value(obj)

        _types = types
        _by_value_pickler = _ByValuePickler
    f = io.BytesIO()
    _by_value_pickler(f, protocol).dump(obj)
    return f.getvalue()


def _reduce_by_value(obj):
    """What the pickler saves instead of ``obj``, or NotImplemented (as
    pickle would). Besides ``__main__``'s classes (of metaclass ``type`` or
    ``ABCMeta``) and functions: what their namespaces hold that pickle alone
    cannot save (modules, ``mappingproxy``, properties, class and static
    methods)."""
    t = type(obj)
    if t is _types.FunctionType:
        if obj.__module__ == "__main__":
            return _reduce_function(obj)
    elif isinstance(obj, type):
        if obj.__module__ == "__main__" and t in (type, _abc_meta()):
            return _reduce_class(obj)
    elif t is _types.ModuleType:
        return (_import_module, (obj.__name__,))
    elif t is _types.MappingProxyType:
        return (_mapping_proxy, (dict(obj),))
    elif t is property:
        return (property, (obj.fget, obj.fset, obj.fdel, obj.__doc__))
    elif t is classmethod or t is staticmethod:
        return (t, (obj.__func__,))
    return NotImplemented


def _import_module(name):
    import importlib
    return importlib.import_module(name)


def _abc_meta():
    abc = _sys.modules.get("abc")
    return abc.ABCMeta if abc is not None else type


def _reduce_class(cls):
    global _next_class_token
    token = _class_token.get(id(cls))
    if token is not None and _token_class.get(token) is not cls:
        token = None  # a dead class's id reused
    if _IN_WORKER:
        if token is not None:
            return (_class_from_token, (token,))  # main's own class
    elif token is None:
        _next_class_token += 1
        token = _next_class_token
        _class_token[id(cls)] = token
        _token_class[token] = cls
    ns = dict(cls.__dict__)
    slots = ns.get("__slots__", ())
    if isinstance(slots, str):
        slots = (slots,)
    for name in ("__dict__", "__weakref__", "__module__", "__qualname__", "__doc__", *slots):
        ns.pop(name, None)
    for name in ("_abc_impl", "_abc_registry", "_abc_cache", "_abc_negative_cache",
                 "_abc_negative_cache_version"):
        ns.pop(name, None)
    base = {"__module__": "__main__", "__qualname__": cls.__qualname__, "__doc__": cls.__doc__}
    if "__slots__" in cls.__dict__:
        base["__slots__"] = cls.__dict__["__slots__"]
    return (_class_skeleton, (token, type(cls), cls.__name__, cls.__bases__, base),
            ns, None, None, _class_setstate)


def _mapping_proxy(d):
    import types
    return types.MappingProxyType(d)


def _class_from_token(token):
    return _token_class[token]


def _class_skeleton(token, meta, name, bases, base):
    cls = _token_class.get(token) if token is not None else None
    if cls is None:
        cls = meta(name, bases, dict(base))
        if token is not None:
            _class_token[id(cls)] = token
            _token_class[token] = cls
        if _IN_WORKER and "." not in cls.__qualname__:
            # Found by name too: pickle.dumps (an exception's) in the worker.
            vars(_sys.modules["__main__"])[name] = cls
    return cls


def _class_setstate(cls, ns):
    for k, v in ns.items():
        if cls.__dict__.get(k, _class_setstate) is not v:
            setattr(cls, k, v)
    return cls


_code_globals = {}  # code object -> the global names it (or code nested in it) uses


def _global_names(co):
    """The names that ``co`` and the code objects nested in it load, store
    or delete as globals (not attribute names, which ``co_names`` holds too)."""
    names = _code_globals.get(co)
    if names is None:
        import dis
        names = set()
        for ins in dis.get_instructions(co):
            if ins.opname in ("LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_NAME"):
                names.add(ins.argval)
        for c in co.co_consts:
            if isinstance(c, _types.CodeType):
                names |= _global_names(c)
        names = frozenset(names)
        _code_globals[co] = names
    return names


def _reduce_function(fn):
    import marshal
    g = fn.__globals__
    used = {n: g[n] for n in _global_names(fn.__code__) if n in g and n != "__builtins__"}
    cells = []
    for c in fn.__closure__ or ():
        try:
            cells.append((True, c.cell_contents))
        except ValueError:
            cells.append((False, None))
    state = (used, tuple(cells), fn.__defaults__, fn.__kwdefaults__, fn.__dict__ or None)
    return (_function_skeleton,
            (marshal.dumps(fn.__code__), fn.__name__, fn.__qualname__, len(cells)),
            state, None, None, _function_setstate)


def _function_skeleton(code, name, qualname, ncells):
    import marshal
    import types
    # In main (a function a worker sent back), main's own namespace.
    cells = tuple(types.CellType() for _ in range(ncells)) or None
    f = types.FunctionType(marshal.loads(code), vars(_sys.modules["__main__"]), name, None, cells)
    f.__qualname__ = qualname
    return f


def _function_setstate(f, state):
    used, cells, defaults, kwdefaults, attrs = state
    g = f.__globals__
    if _IN_WORKER:
        g.update(used)  # the namespace that stands for main's: as main sent it last
    else:
        for k, v in used.items():
            g.setdefault(k, v)  # main's own names stay as they are
    for cell, (full, v) in zip(f.__closure__ or (), cells):
        if full:
            cell.cell_contents = v
    f.__defaults__ = defaults
    f.__kwdefaults__ = kwdefaults
    if attrs:
        f.__dict__.update(attrs)
    return f
