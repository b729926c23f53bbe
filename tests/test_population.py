"""Teachers, sampling and the population loss against independent computations:
arc-cosine kernels (Cho & Saul 2009), Monte Carlo, scipy quadrature, exact
representations of teachers by networks."""

import math

import flatext as fx
import numpy as np
import pytest
from flatext import _core
from flatext.teachers import LINKS, MultiIndex, PlantedNetwork, SumOfSingleIndex, sample_inputs


# ----------------------------------------------------------------------------- arc-cosine kernels
def _arccos_half(U, V, n):
    """E[relu(u.x)^n relu(v.x)^n] = k_n(u, v) / 2 (Cho & Saul 2009), independently in numpy."""
    nu = np.linalg.norm(U, axis=1)
    nv = np.linalg.norm(V, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.clip((U @ V.T) / np.outer(nu, nv), -1.0, 1.0)
    t = np.arccos(np.nan_to_num(cos))
    if n == 1:
        J = np.sin(t) + (np.pi - t) * np.cos(t)
    else:
        J = 3 * np.sin(t) * np.cos(t) + (np.pi - t) * (1 + 2 * np.cos(t) ** 2)
    return np.outer(nu, nv) ** n * J / np.pi / 2


def _units(seed, k=7, d=6):
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((k, d)) * rng.uniform(0.2, 3.0, size=(k, 1))
    V = rng.standard_normal((k + 1, d))
    V[0] = 2.5 * U[0]  # parallel
    V[1] = -0.3 * U[1]  # antiparallel
    V[2] = U[2] + 1e-9 * rng.standard_normal(d)  # nearly parallel
    V[3] = 0.0  # zero vector
    return U, V


@pytest.mark.parametrize("closed", [False, True], ids=["quadrature", "closed-form"])
@pytest.mark.parametrize("n", [1, 2])
def test_pair_moments_match_arccos_kernels(n, closed):
    U, V = _units(1)
    M = _core.gaussian_pair_moments(
        U,
        np.full(len(U), float(n)),
        np.zeros(len(U)),
        V,
        np.full(len(V), float(n)),
        np.zeros(len(V)),
        closed_forms=closed,
    )
    K = _arccos_half(U, V, n)
    np.testing.assert_allclose(M, K, rtol=1e-12, atol=1e-12 * np.abs(K).max())
    # the sums used by population_loss are the same numbers
    rng = np.random.default_rng(2)
    al, be = rng.standard_normal(len(U)), rng.standard_normal(len(V))
    s = _core.gaussian_pair_moment_sum(
        U,
        np.full(len(U), float(n)),
        np.zeros(len(U)),
        al,
        V,
        np.full(len(V), float(n)),
        np.zeros(len(V)),
        be,
        closed_forms=closed,
    )
    assert s == pytest.approx(al @ K @ be, rel=1e-12, abs=1e-12 * np.abs(K).sum())
    q = _core.gaussian_quadratic_form(V, np.full(len(V), float(n)), np.zeros(len(V)), be, closed_forms=closed)
    KV = _arccos_half(V, V, n)
    assert q == pytest.approx(be @ KV @ be, rel=1e-12, abs=1e-12 * np.abs(KV).sum())


def test_pair_moments_general_powers_against_scipy():
    integrate = pytest.importorskip("scipy.integrate")
    rng = np.random.default_rng(3)
    u, v = rng.standard_normal(4), rng.standard_normal(4)
    (p, c1), (q, c2) = (2.5, 0.3), (1.3, -0.7)
    M = _core.gaussian_pair_moments(u[None], np.array([p]), np.array([c1]), v[None], np.array([q]), np.array([c2]))

    def s(z, pw, c):
        return abs(z) ** pw * (1.0 if z > 0 else c)

    # independent: polar coordinates of the plane of (u, v), radial and angular by scipy
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    phi = math.acos(u @ v / nu / nv)
    ang = integrate.quad(
        lambda t: s(math.cos(t), p, c1) * s(math.cos(t - phi), q, c2),
        0,
        2 * math.pi,
        points=sorted(
            {math.pi / 2, 3 * math.pi / 2, (phi + math.pi / 2) % (2 * math.pi), (phi + 3 * math.pi / 2) % (2 * math.pi)}
        ),
        epsabs=1e-14,
        epsrel=1e-13,
        limit=200,
    )[0]
    rad = integrate.quad(lambda r: r ** (p + q + 1) * math.exp(-r * r / 2), 0, np.inf, epsabs=1e-14)[0]
    ref = nu**p * nv**q * rad * ang / (2 * math.pi)
    assert M[0, 0] == pytest.approx(ref, rel=1e-11)


def test_pair_moments_do_not_depend_on_thread_count():
    rng = np.random.default_rng(4)
    U = rng.standard_normal((60, 5))
    p, c, al = np.full(60, 1.7), np.full(60, -0.4), rng.standard_normal(60)
    old = fx.get_num_threads()
    try:
        fx.set_num_threads(1)
        q1 = _core.gaussian_quadratic_form(U, p, c, al)
        fx.set_num_threads(2)
        q2 = _core.gaussian_quadratic_form(U, p, c, al)
    finally:
        fx.set_num_threads(0 if old == 0 else old)
    assert q1 == q2


# ----------------------------------------------------------------------------- exact vs Monte Carlo
def _net(seed, d=8, m=12):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, d)) / np.sqrt(d), rng.standard_normal(m)


