"""Step sizes from the curvature: ``lr="auto"`` and ``lr="F/lambda_max"``.

Gradient descent on ``L`` is stable near a point only for ``lr < 2 / lambda_max``
(``lambda_max`` the top Hessian eigenvalue there), and ``lambda_max`` at a random
start grows with the width: 37 at n = 100, 104 at n = 300 (d = 8, m = 2n, unit
init scale; ``python3 -m flatext.stepsize`` prints them), so a fixed ``lr = 0.2``
diverges at those sizes while it is far too small for a small init (0.6 there).

``lr="auto"`` is ``0.9 / lambda_max`` at the start point, and ``"F/lambda_max"``
(``F`` a positive number, e.g. ``"0.5/lambda_max"``) is ``F / lambda_max``; a
number is used as given. ``lambda_max`` is computed once, by Lanczos
(:func:`flatext.hessian_top_eigenvalues`, relative tolerance 1e-3), before the
first step. There is no cap: at a small init (scale 0.01) ``0.9 / lambda_max``
is about 1.5 and GD converged with it on a ReLU-teacher problem (n = 300),
faster than with 0.2; but the sharpness grows as GD leaves a small init, and on
the non-representable ``He2 + relu`` teacher of ``flatext reproduce`` (d = 8,
n = 100) the same rule (lr 1.2-1.7) diverged on all three data sets. From a
small init cap it (``min(cap, resolve_lr("auto", ...)[0])``; the reproduction
uses 0.2) or use a number.
"""

from __future__ import annotations

import math
import numbers
import re
import warnings

from .curvature import hessian_top_eigenvalues

__all__ = ["AUTO_FRACTION", "parse_lr", "resolve_lr"]

AUTO_FRACTION = 0.9
"""``lr="auto"`` means ``AUTO_FRACTION / lambda_max``."""

_FORM = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*/\s*lambda_max\s*$")


def parse_lr(lr, name="lr"):
    """``(value, fraction)``: a number gives ``(lr, None)``; ``"auto"`` gives
    ``(None, 0.9)``; ``"F/lambda_max"`` gives ``(None, F)``. Anything else raises
    a ValueError naming ``name``."""
    if isinstance(lr, str):
        if lr.strip() == "auto":
            return None, AUTO_FRACTION
        m = _FORM.match(lr)
        if m and float(m.group(1)) > 0 and math.isfinite(float(m.group(1))):
            return None, float(m.group(1))
        raise ValueError(f'{name} must be a number > 0, "auto" or "F/lambda_max" with F > 0; got {lr!r}')
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (math.isfinite(lr) and lr > 0):
        raise ValueError(f'{name} must be a number > 0, "auto" or "F/lambda_max" with F > 0; got {lr!r}')
    return float(lr), None


def resolve_lr(lr, W, a, X, y, *, power=1.0, neg=0.0):
    """The step size of ``lr`` at the start point ``(W, a)``: ``(lr_value, lambda_max)``.

    ``lambda_max`` is NaN when ``lr`` is a number (nothing is computed).

    Raises
    ------
    ValueError
        A bad ``lr``, or a top eigenvalue ``<= 0`` (no curvature to scale by:
        give a number).
    """
    value, frac = parse_lr(lr)
    if frac is None:
        return value, float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a Lanczos value to 1e-3 is plenty for a step size
        lam = float(hessian_top_eigenvalues(W, a, X, y, 1, power=power, neg=neg, max_iter=200, tol=1e-3)[0])
    if not (math.isfinite(lam) and lam > 0):
        raise ValueError(f"lr={lr!r}: the top Hessian eigenvalue at the start point is {lam:.3g} <= 0; give a number")
    return frac / lam, lam


def _main():  # pragma: no cover - prints the figures quoted in the module docstring
    import numpy as np

    from .teachers import SumOfSingleIndex

    t = SumOfSingleIndex.random(8, ["relu", "abs"], [1.0, 0.5], seed=1000)
    for n in (100, 300):
        X, y = t.sample(n, noise=0.0, seed=1)
        for s in (0.01, 1.0):
            rng = np.random.default_rng(2)
            W0 = s * rng.standard_normal((2 * n, 8)) / np.sqrt(8)
            a0 = s * rng.standard_normal(2 * n) / np.sqrt(2 * n)
            lr, lam = resolve_lr("auto", W0, a0, X, y)
            print(f"n = {n}, m = {2 * n}, init scale {s}: lambda_max = {lam:.3g}, lr='auto' = {lr:.3g}")


if __name__ == "__main__":  # pragma: no cover
    _main()
