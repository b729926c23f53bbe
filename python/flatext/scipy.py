"""SciPy adapters: the loss, the Hessian trace and their derivatives as
functions of one flat parameter vector, and the Hessian as a LinearOperator.

The parameters ``(W, a)`` of ``f(x) = sum_i a_i sigma(w_i . x)`` are packed as::

    theta = np.concatenate([W.ravel(), a])      # W row-major, shape (m, d)
    m     = theta.size // (d + 1)

the same order as :func:`flatext.hessian_top_eigenvalues` uses. Example::

    import scipy.optimize
    from flatext.scipy import objective, pack, unpack

    fun, jac, hessp = objective(X, y, power=2.0)
    res = scipy.optimize.minimize(fun, pack(W0, a0), jac=jac, hessp=hessp, method="trust-ncg")
    W, a = unpack(res.x, X.shape[1])

Everything here works in float64 (SciPy's optimizers and solvers do):
``X``, ``y`` are converted once when the objective is made; a ``theta`` that
is already a C-contiguous float64 vector is unpacked into views, without a copy.
SciPy itself is imported only when :func:`hessian_operator` is called; the
objective needs numpy alone.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from . import curvature as _cv

__all__ = ["pack", "unpack", "objective", "Objective", "hessian_operator", "TARGETS"]

#: The functions of theta that :func:`objective` can build.
TARGETS = ("loss", "trace", "loss+lambda*trace")

Objective = namedtuple("Objective", ["fun", "jac", "hessp"])
Objective.__doc__ = """(fun, jac, hessp): callables of theta for ``scipy.optimize.minimize``.

