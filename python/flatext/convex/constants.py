"""Tolerances and limits of the certified flattest interpolator, each defined once."""

from __future__ import annotations

#: The conic solver back ends (``certified_flattest(solver=...)``).
SOLVERS = ("clarabel", "ipm", "scs", "ecos", "cvxpy")

#: The back ends that return the dual variables pricing needs.
DUAL_SOLVERS = ("clarabel", "ipm")

#: Solver statuses accepted as a solution of the cone program (lower case).
SOLVED_STATUSES = ("solved", "optimal", "almostsolved")

#: Statuses accepted with sampled patterns, where the program is a restriction and every figure
#: reported is measured apart (the network's trace by the kernel; the lower bound from exact ratios
#: of the multipliers): also the IPM's ``"InaccurateDual"`` (:data:`IPM_DUAL_GAP`).
SAMPLED_STATUSES = SOLVED_STATUSES + ("inaccuratedual",)

#: A cell's dual ratio above this is violated: the cell joins the program (column generation).
PRICE_THRESHOLD = 1.0 + 1e-6

#: Sampled pricing drops the least cells that together carry at most this share of the optimum
#: before the next solve (each at most once; they may return as candidates), over more than
#: ``PRICING_DROP_MIN_N`` samples. The interior-point optimum spreads shares of 1e-6-1e-9 over most
#: cells, all with dual ratios near 1, so without dropping each round's program only grows. Measured
#: with the cell-sparse method at n = 1000, d = 20, 5 rounds, penalty path at width 200: 73 s and
#: 0.72 % below the teacher network against 262 s and 0.73 % without dropping (with the pricing order
#: by share in both; ``benchmarks/bench_search.py --methods scale --sizes 1000`` at the default width:
#: 77 s). At n = 100-200, d = 8-10 (a planted network) dropping
#: made 5 rounds 2-4x cheaper but left the optimum 0.5 % higher (the dropped cells, binding,
#: return as candidates and use the rounds' slots), so small programs keep every cell.
PRICING_DROP_SHARE = 1e-4
PRICING_DROP_MIN_N = 200

#: A direction u is on sample j's kink (in no cell) when ``|x_j.u| <= KINK_RTOL ||u|| ||x_j||``.
KINK_RTOL = 1e-10

#: An interior-point solution's neuron is its own network when every sample's pre-activation has
#: the cell's sign with a relative margin |x_j.u| / (||x_j|| ||u||) above this many times r eps
#: (r the rank of X, eps float64's): a dot product of r terms rounds by at most r eps ||x_j|| ||u||
#: (Cauchy-Schwarz), so the sign survives the map back to W and the kernels' summation order with
#: a factor 8 to spare. The optimum puts samples on kinks, which the method approaches to
#: 1e-14-1e-12 (at n = 2000, d = 8: 2e-14-9e-14 on groups carrying 25-50 % of the optimum, where
#: the fixed margin 1e-13 sent the network to the in-cell construction, which failed after minutes).
#: The kernel's trace of the network is then checked against the optimum (a sample across its kink
#: would put it below: an error).
IPM_MARGIN_EPS = 8

#: Eigenvalues of ``M_P^T M_P`` below this times the largest are dropped from its factor.
EIG_RTOL = 1e-13

#: The correction LP of the in-cell construction (``network._cheapest_fit``, ``F beta = t`` with beta
#: free in sign) is feasible only when t is in the range of F. With fewer columns than samples it
#: often is not: at n = 2000, d = 8 (132 cells x 9 directions = 1188 columns, numerical rank 67)
#: the targets of the smallest thetas missed the range by 1.6e-2 to 1.6e-5 (least-squares residual
#: per row, relative), and HiGHS's dual simplex ran 272 s and 183 s on the first two to end with
#: status 4 (numerical difficulties). Refused without the LP when ``||F b - t|| > RANGE_RTOL sqrt(n)
#: max|t|`` at the least-squares b: 100x above HiGHS's primal feasibility tolerance (1e-7 per row).
RANGE_RTOL = 1e-5

#: The returned network interpolates to ``max|r| <= INTERP_RTOL max(1, max|y|)``.
INTERP_RTOL = 1e-9

#: Extra random cells given (at most this many times) to a first program that cannot interpolate y.
FIRST_PROGRAM_RETRIES = 3


def start_cells(n):
    """Random cells of the first program in exact mode by pricing: ``max(200, 4 n)``."""
    return max(200, 4 * n)


def default_n_patterns(n):
    """Random directions of ``patterns="sampled"`` by default: ``max(200, 10 n)``."""
    return max(200, 10 * n)


def refine_groups(n):
    """Groups of the optimum re-solved more accurately before the placement: ``max(4 n, 60)``."""
    return max(4 * n, 60)


#: Solver tolerance of the re-solve on the optimum's groups (at most the call's ``tol``).
REFINE_TOL = 1e-11

#: The structured interior-point method (``solver="ipm"``, :mod:`flatext.convex.ipm`):
#: iterations at most (it needs 20-60 here).
IPM_MAX_ITER = 200
#: Fraction of the step to the cone's boundary taken.
IPM_STEP = 0.99
#: Iterative-refinement steps of each Newton solve at most.
KKT_REFINE = 8
#: Refinement stops when a step leaves the residual above this fraction of the previous one
#: (measured on the n = 500, d = 20 restricted program: through most iterations the residual
#: falls to rounding, ~1e-13 relative, in one or two steps and then stays there).
KKT_REFINE_RATIO = 0.5
#: The two signs of a cell share one term of the IPM's Schur complement (the sum of their
#: H_q^{-1}, factored): the sum is shifted by this times its mean eigenvalue so that it factors in
#: floating point (iterative refinement absorbs the shift, as the Schur complement's own).
SCHUR_PAIR_SHIFT = 1e-13
#: Below this step length the iterates no longer move (rounding): the method stops.
IPM_MIN_STEP = 1e-10
#: A best iterate whose relative residuals and gaps are below this (Clarabel's reduced tolerance
#: ``reduced_tol_gap_rel``) is reported "AlmostSolved": near a degenerate optimum (samples on
#: kinks) the sign rows' multipliers grow and their rounding, not the method, bounds the dual
#: residual; the primal point is then still accurate to ``tol``.
IPM_REDUCED_TOL = 5e-5
#: The method stops when the best error has not halved in this many iterations (below the
#: reduced tolerance), or in ``IPM_STALL_FAR`` iterations above it (an infeasible program: this
#: method has no infeasibility certificate).
IPM_STALL = 4
IPM_STALL_FAR = 30
#: A best iterate that is primal feasible, with residuals and complementarity below the reduced
#: tolerance but a gap between the primal and dual objectives up to this (relative), is reported
#: ``"InaccurateDual"``: at a degenerate optimum (samples on kinks) the sign rows' multipliers grow
#: and their rounding shows in the dual objective while the primal iterates have converged.
#: Measured on the restricted program at n = 2000, d = 8 (a two-direction teacher): complementarity
#: 5e-12, primal residual 4e-16, the primal objective stable to 1e-10 over the last 5 iterations,
#: the objective gap 2.6e-4 from iteration 45 on.
IPM_DUAL_GAP = 1e-3
