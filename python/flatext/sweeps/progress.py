"""The sweep's progress bar: cells done / total, running, failed, rate and ETA.

``tqdm.auto`` picks a widget in Jupyter and a text bar elsewhere. The text bar
is drawn when stderr is a terminal; the widget always (a notebook's stderr
is not a terminal, which is why the bar once never appeared there).
"""
from __future__ import annotations

import sys

from tqdm.auto import tqdm

__all__ = ["Progress"]


def _in_notebook():
    return tqdm.__module__.startswith("tqdm.notebook")


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
        self.failed = 0
        self.in_flight = 0
        self.bar = None
        if enabled and (_in_notebook() or sys.stderr.isatty()):
            self.bar = tqdm(total=total, initial=initial, unit="cell", desc=desc, file=sys.stderr, smoothing=0.05,
                            dynamic_ncols=True)
            self._postfix()

    def _postfix(self):
        self.bar.set_postfix_str(f"running {self.in_flight}, failed {self.failed}", refresh=True)

    def running(self, k):
        """``k`` cells are now being computed."""
        self.in_flight = k
        if self.bar is not None:
            self._postfix()

    def finished(self, rows):
        """Rows of finished cells arrived."""
        self.failed += sum(r.get("status") != "ok" for r in rows)
        self.in_flight = max(0, self.in_flight - len(rows))
        if self.bar is not None:
            self.bar.update(len(rows))
            self._postfix()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
