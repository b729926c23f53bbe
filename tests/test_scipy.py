"""flatext.scipy: objectives over theta = [W.ravel(), a] and the Hessian LinearOperator,
checked against numpy references, finite differences and SciPy's own solvers."""

import flatext as fx
import numpy as np
import pytest
import reference as ref
import scipy.optimize
import scipy.sparse.linalg
from flatext.scipy import hessian_operator, objective, pack, unpack


def fd_grad_theta(fun, theta, h=1e-6):
    g = np.empty_like(theta)
    for k in range(theta.size):
        e = np.zeros_like(theta)
        e[k] = h
        g[k] = (fun(theta + e) - fun(theta - e)) / (2 * h)
    return g


def test_pack_unpack_round_trip_and_views():
    W, a, _, _ = ref.problem(d=4, m=5, seed=0)
    theta = pack(W, a)
    np.testing.assert_array_equal(theta, np.concatenate([W.ravel(), a]))
    W2, a2 = unpack(theta, 4)
    np.testing.assert_array_equal(W2, W)
    np.testing.assert_array_equal(a2, a)
    # zero-copy: views into theta
    assert np.shares_memory(W2, theta) and np.shares_memory(a2, theta)
    assert W2.flags.c_contiguous and a2.flags.c_contiguous
    # lists go through numpy.asarray
    np.testing.assert_array_equal(pack(W.tolist(), a.tolist()), theta)
    with pytest.raises(ValueError, match="theta"):
        unpack(theta[:-1], 4)
    with pytest.raises(ValueError, match="theta must be a 1-D"):
        unpack(np.zeros((5, 5)), 4)
    np.testing.assert_array_equal(unpack(theta[:, None], 4)[1], a)
    with pytest.raises(ValueError, match="d must"):
        unpack(theta, 0)
    with pytest.raises(ValueError, match="a must"):
        pack(W, a[:-1])


@pytest.mark.parametrize("p,c", [(1.0, 0.0), (2.0, 0.5), (3.0, -0.3)])
def test_fun_jac_hessp_match_references(p, c):
    W, a, X, y = ref.problem(seed=1)
    d = X.shape[1]
    theta = pack(W, a)
    fun, jac, hessp = objective(X, y, power=p, neg=c)
    assert fun(theta) == pytest.approx(ref.loss(W, a, X, y, p, c), rel=1e-12)
    Lfun = lambda t: ref.loss(*unpack(t, d), X, y, p, c)  # noqa: E731
    np.testing.assert_allclose(jac(theta), fd_grad_theta(Lfun, theta), rtol=1e-6, atol=1e-8)
    v = np.random.default_rng(2).standard_normal(theta.size)
    H = ref.fd_hessian(W, a, X, y, p, c)
    np.testing.assert_allclose(hessp(theta, v), H @ v, rtol=1e-6, atol=1e-8)
    # fun after jac at another point is not stale (cache keyed on theta)
    t2 = theta + 0.1 * v
    jac(t2)
    assert fun(t2) == pytest.approx(Lfun(t2), rel=1e-12)
    assert fun(theta) == pytest.approx(Lfun(theta), rel=1e-12)


@pytest.mark.parametrize("p,c", [(1.0, -0.2), (2.0, 0.5), (4.0, 0.0)])
def test_trace_targets_fun_jac_match_finite_differences(p, c):
    W, a, X, y = ref.problem(seed=3)
    theta = pack(W, a)
    lam = 0.37
    fT, jT, hT = objective(X, y, power=p, neg=c, target="trace")
    fB, jB, hB = objective(X, y, power=p, neg=c, target="loss+lambda*trace", lam=lam)
    # T against the trace of the explicit (finite-difference) Hessian of the numpy loss
    T = np.trace(ref.fd_hessian(W, a, X, y, p, c))
    assert fT(theta) == pytest.approx(T, rel=1e-7)
    assert fB(theta) == pytest.approx(ref.loss(W, a, X, y, p, c) + lam * fT(theta), rel=1e-12)
    np.testing.assert_allclose(jT(theta), fd_grad_theta(fT, theta), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(jB(theta), fd_grad_theta(fB, theta), rtol=1e-5, atol=1e-7)
    if p == 4.0:
        # T is C^2 here: p . hessp(p) against the second difference of fun along p
        v = np.random.default_rng(4).standard_normal(theta.size)
        v /= np.linalg.norm(v)
        h = 1e-4
        for f, hp in ((fT, hT), (fB, hB)):
            second = (f(theta + h * v) - 2 * f(theta) + f(theta - h * v)) / h**2
            assert v @ hp(theta, v) == pytest.approx(second, rel=1e-4, abs=1e-6)
        # hessp is linear in p and symmetric (up to the finite-difference error)
        u = np.random.default_rng(5).standard_normal(theta.size)
        assert u @ hT(theta, v) == pytest.approx(v @ hT(theta, u), rel=1e-5, abs=1e-7)
        np.testing.assert_allclose(hT(theta, 3.0 * v), 3.0 * hT(theta, v), rtol=1e-6, atol=1e-9)
        assert not np.any(hT(theta, np.zeros_like(v)))


def test_objective_bad_arguments_name_them():
    _, _, X, y = ref.problem(seed=0)
    with pytest.raises(ValueError, match="target"):
        objective(X, y, target="flatness")
    with pytest.raises(ValueError, match="lam"):
        objective(X, y, target="loss+lambda*trace")
    with pytest.raises(ValueError, match="lam"):
        objective(X, y, target="trace", lam=1.0)
    with pytest.raises(ValueError, match="y"):
        objective(X, y[:-1])
    with pytest.raises(ValueError, match="power"):
        objective(X, y, power=0.5)
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="X"):
        objective(Xn, y)
    fun, jac, hessp = objective(X, y)
    with pytest.raises(ValueError, match="theta"):
        fun(np.zeros(7))  # d = 4: 7 is no multiple of d + 1


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_trust_ncg_with_hessp_reaches_interpolation(p):
    # overparameterized: P = m (d + 1) = 150 parameters for n = 12 samples
    rng = np.random.default_rng(6)
    n, d, m = 12, 4, 30
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    W0 = rng.standard_normal((m, d)) / np.sqrt(d)
    a0 = rng.standard_normal(m) / np.sqrt(m)
    fun, jac, hessp = objective(X, y, power=p)
    res = scipy.optimize.minimize(
        fun, pack(W0, a0), jac=jac, hessp=hessp, method="trust-ncg", options={"gtol": 1e-12, "maxiter": 500}
    )
    W, a = unpack(res.x, d)
    # the loss by the independent numpy forward pass
    assert ref.loss(W, a, X, y, p, 0.0) <= 1e-10, res
    np.testing.assert_allclose(ref.forward(W, a, X, p, 0.0), y, atol=2e-5)


