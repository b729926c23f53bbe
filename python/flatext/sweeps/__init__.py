"""Sweeps over parameter grids: ``flatext.sweep(config, out=...)`` and ``flatext sweep CONFIG.toml``.

A sweep file (TOML, see :mod:`flatext.sweeps.config` and ``docs/sweeps.md``)
names a grid of cells; each cell draws data from a teacher, runs a method
(gd, sam, label_noise_sgd, project, flattest, memorize, random) and measures the result with
:func:`flatext.measure`. Rows are written to Parquet as cells finish,
crash-safely, and a rerun resumes. Submodules: ``config`` (schema, validation,
grid), ``cells`` (one cell -> one row), ``executor`` (local processes or
Dask), ``store`` (Parquet parts), ``progress`` (the bar), ``plot`` (figures).

The package is named ``sweeps`` so that ``flatext.sweep`` can be the function.
"""

from __future__ import annotations

import csv
import signal
import sys
import threading
import time
from collections import Counter

from .cells import error_row, make_teacher
from .config import SweepConfig, SweepConfigError, load_config
from .executor import run_dask, run_local
from .progress import Progress
from .store import ResultStore

__all__ = ["sweep", "load_config", "SweepConfig", "SweepConfigError", "SweepInterrupted", "add_parser"]


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a sweep; the finished cells are saved and a rerun resumes.

    Attributes
    ----------
    saved, total : int
        Cells with a finished row on disk, and cells in the grid.
    """

    def __init__(self, saved, total):
        self.saved, self.total = saved, total
        super().__init__(f"{saved}/{total} cells saved; rerun the same command to resume")


def _check_teachers(cfg):
    """Build each distinct (teacher, d) once so a bad teacher fails before any work."""
    seen = set()
    for c in cfg.cells:
        key = (repr(sorted(c["teacher"].items())), c["d"])
        if key in seen:
            continue
        seen.add(key)
        try:
            make_teacher(c["teacher"], c["d"])
        except Exception as e:
            raise SweepConfigError(
                cfg.source, "teacher", f"cannot build the teacher {c['teacher']} in d={c['d']}: {type(e).__name__}: {e}"
            ) from None


def sweep(
    config, *, out, scheduler=None, local_cluster=None, resume=True, progress=True, workers=None, chunk_size=None
):
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
        Skip cells with a finished row in ``<out>.parts/`` (status ``ok``,
        ``diverged`` or ``not_interpolating``; ``failed`` cells run again)
        (default). ``False`` deletes earlier results and starts over.
    progress : bool
        Show a progress bar (cells done, running and failed, rate, ETA) on a
        terminal or in a notebook (``tqdm.auto``).
    workers : int, optional
        Local executor only: number of worker processes (default: all cores;
        0 runs the cells in this process).
    chunk_size : int, optional
        Cells per task (default: chosen from the number of cells and workers).

    Returns
    -------
    pandas.DataFrame
        One row per cell, in grid order: the cell's parameters, ``cell_id``,
        ``seed``, what the method reports (``iterations``, ``converged``,
        ``reason``, ``lr``, ``lambda_max``, ...), the measurements, ``status``
        (``ok``, ``diverged``, ``not_interpolating``, ``failed``:
        :mod:`flatext.sweeps.status`) and ``error``,
        ``flatext_version``, ``flatext_source`` (:func:`flatext.info.source_digest`: which code
        computed the row), ``time_*`` (seconds), ``hostname``, ``worker``.

    Raises
    ------
    SweepInterrupted
        On Ctrl-C (a ``KeyboardInterrupt``): the worker processes are stopped,
        the finished cells are on disk, and rerunning the same call resumes.
    """
    if scheduler is not None and local_cluster is not None:
        raise ValueError("scheduler and local_cluster: give at most one")
    cfg = load_config(config)
    _check_teachers(cfg)
    store = ResultStore(out, resume=resume)
    done = store.finished_ids() if resume else set()
    todo = [c for c in cfg.cells if c["cell_id"] not in done]

    bar = Progress(len(cfg.cells), len(cfg.cells) - len(todo), f"sweep {cfg.name}", enabled=progress and bool(todo))

    def on_result(rows):
        store.write_part(rows)
        bar.finished(rows)

    t0 = time.perf_counter()
    try:
        if scheduler is not None or local_cluster is not None:
            run_dask(
                todo,
                on_result,
                scheduler=scheduler,
                local_cluster=local_cluster,
                chunk_size=chunk_size,
                error_row=error_row,
                on_running=bar.running,
            )
        else:
            run_local(todo, on_result, workers=workers, chunk_size=chunk_size, on_running=bar.running)
    except KeyboardInterrupt:
        main = threading.current_thread() is threading.main_thread()
        old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None  # a second Ctrl-C: no traceback
        try:
            bar.close()
            ids = {c["cell_id"] for c in cfg.cells}
            saved = len(store.finished_ids() & ids)
        finally:
            if main:
                signal.signal(signal.SIGINT, old)
        raise SweepInterrupted(saved, len(cfg.cells)) from None
    finally:
        bar.close()
    df = store.consolidate([c["cell_id"] for c in cfg.cells])
    df.attrs["elapsed"] = time.perf_counter() - t0
    df.attrs["cells_run"] = len(todo)
    return df


