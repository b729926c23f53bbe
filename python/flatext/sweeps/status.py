"""The ``status`` of a sweep row: one word that says whether the row is what its method promises.

=====================  ==================================================================
``ok``                 the method ran and delivered what it promises: an interpolator
                       method (gd, sam, label_noise_sgd, project, flattest, memorize) meets its
                       tolerance; ``random`` promises nothing more than a network
``diverged``           the trainer stopped at a non-finite loss, gradient or parameter
                       (``reason = "diverged"``); the row measures the last finite point
``not_interpolating``  an interpolator method ended above its tolerance: a trainer whose
                       polish did not converge (``polish`` "skipped", "improved", "no
                       improvement", "failed"; polish off: loss above ``tol``);
                       project, flattest or memorize with a max residual above theirs
``failed``             the method raised (message in ``error``); no measurements
=====================  ==================================================================

Rows that are not ``ok`` are kept in the table (with their measurements, when
there are any) and left out of :func:`flatext.plot` unless asked for. A rerun
computes ``failed`` cells again (and ``error`` rows written by older versions);
the other statuses are final, since a cell's row is a deterministic function of it.
"""

from __future__ import annotations

__all__ = ["STATUSES", "FINAL", "MEMORIZE_RTOL", "row_status"]

STATUSES = ("ok", "diverged", "not_interpolating", "failed")
FINAL = ("ok", "diverged", "not_interpolating")
"""Statuses a rerun keeps (the cell is not computed again)."""

MEMORIZE_RTOL = 1e-8
"""Relative residual tolerance of ``memorize`` rows (``max_residual_rel``; it solves a linear system)."""


def row_status(info):
    """The status of a method's ``info`` (its ``reason`` and ``interpolating``; see the table above)."""
    if info.get("reason") == "diverged":
        return "diverged"
    if info.get("interpolating") is False:
        return "not_interpolating"
    return "ok"
