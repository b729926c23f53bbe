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
