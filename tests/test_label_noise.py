"""Label-noise SGD: gradient noise statistics, determinism, convergence, and the drift to small trace."""

import flatext as fx
import numpy as np
import pytest
from flatext.training import label_noise_sgd


def _problem(seed=0, n=30, d=5, m=60):
    te = fx.SumOfSingleIndex.random(d, ["relu", "abs"], weights=[1.0, 0.5], seed=1)
    X, y = te.sample(n, seed=seed)
    rng = np.random.default_rng(seed)
    W0 = rng.standard_normal((m, d)) / np.sqrt(d)
    a0 = rng.standard_normal(m) / np.sqrt(m)
    return W0, a0, X, y


def test_one_step_gradient_is_unbiased_with_the_predicted_covariance():
    """One full-batch step with label noise: g = grad L(y) - (1/n) J^T xi, so E[g] = grad L and
    E||g - grad L||^2 = noise^2 tr(K) / n^2 (K = J J^T, the NTK Gram matrix)."""
    W0, a0, X, y = _problem()
    n = X.shape[0]
    noise = 0.7
    _, gW, ga = fx.loss_grad(W0, a0, X, y)
    g_true = np.concatenate([gW.ravel(), ga])
    draws = []
    for s in range(400):
        r = label_noise_sgd(W0, a0, X, y, noise=noise, batch=n, lr=1.0, max_iter=1, seed=s)
        draws.append(np.concatenate([(W0 - r.W).ravel(), a0 - r.a]))
    G = np.array(draws)
    dev = G - g_true
    sq = np.sum(dev**2, axis=1)
    predicted = noise**2 * np.trace(fx.ntk_gram(W0, a0, X)) / n**2
    # mean squared deviation within 4 standard errors of the prediction
    assert abs(sq.mean() - predicted) <= 4 * sq.std(ddof=1) / np.sqrt(len(sq))
    # the mean gradient: each coordinate's mean within 4.5 standard errors (of the mean) of the true one
    se = dev.std(axis=0, ddof=1) / np.sqrt(len(draws)) + 1e-15
    assert np.max(np.abs(dev.mean(axis=0)) / se) < 4.5


def test_no_noise_full_batch_is_gradient_descent():
    W0, a0, X, y = _problem()
    r = label_noise_sgd(W0, a0, X, y, noise=0.0, batch=X.shape[0], lr=0.05, max_iter=200, seed=0)
    g = fx.train(W0, a0, X, y, method="gd", lr=0.05, max_iter=200, tol=0.0, polish=False)
    np.testing.assert_allclose(r.W, g.W, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.a, g.a, rtol=0, atol=1e-12)


def test_deterministic_for_a_seed_and_different_across_seeds():
    W0, a0, X, y = _problem()
    kw = dict(noise=0.5, batch=7, lr=0.05, max_iter=300)
    r1 = label_noise_sgd(W0, a0, X, y, seed=3, **kw)
    r2 = label_noise_sgd(W0, a0, X, y, seed=3, **kw)
    r3 = label_noise_sgd(W0, a0, X, y, seed=4, **kw)
    assert np.array_equal(r1.W, r2.W) and np.array_equal(r1.a, r2.a)
    assert not np.array_equal(r1.W, r3.W)
    np.testing.assert_array_equal(r1.history["loss"], r2.history["loss"])


def test_minibatch_sgd_reaches_low_loss_and_polishes_to_an_interpolator():
    W0, a0, X, y = _problem()
    r = label_noise_sgd(W0, a0, X, y, noise=0.0, batch=10, lr=0.05, max_iter=4000, tol=1e-4, seed=0, polish=True)
    assert r.history["loss"][-1] < 1e-2 * r.history["loss"][0]
    # the loss reached tol but the run went on to max_iter (stop_at_tol=False): not "converged"
    assert r.reached_tol and r.loss <= 1e-4 and r.reason == "max_iter" and not r.converged
    assert r.polished and r.max_residual_after <= 1e-9 * max(1.0, np.abs(y).max())
    assert r.max_residual_before > r.max_residual_after


