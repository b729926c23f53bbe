"""flatext.jax against JAX's own autodiff on tiny networks (float64 via jax_enable_x64)."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
import flatext as fx  # noqa: E402
import flatext.jax as fxj  # noqa: E402
import jax.numpy as jnp  # noqa: E402

ACTS = [(2.0, 0.0), (1.0, -0.2), (2.0, 0.5), (3.0, 0.0)]


def _problem(n=12, d=3, m=4, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return tuple(jnp.asarray(rng.standard_normal(s), dtype=dtype) for s in ((m, d), (m,), (n, d), (n,)))


def _sig(z, p, c):
    k = int(p)  # integer powers: a float power's third derivative is NaN at 0 in JAX
    assert k == p
    return jnp.maximum(z, 0) ** k + c * jnp.maximum(-z, 0) ** k


def _jax_loss(theta, X, y, p, c, m, d):
    W, a = theta[: m * d].reshape(m, d), theta[m * d :]
    return 0.5 * jnp.mean((_sig(X @ W.T, p, c) @ a - y) ** 2)


def _rel(u, v):
    return float(jnp.linalg.norm(jnp.ravel(u - v)) / jnp.linalg.norm(jnp.ravel(v)))


@pytest.mark.parametrize("p,c", ACTS)
def test_trace_gradient_matches_grad_of_trace_of_jax_hessian(p, c):
    W, a, X, y = _problem(seed=int(10 * p) + 1)
    m, d = W.shape

    def ref_trace(theta):
        return jnp.trace(jax.hessian(_jax_loss)(theta, X, y, p, c, m, d))

    theta = jnp.concatenate([W.ravel(), a])
    tr_ref, g_ref = jax.value_and_grad(ref_trace)(theta)
    tr, (gW, ga) = jax.value_and_grad(lambda W, a: fxj.hessian_trace(W, a, X, y, power=p, neg=c), argnums=(0, 1))(W, a)
    assert float(tr) == pytest.approx(float(tr_ref), rel=1e-12)
    assert _rel(jnp.concatenate([gW.ravel(), ga]), g_ref) < 1e-10
    # and under jit
    jt = jax.jit(jax.grad(lambda W, a: fxj.hessian_trace(W, a, X, y, power=p, neg=c), argnums=(0, 1)))
    gW2, ga2 = jt(W, a)
    assert _rel(jnp.concatenate([gW2.ravel(), ga2]), g_ref) < 1e-10


@pytest.mark.parametrize("p,c", [(2.0, 0.5), (1.0, -0.2)])
def test_loss_and_hvp_match_jax(p, c):
    W, a, X, y = _problem(seed=4)
    m, d = W.shape
    theta = jnp.concatenate([W.ravel(), a])
    L_ref, g_ref = jax.value_and_grad(_jax_loss)(theta, X, y, p, c, m, d)
    L, (gW, ga) = jax.jit(jax.value_and_grad(lambda W, a: fxj.loss(W, a, X, y, power=p, neg=c), argnums=(0, 1)))(W, a)
    assert float(L) == pytest.approx(float(L_ref), rel=1e-13)
    assert _rel(jnp.concatenate([gW.ravel(), ga]), g_ref) < 1e-12
    H = jax.hessian(_jax_loss)(theta, X, y, p, c, m, d)
    rng = np.random.default_rng(2)
    VW, va = jnp.asarray(rng.standard_normal((m, d))), jnp.asarray(rng.standard_normal(m))
    HW, ha = jax.jit(lambda VW, va: fxj.hvp(W, a, X, y, VW, va, power=p, neg=c))(VW, va)
    assert _rel(jnp.concatenate([HW.ravel(), ha]), H @ jnp.concatenate([VW.ravel(), va])) < 1e-12
    # VJP in the direction: H^T u
    u = jnp.asarray(rng.standard_normal(m * d + m))
    gV = jax.grad(
        lambda VW, va: jnp.dot(jnp.concatenate([x.ravel() for x in fxj.hvp(W, a, X, y, VW, va, power=p, neg=c)]), u),
        argnums=(0, 1),
    )(VW, va)
    assert _rel(jnp.concatenate([gV[0].ravel(), gV[1]]), H.T @ u) < 1e-12


def test_float32_vmap_and_errors():
    W, a, X, y = _problem(dtype=np.float32)
    t = fxj.hessian_trace(W, a, X, y, power=2.0)
    assert t.dtype == jnp.float32
    ref = fx.hessian_trace(np.asarray(W), np.asarray(a), np.asarray(X), np.asarray(y), power=2.0)
    assert float(t) == pytest.approx(float(ref), rel=1e-6)
    # vmap over a batch of output weights: a loop of callbacks, same values
    A = jnp.stack([a, 2 * a, -a])
    vals = jax.vmap(lambda a_: fxj.hessian_trace(W, a_, X, y, power=2.0))(A)
    for k in range(3):
        assert float(vals[k]) == pytest.approx(float(fxj.hessian_trace(W, A[k], X, y, power=2.0)), rel=1e-6)
    with pytest.raises(TypeError, match="one dtype"):
        fxj.loss(W, a, X, y.astype(jnp.float64))
    with pytest.raises(ValueError, match="expected W"):
        fxj.loss(W.ravel(), a, X, y)
    # second derivatives are refused (pure_callback has no JVP), not silently wrong
    W64, a64, X64, y64 = _problem()
    with pytest.raises(Exception):
        jax.hessian(lambda W: fxj.loss(W, a64, X64, y64))(W64)


@pytest.mark.parametrize(
    "which,p,c", [("trace", 2.0, 0.0), ("trace", 1.0, -0.2), ("gauss_newton", 2.0, 0.0), ("gauss_newton", 1.0, -0.2)]
)
def test_regularized_loss_matches_jax(which, p, c):
    W, a, X, y = _problem(seed=9)
    m, d = W.shape
    lam = 0.3

    def ref(theta, lam):
        L = _jax_loss(theta, X, y, p, c, m, d)
        if which == "trace":
            K = jnp.trace(jax.hessian(_jax_loss)(theta, X, y, p, c, m, d))
        else:  # G = (1/n) sum_j ||grad_theta f(x_j)||^2 by per-sample gradients

            def f1(th, x):
                return _sig(x @ th[: m * d].reshape(m, d).T, p, c) @ th[m * d :]

            J = jax.vmap(jax.grad(f1), in_axes=(None, 0))(theta, X)
            K = jnp.mean(jnp.sum(J**2, axis=1))
        return L + lam * K

    theta = jnp.concatenate([W.ravel(), a])
    v_ref, (g_ref, glam_ref) = jax.value_and_grad(ref, argnums=(0, 1))(theta, lam)
    parts = fx.hessian_trace_parts(*(np.asarray(v) for v in (W, a, X, y)), power=p, neg=c)
    K = parts.gauss_newton if which == "gauss_newton" else parts.total
    assert float(glam_ref) == pytest.approx(float(K), rel=1e-12)  # the reference's K, against the parts kernel
    fn = jax.jit(
        jax.value_and_grad(
            lambda W, a, lam: fxj.regularized_loss(W, a, X, y, lam, which=which, power=p, neg=c), argnums=(0, 1, 2)
        )
    )
    v, (gW, ga, glam) = fn(W, a, lam)
    assert float(v) == pytest.approx(float(v_ref), rel=1e-12)
    assert _rel(jnp.concatenate([gW.ravel(), ga]), g_ref) < 1e-10
    assert float(glam) == pytest.approx(float(glam_ref), rel=1e-12)  # d/dlam = K
    v2, lo, reg = fxj.regularized_loss(W, a, X, y, lam, which=which, power=p, neg=c, return_parts=True)
    assert float(v2) == pytest.approx(float(lo) + lam * float(reg), rel=1e-13)


def test_regularized_loss_errors():
    W, a, X, y = _problem()
    with pytest.raises(ValueError, match="which"):
        fxj.regularized_loss(W, a, X, y, 0.1, which="hessian")
    v = fxj.regularized_loss(W, a, X, y, 0.0, which="loss")
    assert float(v) == pytest.approx(float(fxj.loss(W, a, X, y)), rel=1e-14)
