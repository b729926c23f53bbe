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
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from dataclasses import dataclass, field

import clarabel
import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog, lsq_linear, nnls

from .curvature import forward
from .symmetry import balance, orbit_min_trace

__all__ = ["ConvexResult", "arrangement_cell_count", "arrangement_patterns", "certified_flattest"]

_SOLVERS = ("clarabel", "scs", "ecos", "cvxpy")


@dataclass(frozen=True)
class ConvexResult:
    """Result of :func:`certified_flattest`.

    Attributes
    ----------
    W : ndarray, shape (m, d)
    a : ndarray, shape (m,)
        A balanced network that interpolates (``max|r| <= tol``-checked), padded
        with zero neurons to width ``m`` when ``m`` was given.
    value : float
        ``flatext.orbit_min_trace(W, a, X, y, neg=neg)`` of the returned network.
    bound : float
        The optimum of the cone program over the patterns used (its primal
        objective). With ``certificate == "global"`` it is the infimum of the
        orbit-minimal trace over all interpolators (any width, no sample on a
        kink); ``value`` exceeds it by the solver's accuracy (typically 1e-9 to
        1e-5 relative; a RuntimeWarning above ``max(1e4 tol, 1e-4)``;
        ``docs/convex.md``).
    certificate : str
        ``"global"`` (every cell of the arrangement was a candidate) or
        ``"upper_bound"`` (sampled patterns, or exact pricing stopped by
        ``pricing_rounds``: ``bound`` and ``value`` are upper bounds of the
        global infimum).
    n_patterns : int
        Candidate patterns in the cone program.
    active_neurons : int
        Neurons of the optimum (non-zero rows before padding).
    solver : str
    status : str
        The conic solver's status.
    seconds : float
        Wall time of the whole call.
    max_residual : float
        ``max_j |f(x_j) - y_j|`` of the returned network.
    info : dict
        Timings of the parts, sizes of the cone program, ``stopped``
        (``"time_budget"``, ``"callback"`` or None: what ended the pricing
        rounds early), and ``pricing`` (the
        column generation's rounds, cells added, largest dual ratio; in exact
        mode with pricing also ``lower_bound``, a lower bound of the global
        optimum from the dual multipliers, and ``priced_exactly``).
    """

    W: np.ndarray = field(repr=False)
    a: np.ndarray = field(repr=False)
    value: float
    bound: float
    certificate: str
    n_patterns: int
    active_neurons: int
    solver: str
    status: str
    seconds: float
    max_residual: float
    info: dict = field(repr=False, default_factory=dict)


# --------------------------------------------------------------------------- enumeration
def arrangement_cell_count(n, d):
    """Number of cells of a central arrangement of n hyperplanes in general position in R^d.

    ``2 sum_{k=0}^{d-1} C(n-1, k)`` (for ``n >= 1``).
    """
    if n < 1 or d < 1:
        raise ValueError(f"need n >= 1 and d >= 1; got n = {n}, d = {d}")
    return 2 * sum(math.comb(n - 1, k) for k in range(d))


def _row_basis(X, rtol=1e-12):
    """Orthonormal basis Q (d, r) of the row space of X, so that X = (X Q) Q^T."""
    _, s, Vt = np.linalg.svd(X, full_matrices=False)
    r = int(np.sum(s > rtol * max(s[0], 1e-300))) if s.size else 0
    return Vt[:r].T


def _enumerate_cells(Xr, gp_tol=1e-9, chunk=20000):
    """Cells of the central arrangement {x_j . u = 0} in R^r, Xr of rank r.

    Every cell of a central arrangement whose normals span R^r is a pointed cone,
    the conic hull of its extreme rays; each extreme ray is the line where r-1
    hyperplanes meet. So: for every (r-1)-subset T of the samples take the
    direction v orthogonal to them; near +-v all 2^(r-1) sign combinations of
    the samples in T occur (general position), the other signs are sign(X v).
    Returns (signs int8 (C, n), touch bool (C, n): hyperplanes through some
    extreme ray of the cell (its facets are among them), inner (C, r): a point
    strictly inside the cell (the mean of its unit extreme rays)).
    """
    n, r = Xr.shape
    norms = np.linalg.norm(Xr, axis=1)
    if r == 1:
        s = np.where(Xr[:, 0] > 0, 1, -1).astype(np.int8)
        signs = np.stack([s, -s])
        touch = np.zeros((2, n), dtype=bool)
        return signs, touch, np.array([[1.0], [-1.0]])
    k = r - 1
    combos = np.array(list(itertools.product((1, -1), repeat=k)), dtype=np.int8)  # (2^k, k)
    keys, touches, inners = {}, [], []
    subsets = itertools.combinations(range(n), k)
    while True:
        T = np.array(list(itertools.islice(subsets, chunk)), dtype=np.intp)
        if T.size == 0:
            break
        T = T.reshape(-1, k)
        _, sv, Vt = np.linalg.svd(Xr[T], full_matrices=True)  # (B, k, r) -> Vt (B, r, r)
        scale = np.linalg.norm(Xr[T], axis=2).max(axis=1)
        if np.any(sv[:, -1] <= gp_tol * scale):
            raise ValueError(
                "X is not in general position (r-1 samples span less than r-1 dimensions, e.g. "
                "repeated or parallel samples): exact enumeration needs general position; "
                "use patterns='sampled' or add a tiny jitter to X"
            )
        V = Vt[:, -1, :]  # (B, r) unit rays
        Z = V @ Xr.T  # (B, n)
        rel = np.abs(Z) / np.where(norms > 0, norms, 1.0)
        rows = np.arange(T.shape[0])[:, None]
        rel[rows, T] = np.inf
        if np.any(rel <= gp_tol):
            raise ValueError(
                "X is not in general position (r samples lie in a common hyperplane through "
                "the origin): exact enumeration needs general position; use patterns='sampled' "
                "or add a tiny jitter to X"
            )
        S = np.where(Z > 0, 1, -1).astype(np.int8)
        for sgn in (1, -1):
            base = S * sgn
            for cmb in combos:
                cand = base.copy()
                cand[rows, T] = cmb[None, :]
                packed = np.packbits(cand > 0, axis=1)
                for b in range(cand.shape[0]):
                    key = packed[b].tobytes()
                    idx = keys.get(key)
                    if idx is None:
                        idx = len(touches)
                        keys[key] = idx
                        touches.append(np.zeros(n, dtype=bool))
                        inners.append(np.zeros(r))
                    touches[idx][T[b]] = True
                    inners[idx] += sgn * V[b]
    C = len(touches)
    signs = np.empty((C, n), dtype=np.int8)
    for key, idx in keys.items():
        signs[idx] = np.where(np.unpackbits(np.frombuffer(key, dtype=np.uint8))[:n] > 0, 1, -1)
    touch = np.array(touches)
    inner = np.array(inners)
    inner /= np.linalg.norm(inner, axis=1, keepdims=True)
    return signs, touch, inner


def arrangement_patterns(X, *, return_interior=False):
    """Every activation pattern of a bias-free neuron on the samples X, exactly.

    The cells of the central hyperplane arrangement ``{u : x_j . u = 0}``: sign
    vectors ``sign(X u)`` with no zero entry, one per cell. Their number is
    ``2 sum_{k=0}^{r-1} C(n-1, k)`` (r = rank X) for samples in general position,
    ``O(n^(r-1))``: exact enumeration is for small r (about r <= 4).

    Parameters
    ----------
    X : array_like, shape (n, d)
        Samples in general position (any r of them linearly independent in the
        row space); otherwise a ValueError.
    return_interior : bool
        Also return one direction strictly inside each cell.

    Returns
    -------
    signs : ndarray of int8, shape (C, n)
        Entries +1 / -1; rows in no particular order.
    interior : ndarray, shape (C, d)
        Only with ``return_interior``: unit vectors u with ``sign(X u) = signs``.
    """
    X = _check_X(X)
    Q = _row_basis(X)
    if Q.shape[1] == 0:
        raise ValueError("X is zero: no hyperplane arrangement")
    if np.any(np.linalg.norm(X, axis=1) == 0):
        raise ValueError("X has a zero row: its hyperplane is the whole space (drop it)")
    signs, _, inner = _enumerate_cells(X @ Q)
    expected = arrangement_cell_count(X.shape[0], Q.shape[1])
    if signs.shape[0] != expected:
        raise ValueError(
            f"enumerated {signs.shape[0]} cells, expected {expected} for samples in general "
            "position: X is not in general position; use patterns='sampled'"
        )
    if return_interior:
        return signs, inner @ Q.T
    return signs


