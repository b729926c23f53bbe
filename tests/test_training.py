"""flatext.train: stop reasons, the polish (within a factor of tol, its cap, best point), callbacks, SAM plateaus."""

from __future__ import annotations

import warnings

import flatext as fx
import numpy as np
import pytest
from flatext.training import TrainResult, train


def problem(seed=0, n=12, d=3, m=16):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.maximum(X[:, 0], 0) - 0.5 * np.abs(X[:, 1])
    W = rng.standard_normal((m, d)) / np.sqrt(d)
    a = rng.standard_normal(m) / np.sqrt(m)
    return W, a, X, y


def test_exported_and_documented():
    assert train is fx.train and TrainResult is fx.TrainResult
    doc = fx.train.__doc__
    assert "Parameters\n    ----------" in doc and "Returns\n    -------" in doc
    for name in ("polish_factor", "polish_max_iter", "callback", "callback_every", "record_every"):
        assert f"\n    {name} :" in doc, name


def test_polish_runs_when_the_loss_stops_just_short_of_tol():
    W, a, X, y = problem()
    L = train(W, a, X, y, lr=0.2, max_iter=400, tol=0.0, polish=False).loss
    tol = L / 10  # training ends at max_iter 10x above tol: inside the default factor 100
    plain = train(W, a, X, y, lr=0.2, max_iter=400, tol=tol, polish=False)
    assert plain.reason == "max_iter" and not plain.converged and plain.polish == "off" and plain.loss == L
    r = train(W, a, X, y, lr=0.2, max_iter=400, tol=tol)
    assert r.reason == "max_iter" and r.polished and r.polish == "converged" and r.loss == L
    assert r.max_residual_before == plain.max_residual_before
    res = np.max(np.abs(fx.forward(r.W, r.a, X) - y))
    assert r.max_residual_after == pytest.approx(res, rel=1e-6) and res <= 1e-10 * max(1, np.max(np.abs(y)))
    # the same run with the factor at 5: no polish
    s = train(W, a, X, y, lr=0.2, max_iter=400, tol=tol, polish_factor=5.0)
    assert s.polish == "skipped" and not s.polished
    np.testing.assert_array_equal(s.W, plain.W)


def test_polish_cap_is_passed_and_the_best_point_is_returned():
    W, a, X, y = problem(seed=1)
    r = train(W, a, X, y, lr=0.2, max_iter=100, tol=1e-3, polish_max_iter=1, polish_tol=1e-14)
    # one Gauss-Newton step cannot reach 1e-14 but lowers max|r|: that point is returned, and said so
    q = fx.find_interpolator(
        train(W, a, X, y, lr=0.2, max_iter=100, tol=1e-3, polish=False).W,
        train(W, a, X, y, lr=0.2, max_iter=100, tol=1e-3, polish=False).a,
        X,
        y,
        tol=1e-14,
        max_iter=1,
    )
    assert q.iterations == 1 and not q.converged
    assert r.polish == "improved" and r.polished and r.max_residual_after == q.max_residual
    assert r.max_residual_after < r.max_residual_before
    np.testing.assert_array_equal(r.W, q.W)
    assert "returning the polished point" in r.message


def test_callback_every_k_steps_and_same_bits():
    W, a, X, y = problem()
    ref = train(W, a, X, y, lr=0.1, max_iter=250, tol=0.0, polish=False, record_every=7)
    seen = []

    def cb(info):
        seen.append((info["iteration"], info["loss"], fx.hessian_trace(info["W"], info["a"], X, y)))

    r = train(W, a, X, y, lr=0.1, max_iter=250, tol=0.0, polish=False, record_every=7, callback=cb, callback_every=40)
    assert [s[0] for s in seen] == [40, 80, 120, 160, 200, 240, 250]
    np.testing.assert_array_equal(r.W, ref.W)  # segments of the C++ loop: the same steps
    np.testing.assert_array_equal(r.history["iteration"], ref.history["iteration"])
    np.testing.assert_array_equal(r.history["loss"], ref.history["loss"])
    assert seen[-1][1] == r.loss and seen[-1][2] == float(fx.hessian_trace(r.W, r.a, X, y))


def test_callback_can_stop():
    W, a, X, y = problem()
    r = train(
        W,
        a,
        X,
        y,
        lr=0.1,
        max_iter=1000,
        tol=0.0,
        polish=False,
        callback=lambda info: info["iteration"] >= 30,
        callback_every=10,
    )
    assert r.reason == "callback" and r.iterations == 30 and not r.converged
    assert r.history["iteration"][-1] == 30