@pytest.mark.parametrize("p,c", [(1.0, 0.0), (2.0, 0.3)])
def test_hessian_operator_matvec_equals_hvp_and_explicit_hessian(p, c):
    W, a, X, y = ref.problem(seed=7)
    m, d = W.shape
    Hop = hessian_operator(W, a, X, y, power=p, neg=c)
    P = m * (d + 1)
    assert Hop.shape == (P, P) and Hop.dtype == np.float64
    rng = np.random.default_rng(8)
    VW, va = rng.standard_normal(W.shape), rng.standard_normal(m)
    v = pack(VW, va)
    HW, ha = fx.hvp(W, a, X, y, VW, va, power=p, neg=c)
    np.testing.assert_array_equal(Hop.matvec(v), np.concatenate([HW.ravel(), ha]))
    np.testing.assert_array_equal(Hop @ v, Hop.rmatvec(v))
    H = ref.fd_hessian(W, a, X, y, p, c)
    np.testing.assert_allclose(Hop @ v, H @ v, rtol=1e-6, atol=1e-8)
    V = rng.standard_normal((P, 3))
    np.testing.assert_allclose(Hop @ V, H @ V, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(Hop.matvec(v[:, None]).ravel(), Hop @ v, rtol=0, atol=0)
    with pytest.raises(ValueError, match="a must"):
        hessian_operator(W, a[:-1], X, y)


@pytest.mark.parametrize("p,c", [(1.0, 0.0), (2.0, 0.3), (2.5, 0.0)])
def test_eigsh_on_operator_matches_hessian_top_eigenvalues(p, c):
    W, a, X, y = ref.problem(n=20, d=4, m=6, seed=9)
    Hop = hessian_operator(W, a, X, y, power=p, neg=c)
    top = np.sort(scipy.sparse.linalg.eigsh(Hop, k=2, which="LA", return_eigenvectors=False, tol=1e-12))[::-1]
    lan = fx.hessian_top_eigenvalues(W, a, X, y, k=2, power=p, neg=c)
    np.testing.assert_allclose(top, lan, rtol=1e-8, atol=1e-10)
    # and both against the dense eigenvalues of the explicit Hessian
    ev = np.linalg.eigvalsh(ref.fd_hessian(W, a, X, y, p, c))[::-1][:2]
    np.testing.assert_allclose(top, ev, rtol=1e-6, atol=1e-8)


def test_minimize_flatness_regularized_objective_lowers_trace():
    # L-BFGS on L + lam T from the same start finds a flatter interpolating-ish point than on L alone
    rng = np.random.default_rng(10)
    n, d, m = 10, 3, 12
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    theta0 = pack(rng.standard_normal((m, d)), rng.standard_normal(m))
    fL, jL, _ = objective(X, y, power=2.0)
    fB, jB, _ = objective(X, y, power=2.0, target="loss+lambda*trace", lam=1e-3)
    fT, _, _ = objective(X, y, power=2.0, target="trace")
    rL = scipy.optimize.minimize(fL, theta0, jac=jL, method="L-BFGS-B", options={"maxiter": 100})
    rB = scipy.optimize.minimize(fB, theta0, jac=jB, method="L-BFGS-B", options={"maxiter": 100})
    assert fB(rB.x) <= fB(theta0)
    assert fT(rB.x) < fT(rL.x)