def _check_X(X):
    X = np.asarray(X)
    if X.dtype.kind not in "fiu":
        raise TypeError(f"X must be a real array; got dtype {X.dtype}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must have shape (n, d) with n, d >= 1; got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or inf")
    return X


# --------------------------------------------------------------------------- patterns -> cone program
@dataclass
class _Patterns:
    signs: np.ndarray  # (C, n) int8, +-1
    rows: list  # per pattern: indices of the cone constraints kept (facets are among them)
    inner: np.ndarray  # (C, r) unit directions strictly inside each cell
    exact: bool


def _sampled_patterns(Xr, n_patterns, rng, warm_dirs):
    """Sign vectors of random Gaussian directions plus warm-start directions, de-duplicated."""
    r = Xr.shape[1]
    dirs = [rng.standard_normal((n_patterns, r))]
    if warm_dirs is not None and len(warm_dirs):
        dirs.insert(0, warm_dirs)
    U = np.concatenate(dirs)
    Z = U @ Xr.T
    tiny = 1e-10 * np.linalg.norm(U, axis=1, keepdims=True) * np.linalg.norm(Xr, axis=1)[None, :]
    ok = np.all(np.abs(Z) > tiny, axis=1)  # a direction on a kink has no cell
    U, Z = U[ok], Z[ok]
    S = np.where(Z > 0, 1, -1).astype(np.int8)
    _, first = np.unique(np.packbits(S > 0, axis=1), axis=0, return_index=True)
    first = np.sort(first)
    inner = U[first] / np.linalg.norm(U[first], axis=1, keepdims=True)
    return S[first], inner


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
        keep = ev > 1e-13 * ev[-1]
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


def _solve_clarabel(q, A, b, cones, tol, verbose=False, time_limit=None):

    n0, n1, socs = cones
    K = [clarabel.ZeroConeT(n0)]
    if n1:
        K.append(clarabel.NonnegativeConeT(n1))
    K += [clarabel.SecondOrderConeT(k) for k in socs]
    st = clarabel.DefaultSettings()
    st.verbose = verbose
    st.tol_gap_abs = tol
    st.tol_gap_rel = tol
    st.tol_feas = tol
    st.max_iter = 500
    if time_limit is not None:
        st.time_limit = float(time_limit)  # status "MaxTime" when it runs out
    P = sp.csc_matrix((A.shape[1], A.shape[1]))
    sol = clarabel.DefaultSolver(P, q, A, b, K, st).solve()
    status = str(sol.status).split(".")[-1]
    return np.asarray(sol.x), status, float(sol.obj_val), np.asarray(sol.z)


def _solve_scs(q, A, b, cones, tol, verbose=False):
    try:
        import scs
    except ImportError:
        raise ImportError("solver='scs' needs the scs package: pip install scs") from None
    n0, n1, socs = cones
    data = {"A": A, "b": b, "c": q}
    cone = {"z": n0, "l": n1, "q": list(socs)}
    sol = scs.solve(data, cone, eps_abs=tol, eps_rel=tol, verbose=verbose, max_iters=200000)
    status = sol["info"]["status"]
    return np.asarray(sol["x"]), status, float(sol["info"]["pobj"]), None


def _solve_ecos(q, A, b, cones, tol, verbose=False):
    try:
        import ecos
    except ImportError:
        raise ImportError("solver='ecos' needs the ecos package: pip install ecos") from None
    n0, n1, socs = cones
    A = A.tocsr()
    Aeq, G = A[:n0].tocsc(), A[n0:].tocsc()
    sol = ecos.solve(
        q,
        G,
        b[n0:],
        {"l": n1, "q": list(socs)},
        Aeq,
        b[:n0],
        verbose=verbose,
        abstol=tol,
        reltol=tol,
        feastol=tol,
        max_iters=200,
    )
    info = sol["info"]
    status = {0: "Solved", 10: "AlmostSolved"}.get(info["exitFlag"], f"exitFlag {info['exitFlag']}")
    return np.asarray(sol["x"]), status, float(info["pcost"]), None


def _solve_cvxpy(q, A, b, cones, tol, verbose=False):
    try:
        import cvxpy as cp
    except ImportError:
        raise ImportError("solver='cvxpy' needs cvxpy: pip install cvxpy") from None
    n0, n1, socs = cones
    x = cp.Variable(A.shape[1])
    A = A.tocsr()
    e = A @ x
    cons = [e[:n0] == b[:n0]]
    if n1:
        cons.append(b[n0 : n0 + n1] - e[n0 : n0 + n1] >= 0)
    off = n0 + n1
    for k in socs:
        s = b[off : off + k] - e[off : off + k]
        cons.append(cp.SOC(s[0], s[1:]))
        off += k
    prob = cp.Problem(cp.Minimize(q @ x), cons)
    prob.solve(solver=cp.CLARABEL, verbose=verbose)
    return np.asarray(x.value), str(prob.status), float(prob.value), None


def _dual_ratio(Xr, lam, neg, Wd):
    """Ratio of the dual constraint at directions Wd (N, r), each in its own cell.

    For the equality multipliers lam of the cone program, the cell P of w and the
    better output sign, ``|sum_j lam_j sigma(x_j.w)| / (kappa_P ||M_P w||)``:
    above 1 the cell's group would lower the optimum (column generation);
    at the optimum over every cell it is <= 1 everywhere (docs/convex.md section 3).
    """
    n = Xr.shape[0]
    c = float(neg)
    Z = Wd @ Xr.T
    pos = Z > 0
    sig = np.where(pos, Z, -c * Z)
    kap = 2.0 / n * np.sqrt(np.where(pos, 1.0, c * c) @ np.einsum("ij,ij->i", Xr, Xr))
    den = kap * np.linalg.norm(sig, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, np.abs(sig @ lam) / den, 0.0)


def _cell_max_ratio(Xr, lam, neg, S, g, rows=None):
    """The largest dual ratio inside each closed cell S[k] with output sign g[k].

    One cone program with a block per cell: maximize ``g b_P.u`` subject to
    ``kappa_P ||M_P u|| <= 1`` and u in the closed cell, ``b_P = X^T D_P lam``;
    its value is the cell's ratio (a maximum over the cell, which random
    directions only bound from below). ``rows[k]``: the samples whose cone rows
    describe cell k (its facets are among them; default all n).
    Returns (ratios (K,), maximisers (K, r)).
    """
    n, r = Xr.shape
    c = float(neg)
    xn = np.linalg.norm(Xr, axis=1)
    s2 = xn * xn
    blocks, rhs, cones, qs = [], [], [], []
    for k, (sg, gk) in enumerate(zip(S, g)):
        rk = np.arange(n) if rows is None else rows[k]
        pos = sg > 0
        wgt = np.where(pos, 1.0, c * c)
        kap = 2.0 / n * math.sqrt(float(wgt @ s2))
        G = (Xr * wgt[:, None]).T @ Xr
        ev, V = np.linalg.eigh(G)
        keep = ev > 1e-13 * max(ev[-1], 1e-300)
        Lt = (V[:, keep] * np.sqrt(ev[keep])).T
        qs.append(-gk * (Xr.T @ (np.where(pos, 1.0, -c) * lam)))
        blocks.append(np.vstack([-(sg[rk] / xn[rk])[:, None] * Xr[rk], np.zeros((1, r)), -Lt]))
        rhs.append(np.concatenate([np.zeros(rk.size), [1.0 / kap if kap > 0 else 0.0], np.zeros(Lt.shape[0])]))
        cones += [clarabel.NonnegativeConeT(rk.size), clarabel.SecondOrderConeT(Lt.shape[0] + 1)]
    A = sp.block_diag(blocks, format="csc")
    st = clarabel.DefaultSettings()
    st.verbose = False
    st.tol_gap_abs = st.tol_gap_rel = st.tol_feas = 1e-9
    P = sp.csc_matrix((A.shape[1], A.shape[1]))
    sol = clarabel.DefaultSolver(P, np.concatenate(qs), A, np.concatenate(rhs), cones, st).solve()
    U = np.asarray(sol.x).reshape(len(S), r)
    # a failed solve (NaN or garbage) must not add cells: such ratios count as 0
    ok = str(sol.status).split(".")[-1].lower() in ("solved", "almostsolved") and np.all(np.isfinite(U))
    ratio = -np.einsum("kr,kr->k", np.stack(qs), U) if ok else np.zeros(len(S))
    return ratio, U


