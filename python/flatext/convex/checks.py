"""The arguments of :func:`flatext.certified_flattest`, checked (clear errors naming the argument)."""

from __future__ import annotations

import numpy as np

from .constants import DUAL_SOLVERS


def _check_X(X):
    X = np.asarray(X)
    if X.dtype.kind not in "fiu":
        raise TypeError(f"X must be a real array; got dtype {X.dtype}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must have shape (n, d) with n, d >= 1; got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or inf")
    return X


def _check_y(y, n):
    y = np.asarray(y)
    if y.dtype.kind not in "fiu":
        raise TypeError(f"y must be a real array; got dtype {y.dtype}")
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (n,):
        raise ValueError(f"y must have shape (n,) = ({n},); got {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or inf")
    return y


def _check_neg(neg):
    try:
        neg = float(neg)
    except (TypeError, ValueError):
        raise TypeError(f"neg must be a number in (-1, 1]; got {neg!r}") from None
    if not -1.0 < neg <= 1.0:
        raise ValueError(f"neg must be in (-1, 1] (leaky ReLU -alpha < 0, ReLU 0, V-shaped between, |z| 1); got {neg}")
    return neg


def _is_int(v):
    return not isinstance(v, bool) and isinstance(v, (int, np.integer))


def _check_arguments(X, y, neg, patterns, solver, m, pricing_rounds):
    """Checked ``(X, y, neg, pricing_rounds)`` (the rounds' default filled in); raises on bad input.
    The options are checked by :class:`flatext.ConvexOptions`."""
    X = _check_X(X)
    y = _check_y(y, X.shape[0])
    neg = _check_neg(neg)
    if m is not None and (not _is_int(m) or m < 1):
        raise ValueError(f"m must be a positive int or None; got {m!r}")
    if np.any(np.linalg.norm(X, axis=1) == 0):
        raise ValueError("X has a zero row: a bias-free network outputs 0 there; drop it")
    if pricing_rounds is None:
        pricing_rounds = (50 if patterns == "exact" else 5) if solver in DUAL_SOLVERS else 0
    return X, y, neg, pricing_rounds


def _check_n_patterns(n_patterns, warm_dirs):
    if not _is_int(n_patterns) or n_patterns < 0:
        raise ValueError(f"n_patterns must be an int >= 0; got {n_patterns!r}")
    if n_patterns == 0 and warm_dirs is None:
        raise ValueError("n_patterns = 0 needs warm_start networks (their patterns are the only cells)")


def _warm_directions(warm_start, Q):
    """The warm starts' neurons in the row-space coordinates of X (``W Q``), stacked, or None."""
    d = Q.shape[0]
    warm_dirs = []
    for k, net in enumerate(warm_start or []):
        try:
            Wk, _ = net
        except (TypeError, ValueError):
            raise TypeError(f"warm_start[{k}] must be a pair (W, a)") from None
        Wk = np.asarray(Wk, dtype=np.float64)
        if Wk.ndim != 2 or Wk.shape[1] != d:
            raise ValueError(f"warm_start[{k}][0] must have shape (m, {d}); got {Wk.shape}")
        warm_dirs.append(Wk @ Q)
    return np.concatenate(warm_dirs) if warm_dirs else None
