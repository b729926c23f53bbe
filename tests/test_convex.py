"""Certified flattest interpolator (flatext.convex), checked against independent computations."""

import math

import flatext as fx
import flatext.convex.pricing as pricing_module
import numpy as np
import pytest
from flatext.convex import (
    arrangement_cell_count,
    arrangement_patterns,
    certified_flattest,
)

pytest.importorskip("clarabel")

NEGS = [-0.3, 0.0, 0.25, 1.0]


def _problem(n, d, seed, links=("relu", "relu")):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    t = fx.SumOfSingleIndex.random(d, list(links)[:d], seed=seed + 100)
    return X, t(X)


def _sigma(z, c):
    return np.maximum(z, 0) + c * np.maximum(-z, 0)


# ----------------------------------------------------------------------------- enumeration
@pytest.mark.parametrize("n,d", [(1, 2), (5, 1), (7, 2), (9, 3), (12, 3), (7, 4), (9, 4)])
def test_cell_count_and_dense_sampling(n, d):
    rng = np.random.default_rng(n * 10 + d)
    X = rng.standard_normal((n, d))
    S, inner = arrangement_patterns(X, return_interior=True)
    assert S.shape == (arrangement_cell_count(n, d), n)
    assert len({r.tobytes() for r in S}) == S.shape[0]  # no duplicates
    assert np.array_equal(np.where(inner @ X.T > 0, 1, -1), S)  # every cell is realised
    # dense random sampling finds only enumerated cells, and (d <= 3: thin cells are rare) all of them
    U = rng.standard_normal((400000, d))
    Ss = np.unique(np.where(U @ X.T > 0, 1, -1).astype(np.int8), axis=0)
    enum = {r.tobytes() for r in S}
    samp = {r.tobytes() for r in Ss}
    assert samp <= enum
    if d <= 3 and n <= 9:
        assert samp == enum


def test_cell_count_formula_small_values():
    # regions of n lines through the origin in R^2: 2n; planes in R^3: n(n-1)+2
    for n in range(1, 8):
        assert arrangement_cell_count(n, 2) == 2 * n
        assert arrangement_cell_count(n, 3) == n * (n - 1) + 2
    assert arrangement_cell_count(3, 5) == 2**3  # n <= d: every orthant


def test_interior_directions_realise_their_cells():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((11, 3))
    S, U = arrangement_patterns(X, return_interior=True)
    assert np.array_equal(np.where(U @ X.T > 0, 1, -1), S)


def test_rank_deficient_X_enumerates_in_its_row_space():
    rng = np.random.default_rng(4)
    B = rng.standard_normal((2, 4))
    X = rng.standard_normal((8, 2)) @ B  # rank 2 in R^4
    S = arrangement_patterns(X)
    assert S.shape[0] == arrangement_cell_count(8, 2)


def test_not_general_position_raises():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((6, 3))
    X[3] = 2.0 * X[1]  # parallel samples
    with pytest.raises(ValueError, match="general position"):
        arrangement_patterns(X)
    with pytest.raises(ValueError, match="general position"):
        certified_flattest(X, np.ones(6), patterns="exact")


# ----------------------------------------------------------------------------- the formula
@pytest.mark.parametrize("neg", NEGS)
def test_orbit_min_trace_is_the_weighted_norm_of_u(neg):
    rng = np.random.default_rng(7)
    n, d, m = 15, 3, 6
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((m, d))
    a = rng.standard_normal(m)
    y = fx.forward(W, a, X, neg=neg)  # an interpolator: r = 0
    parts = fx.hessian_trace_parts(W, a, X, y, neg=neg)
    s = np.sum(X * X, axis=1)
    Z = X @ W.T
    pos, negm = Z > 0, Z < 0
    A = ((Z * Z) * (pos + neg**2 * negm)).sum(0) / n
    B = a**2 * ((s[:, None]) * (pos + neg**2 * negm)).sum(0) / n
    np.testing.assert_allclose(parts.per_neuron_a, A, rtol=1e-12)
    np.testing.assert_allclose(parts.per_neuron_w, B, rtol=1e-12)
    U = np.abs(a)[:, None] * W
    val = 0.0
    for i in range(m):
        wgt = pos[:, i] + neg**2 * negm[:, i]
        kappa = 2.0 / n * math.sqrt(np.dot(wgt, s))
        val += kappa * math.sqrt(np.dot(wgt, (X @ U[i]) ** 2))
    np.testing.assert_allclose(fx.orbit_min_trace(W, a, X, y, neg=neg), val, rtol=1e-12)
    np.testing.assert_allclose(val, np.sum(2 * np.sqrt(A * B)), rtol=1e-12)
    # the output is linear in u with the pattern fixed: sum_i sign(a_i) D_P X u_i
    D = pos - neg * negm
    f = sum(np.sign(a[i]) * D[:, i] * (X @ U[i]) for i in range(m))
    np.testing.assert_allclose(f, y, rtol=1e-12, atol=1e-12)


def test_zero_neurons_contribute_nothing():
    X, y = _problem(10, 3, 0)
    W = np.random.default_rng(0).standard_normal((4, 3))
    a = np.array([1.0, -0.5, 0.0, 2.0])
    W0 = np.vstack([W, np.zeros((3, 3))])
    a0 = np.concatenate([a, np.zeros(3)])
    y = fx.forward(W, a, X)
    assert fx.orbit_min_trace(W0, a0, X, y) == pytest.approx(fx.orbit_min_trace(W, a, X, y), rel=1e-14)


# ----------------------------------------------------------------------------- the optimum
def _independent_optimum(X, y, neg, n_dirs=200000, seed=0):
    """The same program written independently: cvxpy, patterns from dense sampling, all n cone rows."""
    cp = pytest.importorskip("cvxpy")
    n, d = X.shape
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((n_dirs, d))
    S = np.unique(np.where(U @ X.T > 0, 1, -1), axis=0)
    s = np.sum(X * X, axis=1)
    cons, obj, f = [], 0, 0
    for sg in S:
        wgt = np.where(sg > 0, 1.0, neg**2)
        if wgt @ s == 0:
            continue
        M = np.sqrt(wgt)[:, None] * X
        D = np.where(sg > 0, 1.0, -neg)[:, None] * X
        for g in (1, -1):
            u = cp.Variable(d)
            cons.append(cp.multiply(sg, X @ u) >= 0)
            obj = obj + 2.0 / n * math.sqrt(wgt @ s) * cp.norm(M @ u)
            f = f + g * (D @ u)
    prob = cp.Problem(cp.Minimize(obj), cons + [f == y])
    prob.solve(solver=cp.CLARABEL)
    return prob.value, S.shape[0]


@pytest.mark.parametrize("neg", NEGS)
def test_certified_matches_independent_program_d2(neg):
    X, y = _problem(8, 2, 1)
    res = certified_flattest(X, y, neg=neg)
    assert res.certificate == "global"
    ref, count = _independent_optimum(X, y, neg)
    assert count == arrangement_cell_count(8, 2)  # sampling found every cell
    assert res.bound == pytest.approx(ref, rel=1e-6)
    assert res.value == pytest.approx(res.bound, rel=1e-4)


@pytest.mark.parametrize("neg", NEGS)
def test_network_interpolates_and_value_is_its_orbit_min_trace(neg):
    X, y = _problem(14, 3, 2)
    res = certified_flattest(X, y, neg=neg, m=40)
    assert res.W.shape == (40, 3) and res.a.shape == (40,)
    r = fx.forward(res.W, res.a, X, neg=neg) - y
    assert np.max(np.abs(r)) == pytest.approx(res.max_residual, abs=1e-15)
    assert res.max_residual <= 1e-8 * max(1.0, np.max(np.abs(y)))
    assert fx.orbit_min_trace(res.W, res.a, X, y, neg=neg) == pytest.approx(res.value, rel=1e-12)
    # balanced: the Hessian trace itself is already the orbit minimum
    assert fx.hessian_trace(res.W, res.a, X, y, neg=neg) == pytest.approx(res.value, rel=1e-8)
    assert res.active_neurons <= 40 and np.all(res.W[res.active_neurons :] == 0)
    # the optimum itself has at most n neurons (an LP vertex); the in-cell correction adds at most n
    assert res.info["optimum_neurons"] <= X.shape[0]
    assert res.active_neurons <= 2 * X.shape[0]
    # every active neuron strictly inside a cell: no sample on a kink
    Z = X @ res.W[: res.active_neurons].T
    assert np.all(np.abs(Z) > 0)


