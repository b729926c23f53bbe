"""The reproduction's figures (PNG, matplotlib's Agg backend)."""

from __future__ import annotations

import math
import os
from typing import List

import numpy as np

from .methods import SEARCH, START
from .problems import Row, interpolates
from .studies import sample_complexity

__all__ = ["figures"]


def _plottable(r) -> bool:
    """A point with a finite trace and loss below 1e100 (a diverged run's 1e200 breaks log axes)."""
    return all(math.isfinite(v) and abs(v) < 1e100 for v in (r.orbit_min_trace, r.rel_pop_loss))


def _save(fig, out: str, name: str) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = os.path.join(out, name)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _floor(v):
    return max(v, 1e-16)


def _loss_axes(ax, xlabel: str, title: str, legend_size: int, **title_kw) -> None:
    """Log-log axes of the relative population loss against ``xlabel``, with a title and a legend."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("population loss / zero predictor's")
    ax.set_title(title, **title_kw)
    ax.legend(fontsize=legend_size)


def figures(rows: List[Row], out: str, cfg) -> List[str]:
    """Draw the figures that ``rows`` have points for into the directory ``out``; their paths."""
    import matplotlib

    matplotlib.use("Agg")
    paths = []
    for name, draw in _FIGURES:
        fig = draw(rows, cfg)
        if fig is not None:
            paths.append(_save(fig, out, name))
    return paths


def _claim1(rows: List[Row], cfg):
    """Claim 1: the trace of each rescaling over the orbit-minimal trace, per seed and rescaling."""
    import matplotlib.pyplot as plt

    c1 = [r for r in rows if r.claim == "1"]
    if not c1:
        return None
    fig, ax = plt.subplots(figsize=(7, 5.5))
    for seed in sorted({r.seed for r in c1}):
        rs = [r for r in c1 if r.seed == seed]
        om = [r for r in rs if r.method == "base interpolator"][0].orbit_min_trace
        labels = list(dict.fromkeys(r.method for r in rs))
        for j, lab in enumerate(labels):
            tr = [r.trace / om for r in rs if r.method == lab]
            ax.scatter([j] * len(tr), tr, s=12, alpha=0.6, color=f"C{seed}", label=f"seed {seed}" if j == 0 else None)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=70, ha="right", fontsize=7)
    ax.axhline(1.0, color="k", lw=1, ls="--", label="orbit-minimal trace")
    ax.set_yscale("log")
    ax.set_ylabel("Hessian trace / orbit-minimal trace")
    ax.set_title("Claim 1: rescalings move the trace, never below the orbit minimum")
    ax.legend(fontsize=7)
    return fig


def _claims23(rows: List[Row], cfg):
    """Claims 2-3: population loss against orbit-minimal trace, one panel per teacher."""
    import matplotlib.pyplot as plt

    c2 = [r for r in rows if r.claim == "2"]
    if not c2:
        return None
    teachers = sorted({r.teacher for r in c2})
    fig, axes = plt.subplots(1, len(teachers), figsize=(6.5 * len(teachers), 5), squeeze=False)
    methods = list(dict.fromkeys(r.method for r in c2))
    for ax, te in zip(axes[0], teachers):
        for j, meth in enumerate(methods):
            _claims23_points(ax, [r for r in c2 if r.teacher == te and r.method == meth and _plottable(r)], meth, j)
        _loss_axes(ax, "orbit-minimal Hessian trace", te, 6, fontsize=9)
    fig.suptitle("Claims 2-3: interpolators by how they were found (hollow: not an interpolator)")
    return fig


def _claims23_points(ax, rs: List[Row], meth: str, j: int) -> None:
    """The points of one method on one teacher: filled when they interpolate, hollow when not."""
    ok = [r for r in rs if interpolates(r)]
    off = [r for r in rs if not interpolates(r)]
    mk = "*" if meth == SEARCH else ("D" if meth == START else "o")
    if ok:
        ax.scatter(
            [r.orbit_min_trace for r in ok],
            [_floor(r.rel_pop_loss) for r in ok],
            marker=mk,
            s=90 if meth == SEARCH else 40,
            color=f"C{j % 10}",
            label=meth,
        )
    if off:
        ax.scatter(
            [r.orbit_min_trace for r in off],
            [_floor(r.rel_pop_loss) for r in off],
            marker=mk,
            s=40,
            facecolors="none",
            edgecolors=f"C{j % 10}",
            label=f"{meth} (not interpolating)",
        )


def _claim4(rows: List[Row], cfg):
    """Claim 4: the flattest interpolator's population loss against n, one colour per noise level."""
    import matplotlib.pyplot as plt

    c4 = [r for r in rows if r.claim == "4" and r.method == SEARCH]
    if not c4:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for j, noise in enumerate(sorted({r.noise for r in c4})):
        rs = [r for r in c4 if r.noise == noise]
        ns = sorted({r.n for r in rs})
        ax.scatter([r.n for r in rs], [_floor(r.rel_pop_loss) for r in rs], s=12, alpha=0.5, color=f"C{j}")
        ax.plot(
            ns,
            [np.median([_floor(r.rel_pop_loss) for r in rs if r.n == n]) for n in ns],
            "o-",
            color=f"C{j}",
            label=f"noise sd {noise:g} (median over seeds)",
        )
    _loss_axes(ax, f"n (m = {cfg.width_factor:g} n)", "Claim 4: the flattest interpolator vs n and noise", 8)
    return fig


