"""The cell-sparse flattest interpolator (``method="cells"``, flatext/cells.py).

Checked against independent numbers: a planted teacher network's orbit-minimal trace
(computed here from the formula with numpy), the certified global optimum of
tests/relu_certify.py (cvxpy over every cell, small d), the manifold search on the
same data; interpolation with tests/reference.py's forward pass.
"""

import dataclasses
import math
import time

import flatext as fx
import numpy as np
import pytest
import reference as ref
from relu_certify import certified_relu_optimum


def orbit_min_relu(W, a, X):
    """Sum over neurons of (2/n) |a_i| sqrt(sum_{j active} |x_j|^2) ||relu(X w_i)|| (docs/design.md s. 4)."""
    n = X.shape[0]
    Z = X @ W.T
    s = np.einsum("ij,ij->i", X, X)
    act = Z > 0
    return float(np.sum(2.0 / n * np.abs(a) * np.sqrt(act.T @ s) * np.linalg.norm(np.maximum(Z, 0), axis=0)))


def planted(d, n, seed, k=3):
    """Labels of a planted width-k ReLU network with unit directions and weights in [0.5, 1]."""
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((d, k)))[0].T
    w = rng.uniform(0.5, 1.0, k)
    X = rng.standard_normal((n, d))
    return X, np.maximum(X @ U.T, 0) @ w, U, w


def start(m, d, seed):
    rng = np.random.default_rng(seed + 100)
    return rng.standard_normal((m, d)) / np.sqrt(d), rng.standard_normal(m) / np.sqrt(m)


def interpolates(W, a, X, y, tol=1.01e-10):
    return np.max(np.abs(ref.forward(W, a, X, 1.0, 0.0) - y)) <= tol * max(1.0, np.abs(y).max())


def check_cells_result(s, X, y):
    assert s.method == "cells"
    assert interpolates(s.W, s.a, X, y)
    # the reported value is the network's orbit-minimal trace, within the restricted optimum's accuracy
    assert s.orbit_min_trace == pytest.approx(orbit_min_relu(s.W, s.a, X), rel=1e-9)
    assert s.restricted_optimum * (1 - 1e-6) <= s.orbit_min_trace <= s.restricted_optimum * (1 + 1e-4)
    assert s.cells > 0 and s.lower_bound <= s.restricted_optimum * (1 + 1e-6)
    assert s.converged == (s.reason == "restricted_optimum")
    if s.converged:
        assert s.max_ratio <= 1 + 1e-6


@pytest.mark.slow  # the restricted cone program and its in-cell construction: ~10 s
def test_cells_beats_a_planted_teacher_and_the_search():
    # d = 5, n = 30: 55 682 arrangement cells (above the certified polish's 50 000), where the
    # search alone stalls at kinks; the planted network is one interpolator the answer must not be above
    X, y, U, w = planted(5, 30, seed=0)
    W0, a0 = start(60, 5, 0)
    s = fx.flattest_interpolator(W0, a0, X, y, method="cells")
    check_cells_result(s, X, y)
    teacher = orbit_min_relu(U, w, X)
    m = fx.flattest_interpolator(W0, a0, X, y, method="manifold", polish=None)
    assert s.orbit_min_trace <= min(teacher, m.orbit_min_trace) * (1 + 5e-5)
    assert s.W.shape == (60, 5)


@pytest.mark.parametrize("seed", [pytest.param(1, marks=pytest.mark.slow), 2])
def test_cells_is_never_below_the_certified_optimum(seed):
    # d = 3: the global optimum over every cell (cvxpy, independent code) bounds every
    # interpolator from below; the cell-sparse answer is an interpolator, near it
    pytest.importorskip("cvxpy")
    X, y, _, _ = planted(3, 16, seed=seed, k=2)
    value, _, _ = certified_relu_optimum(X, y)
    s = fx.flattest_interpolator(*start(32, 3, seed), X, y, method="cells")
    check_cells_result(s, X, y)
    assert value * (1 - 1e-6) <= s.orbit_min_trace <= value * 1.05


