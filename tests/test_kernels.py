"""Kernels against independent float64 computations (tests/reference.py)."""
import numpy as np
import pytest

import flatext as fx
import reference as ref

ACTS = ref.ACTIVATIONS


@pytest.mark.parametrize("p,c", ACTS)
def test_forward_and_loss_match_dense_numpy(p, c):
    W, a, X, y = ref.problem(n=50, d=7, m=9, seed=1)
    np.testing.assert_allclose(fx.forward(W, a, X, power=p, neg=c), ref.forward(W, a, X, p, c), rtol=1e-12,
                               atol=1e-12)
    assert fx.loss(W, a, X, y, power=p, neg=c) == pytest.approx(ref.loss(W, a, X, y, p, c), rel=1e-12)


@pytest.mark.parametrize("p,c", ACTS)
def test_loss_grad_matches_finite_differences(p, c):
    W, a, X, y = ref.problem(seed=2)
    L, gW, ga = fx.loss_grad(W, a, X, y, power=p, neg=c)
    fW, fa = ref.fd_grad(lambda W_, a_: ref.loss(W_, a_, X, y, p, c), W, a)
    assert L == pytest.approx(ref.loss(W, a, X, y, p, c), rel=1e-12)
    np.testing.assert_allclose(gW, fW, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ga, fa, rtol=1e-6, atol=1e-8)
    # and the numpy reference gradient used for the explicit Hessians below
    _, rW, ra = ref.loss_grad(W, a, X, y, p, c)
    np.testing.assert_allclose(rW, fW, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ra, fa, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("p,c", ACTS)
def test_hessian_trace_equals_trace_of_explicit_hessian(p, c):
    W, a, X, y = ref.problem(seed=3)
    H = ref.fd_hessian(W, a, X, y, p, c)
    T = fx.hessian_trace(W, a, X, y, power=p, neg=c)
    assert T == pytest.approx(np.trace(H), rel=1e-7)
    parts = fx.hessian_trace_parts(W, a, X, y, power=p, neg=c)
    assert parts.total == pytest.approx(T, rel=1e-13)
    assert parts.gauss_newton + parts.residual == pytest.approx(T, rel=1e-12)
    np.testing.assert_allclose(parts.per_neuron.sum(), T, rtol=1e-12)
    np.testing.assert_allclose(parts.per_neuron, parts.per_neuron_a + parts.per_neuron_w, rtol=1e-12)
    # per-neuron blocks of the explicit Hessian: a_i diagonal entry and w_i block trace
    m, d = W.shape
    np.testing.assert_allclose(parts.per_neuron_a, np.diag(H)[m * d:], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(parts.per_neuron_w, np.diag(H)[: m * d].reshape(m, d).sum(1), rtol=1e-6, atol=1e-9)
    assert parts.loss == pytest.approx(ref.loss(W, a, X, y, p, c), rel=1e-12)
    # Gauss-Newton part = trace of J^T J / n with J by finite differences of f
    J = np.stack([ref.flat(*ref.fd_grad(lambda W_, a_: ref.forward(W_, a_, X[j:j + 1], p, c)[0], W, a))
                  for j in range(X.shape[0])])
    assert parts.gauss_newton == pytest.approx(np.sum(J ** 2) / X.shape[0], rel=1e-7)
    if p == 1.0:
        assert parts.residual == 0.0


@pytest.mark.parametrize("p,c", ACTS)
def test_hessian_trace_grad_matches_finite_differences(p, c):
    W, a, X, y = ref.problem(seed=4)
    T, gW, ga = fx.hessian_trace_grad(W, a, X, y, power=p, neg=c)
    assert T == pytest.approx(fx.hessian_trace(W, a, X, y, power=p, neg=c), rel=1e-12)
    fW, fa = ref.fd_grad(lambda W_, a_: fx.hessian_trace(W_, a_, X, y, power=p, neg=c), W, a, h=1e-6)
    np.testing.assert_allclose(gW, fW, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ga, fa, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("p,c", ACTS)
def test_hvp_matches_explicit_hessian(p, c):
    W, a, X, y = ref.problem(seed=5)
    rng = np.random.default_rng(0)
    VW, va = rng.standard_normal(W.shape), rng.standard_normal(a.shape)
    HW, ha = fx.hvp(W, a, X, y, VW, va, power=p, neg=c)
    H = ref.fd_hessian(W, a, X, y, p, c)
    np.testing.assert_allclose(ref.flat(HW, ha), H @ ref.flat(VW, va), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("p,c", [(1.0, 0.0), (2.0, 0.3), (2.5, 0.0)])
def test_top_eigenvalues_match_eigvalsh(p, c):
    W, a, X, y = ref.problem(n=20, d=4, m=6, seed=6)
    H = ref.fd_hessian(W, a, X, y, p, c)
    ev = np.sort(np.linalg.eigvalsh(H))[::-1]
    got = fx.hessian_top_eigenvalues(W, a, X, y, k=3, power=p, neg=c, tol=1e-10)
    np.testing.assert_allclose(got, ev[:3], rtol=1e-6, atol=1e-8 * ev[0])


def test_top_eigenvalue_when_krylov_space_is_exhausted():
    W, a, X, y = ref.problem(n=6, d=2, m=2, seed=7)
    H = ref.fd_hessian(W, a, X, y, 2.0, 0.0)
    got = fx.hessian_top_eigenvalues(W, a, X, y, k=6, power=2.0)
    np.testing.assert_allclose(got, np.sort(np.linalg.eigvalsh(H))[::-1], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("p,c", [(1.0, 0.0), (2.0, 0.3), (2.5, -0.5)])
def test_float32_agrees_with_float64(p, c):
    W, a, X, y = ref.problem(n=600, d=16, m=40, seed=8)
    f = [np.float32(v) for v in (W, a, X, y)]
    T64 = fx.hessian_trace(W, a, X, y, power=p, neg=c)
    T32 = fx.hessian_trace(*f, power=p, neg=c)
    assert isinstance(T32, np.float32) and isinstance(T64, np.float64)
    assert T32 == pytest.approx(T64, rel=1e-4)
    _, gW64, ga64 = fx.hessian_trace_grad(W, a, X, y, power=p, neg=c)
    _, gW32, ga32 = fx.hessian_trace_grad(*f, power=p, neg=c)
    assert gW32.dtype == np.float32
    assert np.linalg.norm(gW32 - gW64) <= 1e-4 * np.linalg.norm(gW64)
    assert np.linalg.norm(ga32 - ga64) <= 1e-4 * np.linalg.norm(ga64)
    HW64, ha64 = fx.hvp(W, a, X, y, W, a, power=p, neg=c)
    HW32, ha32 = fx.hvp(*f, f[0], f[1], power=p, neg=c)
    assert np.linalg.norm(HW32 - HW64) <= 1e-4 * np.linalg.norm(HW64)


def test_many_tiles_and_chunks_agree_with_dense_reference():
    # n large enough for many tiles and several chunks
    W, a, X, y = ref.problem(n=5000, d=9, m=700, seed=9)
    p, c = 2.0, 0.25
    Z = X @ W.T
    s = np.sum(X ** 2, 1)
    r = ref.sig(Z, p, c) @ a - y
    T_ref = np.mean(np.sum(ref.sig(Z, p, c) ** 2 + (a ** 2) * ref.sig(Z, p, c, 1) ** 2 * s[:, None], 1)
                    + r * (ref.sig(Z, p, c, 2) @ a) * s)
    assert fx.hessian_trace(W, a, X, y, power=p, neg=c) == pytest.approx(T_ref, rel=1e-11)
    L, gW, ga = fx.loss_grad(W, a, X, y, power=p, neg=c)
    _, rW, ra = ref.loss_grad(W, a, X, y, p, c)
    np.testing.assert_allclose(gW, rW, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fx.forward(W, a, X, power=p, neg=c), r + y, rtol=1e-11, atol=1e-11)
