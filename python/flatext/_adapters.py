"""The combined objective ``L + lam * K`` as the framework adapters call it (numpy in, numpy out).

One place for ``flatext.torch`` and ``flatext.jax``: :func:`flatext.objective`, the one-pass
kernel (docs/design.md section 10), with ``lam`` ignored for ``which="loss"`` (the adapters
pass their ``lam`` whatever the regularizer).
"""

from __future__ import annotations

from .curvature import objective as _objective

#: Values of ``which``.
REGULARIZERS = ("loss", "gauss_newton", "trace")


def objective(W, a, X, y, lam, which, power, neg):
    """``(value, loss, regularizer, gW, ga)`` of ``L + lam * K``, K the regularizer named by ``which``.

    Parameters
    ----------
    W, a, X, y : ndarray
        As in :func:`flatext.loss_grad`, one float dtype.
    lam : float
    which : {"loss", "gauss_newton", "trace"}
    power, neg : float

    Returns
    -------
    tuple of (scalar, scalar, scalar, ndarray (m, d), ndarray (m,))
    """
    if which not in REGULARIZERS:
        raise ValueError(f"which must be one of {REGULARIZERS}; got {which!r}")
    return tuple(_objective(W, a, X, y, lam if which != "loss" else 0.0, which=which, power=power, neg=neg))
