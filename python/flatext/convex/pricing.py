"""Pricing rounds (column generation): cells whose dual constraint the optimum violates join the program.

Over every enumerated cell (:func:`_exact_by_pricing`: a global certificate and a
lower bound) or over sampled candidates (:func:`_sampled_pricing`); :func:`_optimum`
picks the one that applies. The ratios themselves: :mod:`flatext.convex.ratios`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .cells import _interior_direction, _Patterns
from .constants import (
    FIRST_PROGRAM_RETRIES,
    KINK_RTOL,
    PRICE_THRESHOLD,
    PRICING_DROP_MIN_N,
    PRICING_DROP_SHARE,
    SAMPLED_STATUSES,
    start_cells,
)
from .program import _check_status, _contributions, _solve_over, _solve_program
from .ratios import _dual_ratio, _exact_ratios, _ratio_bounds, _tiered_ratios


def _price(Xr, lam, neg, signs, seeds, rng, n_dirs=20000, n_cells=400, threshold=PRICE_THRESHOLD, max_add=None):
    """Cells not in ``signs`` whose dual constraint ``lam`` violates (the pricing step).

    Candidates: the facet neighbours of the optimum's cells (``seeds``: its groups'
    u, the largest part of the optimum first; the sign of each of the 2r samples
    nearest to a seed's hyperplane flipped, since the optimum's neurons sit on
    kinks), then the cells of random Gaussian directions ranked by the ratio
    there; the first ``n_cells`` new ones are priced (:func:`_tiered_ratios`:
    exact where they may be violated); at most
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
    ok = np.all(np.abs(Z) > KINK_RTOL * np.linalg.norm(U, axis=1, keepdims=True) * xn[None, :], axis=1)
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


def _first_program_cells(Xr, pats, neg, rng, warm_dirs):
    """Which cells can join the program (``live``, their indices ``cand``) and the first program's cells.

    The first program: ``start_cells(n)`` random live cells and the cells of ``warm_dirs``.
    """
    n = Xr.shape[0]
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
    in_prog[rng.choice(cand, min(cand.size, start_cells(n)), replace=False)] = True
    if warm_dirs is not None and len(warm_dirs):
        index = {row.tobytes(): i for i, row in enumerate(np.packbits(pats.signs > 0, axis=1))}
        Z = warm_dirs @ Xr.T
        S = np.where(Z > 0, 1, -1).astype(np.int8)
        if c == 1.0:
            S[S[:, 0] < 0] *= -1
        tiny = KINK_RTOL * np.linalg.norm(warm_dirs, axis=1, keepdims=True) * xn[None, :]
        on_kink = np.any(np.abs(Z) <= tiny, axis=1)
        for row in np.packbits(S[~on_kink] > 0, axis=1):
            i = index.get(row.tobytes())
            if i is not None and live[i]:
                in_prog[i] = True
    return live, cand, in_prog


def _priced(Xr, lam, neg, pats, idx, pricing):
    """Exact in-cell maxima (both output signs) of the cells ``idx``, counted in ``pricing``."""
    pricing["priced_exactly"] += idx.size
    return _exact_ratios(Xr, lam, neg, pats.signs[idx], [pats.rows[i] for i in idx])


def _certify(Xr, y, lam, neg, pats, in_prog, live, bounds, ratio, pricing):
    """``max_ratio`` and ``lower_bound`` of ``pricing`` once the rounds end.

    The certificate also needs the program's own cells (dual feasible to the solver's
    accuracy): their exact ratios where the bound exceeds 1. ``bounds = (ub, tight)``.
    """
    ub, tight = bounds
    mine = np.nonzero(in_prog & (ub > 1.0) & ~tight)[0]
    if mine.size:
        ratio[mine] = _priced(Xr, lam, neg, pats, mine, pricing)
    ratio = np.where(np.isnan(ratio), ub, ratio)  # never priced: the bound (<= thr)
    rho = float(ratio[live].max(initial=0.0))
    pricing["max_ratio"] = rho
    pricing["lower_bound"] = float(lam @ y) / max(1.0, rho)


