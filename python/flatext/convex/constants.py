"""Tolerances and limits of the certified flattest interpolator, each defined once."""

from __future__ import annotations

#: The conic solver back ends (``certified_flattest(solver=...)``).
SOLVERS = ("clarabel", "scs", "ecos", "cvxpy")

#: Solver statuses accepted as a solution of the cone program (lower case).
SOLVED_STATUSES = ("solved", "optimal", "almostsolved")

#: A cell's dual ratio above this is violated: the cell joins the program (column generation).
PRICE_THRESHOLD = 1.0 + 1e-6

#: A direction u is on sample j's kink (in no cell) when ``|x_j.u| <= KINK_RTOL ||u|| ||x_j||``.
KINK_RTOL = 1e-10

#: Eigenvalues of ``M_P^T M_P`` below this times the largest are dropped from its factor.
EIG_RTOL = 1e-13

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
