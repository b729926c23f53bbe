"""Run-time CPU dispatch: every instruction-set variant of the extension
computes the same results.

- each variant this CPU can run, loaded in a subprocess with FLATEXT_DISPATCH,
  gives every kernel of the public API table (float64; ReLU and a general
  p = 2.5 activation) equal to the baseline variant's result within 1e-12
  relative (the GEMMs are the same OpenBLAS calls in every variant; only the
  vectorization of the elementwise passes and Eigen's packet reductions differ);
- within a variant, 1 and 2 threads give bit-identical results;
- flatext.info() reports the variant in use, and the choice logic picks the
  best variant the CPU supports and refuses (ImportError) one it cannot run.
"""

import json
import os
import subprocess
import sys

import flatext as fx
import numpy as np
import pytest
from flatext import _native

HERE = os.path.dirname(os.path.abspath(__file__))
RTOL = 1e-12

# The child: every API-table kernel plus jvp/vjp/ntk_gram, 1 and 2 threads, saved to an .npz.
CHILD = r"""
import json, sys, warnings
import numpy as np
sys.path.insert(0, sys.argv[1])
import flatext as fx
from api_table import API, results

out, dims = {}, {"n": 1500, "m": 40, "d": 6}
def run_all():
    res = {}
    for p, c in ((1.0, 0.0), (2.5, 0.3)):
        for api in API:
            if api.name in ("balance", "orbit_min_trace") and p != 1.0:
                continue
            x = api.make({"n": 300, "m": 12, "d": 4} if api.heavy else dims, np.float64, seed=5)
            if "W" in x:
                x["W"] = x["W"] / 2.0
            if "a" in x:
                x["a"] = x["a"] / 6.0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                r = results(api(x, **api.act_kwargs(p, c)))
            for i, v in enumerate(r):
                res[f"{api.name}/p={p}/{i}"] = v
        rng = np.random.default_rng(7)
        W = rng.standard_normal((40, 6)) / 2; a = rng.standard_normal(40) / 6
        X = rng.standard_normal((1500, 6)); VW = rng.standard_normal((40, 6)); va = rng.standard_normal(40)
        u = rng.standard_normal(1500)
        res[f"jvp/p={p}"] = fx.jvp(W, a, X, VW, va, power=p, neg=c)
        for i, v in enumerate(fx.vjp(W, a, X, u, power=p, neg=c)):
            res[f"vjp/p={p}/{i}"] = v
        res[f"ntk_gram/p={p}"] = fx.ntk_gram(W, a, X[:200], power=p, neg=c)
    return res

fx.set_num_threads(1)
one = run_all()
fx.set_num_threads(2)
two = run_all()
np.savez(sys.argv[2], **{"1/" + k: v for k, v in one.items()}, **{"2/" + k: v for k, v in two.items()})
print(json.dumps({"dispatch": fx.info()["dispatch"], "n": len(one)}))
"""


def _run_variant(variant, tmp_path):
    out = tmp_path / f"{variant}.npz"
    env = dict(os.environ, FLATEXT_DISPATCH=variant)
    p = subprocess.run(
        [sys.executable, "-c", CHILD, HERE, str(out)], env=env, capture_output=True, text=True, timeout=600
    )
    assert p.returncode == 0, p.stderr[-3000:]
    meta = json.loads(p.stdout.strip().splitlines()[-1])
    assert meta["dispatch"] == variant
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def baseline_results(tmp_path_factory):
    if "baseline" not in _native.AVAILABLE:
        pytest.skip("this build has no instruction-set variants (a development copy)")
    return _run_variant("baseline", tmp_path_factory.mktemp("dispatch"))


def _rel(got, ref):
    scale = np.max(np.abs(ref)) if ref.size else 0.0
    diff = np.max(np.abs(got - ref)) if ref.size else 0.0
    return diff / scale if scale > 0 else diff