def _exact_by_pricing(
    Xr, y, neg, pats, solve, solver, tol, rounds, rng, verbose, warm_dirs=None, thr=PRICE_THRESHOLD, stop=None
):
    """The cone program over every enumerated cell, solved by column generation.

    Starts from ``start_cells(n) = max(200, 4n)`` random cells and those of ``warm_dirs``
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
    Returns the last program's :class:`_Solution` (its ``patterns`` the cells in it).
    """
    n = Xr.shape[0]
    xn = np.linalg.norm(Xr, axis=1)
    live, cand, in_prog = _first_program_cells(Xr, pats, neg, rng, warm_dirs)
    pricing = {"rounds": 0, "added": 0, "max_ratio": None, "priced_exactly": 0, "lower_bound": None}
    retries = FIRST_PROGRAM_RETRIES  # a first program that cannot interpolate y gets more random cells
    while True:
        sel = np.nonzero(in_prog)[0]
        sub = _Patterns(pats.signs[sel], [pats.rows[i] for i in sel], pats.inner[sel], True)
        sol = _solve_over(Xr, y, sub, neg, solve, tol, verbose, pricing)
        try:
            _check_status(solver, sol.status, sol.x)
        except RuntimeError:
            rest = cand[~in_prog[cand]]
            if pricing["rounds"] > 0 or retries == 0 or not rest.size:
                raise
            retries -= 1
            in_prog[rng.choice(rest, min(rest.size, start_cells(n)), replace=False)] = True
            continue
        lam = -sol.z[:n] / xn  # multipliers of sum g D_P X u = y (rows were scaled by 1/||x_j||)
        ub, tight = _ratio_bounds(Xr, lam, neg, pats.signs)
        ub[~live] = 0.0
        ratio = np.where(tight, ub, np.nan)  # the cells' ratios where known
        # cells outside the program: exact ratios where the bound may be violated, best first
        out = np.nonzero(~in_prog & (ub > thr))[0]
        need = out[~tight[out]]
        if need.size:
            need = need[np.argsort(-ub[need])]
            ratio[need] = _priced(Xr, lam, neg, pats, need, pricing)
        viol = out[ratio[out] > thr]
        done = viol.size == 0 or pricing["rounds"] >= rounds  # stop() is called only when rounds may follow
        if done or (stop is not None and stop(pricing["rounds"], sol.objective)):
            _certify(Xr, y, lam, neg, pats, in_prog, live, (ub, tight), ratio, pricing)
            return sol
        viol = viol[np.argsort(-ratio[viol])][: 2 * n]
        in_prog[viol] = True
        pricing["rounds"] += 1
        pricing["added"] += int(viol.size)


def _kept_cells(sol, contrib, dropped):
    """Which cells of ``sol``'s program stay for the next solve, and their packed sign keys: all but
    the least ones that together carry at most :data:`PRICING_DROP_SHARE` of its optimum
    (``contrib``: per group), and any that was dropped before (``dropped``, keys: it came back as
    a candidate; each cell leaves at most once, so no cycles). Over at most
    :data:`PRICING_DROP_MIN_N` samples every cell stays."""
    keys = [row.tobytes() for row in np.packbits(sol.patterns.signs > 0, axis=1)]
    if len(sol.patterns.signs[0]) <= PRICING_DROP_MIN_N:
        return np.ones(len(keys), dtype=bool), keys
    per_cell = np.zeros(len(keys))
    np.add.at(per_cell, np.array([P for P, _ in sol.groups], dtype=np.intp), contrib)
    order = np.argsort(per_cell, kind="stable")
    tail = np.zeros(per_cell.size, dtype=bool)
    tail[order] = np.cumsum(per_cell[order]) <= PRICING_DROP_SHARE * float(contrib.sum())
    back = np.array([k in dropped for k in keys], dtype=bool)
    return ~tail | back, keys


