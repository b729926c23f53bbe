"""Columns of the Gram matrix and the Nystrom preconditioner of the matrix-free solves
(cpp/include/flatext/preconditioner.hpp, docs/design.md section 5), checked against the
explicit K of tests/reference.py and against the Cholesky solve."""

import flatext as fx
import numpy as np
import pytest
import reference as ref
from flatext._native import _core

ACTS = [(1.0, 0.0), (2.0, 0.0), (1.0, -0.2), (1.0, 1.0), (3.0, 0.5)]


def explicit_gram(W, a, X, p, c):
    """K = J J^T from the explicit Jacobian (n x m(d+1)) built with the reference activation."""
    Z = X @ W.T
    S, D = ref.sig(Z, p, c, 0), ref.sig(Z, p, c, 1)
    JW = (D * a)[:, :, None] * X[:, None, :]  # d f_j / d w_i = a_i sigma'(z_ij) x_j
    J = np.concatenate([JW.reshape(len(X), -1), S], axis=1)
    return J @ J.T


@pytest.mark.parametrize("p, c", ACTS)
def test_gram_columns_match_the_explicit_gram(p, c):
    W, a, X, _ = ref.problem(n=70, d=5, m=40, seed=3)
    K = explicit_gram(W, a, X, p, c)
    idx = [0, 7, 7, 33, 69, 12]
    C = _core.gram_columns(W, a, X, idx, p, c)
    assert C.shape == (70, len(idx))
    np.testing.assert_allclose(C, K[:, idx], rtol=1e-11, atol=1e-11 * np.abs(K).max())


def test_gram_columns_float32_and_bad_index():
    W, a, X, _ = ref.problem(n=50, d=4, m=30, seed=4, dtype=np.float32)
    K = explicit_gram(*(v.astype(np.float64) for v in (W, a, X)), 1.0, 0.0)
    C = _core.gram_columns(W, a, X, [1, 2, 49], 1.0, 0.0)
    np.testing.assert_allclose(C, K[:, [1, 2, 49]], rtol=2e-5, atol=2e-5 * np.abs(K).max())
    with pytest.raises(IndexError, match="out of range"):
        _core.gram_columns(W, a, X, [50], 1.0, 0.0)


def _problem(n, d, m, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return rng.standard_normal((m, d)) / np.sqrt(d), rng.standard_normal(m) / np.sqrt(m), X


@pytest.mark.parametrize("p, c", [(1.0, 0.0), (2.0, -0.3)])
def test_nystrom_cg_matches_the_dense_solve(p, c):
    W, a, X = _problem(200, 6, 300, seed=5)
    b = np.random.default_rng(1).standard_normal(200)
    K = fx.ntk_gram(W, a, X, power=p, neg=c)
    lam = 1e-8 * np.trace(K) / 200
    x = np.linalg.solve(K + lam * np.eye(200), b)
    for rank in (0, 7, 60, None):
        kw = {} if rank is None else {"cg_rank": rank}
        r = _core.gram_solve(W, a, X, b, p, c, lambda_=lam, solver="cg", rtol=1e-12, cg_max_iter=5000, **kw)
        assert r["solver"] == "cg" and r["converged"], (rank, r["iterations"])
        assert r["rank"] == (100 if rank is None else rank)
        np.testing.assert_allclose(r["x"], x, rtol=1e-7, atol=1e-7 * np.abs(x).max())


def test_nystrom_preconditioner_cuts_the_iterations():
    """The preconditioner must pay: fewer CG iterations than Jacobi, and a full-rank
    one reproduces K (randomly pivoted Cholesky to rank n is exact), so CG needs ~1 iteration."""
    W, a, X = _problem(300, 10, 600, seed=7)
    rng = np.random.default_rng(2)
    b = rng.standard_normal(300)
    lam = 1e-10 * np.mean(_core.gram_diag(W, a, X, 1.0, 0.0))
    its = {}
    for rank in (0, 50, 150, 300):
        r = _core.gram_solve(W, a, X, b, 1.0, 0.0, lambda_=lam, solver="cg", rtol=1e-8, cg_max_iter=5000, cg_rank=rank)
        assert r["converged"]
        its[rank] = r["iterations"]
    assert its[50] < 0.75 * its[0], its  # measured 274 (Jacobi) -> 137 -> 39
    assert its[150] < its[0] / 4 and its[150] < its[50], its
    assert its[300] <= 3, its


def test_nystrom_path_is_thread_count_independent():
    W, a, X = _problem(150, 5, 200, seed=9)
    y = np.maximum(X @ np.ones(5) / np.sqrt(5), 0)
    p = fx.find_interpolator(W, a, X, y, solver="cholesky")
    Wb, ab = fx.balance(p.W, p.a, X, y)
    b = np.random.default_rng(3).standard_normal(150)

    def run():
        s = _core.search_step(Wb, ab, X, y, 1.0, 0.0, solver="cg", cg_rank=40)
        g = _core.gram_solve(Wb, ab, X, b, 1.0, 0.0, lambda_=1e-8, solver="cg", rtol=1e-9, cg_rank=40)
        c = _core.gram_columns(Wb, ab, X, list(range(0, 150, 7)), 1.0, 0.0)
        return s, g, c

    s2, g2, c2 = run()
    old = fx.get_num_threads()
    try:
        fx.set_num_threads(1)
        s1, g1, c1 = run()
    finally:
        fx.set_num_threads(old)
    assert np.array_equal(c1, c2)
    assert np.array_equal(g1["x"], g2["x"]) and g1["iterations"] == g2["iterations"]
    for k in ("W", "a", "u"):
        assert np.array_equal(getattr(s1, k), getattr(s2, k)), k
    assert s1.krylov_iters == s2.krylov_iters > 0


def test_cg_rank_argument_checked():
    W, a, X = _problem(20, 3, 30, seed=1)
    y = X[:, 0]
    with pytest.raises(ValueError, match="cg_rank"):
        fx.find_interpolator(W, a, X, y, solver="cg", cg_rank=-1)
    with pytest.raises(TypeError):
        fx.find_interpolator(W, a, X, y, solver="cg", cg_rank=2.5)