CASES = [
    ("relu+abs", lambda d: SumOfSingleIndex.random(d, ["relu", "abs"], [1.0, 0.5], seed=2), 1.0, 0.0),
    ("relu2", lambda d: SumOfSingleIndex.random(d, ["relu2"], seed=3), 2.0, 0.0),
    ("he2+relu", lambda d: SumOfSingleIndex.random(d, ["he2", "relu"], [1.0, 0.5], seed=4), 1.0, 0.3),
    ("tanh+relu3, p=2.5", lambda d: SumOfSingleIndex.random(d, ["tanh", "relu3"], [1.0, 0.4], seed=5), 2.5, -0.2),
    (
        "tanh+he3, |z|",
        lambda d: SumOfSingleIndex(np.eye(d)[:2] * [[1.0], [0.7]], ["tanh", "he3"], [1.0, 0.3]),
        1.0,
        1.0,
    ),
    (
        "multi-index r=2",
        lambda d: MultiIndex.random(d, 2, lambda Z: np.tanh(Z[:, 0] + Z[:, 1]) * Z[:, 1] + Z[:, 0] ** 2, seed=6),
        1.5,
        0.0,
    ),
    ("planted p=2.5", lambda d: PlantedNetwork.random(d, 4, power=2.5, neg=0.5, seed=7), 2.5, 0.5),
]


@pytest.mark.parametrize("name,make,p,c", CASES, ids=[c[0] for c in CASES])
def test_exact_agrees_with_monte_carlo(name, make, p, c):
    d = 8
    W, a = _net(1, d=d, m=3 if "multi" in name else 12)
    teacher = make(d)
    ex = fx.population_loss(W, a, teacher, power=p, neg=c)
    mc = fx.population_loss(W, a, teacher, power=p, neg=c, method="mc", n_samples=1_000_000, seed=11)
    assert ex.method == "exact" and ex.stderr == 0.0 and ex.n_samples == 0
    assert mc.method == "mc" and mc.n_samples == 1_000_000 and mc.stderr > 0
    z = (ex.value - mc.value) / mc.stderr
    assert abs(z) < 4, f"{name}: exact {ex.value} mc {mc.value} +- {mc.stderr} (z = {z:.2f})"
    assert float(ex) == ex.value


def test_exact_smooth_link_terms_against_scipy():
    """relu network vs tanh teacher: each term by nested scipy quadrature."""
    integrate = pytest.importorskip("scipy.integrate")
    d = 5
    rng = np.random.default_rng(8)
    w = rng.standard_normal(d)
    teacher = SumOfSingleIndex.random(d, ["tanh"], [1.3], seed=9)
    u = teacher.directions[0]
    nw = np.linalg.norm(w)
    b = u @ w / nw  # u . x = b z1 + sqrt(1 - b^2) z2 with z1 = w.x / |w|
    s = math.sqrt(1 - b * b)
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cross = integrate.dblquad(
        lambda z2, z1: nw * z1 * math.tanh(b * z1 + s * z2) * phi(z1) * phi(z2),
        0,
        12,
        -12,
        12,
        epsabs=1e-13,
        epsrel=1e-12,
    )[0]
    tt = integrate.quad(lambda z: math.tanh(z) ** 2 * phi(z), -12, 12, epsabs=1e-14)[0]
    ref = nw**2 / 2 - 2 * 1.3 * cross + 1.3**2 * tt
    got = fx.population_loss(w[None], [1.0], teacher).value
    assert got == pytest.approx(ref, rel=1e-10)


