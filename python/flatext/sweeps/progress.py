"""The sweep's progress bar: cells done / total, running, failed, rate and ETA.

``tqdm.auto`` picks a widget in Jupyter and a text bar elsewhere. The text bar
is drawn when stderr is a terminal; the widget always. Why the bar once never
appeared: it was disabled unless stderr was a terminal (a notebook's never
is), and on a pseudo-terminal that reports no window size (0 x 0: a fresh
``pty``, many CI and agent shells) tqdm takes ``nrows = -1`` and hides every
bar as "below the screen". The size is now the terminal's, or 100 x 24 when
it reports 0.
"""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm

__all__ = ["Progress"]


_FALLBACK_SIZE = {"ncols": 100, "nrows": 24}


def _has_size(stream):
    """Whether ``stream`` is a terminal that reports a window size (a fresh pty reports 0 x 0)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return False
    return size.columns > 0 and size.lines > 0


def _in_notebook():
    """A Jupyter kernel: tqdm.auto's widget, or its text bar when ipywidgets is missing."""
    return tqdm.__module__.startswith("tqdm.notebook") or "ipykernel" in sys.modules


class Progress:
    """A tqdm bar over the cells of a sweep (a no-op when disabled).

    Parameters
    ----------
    total : int
        Cells in the grid.
    initial : int
        Cells already finished (resumed).
    desc : str
    enabled : bool
        False: draw nothing. True: draw on a terminal (stderr) or in a notebook.
    """

    def __init__(self, total, initial, desc, enabled=True):
        self.failed = 0  # status "failed" (a solver error)
        self.not_ok = 0  # measured, but "diverged" or "not_interpolating"
        self.in_flight = 0
        self.bar = None
        if enabled and (_in_notebook() or sys.stderr.isatty()):
            size = {"dynamic_ncols": True} if _has_size(sys.stderr) else _FALLBACK_SIZE
            if tqdm.__module__.startswith("tqdm.notebook"):
                size = {}
            self.bar = tqdm(
                total=total,
                initial=initial,
                unit="cell",
                desc=desc,
                file=sys.stderr,
                smoothing=0.05,
                postfix=f"running 0, failed {self.failed}",
                **size,
            )

    def _postfix(self, refresh=True):
        extra = f", not ok {self.not_ok}" if self.not_ok else ""
        self.bar.set_postfix_str(f"running {self.in_flight}, failed {self.failed}{extra}", refresh=refresh)

    def running(self, k):
        """``k`` cells are now being computed (the executors say so after each result)."""
        self.in_flight = k
        if self.bar is not None:
            self._postfix()

    def finished(self, rows):
        """Rows of finished cells arrived."""
        self.failed += sum(r.get("status") in ("failed", "error") for r in rows)
        self.not_ok += sum(r.get("status") in ("diverged", "not_interpolating") for r in rows)
        if self.bar is not None:
            self._postfix(refresh=False)
            self.bar.update(len(rows))

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