def _cell_best_ratio(Xr, lam, neg, S, rows=None):
    """The cells' ratios for the better output sign (:func:`_cell_max_ratio` for g = +1 and -1)."""
    ratio = np.zeros(len(S))
    for g in (1.0, -1.0):
        ratio = np.maximum(ratio, _cell_max_ratio(Xr, lam, neg, S, np.full(len(S), g), rows)[0])
    return ratio


def _interior_direction(Xr, sg):
    """A unit direction strictly inside the cell {sg_j x_j.u > 0}, or None (empty cell).

    LP: maximise t subject to sg_j x_j.u / ||x_j|| >= t, -1 <= u <= 1.
    """
    n, r = Xr.shape
    A = -(sg / np.linalg.norm(Xr, axis=1))[:, None] * Xr
    res = linprog(
        np.r_[np.zeros(r), -1.0],
        A_ub=np.hstack([A, np.ones((n, 1))]),
        b_ub=np.zeros(n),
        bounds=[(-1, 1)] * r + [(None, 1)],
        method="highs",
    )
    if res.status != 0 or not res.x[r] > 1e-9:
        return None
    u = res.x[:r]
    return u / np.linalg.norm(u)


def _price(Xr, lam, neg, signs, seeds, rng, n_dirs=20000, n_cells=400, threshold=1.0 + 1e-6, max_add=None):
    """Cells not in ``signs`` whose dual constraint ``lam`` violates (the pricing step).

    Candidates: the facet neighbours of the optimum's cells (``seeds``: its groups'
    u; the sign of each of the 2r samples nearest to a seed's hyperplane flipped,
    since the optimum's neurons sit on kinks), then the cells of random Gaussian
    directions ranked by the ratio there; the first ``n_cells`` new ones are priced
    (:func:`_tiered_ratios`: exact where they may be violated); at most
    ``max_add`` (default n) of the violated ones are returned, the most violated
    first (each added cell adds n cone rows to the program).
    Returns (new signs (k, n) int8, unit directions strictly inside them (k, r),
    the largest ratio found).
    """
    n, r = Xr.shape
    c = float(neg)
    xn = np.linalg.norm(Xr, axis=1)
    U = rng.standard_normal((n_dirs, r))
    Z = U @ Xr.T
    ok = np.all(np.abs(Z) > 1e-10 * np.linalg.norm(U, axis=1, keepdims=True) * xn[None, :], axis=1)
    U, Z = U[ok], Z[ok]
    v = _dual_ratio(Xr, lam, neg, U)
    S = np.where(Z > 0, 1, -1).astype(np.int8)[np.argsort(-v)]
    U = U[np.argsort(-v)]
    sn = np.linalg.norm(seeds, axis=1)
    big = seeds[sn > 1e-6 * max(float(sn.max(initial=0.0)), 1e-300)]
    if len(big):
        Zs = big @ Xr.T
        k = min(2 * r, n)
        near = np.argsort(np.abs(Zs) / xn[None, :], axis=1)[:, :k]
        Sn = np.repeat(np.where(Zs > 0, 1, -1).astype(np.int8), k, axis=0)
        Sn[np.arange(len(Sn)), near.ravel()] *= -1
        S = np.concatenate([Sn, S])
        U = np.concatenate([np.full((len(Sn), r), np.nan), U])  # no interior point known yet
    if c == 1.0:  # |z|: P and -P are one cell of the program (_groups keeps sg[0] > 0)
        flip = S[:, 0] < 0
        S[flip], U[flip] = -S[flip], -U[flip]
    known = {row.tobytes() for row in np.packbits(signs > 0, axis=1)}
    new, seen = [], set()
    for i, kb in enumerate(np.packbits(S > 0, axis=1)):
        kb = kb.tobytes()
        if kb not in known and kb not in seen:
            seen.add(kb)
            new.append(i)
            if len(new) == n_cells:
                break
    vmax = float(v.max(initial=0.0))
    if not new:
        return S[:0], U[:0], vmax
    S, U = S[new], U[new]
    ratio = _tiered_ratios(Xr, lam, neg, S, threshold)
    vmax = max(vmax, float(ratio.max()))
    out_s, out_u = [], []
    order = np.argsort(-ratio)
    order = order[ratio[order] > threshold][: n if max_add is None else max_add]
    for sg, u in zip(S[order], U[order]):
        if np.isnan(u[0]):
            u = _interior_direction(Xr, sg)
            if u is None:  # the flipped sample's hyperplane is not a facet: an empty cell
                continue
        out_s.append(sg)
        out_u.append(u / np.linalg.norm(u))
    if not out_s:
        return S[:0], U[:0], vmax
    return np.array(out_s, dtype=np.int8), np.array(out_u), vmax


def _ratio_bounds(Xr, lam, neg, signs, chunk=4096):
    """Every cell's dual ratio bounded from above, cheaply, and where the bound is the ratio.

    Over all u (not only the cell), ``max g b_P.u / (kappa_P ||M_P u||)`` is
    ``sqrt(b_P^T G_P^+ b_P) / kappa_P`` with ``b_P = X^T D_P lam``,
    ``G_P = M_P^T M_P``, attained at ``u = g G_P^+ b_P``; when that u lies in the
    closed cell for one of the signs g the bound is the cell's ratio.
    Returns (bounds (C,), exact (C,) bool). Dead ReLU cells (kappa = 0) get 0.
    """
    n, r = Xr.shape
    c = float(neg)
    s2 = np.einsum("ij,ij->i", Xr, Xr)
    XX = (Xr[:, :, None] * Xr[:, None, :]).reshape(n, r * r)
    Xl = Xr * lam[:, None]
    ub = np.zeros(len(signs))
    exact = np.zeros(len(signs), dtype=bool)
    for k0 in range(0, len(signs), chunk):
        S = signs[k0 : k0 + chunk]
        pos = S > 0
        Wt = np.where(pos, 1.0, c * c)
        G = (Wt @ XX).reshape(-1, r, r)
        h = np.where(pos, 1.0, -c) @ Xl
        kap = 2.0 / n * np.sqrt(Wt @ s2)
        ev, V = np.linalg.eigh(G)
        keep = ev > 1e-13 * np.maximum(ev[:, -1:], 1e-300)
        ph = np.einsum("krs,kr->ks", V, h)
        inv = np.where(keep, 1.0 / np.where(keep, ev, 1.0), 0.0)
        u = np.einsum("krs,ks->kr", V, inv * ph)  # G^+ h
        with np.errstate(invalid="ignore", divide="ignore"):
            ub[k0 : k0 + len(S)] = np.where(kap > 0, np.sqrt(np.einsum("ks,ks->k", inv, ph * ph)) / kap, 0.0)
        z = (u @ Xr.T) * S  # sign-corrected pre-activations of G^+ h
        tiny = 1e-12 * np.linalg.norm(u, axis=1, keepdims=True) * np.sqrt(s2)[None, :]
        exact[k0 : k0 + len(S)] = np.all(z >= -tiny, axis=1) | np.all(z <= tiny, axis=1) | (kap == 0)
    return ub, exact


