"""What this interpreter is (the main one, a worker, or a fallback process)
and the observability flags, fixed at import; :func:`_lookup`. The bottom
layer of the package: any module may import it."""

from ._native import _observe_flags, _worker_id


_IN_WORKER = _worker_id() is not None
_WID = _worker_id()
# --stats or --timeline on; maps draw a bar unless told not to (--progress);
# --timeline on. Fixed for the process's life.
_RECORDING, _PROGRESS_DEFAULT, _TIMELINE = _observe_flags()
# A fallback worker process (set by _fallback._fallback_child; read as
# _base._IN_FALLBACK, never imported by name).
_IN_FALLBACK = False


def _lookup(module, qualname):
    """The object that ``qualname`` (dotted) names in ``module``."""
    obj = module
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj
