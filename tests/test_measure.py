"""flatext.measure: every field is the direct kernel call; the null loss is E[f*^2]; rows and dicts."""

from __future__ import annotations

import math

import flatext as fx
import numpy as np
import pytest
from flatext.measure import MEASUREMENTS
from flatext.teachers import SumOfSingleIndex


def problem(seed=0, n=24, d=4, m=10, p=1.0):
    rng = np.random.default_rng(seed)
    teacher = SumOfSingleIndex.random(d, ["relu", "abs"], [1.0, 0.5], seed=3)
    X, y = teacher.sample(n, seed=rng)
    W = rng.standard_normal((m, d)) / np.sqrt(d)
    a = rng.standard_normal(m) / np.sqrt(m)
    return W, a, X, y, teacher


def test_each_field_is_the_direct_kernel_call():
    W, a, X, y, t = problem()
    r = fx.measure(W, a, X, y, t)
    assert r.train_loss == float(fx.loss(W, a, X, y))
    res = fx.forward(W, a, X) - y
    assert r.max_residual == float(np.max(np.abs(res)))
    assert r.max_residual_rel == r.max_residual / max(1.0, float(np.max(np.abs(y))))
    assert r.trace == float(fx.hessian_trace(W, a, X, y))
    assert r.orbit_min_trace == float(fx.orbit_min_trace(W, a, X, y))
    assert r.top_eigenvalue == float(fx.hessian_top_eigenvalues(W, a, X, y, 1)[0])
    pop = fx.population_loss(W, a, t, method="exact")
    assert r.population_loss == pop.value and r.population_method == "exact" and r.population_stderr == 0.0
    assert r.population_loss_rel == r.population_loss / r.null_loss
    assert set(r.seconds) == set(MEASUREMENTS)  # with a teacher, which=None measures (and times) every one
    assert all(s >= 0 for s in r.seconds.values())
    assert r.notes == ()


def test_values_against_independent_numpy():
    W, a, X, y, t = problem(seed=1)
    r = fx.measure(W, a, X, y, t, which=["train_loss", "trace", "population_loss"])
    Z = X @ W.T
    f = np.maximum(Z, 0) @ a
    s = np.sum(X * X, axis=1)
    n = X.shape[0]
    assert r.train_loss == pytest.approx(0.5 * np.mean((f - y) ** 2), rel=1e-12)
    assert r.train_mse == pytest.approx(np.mean((f - y) ** 2), rel=1e-12)  # no 1/2, like the population loss
    tr = (np.sum(np.maximum(Z, 0) ** 2) + np.sum(a[None, :] ** 2 * (Z > 0) * s[:, None])) / n
    assert r.trace == pytest.approx(tr, rel=1e-12)
    # null loss E[f*(x)^2] for f* = relu(u1.x) + 0.5|u2.x|, u1 _|_ u2 unit: 1/2 + 0.25 + 2*0.5*E[relu(g)]E[|h|]
    null = 0.5 + 0.25 * 1.0 + 2 * 0.5 * (1 / math.sqrt(2 * math.pi)) * math.sqrt(2 / math.pi)
    assert r.null_loss == pytest.approx(null, rel=1e-12)
    # the population loss against Monte Carlo on fresh inputs (3 standard errors)
    Xs = np.random.default_rng(7).standard_normal((200_000, 4))
    e = (np.maximum(Xs @ W.T, 0) @ a - t(Xs)) ** 2
    assert abs(r.population_loss - e.mean()) < 4 * e.std() / math.sqrt(len(e))
    # not asked for: None, and absent from the row
    assert r.max_residual is None and r.orbit_min_trace is None and r.top_eigenvalue is None
    row = r.to_row()
    assert "orbit_min_trace" not in row and row["trace"] == r.trace and row["time_trace"] == r.seconds["trace"]
    assert row["notes"] is None


def test_monte_carlo_for_other_input_laws_and_paired_null_loss():
    W, a, X, y, t = problem(seed=2)
    r = fx.measure(W, a, X, y, t, which=["population_loss"], inputs="sphere", n_samples=5000, seed=11)
    assert r.population_method == "mc" and r.population_stderr > 0
    v = fx.population_loss(W, a, t, method="mc", inputs="sphere", n_samples=5000, seed=11)
    z = fx.population_loss(np.zeros((1, 4)), np.zeros(1), t, method="mc", inputs="sphere", n_samples=5000, seed=11)
    assert r.population_loss == v.value and r.null_loss == z.value


def test_no_orbit_minimum_is_nan_with_a_reason():
    # p = 2 far from interpolation: some B_i < 0, no orbit minimum
    rng = np.random.default_rng(0)
    for seed in range(50):
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((12, 3))
        y = 10 * rng.standard_normal(12)
        W = rng.standard_normal((4, 3))
        a = rng.standard_normal(4)
        parts = fx.hessian_trace_parts(W, a, X, y, power=2.0)
        if np.any(parts.per_neuron_w <= 0) and np.any(parts.per_neuron_a > 0):
            break
    else:  # pragma: no cover
        pytest.skip("no point without an orbit minimum found")
    with pytest.raises(ValueError):
        fx.orbit_min_trace(W, a, X, y, power=2.0)
    r = fx.measure(W, a, X, y, power=2.0, which=["orbit_min_trace", "trace"])
    assert math.isnan(r.orbit_min_trace) and r.trace == float(fx.hessian_trace(W, a, X, y, power=2.0))
    assert len(r.notes) == 1 and r.notes[0].startswith("orbit_min_trace:")
    assert r.to_row()["notes"] == r.notes[0]


def test_record_is_frozen_and_converts():
    W, a, X, y, t = problem()
    r = fx.measure(W, a, X, y, t, which=["train_loss", "population_loss"])
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        r.trace = 1.0
    d = r.as_dict()
    assert d["train_loss"] == r.train_loss and d["seconds"] == r.seconds and d["notes"] == []
    text = repr(r)
    # the two conventions side by side, named: train_loss with the 1/2, train_mse and population_loss without
    assert text.index("train_loss=") < text.index("train_mse=") < text.index("population_loss=") < text.index("null")
    assert "train_loss = (1/2n) sum r^2" in text and "population_loss = E(f - f*)^2: no 1/2" in text
    # without a teacher the population loss is left out by default
    r2 = fx.measure(W, a, X, y)
    assert r2.population_loss is None and r2.null_loss is None and r2.trace is not None


@pytest.mark.parametrize(
    "kw, err, words",
    [
        (dict(which=["sharpness"]), ValueError, "unknown measurement"),
        (dict(which="trace"), TypeError, "which"),
        (dict(which=["population_loss"]), ValueError, "needs a teacher"),
        (dict(inputs="cube"), ValueError, "inputs"),
        (dict(population="guess"), ValueError, "population"),
    ],
)
def test_bad_arguments_are_named(kw, err, words):
    W, a, X, y, _ = problem()
    with pytest.raises(err, match=words):
        fx.measure(W, a, X, y, **kw)


def test_float32():
    W, a, X, y, t = problem()
    W, a, X, y = (v.astype(np.float32) for v in (W, a, X, y))
    r = fx.measure(W, a, X, y, t, which=["train_loss", "trace", "population_loss"])
    assert r.train_loss == float(fx.loss(W, a, X, y)) and r.trace == float(fx.hessian_trace(W, a, X, y))
    assert r.population_loss == fx.population_loss(W, a, t).value
