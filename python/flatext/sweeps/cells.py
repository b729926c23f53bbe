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
cell of a sweep sees the same teacher unless the sweep varies it.

Methods go through a registry (:data:`METHOD_IMPLS`); a method whose API is not
available in this build gives rows with ``status = "error"`` and a message
saying which function is missing, without stopping the other methods.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
import traceback

import numpy as np

__all__ = ["run_cell", "run_cells", "cell_data", "method_available", "METHOD_IMPLS", "SWEEP_DELAY_ENV"]

# Test/benchmark hook: seconds to sleep in every cell (to observe a sweep in flight).
SWEEP_DELAY_ENV = "FLATEXT_SWEEP_CELL_DELAY"


def _seed(seed, stream):
    return int(np.random.SeedSequence([int(seed), int(stream)]).generate_state(1)[0])


def _value(x):
    """A float from a float, numpy scalar, or a result object with ``.value``."""
    if hasattr(x, "value"):
        x = x.value
    return float(x)


# ---------------------------------------------------------------------------
# Teachers and data (flatext.teachers, or a numpy fallback)
# ---------------------------------------------------------------------------

_LINK_FUNCS = {
    "relu": lambda z: np.maximum(z, 0.0),
    "relu2": lambda z: np.maximum(z, 0.0) ** 2,
    "relu3": lambda z: np.maximum(z, 0.0) ** 3,
    "abs": np.abs,
    "he2": lambda z: z * z - 1.0,
    "he3": lambda z: z ** 3 - 3.0 * z,
    "he4": lambda z: z ** 4 - 6.0 * z * z + 3.0,
    "tanh": np.tanh,
}


class _FallbackSumOfSingleIndex:
    """numpy stand-in for ``flatext.teachers.SumOfSingleIndex`` (used when that module is missing)."""

    def __init__(self, directions, links, weights):
        self.directions = np.asarray(directions, dtype=np.float64)
        self.links = list(links)
        self.weights = np.ones(len(links)) if weights is None else np.asarray(weights, dtype=np.float64)

    @classmethod
    def random(cls, d, links, weights=None, seed=0):
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.standard_normal((d, len(links))))
        return cls(q.T, links, weights)

    def __call__(self, X):
        Z = np.asarray(X, dtype=np.float64) @ self.directions.T
        out = np.zeros(Z.shape[0])
        for k, ln in enumerate(self.links):
            out += self.weights[k] * _LINK_FUNCS[ln](Z[:, k])
        return out

    def sample(self, n, noise=0.0, inputs="gaussian", seed=None):
        rng = np.random.default_rng(seed)
        d = self.directions.shape[1]
        if inputs == "gaussian":
            X = rng.standard_normal((n, d))
        elif inputs == "sphere":
            X = rng.standard_normal((n, d))
            X *= np.sqrt(d) / np.linalg.norm(X, axis=1, keepdims=True)
        elif inputs == "rademacher":
            X = rng.choice([-1.0, 1.0], size=(n, d))
        else:
            raise ValueError(f"inputs: unknown input distribution {inputs!r}")
        y = self(X)
        if noise > 0:
            y = y + noise * rng.standard_normal(n)
        return X, y


_TEACHERS_MOD = []


def _teachers_module():
    if not _TEACHERS_MOD:  # look once per process (a failed import is slow to repeat)
        try:
            from .. import teachers  # noqa: F401
        except ImportError:
            teachers = None
        _TEACHERS_MOD.append(teachers)
    return _TEACHERS_MOD[0]


_TEACHER_CACHE = {}


def make_teacher(spec, d):
    """Build (and cache per process) the teacher of a ``teacher`` spec in dimension d.

    Returns ``(teacher, fallback)``: ``fallback`` is a string naming the numpy
    stand-in used when ``flatext.teachers`` is missing, else ``None``.
    """
    key = (json.dumps(spec, sort_keys=True), int(d))
    hit = _TEACHER_CACHE.get(key)
    if hit is None:
        if len(_TEACHER_CACHE) > 256:
            _TEACHER_CACHE.clear()
        hit = _TEACHER_CACHE[key] = _make_teacher(spec, d)
    return hit


def _make_teacher(spec, d):
    """Build the teacher of a cell's ``teacher`` spec in dimension d.

    Returns ``(teacher, fallback)``: ``fallback`` is a string naming the numpy
    stand-in used when ``flatext.teachers`` is missing, else ``None``.
    """
    kind = spec["kind"]
    T = _teachers_module()
    if T is None:
        if kind != "sum_of_single_index":
            raise RuntimeError(f"teacher kind {kind!r} needs flatext.teachers, which this build does not have")
        return _FallbackSumOfSingleIndex.random(d, spec["links"], spec.get("weights"), seed=spec["seed"]), \
            "teacher:numpy"
    if kind == "sum_of_single_index":
        return T.SumOfSingleIndex.random(d, spec["links"], spec.get("weights"), seed=spec["seed"]), None
    if kind == "multi_index":
        return T.MultiIndex.random(d, spec["r"], spec["link"], seed=spec["seed"]), None
    if kind == "planted":
        if hasattr(T.PlantedNetwork, "random"):
            return T.PlantedNetwork.random(d, spec["width"], power=spec["power"], neg=spec["neg"],
                                           seed=spec["seed"]), None
        rng = np.random.default_rng(spec["seed"])
        W = rng.standard_normal((spec["width"], d))
        W /= np.linalg.norm(W, axis=1, keepdims=True)
        a = rng.choice([-1.0, 1.0], size=spec["width"])
        return T.PlantedNetwork(W, a, power=spec["power"], neg=spec["neg"]), None
    raise ValueError(f"teacher.kind: unknown {kind!r}")


def cell_data(cell):
    """The cell's teacher, training data and initialization.

    Returns
    -------
    dict with ``teacher``, ``X`` (n, d), ``y`` (n,), ``W0`` (m, d), ``a0`` (m,)
    (``W0``/``a0`` are None for methods that take no initialization), and
    ``fallbacks`` (list of str).
    """
    dt = np.float32 if cell["dtype"] == "float32" else np.float64
    teacher, fb = make_teacher(cell["teacher"], cell["d"])
    X, y = teacher.sample(cell["n"], noise=cell["noise"], inputs=cell["inputs"], seed=_seed(cell["seed"], 1))
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
    return {"teacher": teacher, "X": X, "y": y, "W0": W0, "a0": a0, "fallbacks": [fb] if fb else []}


# ---------------------------------------------------------------------------
# Methods: name -> callable(cell, data, params) -> (W, a, info dict)
# ---------------------------------------------------------------------------


class MethodUnavailable(RuntimeError):
    """The flatext function a method needs is not in this build."""


def _need(name):
    import flatext

    f = getattr(flatext, name, None)
    if f is None:
        raise MethodUnavailable(f"flatext.{name} is not available in this build (flatext {flatext.__version__})")
    return f


def _res_info(res, fields):
    out = {}
    for f in fields:
        if hasattr(res, f):
            v = getattr(res, f)
            if isinstance(v, (bool, np.bool_)):
                out[f] = bool(v)
            elif isinstance(v, (int, np.integer)):
                out[f] = int(v)
            elif isinstance(v, (float, np.floating)):
                out[f] = float(v)
    return out


def _m_random(cell, data, p):
    return data["W0"], data["a0"], {}


# Defaults of the numpy GD/SAM fallback for parameters the sweep leaves out.
_FALLBACK_TRAIN = {"lr": 0.1, "rho": 0.05, "max_iter": 10000, "tol": 1e-10}


def _given(p, names):
    return {k: p[k] for k in names if p.get(k) is not None}


def _gd_fallback(cell, data, p, sam=False):
    """Plain full-batch GD / SAM in numpy on flatext.loss_grad (fallback while flatext.train is missing)."""
    import flatext

    p = dict(_FALLBACK_TRAIN, **p)
    W, a = data["W0"].copy(), data["a0"].copy()
    X, y = data["X"], data["y"]
    kw = dict(power=cell["power"], neg=cell["neg"])
    lr, tol = p["lr"], p["tol"]
    it = 0
    lo = float(flatext.loss(W, a, X, y, **kw))
    for it in range(1, p["max_iter"] + 1):
        lo, gW, ga = flatext.loss_grad(W, a, X, y, **kw)
        lo = float(lo)
        if lo <= tol or not np.isfinite(lo):
            it -= 1
            break
        if sam:
            gn = np.sqrt(float(np.sum(gW * gW) + np.sum(ga * ga))) + 1e-300
            e = p["rho"] / gn
            _, gW, ga = flatext.loss_grad(W + e * gW, a + e * ga, X, y, **kw)
        W = W - lr * gW
        a = a - lr * ga
    else:
        lo = float(flatext.loss(W, a, X, y, **kw))
    return W, a, {"iterations": it, "converged": bool(lo <= tol)}


