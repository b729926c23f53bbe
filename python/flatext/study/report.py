"""study.md: every fitted number with its interval, and what would have contradicted the paper."""

from __future__ import annotations

import math
from typing import Dict, List

from .fit import FLOOR, LEVEL, ROUNDING, WIDE, ratio_table, slope_table, target_table, usable

__all__ = ["conclusions", "markdown"]


def conclusions(df, cfg) -> Dict:
    """The fits of the three questions (see :mod:`flatext.study.fit`)."""
    boot = cfg.raw["study"]["bootstrap"]
    target = cfg.raw["study"]["target"]
    return {
        "target": target,
        "slopes": slope_table(df, boot=boot),
        "targets": target_table(df, target, boot=boot),
        "ratios": ratio_table(df, boot=boot),
    }


def _f(v, fmt=".3g"):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, float) and math.isinf(v):
        return "not reached"
    return f"{v:{fmt}}"


def _interval(r, fmt=".2f"):
    return f"{_f(r['slope'], fmt)} [{_f(r['lo'], fmt)}, {_f(r['hi'], fmt)}]"


def _group_line(r, fmt, *cells) -> str:
    """A table line of one (d, k, noise) group: its medians per n, ``cells``, its verdict."""
    med = ", ".join(f"{n}: {v:{fmt}}" for n, v in r["median"].items())
    mid = " | ".join(str(c) for c in cells)
    return f"| {r['d']} | {r['k']} | {r['noise']:g} | {med} | {mid} | {r['verdict']} |"


