"""Run the steps with resume on the sweeps' result store, and write the outputs."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from typing import List, Optional

import numpy as np
from tqdm.auto import tqdm

from .. import __version__, _native
from ..sweeps.store import ResultStore
from .claims import Check, check_all
from .config import ReproduceConfig
from .figures import figures
from .problems import Row
from .steps import steps as make_steps
from .studies import sample_complexity_markdown

__all__ = ["reproduce", "fingerprint", "FIELDS"]

FIELDS = [f.name for f in dataclasses.fields(Row)]
_TYPES = {f.name: f.type for f in dataclasses.fields(Row)}


def fingerprint(cfg: ReproduceConfig) -> str:
    """Configuration, version and the code itself (the package's Python sources and the compiled core):
    rows saved by other code are recomputed, never reused."""
    h = hashlib.sha256(json.dumps([__version__, dataclasses.asdict(cfg)], sort_keys=True, default=list).encode())
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for root, dirs, files in os.walk(pkg):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                with open(os.path.join(root, name), "rb") as f:
                    h.update(f.read())
    with open(_native._core.__file__, "rb") as f:
        h.update(f.read())
    return h.hexdigest()[:16]


def _to_row(rec: dict) -> Row:
    kw: dict = {}
    for k in FIELDS:
        v = rec[k]
        t = _TYPES[k]
        if t in ("int", int):
            kw[k] = int(v)
        elif t in ("float", float):
            kw[k] = float(v)
        else:
            kw[k] = "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
    return Row(**kw)


def _saved(store: ResultStore, fp: str) -> dict:
    """step key -> rows saved by a run with this fingerprint."""
    df = store.read_rows()
    if df.empty or "fingerprint" not in df:
        return {}
    df = df[(df["fingerprint"] == fp) & (df["status"] == "ok")]
    out: dict = {}
    for rec in df.to_dict("records"):
        out.setdefault(rec["step"], []).append((int(rec["row"]), _to_row(rec)))
    return {k: [r for _, r in sorted(v, key=lambda t: t[0])] for k, v in out.items()}


def _summary(rows: List[Row]) -> str:
    """One line per (claim, teacher, method): counts, medians and ranges over seeds and starts."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r.claim, r.teacher, r.n, r.noise, r.method), []).append(r)
    cols = [
        "claim",
        "teacher",
        "n",
        "noise",
        "method",
        "count",
        "orbit-min trace (median [min, max])",
        "rel. pop. loss (median [min, max])",
        "max rel. residual",
        "stops",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]

    def med(vals):
        vals = [v for v in vals if math.isfinite(v)]
        if not vals:
            return "n/a"
        return f"{np.median(vals):.4g} [{min(vals):.3g}, {max(vals):.3g}]"

    for (claim, te, n, noise, meth), rs in groups.items():
        stops: dict = {}
        for r in rs:
            if r.stop:
                stops[r.stop] = stops.get(r.stop, 0) + 1
        lines.append(
            "| "
            + " | ".join(
                [
                    claim,
                    te,
                    str(n),
                    f"{noise:g}",
                    meth,
                    str(len(rs)),
                    med([r.orbit_min_trace for r in rs]),
                    med([r.rel_pop_loss for r in rs]),
                    f"{max(r.rel_max_residual for r in rs):.1e}",
                    ", ".join(f"{k} x{v}" for k, v in stops.items()),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def claims_markdown(checks: List[Check], cfg: ReproduceConfig, seconds: float) -> str:
    """claims.md: for each claim, what was checked, on how many seeds, and what would have failed it."""
    head = [
        f"# flatext reproduce: claims ({'quick' if cfg.quick else 'default'} run, p = {cfg.power:g}, "
        f"d = {cfg.d}, n = {cfg.n}, {cfg.seeds} seeds, {seconds:.0f} s)",
        "",
        "Each line: [x] held, [ ] failed, (i) a demonstration or a check outside the claim's condition "
        "(reported, not counted).",
        "",
    ]
    titles = {
        "1": "Claim 1: the rescaling symmetry (raw flatness is not a property of the function)",
        "2": "Claim 2: the flattest interpolator generalizes best among interpolators",
        "3": "Claim 3: memorizing interpolators are sharp and do not generalize",
        "4": "Claim 4: the flattest interpolator's population loss vs n and label noise",
        "5": "Claim 5: the theorem's regime: approximation error and noise",
    }
    lines = head
    for c in sorted({ch.claim for ch in checks}):
        lines.append(f"## {titles.get(c, c)}")
        for ch in checks:
            if ch.claim != c:
                continue
            mark = "(i)" if ch.holds is None or not ch.applies else ("[x]" if ch.holds else "[ ]")
            tag = "" if ch.applies else " [outside the condition: reported, not counted]"
            held = "" if ch.holds is None else (" HELD" if ch.holds else " FAILED")
            lines.append(f"- {mark} {ch.statement} ({ch.seeds} seeds/data sets){tag}{held if ch.applies else ''}")
            lines.append(f"  - would have failed it: {ch.would_fail}")
        lines.append("")
    return "\n".join(lines)


def reproduce(
    cfg: Optional[ReproduceConfig] = None,
    out: str = "flatext-reproduce",
    progress: bool = True,
    resume: bool = True,
    echo=print,
):
    """Run the reproduction; returns ``(rows, checks)`` and writes the output folder.

    Each step's rows go to the sweeps' result store (``out/results.parquet.parts/``,
    one atomic part per step) as it finishes; a rerun with the same configuration
    and code reuses them, so an interrupted run loses only the step it was in.
    ``resume=False`` recomputes everything.

    Outputs: ``results.parquet`` (every row), ``results.csv``, ``results.md`` (a
    summary per claim and method: medians and ranges over seeds), ``claims.md``
    and PNG figures. ``cfg`` defaults to ``ReproduceConfig()``.
    """
    if cfg is None:
        cfg = ReproduceConfig()
    os.makedirs(out, exist_ok=True)
    store = ResultStore(os.path.join(out, "results.parquet"), resume=resume)
    fp = fingerprint(cfg)
    todo = make_steps(cfg)
    saved = _saved(store, fp) if resume else {}
    rows: List[Row] = []
    cell_ids: List[str] = []
    t0 = time.perf_counter()
    reused = 0
    with tqdm(total=len(todo), desc="flatext reproduce", disable=not progress, file=sys.stderr) as bar:
        for key, fn in todo:
            got = saved.get(key)
            if got is None:
                bar.set_postfix_str(key)
                got = fn()
                store.write_part(
                    [
                        dict(
                            dataclasses.asdict(r),
                            step=key,
                            row=i,
                            fingerprint=fp,
                            cell_id=f"{fp}:{key}:{i}",
                            status="ok",
                        )
                        for i, r in enumerate(got)
                    ]
                )
            else:
                reused += 1
            cell_ids += [f"{fp}:{key}:{i}" for i in range(len(got))]
            rows += got
            bar.update(1)
    seconds = time.perf_counter() - t0
    store.consolidate(cell_ids)
    checks = check_all(rows)
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow(dataclasses.asdict(r))
    md = _summary(rows)
    sc = sample_complexity_markdown(rows, cfg.full_target)
    if sc:
        md += "\n\n## Sample complexity of the flattest interpolator\n\n" + sc
    cmd = claims_markdown(checks, cfg, seconds)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(md + "\n")
    with open(os.path.join(out, "claims.md"), "w") as f:
        f.write(cmd + "\n")
    figs = figures(rows, out, cfg)
    echo(md)
    echo("")
    echo(cmd)
    echo(
        f"wrote {out}/results.parquet, results.csv, results.md, claims.md and {len(figs)} figures in "
        f"{seconds:.0f} s" + (f" ({reused} of {len(todo)} steps reused from the store)" if reused else "")
    )
    return rows, checks


def exit_status(checks: List[Check]) -> int:
    """0 when every counted check held."""
    return 0 if all(c.holds for c in checks if c.holds is not None and c.applies) else 1
