"""A worker's setup and teardown (:func:`_worker_setup`,
:func:`_worker_teardown`), its output (:class:`_LineWriter`: whole lines to
the main interpreter's streams), and the main script loaded there as
``__mp_main__`` (:func:`_load_main`); on the main side, what a new worker or
fallback process is told (:func:`_worker_config`)."""

import sys as _sys

# The package: `_unflushed` lives there, where the worker loop (Rust) reads it.
import parpy as _parpy
from ._native import _emit, _script_path, _worker_unraisable
from ._compat import _compat_drop_dummy_thread, _compat_forget_atexit, _compat_worker_start
from ._refusals import _watch_refusals


class _StopLoad(BaseException):
    """Ends a worker's import of the script at its first parallel call."""


# Set by _load_main; other modules read them as _workerio.X.
_main_load_error = None
_main_load_exc = None
_loading_script = False


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
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        nl = s.rfind("\n")
        if nl < 0:
            if s:
                self._parts.append(s)
                _parpy._unflushed = True
            return len(s)
        head = s[:nl + 1]
        if self._parts:
            head = "".join(self._parts) + head
            self._parts.clear()
        if nl + 1 < len(s):
            self._parts.append(s[nl + 1:])
            _parpy._unflushed = True
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


def _flush_output():
    _parpy._unflushed = False
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


def _script_loadable():
    return _script_path() is not None or _main_module_name() is not None


def _main_module_name():
    main = _sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None)
    return name if name and name != "__main__" else None


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
