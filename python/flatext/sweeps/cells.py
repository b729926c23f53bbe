"""Run one cell of a sweep: data, initialization, method, measurements -> one row.

A cell is a dict made by :func:`flatext.sweeps.config.load_config`. Its row is a
deterministic function of the cell (parameters and seed), except the columns
``time_*``, ``hostname``, ``worker`` and ``pid``. Random streams are derived
from the cell's ``seed`` with :class:`numpy.random.SeedSequence`, one stream per
purpose, so the data do not depend on the method and are shared (paired)
across the methods of a seed::

    data seed  = SeedSequence([seed, 1])      -> teacher.sample(n, noise=, inputs=, seed=...)
    init seed  = SeedSequence([seed, 2])      -> W0 ~ init_scale N(0, 1/d),  a0 ~ init_scale N(0, 1/m)
    MC seed    = SeedSequence([seed, 3])      -> population loss by Monte Carlo

The teacher's own directions come from ``teacher.seed`` (default 0), so every
cell of a sweep sees the same teacher unless the sweep varies it. The
measurements are :func:`flatext.measure`'s, so a row agrees with a script that
calls it on the same network.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import traceback

import numpy as np

from .._native import _core
from ..info import source_digest
from ..interpolators import find_interpolator, flattest_interpolator, memorizing_interpolator
from ..measure import measure
from ..teachers import MultiIndex, PlantedNetwork, SumOfSingleIndex
from ..training import train
from .status import MEMORIZE_RTOL, row_status

__all__ = ["run_cell", "run_cells", "cell_data", "make_teacher", "error_row", "METHOD_IMPLS", "SWEEP_DELAY_ENV"]

# Test/benchmark hook: seconds to sleep in every cell (to observe a sweep in flight).
SWEEP_DELAY_ENV = "FLATEXT_SWEEP_CELL_DELAY"


def _seed(seed, stream):
    return int(np.random.SeedSequence([int(seed), int(stream)]).generate_state(1)[0])


# ---------------------------------------------------------------------------
# Teachers and data
# ---------------------------------------------------------------------------

_TEACHER_CACHE: dict = {}


def make_teacher(spec, d):
    """The teacher of a cell's ``teacher`` spec in dimension d (built once per process)."""
    key = (json.dumps(spec, sort_keys=True), int(d))
    hit = _TEACHER_CACHE.get(key)
    if hit is None:
        if len(_TEACHER_CACHE) > 256:
            _TEACHER_CACHE.clear()
        hit = _TEACHER_CACHE[key] = _make_teacher(spec, d)
    return hit


def _make_teacher(spec, d):
    kind = spec["kind"]
    if kind == "sum_of_single_index":
        return SumOfSingleIndex.random(d, spec["links"], spec.get("weights"), seed=spec["seed"])
    if kind == "multi_index":
        return MultiIndex.random(d, spec["r"], spec["link"], seed=spec["seed"])
    if kind == "planted":
        return PlantedNetwork.random(d, spec["width"], power=spec["power"], neg=spec["neg"], seed=spec["seed"])
    raise ValueError(f"teacher.kind: unknown {kind!r}")


def cell_data(cell):
    """The cell's teacher, training data and initialization.

    Returns
    -------
    dict with ``teacher``, ``X`` (n, d), ``y`` (n,), ``W0`` (m, d), ``a0`` (m,)
    (``W0``/``a0`` are None for methods that take no initialization).
    """
    dt = np.float32 if cell["dtype"] == "float32" else np.float64
    teacher = make_teacher(cell["teacher"], cell["d"])
    X, y = teacher.sample(
        cell["n"],
        noise=cell["noise"],
        inputs=cell["inputs"],
        seed=_seed(cell["seed"], 1),
        spectrum=cell.get("spectrum"),
    )
    X = np.ascontiguousarray(X, dtype=dt)
    y = np.ascontiguousarray(y, dtype=dt)
    W0 = a0 = None
    if cell["init_scale"] is not None:
        rng = np.random.default_rng(_seed(cell["seed"], 2))
        m, d = cell["m"], cell["d"]
        W0 = (cell["init_scale"] / np.sqrt(d)) * rng.standard_normal((m, d))
        a0 = (cell["init_scale"] / np.sqrt(m)) * rng.standard_normal(m)
        W0 = np.ascontiguousarray(W0, dtype=dt)
        a0 = np.ascontiguousarray(a0, dtype=dt)
    return {"teacher": teacher, "X": X, "y": y, "W0": W0, "a0": a0}


