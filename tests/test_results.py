"""The result convention (docs/design.md section 13): every solver's and trainer's result
answers W, a, reason, message, converged, iterations, history, and ``converged`` is
``reason in CONVERGED_REASONS`` of its class. Each solver runs on a small problem here,
and the stop reasons are checked against what the run did (recomputed residuals and
losses, the iteration caps)."""

import flatext as fx
import numpy as np
import pytest
from flatext import interpolators
from flatext.results import COMMON_FIELDS, Result


def _problem(n=10, d=3, m=24, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    W = rng.standard_normal((m, d))
    a = 0.3 * rng.standard_normal(m)
    return W, a, X, y


def _check_common(r):
    """The common fields with their types, and converged == (reason in CONVERGED_REASONS)."""
    for name in COMMON_FIELDS:
        assert hasattr(r, name), (type(r).__name__, name)
    assert isinstance(r, Result)
    assert isinstance(r.W, np.ndarray) and r.W.ndim == 2
    assert isinstance(r.a, np.ndarray) and r.a.shape == (r.W.shape[0],)
    assert isinstance(r.reason, str) and r.reason
    assert isinstance(r.message, str) and r.message
    assert type(r.converged) is bool
    assert isinstance(r.iterations, int) and not isinstance(r.iterations, bool) and r.iterations >= 0
    if isinstance(r, fx.InterpolationResult):
        assert isinstance(r.history, np.ndarray) and r.history.ndim == 1
    else:
        assert isinstance(r.history, dict)
        lengths = {len(v) for v in r.history.values()}
        assert all(isinstance(v, np.ndarray) for v in r.history.values()) and len(lengths) <= 1
    reasons = type(r).CONVERGED_REASONS
    assert isinstance(reasons, tuple) and reasons
    assert r.converged == (r.reason in reasons)
    text = repr(r)
    assert text.startswith(type(r).__name__ + "(")
    assert f"reason={r.reason!r}" in text and f"converged={r.converged}" in text
    assert f"iterations={r.iterations}" in text
    if hasattr(r, "polish"):
        assert isinstance(r.polish, str) and r.polish and type(r.polished) is bool
    return r


def _max_residual(r, X, y, **kw):
    return float(np.max(np.abs(fx.forward(r.W, r.a, X, **kw) - y)))


def test_find_interpolator_tol_and_max_iter():
    W, a, X, y = _problem()
    r = _check_common(fx.find_interpolator(W, a, X, y, tol=1e-10))
    assert r.reason == "tol" and r.converged
    assert _max_residual(r, X, y) <= 1e-10 * max(1.0, np.abs(y).max())
    assert len(r.history) == r.iterations + 1
    short = _check_common(fx.find_interpolator(W, a, X, y, tol=1e-10, max_iter=1, lambda_init=1e-6))
    assert short.reason == "max_iter" and not short.converged and short.iterations == 1
    assert _max_residual(short, X, y) > 1e-10 * max(1.0, np.abs(y).max())
    assert "max_iter = 1" in short.message


def test_find_interpolator_result_without_a_reason_derives_it():
    """Positional construction of the old fields still works; the reason follows converged."""
    W, a = np.zeros((2, 3)), np.zeros(2)
    ok = fx.InterpolationResult(W, a, 0.0, 3, True, np.zeros(4))
    no = fx.InterpolationResult(W, a, 1.0, 3, False, np.zeros(4))
    assert (ok.reason, no.reason) == ("tol", "max_iter")
    with pytest.raises(ValueError, match="converged=True disagrees with reason='max_iter'"):
        fx.InterpolationResult(W, a, 0.0, 3, True, np.zeros(4), reason="max_iter")


def test_flattest_interpolator_gtol_max_iter_and_cells():
    W, a, X, y = _problem()
    first_order = _check_common(fx.flattest_interpolator(W, a, X, y, gtol=1.0, polish=None, method="manifold"))
    # ||g_t|| <= ||g|| holds at any point (g_t is a projection of g): the search stops at once
    assert first_order.reason == "gtol" and first_order.converged and first_order.iterations == 0
    capped = _check_common(fx.flattest_interpolator(W, a, X, y, gtol=0.0, max_iter=2, polish=None, method="manifold"))
    assert capped.reason == "max_iter" and not capped.converged and capped.iterations == 2
    assert capped.polish == "off" and not capped.polished
    polished = _check_common(fx.flattest_interpolator(W, a, X, y, max_iter=3, polish="convex"))
    assert polished.polished == (polished.polish == "improved")
    cells = _check_common(fx.flattest_interpolator(W, a, X, y, method="cells"))
    assert cells.method == "cells" and cells.reason in ("restricted_optimum", "pricing_rounds", "time_budget")
    assert _max_residual(cells, X, y) <= 1e-10 * max(1.0, np.abs(y).max())


def test_search_converged_reasons_are_the_modules():
    assert fx.SearchResult.CONVERGED_REASONS == interpolators.CONVERGED_REASONS


def test_search_result_rejects_a_converged_flag_that_disagrees():
    W, a = np.zeros((2, 3)), np.zeros(2)
    with pytest.raises(ValueError, match="disagrees"):
        fx.SearchResult(W, a, 0.0, 0.0, 0.0, 1, True, "ftol_stall", {})
    s = fx.SearchResult(W, a, 0.0, 0.0, 0.0, 1, False, "ftol_stall", {})
    assert s.message == fx.SearchResult.REASON_MESSAGES["ftol_stall"]


def test_certified_flattest_reasons():
    _, _, X, y = _problem(n=8)
    exact = _check_common(fx.certified_flattest(X, y, m=24, patterns="exact"))
    assert exact.reason == "global_optimum" and exact.converged and exact.certificate == "global"
    plain = _check_common(fx.certified_flattest(X, y, m=24, patterns="sampled", pricing_rounds=0))
    assert plain.reason == "program_optimum" and plain.converged and plain.iterations == 0
    priced = _check_common(fx.certified_flattest(X, y, m=24, patterns="sampled", n_patterns=5, pricing_rounds=20))
    assert priced.iterations == priced.info["pricing"]["rounds"]
    done = priced.info["pricing"]["max_ratio"] <= 1 + 1e-6
    assert priced.reason == ("restricted_optimum" if done else "pricing_rounds")
    stopped = _check_common(
        fx.certified_flattest(X, y, m=24, patterns="sampled", n_patterns=5, pricing_rounds=5, callback=lambda i: True)
    )
    assert stopped.reason == "callback" and not stopped.converged and stopped.info["stopped"] == "callback"
    assert stopped.iterations == 0


def test_train_reasons():
    W, a, X, y = _problem(m=40)
    loss0 = float(fx.loss_grad(W, a, X, y)[0])
    hit = _check_common(fx.train(W, a, X, y, lr=0.05, tol=0.5 * loss0, max_iter=5000, polish=False))
    assert hit.reason == "tol" and hit.converged and hit.reached_tol and hit.loss <= 0.5 * loss0
    capped = _check_common(fx.train(W, a, X, y, lr=0.05, tol=1e-12, max_iter=3, polish=False))
    assert capped.reason == "max_iter" and not capped.converged and not capped.reached_tol
    assert capped.iterations == 3 and len(capped.history["loss"]) == len(capped.history["iteration"])


def test_label_noise_sgd_converged_means_stopped_at_tol():
    """A run that passes tol and goes on to max_iter has reached_tol, not converged; only
    stop_at_tol ends it with reason "tol" (converged)."""
    W, a, X, y = _problem(m=40)
    loss0 = float(fx.loss_grad(W, a, X, y)[0])
    tol = 0.5 * loss0
    kw = dict(noise=0.0, batch=10, lr=0.05, max_iter=2000, tol=tol, seed=0, record_every=10)
    on = _check_common(fx.label_noise_sgd(W, a, X, y, **kw))
    assert on.reason == "max_iter" and not on.converged and on.iterations == 2000
    assert on.reached_tol == (float(fx.loss_grad(on.W, on.a, X, y)[0]) <= tol) and on.reached_tol
    stop = _check_common(fx.label_noise_sgd(W, a, X, y, stop_at_tol=True, **kw))
    assert stop.reason == "tol" and stop.converged and stop.reached_tol and stop.iterations < 2000
    assert stop.history["loss"][-1] <= tol < stop.history["loss"][-2]