@pytest.mark.slow  # the search and the cell-sparse method: ~10 s
def test_auto_keeps_the_flatter_of_search_and_cells():
    X, y, _, _ = planted(5, 30, seed=3)
    W0, a0 = start(60, 5, 3)
    s = fx.flattest_interpolator(W0, a0, X, y)  # auto: search, then the cell-sparse method
    assert s.orbit_min_trace <= s.search_orbit_min_trace * (1 + 1e-12)
    assert interpolates(s.W, s.a, X, y)
    assert s.method in ("cells", "manifold")
    if s.method == "cells":
        check_cells_result(s, X, y)
    else:
        assert "no flatter point" in s.message


@pytest.mark.slow  # the default method at d = 8-10, n = 100-150: 10-60 s each
@pytest.mark.parametrize("d, n, seed", [(8, 100, 0), (8, 100, 1), (10, 150, 2)])
def test_default_is_at_least_as_flat_as_a_planted_teacher(d, n, seed):
    # the default method ("auto": the search, then the cell-sparse method) never ends above an
    # interpolator one can write down: the planted width-3 ReLU network
    X, y, U, w = planted(d, n, seed=seed)
    s = fx.flattest_interpolator(*start(2 * n, d, seed), X, y)
    assert interpolates(s.W, s.a, X, y)
    assert s.orbit_min_trace <= orbit_min_relu(U, w, X) * (1 + 5e-5), (s.method, s.message)


def test_cells_failure_falls_back_to_the_search_and_says_why(monkeypatch):
    from flatext import interpolators as itp

    def broken(*args, **kw):
        raise RuntimeError("solver says no")

    monkeypatch.setattr(itp, "cell_sparse", broken)
    X, y, _, _ = planted(6, 30, seed=4)
    s = fx.flattest_interpolator(*start(60, 6, 4), X, y, method="cells")
    assert s.method == "manifold"
    assert "cell-sparse method failed (solver says no)" in s.message
    assert interpolates(s.W, s.a, X, y)


def test_cells_rtol_ends_the_pricing_rounds_when_a_round_gains_little():
    # cells_rtol = 1: the first round gains less than the whole optimum, so it is the last (reason
    # "small_gain" unless nothing was violated); 0 runs the rounds until none is violated or they
    # run out. Fewer rounds never give a lower restricted optimum (at n <= 200 no cell leaves)
    X, y, _, _ = planted(6, 40, seed=4)
    W0, a0 = start(80, 6, 4)
    every = fx.flattest_interpolator(W0, a0, X, y, method="cells", cells_rtol=0.0)
    one = fx.flattest_interpolator(W0, a0, X, y, method="cells", cells_rtol=1.0)
    for s in (every, one):
        check_cells_result(s, X, y)
    assert every.iterations >= 2 and every.reason in ("restricted_optimum", "pricing_rounds")
    assert one.iterations == 1 and one.reason in ("small_gain", "restricted_optimum")
    assert one.restricted_optimum >= every.restricted_optimum * (1 - 1e-9)
    with pytest.raises(TypeError, match="cells_rtol"):
        fx.flattest_interpolator(W0, a0, X, y, method="manifold", cells_rtol=0.1)
    with pytest.raises(ValueError, match="cells_rtol"):
        fx.flattest_interpolator(W0, a0, X, y, method="cells", cells_rtol=-1.0)


def test_method_arguments_are_checked():
    X, y, _, _ = planted(4, 10, seed=5)
    W0, a0 = start(20, 4, 5)
    with pytest.raises(ValueError, match="method must be"):
        fx.flattest_interpolator(W0, a0, X, y, method="fastest")
    with pytest.raises(ValueError, match="method='cells' needs power = 1"):
        fx.flattest_interpolator(W0, a0, X, y, method="cells", power=2.0)
    with pytest.raises(ValueError, match="no polish"):
        fx.flattest_interpolator(W0, a0, X, y, method="cells", polish="convex")
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="max_seconds"):
            fx.flattest_interpolator(W0, a0, X, y, max_seconds=bad)
    with pytest.raises(ValueError, match="cells_width"):
        fx.flattest_interpolator(W0, a0, X, y, method="cells", cells_width=0)