# ---------------------------------------------------------------------------
# Methods: name -> callable(cell, data, params) -> (W, a, info dict)
# info: iterations, converged, reason (why the method stopped), interpolating
# (the method delivered its promise: sets the row's status, see status.py; not a
# column), and per method grad_ratio (flattest), polish / polished, lr and
# lambda_max (gd, sam, label_noise_sgd: the step size used and the top Hessian
# eigenvalue at the start that set it, NaN for a numeric lr).
# ---------------------------------------------------------------------------


def _given(p, names):
    return {k: p[k] for k in names if p.get(k) is not None}


def _fit(fn, cell, data, **kw):
    """``fn(W0, a0, X, y, power=, neg=, **kw)`` from the cell's data and initialization."""
    return fn(data["W0"], data["a0"], data["X"], data["y"], power=cell["power"], neg=cell["neg"], **kw)


def _stop_info(res):
    """The info every iterative method gives: iterations, converged and why it stopped."""
    return {"iterations": res.iterations, "converged": res.converged, "reason": res.reason}


def _m_random(cell, data, p):
    return data["W0"], data["a0"], {}


_TRAIN_PARAMS = ("lr", "max_iter", "tol", "rho", "polish_factor", "polish_max_iter", "max_seconds", "noise", "batch")


def _m_train(kind):
    def run(cell, data, p):
        extra = {"seed": _seed(cell["seed"], 4)} if kind == "label_noise_sgd" else {}
        res = _fit(train, cell, data, method=kind, **_given(p, _TRAIN_PARAMS), **extra)
        return (
            res.W,
            res.a,
            {
                **_stop_info(res),
                "polish": res.polish,
                "polished": res.polished,
                "lr": res.lr,
                "lambda_max": res.lambda_max,
                "interpolating": res.interpolating,
            },
        )

    return run


def _m_project(cell, data, p):
    res = _fit(find_interpolator, cell, data, **_given(p, ("tol", "max_iter")))
    # find_interpolator stops at its tolerance or after max_iter steps (it raises otherwise)
    return res.W, res.a, dict(_stop_info(res), interpolating=res.converged)


def _m_flattest(cell, data, p):
    res = _fit(flattest_interpolator, cell, data, **_given(p, ("max_iter", "balance", "tol")))
    # the final projected-gradient ratio ||g_t|| / ||g||; interpolating: the retraction's tolerance
    grad_ratio = float(res.grad_ratio)
    rtol = p.get("tol") or (1e-4 if data["X"].dtype == np.float32 else 1e-10)
    fits = res.max_residual <= rtol * max(1.0, float(np.max(np.abs(data["y"]))))
    return res.W, res.a, dict(_stop_info(res), grad_ratio=grad_ratio, interpolating=bool(fits))


def _m_memorize(cell, data, p):
    kw = _given(p, ("kappa",))
    if p.get("pad"):
        if cell["m"] < cell["n"]:
            raise ValueError(f"memorize: pad=true needs m >= n, got m={cell['m']}, n={cell['n']}")
        kw["m"] = cell["m"]
    W, a = memorizing_interpolator(data["X"], data["y"], power=cell["power"], neg=cell["neg"], **kw)
    r = _core.forward(W, a, data["X"], float(cell["power"]), float(cell["neg"])) - data["y"]
    fits = float(np.max(np.abs(r))) <= MEMORIZE_RTOL * max(1.0, float(np.max(np.abs(data["y"]))))
    return W, a, {"interpolating": bool(fits)}


METHOD_IMPLS = {
    "random": _m_random,
    "gd": _m_train("gd"),
    "sam": _m_train("sam"),
    "label_noise_sgd": _m_train("label_noise_sgd"),
    "project": _m_project,
    "flattest": _m_flattest,
    "memorize": _m_memorize,
}


# ---------------------------------------------------------------------------
# Measurements: flatext.measure
# ---------------------------------------------------------------------------


def _measure(cell, data, W, a):
    X = data["X"]
    W = np.ascontiguousarray(W, dtype=X.dtype)
    a = np.ascontiguousarray(a, dtype=X.dtype)
    which = [m for m in cell["measurements"] if m != "time"]
    pop = cell["population"]
    return measure(
        W,
        a,
        X,
        data["y"],
        data["teacher"],
        power=cell["power"],
        neg=cell["neg"],
        which=which,
        inputs=cell["inputs"],
        spectrum=cell.get("spectrum"),
        population=pop["method"],
        n_samples=pop["n_samples"],
        seed=_seed(cell["seed"], 3),
    )


