"""The Gauss-Newton polish of a trained point, one rule for every caller (``docs/design.md``, results).

:func:`gauss_newton_polish` runs :func:`flatext.find_interpolator` from the point and keeps its
result when it lowered ``max|r|`` (status ``"converged"`` when it reached its tolerance, else
``"improved"``); otherwise the point stays (``"no improvement"``), and a projection that raises
leaves it too (``"failed"``). :func:`flatext.train`, :func:`flatext.label_noise_sgd` and the
reproduction's polished rows use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._native import _core
from .interpolators import find_interpolator

__all__ = ["PolishOutcome", "gauss_newton_polish"]


@dataclass(frozen=True)
class PolishOutcome:
    """What the polish did: the point kept, ``status`` (``"converged"``, ``"improved"``,
    ``"no improvement"`` or ``"failed"``), ``polished`` (the point is the polish's), max|r|
    before and after (equal when not polished), Gauss-Newton steps and a clause for messages."""

    W: np.ndarray
    a: np.ndarray
    status: str
    polished: bool
    max_residual_before: float
    max_residual_after: float
    iterations: int
    message: str


def gauss_newton_polish(W, a, X, y, *, power=1.0, neg=0.0, tol=None, max_iter=200) -> PolishOutcome:
    """Polish ``(W, a)`` towards an exact interpolator of ``(X, y)`` (module docstring for the rule)."""
    yv = np.asarray(y, dtype=np.asarray(W).dtype)
    rb = float(np.max(np.abs(_core.forward(W, a, X, float(power), float(neg)) - yv)))
    try:
        q = find_interpolator(W, a, X, y, power=power, neg=neg, tol=tol, max_iter=max_iter)
    except ValueError as e:  # cannot interpolate from here: keep the point
        return PolishOutcome(W, a, "failed", False, rb, rb, 0, f"polish failed: {e}")
    if q.max_residual < rb:
        if q.converged:
            return PolishOutcome(q.W, q.a, "converged", True, rb, q.max_residual, q.iterations, "")
        msg = (
            f"polish did not reach its tolerance in {q.iterations} steps "
            f"(max|r| {rb:.3g} -> {q.max_residual:.3g}): returning the polished point"
        )
        return PolishOutcome(q.W, q.a, "improved", True, rb, q.max_residual, q.iterations, msg)
    msg = f"polish did not lower max|r| ({q.max_residual:.3g} >= {rb:.3g}): keeping the trained point"
    return PolishOutcome(W, a, "no improvement", False, rb, rb, q.iterations, msg)
