"""Interpolators: projection onto the interpolation set, the flattest-interpolator
search and memorizing interpolators (``docs/design.md`` section 5).

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

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from ._native import _core
from .cells import CELLS_RTOL, FirstProgramTooLarge, cell_sparse
from .convex import arrangement_cell_count, certified_flattest
from .curvature import _int_arg
from .options import InterpolationOptions, SearchOptions, given_fields, merge_options
from .results import ResultFields

__all__ = [
    "InterpolationResult",
    "SearchResult",
    "jvp",
    "vjp",
    "ntk_gram",
    "InterpolationOptions",
    "find_interpolator",
    "flattest_interpolator",
    "memorizing_interpolator",
    "teacher_plus_memorizer",
]


def _default_tol(W, tol):
    if tol is not None:
        return float(tol)
    return 1e-4 if np.asarray(W).dtype == np.float32 else 1e-10


@dataclass(frozen=True, repr=False)
class InterpolationResult(ResultFields):
    """Result of :func:`find_interpolator` (the common fields: :mod:`flatext.results`).

    Attributes
    ----------
    W, a : ndarray
        The (approximate) interpolator.
    max_residual : float
        ``max_j |f(x_j) - y_j|`` at ``(W, a)``.
    iterations : int
        Accepted Gauss-Newton steps.
    converged : bool
        ``reason in CONVERGED_REASONS``, i.e. ``reason == "tol"``:
        ``max_residual <= tol * max(1, max|y|)``.
    history : ndarray
        ``max |r|`` at the start and after each accepted step.
    gram_builds : int
        Explicit n x n Gram matrices built (Cholesky path: one per accepted step).
    solver : str
        ``"cholesky"`` or ``"cg"`` (matrix-free), as chosen.
    krylov_iters, krylov_failures : int
        CG iterations in all, and CG solves that stopped at ``cg_max_iter``
        above ``cg_rtol`` (their inexact step was still used only if it lowered
        the loss).
    reason : str
        ``"tol"`` (the residual tolerance was met) or ``"max_iter"``
        (``max_iter`` accepted steps first). A run that cannot lower the
        residual raises instead of returning.
    message : str
        The stop in a sentence, with the residual reached and the retries with
        stronger initial damping that ran.
    """

    #: The stop reasons that count as ``converged``.
    CONVERGED_REASONS = ("tol",)
    REASON_IF_UNSET = ("tol", "max_iter")
    REPR_FIELDS = ("max_residual", "solver")

    W: np.ndarray
    a: np.ndarray
    max_residual: float
    iterations: int
    converged: bool
    history: np.ndarray = field(repr=False)
    gram_builds: int = 0
    solver: str = "cholesky"
    krylov_iters: int = 0
    krylov_failures: int = 0
    reason: str = ""
    message: str = ""


@dataclass(frozen=True, repr=False)
class SearchResult(ResultFields):
    """Result of :func:`flattest_interpolator` (the common fields: :mod:`flatext.results`).

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
        ``reason in CONVERGED_REASONS``: the search stopped at a first-order
        point, ``||g_t|| <= gtol ||g||`` (``"gtol"``), or the cell-sparse method
        at its restricted optimum (``"restricted_optimum"``). A stall
        (``"ftol_stall"``, ``"line_search_failed"``) is never reported as
        convergence.
    reason : str
        Why the search stopped (see :func:`flattest_interpolator`).
    history : dict of ndarray
        Per iteration (entry 0 is the start point, after the initial projection
        and balance): ``trace``, ``orbit_min_trace``, ``max_residual``, ``eta``
        (accepted step size), ``gt_ratio`` (``||g_t|| / ||g||`` at the point the
        step started from), ``backtracks`` (line-search halvings),
        ``retract_iters`` (chord and Gauss-Newton iterations of the accepted trial) and
        ``gram_builds`` (n x n Gram matrices built in the step: 1 for the
        tangent projection plus the retractions' ``S S^T`` and Gauss-Newton ``K``;
        0 on the matrix-free path) and ``krylov_iters`` (CG iterations in the step).
    grad_ratio : float
        ``||g_t|| / ||g||`` measured last (at the returned point unless the
        search stopped by ``max_iter``, ``ftol_stall`` or the callback, where
        it is that of the last step's start).
    solver : str
        ``"cholesky"`` or ``"cg"``.
    polish : str
        The convex polish (:func:`flattest_interpolator`): ``"off"``,
        ``"improved"`` (``W, a`` are the polished network), ``"no improvement"``
        or ``"failed: ..."`` (the search's point is returned).
    search_orbit_min_trace : float
        The search's own orbit-minimal trace, before the polish. ``converged``,
        ``reason`` and ``grad_ratio`` describe the search.
    certified_optimum : float
        The global minimum of the orbit-minimal trace over all interpolators
        (any width), certified by the polish's exact mode (the cone program's
        optimum, every cell of the arrangement priced); ``nan`` when the polish
        did not certify (larger arrangements, ``p != 1``, polish off or failed).
        ``orbit_min_trace`` exceeds it by the solver's accuracy when the polish
        returned the certified network.
    method : str
        The method that produced ``W, a``: ``"manifold"`` (the search, with its
        polish) or ``"cells"`` (:mod:`flatext.cells`).
    restricted_optimum : float
        ``"cells"``: the optimum of the cone program over the cells it tried
        (``orbit_min_trace`` exceeds it by the solver's accuracy); ``nan`` otherwise.
    max_ratio : float
        ``"cells"``: the largest dual ratio over the candidate cells priced with the
        returned program's multipliers (at most ``1 + 1e-6``: none of them would lower
        the optimum).
    lower_bound : float
        ``"cells"``: ``lam.y / max(1, max_ratio)``, a lower bound of the optimum over
        the cells tried only (not a global certificate: other cells were not priced).
    cells : int
        ``"cells"``: patterns (cells) in the final cone program; 0 otherwise.
    seconds : float
        Wall time of the call.
    polish_seconds : float
        Wall time of the convex polish or of the cell-sparse stage that followed the
        search (0 when none ran).
    message : str
        What else happened (e.g. why ``"auto"`` kept the search's point, or why the
        cell-sparse method failed and the search ran instead); when nothing
        else happened, the stop reason in a sentence.
    """

    #: The stop reasons that count as ``converged`` (as :data:`flatext.interpolators.CONVERGED_REASONS`).
    CONVERGED_REASONS = ("gtol", "restricted_optimum")
    REPR_FIELDS = ("method", "trace", "orbit_min_trace", "max_residual", "grad_ratio", "polish")
    #: The sentence of each stop reason (``message`` when nothing else happened).
    REASON_MESSAGES = {
        "gtol": "the search reached a first-order point on the interpolation set (||g_t|| <= gtol ||g||)",
        "ftol_stall": "the trace stalled above gtol (fell by at most ftol |T| over patience steps or in each of 3)",
        "line_search_failed": "the line search found no acceptable step in 30 halvings",
        "krylov_not_converged": "the projection's CG solve missed cg_rtol within cg_max_iter iterations",
        "max_iter": "max_iter search iterations reached",
        "callback": "stopped by the callback",
        "time_budget": "max_seconds reached; the last interpolator is returned",
        "restricted_optimum": "the cell-sparse method's last pricing round found no violated candidate cell",
        "pricing_rounds": "the cell-sparse method's pricing rounds ran out with violated candidate cells left",
        "small_gain": "the cell-sparse method's last pricing round lowered the restricted optimum by less than rtol",
        "round_failed": "a pricing round's cone solve failed; the flattest program solved before it is returned",
    }

    W: np.ndarray
    a: np.ndarray
    trace: float
    orbit_min_trace: float
    max_residual: float
    iterations: int
    converged: bool
    reason: str
    history: dict = field(repr=False)
    grad_ratio: float = float("nan")
    solver: str = "cholesky"
    polish: str = "off"
    search_orbit_min_trace: float = float("nan")
    certified_optimum: float = float("nan")
    method: str = "manifold"
    restricted_optimum: float = float("nan")
    max_ratio: float = float("nan")
    lower_bound: float = float("nan")
    cells: int = 0
    seconds: float = float("nan")
    polish_seconds: float = 0.0
    message: str = ""

    @property
    def polished(self):
        """``W, a`` come from the convex polish (``polish == "improved"``)."""
        return self.polish == "improved"


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


#: Initial dampings (relative to trace(K)/n) of :func:`find_interpolator`'s retries.
_RETRY_DAMPING = (1e-3, 1e-1)


def _options(**kw):
    """The keyword arguments that were given (None: the C++ default applies)."""
    return {k: v for k, v in kw.items() if v is not None}


def find_interpolator(
    W0,
    a0,
    X,
    y,
    *,
    power=1.0,
    neg=0.0,
    options=None,
    tol=None,
    max_iter=None,
    lambda_init=None,
    solver=None,
    cg_rtol=None,
    cg_max_iter=None,
    cg_rank=None,
):
    """Project ``(W0, a0)`` onto the interpolation set by damped Gauss-Newton steps.

    Method: minimum-norm Gauss-Newton steps with Levenberg-Marquardt damping,

        theta <- theta - J^T (K + lambda I)^{-1} r,

    ``lambda`` starting at ``lambda_init * trace(K)/n``. A trial step is
    accepted only if it lowers ``||r||``; the damping follows Nielsen's rule on
    the gain ratio (actual over predicted decrease of ``||r||^2``): divided by
    up to 3 after a good step, multiplied by 2, 4, 8, ... after rejections
    (floor ``1e-15 trace(K)/n``).

    Solves: ``solver="cholesky"`` builds ``K = J J^T`` (n x n) and factors it;
    ``"cg"`` is matrix-free: preconditioned conjugate gradients with ``K``
    applied as ``J (J^T c)`` (the fused :func:`vjp` and :func:`jvp`, four
    GEMM-equivalents per iteration, no n x n matrix), preconditioned by a
    rank-``cg_rank`` Nystrom approximation of ``K`` built by randomly pivoted
    Cholesky from ``cg_rank`` of its columns (``docs/design.md`` section 5),
    each Gauss-Newton system solved to relative accuracy ``cg_rtol`` (inexact
    Gauss-Newton). ``"auto"``: Cholesky for ``n <= 4096`` (faster there:
    ``docs/interpolators.md``), CG above.

    Stopping rules: success when ``max_j |r_j| <= tol * max(1, max_j |y_j|)``;
    ``converged=False`` after ``max_iter`` accepted steps.

    Parameters
    ----------
    W0, a0 : array_like, shapes (m, d), (m,)
        Start point.
    X, y : array_like, shapes (n, d), (n,)
    power, neg : float
        The activation ``max(z,0)^p + neg * max(-z,0)^p``.
    options : InterpolationOptions or dict, optional
        The options below in one object (:class:`flatext.InterpolationOptions`); a name
        given both here and as a keyword raises ``TypeError`` (``docs/design.md``,
        "Solver options"). A keyword left at None takes the options' value or default.
    tol : float, optional
        Relative residual tolerance (default 1e-10 for float64, 1e-4 for float32).
    max_iter : int, optional
        Accepted Gauss-Newton steps at most (default 100).
    lambda_init : float, optional
        Initial damping relative to ``trace(K)/n`` (default 1e-6: nearly
        undamped; the damping rises by itself where the model is poor; a run
        that ends at a non-interpolating point is then retried with 1e-3 and 1e-1).
    solver : {"auto", "cholesky", "cg"}, optional
        Default "auto".
    cg_rtol, cg_max_iter : optional
        Accuracy and iteration cap of each CG solve (defaults 1e-4, 500).
    cg_rank : int, optional
        Rank of the CG path's Nystrom preconditioner (default ``min(n // 2,
        1000)``; 0: the Jacobi preconditioner ``diag(K)``). Memory ``2 n
        cg_rank`` doubles, build cost about ``2 n m cg_rank`` multiply-adds.

    Raises
    ------
    ValueError
        Bad input; ``n > m (d+1)`` (more equations than parameters); a dead
        network (a sample with a zero Jacobian row but nonzero residual); or no
        damped step lowers the loss (``lambda`` beyond ``1e8 trace(K)/n``: a
        non-interpolating stationary point, or ``tol`` below the dtype's
        precision); the message gives the residual reached.

    Returns
    -------
    InterpolationResult
    """
    o = merge_options(
        InterpolationOptions,
        options,
        dict(tol=tol, max_iter=max_iter, lambda_init=lambda_init, solver=solver, cg_rtol=cg_rtol,
             cg_max_iter=cg_max_iter, cg_rank=cg_rank),
        where="find_interpolator",
    )  # fmt: skip
    tol, max_iter, lambda_init, solver = _default_tol(W0, o.tol), o.max_iter, o.lambda_init, o.solver
    kw = _options(cg_rtol=o.cg_rtol, cg_max_iter=o.cg_max_iter, cg_rank=o.cg_rank)
    # With the default damping, a run that ends at a non-interpolating point is
    # retried from the start with stronger initial damping (ReLU projections from
    # random starts reach different basins; measured on d = 3, n = 20-40 ReLU
    # problems each of lambda_init 1e-6, 1e-3, 1e-1 failed on some starts where
    # another succeeded).
    tries = [None, _RETRY_DAMPING[0], _RETRY_DAMPING[1]] if lambda_init is None else [float(lambda_init)]
    errors, r, ran = [], None, 0
    for li in tries:
        ran += 1
        opt = dict(kw) if li is None else dict(kw, lambda_init=li)
        try:
            t = _core.find_interpolator(
                W0, a0, X, y, float(power), float(neg), tol=tol, max_iter=max_iter, solver=solver, **opt
            )
        except ValueError as e:
            if "no damped Gauss-Newton step" not in str(e):
                raise
            errors.append(str(e))
            continue
        if r is None or t["max_residual"] < r["max_residual"]:
            r = t
        if r["converged"]:
            break
    if r is None:
        raise ValueError(
            errors[0]
            if len(errors) == 1
            else f"{errors[0]}; the retries with initial damping {', '.join(map(str, tries[1:]))} failed the same way"
        )
    converged = bool(r["converged"])
    message = (
        f"max|r| = {r['max_residual']:.3g} <= tol * max(1, max|y|) after {int(r['iterations'])} Gauss-Newton steps"
        if converged
        else f"max_iter = {max_iter} Gauss-Newton steps reached at max|r| = {r['max_residual']:.3g}"
    )
    if ran > 1:
        dampings = ", ".join("default" if li is None else str(li) for li in tries[:ran])
        message += f" (best of {ran} runs with initial dampings {dampings})"
    return InterpolationResult(
        r["W"],
        r["a"],
        float(r["max_residual"]),
        int(r["iterations"]),
        converged,
        np.asarray(r["history"]),
        int(r["gram_builds"]),
        r["solver"],
        int(r["krylov_iters"]),
        int(r["krylov_failures"]),
        reason="tol" if converged else "max_iter",
        message=message,
    )


#: Largest n for the output-layer fallback of the start's projection (it forms S S^T, n x n).
_OUTPUT_SOLVE_MAX_N = 6144
#: CG iterations of the output-layer fallback above that n (Nystrom-preconditioned: ~70 at n = 2000, m = 2n).
_OUTPUT_SOLVE_CG_MAX_ITER = 4000


def _output_layer_solve(W, a, X, y, power, neg):
    """``a`` moved by the least-norm change that interpolates with ``W`` fixed, or None.

    ``f`` is linear in ``a``: ``f = S a`` with ``S = sigma(X W^T)``, so
    ``a - S^T (S S^T + mu I)^{-1} r`` (``r = f - y``, ``mu = 1e-13 trace(S S^T)/n``)
    interpolates whenever ``S`` has full row rank (generic for ``m >= n``). Up to
    ``n = 6144`` ``S S^T`` is built by the kernels' tiles and factored in place (then two
    refinement passes); above, the system is solved matrix-free (one pass) by the core's
    ``gram_solve`` with ``a = 0`` (then ``K = J J^T`` is ``S S^T``): CG preconditioned by
    its Nystrom approximation (docs/design.md section 5). ``S S^T`` is ill-conditioned
    (condition ~5e5 at n = 2000, m = 2n: Jacobi-preconditioned CG took 450-950
    iterations there).

    Returns ``(a, None)``, or ``(None, why)`` when the solve failed.
    """
    W = np.ascontiguousarray(W, dtype=np.float64)
    a = np.ascontiguousarray(a, dtype=np.float64)
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    p, c = float(power), float(neg)
    if X.shape[0] <= _OUTPUT_SOLVE_MAX_N:
        G = _core.gram(W, a, X, p, c, features_only=True)
        mu = 1e-13 * np.trace(G) / len(G)
        singular = "S S^T + mu I with S = sigma(X W0^T) is singular (the features do not span R^n)"
        if not mu > 0:
            return None, singular
        G[np.diag_indices_from(G)] += mu
        try:  # in place: one n x n array (302 MB at n = 6144)
            cf = cho_factor(G, lower=True, overwrite_a=True, check_finite=False)
        except np.linalg.LinAlgError:
            return None, singular
        solve = lambda r: cho_solve(cf, r, check_finite=False)  # noqa: E731
        passes = 3
    else:
        # with a = 0 the Gram matrix K = J J^T is S S^T: the core's matrix-free solver
        # (Nystrom-preconditioned CG, the pattern operator for p = 1) solves it in C++
        z = np.zeros_like(a)
        mu = 1e-13 * float(_core.gram_diag(W, z, X, p, c).sum()) / X.shape[0]
        if not mu > 0:
            return None, "S = sigma(X W0^T) is zero"

        def solve(r):
            out = _core.gram_solve(
                W, z, X, r, p, c, lambda_=mu, solver="cg", rtol=1e-12, cg_max_iter=_OUTPUT_SOLVE_CG_MAX_ITER
            )
            return out["x"] if out["converged"] else None

        passes = 1  # CG iterates to its own tolerance: a second pass would cost as much again
    for _ in range(passes):
        r = _core.forward(W, a, X, p, c) - y
        cr = solve(r)
        if cr is None:
            return (
                None,
                f"CG on S S^T c = r, S = sigma(X W0^T), did not converge in {_OUTPUT_SOLVE_CG_MAX_ITER} iterations",
            )
        a = a - _core.vjp(W, a, X, cr, p, c)[1]
    return a, None


def _project_start(W0, a0, X, y, power, neg, tol, solver, cg_rank):
    """The search's start on ``M``: :func:`find_interpolator` from ``(W0, a0)``; if that
    fails (a non-interpolating stationary point of the square loss, common for ``|z|``),
    the output-layer solve at ``W0`` (:func:`_output_layer_solve`)
    followed by :func:`find_interpolator` as a check; ValueError if both fail."""
    proj = partial(find_interpolator, X=X, y=y, power=power, neg=neg, tol=tol, solver=solver, cg_rank=cg_rank)
    try:
        s = proj(W0, a0, max_iter=200)
        if s.converged:
            return s
        why = f"max|r| = {s.max_residual:.3g} after {s.iterations} Gauss-Newton steps"
    except ValueError as e:
        if not str(e).startswith("cannot interpolate"):
            raise
        why = str(e)
    a1, fallback = _output_layer_solve(W0, a0, X, y, power, neg)
    if a1 is not None:
        try:
            s = proj(W0, a1.astype(np.asarray(W0).dtype), max_iter=20)
            if s.converged:
                return s
            fallback = f"max|r| = {s.max_residual:.3g}"
        except ValueError as e:
            fallback = str(e)
    raise ValueError(
        f"flattest_interpolator: could not project the start point onto the interpolation set ({why}); "
        f"the output-layer solve at W0 failed too ({fallback})"
    )


_HIST_KEYS = (
    "trace",
    "orbit_min_trace",
    "max_residual",
    "eta",
    "gt_ratio",
    "backtracks",
    "retract_iters",
    "gram_builds",
    "krylov_iters",
)

#: Stopping reasons of :func:`flattest_interpolator` at the method's own optimality test (``converged=True``):
#: a first-order point on M (the search), the restricted program's optimum with no violated candidate (cells).
CONVERGED_REASONS = ("gtol", "restricted_optimum")


def flattest_interpolator(
    W0,
    a0,
    X,
    y,
    *,
    power=1.0,
    neg=0.0,
    max_iter=None,
    balance=None,
    tol=None,
    gtol=None,
    ftol=None,
    patience=None,
    lambda_rel=None,
    retract_iter=None,
    a_correction=None,
    solver=None,
    cg_rtol=None,
    cg_max_iter=None,
    cg_rank=None,
    callback=None,
    polish="auto",
    polish_rounds=None,
    seed=None,
    method=None,
    max_seconds=None,
    cells_width=None,
    cells_rtol=None,
    options=None,
):
    """Search the interpolation set for the interpolator of least Hessian trace.

    Methods (``method``):

    - ``"manifold"``: the projected-gradient search on ``M`` below, then the
      convex polish (``polish``). Any ``power``.
    - ``"cells"`` (``power = 1``, ``-1 < neg <= 1``): the cell-sparse method of
      :mod:`flatext.cells`: a penalty path at width ``cells_width`` finds the
      cells that carry the trace, the cone program restricted to them (grown by
      pricing their facet neighbours) gives the flattest interpolator over
      those cells, built exactly at width ``m``. ``restricted_optimum``,
      ``max_ratio``, ``lower_bound`` and ``cells`` say what it certifies (a
      bound over the cells tried, never a global certificate). If it fails,
      the manifold search runs and ``message`` says why. With label noise
      it needs about n cells and does not reach them alone (measured at
      d = 10, n = 150, noise 0.3: 13 % above the search); ``"auto"`` seeds
      it with the search's cells.
    - ``"auto"`` (default): where the polish certifies (arrangements of at most
      50 000 cells, ``power = 1``) the search with that polish; for
      ``power = 1`` and ``n <= 200`` otherwise, the search followed by the
      cell-sparse method with the search's cells among its first, returning
      the flatter interpolator of the two (``method`` in the result says
      which); above 200 samples the cell-sparse method alone when its cone
      programs fit in 3n columns (the penalty path's active neurons span at
      most 3n / (2 (d + 1)) cells), else the search (``message`` says why);
      otherwise the search alone. Measured at d = 8-10,
      n = 100-200 (``benchmarks/bench_search.py planted``): the search alone
      ends up to 2.1 % above a planted teacher network, the cell-sparse
      method below it on every seed.

    The manifold search: projected gradient on ``M = {r = 0}``, one C++ step per iteration
    (``_core.search_step``, GIL released):

    1. ``g = grad T(theta)`` (exact, :func:`flatext.hessian_trace_grad`);
    2. tangent part ``g_t = g - J^T u`` with ``(K + lambda I) u = J g``,
       ``lambda = lambda_rel * trace(K)/n`` (default ``1e-10``: ``K`` is full
       rank on an overparameterized problem, ``lambda`` only guards round-off).
       ``u`` are the Lagrange multipliers of the constraints ``r = 0``; the CG
       path warm-starts them from the previous iteration;
    3. ``theta' = theta - eta g_t`` (``power = 1``: minus
       ``eta^2 J^T (K + lambda I)^{-1} q``, ``q`` the second-order term of the
       outputs along ``-g_t``), retracted to ``M`` and (``balance``)
       balanced; backtracking (halving) Armijo line search on the trace of
       that final point: accept when
       ``T(theta_new) <= T(theta) - 1e-4 eta ||g_t||^2`` and
       ``max|r(theta_new)|`` is within ``tol``. The recorded trace is therefore
       non-increasing. The first trial ``eta`` is the last accepted one, doubled
       if that was accepted at its first trial (initially
       ``min(0.1 T / ||g_t||^2, 0.05 ||theta|| / ||g_t||)``): a trial costs a
       retraction, and doubling after a halved step mostly fails again;
    4. retraction, cheapest first: (Cholesky path) chord iterations
       ``theta' <- theta' - J(theta)^T (K + lambda I)^{-1} r(theta')`` with the
       factor of step 2 while each lowers ``||r||`` by at least 30 % (at most
       ``retract_iter``, default 6); then Gauss-Newton steps at the trial
       point, ``(K(theta') + lambda I) c = r(theta')`` solved by CG with
       ``K(theta')`` applied matrix-free and step 2's solver as the
       preconditioner (on the Cholesky path capped at the cost of a fresh
       ``K``); then (Cholesky path) Newton with chords: ``K`` factored at the
       current point, chords with that factor, at most three factors; then
       (``a_correction``, Cholesky path) the exact minimum-norm
       correction of ``a`` alone; then :func:`find_interpolator`. A trial
       whose retraction fails is a failed trial;
    5. ``balance``: every neuron moved to its rescaling-orbit minimum (exact;
       it keeps every prediction, so the point stays on ``M``).

    The start ``(W0, a0)`` is first projected by :func:`find_interpolator` if it
    does not interpolate to ``tol``, then balanced. Where that projection fails
    (a non-interpolating stationary point of the square loss: most random starts
    of ``|z|`` networks), the start is ``(W0, a)`` with ``a`` the least-norm
    change of ``a0`` that interpolates with ``W0`` fixed (``f`` is linear in
    ``a``; exact when ``sigma(X W0^T)`` has full row rank, generic for
    ``m >= n``; factored up to ``n = 6144``, by CG above).

    Solves (``solver``): ``"cholesky"`` builds ``K = J J^T`` (n x n) once per
    iteration and factors it; ``"cg"`` never forms it (preconditioned CG with
    ``J (J^T u)`` by the fused kernels, the rank-``cg_rank`` Nystrom
    preconditioner, the projection solved to ``cg_rtol`` (default 1e-8), the
    retraction's solves to 1e-3); ``"auto"`` chooses as :func:`find_interpolator`.

    Stopping rules and ``reason``:

    - ``"gtol"``: ``||g_t|| <= gtol ||g||``, a first-order stationary point on
      ``M`` (``converged=True``; the only converged reason);
    - ``"ftol_stall"``: the trace fell by at most ``ftol |T|`` over the last
      ``patience`` iterations, or in each of the last three, while
      ``||g_t|| / ||g||`` stayed above ``gtol``: a stall (for ReLU typically
      at a kink, where ``T`` jumps as a sample crosses a hyperplane),
      ``converged=False``;
    - ``"line_search_failed"``: no acceptable trial in 30 halvings (a stall);
    - ``"krylov_not_converged"``: the CG solve of the projection missed
      ``cg_rtol`` within ``cg_max_iter`` iterations (no step taken);
    - ``"max_iter"``; ``"callback"``: ``callback(info)`` returned True;
    - ``"time_budget"``: ``max_seconds`` ran out (the last accepted point, or
      the cell-sparse method's last program's network, is returned; it
      interpolates);
    - (``"cells"``) ``"restricted_optimum"``: no candidate cell of the last
      pricing round violates its dual constraint (``converged=True``);
      ``"pricing_rounds"``: the rounds ran out first; ``"small_gain"``: a round
      lowered the restricted optimum by less than the gain rule's ``rtol``; ``"round_failed"``: a
      round's cone solve failed (the network of the flattest program solved
      before it is returned; ``message`` names the round and the status).

    ``grad_ratio`` is the last measured ``||g_t|| / ||g||``.

    The trace depends on the width for ``p > 1`` (``docs/interpolators.md``):
    at an interpolator the orbit minimum of a neuron scales like
    ``(|a_i| ||w_i||^p)^(2p/(p+1))`` times a factor of its direction only, so
    splitting a neuron into ``k`` copies with output weights ``a_i / k`` keeps
    ``f`` and multiplies its contribution by ``k^((1-p)/(1+p))``
    (``k^(-1/3)`` at ``p = 2``). The flattest width-m interpolator therefore
    spreads over all ``m`` neurons, and the infimum over widths is 0: compare
    traces only at equal width. The search works at the width it is given
    (it never splits neurons itself: that would change the problem).

    Convex polish (``polish``; piecewise-linear activations, ``power = 1``):
    the search stalls at ReLU kinks, typically a few percent above the
    flattest interpolator. Where the hyperplane arrangement of the samples has
    at most 50 000 cells (d = 3: any n <= 60; d = 4: n <= 54; d = 5: n <= 29)
    the polish is :func:`flatext.certified_flattest` in exact mode (every cell
    priced, the search's cells in its first program): the certified global
    optimum at width ``m``, returned when it is below the search's point.
    Otherwise (or if that fails, e.g. ``m`` too small for the optimum) it hands
    the search's activation patterns,
    and those of random perturbations of its active neurons (the neighbouring
    cells of the hyperplane arrangement), to :func:`flatext.certified_flattest`
    (the cone program of ``docs/design.md`` section 11, over these patterns,
    with its column generation: cells priced by the optimum's dual multipliers):
    its optimum is never above the search's point (that point is feasible for
    it) and is attained by an exactly interpolating, balanced network of width
    ``m``. This repeats for ``polish_rounds`` rounds (fewer if two rounds in a
    row do not improve) and the best point is returned. ``"auto"`` polishes
    when ``power == 1``, ``-1 < neg <= 1`` (the range of
    :func:`flatext.certified_flattest`), ``n <= 60`` and ``d <= 5``; ``"convex"`` always
    (``power == 1``); ``None`` never. Its cost grows fast with n and d
    (measured, one start: 5 s at n = 40, d = 5; 76 s at n = 100, d = 8, where it
    lowered the orbit-minimal trace by 1.9 %). ``polish`` in the result says
    what happened. Measured (d = 3-4, 10 starts each): the search alone lands
    2-8 % above the certified global optimum, the polished result within
    0.00-0.35 % (median; ``benchmarks/bench_convex.py``, ``docs/convex.md``).

    Cost per iteration (Cholesky): one Gram matrix (``n^2 (m + d)``
    multiply-adds), one ``n^3/3`` Cholesky, about 7 GEMM-equivalents
    (``X W^T``-sized) plus about 6 per line-search trial, 3 per chord or
    Gauss-Newton iteration and 4 per CG iteration of the retraction. CG: the
    Nystrom preconditioner (``2 n m cg_rank`` multiply-adds) and 4
    GEMM-equivalents per CG iteration instead of ``K`` and its factor.
    Measured (``docs/interpolators.md``, d = 20, m = 2n, 2 cores): a step takes
    0.23 s at n = 1000, 1.1 s at n = 2000, 7.3 s at n = 4000 (Cholesky) and
    54 s at n = 8000 (CG).

    Parameters
    ----------
    W0, a0, X, y, power, neg
        As in :func:`find_interpolator`.
    options : SearchOptions or dict, optional
        The options below in one object (:class:`flatext.SearchOptions`, which has their
        defaults and checks). Each may also be given as a keyword (None: not given); a name
        given both ways, an unknown name, or ``cells_width`` with ``method="manifold"``
        raises ``TypeError`` (``docs/design.md``, "Solver options").
    max_iter : int
        Search iterations at most.
    balance : bool
        Balance each trial point (before its line-search test).
    tol : float, optional
        Relative residual tolerance of the retraction (default 1e-10 float64,
        1e-4 float32).
    gtol, ftol, patience
        Stopping rules above.
    lambda_rel : float, optional
        Projection regularization relative to ``trace(K)/n``.
    retract_iter : int, optional
        Chord iterations before the fallbacks.
    a_correction : bool, optional
        Try the exact correction of ``a`` alone before the Gauss-Newton
        fallback of the retraction (Cholesky path only; default off).
    solver : {"auto", "cholesky", "cg"}
    cg_rtol, cg_max_iter : optional
        Accuracy and iteration cap of the projection's CG solve.
    cg_rank : int, optional
        Rank of the CG path's Nystrom preconditioner (as in :func:`find_interpolator`).
    callback : callable, optional
        ``callback(info)`` after every iteration, ``info`` a dict with
        ``iteration``, ``W``, ``a`` and the history fields of that iteration;
        return True to stop.
    polish : {"auto", "convex", None}
        The convex polish above.
    polish_rounds : int
        Rounds of the convex polish at most.
    seed : int
        Seeds the polish's perturbed patterns (same seed, same result).
    method : {"auto", "manifold", "cells"}
        See above.
    max_seconds : float, optional
        Time budget of the call: the search checks it before each step (a step
        can run past it); the polish is skipped once it is spent; the
        cell-sparse method's pricing rounds stop at it (one cone solve and the
        exact construction of the network can run past it). The point returned
        interpolates.
    cells_width : int, optional
        Width of the cell-sparse method's penalty path (default
        ``min(m, max(100, n // 4))``).
    cells_rtol : float, optional
        The cell-sparse method's pricing rounds end once a round lowered the
        restricted optimum by less than ``cells_rtol`` times it (reason
        ``"small_gain"``; 0: only a round that raised it ends them). Default:
        :data:`flatext.cells.CELLS_RTOL` = 1e-3 where the method runs alone
        (``"cells"``, and ``"auto"`` above 200 samples), no such rule where it
        follows the search.

    Returns
    -------
    SearchResult
    """
    t0 = time.perf_counter()
    keywords = dict(
        max_iter=max_iter, balance=balance, tol=tol, gtol=gtol, ftol=ftol, patience=patience, lambda_rel=lambda_rel,
        retract_iter=retract_iter, a_correction=a_correction, solver=solver, cg_rtol=cg_rtol, cg_max_iter=cg_max_iter,
        cg_rank=cg_rank, polish_rounds=polish_rounds, seed=seed, method=method, max_seconds=max_seconds,
        cells_width=cells_width, cells_rtol=cells_rtol,
    )  # fmt: skip
    o = _search_options(options, keywords, polish)
    tol = _default_tol(W0, o.tol)
    p, c = float(power), float(neg)
    for name, v in (("W0", W0), ("X", X)):
        if np.ndim(v) != 2:
            raise ValueError(f"{name} must be 2-D; got shape {np.shape(v)}")
    n, d = np.shape(X)
    polish, solver, seed = o.polish, o.solver, o.seed
    method = _resolve_method(o.method, p, c, n, d, polish)
    deadline = _deadline(o.max_seconds, t0)
    loop = _Loop(o.max_iter, o.gtol, o.ftol, o.patience, o.balance, callback, deadline)
    kw = _options(
        lambda_rel=o.lambda_rel, retract_iter=o.retract_iter, a_correction=o.a_correction, cg_rtol=o.cg_rtol,
        cg_max_iter=o.cg_max_iter, cg_rank=o.cg_rank,
    )  # fmt: skip
    width = min(o.cells_width, np.shape(W0)[0]) if o.cells_width else min(np.shape(W0)[0], max(100, n // 4))
    # the gain rule by default where the cell-sparse method runs alone, not after the search (n <= 200)
    rtol = CELLS_RTOL if o.cells_rtol is None and method in ("cells", "cells-if-small") else o.cells_rtol
    cells_kw = dict(neg=c, width=width, seed=seed, rtol=rtol)
    if method in ("cells", "cells-if-small"):
        limit = _CELLS_AUTO_COLUMNS * n if method == "cells-if-small" else None
        res = _cells_or_search(W0, a0, X, y, tol, cells_kw, (p, solver, kw, loop), limit)
    else:
        start = _project_start(W0, a0, X, y, p, c, tol, solver, kw.get("cg_rank"))
        X = np.ascontiguousarray(X, dtype=start.W.dtype)
        y = np.ascontiguousarray(y, dtype=start.W.dtype)
        res = _search(start.W, start.a, X, y, p, c, tol, solver, kw, loop)
        t1 = time.perf_counter()
        if method == "manifold+cells":
            res = _cells_after_search(res, W0, a0, X, y, tol, cells_kw, deadline)
        elif polish == "convex" or (polish == "auto" and _auto_polish(p, c, n, d)):
            if deadline is None or time.perf_counter() < deadline:
                res = _convex_polish(res, X, y, c, tol, o.polish_rounds, seed, deadline)
            else:
                res = replace(res, polish="skipped: max_seconds reached")
        res = replace(res, polish_seconds=time.perf_counter() - t1)
    return replace(res, seconds=time.perf_counter() - t0)


#: ``method="auto"`` follows the search by the cell-sparse method (p = 1) up to this many samples;
#: above, it runs the cell-sparse method alone when its first program has at most
#: ``_CELLS_AUTO_COLUMNS * n`` columns (``max_columns``), else the search.
_CELLS_AUTO_MAX_N = 200
#: On the default study's noise-free n = 2000 data sets (d = 8, 16, 32) the cell-sparse method was
#: flatter than the search on all, faster wherever the penalty path's first program had at most
#: 2.9n columns, slower at 3.9n and 5.3n (docs/interpolators.md).
_CELLS_AUTO_COLUMNS = 3


def _auto_polish(p, c, n, d):
    """The default convex polish: piecewise-linear activations on small problems (docstring)."""
    return p == 1.0 and -1.0 < c <= 1.0 and n <= 60 and d <= 5


def _search_options(options, keywords, polish):
    """The :class:`SearchOptions` of a :func:`flattest_interpolator` call. ``polish`` is a keyword
    apart: ``None`` (never polish) is a value there, its default ``"auto"`` means not given."""
    where = "flattest_interpolator"
    o = merge_options(SearchOptions, options, keywords, where=where)
    if polish != "auto":
        given = options if isinstance(options, Mapping) else ()
        if isinstance(options, SearchOptions):
            given = given_fields(options)
        if "polish" in given:
            raise TypeError(f"{where}: 'polish' given both as a keyword and in options")
        o = replace(o, polish=polish)
    merge_options(SearchOptions, options, keywords, where=f"{where}(method={o.method!r})",
                  ignored=SearchOptions.IGNORED[o.method])  # fmt: skip
    return o


def _resolve_method(method, p, c, n, d, polish):
    """``method`` checked and ``"auto"`` resolved (see :func:`flattest_interpolator`)."""
    if method not in ("auto", "manifold", "cells"):
        raise ValueError(f"method must be 'auto', 'manifold' or 'cells'; got {method!r}")
    if polish not in ("auto", "convex", None):
        raise ValueError(f"polish must be 'auto', 'convex' or None; got {polish!r}")
    piecewise_linear = p == 1.0 and -1.0 < c <= 1.0
    if polish == "convex" and not piecewise_linear:
        raise ValueError(
            f"polish='convex' needs power = 1 and -1 < neg <= 1 (the range of certified_flattest); "
            f"got power = {p}, neg = {c}"
        )
    if method == "cells":
        if not piecewise_linear:
            raise ValueError(f"method='cells' needs power = 1 and -1 < neg <= 1; got power = {p}, neg = {c}")
        if polish == "convex":
            raise ValueError("polish='convex' applies to the manifold search; method='cells' has no polish")
        return "cells"
    if method == "manifold" or polish is not None and polish != "auto":
        return "manifold"
    small = arrangement_cell_count(n, d) <= _POLISH_EXACT_CELLS  # the polish certifies there
    if polish == "auto" and piecewise_linear and not small:
        return "manifold+cells" if n <= _CELLS_AUTO_MAX_N else "cells-if-small"
    return "manifold"


def _deadline(max_seconds, t0):
    if max_seconds is None:
        return None
    v = float(max_seconds)
    if not v > 0 or not np.isfinite(v):
        raise ValueError(f"max_seconds must be a positive finite number or None; got {max_seconds!r}")
    return t0 + v


@dataclass(frozen=True)
class _Loop:
    max_iter: int
    gtol: float
    ftol: float
    patience: int
    balance: bool
    callback: object
    deadline: object


def _stalled(tr, ftol, patience):
    """The trace fell by at most ``ftol |T|`` over ``patience`` steps, or in each of the last three
    (at a kink the accepted steps shrink geometrically; each costs a K)."""
    small = [tr[k - 1] - tr[k] <= ftol * abs(tr[-1]) for k in range(max(1, len(tr) - 3), len(tr))]
    return (len(small) == 3 and all(small)) or (len(tr) > patience and tr[-1 - patience] - tr[-1] <= ftol * abs(tr[-1]))


def _search(W, a, X, y, p, c, tol, solver, kw, loop):
    """The projected-gradient search from an interpolating start (the manifold method)."""
    X = np.ascontiguousarray(X, dtype=W.dtype)
    y = np.ascontiguousarray(y, dtype=W.dtype)

    def step(W, a, **more):
        return _core.search_step(W, a, X, y, p, c, tol=tol, balance=loop.balance, solver=solver, **kw, **more)

    s = step(W, a, gtol=np.inf)  # balance the start point (a search step with gtol = inf does only that)
    W, a, u = s.W, s.a, s.u
    hist: dict[str, list] = {k: [] for k in _HIST_KEYS}

    def record(s, eta, ratio):
        for k in ("trace", "orbit_min_trace", "max_residual"):
            hist[k].append(getattr(s, k))
        hist["eta"].append(eta)
        hist["gt_ratio"].append(ratio)
        for k in ("backtracks", "retract_iters", "gram_builds", "krylov_iters"):
            hist[k].append(getattr(s, k) if eta > 0 else 0)

    def ratio_of(s):
        return s.gt_norm / s.g_norm if s.g_norm > 0 else 0.0

    ratio = ratio_of(s)
    record(s, 0.0, ratio)
    best, eta_prev, grow, it, reason = s, 0.0, 2.0, 0, "max_iter"
    while it < loop.max_iter:
        if loop.deadline is not None and time.perf_counter() >= loop.deadline:
            reason = "time_budget"
            break
        s = step(W, a, gtol=loop.gtol, eta=grow * eta_prev, u0=u)
        ratio = ratio_of(s)
        stop = _step_stop(s)
        if stop:
            hist["gt_ratio"][-1] = ratio
            reason = stop
            break
        u, it, best = s.u, it + 1, s
        W, a, eta_prev = s.W, s.a, s.eta
        grow = 2.0 if s.backtracks == 0 else 1.0
        record(s, s.eta, ratio)
        if loop.callback is not None:
            info = {"iteration": it, "W": W, "a": a}
            info.update({k: v[-1] for k, v in hist.items()})
            if loop.callback(info):
                reason = "callback"
                break
        if _stalled(hist["trace"], loop.ftol, loop.patience):
            reason = "ftol_stall"
            break
    history = {k: np.asarray(v) for k, v in hist.items()}
    return SearchResult(
        W,
        a,
        float(best.trace),
        float(best.orbit_min_trace),
        float(best.max_residual),
        it,
        reason in CONVERGED_REASONS,
        reason,
        history,
        float(ratio),
        s.solver,
        search_orbit_min_trace=float(best.orbit_min_trace),
    )


def _step_stop(s):
    """The stop reason a search step reports, or None (the step was accepted)."""
    if not s.krylov_converged:
        return "krylov_not_converged"
    if s.small_gradient:
        return "gtol"
    if not s.accepted:
        return "line_search_failed"
    return None


def _cells_outcome_result(o, X, y, c, tol, dtype, base=None, message=""):
    """A :class:`SearchResult` for a :class:`flatext.cells.CellsOutcome` (None if it does not
    interpolate to ``tol``: never return a non-interpolator)."""
    W, a = o.W.astype(dtype), o.a.astype(dtype)
    X, y = np.ascontiguousarray(X, dtype=dtype), np.ascontiguousarray(y, dtype=dtype)
    rmax = float(np.max(np.abs(_core.forward(W, a, X, 1.0, c) - y)))
    if rmax > tol * max(1.0, float(np.max(np.abs(y)))):
        return None
    fields = dict(
        W=W,
        a=a,
        trace=float(_core.hessian_trace(W, a, X, y, 1.0, c)),
        orbit_min_trace=float(o.value),
        max_residual=rmax,
        method="cells",
        restricted_optimum=o.bound,
        max_ratio=o.max_ratio,
        lower_bound=o.lower_bound,
        cells=o.cells,
        message=message or o.note,
    )
    if base is not None:  # the search ran first: keep its history and its own trace
        return replace(base, reason=o.reason, converged=o.reason in CONVERGED_REASONS, **fields)
    return SearchResult(
        iterations=o.rounds,
        converged=o.reason in CONVERGED_REASONS,
        reason=o.reason,
        history={k: np.zeros(0) for k in _HIST_KEYS},  # no search steps
        polish="off",
        **fields,
    )


def _remaining(deadline):
    """Seconds left before ``deadline`` (at least 1 ms: a budget argument must be positive), or None."""
    return None if deadline is None else max(deadline - time.perf_counter(), 1e-3)


def _cells_or_search(W0, a0, X, y, tol, cells_kw, search_args, max_columns=None):
    """``method="cells"``; if it fails, the manifold search, with the failure in ``message``.
    ``max_columns`` (``"auto"`` above 200 samples): the search also when the first program would
    be larger (:class:`flatext.cells.FirstProgramTooLarge`)."""
    dtype = np.asarray(W0).dtype
    c = cells_kw["neg"]
    p, solver, kw, loop = search_args
    m = np.shape(W0)[0]
    try:
        o = cell_sparse(W0, a0, X, y, m=m, max_seconds=_remaining(loop.deadline), max_columns=max_columns, **cells_kw)
        res = _cells_outcome_result(o, X, y, c, tol, dtype)
        why = "failed (its network does not interpolate to tol)" if res is None else ""
    except FirstProgramTooLarge as e:
        res, why = None, f"was not run ({e})"
    except (RuntimeError, ValueError, TimeoutError) as e:
        res, why = None, f"failed ({e})"
    if res is not None:
        return res
    start = _project_start(W0, a0, X, y, p, c, tol, solver, kw.get("cg_rank"))
    res = _search(start.W, start.a, X, y, p, c, tol, solver, kw, loop)
    return replace(res, message=f"the cell-sparse method {why}; this is the manifold search's point")


def _cells_after_search(res, W0, a0, X, y, tol, cells_kw, deadline):
    """``method="auto"`` at moderate n: the cell-sparse method with the search's cells among its
    first, the flatter interpolator of the two returned."""
    c = cells_kw["neg"]
    if deadline is not None and time.perf_counter() >= deadline:
        return replace(res, message="the cell-sparse method was skipped: max_seconds reached")
    left = _remaining(deadline)
    try:
        o = cell_sparse(W0, a0, X, y, m=res.W.shape[0], networks=[(res.W, res.a)], max_seconds=left, **cells_kw)
    except (RuntimeError, ValueError, TimeoutError) as e:
        return replace(res, message=f"the cell-sparse method failed ({e}); this is the search's point")
    new = _cells_outcome_result(o, X, y, c, tol, res.W.dtype, base=res)
    if new is None:
        return replace(res, message="the cell-sparse network does not interpolate to tol; this is the search's point")
    if new.orbit_min_trace < res.orbit_min_trace:
        return new
    return replace(res, message=f"the cell-sparse method found no flatter point ({o.value:.10g})")


def _neighbour_networks(W, a, rng, budget=1000, scales=(0.02, 0.05, 0.1, 0.2, 0.4)):
    """Random perturbations of the active neurons' directions: their activation
    patterns are the cells around the network's own (for the convex polish).
    About ``budget`` perturbed neurons in all, spread over the scales."""
    size = np.linalg.norm(W, axis=1) * np.abs(a)
    Wa = W[size > 1e-12 * max(float(size.max()), 1e-300)]
    per_scale = max(1, budget // (len(scales) * max(len(Wa), 1)))
    norms = np.linalg.norm(Wa, axis=1, keepdims=True)
    ones = np.ones(len(Wa))
    return [(Wa + rng.standard_normal(Wa.shape) * norms * s, ones) for s in scales for _ in range(per_scale)]


#: The polish certifies (exact mode, every cell priced) up to this many arrangement cells.
_POLISH_EXACT_CELLS = 50_000


def _polish_certified(W, a, X, y, neg, seed, deadline):
    """The certified optimum itself, the search's cells in its first program. Returns
    ``(q or None, error)``: q only with a global certificate."""
    try:
        q = certified_flattest(
            X, y, neg=neg, m=W.shape[0], patterns="exact", warm_start=[(W, a)], seed=seed,
            max_seconds=_remaining(deadline),
        )  # fmt: skip
    except (RuntimeError, ValueError, TimeoutError) as e:  # inaccurate solve, width m too small, budget
        return None, e
    return (q if q.certificate == "global" else None), None


def _polish_round(W, a, X, y, neg, seed, k, rng, deadline):
    """One sampled round of the polish around ``(W, a)`` and its neighbours. Returns ``(q or None,
    error)``.

    An inaccurate solve (the optimum's neurons cannot be placed inside their cells) is retried at a
    100x tighter solver tolerance, then without the column generation (whose added cells can be too
    thin for the interior placement). Column generation runs in the first round only (two pricing
    rounds): in every round it made the quick reproduction's polish ~3x slower.
    """
    warm = [(W, a)] + _neighbour_networks(W, a, rng)
    price = 2 if k == 0 else 0
    error = None
    for solver_tol, pricing in ((1e-8, price), (1e-10, price), (1e-8, 0), (1e-10, 0)):
        try:
            q = certified_flattest(
                X, y, neg=neg, m=W.shape[0], patterns="sampled", n_patterns=20, warm_start=warm, seed=seed + k,
                tol=solver_tol, pricing_rounds=pricing, max_seconds=_remaining(deadline),
            )  # fmt: skip
            return q, None
        except RuntimeError as e:  # an inaccurate solve: retry
            error = e
        except (TimeoutError, ValueError) as e:  # budget spent before the first program; width too small
            return None, e
    return None, error


def _polished_result(res, W, a, best, X, y, neg, tol, certified):
    """``res`` with the polished network, unless it does not interpolate to ``tol`` (then unchanged)."""
    r = _core.forward(W, a, X, 1.0, neg) - y
    rmax = float(np.max(np.abs(r)))
    if rmax > tol * max(1.0, float(np.max(np.abs(y)))):  # never return a non-interpolator
        return replace(
            res, polish=f"failed: the polished network's max|r| = {rmax:.3g} is above tol", certified_optimum=certified
        )
    return replace(
        res,
        W=W,
        a=a,
        trace=float(_core.hessian_trace(W, a, X, y, 1.0, neg)),
        orbit_min_trace=float(best),
        max_residual=rmax,
        polish="improved",
        certified_optimum=certified,
    )


def _convex_polish(res, X, y, neg, tol, rounds, seed, deadline=None):
    """The convex polish of :func:`flattest_interpolator` (see its docstring): the certified optimum
    where the arrangement is small, else sampled rounds until two bring nothing; ``deadline``
    (``time.perf_counter`` seconds) bounds each cone program and ends the rounds."""
    rng = np.random.default_rng(seed)
    W, a, best = res.W, res.a, res.orbit_min_trace
    improved, stale, error = False, 0, None
    certified = float("nan")
    if arrangement_cell_count(*np.shape(X)) <= _POLISH_EXACT_CELLS:
        q, error = _polish_certified(W, a, X, y, neg, seed, deadline)
        if q is not None:
            rounds, certified = 0, q.bound
            if q.value < best * (1 - 1e-12):
                W, a, best, improved = q.W.astype(res.W.dtype), q.a.astype(res.a.dtype), q.value, True
    for k in range(rounds):
        if deadline is not None and time.perf_counter() >= deadline:
            error = error or TimeoutError("max_seconds reached")
            break
        q, err = _polish_round(W, a, X, y, neg, seed, k, rng, deadline)
        error = err or error
        if q is not None and q.value < best * (1 - 1e-12):
            W, a, best, stale, improved = q.W.astype(res.W.dtype), q.a.astype(res.a.dtype), q.value, 0, True
        else:
            stale += 1
        if stale >= 2:
            break
    if not improved:
        status = f"failed: {error}" if error is not None else "no improvement"
        return replace(res, polish=status, certified_optimum=certified)
    return _polished_result(res, W, a, best, X, y, neg, tol, certified)


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
            "small for this power (sigma(kappa x . x') under- or overflows), or samples repeat"
        )
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
