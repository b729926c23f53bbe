"""The second-order cone program over a set of activation patterns, assembled and solved.

Per (pattern, output sign) group: the trace weight kappa_P and a factor of M_P^T M_P
(:func:`_groups`), then the sparse conic data (:func:`_socp_blocks`) for a back end
of :mod:`flatext.convex.backends`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import scipy.sparse as sp

from .cells import _Patterns
from .constants import EIG_RTOL, SOLVED_STATUSES


def _groups(Xr, pats, neg):
    """The (pattern, sign) groups of the cone program with their kappa and factor of M_P^T M_P.

    Returns (groups, kappa, factors): groups a list of (pattern index, sign), kappa
    (Q,) the trace weights (2/n) sqrt(sum_+ s_j + c^2 sum_- s_j), factors a list
    of k x r matrices Lt with ||Lt u|| = ||M_P u||.
    """
    n = Xr.shape[0]
    c = float(neg)
    s2 = np.einsum("ij,ij->i", Xr, Xr)  # s_j = ||x_j||^2 (the row space keeps the norms)
    groups, kappa, Ls = [], [], []
    for P in range(pats.signs.shape[0]):
        sg = pats.signs[P]
        wgt = np.where(sg > 0, 1.0, c * c)
        ksq = float(np.dot(wgt, s2))
        if ksq <= 0.0:
            continue  # a dead ReLU pattern: no output, no trace
        if c == 1.0 and sg[0] < 0:
            continue  # |z|: the cells P and -P give the same features and trace
        G = (Xr * wgt[:, None]).T @ Xr
        ev, V = np.linalg.eigh(G)
        keep = ev > EIG_RTOL * ev[-1]
        Lt = (V[:, keep] * np.sqrt(ev[keep])).T  # ||Lt u|| = ||M_P u||
        for g in (1.0, -1.0):
            groups.append((P, g))
            kappa.append(2.0 / n * math.sqrt(ksq))
            Ls.append(Lt)
    return groups, np.array(kappa), Ls


def _socp_blocks(Xr, y, pats, neg, groups, kappa, Ls):
    """Assemble min q.x s.t. A x + s = b, s in (zero^n x R+^k x SOC...) as scipy.sparse CSC.

    Variables per (pattern, sign) group: u (r) and t (1); rows: the n equalities
    (scaled by 1/||x_j||), the cone rows ``sigma_j x_j.u / ||x_j|| >= 0`` of the
    cell's possible facets, and ``(t, Lt u)`` in a second-order cone.
    Returns (q, A, b, cones) with cones = (n_zero, n_nonneg, [soc dims]).
    """

    n, r = Xr.shape
    c = float(neg)
    xn = np.linalg.norm(Xr, axis=1)
    nv = r + 1
    Q = len(groups)
    q = np.zeros(Q * nv)
    q[np.arange(Q) * nv + r] = kappa
    eq_r, eq_c, eq_v = [], [], []
    nn_r, nn_c, nn_v = [], [], []
    soc_r, soc_c, soc_v, soc_dims = [], [], [], []
    row_nn = 0
    row_soc = 0
    dcol = np.arange(r)
    for qi, (P, g) in enumerate(groups):
        sg = pats.signs[P]
        dP = np.where(sg > 0, 1.0, -c)
        col0 = qi * nv
        nz = np.nonzero(dP)[0]
        blk = g * (dP[nz] / xn[nz])[:, None] * Xr[nz]  # rows scaled by 1/||x_j|| (conditioning)
        eq_r.append(np.repeat(nz, r))
        eq_c.append(np.tile(col0 + dcol, nz.size))
        eq_v.append(blk.ravel())
        rows = pats.rows[P]
        blk = -(sg[rows, None] / xn[rows, None]) * Xr[rows]
        nn_r.append(np.repeat(row_nn + np.arange(rows.size), r))
        nn_c.append(np.tile(col0 + dcol, rows.size))
        nn_v.append(blk.ravel())
        row_nn += rows.size
        Lt = Ls[qi]
        k = Lt.shape[0]
        soc_r.append(np.array([row_soc]))
        soc_c.append(np.array([col0 + r]))
        soc_v.append(np.array([-1.0]))
        soc_r.append(np.repeat(row_soc + 1 + np.arange(k), r))
        soc_c.append(np.tile(col0 + dcol, k))
        soc_v.append(-Lt.ravel())
        soc_dims.append(k + 1)
        row_soc += k + 1
    cat = np.concatenate
    R = cat([cat(eq_r), n + cat(nn_r), n + row_nn + cat(soc_r)])
    Cc = cat([cat(eq_c), cat(nn_c), cat(soc_c)])
    Vv = cat([cat(eq_v), cat(nn_v), cat(soc_v)])
    A = sp.csc_matrix((Vv, (R, Cc)), shape=(n + row_nn + row_soc, Q * nv))
    b = np.zeros(A.shape[0])
    b[:n] = y / xn
    return q, A, b, (n, row_nn, soc_dims)


def _check_status(solver, status, x, accept=SOLVED_STATUSES):
    # AlmostSolved: Clarabel met its reduced tolerances (reported in ConvexResult.status)
    if x is None or not np.all(np.isfinite(x)) or status.lower() not in accept:
        raise RuntimeError(
            f"the conic solver {solver!r} did not solve the program (status {status!r}); "
            "y may not be interpolable with these patterns (use more patterns)"
        )


@dataclass(frozen=True)
class _Solution:
    """A solved cone program: the patterns it ranged over, the solver's answer and the program's parts."""

    patterns: _Patterns
    x: np.ndarray  # primal: (u (r), t) per group
    status: str
    objective: float
    z: Optional[np.ndarray]  # dual of the rows (Clarabel only; the first n: the equalities)
    groups: list  # (pattern index, output sign) per group
    kappa: np.ndarray  # trace weight per group
    factors: list  # Lt per group, ||Lt u|| = ||M_P u||
    A: Any  # the constraint matrix (scipy.sparse), for the program's sizes
    pricing: dict  # the column generation's record (info["pricing"])


def _solve_over(Xr, y, pats, neg, solve, tol, verbose, pricing):
    """The cone program over ``pats`` assembled and solved (the status is not checked)."""
    groups, kappa, Ls = _groups(Xr, pats, neg)
    qv, A, b, cones = _socp_blocks(Xr, y, pats, neg, groups, kappa, Ls)
    x, status, obj, z = solve(qv, A, b, cones, tol, verbose)
    return _Solution(pats, x, status, obj, z, groups, kappa, Ls, A, pricing)


def _solve_program(Xr, y, pats, neg, solve, solver, tol, verbose, times, accept=SOLVED_STATUSES):
    """The cone program over every pattern of ``pats`` (``times["assemble"]`` set), status checked
    against ``accept``."""
    t1 = time.perf_counter()
    groups, kappa, Ls = _groups(Xr, pats, neg)
    if not groups:
        raise ValueError("no pattern has an output (all-negative ReLU patterns only)")
    qv, A, b, cones = _socp_blocks(Xr, y, pats, neg, groups, kappa, Ls)
    times["assemble"] = time.perf_counter() - t1
    x, status, obj, z = solve(qv, A, b, cones, tol, verbose)
    _check_status(solver, status, x, accept)
    return _Solution(
        pats, x, status, obj, z, groups, kappa, Ls, A, {"rounds": 0, "added": 0, "dropped": 0, "max_ratio": None}
    )


def _contributions(kappa, x, r):
    """Each group's part of the optimum, kappa_q max(t_q, 0) (x: (u (r), t) per group); the sum is the bound."""
    return kappa * np.maximum(x.reshape(-1, r + 1)[:, r], 0.0)
