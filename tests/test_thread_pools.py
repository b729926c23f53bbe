"""Good neighbours in one process: the wait policy flatext sets, what
info() reports about the thread pools, flatext.threads' helpers."""

import os
import subprocess
import sys

import flatext as fx
import pytest
from flatext import threads

CLEAN = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT", "FLATEXT_PROCESS_ENV_SET")


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in CLEAN}
    env.update(extra)
    return env


def _py(code, env):
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout.strip().splitlines()[-1]


def test_flatext_makes_its_openmp_threads_passive_when_it_loads_libgomp():
    code = (
        "import os, flatext as fx; from flatext import _native as n; "
        "print(os.environ.get('OMP_WAIT_POLICY'), n.WAIT_POLICY['set_by_flatext'], "
        "n.WAIT_POLICY['libgomp_loaded_before_flatext'], n._libgomp_loaded())"
    )
    assert _py(code, _clean_env()) == "PASSIVE True False True"


@pytest.mark.parametrize("var,val", [("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "1000")])
def test_a_users_setting_is_kept(var, val):
    code = (
        "import os, flatext as fx; from flatext import _native as n; "
        "print(os.environ.get('OMP_WAIT_POLICY'), n.WAIT_POLICY['set_by_flatext'])"
    )
    want = f"{val if var == 'OMP_WAIT_POLICY' else None} False"
    assert _py(code, _clean_env(**{var: val})) == want


def test_info_says_when_torch_loaded_libgomp_first():
    pytest.importorskip("torch")
    code = (
        "import torch, flatext as fx; from flatext import _native as n; "
        "print(n.WAIT_POLICY['libgomp_loaded_before_flatext'], 'before flatext' in fx.info()['omp_wait_policy'])"
    )
    assert _py(code, _clean_env()) == "True True"


def test_set_process_env_only_fills_gaps():
    env = {"OPENBLAS_THREAD_TIMEOUT": "10"}
    assert threads.set_process_env(env) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert env == {"OPENBLAS_THREAD_TIMEOUT": "10", "OMP_WAIT_POLICY": "PASSIVE"}
    assert threads.set_process_env(env) == {}
    env = {"GOMP_SPINCOUNT": "0"}  # a chosen spin count is respected: no policy on top
    assert threads.set_process_env(env) == {"OPENBLAS_THREAD_TIMEOUT": "4"}
    assert "OMP_WAIT_POLICY" not in env


def test_cli_restarts_itself_with_the_process_env():
    p = subprocess.run(
        [sys.executable, "-m", "flatext", "info"], env=_clean_env(), capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert "dispatch:" in p.stdout
    # numpy's OpenBLAS is listed with the timeout the re-executed process had when it loaded
    pytest.importorskip("threadpoolctl")
    assert "OPENBLAS_THREAD_TIMEOUT=4" in p.stdout, p.stdout


def test_info_lists_the_pools():
    pytest.importorskip("threadpoolctl")
    pools = fx.info()["thread_pools"]
    apis = {p["api"] for p in pools}
    assert "openmp" in apis  # flatext's libgomp
    for p in pools:
        assert p["waits"] and p["num_threads"] >= 1


def test_thread_limits_sets_and_restores():
    pytest.importorskip("threadpoolctl")
    from threadpoolctl import threadpool_info

    def numpy_blas():
        return [
            i["num_threads"]
            for i in threadpool_info()
            if i["user_api"] == "blas" and not os.path.basename(i["filepath"]).startswith("libscipy_openblas.")
        ]

    before_fx, before_np = fx.get_num_threads(), numpy_blas()
    with threads.thread_limits(1):
        assert fx.get_num_threads() == 1
        assert all(k == 1 for k in numpy_blas())
    assert fx.get_num_threads() == before_fx and numpy_blas() == before_np
    with pytest.raises(ValueError, match="n must be >= 1"):
        with threads.thread_limits(0):
            pass
