"""The network of the optimum: exact, strictly inside its cells, balanced, padded.

The solver's optimum has samples on kinks and groups at its tolerance instead of 0:
:func:`_refined` re-solves the groups that matter more accurately,
:func:`_interior_network` moves the neurons strictly inside their cells while
interpolating exactly, :func:`_final_network` balances, pads and checks the result.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import linprog, lsq_linear

from ..curvature import forward
from ..symmetry import balance, orbit_min_trace
from .cells import _interior_direction
from .constants import INTERP_RTOL, IPM_MARGIN_EPS, RANGE_RTOL, REFINE_TOL, SOLVED_STATUSES, refine_groups
from .program import _contributions, _socp_blocks


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
    columns; the values are then solved for exactly on that support. None at once,
    without the LP, where F has fewer columns than rows and the target is not in its
    range (least squares misses it by more than :data:`RANGE_RTOL`): HiGHS can take
    minutes to prove such an LP infeasible.
    """

    n, K = F.shape
    tn = float(np.max(np.abs(target)))
    b = target / tn
    if K < n:  # then F's range is a proper subspace: a generic target misses it
        ls, *_ = np.linalg.lstsq(F, b, rcond=None)
        if float(np.linalg.norm(F @ ls - b)) > RANGE_RTOL * math.sqrt(n):
            return None
    res = linprog(np.concatenate([cost, cost]), A_eq=np.hstack([F, -F]), b_eq=b, bounds=(0, None), method="highs-ds")
    if res.status != 0:
        return None
    beta = (res.x[:K] - res.x[K:]) * tn
    sup = np.nonzero(np.abs(beta) > 1e-12 * np.max(np.abs(beta)))[0]
    exact, *_ = np.linalg.lstsq(F[:, sup], target, rcond=None)
    if np.all(np.sign(exact) == np.sign(beta[sup])) and cost[sup] @ np.abs(exact) <= 1.01 * (cost @ np.abs(beta)):
        beta = np.zeros(K)
        beta[sup] = exact
    return beta


def _feat(pats, P, c):
    """The output factor of pattern P per sample: 1 on its positive side, -c on its negative side."""
    return np.where(pats.signs[P] > 0, 1.0, -c)


def _outputs(Xr, pats, c, gs, us):
    """The outputs (n, k) of the neurons us (k, r) in the groups gs (pattern, sign)."""
    return np.stack([g * _feat(pats, P, c) * (Xr @ u) for (P, g), u in zip(gs, us)], axis=1)


def _kept_neurons(Xr, y, pats, groups, U, contrib, neg):
    """Steps 1 and 2 of :func:`_interior_network`: the groups worth keeping, on their closed
    cells, rescaled to the outputs, at most about n of them. Returns (groups, U (k, r))."""
    n = Xr.shape[0]
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
    # 2a. alpha correction over all kept groups (many columns: tiny, positive changes)
    Fq = _outputs(Xr, pats, c, [groups[i] for i in act], Ustar)
    Ustar = Ustar * _alpha_fix(Fq, y)[:, None]
    # 2b. LP vertex: at most n neurons, same outputs, trace not larger
    act, Ustar = _fewer_neurons(Xr, y, pats, groups, act, Ustar, contrib, neg)
    act_groups = [groups[i] for i in act]
    Ustar = Ustar * _alpha_fix(_outputs(Xr, pats, c, act_groups, Ustar), y)[:, None]
    return act_groups, Ustar


def _centre_thin_cells(Xr, pats, groups, contrib, P_act):
    """A sampled cell's interior direction is the random direction that found it, which
    can sit ~1e-10 from a facet: too thin for the mix of step 3; centre those by an LP
    (``pats.inner`` updated in place)."""
    n = Xr.shape[0]
    xn = np.linalg.norm(Xr, axis=1)
    for P in set(P_act) | {groups[i][0] for i in np.argsort(-contrib)[: 10 * n]}:
        margin = float(np.min(pats.signs[P] * (Xr @ pats.inner[P]) / xn))
        if margin < 1e-6:
            u = _interior_direction(Xr, pats.signs[P])
            if u is not None and float(np.min(pats.signs[P] * (Xr @ u) / xn)) > margin:
                pats.inner[P] = u