A plain tuple, so ``fun, jac, hessp = objective(...)`` works."""


def pack(W, a):
    """Flatten ``(W, a)`` into ``theta = [W.ravel(), a]`` (float64, W row-major).

    Parameters
    ----------
    W : array_like, shape (m, d)
    a : array_like, shape (m,)

    Returns
    -------
    ndarray, shape (m * (d + 1),), float64
    """
    W = np.asarray(W, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    _cv._check_matrix_and_vector(W, a, ("W", "a"), ("m", "d"))
    return np.concatenate([W.ravel(order="C"), a])


def unpack(theta, d):
    """Split ``theta = [W.ravel(), a]`` into ``W`` (m, d) and ``a`` (m,), ``m = theta.size // (d + 1)``.

    For a C-contiguous float64 ``theta`` the results are views of it (no copy).

    Parameters
    ----------
    theta : array_like, shape (m * (d + 1),)
    d : int
        Input dimension (columns of X).

    Returns
    -------
    W : ndarray, shape (m, d)
    a : ndarray, shape (m,)
    """
    d = _check_d(d)
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    if theta.ndim == 2 and 1 in theta.shape:  # a (P, 1) column, as LinearOperator may pass
        theta = theta.reshape(-1)
    if theta.ndim != 1:
        raise ValueError(f"theta must be a 1-D vector; got shape {theta.shape}")
    if theta.size == 0 or theta.size % (d + 1):
        raise ValueError(
            f"theta must have size m * (d + 1) = m * {d + 1} for some m >= 1 (d = {d}); got size {theta.size}"
        )
    m = theta.size // (d + 1)
    return theta[: m * d].reshape(m, d), theta[m * d :]


def _check_d(d):
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"d must be an integer >= 1; got {d!r}")
    return int(d)


def _data(X, y):
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    _cv._check_matrix_and_vector(X, y, ("X", "y"), ("n", "d"))
    return X, y


class _LastPoint:
    """Caches fn(theta) for the last theta (fun and jac are called at the same point)."""

    def __init__(self, fn):
        self.fn = fn
        self.theta = None
        self.value = None

    def __call__(self, theta):
        theta = np.asarray(theta, dtype=np.float64)
        if self.theta is None or self.theta.shape != theta.shape or not np.array_equal(self.theta, theta):
            self.value = self.fn(theta)
            self.theta = theta.copy()
        return self.value


def objective(X, y, *, power=1.0, neg=0.0, target="loss", lam=None, fd_step=None):
    """``(fun, jac, hessp)`` of ``theta`` for ``scipy.optimize.minimize``.

    Targets (``L`` the loss, ``T = Tr hess L`` its exact Hessian trace)::

        "loss"               fun = L                jac = grad L (exact)
        "trace"              fun = T                jac = grad T (exact, hessian_trace_grad)
        "loss+lambda*trace"  fun = L + lam * T      jac = grad L + lam * grad T

    ``hessp(theta, p)``: for ``"loss"`` the exact Hessian-vector product
    :func:`flatext.hvp`. The Hessian of ``T`` needs fourth derivatives of the
    network, which flatext does not compute; for the targets with ``T`` its
    product is the central difference of the *exact* gradient of ``T``::

        hess T p ~ (grad T(theta + h u) - grad T(theta - h u)) / (2 h) * ||p||,   u = p / ||p||,
        h = fd_step * max(1, ||theta||)   (fd_step defaults to eps^(1/3) ~ 6e-6)

    with an O(h^2) error where T is smooth (p >= 4, or away from the kinks of
    sigma''' at z = 0 for smaller p). It costs two trace gradients. Pass
    ``hessp=None`` to ``minimize`` (and a quasi-Newton method such as
    ``"L-BFGS-B"``) to avoid it.

    Parameters
    ----------
    X : array_like, shape (n, d)
    y : array_like, shape (n,)
    power, neg : float
        The activation ``max(z,0)^p + neg * max(-z,0)^p``.
    target : {"loss", "trace", "loss+lambda*trace"}
    lam : float
        The weight of ``T``; required for (and only for) ``"loss+lambda*trace"``.
    fd_step : float, optional
        Relative step of the finite-difference ``hessp`` of the trace targets.

    Returns
    -------
    Objective
        A named tuple ``(fun, jac, hessp)``: ``fun(theta) -> float``,
        ``jac(theta) -> ndarray (P,)``, ``hessp(theta, p) -> ndarray (P,)``
        with ``P = m (d + 1)`` and ``theta`` as in :func:`pack`.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}; got {target!r}")
    if target == "loss+lambda*trace":
        if lam is None:
            raise ValueError("lam is required with target='loss+lambda*trace'")
        lam = float(lam)
        if not math.isfinite(lam):
            raise ValueError(f"lam must be finite; got {lam}")
    elif lam is not None:
        raise ValueError(f"lam is only used with target='loss+lambda*trace', not target={target!r}")
    if fd_step is None:
        fd_step = np.finfo(np.float64).eps ** (1.0 / 3.0)
    fd_step = float(fd_step)
    if not (fd_step > 0 and math.isfinite(fd_step)):
        raise ValueError(f"fd_step must be a finite number > 0; got {fd_step}")
    X, y = _data(X, y)
    d = X.shape[1]
    kw = {"power": float(power), "neg": float(neg)}
    _cv.loss(np.zeros((1, d)), np.zeros(1), X, y, **kw)  # validates X, y, power, neg now

    def loss_vg(theta):
        W, a = unpack(theta, d)
        L, gW, ga = _cv.loss_grad(W, a, X, y, **kw)
        return float(L), np.concatenate([gW.ravel(), ga])

    def trace_vg(theta):
        W, a = unpack(theta, d)
        T, gW, ga = _cv.hessian_trace_grad(W, a, X, y, **kw)
        return float(T), np.concatenate([gW.ravel(), ga])

    def loss_hessp(theta, p):
        W, a = unpack(theta, d)
        VW, va = unpack(p, d)
        if va.shape != a.shape:
            raise ValueError(f"p must have the size of theta ({np.size(theta)}); got {np.size(p)}")
        HW, ha = _cv.hvp(W, a, X, y, VW, va, **kw)
        return np.concatenate([HW.ravel(), ha])

    def trace_hessp(theta, p):
        theta = np.asarray(theta, dtype=np.float64)
        p = np.asarray(p, dtype=np.float64).reshape(-1)
        if p.shape != theta.shape:
            raise ValueError(f"p must have the size of theta ({theta.size}); got {p.size}")
        pn = float(np.linalg.norm(p))
        if pn == 0.0:
            return np.zeros_like(theta)
        h = fd_step * max(1.0, float(np.linalg.norm(theta)))
        u = p / pn
        return (trace_vg(theta + h * u)[1] - trace_vg(theta - h * u)[1]) * (pn / (2.0 * h))

    if target == "loss":
        vg = _LastPoint(loss_vg)
        hessp = loss_hessp
    elif target == "trace":
        vg = _LastPoint(trace_vg)
        hessp = trace_hessp
    else:

        def both(theta):
            L, gL = loss_vg(theta)
            T, gT = trace_vg(theta)
            return L + lam * T, gL + lam * gT

        vg = _LastPoint(both)

        def hessp(theta, p):
            return loss_hessp(theta, p) + lam * trace_hessp(theta, p)

    def fun(theta):
        return vg(theta)[0]

    def jac(theta):
        return vg(theta)[1].copy()

    fun.__doc__ = f"{target} at theta = [W.ravel(), a] (power={kw['power']}, neg={kw['neg']})."
    jac.__doc__ = f"Gradient of {target} with respect to theta."
    hessp.__doc__ = f"Hessian of {target} times p at theta" + (
        " (exact)." if target == "loss" else " (trace part: central differences of its exact gradient)."
    )
    return Objective(fun, jac, hessp)


def hessian_operator(W, a, X, y, *, power=1.0, neg=0.0):
    """The Hessian of the loss at ``(W, a)`` as a ``scipy.sparse.linalg.LinearOperator``.

    Each product is one exact :func:`flatext.hvp` (three GEMM-equivalents),
    over ``theta = [W.ravel(), a]``; the operator is symmetric
    (``rmatvec == matvec``). Usable with ``eigsh``, ``cg``, ``minres``...::

        H = hessian_operator(W, a, X, y, power=2.0)
        top = scipy.sparse.linalg.eigsh(H, k=1, which="LA", return_eigenvectors=False)

    Parameters
    ----------
    W : array_like, shape (m, d)
    a : array_like, shape (m,)
    X : array_like, shape (n, d)
    y : array_like, shape (n,)
    power, neg : float
        The activation.

    Returns
    -------
    scipy.sparse.linalg.LinearOperator
        Shape ``(P, P)``, ``P = m (d + 1)``, dtype float64.
    """
    from scipy.sparse.linalg import LinearOperator

    W = np.ascontiguousarray(W, dtype=np.float64)
    a = np.ascontiguousarray(a, dtype=np.float64)
    X, y = _data(X, y)
    kw = {"power": float(power), "neg": float(neg)}
    _cv.loss(W, a, X, y, **kw)  # validates every argument now, with named errors
    m, d = W.shape
    P = m * (d + 1)

    def matvec(v):
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        if v.size != P:
            raise ValueError(f"v must have size m*(d+1) = {P}; got {v.size}")
        VW, va = unpack(v, d)
        HW, ha = _cv.hvp(W, a, X, y, VW, va, **kw)
        return np.concatenate([HW.ravel(), ha])

    return LinearOperator((P, P), matvec=matvec, rmatvec=matvec, dtype=np.float64)
