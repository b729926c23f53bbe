"""Measured seconds per study cell, power laws fitted to them, and the estimate of a grid's time.

``MEASURED`` holds the wall seconds of whole cells (flattest search,
memorizer, GD and label-noise SGD where the default config runs them, every
measurement) as the local executor ran them in a real run of the default study
on the machine named in ``MEASURED_ON`` (``MEASURED_CORES`` cores): small cells
(``n m d < LARGE_CELL``, :mod:`flatext.sweeps.executor`) side by side with one
kernel thread each, large cells one at a time with every core. It is made from
that run's rows by::

    python -m flatext.study.costs ROWS.parquet      # prints the table (means) to paste here

The current table holds that run's medians per (n, d) (made before the table held
means); a later run of the current code shared its cores with a CI run for half
its time, so its cells' seconds are not used (docs/study.md).

A cell at a measured (n, d) is predicted by the measured value itself: the
estimate is of a total, a sum of cell costs, and the costs are skewed (the
flattest method, the label noise and the seed change a cell's cost several-fold
at n = 2000), so neither a median nor a power law through the table sums to the
measured total.
Elsewhere, small and large cells run differently, so each kind has its own fit
``seconds = exp(c) n^a d^b`` (least squares on the logs). A grid's estimate
follows the executor's plan: the small cells' seconds summed and divided by the
worker processes that run side by side, plus the large cells' seconds in turn.
"""

from __future__ import annotations

import math
import sys
from typing import Dict, List, Sequence, Tuple

import numpy as np

__all__ = ["MEASURED", "MEASURED_ON", "MEASURED_CORES", "fit_power_law", "predict", "estimate", "table_from_rows"]

MEASURED_ON = (
    "vm, x86_64 (AVX-512), 2 cores, the default study's run of 2026-12-07 (docs/study.md; medians over k, noise "
    "and seeds; a CI run shared the cores during about half of the n = 2000 cells)"
)
MEASURED_CORES = 2
# (n, d, seconds): made by `python -m flatext.study.costs ROWS.parquet`
MEASURED: List[Tuple[int, int, float]] = [
    (250, 8, 1.2),
    (250, 16, 1.2),
    (250, 32, 1.9),
    (500, 8, 6.3),
    (500, 16, 5.9),
    (500, 32, 7.8),
    (1000, 8, 31.5),
    (1000, 16, 19.5),
    (1000, 32, 21.3),
    (2000, 8, 168.8),
    (2000, 16, 109.3),
    (2000, 32, 95.6),
]


def _is_large(n: int, d: int, m: int | None = None) -> bool:
    from ..sweeps.executor import LARGE_CELL

    return n * (n if m is None else m) * d >= LARGE_CELL


def fit_power_law(table: Sequence[Tuple[int, int, float]] = ()) -> Tuple[float, float, float]:
    """``(c, a, b)`` with ``log seconds = c + a log n + b log d``, least squares over ``table``
    (default: every row of ``MEASURED``)."""
    table = list(table) or MEASURED
    if len(table) < 3:
        raise ValueError(f"table: need at least 3 measured (n, d, seconds) rows, got {len(table)}")
    A = np.array([[1.0, math.log(n), math.log(d)] for n, d, _ in table])
    y = np.log([s for _, _, s in table])
    coef = np.linalg.lstsq(A, y, rcond=None)[0]
    return float(coef[0]), float(coef[1]), float(coef[2])


def _fits() -> Dict[bool, Tuple[float, float, float]]:
    """One fit per kind of cell (large: True), each over its own measured rows (or all rows when
    a kind has fewer than 3: a coarser model, still from measurements)."""
    out = {}
    for large in (False, True):
        rows = [r for r in MEASURED if _is_large(r[0], r[1]) == large]
        out[large] = fit_power_law(rows if len(rows) >= 3 else MEASURED)
    return out


def predict(n: int, d: int, coef=None) -> float:
    """Seconds of one cell at (n, d) (width m = n), as the local executor runs it, by the power law."""
    c, a, b = coef or _fits()[_is_large(n, d)]
    return math.exp(c + a * math.log(n) + b * math.log(d))


def estimate(cells: List[dict], workers: int) -> Dict:
    """Per (n, d): predicted seconds of each cell (the measured value at a measured (n, d) and width
    m = n, else :func:`predict`); ``wall``: the small cells' sum over ``workers`` plus the large
    cells' sum; ``total``: the sum of all; ``coef``: the fits (small, large)."""
    fits = _fits()
    measured = {(n, d): s for n, d, s in MEASURED}
    per: Dict[Tuple[int, int], List[float]] = {}
    small = large = 0.0
    for c in cells:
        big = _is_large(c["n"], c["d"], c.get("m"))
        key = (c["n"], c["d"])
        at_measured = key in measured and c.get("m", c["n"]) == c["n"]
        s = measured[key] if at_measured else predict(c["n"], c["d"], fits[big])
        per.setdefault(key, []).append(s)
        large, small = (large + s, small) if big else (large, small + s)
    return {
        "per": per,
        "total": small + large,
        "wall": small / max(1, workers) + large,
        "coef": (fits[False], fits[True]),
    }


def table_from_rows(rows) -> List[Tuple[int, int, float]]:
    """``(n, d, mean seconds)`` per (n, d) of a study's rows (a DataFrame, or a Parquet path)."""
    import pandas as pd

    df = pd.read_parquet(rows) if isinstance(rows, str) else rows
    mean = df[df["status"] == "ok"].groupby(["n", "d"])["time_total"].mean()
    return [(int(n), int(d), round(float(s), 1)) for (n, d), s in mean.items()]


if __name__ == "__main__":  # pragma: no cover - the measurement itself
    if len(sys.argv) != 2:
        sys.exit("usage: python -m flatext.study.costs ROWS.parquet")
    print("MEASURED = [")
    for n, d, s in table_from_rows(sys.argv[1]):
        print(f"    ({n}, {d}, {s}),")
    print("]")