def _correction_columns(Xr, pats, groups, contrib, P_act, neg):
    """Candidate correction neurons beta_P d for step 4 of :func:`_interior_network`.

    Candidate cells: the active ones first, then the solver's ranking, at most
    max(3n, active); r + 1 directions strictly inside each (inner_P and inner_P +
    m_P e_k / 2, m_P its margin), so that the correction can reach the cell's whole
    output space. Returns (cells C, directions Dir, outputs F (n, K), trace per unit unit_cost).
    """
    n, r = Xr.shape
    c = float(neg)
    xn = np.linalg.norm(Xr, axis=1)
    order = np.argsort(-contrib)
    cand, seen = [], set()
    for P in P_act + [groups[i][0] for i in order[: 10 * n]]:
        if P not in seen:
            seen.add(P)
            cand.append(P)
    C0 = np.array(cand[: max(3 * n, len(P_act))])
    inn = pats.inner[C0]
    mP = np.min((inn @ Xr.T) * pats.signs[C0] / xn[None, :], axis=1)
    dirs = [inn] + [inn + 0.5 * mP[:, None] * np.eye(r)[k][None, :] for k in range(r)]
    Dir = np.concatenate(dirs)
    C = np.tile(C0, r + 1)
    F = np.where(pats.signs[C] > 0, 1.0, -c).T * (Xr @ Dir.T)  # (n, K(r+1))
    wgt = np.where(pats.signs[C] > 0, 1.0, c * c)
    Z = Dir @ Xr.T
    unit_cost = 2.0 / n * np.sqrt(wgt @ (xn * xn)) * np.sqrt(np.sum(wgt * Z * Z, axis=1))
    return C, Dir, F, unit_cost


def _with_corrections(V, act_groups, index0, C, Dir, beta):
    """The neurons V (groups act_groups) plus the correction neurons |beta_k| Dir_k in cell C_k
    (added to the neuron of the same group where there is one). Returns (neurons, groups)."""
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
    return np.array(Vs), Gs


def _place(Xr, y, pats, neg, act_groups, Ustar, Vin, cols, rtol):
    """Steps 3 and 4 of :func:`_interior_network`: the smallest theta that places every neuron
    strictly inside its cell with the outputs fitted exactly."""
    c = float(neg)
    xn = np.linalg.norm(Xr, axis=1)
    C, Dir, F, unit_cost = cols
    scale = max(1.0, float(np.max(np.abs(y))))
    Phi = np.concatenate([g * _feat(pats, P, c)[:, None] * Xr for P, g in act_groups], axis=1)
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
        Vs, Gs = _with_corrections(V, act_groups, index0, C, Dir, beta)
        sgs = pats.signs[[P for P, _ in Gs]]
        if not np.all((Vs @ Xr.T) * sgs > 1e-13 * np.linalg.norm(Vs, axis=1)[:, None] * xn[None, :]):
            continue
        f = sum(g * _feat(pats, P, c) * (Xr @ w) for (P, g), w in zip(Gs, Vs))
        if np.max(np.abs(f - y)) <= rtol * scale:
            return Vs, Gs, theta, len(act_groups)
    raise RuntimeError(
        "could not place the optimum's neurons strictly inside their cells while interpolating "
        "(the solver's solution may be inaccurate: try a smaller tol)"
    )


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
    act_groups, Ustar = _kept_neurons(Xr, y, pats, groups, U, contrib, neg)
    P_act = [P for P, _ in act_groups]
    _centre_thin_cells(Xr, pats, groups, contrib, P_act)
    Vin = np.linalg.norm(Ustar, axis=1)[:, None] * pats.inner[P_act]
    cols = _correction_columns(Xr, pats, groups, contrib, P_act, neg)
    return _place(Xr, y, pats, neg, act_groups, Ustar, Vin, cols, rtol)


