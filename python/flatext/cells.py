"""The cell-sparse flattest interpolator for piecewise-linear activations (``docs/design.md`` section 12).

For ``p = 1`` the flattest interpolator is the optimum of a cone program over
activation patterns (cells of the samples' hyperplane arrangement,
:mod:`flatext.convex`), and only a few cells carry it: at n = 1000, d = 20 the
search's answer has ~20 neurons carrying 99.99 % of the trace. This method
works with those cells instead of the width-m network:

1. **cells**: a penalty path, L-BFGS on ``L + lam G`` (``G`` the Gauss-Newton
   part of the trace, ``G >= 0``; the fused :func:`flatext.objective` kernel
   gives value and gradient in one pass) at a reduced width, ``lam`` stepped
   down; plus the neurons of any given networks (e.g. the manifold search's
   answer);
2. **active neurons**: those carrying at least :data:`ACTIVE_SHARE` of the
   trace; their activation patterns are the first cells of the program;
3. **restricted program**: :func:`flatext.certified_flattest` over those cells
   only (``n_patterns=0``), grown by pricing: the facet neighbours of the
   optimum's cells (one sample's sign flipped) whose dual constraint the
   optimum's multipliers violate join, at most ``max_add`` per round, and
   above 200 samples the tail of cells carrying 1e-4 of the optimum leaves, so
   each round's program stays near the size of the cells that matter;
4. **exact network**: the program's in-cell construction (every sample
   strictly off the neurons' hyperplanes), balanced, padded to width m.

What it certifies: the returned network's orbit-minimal trace ``value`` is
within the solver's accuracy of the restricted program's optimum ``bound``; no
candidate cell priced with the returned program's multipliers violates its
dual constraint by more than ``1e-6`` (``max_ratio``); ``lower_bound``
(``lam.y / max(1, max_ratio)``) bounds the optimum over the cells tried from
below. None of this is a global certificate: cells that were never candidates
are not priced (the exact mode of :func:`flatext.certified_flattest` prices
every cell, for small arrangements).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from .convex import certified_flattest
from .curvature import hessian_trace_parts, objective

__all__ = ["CELLS_RTOL", "CellsOutcome", "FirstProgramTooLarge", "penalty_path", "active_neurons", "cell_sparse"]

#: Penalty weights of the path, relative to the label scale ``sqrt(mean y^2)`` (L scales like
#: y^2 and G like |y|, so ``lam`` must scale like |y| for the path not to depend on the units).
PENALTY_LAMBDAS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
#: L-BFGS iterations per penalty weight.
PENALTY_MAX_ITER = 300
#: A neuron is active when it carries at least this share of the trace.
ACTIVE_SHARE = 1e-4
#: The pricing rounds of :func:`flatext.flattest_interpolator` (``cells_rtol=None``) end once a round
#: lowered the restricted optimum by less than this share of it: on the default study's n = 2000,
#: d = 8 data sets the first round gained 0.01-0.07 % and each later one 0.003-0.04 %, at 50-100 s
#: a round (``docs/interpolators.md``).
CELLS_RTOL = 1e-3
#: Above this many samples the restricted programs go to the structured interior-point method
#: (``solver="ipm"``): at n = 1000 its solves take 16-23 s against Clarabel's 79 s; at
#: n = 100-150 the two cost about the same (14.8-32.5 s against 16.7-44.5 s per call).
IPM_MIN_N = 200


class FirstProgramTooLarge(ValueError):
    """The active neurons span more cells than :func:`cell_sparse`'s ``max_columns`` allows."""


@dataclass(frozen=True)
class CellsOutcome:
    """What :func:`cell_sparse` found (the fields :class:`flatext.SearchResult` reports)."""

    W: np.ndarray
    a: np.ndarray
    value: float  # orbit-minimal trace of (W, a)
    bound: float  # the restricted program's optimum
    max_ratio: float  # the largest dual ratio over the candidates priced with the returned program
    lower_bound: float  # lam.y / max(1, max_ratio): a lower bound over the cells tried only
    cells: int  # patterns in the final program
    rounds: int  # pricing rounds run
    reason: str  # "restricted_optimum" (no violated candidate), "pricing_rounds", "small_gain" (a round
    # lowered the optimum by less than rtol), "time_budget" or "round_failed" (a pricing round's solve
    # failed: the programs before it stand)
    penalty_calls: int  # objective evaluations of the penalty path
    max_residual: float
    note: str = ""  # which pricing round's solve failed, and the solver's status ("round_failed")


def penalty_path(W, a, X, y, *, neg=0.0, lams=PENALTY_LAMBDAS, max_iter=PENALTY_MAX_ITER):
    """L-BFGS on ``L + lam G`` for each ``lam`` in turn (warm-started), ``G`` the Gauss-Newton part.

    ``lams`` are relative to the label scale ``sqrt(mean y^2)``. Returns ``(W, a, calls)``.
    """
    W = np.ascontiguousarray(W, dtype=np.float64)
    a = np.ascontiguousarray(a, dtype=np.float64)
    m, d = W.shape
    scale = max(float(np.sqrt(np.mean(np.square(y)))), 1e-300)
    calls = 0

    def fun(theta, lam):
        nonlocal calls
        calls += 1
        o = objective(theta[: m * d].reshape(m, d), theta[m * d :], X, y, lam, which="gauss_newton", neg=neg)
        return o.value, np.concatenate([o.gW.ravel(), o.ga])

    theta = np.concatenate([W.ravel(), a])
    for lam in lams:
        opts = {"maxiter": int(max_iter), "gtol": 1e-12, "ftol": 1e-14, "maxcor": 20}
        theta = minimize(fun, theta, args=(lam * scale,), jac=True, method="L-BFGS-B", options=opts).x
    return theta[: m * d].reshape(m, d), theta[m * d :], calls


