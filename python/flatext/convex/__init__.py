"""Certified flattest interpolators for piecewise-linear activations (``docs/convex.md``).

For ``sigma(z) = max(z,0) + c max(-z,0)`` (ReLU ``c = 0``, leaky ReLU
``-1 < c < 0``, V-shaped ``0 < c < 1``, ``|z|`` ``c = 1``; power p = 1) neuron i of an interpolator has
orbit-minimal trace ``2 sqrt(A_i B_i)``; with ``u_i = |a_i| w_i`` and its
activation pattern (sign vector) ``sigma_i = sign(X w_i)`` this is

    kappa_P ||M_P u_i||,  kappa_P = (2/n) sqrt(sum_{+} s_j + c^2 sum_{-} s_j),
                          M_P = diag(1_{+} + c 1_{-}) X,

and the network output ``f(x_j) = sum_i sign(a_i) (D_P X u_i)_j`` with
``D_P = diag(1_{+} - c 1_{-})`` is linear in the ``u_i`` once the patterns are
fixed. Over a set of patterns (each with a positive and a negative output group)
the least orbit-minimal trace of an interpolator is a second-order cone program
(a group lasso with cone constraints, cf. Pilanci and Ergen 2020). With every
cell of the hyperplane arrangement of the samples enumerated
(:func:`arrangement_patterns`) its optimum is the infimum of the orbit-minimal
trace over all bias-free interpolators of any width whose pre-activations are all
non-zero (the generic case; see ``docs/convex.md`` for points on a kink).

The stages live in modules named for them: :mod:`~flatext.convex.cells` (the
activation patterns), :mod:`~flatext.convex.program` (the cone program),
:mod:`~flatext.convex.backends` (the conic solvers), :mod:`~flatext.convex.ratios`
and :mod:`~flatext.convex.pricing` (column generation), :mod:`~flatext.convex.network`
(the exact in-cell network); tolerances and limits in :mod:`~flatext.convex.constants`.
"""

from __future__ import annotations

import time

import numpy as np

# flatext.options imports this package's constants: its classes are looked up when a call runs
from .. import options as _options_module

# the back ends are looked up here when certified_flattest runs (tests patch flatext.convex._solve_*)
from .backends import _solve_clarabel, _solve_cvxpy, _solve_ecos, _solve_scs
from .budget import _Budget
from .cells import (  # noqa: F401
    _candidate_patterns,
    _enumerate_cells,
    _interior_direction,
    _Patterns,
    _row_basis,
    _sampled_patterns,
    arrangement_cell_count,
    arrangement_patterns,
)
from .checks import _check_arguments, _check_X, _warm_directions  # noqa: F401
from .constants import INTERP_RTOL
from .constants import SOLVERS as _SOLVERS  # noqa: F401
from .ipm import _solve_ipm
from .network import (  # noqa: F401
    _active,
    _alpha_fix,
    _cheapest_fit,
    _check_value,
    _fewer_neurons,
    _final_network,
    _interior_network,
    _interior_solution,
    _onto_closed_cell,
    _refined,
)
from .pricing import _exact_by_pricing, _optimum, _price  # noqa: F401
from .program import _check_status, _contributions, _groups, _socp_blocks, _Solution  # noqa: F401
from .ratios import (  # noqa: F401
    _cell_best_ratio,
    _cell_max_ratio,
    _cell_ratio_dual,
    _dual_ratio,
    _exact_ratios,
    _ratio_bounds,
    _tiered_ratios,
)
from .result import ConvexResult

__all__ = ["ConvexResult", "arrangement_cell_count", "arrangement_patterns", "certified_flattest"]


def _backend(solver):
    """The conic solver back end named ``solver`` (one of ``SOLVERS``)."""
    backends = {
        "clarabel": _solve_clarabel,
        "ipm": _solve_ipm,
        "scs": _solve_scs,
        "ecos": _solve_ecos,
        "cvxpy": _solve_cvxpy,
    }
    return backends[solver]