def _interior_solution(Xr, y, sol, contrib, neg, rtol, m=None):
    """The network of an interior-point solution whose neurons are strictly inside their cells.

    The back end ``"ipm"`` returns an iterate of a primal-dual method, strictly inside every
    cone: each group's u is then strictly inside its cell (every sample off its hyperplane),
    its neuron's trace is the group's part of the objective, and no in-cell construction is
    needed. Groups below 1e-9 of the optimum that are not strictly inside are dropped (near 0
    their direction is the method's rounding); if more than ``m`` remain, at most n are kept by
    the LP of :func:`_fewer_neurons` (same outputs, trace not larger); then they are moved by
    the least change that fits y exactly at their patterns (:func:`_exact_fit`). Returns
    (V (k, r), groups) or None when a larger group has a sample within ``IPM_MARGIN_EPS r eps`` of
    its kink or across it, the fit moves a sample across a kink, or misses
    ``1e-2 rtol max(1, max|y|)`` (the construction meets the outputs to rounding; the search
    asks 1e-10 by default).
    """
    r = Xr.shape[1]
    U = sol.x.reshape(-1, r + 1)[:, :r]
    total = float(np.sum(contrib))
    act = np.nonzero(contrib > 0)[0]
    xn = np.linalg.norm(Xr, axis=1)
    signs = sol.patterns.signs[[sol.groups[i][0] for i in act]]
    Ua = U[act]
    margin = np.min(signs * (Ua @ Xr.T) / xn, axis=1) / np.maximum(np.linalg.norm(Ua, axis=1), 1e-300)
    inside = margin > IPM_MARGIN_EPS * r * np.finfo(np.float64).eps
    if np.any(~inside & (contrib[act] > 1e-9 * total)):
        return None
    act, Ua = act[inside], Ua[inside]
    if m is not None and act.size > m:  # the LP meets the outputs to ~1e-7 only: when needed
        act, Ua = _fewer_neurons(Xr, y, sol.patterns, sol.groups, act, Ua, contrib, neg)
    for _ in range(10):  # the fit may move a tiny group's sample across its kink: drop it, fit again
        groups = [sol.groups[i] for i in act]
        Uf = _exact_fit(Xr, y, sol.patterns, float(neg), groups, Ua, contrib[act])
        crossed = np.any(sol.patterns.signs[[P for P, _ in groups]] * (Uf @ Xr.T) <= 0, axis=1)
        if not np.any(crossed):
            break
        if np.any(crossed & (contrib[act] > 1e-9 * total)):
            return None
        act, Ua = act[~crossed], Ua[~crossed]
    else:
        return None
    Ua = Uf
    F = _outputs(Xr, sol.patterns, float(neg), groups, Ua)
    if np.max(np.abs(F.sum(axis=1) - y)) > 1e-2 * rtol * max(1.0, float(np.max(np.abs(y)))):
        return None  # the in-cell construction meets the outputs to rounding: use it instead
    return Ua, groups


