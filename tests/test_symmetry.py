"""Rescaling symmetry, balance and the orbit-minimal trace (docs/design.md section 4)."""

import flatext as fx
import numpy as np
import pytest
import reference as ref


def interpolating_problem(p, c, n=30, d=5, m=8, seed=0):
    """Labels produced by the network itself: r = 0 exactly."""
    W, a, X, _ = ref.problem(n=n, d=d, m=m, seed=seed)
    return W, a, X, ref.forward(W, a, X, p, c)


@pytest.mark.parametrize("p,c", ref.ACTIVATIONS)
def test_rescale_keeps_outputs_and_moves_trace(p, c):
    W, a, X, y = interpolating_problem(p, c)
    rng = np.random.default_rng(1)
    t = np.exp(rng.uniform(-3, 3, size=a.shape))
    W2, a2 = fx.rescale(W, a, t, power=p)
    np.testing.assert_allclose(W2, W * t[:, None], rtol=1e-15)
    np.testing.assert_allclose(a2, a * t ** (-p), rtol=1e-14)
    f1, f2 = ref.forward(W, a, X, p, c), ref.forward(W2, a2, X, p, c)
    assert np.max(np.abs(f1 - f2)) <= 1e-12 * np.max(np.abs(f1))
    T1, T2 = fx.hessian_trace(W, a, X, y, power=p, neg=c), fx.hessian_trace(W2, a2, X, y, power=p, neg=c)
    assert abs(T2 / T1 - 1) > 0.1
    # the per-neuron law T_i(t) = t^(2p) A_i + t^(-2) B_i, checked neuron by neuron
    P1 = fx.hessian_trace_parts(W, a, X, y, power=p, neg=c)
    P2 = fx.hessian_trace_parts(W2, a2, X, y, power=p, neg=c)
    np.testing.assert_allclose(
        P2.per_neuron, t ** (2 * p) * P1.per_neuron_a + t ** (-2.0) * P1.per_neuron_w, rtol=1e-10
    )
    # global (scalar) rescaling
    W3, a3 = fx.rescale(W, a, 2.0, power=p)
    np.testing.assert_allclose(ref.forward(W3, a3, X, p, c), f1, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("p,c", ref.ACTIVATIONS)
def test_balance_reaches_orbit_minimum_that_no_rescaling_beats(p, c):
    W, a, X, y = interpolating_problem(p, c, seed=2)
    Tmin = fx.orbit_min_trace(W, a, X, y, power=p, neg=c)
    Wb, ab = fx.balance(W, a, X, y, power=p, neg=c)
    fb = ref.forward(Wb, ab, X, p, c)
    assert np.max(np.abs(fb - y)) <= 1e-12 * np.max(np.abs(y))
    assert fx.hessian_trace(Wb, ab, X, y, power=p, neg=c) == pytest.approx(Tmin, rel=1e-10)
    assert Tmin <= fx.hessian_trace(W, a, X, y, power=p, neg=c)
    # balanced neurons are stationary: the trace of the balanced point is a minimum on every
    # direction of the orbit, and random rescalings never go below
    rng = np.random.default_rng(3)
    for _ in range(200):
        t = np.exp(rng.normal(0, rng.choice([0.01, 0.3, 2.0]), size=a.shape))
        W2, a2 = fx.rescale(Wb, ab, t, power=p)
        assert fx.hessian_trace(W2, a2, X, y, power=p, neg=c) >= Tmin * (1 - 1e-12)
    # independent minimization of each neuron's 1-D function by a dense grid
    P = fx.hessian_trace_parts(W, a, X, y, power=p, neg=c)
    s = np.exp(np.linspace(-12, 12, 200001))
    grid_min = sum(np.min(s ** (2 * p) * A + s ** (-2.0) * B) for A, B in zip(P.per_neuron_a, P.per_neuron_w))
    assert Tmin == pytest.approx(grid_min, rel=1e-6)
    # orbit-minimal trace is invariant along the orbit
    W2, a2 = fx.rescale(W, a, np.exp(rng.uniform(-4, 4, size=a.shape)), power=p)
    assert fx.orbit_min_trace(W2, a2, X, y, power=p, neg=c) == pytest.approx(Tmin, rel=1e-10)


def test_relu_orbit_minimum_is_data_weighted_path_norm():
    W, a, X, y = interpolating_problem(1.0, 0.0, n=40, d=6, m=10, seed=4)
    Z = X @ W.T
    s = np.sum(X**2, 1)
    A = np.mean(np.maximum(Z, 0) ** 2, 0)
    path = 2 * np.sum(np.abs(a) * np.sqrt(A * np.mean((Z > 0) * s[:, None], 0)))
    assert fx.orbit_min_trace(W, a, X, y) == pytest.approx(path, rel=1e-12)


def test_no_orbit_minimum_away_from_interpolation_is_an_error():
    W, a, X, _ = ref.problem(n=30, d=5, m=6, seed=5)
    a = np.abs(a) * 1e-3
    y = ref.forward(W, a, X, 2.0, 0.0) + 100.0  # r_j = -100: r sigma'' terms make B_i < 0
    with pytest.raises(ValueError, match="no orbit minimum"):
        fx.orbit_min_trace(W, a, X, y, power=2.0)
    with pytest.raises(ValueError, match="no orbit minimum"):
        fx.balance(W, a, X, y, power=2.0)


def test_dead_and_zero_output_neurons():
    W, a, X, y = interpolating_problem(1.0, 0.0, seed=6)
    a = a.copy()
    a[0] = 0.0  # contributes nothing to f; its orbit infimum is 0 (w_0 -> 0)
    W = W.copy()
    W[1] = -10 * np.abs(W[1]).sum() * np.sign(X.sum(0))  # unlikely to activate, but check generally
    y = ref.forward(W, a, X, 1.0, 0.0)
    Wb, ab = fx.balance(W, a, X, y)
    assert np.all(Wb[0] == 0)
    np.testing.assert_allclose(ref.forward(Wb, ab, X, 1.0, 0.0), y, rtol=1e-12, atol=1e-12)
    assert fx.hessian_trace(Wb, ab, X, y) == pytest.approx(fx.orbit_min_trace(W, a, X, y), rel=1e-10)


def test_openmp_is_compiled_in_and_threads_are_settable():
    assert fx.info()["openmp"] is True
    old = fx.get_num_threads()
    try:
        fx.set_num_threads(1)
        assert fx.get_num_threads() == 1
        fx.set_num_threads(2)
        assert fx.get_num_threads() == 2
    finally:
        fx.set_num_threads(0)
    assert fx.get_num_threads() == old