def _claim5(rows: List[Row], cfg):
    """Claim 5: the flattest interpolator's population loss against the approximation error."""
    import matplotlib.pyplot as plt

    c5 = [r for r in rows if r.claim == "5" and r.method == SEARCH]
    if not c5:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for j, noise in enumerate(sorted({r.noise for r in c5})):
        rs = [r for r in c5 if r.noise == noise and r.eps > 0]
        eps = sorted({r.eps for r in rs})
        if not eps:
            continue
        ax.plot(
            [r.approx_error / r.null_loss for r in rs],
            [_floor(r.rel_pop_loss) for r in rs],
            ".",
            color=f"C{j}",
            alpha=0.5,
        )
        ax.plot(
            [np.median([r.approx_error / r.null_loss for r in rs if r.eps == e]) for e in eps],
            [np.median([_floor(r.rel_pop_loss) for r in rs if r.eps == e]) for e in eps],
            "o-",
            color=f"C{j}",
            label=f"noise sd {noise:g}",
        )
    lim = [min(r.approx_error / r.null_loss for r in c5 if r.eps > 0) if any(r.eps > 0 for r in c5) else 1e-3, 1.0]
    ax.plot(lim, lim, "k--", lw=1, label="population loss = approximation error")
    title = "Claim 5: the flattest interpolator in the theorem's regime"
    _loss_axes(ax, "approximation error / zero predictor's loss", title, 8)
    return fig


def _sample_complexity(rows: List[Row], cfg):
    """The --full grid: population loss against n with the fitted slope, one panel per d, one colour per k."""
    import matplotlib.pyplot as plt

    sc = sample_complexity(rows, target=cfg.full_target)
    if not sc:
        return None
    ds = sorted({d for d, _ in sc})
    fig, axes = plt.subplots(1, len(ds), figsize=(5 * len(ds), 4), squeeze=False)
    for ax, d in zip(axes[0], ds):
        for (dd, k), s in sc.items():
            if dd != d:
                continue
            ax.scatter([p[0] for p in s["points"]], [_floor(p[1]) for p in s["points"]], s=10, alpha=0.4, color=f"C{k}")
            ax.plot(
                s["ns"],
                [_floor(v) for v in s["median"]],
                "o-",
                color=f"C{k}",
                label=f"k={k}: slope {s['slope']:.2f}",
            )
        ax.axhline(cfg.full_target, color="k", lw=1, ls=":")
        _loss_axes(ax, "n", f"d = {d}", 8)
    fig.suptitle("Sample complexity of the flattest interpolator")
    return fig


# Each figure's file and the function drawing it (None when the rows have no points for it), in order.
_FIGURES = (
    ("claim1_rescaling.png", _claim1),
    ("claim2_flatness_vs_generalization.png", _claims23),
    ("claim4_noise_and_n.png", _claim4),
    ("claim5_regime.png", _claim5),
    ("sample_complexity.png", _sample_complexity),
)
