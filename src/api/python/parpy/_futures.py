"""Main side: futures and how they settle. The Future of ``submit()``
(:func:`_future_class`) and its stand-in while concurrent.futures is not
loaded (:class:`_LazyFuture`); outcomes taken from the native channel by the
collector thread (:func:`_collect_loop`) or by a thread waiting for one
future (:func:`_drive`), and settled (:func:`_settle`)."""

import sys as _sys

from ._native import _cancel, _collect, _task_started, _wake_direct
from ._errors import _broken_worker, _outcome
from ._shipping import _fn_name
from ._output import _write_output
from ._fallback import _fallback, _use_fallback


_pending = {}          # tag -> Future
# Guards the late parts of parpy's futures: a _LazyFuture becoming real, and
# a _Future's Condition being made or skipped. Reentrant: becoming real
# settles the real future under it. From _thread: no threading import.
_lazy_lock = __import__("_thread").RLock()
_future_cls = None  # see _future_class; read elsewhere as _futures._future_cls
_stopped_pools = set()  # pools whose running tasks terminate_workers() stopped


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