# ---------------------------------------------------------------------------
# CLI: flatext sweep CONFIG.toml --out results.parquet
# ---------------------------------------------------------------------------

# Columns of `--dry-run` (the cell parameters; method parameters as JSON).
_DRY_COLUMNS = (
    "cell_id",
    "method",
    "method_kind",
    "teacher",
    "n",
    "d",
    "m",
    "noise",
    "inputs",
    "power",
    "neg",
    "init_scale",
    "dtype",
    "seed",
    "params",
)


def _dry_rows(cfg):
    rows = []
    for c in cfg.cells:
        row = {k: c[k] for k in _DRY_COLUMNS if k in c}
        t = c["teacher"]
        row["teacher"] = t.get("name") or t["kind"]
        row["params"] = " ".join(f"{k}={v}" for k, v in sorted(c["method_params"].items()))
        rows.append(row)
    return rows


def _print_dry_run(cfg, fmt):
    rows = _dry_rows(cfg)
    if fmt == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=_DRY_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return
    cols = ("#",) + _DRY_COLUMNS
    text = [
        [str(i)] + ["" if r[k] is None else f"{r[k]:g}" if isinstance(r[k], float) else str(r[k]) for k in _DRY_COLUMNS]
        for i, r in enumerate(rows)
    ]
    widths = [max(len(h), *(len(t[j]) for t in text)) for j, h in enumerate(cols)]
    print("  ".join(h.ljust(wd) for h, wd in zip(cols, widths)).rstrip())
    for t in text:
        print("  ".join(v.ljust(wd) for v, wd in zip(t, widths)).rstrip())
    counts = Counter(c["method"] for c in cfg.cells)
    print(
        f"{cfg.source}: sweep {cfg.name!r}, {len(cfg)} cells ("
        + ", ".join(f"{k}: {v}" for k, v in counts.items())
        + ")"
    )


def _run_cli(args):
    try:
        if args.dry_run:
            _print_dry_run(load_config(args.config), args.format)
            return 0
        if not args.out:
            print("flatext sweep: --out is required (unless --dry-run)", file=sys.stderr)
            return 2
        df = sweep(
            args.config,
            out=args.out,
            scheduler=args.scheduler,
            local_cluster=args.local_cluster,
            resume=not args.no_resume,
            progress=not args.no_progress,
            workers=args.workers,
            chunk_size=args.chunk_size,
        )
    except SweepConfigError as e:
        print(f"flatext sweep: {e}", file=sys.stderr)
        return 2
    except SweepInterrupted as e:
        print(f"flatext sweep: interrupted: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # before any cell ran
        print("flatext sweep: interrupted before any cell ran", file=sys.stderr)
        return 130
    counts = Counter(df["status"]) if "status" in df else Counter()
    n_err = counts.get("failed", 0) + counts.get("error", 0)
    not_ok = {k: v for k, v in sorted(counts.items()) if k != "ok"}
    el = df.attrs.get("elapsed", 0.0)
    ran = df.attrs.get("cells_run", 0)
    print(
        f"{len(df)} cells in {args.out} ({ran} run now in {el:.1f} s, {len(df) - ran} resumed"
        + (f"; not ok: {', '.join(f'{k} {v}' for k, v in not_ok.items())}" if not_ok else "")
        + (": see the 'status', 'reason' and 'error' columns" if not_ok else "")
        + ")"
    )
    return 1 if n_err else 0


def add_parser(sub):
    p = sub.add_parser(
        "sweep",
        help="run a parameter grid from a TOML sweep file into a Parquet table",
        description="Run the grid of a TOML sweep file (see docs/sweeps.md); rows go to Parquet "
        "as cells finish; rerunning resumes; Ctrl-C stops cleanly.",
    )
    p.add_argument("config", help="sweep file (TOML)")
    p.add_argument("--out", help="results Parquet file (parts go to OUT.parts/); required unless --dry-run")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT", help="run on a running Dask scheduler")
    g.add_argument(
        "--local-cluster", type=int, default=None, metavar="N", help="start a Dask LocalCluster with N worker processes"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local executor: worker processes (default: all cores; 0: in this process)",
    )
    p.add_argument("--chunk-size", type=int, default=None, help="cells per task (default: automatic)")
    p.add_argument("--no-resume", action="store_true", help="discard earlier results and start over")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dry-run", action="store_true", help="validate the file and list its cells; run nothing")
    p.add_argument("--format", choices=("table", "csv"), default="table", help="--dry-run output format")
    p.set_defaults(func=_run_cli)
    return p
