"""The rescaling symmetry and orbit-minimal flatness (``docs/design.md`` section 4).

For ``t_i > 0``, ``(w_i, a_i) -> (t_i w_i, t_i^(-p) a_i)`` keeps the function,
the training and population losses, but moves neuron i's trace part along
``T_i(t) = t^(2p) A_i + t^(-2) B_i``. When ``A_i, B_i > 0`` its minimum is
``(p+1) A_i^(1/(p+1)) (B_i/p)^(p/(p+1))`` at ``t^(2p+2) = B_i / (p A_i)``.
"""

from __future__ import annotations

import numpy as np

from ._native import _core

__all__ = ["rescale", "balance", "orbit_min_trace"]


def rescale(W, a, t, *, power=1.0):
    """Move (W, a) along its rescaling orbit: ``(t_i w_i, t_i^(-p) a_i)``.

    Parameters
    ----------
    W : array_like, shape (m, d)
    a : array_like, shape (m,)
    t : float or array_like, shape (m,)
        Positive factors, one per neuron, or one for all.
    power : float
        The activation's degree p.

    Returns
    -------
    W2 : ndarray, shape (m, d)
    a2 : ndarray, shape (m,)
        The same network function.
    """
    a_arr = np.asarray(a)
    if t is None or isinstance(t, (str, bytes)):
        raise TypeError(f"t must be a positive number or an array of shape (m,); got {t!r}")
    if np.ndim(t) == 0:
        try:
            t = float(t)
        except (TypeError, ValueError):
            raise TypeError(f"t must be a positive number or an array of shape (m,); got {t!r}") from None
        dt = a_arr.dtype if a_arr.dtype.kind == "f" else np.float64
        t = np.full(a_arr.shape[:1] if a_arr.ndim == 1 else (1,), t, dtype=dt)
    return _core.rescale(W, a, t, float(power))


def balance(W, a, X, y, *, power=1.0, neg=0.0):
    """The point of the rescaling orbit of (W, a) with the least Hessian trace.

    Each neuron moves to ``t_i = (B_i / (p A_i))^(1/(2p+2))``. Predictions are
    kept, so an interpolator stays one. Neurons with ``a_i = 0`` get ``w_i = 0``
    (the orbit's limit, same function); neurons whose infimum is not attained
    (``A_i = 0`` or ``B_i = 0``) are left as they are.

    Raises
    ------
    ValueError
        If some ``B_i < 0`` (possible only away from interpolation): then the
        trace is unbounded below along the orbit and no minimum exists.

    Returns
    -------
    W2, a2 : ndarray
    """
    return _core.balance(W, a, X, y, float(power), float(neg))


def orbit_min_trace(W, a, X, y, *, power=1.0, neg=0.0):
    """The least Hessian trace over all per-neuron rescalings of (W, a).

    ``sum_i min_t [t^(2p) A_i + t^(-2) B_i] = sum_i (p+1) A_i^(1/(p+1)) (B_i/p)^(p/(p+1))``
    (0 for neurons with ``A_i = 0`` or ``B_i = 0``). For ReLU at an
    interpolator this is ``2 sum_i |a_i| sqrt(A_i (1/n) sum_j 1{z_ij > 0} s_j)``,
    a data-weighted path norm. No rescaling can lower it.

    Raises
    ------
    ValueError
        If some ``B_i < 0``: the trace is then unbounded below on the orbit.
    """
    return _core.orbit_min_trace(W, a, X, y, float(power), float(neg))