def test_network_equal_to_teacher_has_zero_loss():
    W, a = _net(12, d=7, m=9)
    for p, c in [(1.0, 0.0), (2.5, 0.5), (2.0, -1.0)]:
        t = PlantedNetwork(W, a, power=p, neg=c)
        scale = fx.population_loss(W, np.zeros_like(a), t, power=p, neg=c).value  # E[f*^2]
        v = fx.population_loss(W, a, t, power=p, neg=c).value
        assert scale > 0.1 and abs(v) <= 1e-13 * scale
    # relu(u1.x) + 0.5 |u2.x| = relu(u1.x) + 0.5 relu(u2.x) + 0.5 relu(-u2.x): another representation
    t = SumOfSingleIndex.random(7, ["relu", "abs"], [1.0, 0.5], seed=3)
    u1, u2 = t.directions
    v = fx.population_loss(np.stack([u1, u2, -u2]), [1.0, 0.5, 0.5], t).value
    assert abs(v) < 1e-14
    # He2(z) = z^2 - 1 = relu2(z) + relu2(-z) - 1: the network misses exactly the constant, loss 1
    t = SumOfSingleIndex.random(7, ["he2"], seed=4)
    u = t.directions[0]
    assert fx.population_loss(np.stack([u, -u]), [1.0, 1.0], t, power=2.0).value == pytest.approx(1.0, rel=1e-13)
    # and the Monte Carlo estimate of a perfect fit is 0 on any input distribution
    mc = fx.population_loss(W, a, PlantedNetwork(W, a), method="mc", n_samples=1000, inputs="rademacher", seed=0)
    assert mc.value == 0.0 and mc.stderr == 0.0


def test_hermite_links_orthonormality_via_exact_loss():
    # E[He_j(u.x) He_k(u.x)] = k! delta_jk for unit u: loss of the zero network against He_j + He_k
    d = 4
    U = np.eye(d)[:1]
    for j in ("he2", "he3", "he4"):
        t = SumOfSingleIndex(U, [j])
        expect = math.factorial(int(j[-1]))
        assert fx.population_loss(np.zeros((1, d)), [0.0], t).value == pytest.approx(expect, rel=1e-13)
    t = SumOfSingleIndex(np.vstack([U, U]), ["he2", "he4"])
    assert fx.population_loss(np.zeros((1, d)), [0.0], t).value == pytest.approx(2 + 24, rel=1e-13)


# ----------------------------------------------------------------------------- teachers and sampling
def test_links_values():
    z = np.linspace(-2, 2, 9)
    np.testing.assert_allclose(LINKS["he3"](z), z**3 - 3 * z)
    np.testing.assert_allclose(LINKS["he4"](z), z**4 - 6 * z**2 + 3)
    np.testing.assert_allclose(LINKS["relu2"](z), np.maximum(z, 0) ** 2)
    assert LINKS["abs"].homogeneous == (1.0, 1.0) and LINKS["relu3"].homogeneous == (3.0, 0.0)
    assert LINKS["he2"].homogeneous is None and LINKS["tanh"].atoms is None
    # the atom expansions reproduce the functions
    for name, g in LINKS.items():
        if g.atoms is None:
            continue
        e = g.const + sum(k * np.where(z > 0, np.abs(z) ** p, c * np.abs(z) ** p) for p, c, k in g.atoms)
        np.testing.assert_allclose(e, g(z), atol=1e-12, err_msg=name)