def _slope_section(slopes: List[Dict]) -> List[str]:
    out = [
        "## 1. Does the flattest interpolator's excess population loss fall with n?",
        "",
        f"Fitted slope of log(relative excess loss) on log(n), {LEVEL:.0%} stratified bootstrap interval over "
        f"seeds; losses below {FLOOR:g} (the search's resolution) are not fitted.",
        "",
        "| d | k | noise | median loss per n | slope [interval] | sizes fitted | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    out += [_group_line(s, ".2g", _interval(s), len(s["ns"])) for s in slopes]
    clean = [s for s in slopes if s["noise"] == 0]
    bad = [s for s in clean if s["verdict"] in ("rises", "flat")]
    out += [
        "",
        "Would have contradicted the paper: a noise-free group whose loss does not fall with n above the "
        f"floor (verdict `rises` or `flat`). Found: {len(bad)} of {len(clean)} noise-free groups"
        + (" (" + ", ".join(f"d={s['d']} k={s['k']}" for s in bad) + ")" if bad else "")
        + ". With label noise the flattest interpolator must fit the noise: a `flat` verdict there is a noise "
        "floor, not a contradiction of a bound that carries a noise term.",
        "",
    ]
    return out


def _target_section(targets: List[Dict], target) -> List[str]:
    out = [
        f"## 2. The sample size reaching a relative loss of {target:g}, against d and k",
        "",
        "n at which the median loss curve crosses the target (log-log interpolation between grid points; the "
        "grid's smallest n when already below, `not reached` when above at every n), with its interval; "
        "and per (k, noise) the exponent of that n in d (fit of log n on log d).",
        "",
        "| k | noise | d | n reaching the target [interval] | exponent in d [interval] | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for t in sorted(targets, key=lambda t: (t["k"], t["noise"], t["d"])):
        ex = t["d_exponent"]
        out.append(
            f"| {t['k']} | {t['noise']:g} | {t['d']} | {_f(t['n_target'])} [{_f(t['lo'])}, {_f(t['hi'])}] | "
            f"{_interval(ex)} | {ex['verdict']} |"
        )
    out += [
        "",
        "Would have contradicted a sample complexity polynomial in d: a target reached at small d and not "
        "at larger d on a grid that extends well beyond the small-d crossing, or an exponent whose interval "
        "lies well above 1 (linear in d). An n equal to the grid's smallest n is an upper bound, and the "
        "exponent then is not a rate.",
        "",
    ]
    return out


def _ratio_section(ratios: List[Dict]) -> List[str]:
    out = [
        "## 3. The memorizer's orbit-minimal trace against the flattest interpolator's",
        "",
        "| d | k | noise | median ratio per n | smallest ratio | slope in n [interval] | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    out += [_group_line(r, ".3g", f"{r['min']:.3g}", _interval(r)) for r in ratios]
    low = [r for r in ratios if r["min"] <= 1.0]
    out += [
        "",
        "Would have contradicted the paper (memorizers are orderwise sharper): a cell with ratio <= 1, or a "
        f"ratio that falls with n. Found: {len(low)} groups with a cell at ratio <= 1; "
        f"{sum(r['verdict'] == 'falls' for r in ratios)} groups whose ratio falls with n.",
        "",
    ]
    return out


_COMPETITORS = (("memorizer", "memorizer"), ("gd", "GD + polish"), ("lnsgd", "label-noise SGD + polish"))


def _competitor_section(df) -> List[str]:
    """Each interpolating competitor against the flattest interpolator on the same data (paired by cell)."""
    out = [
        "## 4. The other interpolators on the same data sets",
        "",
        "Ratios competitor / flattest, over the cells where the competitor ran and interpolated (max|r| within "
        f"1e-8 of the label scale); relative losses below {ROUNDING:g} (rounding of the exact integral) count "
        f"as {ROUNDING:g} in the ratios.",
        "",
        "| interpolator | noise | cells | loss ratio: median [min, max] | cells with lower loss | "
        "trace ratio: median [min, max] | cells with lower trace |",
        "|---|---|---|---|---|---|---|",
    ]
    d0 = usable(df)
    for p, name in _COMPETITORS:
        if f"{p}_status" not in d0:
            continue
        for noise, g in d0.groupby("noise"):
            g = g[g[f"{p}_status"] == "ok"]  # a competitor skipped or failed in every cell has no measurements
            if not g.empty:
                g = g[g[f"{p}_interpolates"].fillna(False).astype(bool)]
            if g.empty:
                continue
            loss, flat = g[f"{p}_population_loss_rel"], g["population_loss_rel"]
            lr = loss.clip(lower=ROUNDING) / flat.clip(lower=ROUNDING)
            tr = g[f"{p}_orbit_min_trace"] / g["orbit_min_trace"]
            lower_loss, lower_trace = int((loss < flat).sum()), int((tr < 1).sum())
            out.append(
                f"| {name} | {noise:g} | {len(g)} | {lr.median():.3g} [{lr.min():.3g}, {lr.max():.3g}] | "
                f"{lower_loss} | {tr.median():.3g} [{tr.min():.3g}, {tr.max():.3g}] | {lower_trace} |"
            )
    out += [
        "",
        "Would have contradicted the paper (the flattest interpolator generalizes best among interpolators): "
        "cells where an interpolating competitor has the lower loss. A competitor with the lower trace means the "
        "search stopped short of the flattest interpolator (its `flattest_reason` says why).",
        "",
    ]
    return out


def _counts(df) -> List[str]:
    n = len(df)
    ok = int((df["status"] == "ok").sum()) if n else 0
    used = len(usable(df)) if n else 0
    lines = [f"Cells: {n}; finished: {ok}; flattest network interpolates (fitted): {used}."]
    if "flattest_reason" in df:
        reasons = df["flattest_reason"].value_counts().to_dict()
        lines.append("Why the searches stopped: " + ", ".join(f"{k} x{v}" for k, v in reasons.items()) + ".")
    if ok < n:
        errs = df.loc[df["status"] != "ok", "error"].fillna("").str.split(r"\(|;").str[0].value_counts()
        lines.append(
            "Failed cells (rerunning retries them): " + "; ".join(f"{k.strip()} x{v}" for k, v in errs.items())
        )
    if "flatext_source" in df and df["flatext_source"].nunique() > 1:
        by = df["flatext_source"].value_counts().to_dict()
        lines.append(
            "The rows were computed by different code (flatext_source: "
            + ", ".join(f"{k} x{v}" for k, v in by.items())
            + "): the package changed between invocations; rerun with a new --out to compute every cell with one."
        )
    if "flattest_method" in df:
        meth = df["flattest_method"].dropna().unique()
        lines.append("flattest_interpolator(method=...): " + ", ".join(map(str, meth)) + ".")
    for p, name in (("gd", "GD"), ("lnsgd", "label-noise SGD")):
        col = f"{p}_status"
        if col in df:
            st = df[col].fillna("n/a").str.split(":").str[0].value_counts().to_dict()
            skip = df[col].dropna()
            why = next((s for s in skip if s.startswith("skipped")), "")
            lines.append(f"{name}: " + ", ".join(f"{k} x{v}" for k, v in st.items()) + (f" ({why})" if why else ""))
    return lines


def _cell_seconds(df) -> float:
    return float(df["time_total"].sum()) if "time_total" in df else math.nan


def markdown(df, cfg, fits: Dict, *, seconds: float, command: str, figures: List[str]) -> str:
    g = cfg.raw["grid"]
    head = [
        f"# flatext study: {cfg.name}",
        "",
        f"Command: `{command}`. This invocation: {seconds:.0f} s wall, {df.attrs.get('cells_run', len(df))} cells "
        f"computed, {len(df) - df.attrs.get('cells_run', len(df))} reused from an earlier run; the cells' own "
        f"seconds sum to {_cell_seconds(df):.0f} s.",
        "",
        f"Grid: n = {g['n']}, d = {g['d']}, k = {g['k']}, noise = {g['noise']}, seeds = {cfg.seeds}; "
        f"width m = {cfg.raw['model']['m']}; ReLU; teachers relu, + 0.5 abs, + 0.25 relu on orthonormal "
        "directions (representable: no approximation error); exact Gaussian population losses relative to "
        "the zero predictor's. Verdict rules (fixed before the run): an interval wider than "
        f"{WIDE:g} is `inconclusive` (whatever its sign); `falls` / `rises` when it excludes 0, `flat` when it "
        "contains it.",
        "",
        *_counts(df),
        "",
    ]
    body = _slope_section(fits["slopes"]) + _target_section(fits["targets"], fits["target"])
    body += _ratio_section(fits["ratios"]) + _competitor_section(df)
    body += ["## Figures", ""] + [f"![{f}]({f})" for f in figures] + [""]
    return "\n".join(head + body)