def test_reasons_tol_and_diverged():
    W, a, X, y = problem()
    r = train(W, a, X, y, lr=0.2, max_iter=5000, tol=1e-3)
    assert r.reason == "tol" and r.converged and r.polish == "converged"
    d = train(W, a, X, y, lr=1e4, max_iter=1000)
    assert d.reason == "diverged" and np.all(np.isfinite(d.W))


def test_fixed_rho_sam_plateau_warns():
    W, a, X, y = problem()
    with pytest.warns(RuntimeWarning, match="fixed rho"):
        r = train(W, a, X, y, method="sam", lr=0.2, rho=0.3, max_iter=3000, tol=1e-12, polish=False)
    assert r.reason == "max_iter"
    with warnings.catch_warnings():  # a small rho reaches tol: no warning
        warnings.simplefilter("error")
        s = train(W, a, X, y, method="sam", lr=0.2, rho=1e-3, max_iter=5000, tol=1e-3, polish=False)
    assert s.reason == "tol"


@pytest.mark.parametrize(
    "kw, err, words",
    [
        (dict(polish_max_iter=0), ValueError, "polish_max_iter"),
        (dict(polish_factor=0.5), ValueError, "polish_factor"),
        (dict(callback=3), TypeError, "callback"),
        (dict(callback=lambda i: None, callback_every=0), ValueError, "callback_every"),
        (dict(record_every=0), ValueError, "record_every"),
        (dict(max_iter=1.5), TypeError, "max_iter"),
        (dict(lr="fast"), ValueError, "lr"),
        (dict(lr="-0.5/lambda_max"), ValueError, "lr"),
        (dict(lr=0.0), ValueError, "lr"),
        (dict(lr=True), ValueError, "lr"),
        (dict(max_seconds=0), ValueError, "max_seconds"),
        (dict(method="label_noise_sgd", max_seconds=-1.0), ValueError, "max_seconds"),
    ],
)
def test_bad_arguments_are_named(kw, err, words):
    W, a, X, y = problem()
    with pytest.raises(err, match=words):
        train(W, a, X, y, **kw)


def test_every_parameter_and_field_is_documented_in_workflow_md():
    import dataclasses
    import inspect
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "docs", "workflow.md")
    with open(path) as fh:
        text = fh.read()
    for name in list(inspect.signature(train).parameters)[4:]:
        assert f"`{name}`" in text or f"`{name}," in text or f" {name}`" in text, name
    for f in dataclasses.fields(TrainResult):
        assert f.name in text, f.name


# ---------------------------------------------------------------------------
# Step sizes from the curvature; the time budget
# ---------------------------------------------------------------------------


def _numpy_relu_hessian(W, a, X, y):
    """The dense Hessian of L = (1/2n) sum r^2 for a ReLU net, by its formula (theta = [W.ravel(), a]):
    (1/n) sum_j J_j J_j^T + r_j S_j, with S_j's only non-zero blocks d2f/da_i dw_i = 1{z_ij > 0} x_j."""
    m, d = W.shape
    n = X.shape[0]
    Z = X @ W.T
    act = (Z > 0).astype(float)
    r = np.maximum(Z, 0) @ a - y
    H = np.zeros((m * d + m, m * d + m))
    for j in range(n):
        J = np.concatenate([(a * act[j])[:, None] * X[j][None, :], np.maximum(Z[j], 0)[:, None]], axis=1)
        Jf = np.concatenate([J[:, :d].ravel(), J[:, d]])
        H += np.outer(Jf, Jf)
        for i in range(m):
            if act[j, i]:
                H[i * d : (i + 1) * d, m * d + i] += r[j] * X[j]
                H[m * d + i, i * d : (i + 1) * d] += r[j] * X[j]
    return H / n


