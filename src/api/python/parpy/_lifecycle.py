"""Main side: the pools' life as a whole. What runs before the first worker
starts and right after (:func:`_first_pool`, :func:`_first_pool_rest`),
whether a pool may start now (:func:`_too_late`), Ctrl-C
(:func:`_on_sigint`, also in each IPython cell), and the shutdown at exit (:func:`_shutdown_all`)."""

import sys as _sys

from ._native import _collect_stop, _interrupt_all, _park_forever, _pool_shutdown_all, _seal_exit, _set_died_of_sigint
from ._compat import _compat_main_preimports
from ._workerio import _flush_output
from ._output import _flush_std
from . import _fallback
from ._futures import _collect_loop


_collector = None
_live = set()          # executors with a running pool
_started = False
_finalizing = False    # parpy's atexit hook runs; read elsewhere as _lifecycle._finalizing
# `__parallel__` runs (at exit, before atexit handlers); set by _entry.
_in_entry_point = False


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


def _stop_daemon_thread():
    """A daemon thread that asks for work once the interpreter exits stops
    there for good, without the GIL, as CPython stops every daemon thread at
    exit; the work would be refused anyway. Raising instead would print its
    traceback while the interpreter finalizes, and a thread caught writing
    to stderr then aborts the process ("could not acquire lock for
    <_io.BufferedWriter name='<stderr>'> at interpreter shutdown").
    Returns in any other thread (the main one, the collector running done
    callbacks, a non-daemon one), which gets the RuntimeError."""
    threading = _sys.modules.get("threading")
    if threading is None:
        return
    t = threading.current_thread()
    if t.daemon and t is not threading.main_thread() and t is not _collector:
        _park_forever()


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
    _follow_ipython_cells()
    collector = threading.Thread(target=_collect_loop, name="parpy-collector", daemon=True)
    collector.start()
    # Only a started thread is remembered: _shutdown_all joins it.
    _collector = collector


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


def _follow_ipython_cells():
    """Under IPython (a Jupyter kernel, the IPython shell), as each cell
    starts: :func:`_on_sigint` again, since ipykernel puts Python's default
    handler back before every cell (its ``pre_handler_hook``), over parpy's,
    and a cell interrupted then would leave its tasks running on, the pool
    taken; and the globals that functions captured are captured anew."""
    ipython = _sys.modules.get("IPython")
    try:
        shell = ipython.get_ipython() if ipython is not None else None
        if shell is not None:
            shell.events.register("pre_run_cell", _cell_starts)
    except Exception:
        pass


def _cell_starts(info=None):
    from . import _shipping
    _install_sigint()
    _shipping._forget_captured_specs()


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
        if _fallback._fallback_pool is not None:
            _fallback._fallback_pool.shutdown()
        if _collector is not None:
            _collect_stop()
            _collector.join()
        _flush_output()
        _seal_exit()
