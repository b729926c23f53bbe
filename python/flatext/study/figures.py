"""The study's figures (PNG, matplotlib's Agg backend): one per question, one panel per k."""

from __future__ import annotations

import math
import os
from typing import Dict, List

import numpy as np

from .fit import FLOOR, usable

__all__ = ["figures"]

_STYLE = {0.0: "-", 0.1: "--", 0.3: ":"}


def _style(noise):
    return _STYLE.get(float(noise), "-.")


def _panels(plt, ks, title):
    fig, axes = plt.subplots(1, len(ks), figsize=(5.6 * len(ks), 6.2), squeeze=False, sharey=True)
    fig.suptitle(title, fontsize=11)
    return fig, dict(zip(ks, axes[0]))


def _legend_below(ax):
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1, frameon=False)


def _plain_ticks(ax, axis, values):
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    a = ax.xaxis if axis == "x" else ax.yaxis
    a.set_major_formatter(ScalarFormatter())
    a.set_minor_formatter(NullFormatter())
    (ax.set_xticks if axis == "x" else ax.set_yticks)(sorted(values))


def _save(plt, fig, out, name) -> str:
    fig.tight_layout()
    path = os.path.join(out, name)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _color(ds, d):
    return f"C{sorted(ds).index(d) % 10}"


def _loss_figure(plt, df, slopes: List[Dict], out) -> str:
    ds, ks = sorted(df["d"].unique()), sorted(df["k"].unique())
    fig, axes = _panels(plt, ks, "Flattest interpolator: excess population loss / null loss against n")
    fits = {(s["d"], s["k"], s["noise"]): s for s in slopes}
    for (d, k, noise), g in df.groupby(["d", "k", "noise"]):
        ax = axes[k]
        c = _color(ds, d)
        ax.scatter(g["n"], np.maximum(g["population_loss_rel"], 1e-16), s=10, color=c, alpha=0.5)
        med = g.groupby("n")["population_loss_rel"].median()
        f = fits.get((d, k, noise))
        lab = f"d={d}, noise {noise:g}"
        if f is not None and math.isfinite(f["lo"]):
            lab += f": slope {f['slope']:.2f} [{f['lo']:.2f}, {f['hi']:.2f}], {f['verdict']}"
        elif f is not None:
            lab += f": {f['verdict']}"
        ax.plot(med.index, np.maximum(med.values, 1e-16), _style(noise), color=c, label=lab)
    for k, ax in axes.items():
        ax.axhline(FLOOR, color="grey", lw=0.8)
        ax.text(ax.get_xlim()[0], FLOOR, " search resolution (not fitted below)", fontsize=7, va="bottom")
        ax.set(xscale="log", yscale="log", xlabel="n (training samples)", title=f"k = {k} teacher direction(s)")
        _plain_ticks(ax, "x", df["n"].unique())
        _legend_below(ax)
    axes[ks[0]].set_ylabel("relative excess population loss (dots: seeds, lines: median)")
    return _save(plt, fig, out, "loss_vs_n.png")


def _target_figure(plt, targets: List[Dict], target, out) -> str:
    ks = sorted({t["k"] for t in targets})
    fig, axes = _panels(plt, ks, f"Sample size at which the median relative loss reaches {target:g}")
    for k in ks:
        ax = axes[k]
        for j, noise in enumerate(sorted({t["noise"] for t in targets if t["k"] == k})):
            ts = sorted((t for t in targets if t["k"] == k and t["noise"] == noise), key=lambda t: t["d"])
            top = max(max(t["ns"]) for t in ts)
            ex = ts[0]["d_exponent"]
            lab = f"noise {noise:g}"
            if math.isfinite(ex["slope"]):
                lab += f": n ~ d^{ex['slope']:.2f} [{ex['lo']:.2f}, {ex['hi']:.2f}]"
            x = [t["d"] * (1 + 0.04 * j) for t in ts]
            y = [min(t["n_target"], 2 * top) for t in ts]
            lo = [y_ - min(t["lo"], 2 * top) for y_, t in zip(y, ts)]
            hi = [min(t["hi"], 2 * top) - y_ for y_, t in zip(y, ts)]
            ax.errorbar(x, y, yerr=[lo, hi], fmt=_style(noise), color=f"C{j}", capsize=3, label=lab)
            for xi, yi, t in zip(x, y, ts):
                bound = not math.isfinite(t["n_target"]) or t["n_target"] <= min(t["ns"])
                mk = "^" if not math.isfinite(t["n_target"]) else ("v" if bound else "o")
                ax.plot([xi], [yi], mk, color=f"C{j}", ms=8)
            ax.axhline(top, color="grey", lw=0.6, ls="--")
        ax.text(ax.get_xlim()[0], top, " largest n on the grid", fontsize=7, va="bottom")
        ax.set(xscale="log", yscale="log", xlabel="d (input dimension)", title=f"k = {k} teacher direction(s)")
        _plain_ticks(ax, "x", {t["d"] for t in targets})
        _legend_below(ax)
    axes[ks[0]].set_ylabel("n reaching the target (o; v: at or below the smallest n; ^: never on the grid)")
    return _save(plt, fig, out, "n_target_vs_d.png")