def active_neurons(W, a, X, y, *, neg=0.0, share=ACTIVE_SHARE):
    """The neurons of ``(W, a)`` carrying at least ``share`` of its Hessian trace (per-neuron parts)."""
    per = np.asarray(hessian_trace_parts(W, a, X, y, neg=neg).per_neuron)
    total = float(per.sum())
    keep = per >= share * total if total > 0 else np.zeros(len(per), dtype=bool)
    return np.asarray(W)[keep], np.asarray(a)[keep]


def _start_rows(W0, a0, width):
    """The ``width`` neurons of the start with the largest ``|a_i| ||w_i||`` (all if fewer)."""
    size = np.abs(np.asarray(a0)) * np.linalg.norm(W0, axis=1)
    idx = np.sort(np.argsort(-size, kind="stable")[:width])
    return np.asarray(W0, dtype=np.float64)[idx], np.asarray(a0, dtype=np.float64)[idx]


def cell_sparse(
    W0,
    a0,
    X,
    y,
    *,
    neg=0.0,
    m,
    width,
    networks=(),
    pricing_rounds=5,
    max_add=50,
    seed=0,
    tol=1e-8,
    max_seconds=None,
    solver=None,
    max_columns=None,
    rtol=None,
):
    """The cell-sparse flattest interpolator (module docstring): penalty path from the ``width``
    largest neurons of ``(W0, a0)``, active cells (with those of ``networks``), restricted
    program grown by pricing, exact network of width ``m``.

    ``solver`` is the cone program's back end (:func:`flatext.certified_flattest`): the
    block-structured interior-point method ``"ipm"`` (its solution is strictly inside the
    cells, so the network is the solution itself; 4-5x faster than Clarabel at n = 1000) or
    ``"clarabel"``; by default ``"ipm"`` above :data:`IPM_MIN_N` samples, where Clarabel's
    solves grow fastest, and ``"clarabel"`` below (similar cost there).

    ``max_seconds`` bounds the call: the cone program gets what the penalty path left
    (:func:`flatext.certified_flattest`'s budget, checked between pricing rounds); when it runs
    out the last program's network is returned (reason ``"time_budget"``).

    ``max_columns`` bounds every program: more than ``max_columns / (2 (d + 1))`` cells among the
    active neurons' raise :class:`FirstProgramTooLarge` before any solve (each cell gives two
    groups of ``d + 1`` columns, and an interior-point iteration costs ``n^2`` per column), and
    the pricing rounds add only the cells that fit (``pricing_max_columns`` of
    :func:`flatext.certified_flattest`).

    ``rtol`` ends the pricing rounds once a round lowered the restricted optimum by less than
    ``rtol`` times it (reason ``"small_gain"``; ``pricing_rtol`` of :func:`flatext.certified_flattest`).

    Raises RuntimeError / ValueError as :func:`flatext.certified_flattest` does (an inaccurate
    solve; an optimum needing more than ``m`` neurons), TimeoutError if the budget ends before
    the first program is solved.
    """
    t0 = time.perf_counter()
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    Wp, ap = _start_rows(W0, a0, width)
    Wp, ap, calls = penalty_path(Wp, ap, X, y, neg=neg)
    starts = [active_neurons(Wp, ap, X, y, neg=neg)]
    f64 = np.float64
    starts += [active_neurons(np.asarray(Wn, f64), np.asarray(an, f64), X, y, neg=neg) for Wn, an in networks]
    starts = [(Ws, As) for Ws, As in starts if len(Ws)]
    if not starts:
        raise ValueError("the penalty path left no active neuron (all-zero labels?)")
    if max_columns is not None:
        cells = np.unique(np.concatenate([Ws for Ws, _ in starts]) @ X.T > 0, axis=0).shape[0]
        if 2 * cells * (X.shape[1] + 1) > max_columns:
            raise FirstProgramTooLarge(
                f"its first program would have {cells} cells, 2 x {cells} x (d + 1) = "
                f"{2 * cells * (X.shape[1] + 1)} columns > {max_columns}"
            )
    if solver is None:
        solver = "ipm" if X.shape[0] > IPM_MIN_N else "clarabel"
    q = certified_flattest(
        X,
        y,
        neg=neg,
        m=m,
        patterns="sampled",
        n_patterns=0,
        warm_start=starts,
        seed=seed,
        tol=tol,
        solver=solver,
        pricing_rounds=pricing_rounds,
        pricing_max_add=max_add,
        pricing_max_columns=max_columns,
        pricing_rtol=rtol,
        max_seconds=None if max_seconds is None else max(max_seconds - (time.perf_counter() - t0), 1e-3),
    )
    pr = q.info["pricing"]
    max_ratio = float(pr["max_ratio"]) if pr["max_ratio"] is not None else float("nan")
    reason = "restricted_optimum" if max_ratio <= 1.0 + 1e-6 else "pricing_rounds"
    if q.info.get("stopped") == "time_budget":
        reason = "time_budget"
    elif pr.get("failed"):
        reason = "round_failed"
    elif pr.get("small_gain") and reason != "restricted_optimum":
        reason = "small_gain"
    return CellsOutcome(
        W=q.W,
        a=q.a,
        value=q.value,
        bound=q.bound,
        max_ratio=max_ratio,
        lower_bound=float(pr.get("lower_bound_tried", float("nan"))),
        cells=q.n_patterns,
        rounds=int(pr["rounds"]),
        reason=reason,
        penalty_calls=calls,
        max_residual=q.max_residual,
        note=f"the cone solve of pricing {pr['failed']}" if pr.get("failed") else "",
    )