def _m_train(kind):
    def run(cell, data, p):
        import flatext

        train = getattr(flatext, "train", None)
        if train is None:
            W, a, info = _gd_fallback(cell, data, p, sam=(kind == "sam"))
            info["fallback"] = f"{kind}:numpy"
            return W, a, info
        kw = dict(power=cell["power"], neg=cell["neg"], method=kind)
        kw.update(_given(p, ("lr", "max_iter", "tol", "rho")))
        res = train(data["W0"], data["a0"], data["X"], data["y"], **kw)
        return res.W, res.a, _res_info(res, ("iterations", "converged"))

    return run


def _m_project(cell, data, p):
    f = _need("find_interpolator")
    res = f(data["W0"], data["a0"], data["X"], data["y"], power=cell["power"], neg=cell["neg"],
            **_given(p, ("tol", "max_iter")))
    return res.W, res.a, _res_info(res, ("iterations", "converged"))


def _m_flattest(cell, data, p):
    f = _need("flattest_interpolator")
    res = f(data["W0"], data["a0"], data["X"], data["y"], power=cell["power"], neg=cell["neg"],
            **_given(p, ("max_iter", "balance", "tol")))
    return res.W, res.a, _res_info(res, ("iterations", "converged"))


def _m_memorize(cell, data, p):
    f = _need("memorizing_interpolator")
    kw = _given(p, ("kappa",))
    if p.get("pad"):
        if cell["m"] < cell["n"]:
            raise ValueError(f"memorize: pad=true needs m >= n, got m={cell['m']}, n={cell['n']}")
        kw["m"] = cell["m"]
    W, a = f(data["X"], data["y"], power=cell["power"], neg=cell["neg"], **kw)
    return W, a, {}


METHOD_IMPLS = {
    "random": _m_random,
    "gd": _m_train("gd"),
    "sam": _m_train("sam"),
    "project": _m_project,
    "flattest": _m_flattest,
    "memorize": _m_memorize,
}

# flatext functions each method needs (None: always available, maybe through a fallback).
METHOD_NEEDS = {
    "random": None,
    "gd": None,
    "sam": None,
    "project": "find_interpolator",
    "flattest": "flattest_interpolator",
    "memorize": "memorizing_interpolator",
}


def method_available(kind):
    """``(True, None)`` or ``(False, reason)`` for a method algorithm in this build."""
    import flatext

    need = METHOD_NEEDS.get(kind)
    if need is None or hasattr(flatext, need):
        return True, None
    return False, f"flatext.{need} is not available in this build (flatext {flatext.__version__})"


# ---------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------


def _population(cell, W, a, teacher, fallbacks):
    import flatext

    pop = cell["population"]
    f = getattr(flatext, "population_loss", None)
    kw = dict(power=cell["power"], neg=cell["neg"])
    if f is not None:
        if pop["method"] == "exact":
            v = f(W, a, teacher, method="exact", **kw)
            z = f(np.zeros_like(W[:1]), np.zeros_like(a[:1]), teacher, method="exact", **kw)
        else:
            s = _seed(cell["seed"], 3)
            v = f(W, a, teacher, method="mc", n_samples=pop["n_samples"], seed=s, **kw)
            z = f(np.zeros_like(W[:1]), np.zeros_like(a[:1]), teacher, method="mc", n_samples=pop["n_samples"],
                  seed=s, **kw)
        return _value(v), _value(z)
    # numpy Monte Carlo fallback on fresh Gaussian inputs, in chunks
    fallbacks.append("population_loss:mc-numpy")
    rng = np.random.default_rng(_seed(cell["seed"], 3))
    n, d = pop["n_samples"], W.shape[1]
    acc = acc0 = 0.0
    chunk = 8192
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        Xs = rng.standard_normal((k, d))
        t = teacher(Xs)
        fx = flatext.forward(np.asarray(W, np.float64), np.asarray(a, np.float64), Xs, **kw)
        acc += float(np.sum((fx - t) ** 2))
        acc0 += float(np.sum(t * t))
    return acc / n, acc0 / n


