"""Thread safety and determinism.

- every kernel gives bit-identical results with set_num_threads(1) and (2), in
  float32 and float64, at a size with many tiles and several chunks;
- the same kernels called from 8 Python threads at once (the GIL is released
  around each kernel) give bit-identical results to serial calls;
- set_num_threads from one thread while others compute neither crashes nor
  changes any result.
"""

import threading

import flatext as fx
import numpy as np
import pytest
from api_table import API, results

IDS = [api.name for api in API]
BIG = {"n": 5000, "m": 300, "d": 6}  # 5000 rows: 20+ tiles, 16+ chunks


@pytest.fixture(autouse=True)
def restore_threads():
    old = fx.get_num_threads()
    yield
    fx.set_num_threads(0)
    assert fx.get_num_threads() >= 1
    fx.set_num_threads(old)


def _inputs(api, dtype, dims=BIG):
    x = api.make(dims, dtype, seed=11)
    if "W" in x:
        x["W"] = x["W"] / np.sqrt(dims["d"]).astype(dtype)
    if "a" in x:
        x["a"] = x["a"] / np.sqrt(dims["m"]).astype(dtype)
    return x


def _kw(api):
    # p = 2.5, neg = 0.3 runs the general-p evaluator; balance needs p = 1 (B_i >= 0 always)
    if api.name in ("balance", "orbit_min_trace"):
        return api.act_kwargs(1.0, 0.0)
    return api.act_kwargs(2.5, 0.3)


def _run(api, x):
    kw = _kw(api)
    if api.heavy:
        kw = {**kw, "max_iter": 8}
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return results(api(x, **kw))
    return results(api(x, **kw))


def _same(got, ref, what):
    for g, r in zip(got, ref):
        assert g.dtype == r.dtype
        np.testing.assert_array_equal(g, r, err_msg=what)
        assert g.tobytes() == r.tobytes(), what  # bitwise (also -0.0 vs 0.0)


@pytest.mark.parametrize("api", API, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bit_identical_with_one_and_two_threads(api, dtype):
    dims = {"n": 1200, "m": 40, "d": 6} if api.heavy else BIG
    x = _inputs(api, dtype, dims)
    fx.set_num_threads(1)
    one = _run(api, x)
    fx.set_num_threads(2)
    two = _run(api, x)
    _same(two, one, f"{api.name} {np.dtype(dtype).name}: 1 vs 2 threads")


def test_chunked_plan_really_has_many_tiles():
    # the size above must exercise several tiles per chunk and several chunks:
    # a trace at n=5000 differs from its n=4999 prefix only by the last row
    api = [a for a in API if a.name == "hessian_trace"][0]
    x = _inputs(api, np.float64)
    T = fx.hessian_trace(**{k: x[k] for k in ("W", "a", "X", "y")}, power=2.0)
    Tp = fx.hessian_trace(x["W"], x["a"], x["X"][:-1], x["y"][:-1], power=2.0)
    assert T != Tp and abs(T - Tp * 4999 / 5000) < 1e-2 * abs(T)


@pytest.mark.parametrize("which", ["loss", "gauss_newton", "trace"])
@pytest.mark.parametrize("p,c", [(1.0, 0.0), (2.0, 0.3), (2.5, 0.3)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_objective_bit_identical_with_one_and_two_threads(which, p, c, dtype):
    x = _inputs(next(a for a in API if a.name == "loss"), dtype)
    lam = 0.0 if which == "loss" else 0.7
    runs = []
    for k in (1, 2):
        fx.set_num_threads(k)
        runs.append(
            [np.asarray(v) for v in fx.objective(x["W"], x["a"], x["X"], x["y"], lam, which=which, power=p, neg=c)]
        )
    _same(runs[1], runs[0], f"objective {which} p={p}: 1 vs 2 threads")


def _concurrent(jobs, n_threads=8):
    """Runs jobs[i % len(jobs)] in n_threads threads started together; returns outputs in order."""
    out = [None] * n_threads
    errors = []
    barrier = threading.Barrier(n_threads)

    def work(i):
        try:
            barrier.wait()
            out[i] = jobs[i % len(jobs)]()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a kernel thread hangs"
    assert not errors, errors
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_eight_python_threads_match_serial_calls(dtype):
    dims = {"n": 1500, "m": 60, "d": 5}
    jobs, serial = [], []
    for api in API:
        x = _inputs(api, dtype, {"n": 300, "m": 8, "d": 3} if api.heavy else dims)
        jobs.append(lambda api=api, x=x: _run(api, x))
        serial.append(_run(api, x))
    n = 2 * len(jobs)  # every kernel twice, all at once
    got = _concurrent(jobs, n)
    for i, g in enumerate(got):
        _same(g, serial[i % len(jobs)], f"{API[i % len(jobs)].name} under {n} concurrent threads")
    # and 8 threads on the same kernel
    tg = [a for a in API if a.name == "hessian_trace_grad"][0]
    x = _inputs(tg, dtype, dims)
    ref = _run(tg, x)
    for g in _concurrent([lambda: _run(tg, x)], 8):
        _same(g, ref, "hessian_trace_grad x 8 threads")


def test_set_num_threads_while_computing():
    api = [a for a in API if a.name == "hessian_trace_grad"][0]
    x = _inputs(api, np.float64, {"n": 3000, "m": 80, "d": 6})
    ref = _run(api, x)
    stop = threading.Event()
    seen = []

    def toggler():
        k = 0
        while not stop.is_set():
            fx.set_num_threads([1, 2, 0, 3][k % 4])
            seen.append(fx.get_num_threads())
            k += 1

    t = threading.Thread(target=toggler)
    t.start()
    try:
        outs = _concurrent([lambda: [_run(api, x) for _ in range(3)]], 6)
    finally:
        stop.set()
        t.join(30)
    assert len(seen) > 1
    for o in outs:
        for g in o:
            _same(g, ref, "result changed while set_num_threads was called concurrently")
