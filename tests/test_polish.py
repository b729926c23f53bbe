"""The one Gauss-Newton polish rule (flatext/polish.py): keep the projection's point when it lowered
max|r|; its status says whether it converged; the point stays otherwise. max|r| recomputed with numpy."""

import numpy as np
import pytest
from flatext.polish import gauss_newton_polish


def _problem(seed=0, n=20, d=4, m=40):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.maximum(X @ rng.standard_normal(d), 0.0)
    return rng.standard_normal((m, d)) / np.sqrt(d), rng.standard_normal(m) / np.sqrt(m), X, y


def _max_res(W, a, X, y):
    return float(np.max(np.abs(np.maximum(X @ W.T, 0.0) @ a - y)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_converged_polish_interpolates(seed):
    W, a, X, y = _problem(seed)
    o = gauss_newton_polish(W, a, X, y, tol=1e-10, max_iter=100)
    assert o.status == "converged" and o.polished and o.message == ""
    assert o.max_residual_before == pytest.approx(_max_res(W, a, X, y), rel=1e-12)
    assert _max_res(o.W, o.a, X, y) <= 1e-10 * max(1.0, np.abs(y).max())
    assert o.max_residual_after == pytest.approx(_max_res(o.W, o.a, X, y), rel=1e-6, abs=1e-14)


def test_one_step_improves_or_converges():
    W, a, X, y = _problem(3)
    o = gauss_newton_polish(W, a, X, y, tol=1e-14, max_iter=1)
    assert o.polished and o.status in ("improved", "converged")
    assert _max_res(o.W, o.a, X, y) < _max_res(W, a, X, y)
    if o.status == "improved":
        assert "did not reach its tolerance" in o.message


def test_no_step_keeps_the_point():
    W, a, X, y = _problem(4)
    o = gauss_newton_polish(W, a, X, y, max_iter=0)
    assert o.status == "no improvement" and not o.polished
    assert o.W is W and o.a is a and o.max_residual_after == o.max_residual_before


def test_a_projection_that_raises_keeps_the_point():
    W, a, X, y = _problem(5)
    o = gauss_newton_polish(np.zeros_like(W), np.zeros_like(a), X, y)
    assert o.status == "failed" and not o.polished and o.message.startswith("polish failed")
    assert np.array_equal(o.W, np.zeros_like(W))
