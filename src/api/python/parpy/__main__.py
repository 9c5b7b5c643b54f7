"""``python -m parpy SCRIPT [ARGS...]``, ``-m MODULE [ARGS...]`` or ``-c CODE [ARGS...]``:
run a script in this very python as ``python SCRIPT`` would, with what the
``parpy`` launcher adds: the ``__parallel__(ctx)`` entry convention (run
after the body, on every worker) and its exit status.

The script becomes ``__main__`` (``sys.argv``, ``sys.path[0]``, tracebacks
and exit codes as under ``python``); workers import it by its path, as
they do under the launcher.
"""

import builtins
import os
import sys
import types

import parpy
from parpy import _native


def _usage():
    print("usage: python -m parpy SCRIPT [ARGS...] | -m MODULE [ARGS...] | -c CODE [ARGS...]",
          file=sys.stderr)
    return 2


def _strip(tb, code):
    """The traceback from the script's own frame on (without this runner's)."""
    t = tb
    while t is not None and t.tb_frame.f_code is not code:
        t = t.tb_next
    return t if t is not None else tb


def _new_main(**attrs):
    """A fresh ``__main__`` module, installed in ``sys.modules``."""
    main = types.ModuleType("__main__")
    main.__builtins__ = builtins
    for k, v in attrs.items():
        setattr(main, k, v)
    sys.modules["__main__"] = main
    return main


def _run_script(path, args):
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as e:
        print(f"{sys.executable}: can't open file {path!r}: [Errno {e.errno}] {e.strerror}",
              file=sys.stderr)
        return 2
    main = _new_main(__file__=path, __cached__=None)
    sys.argv[:] = [path, *args]
    # As python: the script's directory (symlinks resolved) replaces ours.
    sys.path[0] = os.path.dirname(os.path.realpath(path))
    _native._set_script_path(os.path.abspath(path))
    try:
        code = compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as e:
        sys.excepthook(type(e), e, None)
        return 1
    return _exec(code, main.__dict__)


def _run_code(source, args):
    main = _new_main()
    sys.argv[:] = ["-c", *args]
    sys.path[0] = ""  # as python -c
    try:
        code = compile(source, "<string>", "exec", dont_inherit=True)
    except SyntaxError as e:
        sys.excepthook(type(e), e, None)
        return 1
    return _exec(code, main.__dict__)


def _run_module(name, args):
    import importlib.util

    sys.path[0] = os.getcwd()  # as python -m
    try:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations is not None:
            name += ".__main__"  # a package runs its __main__, as python -m
            spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as e:
        spec, err = None, e
    else:
        err = None
    if spec is None or spec.loader is None:
        why = f" ({type(err).__name__}: {err})" if err else ""
        print(f"{sys.executable}: No module named {name}{why}", file=sys.stderr)
        return 1
    main = _new_main(__spec__=spec, __file__=spec.origin, __loader__=spec.loader,
                     __package__=spec.parent)
    sys.argv[:] = [spec.origin, *args]
    code = spec.loader.get_code(name)
    return _exec(code, main.__dict__)


def _exec(code, namespace):
    try:
        exec(code, namespace)
    except SystemExit:
        raise
    except BaseException as e:
        tb = _strip(e.__traceback__, code)
        sys.excepthook(type(e), e.with_traceback(tb), tb)
        if isinstance(e, KeyboardInterrupt):
            # python ends by SIGINT on an uncaught KeyboardInterrupt.
            _native._set_died_of_sigint()
        return 1
    parpy._main_body_returned()  # __parallel__ runs at exit, as under the launcher
    return 0


def main(argv=None):
    """Runs ``argv`` (default ``sys.argv[1:]``) and returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        return _usage() if not args else (print(__doc__.strip()) or 0)
    if args[0] == "-c":
        if len(args) < 2:
            return _usage()
        return _run_code(args[1], args[2:])
    if args[0] == "-m":
        if len(args) < 2:
            return _usage()
        return _run_module(args[1], args[2:])
    if args[0].startswith("-"):
        return _usage()
    return _run_script(args[0], args[1:])


if __name__ == "__main__":
    sys.exit(main())