def _cell_ratio_dual(Xr, lam, neg, signs, rows):
    """Exact in-cell dual ratios by the dual of the pricing problem (one NNLS per cell and sign).

    For the closed cell C = {u : sigma_j x_j.u >= 0, j in rows} and h = g X^T D_P lam,
    ``max_{u in C} h.u / ||M_P u|| = min_{nu >= 0} ||h + sum_j nu_j sigma_j x_j||_{G^-1}``
    (conic duality, C has an interior; ``G = M_P^T M_P``): a non-negative least
    squares problem in the rows' multipliers. Returns (ratios (K,), ok (K,) bool);
    cells with singular G (fewer than r samples span the active side) are not
    handled here (ok False).
    """
    n, r = Xr.shape
    c = float(neg)
    s2 = np.einsum("ij,ij->i", Xr, Xr)
    out = np.zeros(len(signs))
    ok = np.ones(len(signs), dtype=bool)
    for k, (sg, rk) in enumerate(zip(signs, rows)):
        pos = sg > 0
        wgt = np.where(pos, 1.0, c * c)
        ksq = float(wgt @ s2)
        if ksq <= 0.0:
            continue
        ev, V = np.linalg.eigh((Xr * wgt[:, None]).T @ Xr)
        if not ev[0] > 1e-11 * ev[-1]:
            ok[k] = False
            continue
        B = V.T / np.sqrt(ev)[:, None]  # ||B v|| = ||v||_{G^-1}
        h = Xr.T @ (np.where(pos, 1.0, -c) * lam)
        Bn = B @ (sg[rk, None] * Xr[rk]).T
        best = 0.0
        try:
            for g in (1.0, -1.0):
                best = max(best, nnls(Bn, -g * (B @ h))[1])
        except RuntimeError:  # NNLS iteration limit (degenerate rows): the cone program instead
            ok[k] = False
            continue
        out[k] = best / (2.0 / n * math.sqrt(ksq))
    return out, ok


def _exact_ratios(Xr, lam, neg, S, rows):
    """Exact in-cell dual ratios (better output sign) of the cells S: the NNLS of
    :func:`_cell_ratio_dual`, the cone program (:func:`_cell_best_ratio`) where G is singular."""
    out, ok = _cell_ratio_dual(Xr, lam, neg, S, rows)
    b = np.nonzero(~ok)[0]
    if b.size:
        out[b] = _cell_best_ratio(Xr, lam, neg, S[b], [rows[i] for i in b])
    return out


def _tiered_ratios(Xr, lam, neg, S, threshold):
    """The cells' dual ratios where they may exceed ``threshold``, else an upper bound below it.

    :func:`_ratio_bounds` for all (the ratio where its maximiser lies in the cell),
    :func:`_exact_ratios` where the bound exceeds ``threshold`` and is not attained.
    """
    ub, tight = _ratio_bounds(Xr, lam, neg, S)
    need = np.nonzero(~tight & (ub > threshold))[0]
    if need.size:
        ub[need] = _exact_ratios(Xr, lam, neg, S[need], [np.arange(Xr.shape[0])] * need.size)
    return ub


def _exact_by_pricing(
    Xr, y, neg, pats, solve, solver, tol, rounds, rng, verbose, warm_dirs=None, thr=1.0 + 1e-6, stop=None
):
    """The cone program over every enumerated cell, solved by column generation.

    Starts from ``max(200, 4n)`` random cells and those of ``warm_dirs``
    (directions, e.g. a search's neurons); after each solve every cell is
    priced with the optimum's multipliers lam (:func:`_ratio_bounds`, then the
    exact in-cell maximum where the bound exceeds ``thr`` and is not attained in
    the cell: :func:`_cell_ratio_dual`, the cone program where G is singular)
    and the violated cells (at most 2n,
    the most violated first) join the program. When none is violated the
    restricted optimum is the global one. The certificate: lam / max(1, rho_max)
    is feasible for the dual of the full program (rho_max the largest ratio over
    all cells, the program's own cells included), so ``lam.y / max(1, rho_max)``
    is a lower bound of the global optimum. ``stop(rounds, objective)``, called
    after each solve, ends the rounds early when it returns True (a time budget).
    Returns (restricted patterns, x, status, obj, z, pricing dict, groups, kappa, factors, A).
    """
    n, r = Xr.shape
    c = float(neg)
    xn = np.linalg.norm(Xr, axis=1)
    N = pats.signs.shape[0]
    live = np.ones(N, dtype=bool)
    if c == 1.0:
        live &= pats.signs[:, 0] > 0  # |z|: P and -P are one cell (_groups keeps sg[0] > 0)
    if c == 0.0:
        live &= np.any(pats.signs > 0, axis=1)  # the all-negative ReLU cell has no output
    cand = np.nonzero(live)[0]
    in_prog = np.zeros(N, dtype=bool)
    in_prog[rng.choice(cand, min(cand.size, max(200, 4 * n)), replace=False)] = True
    if warm_dirs is not None and len(warm_dirs):
        index = {row.tobytes(): i for i, row in enumerate(np.packbits(pats.signs > 0, axis=1))}
        Z = warm_dirs @ Xr.T
        S = np.where(Z > 0, 1, -1).astype(np.int8)
        if c == 1.0:
            S[S[:, 0] < 0] *= -1
        on_kink = np.any(np.abs(Z) <= 1e-10 * np.linalg.norm(warm_dirs, axis=1, keepdims=True) * xn[None, :], axis=1)
        for row in np.packbits(S[~on_kink] > 0, axis=1):
            i = index.get(row.tobytes())
            if i is not None and live[i]:
                in_prog[i] = True
    pricing = {"rounds": 0, "added": 0, "max_ratio": None, "priced_exactly": 0, "lower_bound": None}

    def price(idx):  # exact in-cell maxima (both output signs) of the cells idx
        pricing["priced_exactly"] += idx.size
        return _exact_ratios(Xr, lam, neg, pats.signs[idx], [pats.rows[i] for i in idx])

    retries = 3  # a first program that cannot interpolate y gets more random cells
    while True:
        sel = np.nonzero(in_prog)[0]
        sub = _Patterns(pats.signs[sel], [pats.rows[i] for i in sel], pats.inner[sel], True)
        groups, kappa, Ls = _groups(Xr, sub, neg)
        qv, A, b, cones = _socp_blocks(Xr, y, sub, neg, groups, kappa, Ls)
        x, status, obj, z = solve(qv, A, b, cones, tol, verbose)
        try:
            _check_status(solver, status, x)
        except RuntimeError:
            rest = cand[~in_prog[cand]]
            if pricing["rounds"] > 0 or retries == 0 or not rest.size:
                raise
            retries -= 1
            in_prog[rng.choice(rest, min(rest.size, max(200, 4 * n)), replace=False)] = True
            continue
        lam = -z[:n] / xn  # multipliers of sum g D_P X u = y (rows were scaled by 1/||x_j||)
        ub, tight = _ratio_bounds(Xr, lam, neg, pats.signs)
        ub[~live] = 0.0
        ratio = np.where(tight, ub, np.nan)  # the cells' ratios where known
        # cells outside the program: exact ratios where the bound may be violated, best first
        out = np.nonzero(~in_prog & (ub > thr))[0]
        need = out[~tight[out]]
        if need.size:
            need = need[np.argsort(-ub[need])]
            ratio[need] = price(need)
        viol = out[ratio[out] > thr]
        done = viol.size == 0 or pricing["rounds"] >= rounds or (stop is not None and stop(pricing["rounds"], obj))
        if done:
            # the certificate also needs the program's own cells (dual feasible to the solver's
            # accuracy): their exact ratios where the bound exceeds 1
            mine = np.nonzero(in_prog & (ub > 1.0) & ~tight)[0]
            if mine.size:
                ratio[mine] = price(mine)
            ratio = np.where(np.isnan(ratio), ub, ratio)  # never priced: the bound (<= thr)
            rho = float(ratio[live].max(initial=0.0))
            pricing["max_ratio"] = rho
            pricing["lower_bound"] = float(lam @ y) / max(1.0, rho)
            return sub, x, status, obj, z, pricing, groups, kappa, Ls, A
        viol = viol[np.argsort(-ratio[viol])][: 2 * n]
        in_prog[viol] = True
        pricing["rounds"] += 1
        pricing["added"] += int(viol.size)


