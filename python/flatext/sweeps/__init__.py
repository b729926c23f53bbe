"""Sweeps over parameter grids: ``flatext.sweep(config, out=...)`` and ``flatext sweep CONFIG.toml``.

A sweep file (TOML, see :mod:`flatext.sweeps.config` and ``docs/sweeps.md``)
names a grid of cells; each cell draws data from a teacher, runs a method
(gd, sam, project, flattest, memorize, random) and measures the result
(train loss, Hessian trace, orbit-minimal trace, top eigenvalue, population
loss, time). Rows are written to Parquet as cells finish, crash-safely, and a
rerun resumes. Submodules: ``config`` (schema, validation, grid), ``cells``
(one cell -> one row), ``executor`` (local processes or Dask), ``store``
(Parquet parts), ``plot`` (figures).

The package is named ``sweeps`` so that ``flatext.sweep`` can be the function.
"""
from __future__ import annotations

import sys
import time
import warnings

from .config import SweepConfig, SweepConfigError, load_config

__all__ = ["sweep", "load_config", "SweepConfig", "SweepConfigError", "add_parser"]


def _check_teachers(cfg):
    """Build each distinct (teacher, d) once so a bad teacher fails before any work."""
    from .cells import make_teacher

    seen = set()
    for c in cfg.cells:
        key = (repr(sorted(c["teacher"].items())), c["d"])
        if key in seen:
            continue
        seen.add(key)
        try:
            make_teacher(c["teacher"], c["d"])
        except Exception as e:
            raise SweepConfigError(cfg.source, "teacher", f"cannot build the teacher {c['teacher']} in d={c['d']}: "
                                   f"{type(e).__name__}: {e}") from None


def sweep(config, *, out, scheduler=None, local_cluster=None, resume=True, progress=True, workers=None,
          chunk_size=None):
    """Run a sweep and return its results, one row per cell.

    Parameters
    ----------
    config : str, path or dict
        A TOML sweep file, or the same structure as a dict. Validated before
        any work (:class:`SweepConfigError` names the key and the file).
    out : str or path
        The consolidated Parquet file. Finished cells are written as they
        finish to ``<out>.parts/`` (atomic part files) and ``out`` is written
        at the end.
    scheduler : str, optional
        Address of a running Dask scheduler (``"tcp://host:port"``): cells run there.
    local_cluster : int, optional
        Start a ``distributed.LocalCluster`` with this many worker processes.
    resume : bool
        Skip cells with a finished (``status == "ok"``) row in ``<out>.parts/``
        (default). ``False`` deletes earlier results and starts over.
    progress : bool
        Show a progress bar (cells done, rate, ETA) when stderr is a terminal.
    workers : int, optional
        Local executor only: number of worker processes (default: all cores;
        0 runs the cells in this process).
    chunk_size : int, optional
        Cells per task (default: chosen from the number of cells and workers).

    Returns
    -------
    pandas.DataFrame
        One row per cell, in grid order: the cell's parameters, ``cell_id``,
        ``seed``, the measurements, ``status``/``error``, ``flatext_version``,
        ``time_method``/``time_total`` (seconds), ``hostname``, ``worker``.
    """
    if scheduler is not None and local_cluster is not None:
        raise ValueError("scheduler and local_cluster: give at most one")
    cfg = load_config(config)
    _check_teachers(cfg)
    from .cells import error_row, method_available

    for kind in sorted({c["method_kind"] for c in cfg.cells}):
        ok, why = method_available(kind)
        if not ok:
            warnings.warn(f"sweep {cfg.name!r}: method {kind!r} is disabled ({why}); its cells get "
                          f"status='error' rows and run again on resume", RuntimeWarning, stacklevel=2)
    from .store import ResultStore

    store = ResultStore(out, resume=resume)
    done = store.finished_ids() if resume else set()
    todo = [c for c in cfg.cells if c["cell_id"] not in done]

    bar = None
    if progress and todo:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(cfg.cells), initial=len(cfg.cells) - len(todo), unit="cell",
                       desc=f"sweep {cfg.name}", disable=not sys.stderr.isatty(), smoothing=0.05)
        except ImportError:  # pragma: no cover
            bar = None

    def on_result(rows):
        store.write_part(rows)
        if bar is not None:
            bar.update(len(rows))

    t0 = time.perf_counter()
    try:
        if scheduler is not None or local_cluster is not None:
            from .executor import run_dask

            run_dask(todo, on_result, scheduler=scheduler, local_cluster=local_cluster, chunk_size=chunk_size,
                     error_row=error_row)
        else:
            from .executor import run_local

            run_local(todo, on_result, workers=workers, chunk_size=chunk_size)
    finally:
        if bar is not None:
            bar.close()
    df = store.consolidate([c["cell_id"] for c in cfg.cells])
    df.attrs["elapsed"] = time.perf_counter() - t0
    df.attrs["cells_run"] = len(todo)
    return df


# ---------------------------------------------------------------------------
# CLI: flatext sweep CONFIG.toml --out results.parquet
# ---------------------------------------------------------------------------


def _run_cli(args):
    if args.dry_run:
        try:
            cfg = load_config(args.config)
        except SweepConfigError as e:
            print(f"flatext sweep: {e}", file=sys.stderr)
            return 2
        from collections import Counter

        counts = Counter(c["method"] for c in cfg.cells)
        print(f"{cfg.source}: sweep {cfg.name!r}, {len(cfg)} cells ("
              + ", ".join(f"{k}: {v}" for k, v in counts.items()) + ")")
        return 0
    try:
        df = sweep(args.config, out=args.out, scheduler=args.scheduler, local_cluster=args.local_cluster,
                   resume=not args.no_resume, progress=not args.no_progress, workers=args.workers,
                   chunk_size=args.chunk_size)
    except SweepConfigError as e:
        print(f"flatext sweep: {e}", file=sys.stderr)
        return 2
    n_err = int((df["status"] != "ok").sum()) if "status" in df else 0
    el = df.attrs.get("elapsed", 0.0)
    ran = df.attrs.get("cells_run", 0)
    print(f"{len(df)} cells in {args.out} ({ran} run now in {el:.1f} s, {len(df) - ran} resumed"
          + (f", {n_err} with errors: see the 'error' column" if n_err else "") + ")")
    return 1 if n_err else 0


def add_parser(sub):
    p = sub.add_parser("sweep", help="run a parameter grid from a TOML sweep file into a Parquet table",
                       description="Run the grid of a TOML sweep file (see docs/sweeps.md); rows go to Parquet "
                                   "as cells finish; rerunning resumes.")
    p.add_argument("config", help="sweep file (TOML)")
    p.add_argument("--out", required=True, help="results Parquet file (parts go to OUT.parts/)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT", help="run on a running Dask scheduler")
    g.add_argument("--local-cluster", type=int, default=None, metavar="N",
                   help="start a Dask LocalCluster with N worker processes")
    p.add_argument("--workers", type=int, default=None,
                   help="local executor: worker processes (default: all cores; 0: in this process)")
    p.add_argument("--chunk-size", type=int, default=None, help="cells per task (default: automatic)")
    p.add_argument("--no-resume", action="store_true", help="discard earlier results and start over")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dry-run", action="store_true", help="validate the file, print the number of cells, run nothing")
    p.set_defaults(func=_run_cli)