@pytest.mark.parametrize("neg", NEGS)
def test_sampled_patterns_never_beat_the_certified_optimum(neg):
    X, y = _problem(10, 3, 3)
    exact = certified_flattest(X, y, neg=neg, patterns="exact")
    for seed in range(3):
        samp = certified_flattest(X, y, neg=neg, patterns="sampled", n_patterns=60, seed=seed)
        assert samp.certificate == "upper_bound"
        assert samp.bound >= exact.bound * (1 - 1e-7)
        assert samp.value >= exact.bound * (1 - 1e-7)


@pytest.mark.parametrize("neg", NEGS)
def test_random_interpolators_and_search_never_beat_it(neg):
    n, d, m = 10, 3, 20
    X, y = _problem(n, d, 4)
    cert = certified_flattest(X, y, neg=neg)
    floor = cert.bound * (1 - 1e-7)
    rng = np.random.default_rng(0)
    searched = 0
    for seed in range(5):
        W0 = rng.standard_normal((m, d))
        a0 = rng.standard_normal(m) / math.sqrt(m)
        try:
            sr = fx.flattest_interpolator(W0, a0, X, y, neg=neg, max_iter=150, polish=None)
        except ValueError:  # the start could not be projected onto the interpolators
            sr = None
        if sr is not None and sr.max_residual <= 1e-6:
            searched += 1
            assert sr.orbit_min_trace >= floor
        # random interpolators: solve for the output weights with W fixed
        W = rng.standard_normal((3 * n, d))
        S = _sigma(X @ W.T, neg)
        a, *_ = np.linalg.lstsq(S, y, rcond=None)
        if np.max(np.abs(S @ a - y)) < 1e-9:
            assert fx.orbit_min_trace(W, a, X, y, neg=neg) >= floor
    assert searched >= 2


def test_abs_search_from_random_starts_reaches_the_certified_optimum():
    # |z| networks: the damped Gauss-Newton projection of most random starts ends at a
    # non-interpolating stationary point of the square loss; the search then starts from the
    # output-layer solve at W0 and (with its convex polish) reaches the enumerated optimum
    gn_failures, rel = 0, []
    for seed in (0, 2):
        X, y = _problem(20, 3, 30 + seed)
        bound = certified_flattest(X, y, neg=1.0, patterns="exact").bound
        rng = np.random.default_rng(seed)
        for _ in range(4):
            W0 = rng.standard_normal((40, 3)) / math.sqrt(3)
            a0 = rng.standard_normal(40) / math.sqrt(40)
            try:
                gn_failures += not fx.find_interpolator(W0, a0, X, y, neg=1.0, max_iter=200).converged
            except ValueError:
                gn_failures += 1
            s = fx.flattest_interpolator(W0, a0, X, y, neg=1.0)
            assert s.max_residual <= 1e-10 * max(1.0, np.abs(y).max())
            assert np.max(np.abs(np.abs(X @ s.W.T) @ s.a - y)) <= 1e-9
            assert s.orbit_min_trace >= bound * (1 - 1e-7)
            rel.append(s.orbit_min_trace / bound - 1)
    assert gn_failures >= 6  # the fallback is what makes these starts work
    assert np.median(rel) <= 0.01 and max(rel) <= 0.05, rel