def test_stop_at_tol_and_callback():
    W0, a0, X, y = _problem()
    r = label_noise_sgd(
        W0, a0, X, y, noise=0.0, batch=30, lr=0.05, max_iter=100000, tol=1e-3, seed=0, stop_at_tol=True, record_every=10
    )
    assert r.message == "loss <= tol" and r.reason == "tol" and r.iterations < 100000 and r.loss <= 1e-3
    seen = []
    r = label_noise_sgd(
        W0,
        a0,
        X,
        y,
        noise=0.5,
        batch=5,
        lr=0.05,
        max_iter=1000,
        seed=0,
        callback_every=50,
        callback=lambda info: seen.append(info["iteration"]) or info["iteration"] >= 200,
    )
    assert seen == [50, 100, 150, 200] and r.iterations == 200 and r.reason == "callback"
    assert r.message == "stopped by the callback at step 200"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_label_noise_drifts_to_a_smaller_trace_than_gd_from_the_same_init(seed):
    """The known effect (Blanc et al. 2020; Damian et al. 2021; Li, Wang, Arora 2022): after fitting,
    label noise keeps moving along the interpolation set toward small Hessian trace, GD does not.
    Measured on this problem (seeds 0-3): after GN polish, GD 30.6-46.9, label-noise SGD 17.1-24.5
    at 10000 steps (31 at 3000): a margin far beyond the 0.85 factor tested."""
    W0, a0, X, y = _problem(seed)
    traces = {}
    for name, steps in (("gd", 10000), ("ln3k", 3000), ("ln10k", 10000)):
        if name == "gd":
            r = fx.train(W0, a0, X, y, method="gd", lr=0.05, max_iter=steps, tol=0.0, polish=False)
        else:
            r = label_noise_sgd(W0, a0, X, y, noise=0.5, batch=10, lr=0.05, max_iter=steps, seed=seed)
        p = fx.find_interpolator(r.W, r.a, X, y, max_iter=200)
        assert p.converged
        traces[name] = float(fx.hessian_trace(p.W, p.a, X, y))
    assert traces["ln10k"] < 0.85 * traces["gd"]
    assert traces["ln10k"] < traces["ln3k"]  # the drift continues after the loss has plateaued


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(noise=-1.0), "noise"),
        (dict(noise=float("nan")), "noise"),
        (dict(batch=0), "batch"),
        (dict(batch=31), "batch"),
        (dict(lr=0.0), "lr"),
        (dict(max_iter=-1), "max_iter"),
        (dict(record_every=0), "record_every"),
    ],
)
def test_bad_arguments_raise(kw, match):
    W0, a0, X, y = _problem()
    args = dict(noise=0.1, batch=5, lr=0.01, max_iter=10)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        label_noise_sgd(W0, a0, X, y, **args)


def test_batch_must_be_an_int():
    W0, a0, X, y = _problem()
    with pytest.raises(TypeError, match="batch"):
        label_noise_sgd(W0, a0, X, y, noise=0.1, batch=2.5, lr=0.01)


def test_max_seconds_returns_the_current_point_in_time():
    import time

    W, a, X, y = _problem(n=200, d=8, m=400)
    t0 = time.perf_counter()
    fx.label_noise_sgd(W, a, X, y, noise=0.1, batch=32, lr=0.01, max_iter=20)
    step = (time.perf_counter() - t0) / 20  # one step (and its loss records), measured here
    budget = 1.0
    t0 = time.perf_counter()
    r = fx.label_noise_sgd(W, a, X, y, noise=0.1, batch=32, lr="auto", max_iter=10**9, max_seconds=budget, polish=True)
    elapsed = time.perf_counter() - t0
    assert r.reason == "time_budget" and r.polish == "skipped" and 0 < r.iterations < 10**9
    assert elapsed <= 1.1 * budget + step + 0.05, (elapsed, step)
    # the point is the run's own: the same seed without a budget, as many steps, gives the same bits
    same = fx.label_noise_sgd(W, a, X, y, noise=0.1, batch=32, lr=r.lr, max_iter=r.iterations)
    assert np.array_equal(same.W, r.W) and np.array_equal(same.a, r.a)
