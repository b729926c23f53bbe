"""certified_flattest's max_seconds and callback: a budget cuts the pricing rounds and returns a valid
interpolator (checked with numpy), or raises TimeoutError when no program was solved yet."""

from __future__ import annotations

import time

import numpy as np
import pytest
from flatext.convex import certified_flattest


def _data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, np.maximum(X[:, 0], 0) + 0.5 * np.abs(X[:, 1])


def _numpy_relu_orbit_min_trace(W, a, X):
    """2 sum_i sqrt(A_i B_i), A_i = mean relu(z)^2, B_i = a_i^2 mean 1{z>0} ||x||^2 (the ReLU orbit minimum)."""
    Z = X @ W.T
    A = np.mean(np.maximum(Z, 0) ** 2, axis=0)
    B = a**2 * np.mean((Z > 0) * np.sum(X * X, axis=1)[:, None], axis=0)
    return 2 * np.sum(np.sqrt(A * B))


def test_max_seconds_cuts_the_pricing_rounds_and_returns_an_interpolator():
    # every cell priced (19 840 cells). The budget runs out during the first callback (it sleeps past
    # it), so the rounds are cut on any machine: on a quiet one the pricing converged within 6 s
    X, y = _data(40, 4)
    marks = []
    budget = 5.0

    def slow_first(info):
        marks.append(info)
        if len(marks) == 1:
            time.sleep(budget + 0.2)

    t0 = time.perf_counter()
    r = certified_flattest(X, y, patterns="exact", max_seconds=budget, callback=slow_first)
    elapsed = time.perf_counter() - t0
    assert r.info["stopped"] == "time_budget" and r.info["pricing"]["rounds"] < 50
    stamps = [0.0] + [m["elapsed"] for m in marks]
    one_round = max(np.diff(stamps))  # the first solve (and any round), measured on this machine now
    assert elapsed <= 1.1 * budget + one_round + r.info["times"]["polish"] + 0.5, (elapsed, one_round)
    # a valid answer: an interpolator whose orbit-minimal trace is the reported value, between the bounds
    f = np.maximum(X @ r.W.T, 0) @ r.a
    assert np.max(np.abs(f - y)) <= 1e-9 * max(1.0, np.max(np.abs(y)))
    assert r.value == pytest.approx(_numpy_relu_orbit_min_trace(r.W, r.a, X), rel=1e-9)
    assert r.info["pricing"]["lower_bound"] <= r.bound * (1 + 1e-6) and r.value >= r.bound * (1 - 1e-4)
    assert [m["objective"] for m in marks] == sorted(m["objective"] for m in marks)[::-1]  # rounds only lower it


def test_callback_can_stop_after_the_first_solve():
    X, y = _data(30, 3)
    seen = []
    r = certified_flattest(X, y, patterns="exact", callback=lambda i: seen.append(i) or True)
    assert r.info["stopped"] == "callback" and r.info["pricing"]["rounds"] == 0 and len(seen) == 1
    assert seen[0]["stage"] == "solve" and seen[0]["objective"] == pytest.approx(r.bound, rel=1e-12)
    assert np.max(np.abs(np.maximum(X @ r.W.T, 0) @ r.a - y)) <= 1e-9 * max(1.0, np.max(np.abs(y)))
    full = certified_flattest(X, y, patterns="exact")
    assert full.info["stopped"] is None and full.bound <= r.bound * (1 + 1e-9)


def test_no_solve_within_the_budget_raises_timeout():
    X, y = _data(40, 4)  # 19 840 cells to enumerate before the first program exists
    with pytest.raises(TimeoutError, match="no valid answer yet"):
        certified_flattest(X, y, patterns="exact", max_seconds=0.05)


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), "5", True])
def test_bad_max_seconds_is_named(bad):
    X, y = _data(8, 2)
    with pytest.raises(ValueError, match="max_seconds"):
        certified_flattest(X, y, max_seconds=bad)


def test_the_ipm_first_solve_gets_the_time_left_as_its_limit():
    # the message says the solve itself ran out (status "MaxTime"), not the patterns before it
    X, y = _data(60, 4)
    with pytest.raises(TimeoutError, match="first cone solve"):
        certified_flattest(X, y, patterns="sampled", n_patterns=3000, solver="ipm", max_seconds=0.3)
