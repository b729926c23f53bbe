"""One cell of the study: the flattest interpolator, the memorizer, GD and label-noise SGD on one data set.

The cell is a sweeps cell whose method is ``"study"``: :func:`flatext.sweeps.cells.run_cell`
draws the data (:func:`flatext.sweeps.cells.cell_data`), calls :func:`study_method` and
measures the network it returns (the flattest interpolator) with :func:`flatext.measure`,
so the row has the sweeps' columns (``orbit_min_trace``, ``population_loss_rel``, ...,
``status``, ``time_*``) plus the columns below.

Registration: the sweeps' runner dispatches on :data:`flatext.sweeps.cells.METHOD_IMPLS`;
importing this module adds ``"study"`` there. Worker processes (the local pool spawns
them; Dask workers) import it when they unpickle a cell: every study cell carries a
:class:`StudyMarker`, an object of this module.

Columns added (``<x>`` is ``memorizer``, ``gd`` or ``lnsgd``):

- ``k``, ``interpolates`` (the flattest network's max|r| within 1e-8 of the label scale);
- ``flattest_method`` (what was passed as ``method=``, or ``"n/a"`` when
  :func:`flatext.flattest_interpolator` has no such keyword), ``flattest_result_method``
  (which method produced the network), ``flattest_result_restricted_optimum``,
  ``flattest_result_lower_bound``, ``flattest_result_max_ratio``, ``flattest_result_cells``,
  ``flattest_result_message`` (the cell-sparse method's bounds), ``flattest_iterations``,
  ``flattest_reason``, ``flattest_converged``, ``flattest_grad_ratio``, ``flattest_polish``,
  ``flattest_search_orbit_min_trace``, ``flattest_certified_optimum`` (the certified global
  optimum, NaN when not certified), ``flattest_gap`` (``orbit_min_trace / certified - 1``),
  ``flattest_seconds``;
- ``<x>_status`` (``"ok"``, ``"skipped: ..."`` saying why, or ``"failed: ..."``),
  ``<x>_orbit_min_trace``, ``<x>_population_loss_rel``, ``<x>_max_residual_rel``,
  ``<x>_interpolates``, ``<x>_seconds``;
- ``trace_ratio_memorizer``: the memorizer's orbit-minimal trace over the flattest one's.
"""

from __future__ import annotations

import inspect
import math
import time

import numpy as np

from ..curvature import hessian_top_eigenvalues
from ..interpolators import flattest_interpolator, memorizing_interpolator
from ..measure import measure
from ..reproduce.problems import RESIDUAL_TOL
from ..sweeps import cells as _sweep_cells
from ..training import label_noise_sgd, train

__all__ = ["STUDY_KIND", "StudyMarker", "study_method", "has_method_keyword"]

STUDY_KIND = "study"


class StudyMarker:
    """Carried by every study cell: unpickling it imports this module (which registers ``"study"``)."""

    def __eq__(self, other):
        return isinstance(other, StudyMarker)

    def __hash__(self):
        return 0


def has_method_keyword() -> bool:
    """Whether :func:`flatext.flattest_interpolator` takes ``method=``."""
    return "method" in inspect.signature(flattest_interpolator).parameters


def _measured(prefix, W, a, X, y, teacher, cell):
    m = measure(
        np.ascontiguousarray(W, dtype=X.dtype),
        np.ascontiguousarray(a, dtype=X.dtype),
        X,
        y,
        teacher,
        power=cell["power"],
        neg=cell["neg"],
        which=["max_residual", "trace", "orbit_min_trace", "population_loss"],
        population="exact",
    )
    return {
        f"{prefix}_trace": m.trace,
        f"{prefix}_orbit_min_trace": m.orbit_min_trace,
        f"{prefix}_population_loss_rel": m.population_loss_rel,
        f"{prefix}_max_residual_rel": m.max_residual_rel,
        f"{prefix}_interpolates": bool(m.max_residual_rel <= RESIDUAL_TOL),
    }


def _guarded(prefix, fn):
    """Run ``fn() -> dict`` and time it; a failure is recorded in ``<prefix>_status``, not raised."""
    t = time.perf_counter()
    try:
        out = fn()
        out[f"{prefix}_status"] = "ok"
    except Exception as e:  # one competitor failing must not lose the cell
        out = {f"{prefix}_status": f"failed: {type(e).__name__}: {e}"[:300]}
    out[f"{prefix}_seconds"] = time.perf_counter() - t
    return out


def _memorizer(cell, data):
    X, y = data["X"], data["y"]
    W, a = memorizing_interpolator(X, y, power=cell["power"], neg=cell["neg"])
    return _measured("memorizer", W, a, X, y, data["teacher"], cell)