def _sampled_pricing(Xr, y, neg, sol, solve, solver, tol, verbose, rounds, max_add, max_columns, rtol, rng, stop):
    """Column generation with sampled patterns: the cells whose dual constraint the optimum's
    multipliers violate (:func:`_price`) join the program, the cells of its tail leave it
    (:func:`_kept_cells`), and it is solved again, until no violated candidate is found,
    ``rounds`` times at most, until ``stop(rounds, objective)``, until no new cell fits in
    ``max_columns`` columns (two groups of r + 1 per cell), until a round lowers the optimum by
    less than ``rtol`` times it (``pricing["small_gain"]``) or until a round's solve fails
    (``pricing["failed"]`` says which round and the solver's status).

    Every solution is priced, the last one too. Returns every program's :class:`_Solution`, the
    least optimum first (dropping cells can raise it by their small share), each with the
    ``max_ratio`` and ``lower_bound_tried`` of its own multipliers in its ``pricing``.
    """
    if rounds == 0:
        return [sol]
    n, r = Xr.shape
    xn = np.linalg.norm(Xr, axis=1)
    pricing = sol.pricing
    tried = []  # (solution, largest ratio priced, lower bound over the cells tried)
    dropped = set()  # packed sign keys of the cells that left the program
    while True:
        last = pricing["rounds"] >= rounds or pricing.get("small_gain") or stop(pricing["rounds"], sol.objective)
        lam = -sol.z[:n] / xn  # multipliers of sum g D_P X u = y (rows were scaled by 1/||x_j||)
        pats = sol.patterns
        contrib = _contributions(sol.kappa, sol.x, r)
        order = np.argsort(-contrib, kind="stable")  # the neighbours of the largest groups first
        seeds = sol.x.reshape(-1, r + 1)[order, :r]
        new, inner_new, vmax = _price(Xr, lam, neg, pats.signs, seeds, rng, max_add=max_add)
        tried.append((sol, vmax, float(lam @ y) / max(1.0, vmax)))
        if last or not len(new):
            break
        keep, keys = _kept_cells(sol, contrib, dropped)
        if max_columns is not None:  # two groups of r + 1 columns per cell
            fit = max(max_columns // (2 * (r + 1)) - int(keep.sum()), 0)
            new, inner_new = new[:fit], inner_new[:fit]
            if not len(new):
                pricing["column_limit"] = True
                break
        dropped.update(k for k, kept in zip(keys, keep) if not kept)
        pats = _Patterns(
            np.concatenate([pats.signs[keep], new]),
            [np.arange(n)] * (int(keep.sum()) + len(new)),
            np.concatenate([pats.inner[keep], inner_new]),
            False,
        )
        nxt = _solve_over(Xr, y, pats, neg, solve, tol, verbose, pricing)
        try:
            _check_status(solver, nxt.status, nxt.x, SAMPLED_STATUSES)
        except RuntimeError:  # the programs solved so far stand; the rounds end, saying why
            pricing["failed"] = f"round {pricing['rounds'] + 1}: solver {solver!r} status {nxt.status!r}"
            break
        if rtol is not None and sol.objective - nxt.objective < rtol * abs(sol.objective):
            pricing["small_gain"] = True
        sol = nxt
        pricing["rounds"] += 1
        pricing["added"] += len(new)
        pricing["dropped"] += int(keep.size - keep.sum())
    return [  # stable sort: the earlier program first on a tie
        replace(s, pricing=dict(pricing, max_ratio=v, lower_bound_tried=lb, program=k))
        for k, (s, v, lb) in sorted(enumerate(tried), key=lambda e: e[1][0].objective)
    ]


def _optimum(Xr, y, neg, pats, solve, solver, tol, verbose, rounds, limits, rng, warm_dirs, stop, times):
    """The cone program's optimum over the candidate cells, with the pricing rounds that apply.

    Exact mode with more than ``2 start_cells(n)`` cells and ``rounds > 0``: every cell
    priced, few in the program (:func:`_exact_by_pricing`; ``docs/convex.md`` section 3).
    Otherwise the program over every candidate, then (sampled patterns) :func:`_sampled_pricing`
    (``limits``: its cells added per round and columns per program at most, and ``rtol``, or None).
    Returns (the solutions, the least optimum first: one but with sampled pricing, certificate
    ``"global"`` or ``"upper_bound"``).
    """
    if pats.exact and rounds and pats.signs.shape[0] > 2 * start_cells(Xr.shape[0]):
        times["assemble"] = 0.0
        sol = _exact_by_pricing(Xr, y, neg, pats, solve, solver, tol, rounds, rng, verbose, warm_dirs, stop=stop)
        # rounds exhausted: bound and lower_bound bracket the optimum
        return [sol], "upper_bound" if sol.pricing["max_ratio"] > PRICE_THRESHOLD else "global"
    if pats.exact:
        return [_solve_program(Xr, y, pats, neg, solve, solver, tol, verbose, times)], "global"
    sol = _solve_program(Xr, y, pats, neg, solve, solver, tol, verbose, times, SAMPLED_STATUSES)
    return _sampled_pricing(Xr, y, neg, sol, solve, solver, tol, verbose, rounds, *limits, rng, stop), "upper_bound"