def test_warm_start_patterns_give_an_upper_bound_at_most_the_warm_start():
    # a warm start whose samples sit strictly inside its neurons' cells (a random interpolator:
    # a search's point can have a hyperplane pinned at a sample, where sigma'(0) = 0 scores
    # lower than any network strictly inside the cells; see docs/convex.md)
    X, y = _problem(12, 3, 5)
    rng = np.random.default_rng(1)
    Wm = rng.standard_normal((24, 3))
    S = _sigma(X @ Wm.T, 0.0)
    am, *_ = np.linalg.lstsq(S, y, rcond=None)
    assert np.max(np.abs(S @ am - y)) < 1e-9 and np.min(np.abs(X @ Wm.T)) > 1e-6
    res = certified_flattest(X, y, patterns="sampled", n_patterns=1, warm_start=[(Wm, am)])
    assert res.value <= fx.orbit_min_trace(Wm, am, X, y) * (1 + 1e-6)
    exact = certified_flattest(X, y)
    assert res.value >= exact.bound * (1 - 1e-7)


def test_solvers_agree():
    X, y = _problem(9, 3, 6)
    ref = certified_flattest(X, y, solver="clarabel")
    pytest.importorskip("scs")
    scs = certified_flattest(X, y, solver="scs", tol=1e-9)
    assert scs.bound == pytest.approx(ref.bound, rel=1e-5)


# ----------------------------------------------------------------------------- errors
# the ReLU case in the quick tier, the other activations in the slow one (a cone program per round)
@pytest.mark.parametrize("neg", [pytest.param(v, marks=[] if v == 0.0 else [pytest.mark.slow]) for v in NEGS])
def test_column_generation_reaches_the_enumerated_optimum(neg):
    # few sampled cells alone stay above the global optimum; the pricing step adds the
    # cells whose dual constraint the multipliers violate until the optimum is reached
    gaps_without, gaps_with = [], []
    for seed in range(3):
        X, y = _problem(18, 3, 20 + seed)
        exact = certified_flattest(X, y, neg=neg, patterns="exact").bound
        kw = dict(neg=neg, patterns="sampled", n_patterns=25, seed=seed)
        plain = certified_flattest(X, y, pricing_rounds=0, **kw)
        priced = certified_flattest(X, y, pricing_rounds=10, **kw)
        assert plain.info["pricing"]["rounds"] == 0
        assert priced.bound >= exact * (1 - 1e-6)  # never below the global optimum
        assert priced.bound <= plain.bound * (1 + 1e-7)  # added cells never hurt
        assert priced.info["pricing"]["added"] > 0
        gaps_without.append(plain.bound / exact - 1)
        gaps_with.append(priced.bound / exact - 1)
    assert max(gaps_without) > 1e-3, gaps_without  # the check can fail: sampling alone misses
    assert max(gaps_with) <= 1e-4, gaps_with


def test_sampled_pricing_drops_the_cells_that_carry_nothing(monkeypatch):
    # 200 sampled cells, most of them carrying nothing at the optimum. Programs over more than
    # PRICING_DROP_MIN_N samples drop them before the next solve (here lowered to 0 so that the
    # enumerated optimum can judge it): the final program is smaller than the first, and the answer
    # still reaches the global optimum; below the limit no cell leaves
    gaps = []
    for seed in (7, 8, 9):
        X, y = _problem(30, 3, seed)
        exact = certified_flattest(X, y, patterns="exact").bound
        kw = dict(patterns="sampled", n_patterns=200, seed=1)
        plain = certified_flattest(X, y, pricing_rounds=0, **kw)
        assert certified_flattest(X, y, pricing_rounds=2, **kw).info["pricing"]["dropped"] == 0
        with monkeypatch.context() as mp:
            mp.setattr(pricing_module, "PRICING_DROP_MIN_N", 0)
            priced = certified_flattest(X, y, pricing_rounds=10, **kw)
        p = priced.info["pricing"]
        assert p["rounds"] >= 1 and p["dropped"] > 100, p
        assert priced.n_patterns < plain.n_patterns
        assert exact * (1 - 1e-6) <= priced.bound <= plain.bound * (1 + 1e-7)
        assert p["lower_bound_tried"] <= priced.bound * (1 + 1e-6)
        gaps.append(priced.bound / exact - 1)
    assert max(gaps) <= 1e-4, gaps