def _gd(cell, data, p):
    X, y, W0, a0 = data["X"], data["y"], data["W0"], data["a0"]
    kw = dict(power=cell["power"], neg=cell["neg"])
    lam = float(hessian_top_eigenvalues(W0, a0, X, y, k=1, max_iter=100, tol=1e-2, **kw)[0])
    lr = min(0.2, 0.9 / max(lam, 1e-12))  # GD's stable step at the start, as in flatext reproduce
    # the Gauss-Newton polish runs whenever the loss is below 1e-2 (polish_factor x tol), as flatext reproduce
    # polishes every trained point: GD's point itself rarely interpolates to the 1e-8 the comparison needs
    res = train(
        W0,
        a0,
        X,
        y,
        method="gd",
        lr=lr,
        max_iter=p["gd_max_iter"],
        tol=1e-14,
        polish_factor=1e12,
        polish_max_iter=500,
        **kw,
    )
    out = _measured("gd", res.W, res.a, X, y, data["teacher"], cell)
    out.update(gd_lr=lr, gd_reason=res.reason, gd_iterations=res.iterations, gd_polish=res.polish)
    return out


def _lnsgd(cell, data, p):
    X, y, W0, a0 = data["X"], data["y"], data["W0"], data["a0"]
    res = label_noise_sgd(
        W0,
        a0,
        X,
        y,
        noise=p["lnsgd_noise"],
        batch=min(p["lnsgd_batch"], cell["n"]),
        lr=p["lnsgd_lr"],
        max_iter=p["lnsgd_steps"],
        seed=[cell["seed"], 5],
        power=cell["power"],
        neg=cell["neg"],
        polish=True,
    )
    out = _measured("lnsgd", res.W, res.a, X, y, data["teacher"], cell)
    out.update(lnsgd_reason=res.reason, lnsgd_polish=res.polish)
    return out


def _trainer(prefix, fn, cell, data, p):
    cap = p[f"{prefix}_max_n"]
    if cell["n"] > cap:
        return {f"{prefix}_status": f"skipped: n = {cell['n']} > {prefix}_max_n = {cap} (cost ~ n m d steps)"}
    return _guarded(prefix, lambda: fn(cell, data, p))


def _flattest(cell, data, p):
    kw = dict(power=cell["power"], neg=cell["neg"], max_iter=p["flattest_max_iter"])
    kw["polish"] = None if p["flattest_polish"] == "off" else p["flattest_polish"]
    if has_method_keyword():
        kw["method"] = p["flattest_method"]
        if p.get("flattest_max_seconds") is not None:
            kw["max_seconds"] = p["flattest_max_seconds"]
    t = time.perf_counter()
    res = flattest_interpolator(data["W0"], data["a0"], data["X"], data["y"], **kw)
    cert = float(res.certified_optimum)
    info = {
        "flattest_method": kw.get("method", "n/a"),
        "flattest_iterations": int(res.iterations),
        "flattest_reason": res.reason,
        "flattest_converged": bool(res.converged),
        "flattest_grad_ratio": float(res.grad_ratio),
        "flattest_polish": res.polish,
        "flattest_search_orbit_min_trace": float(res.search_orbit_min_trace),
        "flattest_certified_optimum": cert,
        "flattest_gap": float(res.orbit_min_trace) / cert - 1.0 if math.isfinite(cert) and cert > 0 else math.nan,
        "flattest_seconds": time.perf_counter() - t,
    }
    # what the cell-sparse method reports (NaN / 0 / "" for the manifold search)
    for name in ("method", "restricted_optimum", "lower_bound", "max_ratio", "cells", "message"):
        if hasattr(res, name):
            info[f"flattest_result_{name}"] = getattr(res, name)
    return res, info


def study_method(cell, data, p):
    """The sweeps' method ``"study"``: returns the flattest interpolator ``(W, a, info)``; ``info`` holds the rest."""
    res, info = _flattest(cell, data, p)
    info["k"] = int(len(cell["teacher"]["links"]))
    info["interpolates"] = bool(res.max_residual <= RESIDUAL_TOL * max(1.0, float(np.max(np.abs(data["y"])))))
    info.update(_guarded("memorizer", lambda: _memorizer(cell, data)))
    info.update(_trainer("gd", _gd, cell, data, p))
    info.update(_trainer("lnsgd", _lnsgd, cell, data, p))
    mem = info.get("memorizer_orbit_min_trace", math.nan)
    info["trace_ratio_memorizer"] = mem / res.orbit_min_trace if res.orbit_min_trace > 0 else math.nan
    return res.W, res.a, info


_sweep_cells.METHOD_IMPLS[STUDY_KIND] = study_method
