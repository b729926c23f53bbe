"""``flatext study``: the paper's question at the sizes where it is asked (a sample-complexity study).

On a grid over n, d, k (teacher directions) and label noise, each cell (one data
set per seed) runs the flattest interpolator, the memorizer and, where affordable,
GD and label-noise SGD, and records exact population losses, orbit-minimal traces,
what the search reports (``SearchResult``: stop reason, polish, certified optimum)
and seconds. The study then fits, with bootstrap intervals over seeds: the slope
of the excess loss against n per (d, k, noise); the n reaching a target loss
against d and k; the memorizer-to-flattest trace ratio against n. It writes
``rows.parquet``, ``rows.csv``, ``study.md`` and PNG figures into the output folder.

The cells run on the sweeps' executors (local processes or Dask) and resumable
store (:mod:`flatext.sweeps`): a killed run, rerun, computes only the missing cells.
Submodules: ``config`` (embedded default, TOML, grid), ``cell`` (one cell), ``fit``,
``report``, ``figures``, ``costs`` (measured seconds per cell: ``--dry-run``'s estimate).
"""

from __future__ import annotations

import os
import sys
import time

from .config import DEFAULT, QUICK, StudyConfig, load_study

__all__ = ["study", "load_study", "StudyConfig", "DEFAULT", "QUICK", "add_parser"]


def study(
    config=None,
    *,
    out="flatext-study",
    quick=False,
    scheduler=None,
    local_cluster=None,
    workers=None,
    chunk_size=None,
    resume=True,
    progress=True,
    command="flatext.study.study(...)",
):
    """Run a study into the folder ``out``; return ``(rows, fits)``.

    ``config``: a TOML path, a dict (sections as in :mod:`flatext.study.config`, merged over the
    default) or None (the embedded default; ``quick=True``: the quick grid). Executor options as in
    :func:`flatext.sweep`. Rows go to ``out/rows.parquet`` (parts in ``out/rows.parquet.parts/`` as cells
    finish); a rerun with ``resume=True`` skips the finished cells.
    """
    from ..sweeps import sweep
    from .figures import figures
    from .report import conclusions, markdown

    cfg = load_study(config, quick=quick)
    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    df = sweep(
        cfg.sweep_config(),
        out=os.path.join(out, "rows.parquet"),
        scheduler=scheduler,
        local_cluster=local_cluster,
        resume=resume,
        progress=progress,
        workers=workers,
        chunk_size=chunk_size,
    )
    df.to_csv(os.path.join(out, "rows.csv"), index=False)
    fits = conclusions(df, cfg)
    figs = [os.path.basename(p) for p in figures(df, fits, out)]
    text = markdown(df, cfg, fits, seconds=time.perf_counter() - t0, command=command, figures=figs)
    with open(os.path.join(out, "study.md"), "w") as fh:
        fh.write(text)
    return df, fits


def _print_dry_run(cfg, workers):
    from .costs import MEASURED, MEASURED_ON, estimate

    est = estimate(cfg.cells, workers)
    print(f"study {cfg.name!r} ({cfg.source}): {len(cfg.cells)} cells")
    g = cfg.raw["grid"]
    print(f"  n = {g['n']}, d = {g['d']}, k = {g['k']}, noise = {g['noise']}, seeds = {cfg.seeds}")
    print(f"  width m = {cfg.raw['model']['m']}; flattest: {cfg.raw['flattest']}; trainers: {cfg.raw['trainers']}")
    n_max = max(n for n, _, _ in MEASURED)
    d_lo, d_hi = min(d for _, d, _ in MEASURED), max(d for _, d, _ in MEASURED)
    print(f"{'n':>6} {'d':>4} {'cells':>6} {'s/cell':>9} {'subtotal s':>11}")
    for (n, d), v in sorted(est["per"].items()):
        far = " (extrapolated beyond the measured cells)" if n > n_max or not d_lo <= d <= d_hi else ""
        print(f"{n:>6} {d:>4} {len(v):>6} {v[0]:>9.1f} {sum(v):>11.0f}{far}")
    laws = ", ".join(
        f"{kind} cells exp({c:.2f}) n^{a:.2f} d^{b:.2f}" for kind, (c, a, b) in zip(("small", "large"), est["coef"])
    )
    print(
        f"estimated: {est['wall'] / 60:.1f} minutes wall with {workers} worker(s) for the small cells and the "
        f"large ones in turn ({est['total'] / 60:.1f} minutes of cells; seconds per cell: the measured value at a "
        f"measured (n, d) and m = n, elsewhere {laws}; measured cells: {MEASURED_ON}; see flatext/study/costs.py)"
    )


def _command(args) -> str:
    """The command line of this run, as study.md quotes it."""
    parts = ["flatext study"] + ([args.config] if args.config else []) + (["--quick"] if args.quick else [])
    parts.append(f"--out {args.out}")
    for flag, v in (("--workers", args.workers), ("--local-cluster", args.local_cluster)):
        if v is not None:
            parts.append(f"{flag} {v}")
    if args.scheduler:
        parts.append(f"--scheduler {args.scheduler}")
    return " ".join(parts)


def _run_cli(args):
    from ..sweeps import SweepConfigError, SweepInterrupted
    from ..sweeps.executor import cpu_count

    try:
        cfg = load_study(args.config, quick=args.quick)
        if args.dry_run:
            w = args.local_cluster or (args.workers if args.workers else cpu_count())
            _print_dry_run(cfg, w)
            return 0
        cmd = _command(args)
        df, fits = study(
            cfg,
            out=args.out,
            scheduler=args.scheduler,
            local_cluster=args.local_cluster,
            workers=args.workers,
            chunk_size=args.chunk_size,
            resume=not args.no_resume,
            progress=not args.no_progress,
            command=cmd,
        )
    except SweepConfigError as e:
        print(f"flatext study: {e}", file=sys.stderr)
        return 2
    except (SweepInterrupted, KeyboardInterrupt) as e:
        print(f"flatext study: interrupted: {e}", file=sys.stderr)
        return 130
    bad = int((df["status"] != "ok").sum())
    print(f"wrote {args.out}/study.md, rows.parquet, rows.csv and figures ({len(df)} cells, {bad} failed)")
    return 1 if bad else 0


def add_parser(sub):
    p = sub.add_parser(
        "study",
        help="the sample-complexity study: loss against n, d, k and noise, with fitted slopes",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("config", nargs="?", default=None, help="study file (TOML; default: the embedded default study)")
    p.add_argument("--out", default="flatext-study", help="output folder (default ./flatext-study)")
    p.add_argument("--quick", action="store_true", help="the quick grid (a few minutes) instead of the default")
    p.add_argument("--dry-run", action="store_true", help="print the grid and its estimated time; run nothing")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT", help="run on a running Dask scheduler")
    g.add_argument("--local-cluster", type=int, default=None, metavar="N", help="a Dask LocalCluster of N workers")
    p.add_argument("--workers", type=int, default=None, help="local pool: worker processes (default: all cores)")
    p.add_argument("--chunk-size", type=int, default=None, help="cells per task (default: automatic)")
    p.add_argument("--no-resume", action="store_true", help="discard earlier rows and start over")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_cli)
    return p