def test_bad_inputs_raise():
    X, y = _problem(8, 2, 7)
    with pytest.raises(ValueError, match="pricing_rounds"):
        certified_flattest(X, y, pricing_rounds=-1)
    with pytest.raises(ValueError, match="pricing_rounds"):
        certified_flattest(X, y, patterns="sampled", solver="scs", pricing_rounds=2)
    with pytest.raises(ValueError, match="neg"):
        certified_flattest(X, y, neg=-1.0)
    with pytest.raises(ValueError, match="neg"):
        certified_flattest(X, y, neg=1.5)
    with pytest.raises(TypeError, match="neg"):
        certified_flattest(X, y, neg="x")
    with pytest.raises(ValueError, match="patterns"):
        certified_flattest(X, y, patterns="all")
    with pytest.raises(ValueError, match="solver"):
        certified_flattest(X, y, solver="gurobi")
    with pytest.raises(ValueError, match="y must have shape"):
        certified_flattest(X, y[:-1])
    with pytest.raises(ValueError, match="NaN"):
        certified_flattest(X, np.full(8, np.nan))
    with pytest.raises(ValueError, match="m must"):
        certified_flattest(X, y, m=0)
    with pytest.raises(ValueError, match="zero row"):
        X0 = X.copy()
        X0[0] = 0
        certified_flattest(X0, y)


def test_width_too_small_says_so():
    X, y = _problem(10, 2, 8)
    res = certified_flattest(X, y)
    with pytest.raises(ValueError, match="lower bound"):
        certified_flattest(X, y, m=res.active_neurons - 1)


def test_sampled_mode_handles_data_not_in_general_position():
    rng = np.random.default_rng(9)
    X = rng.standard_normal((8, 3))
    X[5] = 2.0 * X[1]  # parallel samples: exact enumeration refuses
    W = rng.standard_normal((5, 3))
    a = rng.standard_normal(5)
    y = fx.forward(W, a, X)
    res = certified_flattest(X, y, patterns="sampled", n_patterns=300, warm_start=[(W, a)])
    assert res.certificate == "upper_bound"
    assert res.max_residual <= 1e-9 * max(1.0, np.max(np.abs(y)))
    assert res.value <= fx.orbit_min_trace(*fx.balance(W, a, X, y), X, y) * (1 + 1e-6)
    with pytest.raises(TypeError, match="warm_start"):
        certified_flattest(X, y, patterns="sampled", warm_start=[W])


def test_output_layer_solve_matrix_free_matches_the_factored_one(monkeypatch):
    # above _OUTPUT_SOLVE_MAX_N the search's start fallback solves S S^T c = r matrix-free
    # (the core's gram_solve at a = 0, where K = S S^T: Nystrom PCG, no n x n matrix); forced
    # here at n = 20 and checked against the Cholesky solve and by the interpolation it must reach
    from flatext import interpolators as itp

    X, y = _problem(20, 3, 30)
    rng = np.random.default_rng(0)
    for neg in (1.0, 0.0, -0.25):
        W0 = rng.standard_normal((40, 3)) / math.sqrt(3)
        a0 = rng.standard_normal(40) / math.sqrt(40)
        dense, why_dense = itp._output_layer_solve(W0, a0, X, y, 1.0, neg)
        monkeypatch.setattr(itp, "_OUTPUT_SOLVE_MAX_N", 0)
        free, why_free = itp._output_layer_solve(W0, a0, X, y, 1.0, neg)
        monkeypatch.undo()
        assert why_dense is None and why_free is None
        S = _sigma(X @ W0.T, neg)
        for a1 in (dense, free):
            assert np.max(np.abs(S @ a1 - y)) <= 1e-9
        assert np.allclose(free, dense, rtol=0, atol=1e-6 * np.abs(dense).max())  # cond(S S^T) x 1e-12
        # the least-norm change: a1 - a0 lies in the row space of S
        coef, *_ = np.linalg.lstsq(S.T, free - a0, rcond=None)
        assert np.allclose(S.T @ coef, free - a0, atol=1e-8)
    # the search from starts whose projection fails, on the matrix-free fallback
    monkeypatch.setattr(itp, "_OUTPUT_SOLVE_MAX_N", 0)
    calls = []
    solve = itp._output_layer_solve
    monkeypatch.setattr(itp, "_output_layer_solve", lambda *args: calls.append(1) or solve(*args))
    for _ in range(4):
        W0 = rng.standard_normal((40, 3)) / math.sqrt(3)
        a0 = rng.standard_normal(40) / math.sqrt(40)
        s = fx.flattest_interpolator(W0, a0, X, y, neg=1.0)
        assert np.max(np.abs(np.abs(X @ s.W.T) @ s.a - y)) <= 1e-9
    assert len(calls) >= 2  # the fallback was what started these searches