def _network(Xr, y, sols, neg, solve, solver, tol, verbose, m):
    """The optimum's neurons strictly inside their cells: with ``solver="ipm"`` the first of
    ``sols`` (the programs solved, least optimum first) whose interior-point solution is strictly
    inside, as it is; else the first refined and placed (:mod:`.network`; at n = 2000 this
    placement took over 15 minutes where a later pricing round's optimum had neurons on the
    facets it shares with the cells added next to it, and the first program's was inside).
    Returns (V (k, r), groups, theta, neurons of the optimum, the solution used)."""
    r = Xr.shape[1]
    if solver == "ipm":
        for sol in sols:
            direct = _interior_solution(Xr, y, sol, _contributions(sol.kappa, sol.x, r), neg, INTERP_RTOL, m)
            if direct is not None:
                return direct[0], direct[1], 0.0, len(direct[1]), sol
    sol = sols[0]
    U2, contrib2, g2 = _refined(Xr, y, sol, _contributions(sol.kappa, sol.x, r), neg, solve, tol, verbose)
    return (*_interior_network(Xr, y, sol.patterns, g2, U2, contrib2, neg, INTERP_RTOL), sol)


def _options(options, keywords):
    """The :class:`ConvexOptions` of a call, an option its ``patterns`` mode does not use refused."""
    where = "certified_flattest"
    cls, merge = _options_module.ConvexOptions, _options_module.merge_options
    o = merge(cls, options, keywords, where=where)
    merge(cls, options, keywords, where=f"{where}(patterns={o.patterns!r})", ignored=cls.IGNORED[o.patterns])
    return o