def _ratio_figure(plt, df, ratios: List[Dict], out) -> str:
    ds, ks = sorted(df["d"].unique()), sorted(df["k"].unique())
    fig, axes = _panels(plt, ks, "Memorizer's orbit-minimal trace / the flattest interpolator's")
    fits = {(r["d"], r["k"], r["noise"]): r for r in ratios}
    for (d, k, noise), g in df.groupby(["d", "k", "noise"]):
        ax, c = axes[k], _color(ds, d)
        ax.scatter(g["n"], g["trace_ratio_memorizer"], s=10, color=c, alpha=0.5)
        med = g.groupby("n")["trace_ratio_memorizer"].median()
        f = fits.get((d, k, noise))
        lab = f"d={d}, noise {noise:g}"
        if f is not None and math.isfinite(f["slope"]):
            lab += f": ~ n^{f['slope']:.2f} [{f['lo']:.2f}, {f['hi']:.2f}]"
        ax.plot(med.index, med.values, _style(noise), color=c, label=lab)
    for k, ax in axes.items():
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel="n (training samples)", title=f"k = {k} teacher direction(s)")
        _plain_ticks(ax, "x", df["n"].unique())
        _legend_below(ax)
    axes[ks[0]].set_ylabel("trace ratio (1 = as flat as the flattest)")
    return _save(plt, fig, out, "trace_ratio_vs_n.png")


def _competitor_figure(plt, df, out) -> str:
    """Population loss of every interpolator a cell ran, against the flattest's (paired by cell)."""
    ks = sorted(df["k"].unique())
    fig, axes = _panels(plt, ks, "Each interpolator's relative population loss against the flattest's (same data)")
    names = {"memorizer": "memorizer", "gd": "GD (+ polish)", "lnsgd": "label-noise SGD (+ polish)"}
    for k in ks:
        ax, g = axes[k], df[df["k"] == k]
        x = np.maximum(g["population_loss_rel"].to_numpy(float), 1e-16)
        for j, (p, lab) in enumerate(names.items()):
            col = f"{p}_population_loss_rel"
            if col not in g:
                continue
            ran = (g[f"{p}_status"] == "ok").to_numpy()
            interp = ran & g[f"{p}_interpolates"].fillna(False).to_numpy(bool)
            y = np.maximum(g[col].to_numpy(float), 1e-16)
            if interp.any():
                ax.scatter(x[interp], y[interp], s=14, color=f"C{j + 3}", label=f"{lab} ({interp.sum()} cells)")
            off = ran & ~interp
            if off.any():
                ax.scatter(
                    x[off], y[off], s=14, facecolors="none", edgecolors=f"C{j + 3}", label=f"{lab}, not interpolating"
                )
        lim = [1e-16, 1e3]
        ax.plot(lim, lim, color="k", lw=0.8, label="equal loss")
        ax.set(xscale="log", yscale="log", xlabel="flattest interpolator's relative loss", title=f"k = {k}")
        _legend_below(ax)
    axes[ks[0]].set_ylabel("competitor's relative loss (hollow: did not interpolate)")
    return _save(plt, fig, out, "competitors.png")


def figures(df, fits: Dict, out: str) -> List[str]:
    """Write the PNGs into ``out``; ``fits`` as made by :func:`flatext.study.report.conclusions`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d0 = usable(df)
    if d0.empty:
        return []
    return [
        _loss_figure(plt, d0, fits["slopes"], out),
        _target_figure(plt, fits["targets"], fits["target"], out),
        _ratio_figure(plt, d0, fits["ratios"], out),
        _competitor_figure(plt, d0, out),
    ]