def _measure(cell, data, W, a, fallbacks, notes):
    import flatext

    X, y = data["X"], data["y"]
    kw = dict(power=cell["power"], neg=cell["neg"])
    want = set(cell["measurements"])
    out = {}
    W = np.ascontiguousarray(W, dtype=X.dtype)
    a = np.ascontiguousarray(a, dtype=X.dtype)
    if "train_loss" in want:
        out["train_loss"] = float(flatext.loss(W, a, X, y, **kw))
    if "max_residual" in want:
        r = flatext.forward(W, a, X, **kw) - y
        scale = max(float(np.max(np.abs(y))), 1e-300)
        out["max_residual"] = float(np.max(np.abs(r)))
        out["max_residual_rel"] = out["max_residual"] / scale
    if "trace" in want:
        out["trace"] = float(flatext.hessian_trace(W, a, X, y, **kw))
    if "orbit_min_trace" in want:
        try:
            out["orbit_min_trace"] = float(flatext.orbit_min_trace(W, a, X, y, **kw))
        except ValueError as e:  # no minimum away from interpolation
            out["orbit_min_trace"] = float("nan")
            notes.append(f"orbit_min_trace: {e}")
    if "top_eigenvalue" in want:
        import warnings

        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            out["top_eigenvalue"] = float(flatext.hessian_top_eigenvalues(W, a, X, y, 1, **kw)[0])
        if w:
            notes.append(f"top_eigenvalue: {w[0].message}")
    if "population_loss" in want:
        v, z = _population(cell, W, a, data["teacher"], fallbacks)
        out["population_loss"] = v
        out["null_loss"] = z
        out["population_loss_rel"] = v / z if z > 0 else float("nan")
    return out


# ---------------------------------------------------------------------------
# One cell -> one row
# ---------------------------------------------------------------------------

_PARAM_COLUMNS = ("n", "d", "m", "m_spec", "noise", "inputs", "power", "neg", "init_scale", "dtype", "method",
                  "method_kind", "seed")


def _base_row(cell):
    import flatext

    row = {"cell_id": cell["cell_id"]}
    for k in _PARAM_COLUMNS:
        row[k] = cell[k]
    t = cell["teacher"]
    row["teacher"] = t.get("name") or _teacher_label(t)
    row["teacher_kind"] = t["kind"]
    row["teacher_seed"] = t["seed"]
    row["teacher_spec"] = json.dumps(t, sort_keys=True)
    for k, v in cell["method_params"].items():
        row[f"method_{k}"] = v
    row["method_params"] = json.dumps(cell["method_params"], sort_keys=True)
    row["flatext_version"] = flatext.__version__
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
        except Exception:
            pass
    return f"local:{os.getpid()}"


def run_cell(cell):
    """Run one cell and return its row (a flat dict of JSON-able scalars).

    A cell that fails (its method unavailable, a solver error) still gives a
    row, with ``status = "error"`` and the message in ``error``; its
    measurement columns are absent.
    """
    t0 = time.perf_counter()
    c0 = time.process_time()
    row = _base_row(cell)
    fallbacks, notes = [], []
    delay = float(os.environ.get(SWEEP_DELAY_ENV, "0") or 0)
    try:
        if delay > 0:
            time.sleep(delay)
        data = cell_data(cell)
        fallbacks.extend(data["fallbacks"])
        impl = METHOD_IMPLS[cell["method_kind"]]
        t1 = time.perf_counter()
        W, a, info = impl(cell, data, cell["method_params"])
        t2 = time.perf_counter()
        if info.pop("fallback", None):
            fallbacks.append(f"{cell['method_kind']}:numpy")
        for k, v in info.items():
            row[k] = v
        row["width"] = int(np.asarray(W).shape[0])
        row.update(_measure(cell, data, W, a, fallbacks, notes))
        if "time" in cell["measurements"]:
            row["time_method"] = t2 - t1
        row["status"] = "ok"
        row["error"] = None
    except MethodUnavailable as e:
        row["status"] = "error"
        row["error"] = f"method {cell['method_kind']!r} unavailable: {e}"
    except Exception as e:  # a cell's failure is data, not a crash of the sweep
        row["status"] = "error"
        row["error"] = f"{type(e).__name__}: {e}"
        notes.append(traceback.format_exc(limit=3))
    row["fallbacks"] = ",".join(fallbacks) if fallbacks else None
    row["notes"] = "\n".join(notes) if notes else None
    if "time" in cell["measurements"]:
        row["time_total"] = time.perf_counter() - t0
        row["time_cpu"] = time.process_time() - c0
    return row


def run_cells(cells, threads=None):
    """Run several cells in order (one task of an executor); optionally set the kernels' threads first."""
    if threads:
        _set_threads(threads)
    return [run_cell(c) for c in cells]


_THREADS = [None]


def _set_threads(k):
    import flatext

    k = int(k)
    if _THREADS[0] != k:
        flatext.set_num_threads(k)
        _THREADS[0] = k


def error_row(cell, message):
    """The row of a cell that could not be run at all (e.g. its task kept failing)."""
    row = _base_row(cell)
    row["status"] = "error"
    row["error"] = message
    row["fallbacks"] = None
    row["notes"] = None
    return row
