"""Measured seconds per study cell, a power law fitted to them, and the estimate of a grid's time.

``MEASURED`` holds seconds of whole cells (flattest search, memorizer, GD and
label-noise SGD where the default config runs them, every measurement), one
kernel thread per cell, on the machine named in ``MEASURED_ON``, made by::

    OMP_NUM_THREADS=1 python -m flatext.study.costs

(which runs the default config's cells at k = 2, noise = 0.3, seed 0 on the
(n, d) grid below and prints the table to paste here). The fit is
``seconds = exp(c) n^a d^b`` by least squares on the logs; a grid's estimate is
the sum over its cells divided by the worker processes that run side by side
(the local pool runs ``cores`` of them).
"""

from __future__ import annotations

import math
import sys
import time
from typing import Dict, List, Sequence, Tuple

import numpy as np

__all__ = ["MEASURED", "MEASURED_ON", "fit_power_law", "predict", "estimate", "measure_costs"]

MEASURED_ON = (
    "vm, x86_64, 1 kernel thread, flattest method n/a (the manifold search), 4 other sessions sharing the 2 cores"
)
# (n, d, seconds): filled by `python -m flatext.study.costs`
MEASURED: List[Tuple[int, int, float]] = [
    (250, 8, 4.28),  # flattest 2.9, memorizer 0.0, gd 0.8, lnsgd 0.5
    (500, 8, 16.19),  # flattest 12.7, memorizer 0.1, gd 3.4, lnsgd 0.0
    (1000, 8, 109.53),  # flattest 109.2, memorizer 0.2, gd 0.0, lnsgd 0.0
    (250, 16, 2.91),  # flattest 1.3, memorizer 0.0, gd 1.0, lnsgd 0.6
    (500, 16, 13.76),  # flattest 9.3, memorizer 0.0, gd 4.3, lnsgd 0.0
    (1000, 16, 48.76),  # flattest 48.4, memorizer 0.2, gd 0.0, lnsgd 0.0
    (250, 32, 3.69),  # flattest 1.5, memorizer 0.0, gd 1.5, lnsgd 0.6
    (500, 32, 13.56),  # flattest 7.7, memorizer 0.0, gd 5.8, lnsgd 0.0
    (1000, 32, 38.73),  # flattest 38.3, memorizer 0.2, gd 0.0, lnsgd 0.0
    # measure_costs(ns=(2000,), ds=(32,)): the cheapest n = 2000 cell, a check of the extrapolation (191 s predicted)
    (2000, 32, 184.36),  # flattest 182.7, memorizer 1.1, gd 0.0, lnsgd 0.0
]

MEASURE_NS = (250, 500, 1000)
MEASURE_DS = (8, 16, 32)


def fit_power_law(table: Sequence[Tuple[int, int, float]] = ()) -> Tuple[float, float, float]:
    """``(c, a, b)`` with ``log seconds = c + a log n + b log d``, least squares over ``table``."""
    table = list(table) or MEASURED
    if len(table) < 3:
        raise ValueError(f"table: need at least 3 measured (n, d, seconds) rows, got {len(table)}")
    A = np.array([[1.0, math.log(n), math.log(d)] for n, d, _ in table])
    y = np.log([s for _, _, s in table])
    coef = np.linalg.lstsq(A, y, rcond=None)[0]
    return float(coef[0]), float(coef[1]), float(coef[2])


def predict(n: int, d: int, coef=None) -> float:
    """Predicted seconds of one cell at (n, d)."""
    c, a, b = coef or fit_power_law()
    return math.exp(c + a * math.log(n) + b * math.log(d))


def estimate(cells: List[dict], workers: int) -> Dict:
    """Per (n, d): cells and predicted seconds; ``total`` (CPU seconds) and ``wall`` (over ``workers``)."""
    coef = fit_power_law()
    per: Dict[Tuple[int, int], List[float]] = {}
    for c in cells:
        per.setdefault((c["n"], c["d"]), []).append(predict(c["n"], c["d"], coef))
    total = sum(sum(v) for v in per.values())
    return {"per": per, "total": total, "wall": total / max(1, workers), "coef": coef}


def measure_costs(ns=MEASURE_NS, ds=MEASURE_DS) -> List[Tuple[int, int, float]]:
    """Run one default cell (k = 2, noise 0.3, seed 0) per (n, d) in this process; return (n, d, seconds)."""
    from ..sweeps.cells import run_cell
    from .config import load_study

    out = []
    cfg = load_study({"grid": {"n": list(ns), "d": list(ds), "k": [2], "noise": [0.3]}, "study": {"seeds": [0]}})
    for cell in cfg.cells:
        t = time.perf_counter()
        row = run_cell(cell)
        s = time.perf_counter() - t
        if row["status"] != "ok":
            raise RuntimeError(f"cell n={cell['n']} d={cell['d']} failed: {row['error']}")
        out.append((cell["n"], cell["d"], round(s, 2)))
        parts = ", ".join(f"{k} {row.get(k + '_seconds', 0.0):.1f}" for k in ("flattest", "memorizer", "gd", "lnsgd"))
        print(f"    ({cell['n']}, {cell['d']}, {s:.2f}),  # {parts}", flush=True)
    return out


if __name__ == "__main__":  # pragma: no cover - the measurement itself
    import platform

    print(f'MEASURED_ON = "{platform.node()}, {platform.processor() or platform.machine()}, 1 kernel thread"')
    print("MEASURED = [")
    measure_costs()
    print("]")
    sys.exit(0)
