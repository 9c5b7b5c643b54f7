"""The fallback for tasks whose modules refuse sub-interpreters (numpy,
PyO3 extensions): worker processes that re-run this parpy on the script
(``--fallback=process``, :func:`_fallback_child` is their body) or the main
interpreter (``--fallback=main``)."""

import sys as _sys

from ._native import _default_workers, _fallback_mode, _log, _observe_fallback, _observe_now
from . import _base
from ._base import _RECORDING
from ._errors import _pack_exc, _unpack_exc
from ._workerio import _load_main, _worker_config
from ._shipping import _fallback_fids, _resolve, _spec_label
from ._output import _flush_std, _write_output


_fallback_pool = None  # see _fallback(); read elsewhere as _fallback._fallback_pool


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


def _fallback():
    global _fallback_pool
    if _fallback_pool is None:
        _fallback_pool = _FallbackPool(_fallback_mode(), _default_workers())
    return _fallback_pool


def _fallback_child(rfd, wfd):
    """The body of a fallback worker process."""
    _base._IN_FALLBACK = True
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