def _exact_fit(Xr, y, pats, c, groups, U, contrib, steps=3):
    """U + dU fitting y exactly at the cells' patterns (what dropped groups and the method's
    residual left, ~1e-9): the least change of the groups above 1e-6 of the optimum that keeps
    the pre-activation of every sample within 1e-6 of its kink (relative) unchanged -- the
    optimum puts samples on kinks, at margins ~1e-12 that any other change would cross. The
    outputs are sum_q e_q * (Xr u_q), so with P_q the projector onto the null space of the
    group's near-kink samples the normal matrix is sum_q D_q Xr P_q Xr^T D_q (n x n)."""
    xn = np.linalg.norm(Xr, axis=1)
    big = np.nonzero(contrib > 1e-6 * float(np.sum(contrib)))[0]
    n, r = Xr.shape
    E = np.stack([groups[i][1] * _feat(pats, groups[i][0], c) for i in big])  # (k, n)
    Ps = []
    K = np.zeros((n, n))
    for e, i in zip(E, big):
        rel = np.abs(Xr @ U[i]) / (xn * max(float(np.linalg.norm(U[i])), 1e-300))
        near = Xr[rel < 1e-6]
        P = np.eye(r)
        if near.shape[0]:
            _, sv, Vt = np.linalg.svd(near, full_matrices=True)
            rank = int(np.sum(sv > 1e-12 * sv[0]))
            P = Vt[rank:].T @ Vt[rank:]
        Ps.append(P)
        B = e[:, None] * (Xr @ P)
        K += B @ Xr.T * e[None, :]
    K[np.diag_indices_from(K)] += 1e-14 * max(float(np.trace(K)) / n, 1e-300)
    try:
        cf = cho_factor(K)
    except np.linalg.LinAlgError:
        return U
    U = U.copy()
    for _ in range(steps):
        res = y - _outputs(Xr, pats, c, groups, U).sum(axis=1)
        lam = cho_solve(cf, res)
        for e, i, P in zip(E, big, Ps):
            U[i] += P @ (Xr.T @ (e * lam))
    return U


def _refined(Xr, y, sol, contrib, neg, solve, tol, verbose):
    """The optimum re-solved on the groups that matter, more accurately (a small program):
    the solver's residual becomes the correction neurons' size, i.e. value - bound.

    Returns (U (k, r), contributions (k,), groups) of the re-solve, or of ``sol`` when the
    re-solve fails or ends above the main solve's bound.
    """
    n, r = Xr.shape
    nv = r + 1
    groups, kappa, Ls = sol.groups, sol.kappa, sol.factors
    bound = float(np.sum(contrib))
    U2, contrib2, g2idx = sol.x.reshape(-1, nv)[:, :r], contrib, np.arange(len(groups))
    keep = np.sort(np.argsort(-contrib)[: min(len(groups), refine_groups(n))])
    if keep.size < len(groups):
        sub = ([groups[i] for i in keep], kappa[keep], [Ls[i] for i in keep])
        q2, A2, b2, c2 = _socp_blocks(Xr, y, sol.patterns, neg, *sub)
        x2, st2, _, _ = solve(q2, A2, b2, c2, min(tol, REFINE_TOL), verbose)
        if x2 is not None and np.all(np.isfinite(x2)) and st2.lower() in SOLVED_STATUSES:
            c2v = _contributions(kappa[keep], x2, r)
            # the main solve meets its equalities only to ~1e-6 (Clarabel's feasibility test is
            # relative to ||x||): its objective can sit a little below the refined one
            if float(np.sum(c2v)) <= bound * (1 + 1e3 * tol):
                U2, contrib2, g2idx = x2.reshape(-1, nv)[:, :r], c2v, keep
    return U2, contrib2, [groups[i] for i in g2idx]


def _final_network(V, act_groups, Q, X, y, neg, m, bound):
    """The placed neurons in input coordinates, balanced, padded to width m and checked.

    Returns (W, a, neurons before padding, max|r|, orbit_min_trace of (W, a)).
    """
    d = X.shape[1]
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
    if max_res > INTERP_RTOL * max(1.0, float(np.max(np.abs(y)))):
        raise RuntimeError(f"the polished network does not interpolate: max|r| = {max_res:.3g}")
    return W, a, k_act, max_res, float(orbit_min_trace(W, a, X, y, neg=neg))


def _check_value(value, bound, tol, theta):
    """value - bound: the interior mix (O(theta)) and the solver's accuracy (its cone and
    equality residuals, ~1e-6 relative, become the correction neurons). Below the bound
    would contradict the certificate: an error. Far above it: the network is still an
    exact in-cell interpolator, the bound still holds; a RuntimeWarning says so."""
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
            stacklevel=3,  # the caller of certified_flattest
        )
