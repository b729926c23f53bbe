"""The flattest-interpolator search: against a certified optimum, stopping reasons, and
the matrix-free (CG) path against the Cholesky path.

The certified optimum (tests/relu_certify.py) is computed here, with cvxpy, from the
convex program over every activation pattern of the arrangement (enumerated exactly
for d = 2, 3); nothing is hard-coded.
"""

import math

import flatext as fx
import numpy as np
import pytest
import reference as ref
from flatext._native import _core
from relu_certify import arrangement_patterns, certified_relu_optimum


def relu_problem(n, d, seed):
    """Gaussian inputs, labels from a sum of two ReLU single-index teachers."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    U = np.linalg.qr(rng.standard_normal((d, 2)))[0].T
    return X, np.maximum(X @ U.T, 0.0).sum(axis=1)


def start(m, d, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, d)) / np.sqrt(d), rng.standard_normal(m) / np.sqrt(m)


def max_res(W, a, X, y, p=1.0, c=0.0):
    return np.max(np.abs(ref.forward(W, a, X, p, c) - y))


def test_arrangement_enumeration_counts_every_cell():
    # a central arrangement of n generic hyperplanes in R^d has 2 sum_{k<d} C(n-1, k) cells
    from math import comb

    rng = np.random.default_rng(0)
    for n, d in ((7, 2), (9, 3)):
        X = rng.standard_normal((n, d))
        P = arrangement_patterns(X)
        assert len(P) == 2 * sum(comb(n - 1, k) for k in range(d))
        # and every pattern of many random directions is among them
        Z = rng.standard_normal((20000, d)) @ X.T > 0
        assert {tuple(r) for r in Z} <= {tuple(r) for r in P}


@pytest.fixture(scope="module")
def certified_small():
    pytest.importorskip("cvxpy")
    X, y = relu_problem(8, 2, seed=3)
    value, _, _ = certified_relu_optimum(X, y)
    return X, y, value


def test_certified_value_is_a_lower_bound_and_is_reached(certified_small):
    # every interpolator's orbit-minimal trace is >= the certified optimum; the search
    # from several starts lands within 5 % (its best within 1 %), and no run above 5 %
    # reports convergence
    X, y, value = certified_small
    n, d = X.shape
    Wm, am = fx.memorizing_interpolator(X, y)
    assert fx.orbit_min_trace(Wm, am, X, y) >= value * (1 - 1e-6)
    rel = []
    for seed in range(6):
        W0, a0 = start(2 * n, d, seed)
        s = fx.flattest_interpolator(W0, a0, X, y)
        assert max_res(s.W, s.a, X, y) <= 1.01e-10 * max(1.0, np.abs(y).max())
        assert s.orbit_min_trace >= value * (1 - 1e-6)
        r = s.orbit_min_trace / value - 1
        rel.append(r)
        if r > 0.05:
            assert not s.converged, (r, s)
    rel = np.array(rel)
    assert rel.min() <= 0.01, rel
    assert np.median(rel) <= 0.05, rel


@pytest.mark.parametrize("n, d, seed", [(12, 2, 5), (16, 3, 7)])
def test_convex_polish_reaches_the_certified_optimum(n, d, seed):
    # the search alone stalls at kinks; its convex polish (default for ReLU) lands within
    # 1 % (median) and 5 % (worst) of the independently certified optimum, never below it,
    # never above the search's own point, and always interpolating
    pytest.importorskip("cvxpy")
    X, y = relu_problem(n, d, seed=seed)
    value, _, _ = certified_relu_optimum(X, y)
    rel = []
    for s0 in range(5):
        W0, a0 = start(3 * n, d, 50 + s0)
        s = fx.flattest_interpolator(W0, a0, X, y)
        assert s.polish in ("improved", "no improvement"), s.polish
        assert s.orbit_min_trace <= s.search_orbit_min_trace * (1 + 1e-9)
        assert s.orbit_min_trace >= value * (1 - 1e-6)
        assert max_res(s.W, s.a, X, y) <= 1.01e-10 * max(1.0, np.abs(y).max())
        assert fx.orbit_min_trace(s.W, s.a, X, y) == pytest.approx(s.orbit_min_trace, rel=1e-9)
        # the polish certified it: its optimum is the independent one, and the returned network's
        assert s.certified_optimum == pytest.approx(value, rel=1e-6)
        assert s.certified_optimum * (1 - 1e-7) <= s.orbit_min_trace <= s.certified_optimum * (1 + 1e-5)
        rel.append(s.orbit_min_trace / value - 1)
    assert np.median(rel) <= 0.01 and max(rel) <= 0.05, rel
    # these arrangements are small (<= 50 000 cells): the polish is exact mode with every cell
    # priced, so every start lands on the optimum itself (to the two solvers' accuracy)
    assert max(rel) <= 1e-5, rel
    off = fx.flattest_interpolator(W0, a0, X, y, polish=None)
    assert off.polish == "off" and off.orbit_min_trace == off.search_orbit_min_trace
    assert math.isnan(off.certified_optimum)


def test_polish_retries_an_inaccurate_round(monkeypatch):
    # benchmarks/bench_convex.py's d3 n20 m40 problem from its "teacher split over m neurons"
    # start: both polish rounds raised "could not place the optimum's neurons strictly inside
    # their cells" at the default solver tolerance and the search's +5.3 % point was returned;
    # a round is now retried at a tighter tolerance (measured: +0.017 %)
    pytest.importorskip("cvxpy")
    rng = np.random.default_rng(11)
    X = rng.standard_normal((20, 3))
    teacher = fx.SumOfSingleIndex.random(3, ["relu"] * 3, seed=12)
    y = teacher(X)
    value, _, _ = certified_relu_optimum(X, y)
    U, w = teacher.directions, teacher.weights
    rng = np.random.default_rng(111)
    for _ in range(8):  # the benchmark's eight random starts come first from this generator
        rng.standard_normal((40, 3)), rng.standard_normal(40)
    rng.standard_normal((37, 3)), rng.standard_normal(37)  # its teacher+small start
    reps = 40 // 3
    W0 = np.vstack([np.repeat(U, reps, axis=0), np.zeros((40 - 3 * reps, 3))]) + 0.05 * rng.standard_normal((40, 3))
    a0 = np.concatenate([np.repeat(w / reps, reps), np.zeros(40 - 3 * reps)])
    # the sampled neighbourhood polish (used above 50 000 arrangement cells) is what retries
    from flatext import interpolators as itp

    monkeypatch.setattr(itp, "_POLISH_EXACT_CELLS", 0)
    s = fx.flattest_interpolator(W0, a0, X, y, method="manifold")
    assert s.search_orbit_min_trace > 1.03 * value  # the search alone stalls at a kink
    assert s.polish == "improved", s.polish
    assert math.isnan(s.certified_optimum)  # the sampled polish does not certify
    assert value * (1 - 1e-6) <= s.orbit_min_trace <= 1.01 * value
    assert max_res(s.W, s.a, X, y) <= 1.01e-10 * max(1.0, np.abs(y).max())


def test_stall_is_reported_as_stall_not_convergence():
    # ReLU: the search typically ends at a kink (a sample on a hyperplane) with a
    # tangent gradient far from zero; that must be a stall, never "converged"
    X, y = relu_problem(20, 3, seed=1)
    reasons = set()
    for seed in range(3):
        W0, a0 = start(40, 3, seed)
        s = fx.flattest_interpolator(W0, a0, X, y, gtol=1e-4, polish=None)
        reasons.add(s.reason)
        assert s.converged == (s.reason == "gtol")
        if s.converged:
            assert s.grad_ratio <= 1e-4
        else:
            assert s.reason in ("ftol_stall", "line_search_failed", "max_iter")
            if s.reason != "max_iter":
                assert s.grad_ratio > 1e-4
        assert "grad_ratio" in repr(s)
        # the recorded trace never goes up (the Armijo test is made after the balance)
        assert np.all(np.diff(s.history["trace"]) <= 0)


@pytest.mark.parametrize("neg", [0.0, -0.2, 1.0])
def test_second_order_term_of_the_trial_is_exact_within_cells(neg):
    # search_step's trial for p = 1 subtracts eta^2 J^T K^-1 q with q = jvp(W, v_a, X, v_W, 0):
    # within the cells f is bilinear, f(theta + v) - f(theta) - J v = q exactly
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 4))
    W, a = rng.standard_normal((12, 4)), rng.standard_normal(12)
    vW, va = rng.standard_normal((12, 4)), rng.standard_normal(12)
    Z = X @ W.T
    t = 0.5 * np.min(np.abs(Z) / (np.abs(X @ vW.T) + 1e-300))  # no sample crosses a kink
    vW, va = t * vW, t * va
    assert np.array_equal(np.sign(X @ (W + vW).T), np.sign(Z))
    f = fx.forward(W + vW, a + va, X, neg=neg) - fx.forward(W, a, X, neg=neg)
    Jv = _core.jvp(W, a, X, vW, va, 1.0, neg)
    q = _core.jvp(W, va, X, vW, np.zeros(12), 1.0, neg)
    atol = 1e-14 * np.abs(fx.forward(W, a, X, neg=neg)).max()  # the round-off of the difference f
    np.testing.assert_allclose(f - Jv, q, rtol=0, atol=atol)
    assert np.abs(q).max() > 1e4 * atol  # the check can fail: q is far above the round-off


def test_gram_solve_cg_matches_cholesky():
    W, a, X, _ = ref.problem(n=120, d=6, m=150, seed=5)
    b = np.random.default_rng(1).standard_normal(120)
    for p, c in ((1.0, 0.0), (2.0, -0.3)):
        lam = 1e-6 * np.trace(fx.ntk_gram(W, a, X, power=p, neg=c)) / 120
        r1 = _core.gram_solve(W, a, X, b, p, c, lambda_=lam, solver="cholesky")
        r2 = _core.gram_solve(W, a, X, b, p, c, lambda_=lam, solver="cg", rtol=1e-13)
        assert r1["solver"] == "cholesky" and r2["solver"] == "cg" and r2["converged"]
        np.testing.assert_allclose(r2["x"], r1["x"], rtol=1e-10, atol=1e-10 * np.abs(r1["x"]).max())
        # and against a dense solve
        K = fx.ntk_gram(W, a, X, power=p, neg=c) + lam * np.eye(120)
        np.testing.assert_allclose(r1["x"], np.linalg.solve(K, b), rtol=1e-9, atol=1e-9 * np.abs(r1["x"]).max())
        # the preconditioner: diag(K) in one pass
        np.testing.assert_allclose(_core.gram_diag(W, a, X, p, c), np.diag(K) - lam, rtol=1e-12)
        # a warm start at the solution needs no iteration
        r3 = _core.gram_solve(W, a, X, b, p, c, lambda_=lam, solver="cg", rtol=1e-8, x0=r2["x"])
        assert r3["iterations"] == 0


def test_search_step_cg_matches_cholesky():
    X, y = relu_problem(60, 4, seed=2)
    W0, a0 = start(90, 4, seed=3)
    p = fx.find_interpolator(W0, a0, X, y, power=2.0)
    W, a = fx.balance(p.W, p.a, X, y, power=2.0)
    s1 = _core.search_step(W, a, X, y, 2.0, 0.0, solver="cholesky", retract_rtol=1e-13)
    s2 = _core.search_step(W, a, X, y, 2.0, 0.0, solver="cg", cg_rtol=1e-13, retract_rtol=1e-13)
    assert s1.solver == "cholesky" and s2.solver == "cg" and s2.krylov_converged
    assert s2.gt_norm == pytest.approx(s1.gt_norm, rel=1e-10)
    np.testing.assert_allclose(s2.u, s1.u, rtol=1e-9, atol=1e-10 * np.abs(s1.u).max())
    assert s1.accepted and s2.accepted and s2.eta == pytest.approx(s1.eta, rel=1e-12)
    # same tangent step; the retractions differ (Cholesky: chord steps along J(theta)^T first;
    # CG: Gauss-Newton steps along J(theta')^T), so the two land on M at points that differ at
    # second order in the step: both interpolate and both pass the same Armijo test
    scale = max(1.0, np.abs(y).max())
    for s in (s1, s2):
        assert max_res(s.W, s.a, X, y, 2.0) <= 1.01e-10 * scale
        assert s.trace <= s.trace_before - 1e-4 * s.eta * s.gt_norm**2
    step = np.linalg.norm(s1.W - W)
    assert np.linalg.norm(s2.W - s1.W) <= 0.2 * step
    assert s2.trace == pytest.approx(s1.trace, rel=1e-2)


def test_find_interpolator_cg_path_interpolates():
    X, y = relu_problem(50, 4, seed=4)
    W0, a0 = start(100, 4, seed=5)
    for p in (1.0, 2.0):
        r = fx.find_interpolator(W0, a0, X, y, power=p, solver="cg")
        assert r.solver == "cg" and r.converged and r.krylov_iters > 0 and r.gram_builds == 0
        assert max_res(r.W, r.a, X, y, p) <= 1.01e-10 * max(1.0, np.abs(y).max())


def test_krylov_failure_is_reported():
    X, y = relu_problem(50, 4, seed=4)
    W0, a0 = start(100, 4, seed=5)
    # (polish off: at n = 50, d = 4 the default polish certifies over 39 300 cells, ~13 s)
    s = fx.flattest_interpolator(W0, a0, X, y, solver="cg", cg_max_iter=2, polish=None)
    assert s.reason == "krylov_not_converged" and not s.converged
    # the start point (projected with the default CG cap) is still an interpolator
    assert max_res(s.W, s.a, X, y) <= 1.01e-10 * max(1.0, np.abs(y).max())
    r = fx.find_interpolator(W0, a0, X, y, solver="cg", cg_max_iter=1, max_iter=3)
    assert r.krylov_failures > 0 and not r.converged


@pytest.mark.parametrize("neg", [0.0, -0.3, 1.0])
def test_pattern_gram_apply_matches_the_explicit_gram(neg):
    # p = 1: K v from the stored signs of z_ij (two GEMM-equivalents) against K @ v from the
    # explicit Gram matrix and against vjp + jvp; a zero neuron (z = 0: sigma'(0) = 0) and a zero
    # output weight included; 330 rows span several tiles; float32 to its precision
    rng = np.random.default_rng(3)
    n, d, m = 330, 6, 200
    X, W, a = rng.standard_normal((n, d)), rng.standard_normal((m, d)), rng.standard_normal(m)
    W[3], a[5] = 0.0, 0.0
    v = rng.standard_normal(n)
    ref_Kv = fx.ntk_gram(W, a, X, neg=neg) @ v
    scale = np.abs(ref_Kv).max()
    got = _core.gram_apply(W, a, X, v, 1.0, neg, pattern=True)
    np.testing.assert_allclose(got, ref_Kv, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(_core.gram_apply(W, a, X, v, 1.0, neg), ref_Kv, rtol=0, atol=1e-12 * scale)
    f32 = [x.astype(np.float32) for x in (W, a, X)]
    np.testing.assert_allclose(_core.gram_apply(*f32, v, 1.0, neg, pattern=True), ref_Kv, rtol=0, atol=1e-5 * scale)
    old = fx.get_num_threads()
    try:
        fx.set_num_threads(1)
        one = _core.gram_apply(W, a, X, v, 1.0, neg, pattern=True)
    finally:
        fx.set_num_threads(old)
    assert np.array_equal(one, got)
    with pytest.raises(ValueError, match="power = 1"):
        _core.gram_apply(W, a, X, v, 2.0, neg, pattern=True)


@pytest.mark.parametrize("power", [2.0, 1.0])
def test_cg_step_is_thread_count_independent(power):
    # n = 300 spans two kernel tiles, so two threads really split the CG's J v and J^T u
    # (p = 1: the stored-pattern operator)
    X, y = relu_problem(300, 5, seed=17)
    W0, a0 = start(100, 5, seed=18)
    p = fx.find_interpolator(W0, a0, X, y, power=power)
    W, a = fx.balance(p.W, p.a, X, y, power=power)
    b = np.random.default_rng(0).standard_normal(300)

    def run():
        s = _core.search_step(W, a, X, y, power, 0.0, solver="cg", max_backtrack=3)
        g = _core.gram_solve(W, a, X, b, power, 0.0, lambda_=1e-6, solver="cg", rtol=1e-6)
        return s, g

    s2, g2 = run()
    old = fx.get_num_threads()
    try:
        fx.set_num_threads(1)
        s1, g1 = run()
    finally:
        fx.set_num_threads(old)
    assert s1.solver == "cg" and s1.krylov_iters > 0
    for k in ("W", "a", "u"):
        assert np.array_equal(getattr(s1, k), getattr(s2, k)), k
    assert s1.krylov_iters == s2.krylov_iters and s1.trace == s2.trace
    assert np.array_equal(g1["x"], g2["x"]) and g1["iterations"] == g2["iterations"]


def test_find_interpolator_from_small_starts():
    # the audit's failing case: d = 5, n = 60, m = 120, initialization scale 0.1
    X, y = relu_problem(60, 5, seed=6)
    for seed in range(4):
        rng = np.random.default_rng(seed)
        W0, a0 = 0.1 * rng.standard_normal((120, 5)), 0.1 * rng.standard_normal(120)
        r = fx.find_interpolator(W0, a0, X, y)
        assert r.converged
        assert max_res(r.W, r.a, X, y) <= 1.01e-10 * max(1.0, np.abs(y).max())


def test_unreachable_projection_raises_with_the_residual():
    # a dead network cannot interpolate: the error names the residual, nothing is returned
    X, y = relu_problem(20, 3, seed=7)
    W0 = np.zeros((30, 3))
    a0 = np.ones(30)
    with pytest.raises(ValueError, match="dead"):
        fx.find_interpolator(W0, a0, X, y)
    with pytest.raises(ValueError, match="dead|max\\|r\\|"):
        fx.flattest_interpolator(W0, a0, X, y)


def test_solver_argument_checked():
    X, y = relu_problem(20, 3, seed=7)
    W0, a0 = start(30, 3, seed=1)
    with pytest.raises(ValueError, match="solver"):
        fx.find_interpolator(W0, a0, X, y, solver="lu")
    with pytest.raises(ValueError, match="solver"):
        fx.flattest_interpolator(W0, a0, X, y, solver="qr")
    with pytest.raises(ValueError, match="cg_max_iter"):
        fx.find_interpolator(W0, a0, X, y, cg_max_iter=0)
