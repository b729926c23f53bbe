"""The combined objective ``L + lam * K`` for the framework adapters (numpy in, numpy out).

One place for ``flatext.torch`` and ``flatext.jax`` to get value, parts and
gradient: ``flatext.objective`` (the one-pass C++ kernel) when this build has
it, else ``loss_grad`` + ``hessian_trace_grad`` (two passes) for
``which`` in ("loss", "trace"); ``"gauss_newton"`` needs the kernel.
"""
from __future__ import annotations

from . import curvature as _cv

#: Values of ``which``.
REGULARIZERS = ("loss", "gauss_newton", "trace")


def objective(W, a, X, y, lam, which, power, neg):
    """``(value, loss, regularizer, gW, ga)`` of ``L + lam * K``.

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

    Raises
    ------
    NotImplementedError
        ``which="gauss_newton"`` without ``flatext.objective``.
    """
    import flatext

    if which not in REGULARIZERS:
        raise ValueError(f"which must be one of {REGULARIZERS}; got {which!r}")
    core = getattr(flatext, "objective", None)
    if core is not None:  # flatext.objective refuses lam != 0 with which="loss" (nothing to weigh)
        return tuple(core(W, a, X, y, lam if which != "loss" else 0.0, which=which, power=power, neg=neg))
    if which == "gauss_newton":
        raise NotImplementedError(
            "which='gauss_newton' needs flatext.objective (the one-pass C++ kernel with the exact gradient of G), "
            "which this flatext build does not have"
        )
    lo, gW, ga = _cv.loss_grad(W, a, X, y, power=power, neg=neg)
    if which == "loss":
        return lo, lo, lo * 0, gW, ga
    tr, tW, ta = _cv.hessian_trace_grad(W, a, X, y, power=power, neg=neg)
    return lo + lam * tr, lo, tr, gW + lam * tW, ga + lam * ta
