"""Figures from sweep results: ``flatext plot results.parquet --x COL --y COL [--hue COL] --out fig.png``.

Two kinds (``kind="auto"`` picks one):

``line``
    ``x`` is a grid parameter (n, noise, m, ...): for each hue value and x,
    the mean over the other columns' rows (the seeds) is drawn as a line with
    markers, and the spread across them as a band (``band="minmax"``: min to
    max, ``"std"``: mean +- one standard deviation, ``"none"``).
``scatter``
    ``x`` is a measurement (e.g. population loss against orbit-minimal
    trace): one point per row, coloured by hue.

``auto`` chooses ``line`` when x has at most half as many distinct values as
there are rows, else ``scatter``. Only rows with ``status == "ok"`` and finite
x, y are drawn (and positive ones on a log axis).
"""
from __future__ import annotations

import os
import sys

__all__ = ["plot", "add_parser"]


def _load(results):
    import pandas as pd

    if isinstance(results, pd.DataFrame):
        return results.copy()
    path = os.fspath(results)
    if not os.path.exists(path):
        raise FileNotFoundError(f"results: no such file {path!r}")
    return pd.read_parquet(path)


def plot(results, *, x, y, hue=None, out, logx=False, logy=False, kind="auto", band="minmax", where=None,
         title=None):
    """Draw ``y`` against ``x`` from sweep results and save it to ``out`` (PNG, PDF, SVG by extension).

    Parameters
    ----------
    results : str, path or pandas.DataFrame
        A results Parquet file (from :func:`flatext.sweep`) or its DataFrame.
    x, y : str
        Column names.
    hue : str, optional
        Column whose values get one colour each (e.g. ``"method"``).
    out : str or path
        Figure file.
    logx, logy : bool
        Log axes.
    kind : {"auto", "line", "scatter"}
    band : {"minmax", "std", "none"}
        Spread across seeds in line plots.
    where : str, optional
        A :meth:`pandas.DataFrame.query` filter, e.g. ``"noise == 0"``.
    title : str, optional

    Returns
    -------
    str
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    df = _load(results)
    for arg, col in (("x", x), ("y", y), ("hue", hue)):
        if col is not None and col not in df.columns:
            raise ValueError(f"{arg}: no column {col!r}; columns: {sorted(df.columns)}")
    if kind not in ("auto", "line", "scatter"):
        raise ValueError(f"kind: expected 'auto', 'line' or 'scatter', got {kind!r}")
    if band not in ("minmax", "std", "none"):
        raise ValueError(f"band: expected 'minmax', 'std' or 'none', got {band!r}")
    if where:
        df = df.query(where)
    if "status" in df.columns:
        df = df[df["status"] == "ok"]
    numeric_x = bool(pd.api.types.is_numeric_dtype(df[x])) and not pd.api.types.is_bool_dtype(df[x])
    df = df[np.isfinite(df[y].astype(float))]
    if numeric_x:
        df = df[np.isfinite(df[x].astype(float))]
    if logx and numeric_x:
        df = df[df[x] > 0]
    if logy:
        df = df[df[y] > 0]
    if kind == "auto":
        kind = "line" if (not numeric_x or df[x].nunique() * 2 <= max(len(df), 1)) else "scatter"

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    groups = [(None, df)] if hue is None else sorted(df.groupby(hue, dropna=False), key=lambda kv: str(kv[0]))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    cats = sorted(df[x].astype(str).unique()) if not numeric_x else None
    for i, (hv, g) in enumerate(groups):
        c = colors[i % len(colors)]
        label = None if hue is None else f"{hue}={hv}"
        if kind == "scatter":
            xs = g[x] if numeric_x else g[x].astype(str).map({k: j for j, k in enumerate(cats)})
            ax.scatter(xs, g[y], s=18, alpha=0.8, color=c, label=label)
            continue
        agg = g.groupby(x)[y].agg(["mean", "min", "max", "std", "count"]).reset_index()
        if numeric_x:
            agg = agg.sort_values(x)
            xs = agg[x].to_numpy(dtype=float)
        else:
            agg["_pos"] = agg[x].astype(str).map({k: j for j, k in enumerate(cats)})
            agg = agg.sort_values("_pos")
            xs = agg["_pos"].to_numpy(dtype=float)
        mean = agg["mean"].to_numpy(dtype=float)
        ax.plot(xs, mean, marker="o", ms=4, color=c, label=label)
        if band != "none" and (agg["count"] > 1).any():
            if band == "minmax":
                lo, hi = agg["min"].to_numpy(dtype=float), agg["max"].to_numpy(dtype=float)
            else:
                sd = np.nan_to_num(agg["std"].to_numpy(dtype=float))
                lo, hi = mean - sd, mean + sd
                if logy:
                    lo = np.where(lo > 0, lo, mean)  # keep the band on a log axis
            ax.fill_between(xs, lo, hi, color=c, alpha=0.2, linewidth=0)
    if cats is not None:
        ax.set_xticks(range(len(cats)))
        ax.set_xticklabels(cats, rotation=30, ha="right")
    if logx and numeric_x:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y + ("" if kind == "scatter" else " (mean" + {"minmax": ", min-max band)", "std": " +- std)",
                                                                 "none": ")"}[band]))
    if title:
        ax.set_title(title)
    if hue is not None and len(groups):
        ax.legend(fontsize=8, frameon=False)
    ax.grid(True, alpha=0.3, which="both")
    fig.tight_layout()
    out = os.fspath(out)
    fig.savefig(out)
    plt.close(fig)
    return out


def _run_cli(args):
    try:
        path = plot(args.results, x=args.x, y=args.y, hue=args.hue, out=args.out, logx=args.logx, logy=args.logy,
                    kind=args.kind, band=args.band, where=args.where, title=args.title)
    except (ValueError, FileNotFoundError) as e:
        print(f"flatext plot: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


def add_parser(sub):
    p = sub.add_parser("plot", help="plot sweep results (a Parquet table) to a figure",
                       description="Plot a column against another from sweep results, with the spread across "
                                   "seeds, coloured by a third column.")
    p.add_argument("results", help="results Parquet file from 'flatext sweep'")
    p.add_argument("--x", required=True, help="column on the x axis")
    p.add_argument("--y", required=True, help="column on the y axis")
    p.add_argument("--hue", default=None, help="column to colour by (e.g. method)")
    p.add_argument("--logx", action="store_true")
    p.add_argument("--logy", action="store_true")
    p.add_argument("--kind", choices=("auto", "line", "scatter"), default="auto")
    p.add_argument("--band", choices=("minmax", "std", "none"), default="minmax", help="spread across seeds")
    p.add_argument("--where", default=None, help="pandas query filter, e.g. \"noise == 0\"")
    p.add_argument("--title", default=None)
    p.add_argument("--out", required=True, help="figure file (.png, .pdf, .svg)")
    p.set_defaults(func=_run_cli)
