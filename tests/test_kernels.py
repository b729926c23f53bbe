"""Kernels against independent float64 computations (tests/reference.py)."""

import flatext as fx
import numpy as np
import pytest
import reference as ref

ACTS = ref.ACTIVATIONS


@pytest.mark.parametrize("p,c", ACTS)
def test_forward_and_loss_match_dense_numpy(p, c):
    W, a, X, y = ref.problem(n=50, d=7, m=9, seed=1)
    np.testing.assert_allclose(fx.forward(W, a, X, power=p, neg=c), ref.forward(W, a, X, p, c), rtol=1e-12, atol=1e-12)
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
    np.testing.assert_allclose(parts.per_neuron_a, np.diag(H)[m * d :], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(parts.per_neuron_w, np.diag(H)[: m * d].reshape(m, d).sum(1), rtol=1e-6, atol=1e-9)
    assert parts.loss == pytest.approx(ref.loss(W, a, X, y, p, c), rel=1e-12)
    # Gauss-Newton part = trace of J^T J / n with J by finite differences of f
    J = np.stack(
        [
            ref.flat(*ref.fd_grad(lambda W_, a_: ref.forward(W_, a_, X[j : j + 1], p, c)[0], W, a))
            for j in range(X.shape[0])
        ]
    )
    assert parts.gauss_newton == pytest.approx(np.sum(J**2) / X.shape[0], rel=1e-7)
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
    s = np.sum(X**2, 1)
    r = ref.sig(Z, p, c) @ a - y
    T_ref = np.mean(
        np.sum(ref.sig(Z, p, c) ** 2 + (a**2) * ref.sig(Z, p, c, 1) ** 2 * s[:, None], 1)
        + r * (ref.sig(Z, p, c, 2) @ a) * s
    )
    assert fx.hessian_trace(W, a, X, y, power=p, neg=c) == pytest.approx(T_ref, rel=1e-11)
    L, gW, ga = fx.loss_grad(W, a, X, y, power=p, neg=c)
    _, rW, ra = ref.loss_grad(W, a, X, y, p, c)
    np.testing.assert_allclose(gW, rW, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fx.forward(W, a, X, power=p, neg=c), r + y, rtol=1e-11, atol=1e-11)


# --------------------------------------------------------------------------- combined objective
def _jacobian(W, a, X, p, c):
    """J (n, m(d+1)) of the outputs by the chain rule in numpy, theta = [W.ravel(), a]."""
    Z = X @ W.T
    JW = (a[None, :] * ref.sig(Z, p, c, 1))[:, :, None] * X[:, None, :]
    return np.hstack([JW.reshape(X.shape[0], -1), ref.sig(Z, p, c)])


def _gauss_newton(W, a, X, p, c):
    return np.sum(_jacobian(W, a, X, p, c) ** 2) / X.shape[0]


def _trace(W, a, X, y, p, c):
    """T = G + (1/n) sum_j r_j sum_i a_i sigma''(z_ij) s_j, dense numpy."""
    r = ref.forward(W, a, X, p, c) - y
    s = np.sum(X**2, axis=1)
    R = np.mean(r * s * (ref.sig(X @ W.T, p, c, 2) @ a))
    return _gauss_newton(W, a, X, p, c) + R


OBJ_ACTS = [(p, c) for p in (1.0, 1.5, 2.0, 3.0) for c in (0.0, 0.3, 1.0)]


@pytest.mark.parametrize("p,c", OBJ_ACTS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_objective_matches_independent_references(p, c, seed):
    W, a, X, y = ref.problem(n=11, d=3, m=4, seed=10 + seed)
    lam = 0.37
    L = ref.loss(W, a, X, y, p, c)
    G, T = _gauss_newton(W, a, X, p, c), _trace(W, a, X, y, p, c)
    if seed == 0:  # the dense trace formula itself against the explicit Hessian
        assert T == pytest.approx(np.trace(ref.fd_hessian(W, a, X, y, p, c)), rel=1e-6)
    refs = {
        "gauss_newton": lambda W_, a_: ref.loss(W_, a_, X, y, p, c) + lam * _gauss_newton(W_, a_, X, p, c),
        "trace": lambda W_, a_: ref.loss(W_, a_, X, y, p, c) + lam * _trace(W_, a_, X, y, p, c),
    }
    for which, K in (("gauss_newton", G), ("trace", T)):
        o = fx.objective(W, a, X, y, lam, which=which, power=p, neg=c)
        assert isinstance(o, fx.Objective) and o.gW.shape == W.shape and o.ga.shape == a.shape
        assert o.loss == pytest.approx(L, rel=1e-12)
        assert o.regularizer == pytest.approx(K, rel=1e-11, abs=1e-13)
        assert o.value == pytest.approx(L + lam * K, rel=1e-11)
        fW, fa = ref.fd_grad(refs[which], W, a, h=1e-6)
        np.testing.assert_allclose(o.gW, fW, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(o.ga, fa, rtol=1e-5, atol=1e-7)
    # the parts agree with the separate kernels
    parts = fx.hessian_trace_parts(W, a, X, y, power=p, neg=c)
    _, lW, la = fx.loss_grad(W, a, X, y, power=p, neg=c)
    _, tW, ta = fx.hessian_trace_grad(W, a, X, y, power=p, neg=c)
    o = fx.objective(W, a, X, y, lam, which="trace", power=p, neg=c)
    assert o.regularizer == pytest.approx(parts.total, rel=1e-12, abs=1e-14)
    assert fx.objective(W, a, X, y, lam, which="gauss_newton", power=p, neg=c).regularizer == pytest.approx(
        parts.gauss_newton, rel=1e-12
    )
    np.testing.assert_allclose(o.gW, lW + lam * tW, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(o.ga, la + lam * ta, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("p,c", OBJ_ACTS)
def test_objective_loss_only_is_loss_grad(p, c):
    W, a, X, y = ref.problem(seed=7)
    o = fx.objective(W, a, X, y, power=p, neg=c)
    L, gW, ga = fx.loss_grad(W, a, X, y, power=p, neg=c)
    assert o.value == L and o.loss == L and o.regularizer == 0
    assert np.array_equal(o.gW, gW) and np.array_equal(o.ga, ga)


def test_objective_regularizers_bounded_or_not():
    # G >= 0 always; for p = 1 the trace equals G; for p = 2 off interpolation T can be < 0
    W, a, X, y = ref.problem(n=30, d=3, m=6, seed=3)
    for p, c in OBJ_ACTS:
        assert fx.objective(W, a, X, y, 1.0, which="gauss_newton", power=p, neg=c).regularizer >= 0
    for c in (0.0, 0.3, 1.0):
        oG = fx.objective(W, a, X, y, 1.0, which="gauss_newton", power=1.0, neg=c)
        oT = fx.objective(W, a, X, y, 1.0, which="trace", power=1.0, neg=c)
        assert oT.regularizer == pytest.approx(oG.regularizer, rel=1e-14)
    # p = 2: a neuron with B_i < 0, shrunk along its orbit (same function, same loss), drives T down like t^-2
    parts = fx.hessian_trace_parts(W, a, X, y, power=2.0)
    i = int(np.argmin(parts.per_neuron_w))
    assert parts.per_neuron_w[i] < 0  # this problem has such a neuron (away from interpolation)
    t = np.ones(W.shape[0])
    t[i] = 1e-2
    W2, a2 = fx.rescale(W, a, t, power=2.0)
    o1 = fx.objective(W, a, X, y, 1.0, which="trace", power=2.0)
    o2 = fx.objective(W2, a2, X, y, 1.0, which="trace", power=2.0)
    assert o2.loss == pytest.approx(o1.loss, rel=1e-10)
    assert o2.regularizer < o1.regularizer - 1000 * abs(parts.per_neuron_w[i])  # T_i ~ t^-2 B_i
    assert fx.objective(W2, a2, X, y, 1.0, which="gauss_newton", power=2.0).regularizer >= 0


def test_objective_float32_and_bad_arguments():
    W, a, X, y = ref.problem(seed=8)
    o64 = fx.objective(W, a, X, y, 0.5, which="trace", power=2.0, neg=0.3)
    o32 = fx.objective(*(v.astype(np.float32) for v in (W, a, X, y)), 0.5, which="trace", power=2.0, neg=0.3)
    assert o32.value.dtype == np.float32 and o32.gW.dtype == np.float32
    assert o32.value == pytest.approx(o64.value, rel=1e-4)
    np.testing.assert_allclose(o32.gW, o64.gW, rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="which"):
        fx.objective(W, a, X, y, 0.5, which="hessian")
    with pytest.raises(TypeError):
        fx.objective(W, a, X, y, 0.5, which=None)
    with pytest.raises(ValueError, match="lam"):
        fx.objective(W, a, X, y, np.nan, which="trace")
    with pytest.raises(ValueError, match="lam"):
        fx.objective(W, a, X, y, 0.5)  # which="loss" has nothing to weigh
    with pytest.raises(ValueError, match="power"):
        fx.objective(W, a, X, y, 0.5, which="trace", power=0.5)
