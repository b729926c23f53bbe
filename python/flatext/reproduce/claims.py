"""The paper's claims as checks on the computed rows, each able to fail.

Every check returns :class:`Check` records: what was checked, on how many
seeds, whether it held, and what would have failed it. Thresholds come from the
claim itself (an inequality) and from the computation's own resolution
(round-off, the search's stopping tolerance, the spread of its starts), never
from what the current numbers happen to give.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

from .methods import MEMORIZERS, REFERENCE, SEARCH, competitors_of
from .problems import RESIDUAL_TOL, Row, interpolates

__all__ = [
    "Check",
    "check_claim1",
    "check_claim2",
    "check_claim3",
    "check_claim4",
    "check_claim5",
    "check_all",
    "ROUNDOFF",
    "SEARCH_FTOL",
]

ROUNDOFF = 1e-9  # relative: what float64 kernels may move under an exact symmetry (rescalings up to e^+-9)
SEARCH_FTOL = 1e-6  # relative: flattest_interpolator's stall tolerance (its default ftol): the search's resolution


@dataclass
class Check:
    """One checked statement.

    ``holds`` is None for a demonstration (reported, not a check); ``applies``
    is False for a check reported outside the claim's condition (it does not
    count towards the exit status).
    """

    claim: str
    statement: str
    holds: Optional[bool]
    seeds: int
    would_fail: str
    applies: bool = True


def _by_seed(rows: List[Row]) -> Dict[int, List[Row]]:
    out: Dict[int, List[Row]] = {}
    for r in rows:
        out.setdefault(r.seed, []).append(r)
    return out


def _spread(vals, fmt: str = ".3g") -> str:
    vals = [v for v in vals if math.isfinite(v)]
    if not vals:
        return "n/a"
    return f"median {np.median(vals):{fmt}}, range [{min(vals):{fmt}}, {max(vals):{fmt}}]"


# --------------------------------------------------------------------------- claim 1
def check_claim1(rows: List[Row]) -> List[Check]:
    """Rescaling symmetry: the function is fixed, the trace is not, the orbit minimum is its infimum."""
    c1 = [r for r in rows if r.claim == "1"]
    if not c1:
        return []
    seeds = _by_seed(c1)
    out = []
    spreads, dloss, dpop, domin, beaten, gap = [], [], [], [], [], []
    for rs in seeds.values():
        base = [r for r in rs if r.method == "base interpolator"][0]
        moved = [r for r in rs if r.method != "base interpolator"]
        tr = [r.trace for r in rs]
        spreads.append(max(tr) / min(tr))
        dloss.append(max(r.rel_max_residual for r in rs))
        dpop.append(max(abs(r.pop_loss - base.pop_loss) for r in moved) / base.pop_loss)
        domin.append(max(abs(r.orbit_min_trace - base.orbit_min_trace) for r in moved) / base.orbit_min_trace)
        # the infimum: no rescaling has a trace below the orbit minimum
        beaten.append(min(r.trace / base.orbit_min_trace for r in rs) - 1.0)
        bal = [r for r in rs if r.method == "balanced (orbit minimum)"][0]
        gap.append(abs(bal.trace - bal.orbit_min_trace) / bal.orbit_min_trace)
    S = len(seeds)
    out.append(
        Check(
            "1",
            f"demonstration: rescalings of one interpolator move its Hessian trace by a factor "
            f"{_spread(spreads)} over seeds",
            None,
            S,
            "(a demonstration of the symmetry, not a check)",
        )
    )
    out.append(
        Check(
            "1",
            f"rescalings keep the function: every rescaled point still interpolates (max|r| / label "
            f"scale <= {max(dloss):.1e}, bound {RESIDUAL_TOL:g}) and the population loss moves by "
            f"{max(dpop):.1e} relative (round-off bound {ROUNDOFF:g})",
            max(dloss) <= RESIDUAL_TOL and max(dpop) <= ROUNDOFF,
            S,
            "a rescaling (global or per neuron) that moved a training residual or the population loss beyond round-off",
        )
    )
    out.append(
        Check(
            "1",
            f"the orbit-minimal trace is invariant: it moves by at most {max(domin):.1e} relative "
            f"(round-off bound {ROUNDOFF:g})",
            max(domin) <= ROUNDOFF,
            S,
            "two points of one orbit with different orbit-minimal traces",
        )
    )
    out.append(
        Check(
            "1",
            f"the orbit-minimal trace is the infimum: no rescaling (global grid, random per-neuron with "
            f"log-sd 0.01 to 3) has a smaller trace (least trace / orbit minimum - 1 = "
            f"{min(beaten):.1e} >= -{ROUNDOFF:g}), and the balanced point attains it (gap "
            f"{max(gap):.1e} <= {ROUNDOFF:g})",
            min(beaten) >= -ROUNDOFF and max(gap) <= ROUNDOFF,
            S,
            "a rescaled point with a trace below the orbit-minimal trace, or a balanced point above it",
        )
    )
    return out


# --------------------------------------------------------------------------- claim 2
def _flattest(rs: List[Row]) -> Optional[Row]:
    flat = [r for r in rs if r.method == SEARCH and interpolates(r) and math.isfinite(r.orbit_min_trace)]
    return min(flat, key=lambda r: r.orbit_min_trace) if flat else None


def _claim2_for(rows: List[Row], applies: bool, label: str) -> List[Check]:
    seeds = _by_seed(rows)
    S = len(seeds)
    ok_t, ok_p, ratios_t, flat_pop, best_other = 0, 0, [], [], []
    details_t: List[str] = []
    details_p: List[str] = []
    missing = 0
    for seed, rs in sorted(seeds.items()):
        flat = _flattest(rs)
        comp = [r for r in competitors_of(rs) if interpolates(r) and math.isfinite(r.orbit_min_trace)]
        if flat is None or not comp:
            missing += 1
            continue
        best_t = min(comp, key=lambda r: r.orbit_min_trace)
        ratios_t.append(flat.orbit_min_trace / best_t.orbit_min_trace)
        if flat.orbit_min_trace <= best_t.orbit_min_trace * (1 + SEARCH_FTOL):
            ok_t += 1
        else:
            details_t.append(
                f"seed {seed}: {best_t.method} {best_t.orbit_min_trace:.5g} < flattest {flat.orbit_min_trace:.5g}"
            )
        gen = [r for r in comp if r.method != REFERENCE]
        starts = [r.rel_pop_loss for r in rs if r.method == SEARCH and interpolates(r)]
        tol = max(starts) - min(starts)
        best_p = min(gen, key=lambda r: r.rel_pop_loss)
        flat_pop.append(flat.rel_pop_loss)
        best_other.append(best_p.rel_pop_loss)
        if flat.rel_pop_loss <= best_p.rel_pop_loss + tol:
            ok_p += 1
        else:
            details_p.append(
                f"seed {seed}: {best_p.method} generalizes better ({best_p.rel_pop_loss:.3g} vs "
                f"{flat.rel_pop_loss:.3g})"
            )
    at_max = sum(r.stop == "max_iter" for r in rows if r.method == SEARCH)
    excluded: Dict[str, int] = {}
    for r in competitors_of(rows):
        if not interpolates(r) and r.method.endswith("GN polish"):
            excluded[r.method] = excluded.get(r.method, 0) + 1
    if excluded:
        details_t.insert(
            0,
            "polished points that still do not interpolate (shown, not compared): "
            + ", ".join(f"{k} x{v}" for k, v in excluded.items()),
        )
    where = f"{label}: " if label else ""
    note_t = ("; " + "; ".join(details_t)) if details_t else ""
    note_p = ("; " + "; ".join(details_p)) if details_p else ""
    miss = (
        f" ({missing} seeds without an interpolating flattest point or competitor count as failures)" if missing else ""
    )
    return [
        Check(
            "2",
            f"{where}the flattest search's interpolator has the least orbit-minimal trace of all interpolators "
            f"(GD, GD + polish, SAM, label-noise SGD, memorizer, teacher network) on {ok_t}/{S} seeds "
            f"(flattest / best competitor: {_spread(ratios_t, '.6g')}; tolerance: the search's ftol "
            f"{SEARCH_FTOL:g}; {at_max} search runs stopped at max_iter){miss}{note_t}",
            ok_t == S,
            S,
            "an interpolator from another method flatter than the search's best start",
            applies,
        ),
        Check(
            "2",
            f"{where}...and the least population loss of the interpolators on {ok_p}/{S} seeds (flattest "
            f"{_spread(flat_pop)} vs best competitor {_spread(best_other)}, relative to the zero predictor; "
            f"tolerance: the spread of the search's starts){note_p}",
            ok_p == S,
            S,
            "an interpolating competitor (teacher network excluded) with a lower population loss than the "
            "flattest interpolator by more than the spread of the search's starts",
            applies,
        ),
    ]


def _spearman(x, y) -> float:
    """Rank correlation (Pearson's on ranks; ties, improbable for these floats, ranked by order)."""
    if len(x) < 3:
        return float("nan")
    rx = np.argsort(np.argsort(np.asarray(x, dtype=float))).astype(float)
    ry = np.argsort(np.argsort(np.asarray(y, dtype=float))).astype(float)
    return float(np.corrcoef(rx, ry)[0, 1])


def check_claim2(rows: List[Row]) -> List[Check]:
    """The flattest interpolator is the flattest and generalizes best (representable teacher);
    the same comparison reported, not counted, on the non-representable teacher."""
    c2 = [r for r in rows if r.claim == "2"]
    if not c2:
        return []
    out = []
    rep = [r for r in c2 if r.representable]
    edge = [r for r in c2 if not r.representable]
    if rep:
        out += _claim2_for(rep, True, "")
        it = [r for r in rep if interpolates(r) and math.isfinite(r.orbit_min_trace) and r.method != REFERENCE]
        rho = _spearman([r.orbit_min_trace for r in it], [r.rel_pop_loss for r in it])
        out.append(
            Check(
                "2",
                f"demonstration: Spearman rank correlation of orbit-minimal trace and population loss "
                f"over {len(it)} interpolators: {rho:.2f}",
                None,
                len(_by_seed(rep)),
                "(reported)",
            )
        )
        # label-noise SGD against GD from the same (large) init, both after the polish: the known drift
        pairs = []
        for rs in _by_seed(rep).values():
            ln = [r for r in rs if r.method == "label_noise_sgd + GN polish" and interpolates(r)]
            gd = [r for r in rs if r.method == "gd, large init + GN polish" and interpolates(r)]
            if ln and gd:
                pairs.append(ln[0].trace / gd[0].trace)
        if pairs:
            out.append(
                Check(
                    "2",
                    f"demonstration: label-noise SGD ends flatter than GD from the same init (raw trace "
                    f"after the polish, ratio {_spread(pairs)}; < 1 on {sum(p < 1 for p in pairs)}/"
                    f"{len(pairs)} seeds)",
                    None,
                    len(pairs),
                    "(reported)",
                )
            )
    if edge:
        out += _claim2_for(edge, False, f"outside the condition ({edge[0].teacher})")
    return out


# --------------------------------------------------------------------------- claim 3
def check_claim3(rows: List[Row]) -> List[Check]:
    """Memorizing interpolators are sharper than the flattest one and generalize worse."""
    out = []
    groups: Dict[tuple, List[Row]] = {}
    for r in rows:
        if r.representable and r.claim in ("2", "5") and r.eps == 0.0:
            groups.setdefault((r.claim, r.noise, r.seed, r.n), []).append(r)
    for meth in MEMORIZERS:
        ratios, pops, ok_t, ok_p, total, noises = [], [], 0, 0, 0, set()
        for key, rs in groups.items():
            flat = _flattest(rs)
            mem = [r for r in rs if r.method == meth and interpolates(r)]
            if flat is None or not mem:
                continue
            total += 1
            noises.add(key[1])
            ratio = mem[0].orbit_min_trace / flat.orbit_min_trace
            ratios.append(ratio)
            pops.append((mem[0].rel_pop_loss, flat.rel_pop_loss))
            ok_t += ratio > 1.0
            ok_p += mem[0].rel_pop_loss > flat.rel_pop_loss
        if not total:
            continue
        out.append(
            Check(
                "3",
                f"the {meth} is sharper than the flattest interpolator on {ok_t}/{total} data sets "
                f"(noise {sorted(noises)}): orbit-minimal trace ratio {_spread(ratios)}",
                ok_t == total,
                total,
                f"a {meth} with orbit-minimal trace <= the flattest's",
            )
        )
        out.append(
            Check(
                "3",
                f"...and generalizes worse on {ok_p}/{total}: population loss {meth} "
                f"{_spread([p[0] for p in pops])} vs flattest {_spread([p[1] for p in pops])}",
                ok_p == total,
                total,
                f"a {meth} with population loss <= the flattest's",
            )
        )
    return out


# --------------------------------------------------------------------------- claim 4
def fit_slope(ns, losses):
    """Least-squares slope of log(loss) on log(n) with its standard error (losses floored at 1e-16)."""
    x = np.log(np.asarray(ns, dtype=float))
    yv = np.log(np.maximum(np.asarray(losses, dtype=float), 1e-16))
    if len(set(x)) < 2:
        return float("nan"), float("nan")
    A = np.vstack([x, np.ones_like(x)]).T
    coef, res, *_ = np.linalg.lstsq(A, yv, rcond=None)
    dof = len(x) - 2
    resid = yv - A @ coef
    s2 = float(resid @ resid) / dof if dof > 0 else float("nan")
    cov = s2 * np.linalg.inv(A.T @ A)
    return float(coef[0]), float(math.sqrt(cov[0, 0])) if dof > 0 else float("nan")


def check_claim4(rows: List[Row]) -> List[Check]:
    """The flattest interpolator's population loss falls with n; label noise raises it."""
    c4 = [r for r in rows if r.claim == "4" and r.method == SEARCH]
    if not c4:
        return []
    out = []
    clean = [r for r in c4 if r.noise == 0.0]
    S = len({r.seed for r in c4})
    if clean:
        slope, se = fit_slope([r.n for r in clean], [r.rel_pop_loss for r in clean])
        ns = sorted({r.n for r in clean})
        lo = [r.rel_pop_loss for r in clean if r.n == ns[0]]
        hi = [r.rel_pop_loss for r in clean if r.n == ns[-1]]
        out.append(
            Check(
                "4",
                f"without noise the flattest interpolator's population loss falls with n: every seed at "
                f"n = {ns[-1]} (max {max(hi):.3g}) below every seed at n = {ns[0]} (min {min(lo):.3g}); "
                f"fitted slope of log loss on log n {slope:.2f} +- {se:.2f} (n = {ns}, {S} seeds; "
                f"reported: below ~1e-6 the losses reflect where the search stopped, not n)",
                bool(max(hi) < min(lo)) and len(ns) > 1,
                S,
                "a seed at the largest n with a loss >= some seed's at the smallest n (the seed-to-seed "
                "spread overlapping the change with n)",
            )
        )
    for noise in sorted({r.noise for r in c4 if r.noise > 0}):
        rs = [r for r in c4 if r.noise == noise]
        slope, se = fit_slope([r.n for r in rs], [r.rel_pop_loss for r in rs])
        med = [float(np.median([r.rel_pop_loss for r in rs if r.n == n])) for n in sorted({r.n for r in rs})]
        out.append(
            Check(
                "4",
                f"demonstration: with label noise {noise:g} the median loss over n = "
                f"{sorted({r.n for r in rs})} is {', '.join(f'{v:.3g}' for v in med)}; fitted slope "
                f"{slope:.2f} +- {se:.2f}",
                None,
                S,
                "(reported)",
            )
        )
    nmax = max(r.n for r in c4)
    noisy = sorted({r.noise for r in c4 if r.noise > 0})
    if noisy and clean:
        at = {(r.seed, r.noise): r.rel_pop_loss for r in c4 if r.n == nmax}
        pairs = [
            (at[(s, 0.0)], at[(s, noisy[-1])]) for s in {r.seed for r in c4} if (s, 0.0) in at and (s, noisy[-1]) in at
        ]
        ok = sum(b > a for a, b in pairs)
        out.append(
            Check(
                "4",
                f"at n = {nmax} label noise {noisy[-1]:g} raises it on {ok}/{len(pairs)} seeds "
                f"(clean {_spread([p[0] for p in pairs])}, noisy {_spread([p[1] for p in pairs])})",
                ok == len(pairs) and len(pairs) > 0,
                len(pairs),
                "a seed on which the noisy labels gave a population loss <= the clean ones'",
            )
        )
    return out


# --------------------------------------------------------------------------- claim 5
def check_claim5(rows: List[Row]) -> List[Check]:
    """The theorem's regime: the flattest interpolator's loss tracks approximation error and noise."""
    c5 = [r for r in rows if r.claim == "5" and r.method == SEARCH and interpolates(r)]
    if not c5:
        return []
    out = []
    S = len({r.seed for r in c5})
    # exact decomposition: pop = E(f - f_rep)^2 + approx_error >= approx_error
    worst = (
        min((r.pop_loss - r.approx_error) / max(r.approx_error, 1e-300) for r in c5 if r.eps > 0)
        if any(r.eps > 0 for r in c5)
        else 0.0
    )
    out.append(
        Check(
            "5",
            f"no network beats the approximation error eps^2 (2d + p^2): min (pop - approx) / approx "
            f"= {worst:.2e} >= -{ROUNDOFF:g}",
            worst >= -ROUNDOFF,
            S,
            "a network with population loss below the approximation error (a wrong teacher construction)",
        )
    )
    for axis, fixed, name in (("eps", "noise", "approximation error"), ("noise", "eps", "label noise")):
        sel = [r for r in c5 if getattr(r, fixed) == 0.0]
        grid = sorted({getattr(r, axis) for r in sel})
        med = [float(np.median([r.rel_pop_loss for r in sel if getattr(r, axis) == g])) for g in grid]
        if len(grid) < 2:
            continue
        ok = all(b > a for a, b in zip(med, med[1:]))
        desc = ", ".join(f"{g:g}: {v:.3g}" for g, v in zip(grid, med))
        extra = ""
        if axis == "eps":
            ex = [
                float(np.median([(r.pop_loss - r.approx_error) / r.null_loss for r in sel if r.eps == g])) for g in grid
            ]
            extra = "; excess over the approximation error " + ", ".join(f"{v:.3g}" for v in ex)
        out.append(
            Check(
                "5",
                f"the flattest interpolator's population loss grows with the {name} ({axis} -> median "
                f"relative loss over {S} seeds: {desc}{extra})",
                ok,
                S,
                f"a larger {axis} with a median loss <= that of a smaller one",
            )
        )
    # both sides of the condition: does the flattest interpolator still generalize best as eps grows?
    c5all = [r for r in rows if r.claim == "5" and r.noise == 0.0 and interpolates(r)]
    for eps in sorted({r.eps for r in c5all}):
        wins, total, pairs = 0, 0, []
        for seed in sorted({r.seed for r in c5all}):
            rs = [r for r in c5all if r.eps == eps and r.seed == seed]
            flat = _flattest(rs)
            gd = [r for r in rs if r.method.startswith("gd")]
            if flat is None or not gd:
                continue
            total += 1
            best = min(r.rel_pop_loss for r in gd)
            wins += flat.rel_pop_loss <= best
            pairs.append((flat.rel_pop_loss, best))
        if total:
            out.append(
                Check(
                    "5",
                    f"eps = {eps:g} (approximation error {eps**2:g} (2d + p^2)): the flattest "
                    f"interpolator generalizes at least as well as GD from a small init (+ GN polish) on "
                    f"{wins}/{total} seeds (flattest {_spread([p[0] for p in pairs])} vs GD "
                    f"{_spread([p[1] for p in pairs])})",
                    None,
                    total,
                    "(reported: the side of the theorem's condition each eps falls on)",
                )
            )
    return out


def check_all(rows: List[Row]) -> List[Check]:
    return check_claim1(rows) + check_claim2(rows) + check_claim3(rows) + check_claim4(rows) + check_claim5(rows)
