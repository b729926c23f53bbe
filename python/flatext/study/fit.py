"""What the study concludes, with bootstrap intervals: slopes in n, the sample size reaching a target, trace ratios.

Rules fixed in advance (never adjusted to the data):

- Uncertainty: a stratified bootstrap over seeds. Each resample redraws, at every
  n separately, that n's seeds with replacement, and refits; the bootstrap
  interval is the 2.5 % to 97.5 % quantiles (``LEVEL``). With few seeds it is
  too narrow: on synthetic rows with a known slope (5 sample sizes, 3 seeds,
  log-normal scatter, 300 data sets) it covered the slope 88 % of the time, not
  95 %. A slope's interval is therefore the union of the bootstrap interval and
  the least-squares t interval (exact for independent normal scatter), and a
  sample size with a single seed gives no interval at all.
- The floor: relative losses below ``FLOOR`` (1e-6) are where the search stopped,
  not a property of n (``docs/reproduce.md``); such points are left out of the
  slope fits. A group with fewer than 2 sample sizes above the floor is reported
  as ``"at the floor"`` (the teacher is recovered to the search's resolution).
- Verdicts of a slope: ``"inconclusive (...)"`` when its interval is wider than
  ``WIDE`` (1.0; the message says on which side of 0 it lies, if one) or there is
  no interval; else ``"falls"`` (the interval below 0), ``"rises"`` (above 0) or
  ``"flat"`` (it contains 0).
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional

import numpy as np
from scipy.stats import t as student_t

from ..reproduce.claims import fit_slope
from ..reproduce.studies import n_at_target

__all__ = [
    "FLOOR",
    "ROUNDING",
    "WIDE",
    "LEVEL",
    "bootstrap_slope",
    "verdict",
    "usable",
    "slope_table",
    "target_table",
    "ratio_table",
]

FLOOR = 1e-6
#: Relative losses below this are the rounding of an exact float64 integral (they can come out
#: slightly negative): ratios to them divide by this instead.
ROUNDING = 1e-15
WIDE = 1.0
LEVEL = 0.95


def _ols_slope(x, y) -> float:
    xm = x - x.mean()
    den = float(xm @ xm)
    return float(xm @ (y - y.mean()) / den) if den > 0 else math.nan


def _resample(groups: List[np.ndarray], rng) -> List[np.ndarray]:
    """One stratified resample: each n's values redrawn with replacement, their deviations from that n's
    mean scaled by ``sqrt(r / (r - 1))`` (r seeds): drawing r of r values shrinks the variance by
    ``(r - 1) / r``, which with 3 seeds took the 95 % interval's coverage of a known slope to 79 %."""
    out = []
    for g in groups:
        r = len(g)
        mu = g.mean()
        dev = (g - mu) * math.sqrt(r / (r - 1)) if r > 1 else g - mu
        out.append(mu + dev[rng.integers(0, r, r)])
    return out


def _quantiles(vals) -> tuple:
    v = np.asarray(vals, dtype=float)
    v = v[~np.isnan(v)]
    if not len(v):
        return math.nan, math.nan
    a = (1 - LEVEL) / 2
    return float(np.quantile(v, a, method="lower")), float(np.quantile(v, 1 - a, method="higher"))


def bootstrap_slope(ns, values, *, boot: int = 2000, seed: int = 0, floor: Optional[float] = FLOOR) -> Dict:
    """Least-squares slope of log(value) on log(n), with its stratified bootstrap interval.

    Values below ``floor`` (or not finite, or not positive) are left out. Returns ``slope``, ``lo``,
    ``hi``, ``ns`` (the sample sizes used), ``points`` and ``verdict`` (:func:`verdict`).
    """
    ns = np.asarray(ns, dtype=float)
    v = np.asarray(values, dtype=float)
    keep = np.isfinite(v) & (v > 0) & np.isfinite(ns)
    if floor is not None:
        keep &= v >= floor
    ns, v = ns[keep], v[keep]
    grid = sorted(set(ns.tolist()))
    out: Dict = {"ns": [int(n) for n in grid], "points": int(len(v)), "slope": math.nan, "lo": math.nan}
    out["hi"] = math.nan
    if len(grid) >= 2:
        x, y = np.log(ns), np.log(v)
        out["slope"] = _ols_slope(x, y)
        groups = [y[ns == n] for n in grid]
        if min(map(len, groups)) < 2:  # a single seed at some n: no spread to resample
            out["verdict"] = verdict(out["slope"], math.nan, math.nan, len(grid))
            return out
        xs = [np.full(len(g), math.log(n)) for g, n in zip(groups, grid)]
        xcat = np.concatenate(xs)
        rng = np.random.default_rng(seed)
        draws = [_ols_slope(xcat, np.concatenate(_resample(groups, rng))) for _ in range(boot)]
        out["boot_lo"], out["boot_hi"] = _quantiles(draws)
        _, se = fit_slope(ns, v)
        half = float(student_t.ppf(0.5 + LEVEL / 2, len(v) - 2)) * se
        out["lo"] = min(out["boot_lo"], out["slope"] - half)
        out["hi"] = max(out["boot_hi"], out["slope"] + half)
    out["verdict"] = verdict(out["slope"], out["lo"], out["hi"], len(grid))
    return out