# --------------------------------------------------------------------------- the network
def _active(contrib, bound, n):
    """Indices of the groups of an interior-point solution worth keeping.

    Inactive groups are left at about the solver's tolerance, not at 0; a tied
    optimum is spread over many groups. Keep everything above 1e-12 of the optimum
    (at most 2e7 / n of them): the LP of :func:`_fewer_neurons` then picks a vertex.
    """
    order = np.argsort(-contrib)
    cut = min(int(np.sum(contrib > 1e-14 * bound)), max(20 * n, 20_000_000 // max(n, 1)))
    return np.sort(order[:cut])


def _onto_closed_cell(Xr, sg, u):
    """u moved onto the closed cell {sg_j x_j.u >= 0} (the solver leaves ~tol violations).

    Projects onto the null space of the violated (or tied) rows, a few rounds: the
    violations are tiny, so this is the Euclidean projection to first order.
    """
    xn = np.linalg.norm(Xr, axis=1)
    for _ in range(6):
        z = sg * (Xr @ u)
        bad = z < 1e-15 * xn * np.linalg.norm(u)
        if not np.any(z < 0):
            return u
        A = Xr[bad]
        u = u - np.linalg.pinv(A) @ (A @ u)
    return u


def _fewer_neurons(Xr, y, pats, groups, act, Ustar, contrib, neg):
    """At most n neurons with the same outputs and no larger trace (Caratheodory, by an LP).

    Scaling the optimum's neurons by alpha_q >= 0 keeps them in their cells and makes
    outputs and trace linear in alpha: min sum alpha_q c_q s.t. sum alpha_q f_q = y
    has alpha = 1 feasible (to the solver's tolerance) and a vertex solution with at
    most n non-zero alphas (interior-point solvers return the centre of a tied
    optimal face instead, with more neurons).
    """

    n = Xr.shape[0]
    if act.size <= n:
        return act, Ustar
    c = float(neg)
    Fq = np.stack(
        [g * np.where(pats.signs[P] > 0, 1.0, -c) * (Xr @ u) for (P, g), u in zip([groups[i] for i in act], Ustar)],
        axis=1,
    )
    # the trace of each neuron as it is (the solver's t_q can differ from ||M u_q||)
    s2 = np.einsum("ij,ij->i", Xr, Xr)
    cost = np.empty(act.size)
    for k, (i, u) in enumerate(zip(act, Ustar)):
        w = np.where(pats.signs[groups[i][0]] > 0, 1.0, c * c)
        cost[k] = 2.0 / n * math.sqrt(w @ s2) * math.sqrt(w @ (Xr @ u) ** 2)
    # in units where every column and the target have size 1 (HiGHS' tolerances are absolute)
    fn = np.maximum(np.linalg.norm(Fq, axis=0), 1e-300)
    tgt = Fq.sum(axis=1)
    tn = max(float(np.linalg.norm(tgt)), 1e-300)
    try:
        res = linprog(cost / fn, A_eq=Fq / fn, b_eq=tgt / tn, bounds=(0, None), method="highs-ds")
    except (ValueError, ImportError):  # pragma: no cover - scipy without HiGHS
        return act, Ustar
    if res.status != 0:
        return act, Ustar
    alpha_all = res.x * tn / fn
    if cost @ alpha_all > cost.sum() * (1 + 1e-9):
        return act, Ustar
    keep = alpha_all > 1e-12
    alpha = alpha_all[keep]
    # the vertex's alphas again, exactly (HiGHS meets the equalities to ~1e-7), for y itself
    exact, *_ = np.linalg.lstsq(Fq[:, keep], y, rcond=None)
    if (
        np.all(exact > 0)
        and np.max(np.abs(Fq[:, keep] @ exact - y)) < np.max(np.abs(Fq[:, keep] @ alpha - y))
        and cost[keep] @ exact <= (cost[keep] @ alpha) * (1 + 1e-8)
    ):
        alpha = exact
    return act[keep], Ustar[keep] * alpha[:, None]


def _alpha_fix(F, y):
    """1/2 <= alpha <= 3/2 with F alpha nearest to y (bounded least squares), or ones if worse.

    The upper bound matters: the solver's tiny groups (trace ~1e-9) have tiny outputs, and
    an unbounded fit can scale one by 1e5 to absorb the residual (+4e-4 in the trace,
    measured); what the bounded alphas leave goes to the trace-aware correction LP."""

    r0 = y - F.sum(axis=1)
    res = lsq_linear(F, r0, bounds=(-0.5, 0.5), method="bvls", tol=1e-14)
    if np.max(np.abs(F @ res.x - r0)) < np.max(np.abs(r0)):
        return 1.0 + res.x
    return np.ones(F.shape[1])


def _cheapest_fit(F, cost, target):
    """beta of least sum cost_k |beta_k| with F beta = target exactly, or None.

    An LP (HiGHS, on the target scaled to unit size) picks the support, at most n
    columns; the values are then solved for exactly on that support.
    """

    K = F.shape[1]
    tn = float(np.max(np.abs(target)))
    res = linprog(
        np.concatenate([cost, cost]), A_eq=np.hstack([F, -F]), b_eq=target / tn, bounds=(0, None), method="highs-ds"
    )
    if res.status != 0:
        return None
    beta = (res.x[:K] - res.x[K:]) * tn
    sup = np.nonzero(np.abs(beta) > 1e-12 * np.max(np.abs(beta)))[0]
    exact, *_ = np.linalg.lstsq(F[:, sup], target, rcond=None)
    if np.all(np.sign(exact) == np.sign(beta[sup])) and cost[sup] @ np.abs(exact) <= 1.01 * (cost @ np.abs(beta)):
        beta = np.zeros(K)
        beta[sup] = exact
    return beta


def _interior_network(Xr, y, pats, groups, U, contrib, neg, rtol):
    """An interpolating network strictly inside its cells, at the optimum up to ~1e-9.

    1. keep the groups above 1e-14 of the optimum, each moved onto its closed cell
       (the solver leaves violations of about its tolerance);
    2. rescale them, u_q <- alpha_q u_q with alpha_q >= 1/2 (cells kept exactly,
       f linear in alpha): a bounded least-squares alpha removes most of the
       solver's residual, and an LP vertex keeps at most n of them
       (:func:`_fewer_neurons`);
    3. mix each with a direction strictly inside its cell, (1 - theta) u_q +
       theta ||u_q|| inner_q: strictly inside for theta > 0, trace and outputs
       moved by O(theta);
    4. fit the outputs still missing exactly with correction neurons |beta| d
       along r + 1 directions d strictly inside each of a few cells (the LP of
       :func:`_cheapest_fit`: least added trace, at most n of them). theta
       grows from 1e-12 until every pre-activation has its cell's sign with
       margin and max|r| <= rtol.

    Returns (V (k, r), groups (k pairs (pattern, sign)), theta, k).
    """
    n, r = Xr.shape
    c = float(neg)
    bound = float(np.sum(contrib))
    act = _active(contrib, bound, n)
    Ustar = np.array([_onto_closed_cell(Xr, pats.signs[groups[i][0]], U[i]) for i in act])
    # a solver value far outside its cell projects to ~0 (or not at all): drop it
    xn = np.linalg.norm(Xr, axis=1)
    un = np.linalg.norm(Ustar, axis=1)
    relm = np.min((Ustar @ Xr.T) * pats.signs[[groups[i][0] for i in act]], axis=1) / np.maximum(un * xn.max(), 1e-300)
    ok = (relm >= -1e-14) & (un > 1e-6 * np.linalg.norm(U[act], axis=1))
    act, Ustar = act[ok], Ustar[ok]
    dP = {}

    def feats(P):
        if P not in dP:
            dP[P] = np.where(pats.signs[P] > 0, 1.0, -c)
        return dP[P]

    def outputs(gs, us):
        return np.stack([g * feats(P) * (Xr @ u) for (P, g), u in zip(gs, us)], axis=1)

    # 2a. alpha correction over all kept groups (many columns: tiny, positive changes)
    Fq = outputs([groups[i] for i in act], Ustar)
    Ustar = Ustar * _alpha_fix(Fq, y)[:, None]
    # 2b. LP vertex: at most n neurons, same outputs, trace not larger
    act, Ustar = _fewer_neurons(Xr, y, pats, groups, act, Ustar, contrib, neg)
    act_groups = [groups[i] for i in act]
    Ustar = Ustar * _alpha_fix(outputs(act_groups, Ustar), y)[:, None]
    P_act = [P for P, _ in act_groups]
    # a sampled cell's interior direction is the random direction that found it, which
    # can sit ~1e-10 from a facet: too thin for the mix below; centre those by an LP
    xn = np.linalg.norm(Xr, axis=1)
    for P in set(P_act) | {groups[i][0] for i in np.argsort(-contrib)[: 10 * n]}:
        margin = float(np.min(pats.signs[P] * (Xr @ pats.inner[P]) / xn))
        if margin < 1e-6:
            u = _interior_direction(Xr, pats.signs[P])
            if u is not None and float(np.min(pats.signs[P] * (Xr @ u) / xn)) > margin:
                pats.inner[P] = u
    Vin = np.linalg.norm(Ustar, axis=1)[:, None] * pats.inner[P_act]
    scale = max(1.0, float(np.max(np.abs(y))))
    Phi = np.concatenate([g * feats(P)[:, None] * Xr for P, g in act_groups], axis=1)
    # correction neurons: beta_P inner_P for candidate cells P (active cells first, then the
    # solver's ranking), strictly inside whatever their size; the cheapest fit by an LP
    order = np.argsort(-contrib)
    cand, seen = [], set()
    for P in P_act + [groups[i][0] for i in order[: 10 * n]]:
        if P not in seen:
            seen.add(P)
            cand.append(P)
    C0 = np.array(cand[: max(3 * n, len(P_act))])
    # r + 1 directions strictly inside each candidate cell (inner_P and inner_P + m_P e_k / 2,
    # m_P its margin), so that the correction can reach the cell's whole output space
    inn = pats.inner[C0]
    mP = np.min((inn @ Xr.T) * pats.signs[C0] / xn[None, :], axis=1)
    dirs = [inn] + [inn + 0.5 * mP[:, None] * np.eye(r)[k][None, :] for k in range(r)]
    Dir = np.concatenate(dirs)
    C = np.tile(C0, r + 1)
    F = np.where(pats.signs[C] > 0, 1.0, -c).T * (Xr @ Dir.T)  # (n, K(r+1))
    wgt = np.where(pats.signs[C] > 0, 1.0, c * c)
    Z = Dir @ Xr.T
    unit_cost = 2.0 / n * np.sqrt(wgt @ (xn * xn)) * np.sqrt(np.sum(wgt * Z * Z, axis=1))
    index0 = {gp: i for i, gp in enumerate(act_groups)}
    for theta in (1e-12, 1e-11, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5):
        V = (1 - theta) * Ustar + theta * Vin
        res = y - Phi @ V.ravel()
        if np.max(np.abs(res)) > 1e-15 * scale:
            beta = _cheapest_fit(F, unit_cost, res)
            if beta is None:
                continue
        else:
            beta = np.zeros(len(C))
        Vs, Gs, index = list(V), list(act_groups), dict(index0)
        for P, dvec, bb in zip(C, Dir, beta):
            if bb == 0.0:
                continue
            key = (int(P), 1.0 if bb > 0 else -1.0)
            if key in index:
                Vs[index[key]] = Vs[index[key]] + abs(bb) * dvec
            else:
                index[key] = len(Gs)
                Gs.append(key)
                Vs.append(abs(bb) * dvec)
        Vs = np.array(Vs)
        sgs = pats.signs[[P for P, _ in Gs]]
        if not np.all((Vs @ Xr.T) * sgs > 1e-13 * np.linalg.norm(Vs, axis=1)[:, None] * xn[None, :]):
            continue
        f = sum(g * feats(P) * (Xr @ w) for (P, g), w in zip(Gs, Vs))
        if np.max(np.abs(f - y)) <= rtol * scale:
            return Vs, Gs, theta, len(act_groups)
    raise RuntimeError(
        "could not place the optimum's neurons strictly inside their cells while interpolating "
        "(the solver's solution may be inaccurate: try a smaller tol)"
    )


def _check_status(solver, status, x):
    # AlmostSolved: Clarabel met its reduced tolerances (reported in ConvexResult.status)
    if x is None or not np.all(np.isfinite(x)) or status.lower() not in ("solved", "optimal", "almostsolved"):
        raise RuntimeError(
            f"the conic solver {solver!r} did not solve the program (status {status!r}); "
            "y may not be interpolable with these patterns (use more patterns)"
        )


class _Budget:
    """``max_seconds`` and ``callback`` of :func:`certified_flattest`: checked after each cone solve
    (``stop``); Clarabel's first solve is limited to the time left (``solver``)."""

    def __init__(self, t0, max_seconds, callback, solver):
        if max_seconds is not None and not (
            isinstance(max_seconds, (int, float)) and not isinstance(max_seconds, bool) and 0 < max_seconds < math.inf
        ):
            raise ValueError(f"max_seconds must be a number > 0 or None; got {max_seconds!r}")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable; got {type(callback).__name__}")
        self.t0, self.max_seconds, self.callback, self.name = t0, max_seconds, callback, solver
        self.stopped = None  # "time_budget" or "callback" once the rounds were cut
        self.solved = False

    def check_patterns(self, count):
        spent = time.perf_counter() - self.t0
        if self.max_seconds is not None and spent >= self.max_seconds:
            raise TimeoutError(
                f"certified_flattest: max_seconds = {self.max_seconds:g} spent on the {count} activation patterns "
                f"({spent:.3g} s) before the first cone solve: no valid answer yet (raise max_seconds, "
                "or patterns='sampled' with fewer n_patterns)"
            )

    def stop(self, rounds, objective):
        now = time.perf_counter() - self.t0
        info = {"stage": "pricing" if rounds else "solve", "round": int(rounds), "objective": float(objective)}
        if self.callback is not None and self.callback(dict(info, elapsed=now)):
            self.stopped = "callback"
        elif self.max_seconds is not None and now >= self.max_seconds:
            self.stopped = "time_budget"
        return self.stopped is not None

    def solver(self, solve_any):
        def solve(q, A, b, cones, tol, verbose=False):
            if self.max_seconds is None or self.name != "clarabel" or self.solved:
                return solve_any(q, A, b, cones, tol, verbose)
            left = max(self.max_seconds - (time.perf_counter() - self.t0), 1e-3)
            out = _solve_clarabel(q, A, b, cones, tol, verbose, time_limit=left)
            if out[1] == "MaxTime":
                raise TimeoutError(
                    f"certified_flattest: max_seconds = {self.max_seconds:g} ran out in the first cone solve "
                    f"({A.shape[1]} variables): no valid answer yet (raise max_seconds, or use fewer patterns)"
                )
            self.solved = True
            return out

        return solve


def certified_flattest(
    X,
    y,
    *,
    neg=0.0,
    m=None,
    patterns="auto",
    n_patterns=None,
    warm_start=None,
    solver="clarabel",
    seed=0,
    tol=1e-8,
    max_exact=200000,
    pricing_rounds=None,
    pricing_max_add=None,
    verbose=False,
    max_seconds=None,
    callback=None,
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
    patterns : {"auto", "exact", "sampled"}
        ``"exact"``: every cell of the arrangement (:func:`arrangement_patterns`),
        certificate ``"global"``. ``"sampled"``: sign vectors of ``n_patterns``
        Gaussian directions plus the warm starts' neurons, certificate
        ``"upper_bound"``. ``"auto"``: exact when the cell count is at most
        ``max_exact``.
    n_patterns : int, optional
        Random directions for ``"sampled"`` (default ``max(200, 10 n)``; 0: only the
        warm starts' patterns).
    warm_start : sequence of (W, a), optional
        Networks (e.g. a local search's result) whose neurons' patterns are added
        (in exact mode with pricing: to the first program).
    solver : {"clarabel", "scs", "ecos", "cvxpy"}
        Conic solver: Clarabel's own API (default, fastest here: see
        ``docs/convex.md``), SCS, ECOS, or cvxpy with Clarabel (slow modelling;
        for cross-checks).
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
        ``"clarabel"`` and sampled patterns, else 0; needs ``"clarabel"``).
        Every added cell lowers the optimum or leaves it; ``info["pricing"]``
        has the rounds, the cells added and the largest ratio found in the
        last round (at most ``1 + 1e-6``: no violated candidate was found).
        Exact mode with more than ``2 max(200, 4n)`` cells (default 50 rounds
        with ``"clarabel"``; 0 solves the program over every cell) prices
        every enumerated cell and starts from ``max(200, 4n)`` of them: the
        certificate is then ``"global"`` when no cell is violated, and
        ``info["pricing"]["lower_bound"]`` is a lower bound of the global
        optimum from the dual multipliers (``docs/design.md`` section 11); if
        the rounds run out first, ``"upper_bound"``. With sampled patterns
        ``info["pricing"]["lower_bound_tried"]`` is ``lam.y / max(1, max_ratio)`` from the
        last priced multipliers: a lower bound of the optimum over the cells in that
        program and the candidates priced with it only, not of the global optimum.
    pricing_max_add : int, optional
        Cells added per pricing round with sampled patterns at most (default n), the most
        violated first.
    verbose : bool
        The solver's log.
    max_seconds : float, optional
        Wall-clock budget (> 0; None: none), checked after each cone solve
        (between pricing rounds). When it runs out the rounds stop and the
        last program's optimum, an interpolator, is returned as usual
        (certificate ``"upper_bound"`` unless no violated cell was left;
        ``info["stopped"] == "time_budget"``): a valid answer, never a
        non-interpolator. The enumeration of the cells and the first solve
        are not cut, except that Clarabel's first solve gets the time left
        as its own limit: a budget spent before the first solve ends raises a
        ``TimeoutError`` (no valid answer exists yet). A pricing round's solve
        is not cut, and the final placement of the neurons
        (``info["times"]["polish"]``) runs after the check: the call ends
        within about one round and that placement past the budget.
    callback : callable, optional
        ``callback(info)`` after each cone solve that a pricing round may
        follow (with ``pricing_rounds > 0``), ``info`` a dict with
        ``stage`` (``"solve"`` or ``"pricing"``), ``round``, ``objective``
        (the program's optimum so far, an upper bound) and ``elapsed``
        (seconds); return True to stop the rounds there
        (``info["stopped"] == "callback"``).

    Returns
    -------
    ConvexResult
    """
    t0 = time.perf_counter()
    budget = _Budget(t0, max_seconds, callback, solver)

    X = _check_X(X)
    n, d = X.shape
    y = np.asarray(y)
    if y.dtype.kind not in "fiu":
        raise TypeError(f"y must be a real array; got dtype {y.dtype}")
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (n,):
        raise ValueError(f"y must have shape (n,) = ({n},); got {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or inf")
    try:
        neg = float(neg)
    except (TypeError, ValueError):
        raise TypeError(f"neg must be a number in (-1, 1]; got {neg!r}") from None
    if not -1.0 < neg <= 1.0:
        raise ValueError(f"neg must be in (-1, 1] (leaky ReLU -alpha < 0, ReLU 0, V-shaped between, |z| 1); got {neg}")
    if patterns not in ("auto", "exact", "sampled"):
        raise ValueError(f"patterns must be 'auto', 'exact' or 'sampled'; got {patterns!r}")
    if solver not in _SOLVERS:
        raise ValueError(f"solver must be one of {_SOLVERS}; got {solver!r}")
    if m is not None and (isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1):
        raise ValueError(f"m must be a positive int or None; got {m!r}")
    if not (isinstance(tol, (int, float)) and 0 < tol < 1e-2):
        raise ValueError(f"tol must be a float in (0, 1e-2); got {tol!r}")
    if np.any(np.linalg.norm(X, axis=1) == 0):
        raise ValueError("X has a zero row: a bias-free network outputs 0 there; drop it")
    if pricing_rounds is None:
        pricing_rounds = (50 if patterns == "exact" else 5) if solver == "clarabel" else 0
    if isinstance(pricing_rounds, bool) or not isinstance(pricing_rounds, (int, np.integer)) or pricing_rounds < 0:
        raise ValueError(f"pricing_rounds must be an int >= 0; got {pricing_rounds!r}")
    if pricing_max_add is not None and (
        isinstance(pricing_max_add, bool) or not isinstance(pricing_max_add, (int, np.integer)) or pricing_max_add < 1
    ):
        raise ValueError(f"pricing_max_add must be a positive int or None; got {pricing_max_add!r}")
    if pricing_rounds and solver != "clarabel":
        raise ValueError("pricing_rounds > 0 needs solver='clarabel' (its dual variables)")

    Q = _row_basis(X)
    r = Q.shape[1]
    Xr = X @ Q
    warm_dirs = []
    for k, net in enumerate(warm_start or []):
        try:
            Wk, _ = net
        except (TypeError, ValueError):
            raise TypeError(f"warm_start[{k}] must be a pair (W, a)") from None
        Wk = np.asarray(Wk, dtype=np.float64)
        if Wk.ndim != 2 or Wk.shape[1] != d:
            raise ValueError(f"warm_start[{k}][0] must have shape (m, {d}); got {Wk.shape}")
        warm_dirs.append(Wk @ Q)
    warm_dirs = np.concatenate(warm_dirs) if warm_dirs else None

    times = {}
    exact = patterns == "exact" or (patterns == "auto" and arrangement_cell_count(n, r) <= max_exact)
    if exact:
        signs, touch, inner = _enumerate_cells(Xr)
        if signs.shape[0] != arrangement_cell_count(n, r):
            raise ValueError(
                f"enumerated {signs.shape[0]} cells, expected {arrangement_cell_count(n, r)}: X is "
                "not in general position; use patterns='sampled'"
            )
        rows = [np.nonzero(tmask)[0] for tmask in touch]
        if r == 1:
            rows = [np.arange(n)] * signs.shape[0]
    else:
        if n_patterns is None:
            n_patterns = max(200, 10 * n)
        if isinstance(n_patterns, bool) or not isinstance(n_patterns, (int, np.integer)) or n_patterns < 0:
            raise ValueError(f"n_patterns must be an int >= 0; got {n_patterns!r}")
        if n_patterns == 0 and warm_dirs is None:
            raise ValueError("n_patterns = 0 needs warm_start networks (their patterns are the only cells)")
        signs, inner = _sampled_patterns(Xr, int(n_patterns), np.random.default_rng(seed), warm_dirs)
        if neg == 1.0:  # |z|: P and -P are one cell (_groups keeps the one with sg[0] > 0)
            flip = signs[:, 0] < 0
            signs[flip], inner[flip] = -signs[flip], -inner[flip]
            _, first = np.unique(np.packbits(signs > 0, axis=1), axis=0, return_index=True)
            signs, inner = signs[np.sort(first)], inner[np.sort(first)]
        rows = [np.arange(n)] * signs.shape[0]
    pats = _Patterns(signs, rows, inner, exact)
    times["patterns"] = time.perf_counter() - t0
    budget.check_patterns(signs.shape[0])

    t1 = time.perf_counter()
    solve = budget.solver(
        {"clarabel": _solve_clarabel, "scs": _solve_scs, "ecos": _solve_ecos, "cvxpy": _solve_cvxpy}[solver]
    )
    nv = r + 1
    pricing = {"rounds": 0, "added": 0, "max_ratio": None}
    rng_p = np.random.default_rng([seed, 1])
    certificate = "global" if exact else "upper_bound"
    if exact and pricing_rounds and pats.signs.shape[0] > 2 * max(200, 4 * n):
        # every cell priced, few in the program (docs/convex.md section 3)
        times["assemble"] = 0.0
        pats, x, status, obj, z, pricing, groups, kappa, Ls, A = _exact_by_pricing(
            Xr, y, neg, pats, solve, solver, tol, pricing_rounds, rng_p, verbose, warm_dirs, stop=budget.stop
        )
        if pricing["max_ratio"] > 1.0 + 1e-6:
            certificate = "upper_bound"  # rounds exhausted: bound and lower_bound bracket the optimum
    else:
        groups, kappa, Ls = _groups(Xr, pats, neg)
        if not groups:
            raise ValueError("no pattern has an output (all-negative ReLU patterns only)")
        qv, A, b, cones = _socp_blocks(Xr, y, pats, neg, groups, kappa, Ls)
        times["assemble"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        x, status, obj, z = solve(qv, A, b, cones, tol, verbose)
        _check_status(solver, status, x)
    # column generation (sampled patterns): add the cells whose dual constraint the
    # optimum's multipliers violate, re-solve, until none is found
    xn = np.linalg.norm(Xr, axis=1)
    for _ in range(0 if exact else pricing_rounds):
        if budget.stop(pricing["rounds"], obj):
            break
        lam = -z[:n] / xn  # multipliers of sum g D_P X u = y (rows were scaled by 1/||x_j||)
        new, inner_new, vmax = _price(
            Xr, lam, neg, pats.signs, x.reshape(-1, nv)[:, :r], rng_p, max_add=pricing_max_add
        )
        pricing["max_ratio"] = vmax
        pricing["lower_bound_tried"] = float(lam @ y) / max(1.0, vmax)
        if not len(new):
            break
        pats = _Patterns(
            np.concatenate([pats.signs, new]),
            [np.arange(n)] * (len(pats.rows) + len(new)),
            np.concatenate([pats.inner, inner_new]),
            False,
        )
        groups, kappa, Ls = _groups(Xr, pats, neg)
        qv, A, b, cones = _socp_blocks(Xr, y, pats, neg, groups, kappa, Ls)
        x, status, obj, z = solve(qv, A, b, cones, tol, verbose)
        _check_status(solver, status, x)
        pricing["rounds"] += 1
        pricing["added"] += len(new)
    signs = pats.signs
    times["solve"] = time.perf_counter() - t1
    contrib = kappa * np.maximum(x.reshape(-1, nv)[:, r], 0.0)
    bound = float(np.sum(contrib))
    sizes = {"variables": A.shape[1], "rows": A.shape[0], "nnz": A.nnz, "groups": len(groups)}

    # The optimum usually has samples exactly on kinks (cone constraints active), where
    # the trace's convention (sigma'(0) = 0) differs from its limit: move it strictly
    # inside its cells (_interior_network, docs/convex.md).
    t1 = time.perf_counter()
    rtol_i = 1e-9  # the returned network: max|r| <= 1e-9 max(1, max|y|)
    # Re-solve on the groups that matter, more accurately (a small program): the
    # solver's residual becomes the correction neurons' size, i.e. value - bound.
    U2, contrib2, g2idx = x.reshape(-1, nv)[:, :r], contrib, np.arange(len(groups))
    keep = np.sort(np.argsort(-contrib)[: min(len(groups), max(4 * n, 60))])
    if keep.size < len(groups):
        q2, A2, b2, c2 = _socp_blocks(Xr, y, pats, neg, [groups[i] for i in keep], kappa[keep], [Ls[i] for i in keep])
        x2, st2, _, _ = solve(q2, A2, b2, c2, min(tol, 1e-11), verbose)
        if x2 is not None and np.all(np.isfinite(x2)) and st2.lower() in ("solved", "optimal", "almostsolved"):
            c2v = kappa[keep] * np.maximum(x2.reshape(-1, nv)[:, r], 0.0)
            # the main solve meets its equalities only to ~1e-6 (Clarabel's feasibility test is
            # relative to ||x||): its objective can sit a little below the refined one
            if float(np.sum(c2v)) <= bound * (1 + 1e3 * tol):
                U2, contrib2, g2idx = x2.reshape(-1, nv)[:, :r], c2v, keep
    g2 = [groups[i] for i in g2idx]
    V, act_groups, theta, k_opt = _interior_network(Xr, y, pats, g2, U2, contrib2, neg, rtol_i)
    W = V @ Q.T
    a = np.array([g for _, g in act_groups])
    W, a = balance(W, a, X, y, neg=neg)
    W, a = np.asarray(W), np.asarray(a)
    k_act = W.shape[0]
    if m is not None:
        if k_act > m:
            raise ValueError(
                f"the flattest interpolator found needs {k_act} neurons but m = {m}; its trace "
                f"{bound:.6g} is a lower bound of the width-{m} optimum (use m >= {k_act}, or "
                "m=None)"
            )
        W = np.vstack([W, np.zeros((m - k_act, d))])
        a = np.concatenate([a, np.zeros(m - k_act)])
    res = forward(W, a, X, neg=neg) - y
    max_res = float(np.max(np.abs(res)))
    if max_res > rtol_i * max(1.0, float(np.max(np.abs(y)))):
        raise RuntimeError(f"the polished network does not interpolate: max|r| = {max_res:.3g}")
    value = float(orbit_min_trace(W, a, X, y, neg=neg))
    times["polish"] = time.perf_counter() - t1
    # value - bound: the interior mix (O(theta)) and the solver's accuracy (its cone and
    # equality residuals, ~1e-6 relative, become the correction neurons). Below the bound
    # would contradict the certificate: an error. Far above it: the network is still an
    # exact in-cell interpolator, the bound still holds; say so.
    slack = max(1e4 * tol, 1e-4) + 1e3 * theta
    if value < bound * (1 - slack):
        raise RuntimeError(
            f"orbit_min_trace of the network ({value:.10g}) is below the cone program's optimum "
            f"({bound:.10g}) by more than {slack:.1g} (relative): the solve is not accurate"
        )
    if value > bound * (1 + slack):
        warnings.warn(
            f"the network's orbit_min_trace ({value:.10g}) exceeds the certified optimum ({bound:.10g}) "
            f"by {value / bound - 1:.2g} (relative; the solver's accuracy on this program)",
            RuntimeWarning,
            stacklevel=2,
        )
    info = {
        "times": times,
        **sizes,
        "theta": theta,
        "optimum_neurons": k_opt,
        "solver_objective": obj,
        "rank": r,
        "pricing": pricing,
        "stopped": budget.stopped,
    }
    return ConvexResult(
        W=W,
        a=a,
        value=value,
        bound=bound,
        certificate=certificate,
        n_patterns=int(signs.shape[0]),
        active_neurons=k_act,
        solver=solver,
        status=status,
        seconds=time.perf_counter() - t0,
        max_residual=max_res,
        info=info,
    )
