"""Dual ratios of cells: how much a cell's group would lower the cone program's optimum.

For the equality multipliers lam of a solved program, a cell's dual ratio
``max_{u in cell, g} g lam.f_P(u) / (kappa_P ||M_P u||)`` above 1 means its group
would lower the optimum (``docs/convex.md`` section 3, ``docs/design.md`` section 11).
In tiers (:func:`_tiered_ratios`): a cheap upper bound for every cell
(:func:`_ratio_bounds`), exact in-cell maxima by NNLS on the pricing problem's dual
(:func:`_cell_ratio_dual`) or, where that does not apply, a cone program
(:func:`_cell_max_ratio`).
"""

from __future__ import annotations

import math

import clarabel
import numpy as np
import scipy.sparse as sp
from scipy.optimize import nnls

from .constants import EIG_RTOL


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
        keep = ev > EIG_RTOL * max(ev[-1], 1e-300)
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
        keep = ev > EIG_RTOL * np.maximum(ev[:, -1:], 1e-300)
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