def certified_flattest(
    X,
    y,
    *,
    neg=0.0,
    m=None,
    warm_start=None,
    callback=None,
    options=None,
    patterns=None,
    n_patterns=None,
    solver=None,
    seed=None,
    tol=None,
    max_exact=None,
    pricing_rounds=None,
    pricing_max_add=None,
    pricing_max_columns=None,
    pricing_rtol=None,
    verbose=None,
    max_seconds=None,
):
    """The flattest interpolator of a piecewise-linear two-layer network, by a cone program.

    Minimizes the orbit-minimal Hessian trace (``flatext.orbit_min_trace``)
    over bias-free interpolators ``f(x) = sum_i a_i sigma(w_i . x)`` with
    ``sigma(z) = max(z,0) + neg max(-z,0)`` (p = 1), as a second-order cone
    program over activation patterns (``docs/convex.md``).

    Parameters
    ----------
    X : array_like, shape (n, d)
    y : array_like, shape (n,)
    neg : float in (-1, 1]
        ``0`` ReLU, ``-alpha`` leaky ReLU with slope ``alpha`` in (0, 1) on the
        negative side, ``0 < neg < 1`` V-shaped (between ReLU and ``|z|``), ``1`` ``|z|``.
    m : int, optional
        Width of the returned network (zero neurons pad it). If the optimum
        needs more neurons than ``m`` a ValueError says so (the cone program's
        value is then a lower bound of the width-m optimum).
    warm_start : sequence of (W, a), optional
        Networks (e.g. a local search's result) whose neurons' patterns are added
        (in exact mode with pricing: to the first program).
    callback : callable, optional
        ``callback(info)`` after each cone solve that a pricing round may
        follow (with ``pricing_rounds > 0``), ``info`` a dict with
        ``stage`` (``"solve"`` or ``"pricing"``), ``round``, ``objective``
        (the program's optimum so far, an upper bound) and ``elapsed``
        (seconds); return True to stop the rounds there
        (``info["stopped"] == "callback"``).
    options : ConvexOptions or dict, optional
        The options below as one object (:class:`flatext.ConvexOptions`, whose defaults
        apply); each may also be given as a keyword, not both. An option the chosen
        ``patterns`` mode does not use raises ``TypeError``.
    patterns : {"auto", "exact", "sampled"}
        ``"exact"``: every cell of the arrangement (:func:`arrangement_patterns`),
        certificate ``"global"``. ``"sampled"``: sign vectors of ``n_patterns``
        Gaussian directions plus the warm starts' neurons, certificate
        ``"upper_bound"``. ``"auto"``: exact when the cell count is at most
        ``max_exact``.
    n_patterns : int, optional
        Random directions for ``"sampled"`` (default ``max(200, 10 n)``; 0: only the
        warm starts' patterns).
    solver : {"clarabel", "ipm", "scs", "ecos", "cvxpy"}
        Conic solver: Clarabel's own API (default, fastest here: see
        ``docs/convex.md``); ``"ipm"``, flatext's primal-dual interior-point method
        for this program's block structure (:mod:`flatext.convex.ipm`: one
        ``(r+1) x (r+1)`` block per group and an ``n x n`` Schur complement; its
        solution is strictly inside the cells, so the network is the solution
        itself); SCS, ECOS, or cvxpy with Clarabel (slow modelling; for cross-checks).
        Pricing needs the dual variables: ``"clarabel"`` or ``"ipm"``.
    seed : int
        Seed of the sampled directions.
    tol : float
        Solver tolerance (gap and feasibility); the returned network must
        interpolate to ``max|r| <= 1e-9 max(1, max|y|)``.
    max_exact : int
        Cell-count limit of ``patterns="auto"``.
    pricing_rounds : int, optional
        Column generation with sampled patterns (``docs/convex.md`` section 3):
        after each solve, candidate cells (the facet neighbours of the
        optimum's cells and the cells of random directions) whose dual
        constraint the optimum's multipliers violate are added and the
        program is solved again, at most this many times (default 5 with
        ``"clarabel"`` or ``"ipm"`` and sampled patterns, else 0; needs one of them).
        With sampled patterns over more than 200 samples the least cells that
        together carry at most 1e-4 of the optimum leave the program before each
        re-solve (each at most once), and the program of least optimum is
        returned; ``info["pricing"]`` has the rounds, the cells added and dropped
        and the largest ratio found with the returned program's multipliers (at
        most ``1 + 1e-6``: no violated candidate was found).
        Exact mode with more than ``2 max(200, 4n)`` cells (default 50 rounds
        with ``"clarabel"`` or ``"ipm"``; 0 solves the program over every cell) prices
        every enumerated cell and starts from ``max(200, 4n)`` of them: the
        certificate is then ``"global"`` when no cell is violated, and
        ``info["pricing"]["lower_bound"]`` is a lower bound of the global
        optimum from the dual multipliers (``docs/design.md`` section 11); if
        the rounds run out first, ``"upper_bound"``. With sampled patterns
        ``info["pricing"]["lower_bound_tried"]`` is ``lam.y / max(1, max_ratio)`` from the
        returned program's multipliers: a lower bound of the optimum over the cells in that
        program and the candidates priced with it only, not of the global optimum.
    pricing_max_add : int, optional
        Cells added per pricing round with sampled patterns at most (default n), the most
        violated first.
    pricing_max_columns : int, optional
        Columns of each program of the sampled pricing rounds at most (two groups of
        ``rank + 1`` columns per cell; default: no limit): fewer cells join, the most violated
        first, and when none fit the rounds end (``info["pricing"]["column_limit"]``). An
        interior-point iteration costs about n^2 per column.
    pricing_rtol : float, optional
        With sampled patterns the rounds end once a round lowered the optimum by less than
        ``pricing_rtol`` times it (>= 0; default: no such rule); ``info["pricing"]["small_gain"]``
        says so.
    verbose : bool
        The solver's log.
    max_seconds : float, optional
        Wall-clock budget (> 0; None: none), checked after each cone solve
        (between pricing rounds). When it runs out the rounds stop and the
        last program's optimum, an interpolator, is returned as usual
        (certificate ``"upper_bound"`` unless no violated cell was left;
        ``info["stopped"] == "time_budget"``): a valid answer, never a
        non-interpolator. The enumeration of the cells and the first solve
        are not cut, except that Clarabel's and the IPM's first solve get the
        time left as their own limit: a budget spent before the first solve ends raises a
        ``TimeoutError`` (no valid answer exists yet). A pricing round's solve
        is not cut, and the final placement of the neurons
        (``info["times"]["polish"]``) runs after the check: the call ends
        within about one round and that placement past the budget.


    Returns
    -------
    ConvexResult
    """
    t0 = time.perf_counter()
    o = _options(options, dict(patterns=patterns, n_patterns=n_patterns, solver=solver, seed=seed, tol=tol,
                               max_exact=max_exact, pricing_rounds=pricing_rounds, pricing_max_add=pricing_max_add,
                               pricing_max_columns=pricing_max_columns, pricing_rtol=pricing_rtol,
                               verbose=verbose, max_seconds=max_seconds))  # fmt: skip
    patterns, n_patterns, solver, seed, tol, verbose = o.patterns, o.n_patterns, o.solver, o.seed, o.tol, o.verbose
    budget = _Budget(t0, o.max_seconds, callback, solver)
    X, y, neg, pricing_rounds = _check_arguments(X, y, neg, patterns, solver, m, o.pricing_rounds)
    max_exact, limits = o.max_exact, (o.pricing_max_add, o.pricing_max_columns, o.pricing_rtol)
    Q = _row_basis(X)  # the row space of X: Xr = X Q has full column rank r
    Xr = X @ Q
    warm_dirs = _warm_directions(warm_start, Q)

    # 1. the activation patterns (cells) the cone program ranges over
    pats = _candidate_patterns(Xr, neg, patterns, max_exact, n_patterns, seed, warm_dirs)
    times = {"patterns": time.perf_counter() - t0}
    budget.check_patterns(pats.signs.shape[0])

    # 2. the cone program's optimum, with pricing rounds (column generation)
    t1 = time.perf_counter()
    solve = budget.solver(_backend(solver))
    rng_p = np.random.default_rng([seed, 1])
    sols, certificate = _optimum(
        Xr, y, neg, pats, solve, solver, tol, verbose, pricing_rounds, limits, rng_p, warm_dirs,
        budget.stop, times,
    )  # fmt: skip
    times["solve"] = time.perf_counter() - t1 - times["assemble"]

    # 3. the network: the optimum usually has samples exactly on kinks (cone constraints active),
    # where the trace's convention (sigma'(0) = 0) differs from its limit: re-solve the groups that
    # matter more accurately, move the neurons strictly inside their cells (docs/convex.md), balance
    t1 = time.perf_counter()
    V, act_groups, theta, k_opt, sol = _network(Xr, y, sols, neg, solve, solver, tol, verbose, m)
    bound = float(np.sum(_contributions(sol.kappa, sol.x, Xr.shape[1])))
    W, a, k_act, max_res, value = _final_network(V, act_groups, Q, X, y, neg, m, bound)
    times["polish"] = time.perf_counter() - t1
    _check_value(value, bound, tol, theta)

    A = sol.A
    info = {
        "times": times,
        **{"variables": A.shape[1], "rows": A.shape[0], "nnz": A.nnz, "groups": len(sol.groups)},
        "theta": theta,
        "optimum_neurons": k_opt,
        "solver_objective": sol.objective,
        "rank": Xr.shape[1],
        "pricing": sol.pricing,
        "stopped": budget.stopped,
    }
    return ConvexResult(
        W=W,
        a=a,
        value=value,
        bound=bound,
        certificate=certificate,
        n_patterns=int(sol.patterns.signs.shape[0]),
        active_neurons=k_act,
        solver=solver,
        status=sol.status,
        seconds=time.perf_counter() - t0,
        max_residual=max_res,
        info=info,
    )