def verdict(slope: float, lo: float, hi: float, n_sizes: int) -> str:
    """The slope's verdict under the module's rules."""
    if n_sizes < 2 or not math.isfinite(slope):
        return "at the floor" if n_sizes < 2 else "inconclusive"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "inconclusive (no interval)"
    if hi - lo > WIDE:
        side = ", entirely below 0" if hi < 0 else (", entirely above 0" if lo > 0 else "")
        return f"inconclusive (interval wider than {WIDE:g}{side})"
    if hi < 0:
        return "falls"
    if lo > 0:
        return "rises"
    return "flat"


def usable(df):
    """Rows of finished cells whose flattest network interpolates (the others are counted, not fitted)."""
    ok = df["status"] == "ok"
    if "interpolates" in df:
        ok &= df["interpolates"].fillna(False).astype(bool)
    return df[ok]


def _groups(df):
    return df.groupby(["d", "k", "noise"], sort=True)


def slope_table(df, *, boot: int = 2000, seed: int = 0) -> List[Dict]:
    """Per (d, k, noise): the fitted slope of the excess relative population loss against n."""
    rows = []
    for (d, k, noise), g in _groups(usable(df)):
        fit = bootstrap_slope(g["n"], g["population_loss_rel"], boot=boot, seed=seed)
        med = g.groupby("n")["population_loss_rel"].median()
        fit.update(d=int(d), k=int(k), noise=float(noise), seeds=int(g["seed"].nunique()))
        fit["median"] = {int(n): float(v) for n, v in med.items()}
        rows.append(fit)
    return rows


def _n_target_draws(ns, groups, target, boot, rng):
    med = [float(np.median(g)) for g in groups]
    best = n_at_target(ns, med, target)
    draws = [n_at_target(ns, [float(np.median(r)) for r in _resample(groups, rng)], target) for _ in range(boot)]
    return best, np.asarray(draws)


def target_table(df, target: float, *, boot: int = 2000, seed: int = 0) -> List[Dict]:
    """Per (d, k, noise): the sample size at which the median relative loss reaches ``target`` (log-log
    interpolation on the grid; ``inf`` when never), with its interval; per (k, noise): the exponent of
    that n in d (a fit of log n_target on log d, on the bootstrap draws too), when every d reaches it."""
    rng = np.random.default_rng(seed)
    rows, draws = [], {}
    for (d, k, noise), g in _groups(usable(df)):
        ns = sorted(g["n"].unique())
        groups = [g.loc[g["n"] == n, "population_loss_rel"].to_numpy(float) for n in ns]
        best, dr = _n_target_draws(ns, groups, target, boot, rng)
        lo, hi = _quantiles(dr)
        rows.append(dict(d=int(d), k=int(k), noise=float(noise), n_target=best, lo=lo, hi=hi, ns=[int(n) for n in ns]))
        draws[(int(d), int(k), float(noise))] = (best, dr)
    for r in rows:
        same = sorted((dd, v) for (dd, kk, nn), v in draws.items() if kk == r["k"] and nn == r["noise"])
        r["d_exponent"] = _d_exponent(same, min(r["ns"]))
    return rows


def _d_exponent(per_d, smallest_n) -> Dict:
    """Slope of log n_target on log d over the bootstrap draws (only when every d's n_target is finite
    and interior: ``n_target`` equal to the grid's smallest n is a bound, not a value)."""
    none = {"slope": math.nan, "lo": math.nan, "hi": math.nan}
    if len(per_d) < 2:
        return dict(none, verdict="fewer than 2 d")
    x = np.log([d for d, _ in per_d])
    best = np.array([b for _, (b, _) in per_d])
    if not np.all(np.isfinite(best)):
        return dict(none, verdict="inconclusive (not reached at some d)")
    if np.any(best <= smallest_n):
        return dict(none, verdict="bound only (reached at the smallest n at some d)")
    D = np.stack([dr for _, (_, dr) in per_d])
    ok = np.all(np.isfinite(D), axis=0)
    sl = [_ols_slope(x, np.log(D[:, j])) for j in np.flatnonzero(ok)]
    lo, hi = _quantiles(sl) if len(sl) >= 0.9 * D.shape[1] else (math.nan, math.nan)
    s = _ols_slope(x, np.log(best))
    v = verdict(s, lo, hi, len(per_d))
    return {"slope": s, "lo": lo, "hi": hi, "verdict": v}


def ratio_table(df, *, boot: int = 2000, seed: int = 0) -> List[Dict]:
    """Per (d, k, noise): the memorizer's orbit-minimal trace over the flattest's, its median per n and
    range, and the fitted slope of its log against log n (no floor: a ratio, not a loss)."""
    rows = []
    d0 = usable(df)
    if "memorizer_interpolates" in d0:
        d0 = d0[d0["memorizer_interpolates"].fillna(False).astype(bool)]
    for (d, k, noise), g in _groups(d0):
        fit = bootstrap_slope(g["n"], g["trace_ratio_memorizer"], boot=boot, seed=seed, floor=None)
        fit.update(d=int(d), k=int(k), noise=float(noise))
        fit["median"] = {int(n): float(v) for n, v in g.groupby("n")["trace_ratio_memorizer"].median().items()}
        fit["min"] = float(g["trace_ratio_memorizer"].min())
        rows.append(fit)
    return rows