def test_output_layer_solve_reports_rank_deficient_features():
    # 3 distinct neurons copied into 40: S has rank 3 < n, no a interpolates; a clear ValueError
    X, y = _problem(20, 3, 31)
    rng = np.random.default_rng(3)
    W0 = np.repeat(rng.standard_normal((3, 3)), [14, 13, 13], axis=0)
    a0 = rng.standard_normal(40) / math.sqrt(40)
    with pytest.raises(ValueError, match=r"output-layer solve at W0 failed too \(max\|r\| = "):
        fx.flattest_interpolator(W0, a0, X, y, neg=1.0)


# ------------------------------------------------------------------- exact mode by column generation
@pytest.mark.parametrize(
    "neg", [pytest.param(v, marks=[] if v == 0.0 else [pytest.mark.slow]) for v in (0.0, -0.25, 0.5, 1.0)]
)
def test_exact_column_generation_matches_the_full_program(neg):
    # n = 30, d = 3: 872 cells, above the 2 max(200, 4n) where exact mode prices instead of
    # solving over all of them; the full program (pricing_rounds=0) is the independent optimum
    for seed in (5, 6):
        X, y = _problem(30, 3, seed)
        cg = certified_flattest(X, y, neg=neg, patterns="exact")
        full = certified_flattest(X, y, neg=neg, patterns="exact", pricing_rounds=0)
        p = cg.info["pricing"]
        assert cg.certificate == full.certificate == "global"
        assert cg.n_patterns < full.n_patterns == 872 and p["rounds"] >= 1 and p["added"] >= 1
        assert p["max_ratio"] <= 1 + 1e-6
        assert abs(cg.bound / full.bound - 1) <= 1e-7
        # the dual certificate: lam.y / max(1, rho_max) bounds the global optimum from below
        assert full.bound * (1 - 1e-7) <= p["lower_bound"] <= full.bound * (1 + 1e-7)
        assert cg.max_residual <= 1e-9 * max(1.0, np.abs(y).max())
        assert cg.bound * (1 - 1e-7) <= cg.value <= cg.bound * (1 + 1e-5)


@pytest.mark.slow  # the full program and a pricing run on the same arrangement
def test_exact_column_generation_stopped_early_is_an_upper_bound_with_a_lower_bound():
    # one pricing round is not enough here: the certificate must say so, and the dual bound
    # must still sit below the optimum (by about 1 %: the unpriced cells' violation)
    for neg, seed in ((0.0, 6), (-0.25, 5), (0.5, 5)):
        X, y = _problem(30, 3, seed)
        one = certified_flattest(X, y, neg=neg, patterns="exact", pricing_rounds=1)
        full = certified_flattest(X, y, neg=neg, patterns="exact", pricing_rounds=0)
        p = one.info["pricing"]
        assert one.certificate == "upper_bound" and p["max_ratio"] > 1 + 1e-6
        assert p["lower_bound"] <= full.bound * (1 - 1e-3)
        assert one.bound >= full.bound * (1 - 1e-7)