def test_max_seconds_stops_the_search_with_an_interpolator():
    # a search cut by a budget: every step starts before the deadline, the point returned is the
    # last accepted one and interpolates. The callback sleeps 0.1 s a step, so the budget (not a
    # fast machine's convergence) ends the search; gtol = ftol = 0 keep it from stopping otherwise
    X, y, _, _ = planted(8, 150, seed=6)
    W0, a0 = start(300, 8, 6)
    proj = fx.find_interpolator(W0, a0, X, y)
    stamps = []
    budget = 0.5

    def slow(info):
        stamps.append(time.perf_counter())
        time.sleep(0.1)

    t0 = time.perf_counter()
    s = fx.flattest_interpolator(
        proj.W, proj.a, X, y, method="manifold", polish=None, gtol=0.0, ftol=0.0, max_seconds=budget, callback=slow
    )
    elapsed = time.perf_counter() - t0
    assert s.reason == "time_budget" and not s.converged
    assert len(stamps) >= 2 and stamps[-2] - t0 < budget  # the last step started before the deadline
    steps = np.diff([t0] + stamps)
    assert elapsed <= 1.1 * budget + steps.max() + 0.5  # one step may run past it (+ start overhead)
    assert interpolates(s.W, s.a, X, y)
    assert s.seconds == pytest.approx(elapsed, rel=0.5)


@pytest.mark.parametrize("threads", [1, 2])
def test_cells_bits_do_not_depend_on_threads(threads):
    X, y, _, _ = planted(5, 24, seed=7)
    W0, a0 = start(48, 5, 7)
    old = fx.get_num_threads()
    try:
        fx.set_num_threads(1)
        ref_s = fx.flattest_interpolator(W0, a0, X, y, method="cells")
        fx.set_num_threads(threads)
        s = fx.flattest_interpolator(W0, a0, X, y, method="cells")
    finally:
        fx.set_num_threads(old)
    assert np.array_equal(ref_s.W, s.W) and np.array_equal(ref_s.a, s.a)
    assert math.isfinite(s.orbit_min_trace)


def test_max_seconds_bounds_the_polish():
    # d = 4, n = 40: the certified polish (exact mode over ~20 000 cells) takes several seconds;
    # with a budget spent by the search the polish stops early and the search's interpolator stays
    X, y, _, _ = planted(4, 40, seed=8)
    W0, a0 = start(80, 4, 8)
    t0 = time.perf_counter()
    s = fx.flattest_interpolator(W0, a0, X, y, method="manifold", polish="convex", max_seconds=0.3)
    elapsed = time.perf_counter() - t0
    assert interpolates(s.W, s.a, X, y)
    assert math.isnan(s.certified_optimum)  # no certificate within the budget
    assert s.polish != "improved" or s.orbit_min_trace <= s.search_orbit_min_trace
    assert elapsed <= 0.3 * 1.1 + 5.0  # at most one cone solve and the enumeration past the budget


def test_bad_shapes_name_the_argument():
    X, y, _, _ = planted(4, 10, seed=9)
    W0, a0 = start(20, 4, 9)
    with pytest.raises(ValueError, match="X must be 2-D"):
        fx.flattest_interpolator(W0, a0, X[:, 0], y)
    with pytest.raises(ValueError, match="W0 must be 2-D"):
        fx.flattest_interpolator(W0[:, 0], a0, X, y)


@pytest.mark.parametrize("method", ["cells", "manifold", "auto"])
def test_float32_and_list_inputs(method, monkeypatch):
    from flatext import interpolators as itp

    monkeypatch.setattr(itp, "_POLISH_EXACT_CELLS", 0)  # "auto" then runs the cell-sparse stage here
    # float32 throughout, and lists for the data: every stage works in the network's dtype
    X, y, _, _ = planted(3, 12, seed=10, k=2)
    W0, a0 = start(24, 3, 10)
    f32 = [v.astype(np.float32) for v in (W0, a0, X, y)]
    s = fx.flattest_interpolator(*f32, method=method)
    assert s.W.dtype == np.float32
    assert np.max(np.abs(ref.forward(s.W, s.a, X, 1.0, 0.0) - y)) <= 1e-3 * max(1.0, np.abs(y).max())
    s = fx.flattest_interpolator(W0, a0, X.tolist(), y.tolist(), method=method)
    assert interpolates(s.W, s.a, X, y)