def test_teacher_values():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((50, 6))
    t = SumOfSingleIndex.random(6, ["relu", "tanh"], [2.0, -1.0], seed=1)
    U = t.directions
    np.testing.assert_allclose(U @ U.T, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(t(X), 2 * np.maximum(X @ U[0], 0) - np.tanh(X @ U[1]), rtol=1e-13)
    mi = MultiIndex.random(6, 2, lambda Z: Z[:, 0] * Z[:, 1], seed=2)
    np.testing.assert_allclose(mi(X), (X @ mi.U[:, 0]) * (X @ mi.U[:, 1]), rtol=1e-13)
    pn = PlantedNetwork.random(6, 3, power=2.0, neg=0.5, seed=3)
    Z = X @ pn.W.T
    np.testing.assert_allclose(pn(X), (np.where(Z > 0, Z**2, 0.5 * Z**2)) @ pn.a, rtol=1e-12)
    for obj in (t, mi, pn):
        assert obj.d == 6 and type(obj).__name__ in repr(obj)


def test_sampling_is_reproducible_and_has_the_right_distribution():
    t = SumOfSingleIndex.random(5, ["relu"], seed=0)
    X1, y1 = t.sample(1000, noise=0.1, seed=3)
    X2, y2 = t.sample(1000, noise=0.1, seed=3)
    X3, _ = t.sample(1000, noise=0.1, seed=4)
    assert np.array_equal(X1, X2) and np.array_equal(y1, y2) and not np.array_equal(X1, X3)
    n, d = 200_000, 5
    tol = 6 / math.sqrt(n)
    X, y = t.sample(n, noise=0.5, seed=1)
    np.testing.assert_allclose(X.mean(0), 0, atol=tol)
    np.testing.assert_allclose(np.cov(X.T), np.eye(d), atol=3 * tol)
    res = y - t(X)
    assert abs(res.mean()) < 0.5 * tol and abs(res.std() - 0.5) < 0.5 * 3 * tol
    S = sample_inputs(n, d, "sphere", seed=2)
    np.testing.assert_allclose(np.linalg.norm(S, axis=1), math.sqrt(d), rtol=1e-12)
    np.testing.assert_allclose(S.mean(0), 0, atol=tol)
    np.testing.assert_allclose(S.T @ S / n, np.eye(d), atol=3 * tol)  # isotropic: E x x^T = I
    R = sample_inputs(n, d, "rademacher", seed=3)
    assert set(np.unique(R)) == {-1.0, 1.0}
    np.testing.assert_allclose(R.mean(0), 0, atol=tol)
    spec = np.array([4.0, 1.0, 0.25, 0.0, 2.0])
    A = sample_inputs(n, d, "anisotropic", seed=4, spectrum=spec)
    np.testing.assert_allclose(A.var(0), spec, rtol=3 * tol, atol=1e-12)
    assert np.array_equal(sample_inputs(10, 3, seed=7), sample_inputs(10, 3, seed=np.random.default_rng(7)))


def test_mc_non_gaussian_inputs_and_noise_convention():
    # on the sphere, E[(w.x)^2] = |w|^2 exactly as for the Gaussian: linear net vs zero teacher
    d = 6
    w = np.arange(1.0, d + 1) / d
    t = PlantedNetwork(np.eye(d)[:1], [0.0])
    r = fx.population_loss(
        w[None], [1.0], t, power=1.0, neg=-1.0, method="mc", inputs="sphere", n_samples=200_000, seed=1
    )
    assert abs(r.value - w @ w) < 4 * r.stderr
    spec = np.linspace(0.5, 2.0, d)
    r = fx.population_loss(
        w[None],
        [1.0],
        t,
        power=1.0,
        neg=-1.0,
        method="mc",
        inputs="anisotropic",
        spectrum=spec,
        n_samples=200_000,
        seed=2,
    )
    assert abs(r.value - (w * w) @ spec) < 4 * r.stderr


# ----------------------------------------------------------------------------- bad input
def test_bad_inputs_raise():
    d = 4
    t = SumOfSingleIndex.random(d, ["relu", "abs"], seed=0)
    W, a = np.ones((3, d)), np.ones(3)
    with pytest.raises(ValueError, match="links"):
        SumOfSingleIndex(np.eye(d)[:2], ["relu"])
    with pytest.raises(ValueError, match="unknown link"):
        SumOfSingleIndex(np.eye(d)[:1], ["nope"])
    with pytest.raises(TypeError, match="links"):
        SumOfSingleIndex(np.eye(d)[:1], [3])
    with pytest.raises(ValueError, match="weights"):
        SumOfSingleIndex(np.eye(d)[:2], "relu", weights=[1.0])
    with pytest.raises(ValueError, match="directions"):
        SumOfSingleIndex(np.ones(d), "relu")
    with pytest.raises(ValueError, match="directions"):
        SumOfSingleIndex([[np.nan] * d], "relu")
    with pytest.raises(ValueError, match="orthonormal"):
        MultiIndex(np.ones((d, 2)), lambda Z: Z[:, 0])
    with pytest.raises(TypeError, match="link"):
        MultiIndex(np.eye(d)[:, :2], 5)
    with pytest.raises(ValueError, match="power"):
        PlantedNetwork(W, a, power=0.5)
    with pytest.raises(ValueError, match="a must"):
        PlantedNetwork(W, np.ones(2))
    with pytest.raises(ValueError, match="k <= d"):
        SumOfSingleIndex.random(2, ["relu"] * 3)
    with pytest.raises(ValueError, match="X must"):
        t(np.ones((5, d + 1)))
    with pytest.raises(ValueError, match="inputs"):
        t.sample(10, inputs="uniform")
    with pytest.raises(ValueError, match="spectrum"):
        t.sample(10, inputs="anisotropic")
    with pytest.raises(ValueError, match="spectrum"):
        t.sample(10, inputs="anisotropic", spectrum=[1.0, -1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="noise"):
        t.sample(10, noise=-1.0)
    with pytest.raises(TypeError, match="seed"):
        t.sample(10, seed="abc")
    with pytest.raises(ValueError, match="W must"):
        fx.population_loss(np.ones((3, d + 1)), a, t)
    with pytest.raises(ValueError, match="a must"):
        fx.population_loss(W, np.ones(2), t)
    with pytest.raises(ValueError, match="W and a must be finite"):
        fx.population_loss(W * np.nan, a, t)
    with pytest.raises(ValueError, match="power"):
        fx.population_loss(W, a, t, power=0.5)
    with pytest.raises(ValueError, match="method"):
        fx.population_loss(W, a, t, method="exactly")
    with pytest.raises(ValueError, match="gaussian"):
        fx.population_loss(W, a, t, inputs="sphere")
    with pytest.raises(ValueError, match="n_samples"):
        fx.population_loss(W, a, t, method="mc", n_samples=1)
    with pytest.raises(TypeError, match="teacher"):
        fx.population_loss(W, a, "relu")
    with pytest.raises(NotImplementedError, match="mc"):
        fx.population_loss(W, a, MultiIndex.random(d, 3, lambda Z: Z.sum(1), seed=0))
    with pytest.raises(ValueError, match="pu"):
        _core.gaussian_pair_moments(W, np.zeros(3), np.zeros(3), W, np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="pu and cu"):
        _core.gaussian_pair_moments(W, np.ones(2), np.zeros(3), W, np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="columns"):
        _core.gaussian_pair_moments(W, np.ones(3), np.zeros(3), np.ones((3, d + 1)), np.ones(3), np.zeros(3))


def test_bad_node_count_is_a_value_error_naming_nodes():
    # checked once, by the core's quadrature rule (population::arc_rule)
    U, p, c, al = np.ones((2, 3)), np.full(2, 1.5), np.zeros(2), np.ones(2)
    for nodes in (1, 0, -3, 4097):
        with pytest.raises(ValueError, match="nodes"):
            _core.gaussian_quadratic_form(U, p, c, al, nodes=nodes)
        with pytest.raises(ValueError, match="nodes"):
            _core.gaussian_pair_moments(U, p, c, U, p, c, nodes=nodes)
        with pytest.raises(ValueError, match="nodes"):
            _core.gaussian_pair_moment_sum(U, p, c, al, U, p, c, al, nodes=nodes)
    assert _core.gaussian_quadratic_form(U, p, c, al, nodes=2) > 0