def test_dual_pricing_matches_the_cone_program():
    # the NNLS on the pricing problem's conic dual against the cone program over the cell,
    # for every cell of an arrangement and a random multiplier vector, both output signs
    from flatext.convex import _cell_max_ratio, _cell_ratio_dual, _enumerate_cells, _ratio_bounds

    for neg in NEGS:
        X, _ = _problem(12, 3, 8)
        lam = np.random.default_rng(1).standard_normal(12)
        signs, touch, _ = _enumerate_cells(X)
        rows = [np.nonzero(t)[0] for t in touch]
        dual, ok = _cell_ratio_dual(X, lam, neg, signs, rows)
        cone = np.maximum(*(_cell_max_ratio(X, lam, neg, signs, np.full(len(signs), g))[0] for g in (1.0, -1.0)))
        assert ok.sum() >= len(signs) // 2
        assert np.allclose(dual[ok], cone[ok], rtol=1e-6, atol=1e-9)
        ub, tight = _ratio_bounds(X, lam, neg, signs)
        assert np.all(cone <= ub * (1 + 1e-7) + 1e-12)  # the cheap bound is a bound
        assert np.allclose(ub[tight], cone[tight], rtol=1e-6, atol=1e-9)  # and exact where it says so
        assert np.any(ub > cone * (1 + 1e-3))  # and not everywhere: the pricing problem has cones


def test_exact_column_generation_retries_a_first_program_that_fails(monkeypatch):
    # the first program (random cells) could miss interpolating y: it gets more cells, once
    # the solver reports failure, and the answer is still the full program's
    from flatext import convex

    X, y = _problem(30, 3, 5)
    full = certified_flattest(X, y, patterns="exact", pricing_rounds=0)
    calls = []
    solve = convex._solve_clarabel

    def flaky(*args, **kw):
        calls.append(1)
        x, status, obj, z = solve(*args, **kw)
        return (x, "PrimalInfeasible", obj, z) if len(calls) == 1 else (x, status, obj, z)

    monkeypatch.setattr(convex, "_solve_clarabel", flaky)
    r = certified_flattest(X, y, patterns="exact")
    assert len(calls) >= 3 and r.certificate == "global"
    assert abs(r.bound / full.bound - 1) <= 1e-7


def test_exact_pricing_returns_its_restricted_program_with_named_parts():
    # the column generation's result names its parts: the program's own cells (fewer than the
    # arrangement's, each one of them), one (cell, sign) group per (u, t) block of x and column
    # block of A, and an objective equal to the trace of its t's
    from dataclasses import FrozenInstanceError

    from flatext import convex
    from flatext.convex.cells import _exact_patterns

    X, y = _problem(30, 3, 5)
    Xr = X @ convex._row_basis(X)
    r = Xr.shape[1]
    pats = _exact_patterns(Xr)
    rng = np.random.default_rng(0)
    sol = convex._exact_by_pricing(Xr, y, 0.0, pats, convex._solve_clarabel, "clarabel", 1e-8, 50, rng, False)
    assert 0 < len(sol.patterns.signs) < len(pats.signs) == convex.arrangement_cell_count(30, 3)
    full = {row.tobytes() for row in pats.signs}
    assert all(row.tobytes() in full for row in sol.patterns.signs)
    assert sol.A.shape[1] == len(sol.groups) * (r + 1) == sol.x.size
    assert sol.kappa.shape == (len(sol.groups),) and len(sol.factors) == len(sol.groups)
    assert abs(np.sum(convex._contributions(sol.kappa, sol.x, r)) / sol.objective - 1) < 1e-6
    assert sol.pricing["max_ratio"] <= 1 + 1e-6 and sol.pricing["lower_bound"] <= sol.objective * (1 + 1e-6)
    with pytest.raises(FrozenInstanceError):
        sol.x = None


def test_sampled_pricing_keeps_each_program_within_max_columns():
    # two groups of r + 1 columns per cell: with room for few cells beyond the first program the
    # rounds add only what fits and end when nothing does; without the limit the program grows
    X, y = _problem(40, 3, 11)
    kw = dict(patterns="sampled", n_patterns=30, seed=1, solver="ipm", pricing_rounds=6)
    free = certified_flattest(X, y, **kw)
    first = certified_flattest(X, y, **dict(kw, pricing_rounds=0)).n_patterns
    cap = 2 * 4 * (first + 3)  # r = 3: three cells beyond the first program fit
    q = certified_flattest(X, y, pricing_max_columns=cap, **kw)
    assert q.n_patterns <= first + 3 < free.n_patterns
    assert q.info["pricing"].get("column_limit") or q.info["pricing"]["rounds"] < 6
    assert q.bound >= free.bound * (1 - 1e-9)
    with pytest.raises(TypeError, match="pricing_max_columns"):
        certified_flattest(X, y, patterns="exact", pricing_max_columns=10)