@pytest.mark.parametrize("seed", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_cells_with_the_structured_ipm_is_exact_and_never_below_the_certified_optimum(seed):
    # the same restricted programs through solver="ipm": its interior solution is the network itself
    pytest.importorskip("cvxpy")
    from flatext.cells import cell_sparse

    X, y, _, _ = planted(3, 16, seed=seed, k=2)
    value, _, _ = certified_relu_optimum(X, y)
    W0, a0 = start(400, 3, seed)  # m above the program's groups: no LP vertex, the solution as it is
    o = cell_sparse(W0, a0, X, y, m=400, width=32, solver="ipm")  # the default only above n = 200
    assert interpolates(o.W, o.a, X, y)
    assert o.value == pytest.approx(orbit_min_relu(o.W, o.a, X), rel=1e-9)
    assert o.bound * (1 - 1e-6) <= o.value <= o.bound * (1 + 1e-6)
    assert value * (1 - 1e-6) <= o.value <= value * 1.05


@pytest.mark.parametrize("n, expected", [(200, "clarabel"), (201, "ipm")])
def test_cells_solver_default_depends_on_n(n, expected, monkeypatch):
    import flatext.cells as cells

    seen = {}

    def fake(*args, **kwargs):
        seen["solver"] = kwargs["solver"]
        raise RuntimeError("stop here")

    monkeypatch.setattr(cells, "certified_flattest", fake)
    monkeypatch.setattr(cells, "penalty_path", lambda W, a, X, y, neg=0.0: (W, a, 0))
    X, y, _, _ = planted(3, n, seed=0, k=2)
    with pytest.raises(RuntimeError, match="stop here"):
        cells.cell_sparse(*start(8, 3, 0), X, y, m=8, width=8)
    assert seen["solver"] == expected


@pytest.mark.slow  # two cell-sparse runs at n = 500: ~20 s each
def test_auto_above_200_samples_runs_the_cells_method_when_its_first_program_is_small():
    # n = 500, d = 6: too many arrangement cells for the certified polish, more than 200 samples.
    # One planted ReLU neuron: the penalty path's active neurons span ~35 cells, 2 x 35 x 7 columns
    # <= n, so "auto" runs the cell-sparse method alone, at or below the planted network (its
    # orbit-minimal trace is an independent upper bound of the flattest interpolator's)
    for seed in (0, 1):
        X, y, U, w = planted(6, 500, seed, k=1)
        W0, a0 = start(500, 6, seed)
        s = fx.flattest_interpolator(W0, a0, X, y)
        check_cells_result(s, X, y)
        assert s.orbit_min_trace <= orbit_min_relu(U, w, X) * (1 + 5e-5)


def test_auto_above_200_samples_runs_the_search_when_the_first_program_is_large(monkeypatch):
    # with label noise the active neurons span ~n cells, more than the first program's limit
    # (3n columns): "auto" runs the search and says why. The noise-free problem at n = 300, d = 8
    # has ~35 cells, 2 x 35 x 9 columns: between n and 3n, so the limit decides it
    import flatext.interpolators as itp

    X, y, U, w = planted(8, 300, 0, k=1)
    W0, a0 = start(300, 8, 0)
    y_noisy = y + 0.3 * np.random.default_rng(5).standard_normal(300)
    s = fx.flattest_interpolator(W0, a0, X, y_noisy, max_iter=5)
    assert s.method == "manifold" and "was not run (its first program would have" in s.message, s.message
    assert "> 900" in s.message and interpolates(s.W, s.a, X, y_noisy)
    s = fx.flattest_interpolator(W0, a0, X, y, max_iter=5)
    assert s.method == "cells", s.message
    check_cells_result(s, X, y)
    assert s.orbit_min_trace <= orbit_min_relu(U, w, X) * (1 + 5e-5)
    monkeypatch.setattr(itp, "_CELLS_AUTO_COLUMNS", 1)  # a limit of n columns: the search
    s = fx.flattest_interpolator(W0, a0, X, y, max_iter=5)
    assert s.method == "manifold" and "columns > 300" in s.message, s.message


def _failing_round(monkeypatch, fail_at):
    """Make the ``fail_at``-th pricing round's cone solve (sampled patterns) return NumericalError."""
    import flatext.convex.pricing as pricing_module

    real, calls = pricing_module._solve_over, []

    def solve_over(*args, **kw):
        sol = real(*args, **kw)
        calls.append(1)
        return dataclasses.replace(sol, status="NumericalError") if len(calls) == fail_at else sol

    monkeypatch.setattr(pricing_module, "_solve_over", solve_over)


def test_a_failed_pricing_round_keeps_the_programs_solved_before_it(monkeypatch):
    # the second round's solve fails: the answer is the flattest of the first two programs, the
    # same as with one round, and the result says which round failed (never a crash of the call)
    X, y, _, _ = planted(6, 80, 3)
    kw = dict(patterns="sampled", n_patterns=60, seed=2, solver="ipm")
    one = fx.certified_flattest(X, y, pricing_rounds=1, **kw)
    _failing_round(monkeypatch, 2)
    q = fx.certified_flattest(X, y, pricing_rounds=4, **kw)
    assert q.info["pricing"]["failed"].startswith("round 2: solver 'ipm' status 'NumericalError'")
    assert q.info["pricing"]["rounds"] == 1
    assert q.bound == pytest.approx(one.bound, rel=1e-12) and q.value == pytest.approx(one.value, rel=1e-12)
    monkeypatch.undo()
    _failing_round(monkeypatch, 1)  # the cell-sparse method: its first round fails
    W0, a0 = start(320, 6, 3)  # the optimum needs ~160 neurons
    o = fx.flattest_interpolator(W0, a0, X, y, method="cells")
    assert o.method == "cells" and o.reason == "round_failed" and "round 1" in o.message, (o.reason, o.message)
    assert o.iterations == 0  # the rounds run
    assert interpolates(o.W, o.a, X, y)


def test_the_network_comes_from_the_next_flattest_program_when_the_flattest_is_on_kinks(monkeypatch):
    # the interior-point solution of the flattest program cannot be used as it is (here: said so by
    # a patched check): the next program's is, and bound, value and the pricing figures are its own
    import flatext.convex as convex_module

    X, y, _, _ = planted(6, 80, 4, k=1)  # its second program's solution is strictly inside
    kw = dict(patterns="sampled", n_patterns=60, seed=2, solver="ipm", pricing_rounds=1)
    best = fx.certified_flattest(X, y, **kw)
    real, seen = convex_module._interior_solution, []

    def interior(Xr, y_, sol, *args):
        out = None if not seen else real(Xr, y_, sol, *args)
        seen.append((sol.objective, out is not None))
        return out

    monkeypatch.setattr(convex_module, "_interior_solution", interior)
    q = fx.certified_flattest(X, y, **kw)
    objectives = [o for o, _ in seen]
    assert len(seen) >= 2 and objectives == sorted(objectives)
    assert seen[0][0] == pytest.approx(best.bound, rel=1e-9)
    # the first that is strictly inside (here the second program; none: the flattest one by the
    # in-cell construction)
    used = next((o for o, ok in seen if ok), None)
    assert used is not None and used > seen[0][0]
    assert q.bound == pytest.approx(used, rel=1e-9)
    assert q.info["pricing"]["program"] != best.info["pricing"]["program"]
    assert q.value == pytest.approx(q.bound, rel=1e-6)
    assert interpolates(q.W, q.a, X, y, tol=1e-9)