@pytest.mark.parametrize("variant", [v for v, _ in _native.VARIANTS])
def test_variant_matches_baseline_and_is_thread_count_independent(variant, baseline_results, tmp_path):
    if variant not in _native.RUNNABLE:
        pytest.skip(f"variant {variant} not built or not runnable on this CPU")
    res = baseline_results if variant == "baseline" else _run_variant(variant, tmp_path)
    keys = sorted(k[2:] for k in res if k.startswith("1/"))
    assert len(keys) > 30  # every kernel really ran
    for k in keys:
        one, two = res["1/" + k], res["2/" + k]
        assert one.tobytes() == two.tobytes(), f"{variant}: {k} differs between 1 and 2 threads"
        ref = baseline_results["1/" + k]
        assert one.shape == ref.shape and one.dtype == ref.dtype == np.float64, k
        assert np.all(np.isfinite(one)), k
        assert _rel(one, ref) <= RTOL, f"{variant}: {k} differs from baseline by {_rel(one, ref):.2e} relative"


def test_info_reports_the_variant_in_use():
    inf = fx.info()
    assert inf["dispatch"] == _native.PATH
    if inf["dispatch"] != "single":
        assert inf["dispatch"] in inf["dispatch_available"]
        assert inf["dispatch"] in inf["dispatch_runnable"]
        if not inf["dispatch_forced"]:
            assert inf["dispatch"] == inf["dispatch_runnable"][0]  # the best one
    assert isinstance(inf["thread_pools"], list)


def test_choice_follows_the_cpu_level():
    files = {"baseline": "b", "avx2": "a2", "avx512": "a5"}
    assert _native._choose(files, 4, "") == "avx512"
    assert _native._choose(files, 3, "auto") == "avx2"
    assert _native._choose(files, 2, "") == "baseline"
    assert _native._choose(files, 0, "") == "baseline"  # not x86-64: baseline only
    assert _native._choose({"baseline": "b"}, 4, "") == "baseline"
    assert _native._choose(files, 4, "avx2") == "avx2"
    with pytest.raises(ImportError, match="cannot run"):
        _native._choose(files, 3, "avx512")
    with pytest.raises(ImportError, match="no such variant"):
        _native._choose({"baseline": "b"}, 4, "avx2")
    with pytest.raises(ImportError, match="FLATEXT_DISPATCH must be one of"):
        _native._choose(files, 4, "sse9")


def test_cpu_level_agrees_with_proc_cpuinfo():
    try:
        with open("/proc/cpuinfo") as fh:
            flags = set(next(line for line in fh if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        pytest.skip("no /proc/cpuinfo")
    if "baseline" not in _native.AVAILABLE:
        pytest.skip("development copy without the CPU check")
    v3 = {"avx2", "fma", "bmi1", "bmi2", "f16c", "movbe"} <= flags
    v4 = v3 and {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"} <= flags
    assert (_native.CPU_LEVEL >= 3) == v3
    assert (_native.CPU_LEVEL >= 4) == v4


def test_forcing_an_unknown_variant_fails_at_import():
    env = dict(os.environ, FLATEXT_DISPATCH="sse9")
    p = subprocess.run([sys.executable, "-c", "import flatext"], env=env, capture_output=True, text=True)
    assert p.returncode != 0 and "FLATEXT_DISPATCH" in p.stderr


def test_several_variants_load_in_one_process():
    """benchmarks/bench_kernels.py --dispatch compares the variants side by side in one process:
    each module registers its own (module-local) Activation type, so a second one must load."""
    others = [v for v in _native.RUNNABLE if v != _native.PATH]
    if not others:
        pytest.skip("only one variant built or runnable here")
    W, a, X, y = (np.random.default_rng(0).standard_normal(s) for s in ((4, 3), (4,), (9, 3), (9,)))
    want = fx.hessian_trace(W, a, X, y)
    for v in others:
        mod = _native.load_variant(v)
        assert mod is not _native._core
        assert _rel(np.array(mod.hessian_trace(W, a, X, y, 1.0, 0.0)), np.array(want)) <= RTOL
        assert mod.Activation(2.0, 0.5).power == 2.0
