"""Figures from sweep results: ``flatext.plot(df, x=..., y=...)`` and ``flatext plot results.parquet ...``.

Two kinds (``kind="auto"`` picks one):

``line``
    ``x`` is a grid parameter (n, noise, m, ...): for each hue value and x, a
    statistic over the rows sharing them (the seeds) is drawn as a line with
    markers -- the median (default), the geometric mean or the mean -- with a
    band for the spread (``"quantile"``: the 25 %-75 % quantiles by default;
    ``"std"``: one standard deviation, taken in log space on a log y axis so
    that it stays visible; ``"minmax"``; None), and optionally every row as a
    small point.
``scatter``
    ``x`` is a measurement (e.g. population loss against orbit-minimal
    trace): one point per row, coloured by hue.

``auto`` chooses ``line`` when x has at most half as many distinct values as
there are rows, else ``scatter``. Only rows with ``status == "ok"`` and finite
x, y are drawn (and positive ones on a log axis); the rows left out for their
status (``diverged``, ``not_interpolating``, ``failed``: :mod:`flatext.sweeps.status`)
are counted in the figure's title, and ``include_not_ok=True``
(``--include-not-ok``) draws the measured ones too. Hue and facet values are
ordered numerically when they are numbers (d = 8 before d = 16). Facets:
``col`` and ``row`` name columns whose values get one panel each.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

import numpy as np

__all__ = ["plot", "add_parser", "STATS", "BANDS"]

STATS = ("median", "gmean", "mean")
BANDS = ("quantile", "std", "minmax", "none")


def _load(results):
    """A DataFrame from a DataFrame, a Parquet path, or a list of paths (concatenated)."""
    import pandas as pd

    if isinstance(results, pd.DataFrame):
        return results.copy()
    paths = [results] if isinstance(results, (str, os.PathLike)) else list(results)
    if not paths:
        raise ValueError("results: no file given")
    frames = []
    for p in paths:
        if isinstance(p, pd.DataFrame):
            frames.append(p)
            continue
        path = os.fspath(p)
        if not os.path.exists(path):
            raise FileNotFoundError(f"results: no such file {path!r}")
        frames.append(pd.read_parquet(path))
    return pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else frames[0].copy()


def _ordered(values):
    """Distinct values, numbers in numeric order, else as text; NaN/None last."""
    vals = list(dict.fromkeys(values))

    def key(v):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return (2, 0.0, "")
        if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)):
            return (0, float(v), "")
        return (1, 0.0, str(v))

    return sorted(vals, key=key)


def _fmt(v):
    return f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)


def _center(v, stat):
    if stat == "median":
        return float(np.median(v))
    if stat == "gmean":
        return float(np.exp(np.mean(np.log(v))))
    return float(np.mean(v))


def _spread(v, band, center, logy, q):
    """(low, high) of the band around ``center`` for the values ``v`` of one point."""
    if band == "quantile":
        return float(np.quantile(v, q[0])), float(np.quantile(v, q[1]))
    if band == "minmax":
        return float(np.min(v)), float(np.max(v))
    if logy:  # std in log space: a multiplicative band, always positive
        s = float(np.std(np.log(v)))
        return center * np.exp(-s), center * np.exp(s)
    s = float(np.std(v))
    return center - s, center + s


@dataclass
class _Spec:
    """What :func:`plot` draws: its checked arguments, and what the rows fix (x's kind, the hue values)."""

    x: str
    y: str
    hue: Optional[str]
    col: Optional[str]
    row: Optional[str]
    stat: str
    band: str
    points: bool
    quantiles: Tuple[float, float]
    logx: bool
    logy: bool
    kind: str
    numeric_x: bool = True
    cats: Optional[List[str]] = None  # the x categories, when x is not numeric
    hues: List[Any] = field(default_factory=lambda: [None])


def plot(
    results,
    *,
    x,
    y,
    hue=None,
    col=None,
    row=None,
    stat="median",
    band="quantile",
    points=True,
    quantiles=(0.25, 0.75),
    logx=False,
    logy=False,
    kind="auto",
    where=None,
    title=None,
    out=None,
    include_not_ok=False,
):
    """Draw ``y`` against ``x`` from sweep results (one panel per ``col`` x ``row`` value).

    Parameters
    ----------
    results : pandas.DataFrame, str, path, or list of them
        Sweep results (:func:`flatext.sweep`'s DataFrame, its Parquet file, or
        several files, concatenated).
    x, y : str
        Column names.
    hue : str, optional
        Column whose values get one colour each (e.g. ``"method"``, ``"d"``).
    col, row : str, optional
        Columns whose values get one panel column / row each (facets).
    stat : {"median", "gmean", "mean"}
        The line of a line plot: median (default), geometric mean (positive
        values; the natural mean on a log axis), or arithmetic mean.
    band : {"quantile", "std", "minmax", "none"} or None
        The spread across the rows of each point: quantiles ``quantiles``;
        one standard deviation (of ``log y`` on a log y axis, so the band
        stays positive); min to max; none.
    points : bool
        Also draw every row (e.g. each seed) as a small point.
    quantiles : (float, float)
        The band's quantiles for ``band="quantile"``.
    logx, logy : bool
        Log axes.
    kind : {"auto", "line", "scatter"}
    where : str, optional
        A :meth:`pandas.DataFrame.query` filter, e.g. ``"noise == 0"``.
    title : str, optional
    out : str or path, optional
        Save the figure there (PNG, PDF, SVG by extension).
    include_not_ok : bool
        Also draw the rows whose ``status`` is not ``"ok"`` (``diverged``,
        ``not_interpolating``; ``failed`` rows have no measurements). By
        default they are left out and the title says how many, by status.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.left_out`` is a dict status -> rows left out for their status.
    """
    band = "none" if band is None else band
    _check_options(stat, band, kind, quantiles)
    spec = _Spec(x, y, hue, col, row, stat, band, points, quantiles, logx, logy, kind)
    df, left_out = _select_rows(_load(results), spec, where, include_not_ok)
    if spec.kind == "auto":
        spec.kind = "line" if (not spec.numeric_x or df[x].nunique() * 2 <= len(df)) else "scatter"
    spec.hues = _ordered(df[hue]) if hue else [None]
    spec.cats = None if spec.numeric_x else [str(v) for v in _ordered(df[x])]
    fig, axes = _draw_panels(df, spec)
    _finish(fig, axes, spec, title, left_out, out)
    return fig


def _finish(fig, axes, spec, title, left_out, out):
    """The figure-wide parts: category ticks, the hue legend, the title with the rows left out; saved to
    ``out`` if given. ``fig.left_out`` records the rows left out by status."""
    if spec.cats is not None:
        for ax in axes[-1]:
            ax.set_xticks(range(len(spec.cats)), spec.cats, rotation=30, ha="right")
    if spec.hue is not None:
        _legend(fig, axes, spec)
    note = _left_out_text(left_out)
    if title or note:
        fig.suptitle("\n".join(t for t in (title, note) if t), fontsize=None if not note or title else 9)
    setattr(fig, "left_out", left_out)  # noqa: B010 (matplotlib's Figure type has no such attribute)
    fig.tight_layout()
    if out is not None:
        fig.savefig(os.fspath(out), bbox_inches="tight")


def _check_options(stat, band, kind, quantiles):
    """ValueError naming the argument for a statistic, band, kind or quantile pair that does not exist."""
    if stat not in STATS:
        raise ValueError(f"stat: expected one of {list(STATS)}, got {stat!r}")
    if band not in BANDS:
        raise ValueError(f"band: expected one of {list(BANDS)} or None, got {band!r}")
    if kind not in ("auto", "line", "scatter"):
        raise ValueError(f"kind: expected 'auto', 'line' or 'scatter', got {kind!r}")
    if not (len(quantiles) == 2 and 0 <= quantiles[0] < quantiles[1] <= 1):
        raise ValueError(f"quantiles: expected (low, high) with 0 <= low < high <= 1, got {quantiles!r}")


def _select_rows(df, spec, where, include_not_ok):
    """The rows to draw (matching ``where``, "ok", finite, positive on a log axis) and the count left out
    by status; sets ``spec.numeric_x``. ValueError when a column is missing or nothing is left."""
    import pandas as pd

    x, y = spec.x, spec.y
    for arg, c in (("x", x), ("y", y), ("hue", spec.hue), ("col", spec.col), ("row", spec.row)):
        if c is not None and c not in df.columns:
            raise ValueError(f"{arg}: no column {c!r}; columns: {sorted(df.columns)}")
    if where:
        df = df.query(where)
    left_out = {}
    if "status" in df.columns and not include_not_ok:
        left_out = {str(k): int(v) for k, v in df.loc[df["status"] != "ok", "status"].value_counts().items()}
        df = df[df["status"] == "ok"]
    if not pd.api.types.is_numeric_dtype(df[y]) or pd.api.types.is_bool_dtype(df[y]):
        raise ValueError(f"y: column {y!r} is not numeric")
    spec.numeric_x = bool(pd.api.types.is_numeric_dtype(df[x])) and not pd.api.types.is_bool_dtype(df[x])
    df = df[np.isfinite(df[y].astype(float))]
    if spec.numeric_x:
        df = df[np.isfinite(df[x].astype(float))]
    if spec.logx and spec.numeric_x:
        df = df[df[x] > 0]
    if spec.logy or spec.stat == "gmean":
        df = df[df[y] > 0]
    if df.empty:
        raise ValueError(
            "nothing to plot: no 'ok' row with finite (and, on a log axis, positive) x and y"
            + (f" matching where={where!r}" if where else "")
            + (f" ({_left_out_text(left_out)}; include_not_ok=True draws them)" if left_out else "")
        )
    return df, left_out


def _matching(frame, column, value):
    """The rows of ``frame`` whose ``column`` is ``value`` (NaN matching NaN)."""
    return frame[frame[column] == value] if value == value else frame[frame[column].isna()]


def _draw_panels(df, spec):
    """The figure and its grid of axes: one panel per (row, col) value, one colour per hue value."""
    # imported here, not at the top: importing pyplot picks a GUI backend, which
    # `flatext plot` must first set to Agg (and `import flatext` stays light)
    import matplotlib.pyplot as plt

    cols = _ordered(df[spec.col]) if spec.col else [None]
    rows = _ordered(df[spec.row]) if spec.row else [None]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(
        len(rows),
        len(cols),
        figsize=(4.8 * len(cols) + 1.2, 3.6 * len(rows) + 0.6),
        dpi=120,
        squeeze=False,
        sharex=True,
        sharey=True,
    )
    for ri, rv in enumerate(rows):
        for ci, cv in enumerate(cols):
            ax = axes[ri][ci]
            panel = df
            if spec.col:
                panel = _matching(panel, spec.col, cv)
            if spec.row:
                panel = _matching(panel, spec.row, rv)
            for hi, hv in enumerate(spec.hues):
                g = panel if spec.hue is None else _matching(panel, spec.hue, hv)
                if g.empty:
                    continue
                label = None if spec.hue is None else _fmt(hv)
                _draw_group(ax, g, spec, colors[hi % len(colors)], label)
            _style_panel(ax, df, spec, cv, rv)
            if ri == len(rows) - 1:
                ax.set_xlabel(spec.x)
            if ci == 0:
                ax.set_ylabel(spec.y + _ylabel_suffix(spec))
    return fig, axes


def _draw_group(ax, g, spec, c, label):
    """The rows ``g`` of one hue value in one panel: points (scatter), or a line of the statistic over
    each x with its band and, optionally, every row as a small point."""
    x = spec.x
    gx = (
        g[x].to_numpy(dtype=float)
        if spec.numeric_x
        else g[x].astype(str).map({k: j for j, k in enumerate(spec.cats)}).to_numpy(dtype=float)
    )
    gy = g[spec.y].to_numpy(dtype=float)
    if spec.kind == "scatter":
        ax.scatter(gx, gy, s=16, alpha=0.8, color=c, label=label)
        return
    xs = np.unique(gx)
    center, lo, hi = [], [], []
    for xv in xs:
        v = gy[gx == xv]
        m = _center(v, spec.stat)
        center.append(m)
        a, b = _spread(v, spec.band, m, spec.logy, spec.quantiles) if spec.band != "none" else (m, m)
        lo.append(a)
        hi.append(b)
    ax.plot(xs, center, marker="o", ms=4, color=c, label=label, zorder=3)
    if spec.band != "none" and len(gy) > len(xs):
        lo_a = np.asarray(lo)
        if spec.logy:  # a mean - std below 0 is drawn down to the axis, not dropped
            lo_a = np.where(lo_a > 0, lo_a, np.min(gy) * 0.5)
        ax.fill_between(xs, lo_a, hi, color=c, alpha=0.18, linewidth=0, zorder=1)
    if spec.points:
        ax.scatter(gx, gy, s=7, alpha=0.45, color=c, linewidths=0, zorder=2)


def _style_panel(ax, df, spec, cv, rv):
    """Log scales, grid-parameter ticks, the grid and the facet title of one panel."""
    from matplotlib.ticker import LogFormatterSciNotation, NullLocator

    if spec.logx and spec.numeric_x:
        ax.set_xscale("log")
    if spec.logy:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(LogFormatterSciNotation())
    if spec.kind == "line" and spec.numeric_x:
        xv = np.unique(df[spec.x].to_numpy(dtype=float))
        if len(xv) <= 10:  # a grid parameter: tick its values, written plainly
            ax.set_xticks(xv, [_fmt(v) for v in xv])
            ax.xaxis.set_minor_locator(NullLocator())
    ax.grid(True, alpha=0.3, which="both")
    col, row = spec.col, spec.row
    facet = [f"{col} = {_fmt(cv)}" if col else "", f"{row} = {_fmt(rv)}" if row else ""]
    if col or row:
        ax.set_title(", ".join(t for t in facet if t), fontsize=9)


def _ylabel_suffix(spec):
    """What the y label adds: the statistic and band of a line plot, e.g. " (median, 25%-75% band)"."""
    if spec.kind == "scatter":
        return ""
    q = spec.quantiles
    stat = {"median": " (median", "gmean": " (geometric mean", "mean": " (mean"}[spec.stat]
    band = {
        "quantile": f", {q[0]:.0%}-{q[1]:.0%} band)",
        "std": " +- std)",
        "minmax": ", min-max band)",
        "none": ")",
    }[spec.band]
    return stat + band


def _legend(fig, axes, spec):
    """One legend for the figure, right of the panels: every hue value drawn in some panel, in hue order."""
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes.ravel()[1:]:  # facets may lack some hue values: collect them all, in hue order
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    order = {_fmt(v): i for i, v in enumerate(spec.hues)}
    pairs = sorted(zip(handles, labels), key=lambda hl: order.get(hl[1], len(order)))
    fig.legend(
        [p[0] for p in pairs],
        [p[1] for p in pairs],
        title=spec.hue,
        fontsize=8,
        frameon=False,
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
    )


def _left_out_text(left_out):
    """``"left out: 3 rows not ok (diverged 2, failed 1)"``, or "" when none."""
    total = sum(left_out.values())
    if not total:
        return ""
    parts = ", ".join(f"{k} {v}" for k, v in sorted(left_out.items()))
    return f"left out: {total} row{'s' if total > 1 else ''} not ok ({parts})"


# The 'flatext plot' options passed on to plot() under their own name
# (--no-points is passed as points=not args.no_points).
_CLI_KEYWORDS = "x y hue col row stat band logx logy kind where title out include_not_ok".split()


def _run_cli(args):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    kwargs = {name: getattr(args, name) for name in _CLI_KEYWORDS}
    try:
        fig = plot(args.results, points=not args.no_points, **kwargs)
    except (ValueError, FileNotFoundError) as e:
        print(f"flatext plot: {e}", file=sys.stderr)
        return 2
    plt.close(fig)
    if fig.left_out:
        print(f"flatext plot: {_left_out_text(fig.left_out)}; --include-not-ok draws them", file=sys.stderr)
    print(args.out)
    return 0


def add_parser(sub):
    p = sub.add_parser(
        "plot",
        help="plot sweep results (Parquet tables) to a figure",
        description="Plot a column against another from sweep results: a median (or geometric "
        "mean) over seeds with a quantile band, coloured by a column, in facets.",
    )
    p.add_argument("results", nargs="+", help="results Parquet file(s) from 'flatext sweep'")
    p.add_argument("--x", required=True, help="column on the x axis")
    p.add_argument("--y", required=True, help="column on the y axis")
    p.add_argument("--hue", default=None, help="column to colour by (e.g. method, d)")
    p.add_argument("--col", default=None, help="column whose values get one panel column each")
    p.add_argument("--row", default=None, help="column whose values get one panel row each")
    p.add_argument("--stat", choices=STATS, default="median", help="line statistic over seeds (default median)")
    p.add_argument("--band", choices=BANDS, default="quantile", help="spread over seeds (default 25-75%% quantiles)")
    p.add_argument("--no-points", action="store_true", help="do not draw the individual rows (seeds)")
    p.add_argument("--logx", action="store_true")
    p.add_argument("--logy", action="store_true")
    p.add_argument("--kind", choices=("auto", "line", "scatter"), default="auto")
    p.add_argument("--where", default=None, help='pandas query filter, e.g. "noise == 0"')
    p.add_argument("--title", default=None)
    p.add_argument(
        "--include-not-ok",
        action="store_true",
        help="also draw rows whose status is not 'ok' (diverged, not_interpolating); by default they are "
        "left out and the title counts them",
    )
    p.add_argument("--out", required=True, help="figure file (.png, .pdf, .svg)")
    p.set_defaults(func=_run_cli)
