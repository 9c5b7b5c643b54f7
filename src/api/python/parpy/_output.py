"""Main side: output. Worker output written to main's streams, around the
progress bars being drawn (:func:`_write_output`); the bars
(:func:`_bar_start`, :func:`_bar_end`); :func:`_flush_std`."""

import sys as _sys

from ._native import _progress_end, _progress_start, _progress_write
from ._base import _PROGRESS_DEFAULT
from ._shipping import _fn_name


_bars = set()  # progress bars being drawn: output is written around them


def _write_output(stream, text):
    out = _sys.stdout if stream == 1 else _sys.stderr
    if out is None:
        return
    try:
        if _bars:
            _progress_write(out, text)  # the bars are cleared around it
        else:
            out.write(text)
    except Exception:
        pass


def _flush_std():
    for s in (_sys.stdout, _sys.stderr):
        try:
            s.flush()
        except Exception:
            pass


def _bar_start(pool, fn, total, progress):
    """A progress bar for a map of ``fn`` (``progress``: True, False, or
    None for ``--progress``); None when there is to be none."""
    if progress is None:
        progress = _PROGRESS_DEFAULT
    if not progress:
        return None
    bar = _progress_start(pool or 0, _fn_name(fn), total)
    _bars.add(bar)
    return bar


def _bar_end(bar):
    """Ends a bar (once; later calls do nothing)."""
    if bar is not None and bar in _bars:
        _bars.discard(bar)
        _progress_end(bar)
