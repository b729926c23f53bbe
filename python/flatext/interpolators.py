"""Interpolators: projection onto the interpolation set, the flattest-interpolator
search, memorizing interpolators, and training (``DESIGN.md`` section 5).

The interpolation set is ``M = {theta : r(theta) = 0}``, ``r_j = f(x_j) - y_j``,
``theta = (W, a)``. ``J`` (n x m(d+1)) is the Jacobian of the outputs
``f(x_j)`` and ``K = J J^T`` its Gram matrix (the empirical NTK)::

    K = S S^T + (X X^T) o (D diag(a^2) D^T),   S_ji = sigma(z_ij), D_ji = sigma'(z_ij)

built by the C++ core in row-tile blocks with GEMMs (``n^2 (m + d)``
multiply-adds, the n x m matrices S and D are never held whole); its systems
``(K + lambda I) c = b`` are solved by Cholesky in float64 (LDLT fallback).

Residual scale: every tolerance ``tol`` on residuals is relative to the label
scale, ``max_j |r_j| <= tol * max(1, max_j |y_j|)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._native import _core
from .curvature import _int_arg

__all__ = [
    "InterpolationResult",
    "SearchResult",
    "jvp",
    "vjp",
    "ntk_gram",
    "find_interpolator",
    "flattest_interpolator",
    "memorizing_interpolator",
    "teacher_plus_memorizer",
]


def _default_tol(W, tol):
    if tol is not None:
        return float(tol)
    return 1e-4 if np.asarray(W).dtype == np.float32 else 1e-10


@dataclass(frozen=True)
class InterpolationResult:
    """Result of :func:`find_interpolator`.

    Attributes
    ----------
    W, a : ndarray
        The (approximate) interpolator.
    max_residual : float
        ``max_j |f(x_j) - y_j|`` at ``(W, a)``.
    iterations : int
        Accepted Gauss-Newton steps.
    converged : bool
        ``max_residual <= tol * max(1, max|y|)``.
    history : ndarray
        ``max |r|`` at the start and after each accepted step.
    gram_builds : int
        Gram matrices built (one per accepted step).
    """

    W: np.ndarray
    a: np.ndarray
    max_residual: float
    iterations: int
    converged: bool
    history: np.ndarray = field(repr=False)
    gram_builds: int = 0

    def __repr__(self):
        m, d = self.W.shape
        return (f"InterpolationResult(m={m}, d={d}, max_residual={self.max_residual:.3g}, "
                f"iterations={self.iterations}, converged={self.converged})")


@dataclass(frozen=True)
class SearchResult:
    """Result of :func:`flattest_interpolator`.

    Attributes
    ----------
    W, a : ndarray
        The last accepted interpolator.
    trace : float
        Hessian trace ``T`` at ``(W, a)``.
    orbit_min_trace : float
        Orbit-minimal trace (``orbit_min_trace``; equal to ``trace`` when balanced).
    max_residual : float
        ``max_j |r_j|`` at ``(W, a)``.
    iterations : int
        Search iterations run (accepted steps).
    converged : bool
        Stopped by ``gtol`` or ``ftol`` (not by ``max_iter``, a failed line
        search or the callback).
    reason : str
        Why the search stopped.
    history : dict of ndarray
        Per iteration (entry 0 is the start point, after the initial projection
        and balance): ``trace``, ``orbit_min_trace``, ``max_residual``, ``eta``
        (accepted step size), ``gt_ratio`` (``||g_t|| / ||g||`` at the point the
        step started from), ``backtracks`` (line-search halvings),
        ``retract_iters`` (chord iterations of the accepted trial) and
        ``gram_builds`` (n x n Gram matrices built in the step: 1 for the
        tangent projection plus the retractions' ``S S^T`` and Gauss-Newton ``K``).
    """

    W: np.ndarray
    a: np.ndarray
    trace: float
    orbit_min_trace: float
    max_residual: float
    iterations: int
    converged: bool
    reason: str
    history: dict = field(repr=False)

    def __repr__(self):
        m, d = self.W.shape
        return (f"SearchResult(m={m}, d={d}, trace={self.trace:.6g}, orbit_min_trace={self.orbit_min_trace:.6g}, "
                f"max_residual={self.max_residual:.3g}, iterations={self.iterations}, converged={self.converged}, "
                f"reason={self.reason!r})")


def jvp(W, a, X, VW, va, *, power=1.0, neg=0.0):
    """Jacobian-vector product of the outputs, ``J v`` with ``v = (VW, va)``.

    ``(J v)_j = sum_i [va_i sigma(z_ij) + a_i sigma'(z_ij) (VW_i . x_j)]``. Two GEMMs, tiled.

    Returns
    -------
    ndarray, shape (n,)
    """
    return _core.jvp(W, a, X, VW, va, float(power), float(neg))


def vjp(W, a, X, u, *, power=1.0, neg=0.0):
    """Vector-Jacobian product of the outputs, ``J^T u``.

    ``(J^T u)_a_i = sum_j u_j sigma(z_ij)``, ``(J^T u)_w_i = sum_j u_j a_i sigma'(z_ij) x_j``.
    Two GEMMs, tiled.

    Returns
    -------
    gW : ndarray, shape (m, d)
    ga : ndarray, shape (m,)
    """
    return _core.vjp(W, a, X, u, float(power), float(neg))


def ntk_gram(W, a, X, *, power=1.0, neg=0.0):
    """The Gram matrix ``K = J J^T`` of the output Jacobian (the empirical NTK).

    ``K = S S^T + (X X^T) o (D diag(a^2) D^T)``, ``S_ji = sigma(z_ij)``,
    ``D_ji = sigma'(z_ij)``, built in row-tile blocks with GEMMs
    (``n^2 (m + d)`` multiply-adds, memory ``n^2`` plus ``O(tile * m)`` per thread).

    Returns
    -------
    ndarray, shape (n, n)
    """
    return _core.gram(W, a, X, float(power), float(neg))


def find_interpolator(W0, a0, X, y, *, power=1.0, neg=0.0, tol=None, max_iter=100, lambda_init=1e-3):
    """Project ``(W0, a0)`` onto the interpolation set by damped Gauss-Newton steps.

    Method: minimum-norm Gauss-Newton steps with Levenberg-Marquardt damping,

        theta <- theta - J^T (K + lambda I)^{-1} r,

    ``lambda`` starting at ``lambda_init * trace(K)/n``. A trial step is
    accepted only if it lowers ``||r||`` (the loss); then ``lambda /= 10``
    (floor ``1e-12 trace(K)/n``), else ``lambda *= 10`` and the step is retried
    with the same ``K``.

    Stopping rules: success when ``max_j |r_j| <= tol * max(1, max_j |y_j|)``;
    ``converged=False`` after ``max_iter`` accepted steps.

    Parameters
    ----------
    W0, a0 : array_like, shapes (m, d), (m,)
        Start point.
    X, y : array_like, shapes (n, d), (n,)
    power, neg : float
        The activation ``max(z,0)^p + neg * max(-z,0)^p``.
    tol : float, optional
        Relative residual tolerance (default 1e-10 for float64, 1e-4 for float32).
    max_iter : int
    lambda_init : float

    Raises
    ------
    ValueError
        Bad input; ``n > m (d+1)`` (more equations than parameters); a dead
        network (a sample with a zero Jacobian row but nonzero residual); or no
        damped step lowers the loss (``lambda`` beyond ``1e8 trace(K)/n``: a
        non-interpolating stationary point, or ``tol`` below the dtype's precision).

    Returns
    -------
    InterpolationResult
    """
    tol = _default_tol(W0, tol)
    r = _core.find_interpolator(W0, a0, X, y, float(power), float(neg), tol, _int_arg(max_iter, "max_iter"),
                                float(lambda_init))
    return InterpolationResult(r["W"], r["a"], float(r["max_residual"]), int(r["iterations"]), bool(r["converged"]),
                               np.asarray(r["history"]), int(r["gram_builds"]))


_HIST_KEYS = ("trace", "orbit_min_trace", "max_residual", "eta", "gt_ratio", "backtracks", "retract_iters",
              "gram_builds")


def flattest_interpolator(W0, a0, X, y, *, power=1.0, neg=0.0, max_iter=200, balance=True, tol=None, gtol=1e-4,
                          ftol=1e-6, patience=5, lambda_rel=1e-10, retract_iter=6, a_correction=False,
                          callback=None):
    """Search the interpolation set for the interpolator of least Hessian trace.

    Projected gradient on ``M = {r = 0}``, one C++ step per iteration
    (``_core.search_step``, GIL released):

    1. ``g = grad T(theta)`` (exact, :func:`flatext.hessian_trace_grad`);
    2. tangent part ``g_t = g - J^T (K + lambda I)^{-1} J g`` with
       ``lambda = lambda_rel * trace(K)/n`` (a tiny regularization: ``K`` is
       full rank on an overparameterized problem, ``lambda`` only guards round-off);
    3. ``theta' = theta - eta g_t`` with a backtracking (halving) Armijo line
       search on ``T`` of the *retracted* point: accept when
       ``T(R(theta')) <= T(theta) - 1e-4 eta ||g_t||^2``. The first trial
       ``eta`` is twice the last accepted one (initially
       ``min(0.1 T / ||g_t||^2, 0.05 ||theta|| / ||g_t||)``);
    4. retraction ``R``: chord Gauss-Newton iterations
       ``theta' <- theta' - J(theta)^T (K + lambda I)^{-1} r(theta')`` reusing the
       factor of step 2 while each lowers ``||r||`` by at least 30 % (at most
       ``retract_iter``); then (if ``a_correction``), since f is linear in
       ``a``, the exact minimum-norm correction of ``a`` alone,
       ``a <- a - S^T (S S^T)^{-1} r`` (``S = sigma(X W^T)``; one ``S S^T``,
       about half a ``K``); then :func:`find_interpolator` with damping from
       ``1e-9 trace(K)/n``. Target ``max|r| <= tol * max(1, max|y|)``; a trial
       whose retraction fails counts as a failed trial (``eta`` halves);
    5. if ``balance``: every neuron moved to its rescaling-orbit minimum
       (exact; it keeps every prediction, so the point stays on ``M``).

    The start ``(W0, a0)`` is first projected by :func:`find_interpolator` if it
    does not interpolate to ``tol``, then balanced.

    Stopping rules: ``||g_t|| <= gtol ||g||`` (converged, reason ``"gtol"``);
    relative decrease of ``T`` over the last ``patience`` iterations below
    ``ftol`` (converged, ``"ftol"``); no acceptable step in the line search
    (``"line search failed"``, not converged); ``max_iter`` iterations
    (``"max_iter"``); ``callback(info)`` returning True (``"callback"``).

    Cost per iteration: one Gram matrix ``K`` (``n^2 (m + d)`` multiply-adds),
    one ``n^3/3`` Cholesky, about 7 GEMM-equivalents (``X W^T``-sized) plus 4
    per line-search trial and 3 per chord iteration.

    Parameters
    ----------
    W0, a0, X, y, power, neg
        As in :func:`find_interpolator`.
    max_iter : int
        Search iterations at most.
    balance : bool
        Balance after each accepted step.
    tol : float, optional
        Relative residual tolerance of the retraction (default 1e-10 float64,
        1e-4 float32).
    gtol, ftol, patience
        Stopping rules above.
    lambda_rel : float
        Projection regularization relative to ``trace(K)/n``.
    retract_iter : int
        Chord iterations before the fallbacks.
    a_correction : bool
        Try the exact correction of ``a`` alone before the Gauss-Newton
        fallback. Cheaper per step, but with ReLU it can land on points of
        higher trace and stall the line search early (off by default).
    callback : callable, optional
        ``callback(info)`` after every iteration, ``info`` a dict with
        ``iteration``, ``W``, ``a`` and the history fields of that iteration;
        return True to stop.

    Returns
    -------
    SearchResult
    """
    tol = _default_tol(W0, tol)
    if _int_arg(max_iter, "max_iter") < 0:
        raise ValueError(f"max_iter must be >= 0; got {max_iter}")
    for name, v in (("gtol", gtol), ("ftol", ftol)):
        if not np.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be finite and >= 0; got {v}")
    if int(patience) < 1:
        raise ValueError(f"patience must be >= 1; got {patience}")
    p, c = float(power), float(neg)
    start = find_interpolator(W0, a0, X, y, power=p, neg=c, tol=tol, max_iter=200)
    if not start.converged:
        raise ValueError(f"flattest_interpolator: could not project the start point onto the interpolation set "
                         f"(max|r| = {start.max_residual:.3g} after {start.iterations} Gauss-Newton steps)")
    W, a = start.W, start.a
    X = np.ascontiguousarray(X, dtype=W.dtype)
    y = np.ascontiguousarray(y, dtype=W.dtype)
    # balance the start point (a search step with gtol = inf does only that)
    s = _core.search_step(W, a, X, y, p, c, tol, float(lambda_rel), np.inf, 0.0, bool(balance), 30,
                          int(retract_iter), bool(a_correction))
    W, a = s["W"], s["a"]
    hist = {k: [] for k in _HIST_KEYS}

    def record(s, eta, ratio, bt, ri, gb):
        hist["trace"].append(s["trace"])
        hist["orbit_min_trace"].append(s["orbit_min_trace"])
        hist["max_residual"].append(s["max_residual"])
        hist["eta"].append(eta)
        hist["gt_ratio"].append(ratio)
        hist["backtracks"].append(bt)
        hist["retract_iters"].append(ri)
        hist["gram_builds"].append(gb)

    record(s, 0.0, s["gt_norm"] / s["g_norm"] if s["g_norm"] > 0 else 0.0, 0, 0, 0)
    trace, omin, rmax = s["trace"], s["orbit_min_trace"], s["max_residual"]
    eta_prev = 0.0
    it = 0
    reason, converged = "max_iter", False
    while it < _int_arg(max_iter, "max_iter"):
        s = _core.search_step(W, a, X, y, p, c, tol, float(lambda_rel), float(gtol),
                              2.0 * eta_prev, bool(balance), 30, int(retract_iter), bool(a_correction))
        ratio = s["gt_norm"] / s["g_norm"] if s["g_norm"] > 0 else 0.0
        if s["small_gradient"]:
            hist["gt_ratio"][-1] = ratio
            reason, converged = "gtol", True
            break
        if not s["accepted"]:
            hist["gt_ratio"][-1] = ratio
            reason = "line search failed"
            break
        it += 1
        W, a = s["W"], s["a"]
        trace, omin, rmax = s["trace"], s["orbit_min_trace"], s["max_residual"]
        eta_prev = s["eta"]
        record(s, s["eta"], ratio, s["backtracks"], s["retract_iters"], s["gram_builds"])
        if callback is not None:
            info = {"iteration": it, "W": W, "a": a}
            info.update({k: v[-1] for k, v in hist.items()})
            if callback(info):
                reason = "callback"
                break
        tr = hist["trace"]
        if len(tr) > patience:
            old = tr[-1 - patience]
            if old - tr[-1] <= ftol * abs(tr[-1]):
                reason, converged = "ftol", True
                break
    history = {k: np.asarray(v) for k, v in hist.items()}
    return SearchResult(W, a, float(trace), float(omin), float(rmax), it, converged, reason, history)


def memorizing_interpolator(X, y, *, power=1.0, neg=0.0, kappa=1.0, m=None, return_info=False):
    """A memorizing interpolator: one neuron per training point.

    ``w_k = kappa x_k / ||x_k||`` and the output weights solve ``S a = y`` with
    ``S_jk = sigma(w_k . x_j)`` (n x n, LU with partial pivoting in float64). If
    ``S`` is singular or ill-conditioned (reciprocal condition estimate
    ``<= 1e-12``) the minimum-norm least-squares solution is used instead and
    the fit may not be exact: check ``info["residual"]``.

    Parameters
    ----------
    X, y : array_like, shapes (n, d), (n,)
    power, neg : float
        The activation.
    kappa : float
        Norm of every input weight vector.
    m : int, optional
        Width (>= n); rows ``n..m-1`` are zero neurons (``w = 0``, ``a = 0``), so
        the memorizer can be compared at the width of another network.
    return_info : bool
        Also return a dict with ``residual`` (``max_j |f(x_j) - y_j|`` of the
        solve), ``rcond`` and ``least_squares``.

    Returns
    -------
    W : ndarray, shape (m, d)
    a : ndarray, shape (m,)
    """
    width = 0 if m is None else _int_arg(m, "m")
    if m is not None and width < 1:
        raise ValueError(f"m must be a positive int; got {m}")
    W, a, res, rcond, ls = _core.memorizing_interpolator(X, y, float(power), float(neg), float(kappa), width)
    scale = max(1.0, float(np.max(np.abs(np.asarray(y, dtype=np.float64)))))
    tol = 1e-4 if np.asarray(W).dtype == np.float32 else 1e-8
    if not np.isfinite(res) or res > tol * scale:
        raise ValueError(
            f"memorizing_interpolator: the n x n feature system (n = {np.shape(X)[0]}) could not be solved to "
            f"interpolation (max|r| = {res:.3g}, rcond = {rcond:.3g}); kappa = {kappa!r} is probably too large or too "
            "small for this power (sigma(kappa x . x') under- or overflows), or samples repeat")
    if return_info:
        return W, a, {"residual": float(res), "rcond": float(rcond), "least_squares": bool(ls)}
    return W, a


def teacher_plus_memorizer(W_teacher, a_teacher, X, y, *, power=1.0, neg=0.0, kappa=1.0, return_info=False):
    """A good approximation of the teacher plus a memorizer of its residual.

    The network ``(W_teacher, a_teacher)`` (e.g. the teacher itself, or a fit of
    it) concatenated with :func:`memorizing_interpolator` fitted to the residual
    labels ``y - f_teacher(X)``: width ``m_teacher + n``; it interpolates
    ``(X, y)`` and agrees with the teacher away from the data up to the
    memorizer's contribution.

    Returns
    -------
    W : ndarray, shape (m_teacher + n, d)
    a : ndarray, shape (m_teacher + n,)
    """
    Wt = np.asarray(W_teacher)
    at = np.asarray(a_teacher)
    f = _core.forward(Wt, at, X, float(power), float(neg))
    yr = np.asarray(y, dtype=f.dtype) - f
    Wm, am, info = memorizing_interpolator(X, yr, power=power, neg=neg, kappa=kappa, return_info=True)
    W = np.concatenate([Wt.astype(Wm.dtype, copy=False), Wm])
    a = np.concatenate([at.astype(am.dtype, copy=False), am])
    if return_info:
        return W, a, info
    return W, a
