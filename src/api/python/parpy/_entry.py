"""The ``__parallel__`` entry convention: when the main thread ends and the
script body has returned, ``__parallel__(ctx)`` runs on every worker and
``__gather__`` gets the results (:func:`_run_entry_point`); sys.monitoring
tells whether the body returned (:func:`_watch_main_body`)."""

import sys as _sys

# The package: spmd, defined there (after this module is loaded).
import parpy as _parpy
from ._native import _script_path, _set_exit_code
from ._compat import _compat_register_early_exit
from . import _lifecycle


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
    _lifecycle._in_entry_point = True
    try:
        results = _parpy.spmd(entry)
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
