"""Sample-complexity summaries: fitted slopes and the sample size reaching a target loss."""

from __future__ import annotations

import math
from typing import Dict, List, Tuple

import numpy as np

from .claims import fit_slope
from .methods import SEARCH
from .problems import Row, interpolates

__all__ = ["sample_complexity", "n_at_target", "sample_complexity_markdown"]


def n_at_target(ns, losses, target: float) -> float:
    """The smallest n at which the median loss curve (log-log, linear between grid points) reaches
    ``target``; NaN if it never does on the grid (inf when above it everywhere)."""
    ns = np.asarray(ns, dtype=float)
    ls = np.log(np.maximum(np.asarray(losses, dtype=float), 1e-300))
    lt = math.log(target)
    if ls[0] <= lt:
        return float(ns[0])
    for i in range(1, len(ns)):
        if ls[i] <= lt:
            x0, x1 = math.log(ns[i - 1]), math.log(ns[i])
            f = (lt - ls[i - 1]) / (ls[i] - ls[i - 1])
            return float(math.exp(x0 + f * (x1 - x0)))
    return float("inf")


def sample_complexity(rows: List[Row], claim: str = "full", target: float = 1e-2) -> Dict[Tuple[int, int], dict]:
    """Per (d, k): the n grid, median relative loss per n, the fitted slope (with its standard error) and
    the sample size at which the median reaches ``target``."""
    sel = [r for r in rows if r.claim == claim and r.method == SEARCH and interpolates(r)]
    out: Dict[Tuple[int, int], dict] = {}
    for d, k in sorted({(r.d, r.k) for r in sel}):
        rs = [r for r in sel if r.d == d and r.k == k]
        ns = sorted({r.n for r in rs})
        med = [float(np.median([r.rel_pop_loss for r in rs if r.n == n])) for n in ns]
        slope, se = fit_slope([r.n for r in rs], [r.rel_pop_loss for r in rs])
        out[(d, k)] = dict(
            ns=ns,
            median=med,
            slope=slope,
            se=se,
            n_target=n_at_target(ns, med, target),
            seeds=len({r.seed for r in rs}),
            max_iter=sum(r.stop == "max_iter" for r in rs),
            points=[(r.n, r.rel_pop_loss) for r in rs],
        )
    return out


def sample_complexity_markdown(rows: List[Row], target: float) -> str:
    sc = sample_complexity(rows, target=target)
    if not sc:
        return ""
    lines = [
        f"| d | k | n grid | median relative population loss | slope (log-log) | n reaching {target:g} | "
        "seeds | searches at max_iter |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (d, k), s in sc.items():
        nt = s["n_target"]
        where = f"<= {s['ns'][0]}" if nt == s["ns"][0] else (f"> {s['ns'][-1]}" if nt == math.inf else f"{nt:.3g}")
        lines.append(
            f"| {d} | {k} | {s['ns']} | {', '.join(f'{v:.2g}' for v in s['median'])} | "
            f"{s['slope']:.2f} +- {s['se']:.2f} | {where} | {s['seeds']} | {s['max_iter']} |"
        )
    return "\n".join(lines)