# ---------------------------------------------------------------------------
# One cell -> one row
# ---------------------------------------------------------------------------

_PARAM_COLUMNS = (
    "n",
    "d",
    "m",
    "m_spec",
    "noise",
    "inputs",
    "power",
    "neg",
    "init_scale",
    "dtype",
    "method",
    "method_kind",
    "seed",
)


def _base_row(cell):
    row = {"cell_id": cell["cell_id"]}
    for k in _PARAM_COLUMNS:
        row[k] = cell[k]
    t = cell["teacher"]
    row["teacher"] = t.get("name") or _teacher_label(t)
    row["teacher_kind"] = t["kind"]
    row["teacher_seed"] = t["seed"]
    row["teacher_spec"] = json.dumps(t, sort_keys=True)
    for k, v in cell["method_params"].items():
        # lr may be "auto" or "F/lambda_max": always text, so that one column has one type (the value used is `lr`)
        row[f"method_{k}"] = (v if isinstance(v, str) else f"{v:g}") if k == "lr" else v
    row["method_params"] = json.dumps(cell["method_params"], sort_keys=True)
    row["flatext_version"] = _core.__version__
    row["flatext_source"] = source_digest()
    row["hostname"] = socket.gethostname()
    row["pid"] = os.getpid()
    row["worker"] = _worker_name()
    return row


def _teacher_label(t):
    if t["kind"] == "sum_of_single_index":
        w = t.get("weights") or [1.0] * len(t["links"])
        return "+".join(f"{wi:g}*{ln}" if wi != 1 else ln for wi, ln in zip(w, t["links"]))
    if t["kind"] == "multi_index":
        return f"multi_index(r={t['r']},{t['link']})"
    return f"planted(width={t['width']},p={t['power']:g},neg={t['neg']:g})"


def _worker_name():
    if "distributed" in sys.modules:  # never import Dask just to ask
        try:
            return sys.modules["distributed"].get_worker().address
        except ValueError:  # not in a Dask worker
            pass
    return f"local:{os.getpid()}"


def run_cell(cell):
    """Run one cell and return its row (a flat dict of JSON-able scalars).

    ``status`` is one of :data:`flatext.sweeps.status.STATUSES`: ``"ok"``,
    ``"diverged"``, ``"not_interpolating"`` (measured, but not what the method
    promises) or ``"failed"`` (a solver error: the message in ``error``, no
    measurement columns).
    """
    t0 = time.perf_counter()
    c0 = time.process_time()
    row = _base_row(cell)
    notes = None
    delay = float(os.environ.get(SWEEP_DELAY_ENV, "0") or 0)
    try:
        if delay > 0:
            time.sleep(delay)
        data = cell_data(cell)
        t1 = time.perf_counter()
        W, a, info = METHOD_IMPLS[cell["method_kind"]](cell, data, cell["method_params"])
        t2 = time.perf_counter()
        status = row_status(info)
        row.update({k: v for k, v in info.items() if k != "interpolating"})
        row["width"] = int(np.asarray(W).shape[0])
        meas = _measure(cell, data, W, a).to_row()
        notes = meas.pop("notes")
        if "time" not in cell["measurements"]:
            meas = {k: v for k, v in meas.items() if not k.startswith("time_")}
        row.update(meas)
        if "time" in cell["measurements"]:
            row["time_method"] = t2 - t1
        row["status"] = status
        row["error"] = None
    except Exception as e:  # a cell's failure is data, not a crash of the sweep
        row["status"] = "failed"
        row["error"] = f"{type(e).__name__}: {e}"
        notes = traceback.format_exc(limit=3)
    row["notes"] = notes
    if "time" in cell["measurements"]:
        row["time_total"] = time.perf_counter() - t0
        row["time_cpu"] = time.process_time() - c0
    return row


def run_cells(cells, threads=None):
    """Run several cells in order (one task of an executor); optionally set the kernels' threads first."""
    if threads:
        set_threads(threads)
    return [run_cell(c) for c in cells]


_THREADS = [None]


def set_threads(k):
    """Set the kernels' thread count of this process (once per value)."""
    k = int(k)
    if _THREADS[0] != k:
        _core.set_num_threads(k)
        _THREADS[0] = k


def error_row(cell, message):
    """The row of a cell that could not be run at all (e.g. its task kept failing)."""
    row = _base_row(cell)
    row["status"] = "failed"
    row["error"] = message
    row["notes"] = None
    return row