def test_sampled_pricing_small_gain_rule_ends_the_rounds():
    # the rounds' optima (a callback's record, rounds unlimited by the rule) give each round's
    # relative gain; with pricing_rtol between two of them the rounds end exactly after the first
    # round gaining less, returning that round's optimum, and 0 never fires while every gain is > 0
    X, y = _problem(40, 3, 11)
    kw = dict(patterns="sampled", n_patterns=30, seed=1, solver="ipm", pricing_rounds=6)
    seen = []
    free = certified_flattest(X, y, callback=lambda info: seen.append(info["objective"]) and False, **kw)
    assert "small_gain" not in free.info["pricing"] and len(seen) >= 4
    gains = -np.diff(seen) / np.array(seen[:-1])
    assert np.all(gains > 0) and gains[0] > gains[1]  # this problem: 39 %, 13 %, 23 %, 21 %, 1 %
    q = certified_flattest(X, y, pricing_rtol=1.01 * gains[1], **kw)
    assert q.info["pricing"]["small_gain"] and q.info["pricing"]["rounds"] == 2
    assert q.reason == "small_gain" and q.bound == pytest.approx(seen[2], rel=1e-12)
    zero = certified_flattest(X, y, pricing_rtol=0.0, **kw)
    assert zero.info["pricing"]["rounds"] == free.info["pricing"]["rounds"] and zero.bound == free.bound
    with pytest.raises(ValueError, match="pricing_rtol"):
        certified_flattest(X, y, pricing_rtol=-1.0, **kw)
    with pytest.raises(TypeError, match="pricing_rtol"):
        certified_flattest(X, y, patterns="exact", pricing_rtol=0.1)


# ----------------------------------------------------------------------------- correction LP
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_correction_lp_outside_the_range_of_few_columns_is_refused_as_highs_refuses_it(seed, monkeypatch):
    """The in-cell construction's correction LP (min cost.|beta| s.t. F beta = t): with fewer
    columns than samples a generic target is outside F's range; the least-squares check answers
    None without the LP, as HiGHS itself does (status 2, infeasible: checked on this small case,
    where it is fast). A target inside the range gets an exact beta no dearer than a known one."""
    import flatext.convex.network as network
    from flatext.convex.network import _cheapest_fit
    from scipy.optimize import linprog

    calls = []
    monkeypatch.setattr(network, "linprog", lambda *a, **k: calls.append(1) or linprog(*a, **k))

    rng = np.random.default_rng(seed)
    n, K = 80, 30
    F = np.maximum(rng.standard_normal((n, 4)) @ rng.standard_normal((4, K)), 0) + 0.1 * rng.standard_normal((n, K))
    cost = rng.uniform(0.5, 2.0, K)
    t = rng.standard_normal(n)
    assert _cheapest_fit(F, cost, t) is None and not calls  # refused before the LP
    lp = linprog(np.r_[cost, cost], A_eq=np.hstack([F, -F]), b_eq=t / np.abs(t).max(), bounds=(0, None))
    assert lp.status == 2  # infeasible
    beta0 = np.zeros(K)
    beta0[rng.choice(K, 6, replace=False)] = rng.standard_normal(6)
    t_in = 1e-9 * (F @ beta0)  # tiny, as the construction's residuals are
    beta = _cheapest_fit(F, cost, t_in)
    assert beta is not None and len(calls) == 1
    assert np.max(np.abs(F @ beta - t_in)) <= 1e-12 * np.max(np.abs(t_in))
    assert cost @ np.abs(beta) <= cost @ np.abs(beta0) * (1 + 1e-9)
