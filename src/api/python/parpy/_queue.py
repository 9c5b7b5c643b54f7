"""``parpy.Queue``: a FIFO that the native side keeps, shared by the main
interpreter and all workers; it pickles as its id."""

from types import GenericAlias as _GenericAlias

from ._native import _queue_attach, _queue_get, _queue_len, _queue_new, _queue_put, _queue_release


class Queue:
    """A FIFO shared by the main interpreter and all workers.

    Pass it to tasks as an argument (or use ``ctx.queue``). Items are copied
    like task arguments. ``get``/``put`` follow :class:`queue.Queue`."""

    # Queue[int] in annotations evaluated at run time (the stubs' generic).
    __class_getitem__ = classmethod(_GenericAlias)

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


Queue.__module__ = "parpy"


def _queue_from_id(qid, maxsize=0):
    return Queue._attach(qid, maxsize)