def test_lr_auto_and_fraction_come_from_the_numpy_top_eigenvalue():
    W, a, X, y = problem(n=20, d=4, m=12)
    lam = float(np.linalg.eigvalsh(_numpy_relu_hessian(W, a, X, y))[-1])
    r = train(W, a, X, y, lr="auto", max_iter=0, polish=False)
    assert r.lambda_max == pytest.approx(lam, rel=1e-3) and r.lr == pytest.approx(0.9 / lam, rel=1e-3)
    h = train(W, a, X, y, lr="0.25/lambda_max", max_iter=0, polish=False)
    assert h.lr == pytest.approx(0.25 / lam, rel=1e-3)
    n = train(W, a, X, y, lr=0.05, max_iter=0, polish=False)
    assert n.lr == 0.05 and np.isnan(n.lambda_max)
    s = fx.label_noise_sgd(W, a, X, y, noise=0.1, batch=5, lr="auto", max_iter=0)
    assert s.lr == pytest.approx(0.9 / lam, rel=1e-3)


def test_a_fixed_lr_diverges_at_width_and_auto_does_not():
    # lambda_max at a unit-scale init grows with the width: lr = 0.2 is above 2 / lambda_max at n = 100, m = 200
    rng = np.random.default_rng(1)
    n, d, m = 100, 8, 200
    X = rng.standard_normal((n, d))
    y = np.maximum(X[:, 0], 0) + 0.5 * np.abs(X[:, 1])
    W, a = rng.standard_normal((m, d)) / np.sqrt(d), rng.standard_normal(m) / np.sqrt(m)
    fixed = train(W, a, X, y, lr=0.2, max_iter=2000, polish=False)
    auto = train(W, a, X, y, lr="auto", max_iter=2000, polish=False)
    assert 2 / auto.lambda_max < 0.2
    assert fixed.reason == "diverged" and not fixed.interpolating
    assert auto.reason == "max_iter" and auto.loss < 0.1 * fx.loss(W, a, X, y)
    assert np.all(np.diff(auto.history["loss"]) <= 1e-12)  # a stable step: the loss never rises


def _slow_problem():
    """GD with tol = 0 and 10^9 steps: it would run for hours."""
    rng = np.random.default_rng(3)
    n, d, m = 200, 8, 400
    X = rng.standard_normal((n, d))
    y = np.maximum(X[:, 0], 0) + 0.5 * np.abs(X[:, 1])
    return rng.standard_normal((m, d)) / np.sqrt(d), rng.standard_normal(m) / np.sqrt(m), X, y


def test_max_seconds_is_respected_and_the_point_is_the_unbudgeted_run_s():
    import time

    W, a, X, y = _slow_problem()
    t0 = time.perf_counter()
    train(W, a, X, y, lr=0.01, max_iter=20, tol=0.0, polish=False)
    step = (time.perf_counter() - t0) / 20  # one gradient step, measured here (a loaded machine is slower)
    budget = 1.5
    seen = []
    t0 = time.perf_counter()
    r = train(W, a, X, y, lr="auto", max_iter=10**9, tol=0.0, max_seconds=budget,
              callback=lambda i: seen.append(i["elapsed"]), callback_every=50)  # fmt: skip
    elapsed = time.perf_counter() - t0
    assert r.reason == "time_budget" and not r.converged and r.polish == "skipped"
    assert elapsed <= 1.1 * budget + step + 0.05, (elapsed, step)
    assert r.iterations > 0 and r.seconds <= elapsed and seen and seen == sorted(seen) and seen[-1] <= elapsed
    # a valid answer: the run's own point, the same bits as an unbudgeted run of as many steps
    same = train(W, a, X, y, lr=r.lr, max_iter=r.iterations, tol=0.0, polish=False)
    assert np.array_equal(same.W, r.W) and np.array_equal(same.a, r.a) and same.loss == r.loss
    assert r.loss < fx.loss(W, a, X, y)
    assert r.history["iteration"][-1] == r.iterations


def test_a_loss_below_tol_is_not_an_interpolator_without_a_converged_polish():
    W, a, X, y = problem()
    r = train(W, a, X, y, lr=0.2, max_iter=5000, tol=1e-3, polish_max_iter=1)  # one Gauss-Newton step
    res = np.max(np.abs(fx.forward(r.W, r.a, X) - y))
    assert r.converged and r.reason == "tol" and r.polish == "improved" and res > 1e-10
    assert not r.interpolating
    full = train(W, a, X, y, lr=0.2, max_iter=5000, tol=1e-3)
    assert full.polish == "converged" and full.interpolating
    off = train(W, a, X, y, lr=0.2, max_iter=5000, tol=1e-3, polish=False)
    assert off.interpolating == (fx.loss(off.W, off.a, X, y) <= 1e-3)  # polish off: training's own tol
