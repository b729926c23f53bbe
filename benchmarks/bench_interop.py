#!/usr/bin/env python
"""flatext beside numpy and PyTorch in one process, and on a busy machine.

Every measurement runs in a fresh subprocess, because the settings under test
(``OMP_WAIT_POLICY``, ``OPENBLAS_THREAD_TIMEOUT``, which library loads libgomp
first) are read once, when the runtimes load. Medians over interleaved rounds;
ratios are taken within one subprocess.

Scenarios:

``numpy``  one process alternates numpy's ``X @ W.T`` with a flatext kernel
           (no sleeps), 2 threads, (8192, 256, 1024), float64 and float32:
           kernel time / GEMM time (targets: hessian_trace <= 1.3x,
           hessian_trace_grad <= 2.6x, hvp <= 4x; the search's pattern Gram
           product ``_core.gram_apply(pattern=True)``, sign pass included,
           reported without a target), the kernel against its time
           alone (after a 0.2 s pause), and the GEMM right after a kernel
           against the GEMM alone (target <= 1.1x).
``torch``  one process alternates a PyTorch forward/backward of the same
           network (mean squared error) with flatext's hessian_trace, (2048,
           128, 512), float64: flatext after torch vs alone (<= 1.2x), the torch
           step and numpy's GEMM right after flatext vs alone (<= 1.1x).
           PyTorch is imported before flatext (it then loads libgomp first).
``busy``   two CPU-bound processes run beside: hessian_trace_grad at (8192,
           256, 1024) and GD steps with the default threads vs 1 thread
           (target: default no slower).

Each scenario runs under several environments (``--envs``): ``default`` (the
user's environment: flatext sets OMP_WAIT_POLICY=PASSIVE itself when it loads
libgomp first), ``spin`` (GOMP_SPINCOUNT=300000: libgomp's own default, what
flatext did before), ``timeout`` (default + OPENBLAS_THREAD_TIMEOUT=4),
``process_env`` (``flatext.threads.PROCESS_ENV``: passive + timeout).

Usage::

    python benchmarks/bench_interop.py                 # all scenarios, ~5 min
    python benchmarks/bench_interop.py --scenario numpy --rounds 9
    python benchmarks/bench_interop.py --no-write      # print only

Writes the section after ``<!-- bench_interop -->`` in docs/performance.md
(``--out``; bench_kernels.py keeps that section when it rewrites the file).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
MARKER = "<!-- bench_interop -->"

ENVS = {
    "default": {},
    "spin": {"GOMP_SPINCOUNT": "300000"},
    "timeout": {"OPENBLAS_THREAD_TIMEOUT": "4"},
    "process_env": {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"},
}
CLEAR = (
    "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT",
    "OPENBLAS_THREAD_TIMEOUT",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
)
TARGETS = {"hessian_trace": 1.3, "hessian_trace_grad": 2.6, "hvp": 4.0}
PAUSE = 0.2  # s: longer than OpenBLAS's spin (~0.1 s) and libgomp's


# ----------------------------------------------------------------------------- child side
def _problem(n, d, m, dtype, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    X = rng.standard_normal((n, d)).astype(dt)
    W = (rng.standard_normal((m, d)) / np.sqrt(d)).astype(dt)
    a = (rng.standard_normal(m) / np.sqrt(m)).astype(dt)
    y = rng.standard_normal(n).astype(dt)
    VW = rng.standard_normal((m, d)).astype(dt)
    va = rng.standard_normal(m).astype(dt)
    return W, a, X, y, VW, va


def _t(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _kernels(fx, W, a, X, y, VW, va):
    return {
        "hessian_trace": lambda: fx.hessian_trace(W, a, X, y),
        "hessian_trace_grad": lambda: fx.hessian_trace_grad(W, a, X, y),
        "hvp": lambda: fx.hvp(W, a, X, y, VW, va),
        # the CG path's Gram product from the activation pattern (sign pass + two GEMM-equivalents)
        "gram_apply_pattern": lambda: fx._core.gram_apply(W, a, X, y, 1.0, 0.0, pattern=True),
    }


def child_numpy(args):
    import flatext as fx

    out = {}
    for dtype in args["dtypes"]:
        W, a, X, y, VW, va = _problem(*args["shape"], dtype)
        WT = W.T
        gemm = lambda: X @ WT  # noqa: E731
        for name, k in _kernels(fx, W, a, X, y, VW, va).items():
            for _ in range(2):
                gemm(), k()
            alone_k, alone_g, alt_k, alt_g = [], [], [], []
            for _ in range(args["rounds"]):
                time.sleep(PAUSE)
                alone_g.append(_t(gemm))
                time.sleep(PAUSE)
                alone_k.append(_t(k))
                for _ in range(2):  # alternate: GEMM, kernel, GEMM, kernel (no sleeps)
                    alt_g.append(_t(gemm))
                    alt_k.append(_t(k))
            md = statistics.median
            out[f"{name}/{dtype}"] = {
                "gemm_alone": md(alone_g),
                "kernel_alone": md(alone_k),
                "gemm_alt": md(alt_g),
                "kernel_alt": md(alt_k),
            }
    inf = fx.info()
    out["info"] = {"dispatch": inf.get("dispatch"), "omp_wait_policy": inf.get("omp_wait_policy")}
    return out


def child_torch(args):
    import importlib

    # the import order decides who loads libgomp (and so its wait policy)
    first, second = ("torch", "flatext") if args["torch_first"] else ("flatext", "torch")
    mods = {name: importlib.import_module(name) for name in (first, second)}
    fx, torch = mods["flatext"], mods["torch"]

    n, d, m = args["shape"]
    W, a, X, y, _, _ = _problem(n, d, m, "float64")
    tW = torch.tensor(W, requires_grad=True)
    ta = torch.tensor(a, requires_grad=True)
    tX, ty = torch.tensor(X), torch.tensor(y)

    def step():
        tW.grad = ta.grad = None
        r = torch.relu(tX @ tW.T) @ ta - ty
        (0.5 * (r * r).mean()).backward()

    WT = W.T
    gemm = lambda: X @ WT  # noqa: E731
    k = lambda: fx.hessian_trace(W, a, X, y)  # noqa: E731
    for _ in range(3):
        step(), k(), gemm()
    r = {
        key: []
        for key in (
            "k_alone",
            "k_after_torch",
            "k_after_gemm",
            "torch_alone",
            "torch_after_k",
            "gemm_alone",
            "gemm_after_k",
        )
    }
    for _ in range(args["rounds"]):
        time.sleep(PAUSE)
        r["k_alone"].append(_t(k))
        time.sleep(PAUSE)
        r["torch_alone"].append(_t(step))
        time.sleep(PAUSE)
        r["gemm_alone"].append(_t(gemm))
        for _ in range(3):  # a training loop that asks for the trace every step
            step()
            r["k_after_torch"].append(_t(k))
            r["torch_after_k"].append(_t(step))
            gemm()
            r["k_after_gemm"].append(_t(k))
            r["gemm_after_k"].append(_t(gemm))
    out = {key: statistics.median(v) for key, v in r.items()}
    w = fx._native.WAIT_POLICY
    first = "torch" if w["libgomp_loaded_before_flatext"] else "flatext"
    # flatext's own setting counts only if libgomp loaded after it
    if str(w["OMP_WAIT_POLICY"]).upper() == "PASSIVE" or (w["set_by_flatext"] and first == "flatext"):
        how = "passive"
    elif w["GOMP_SPINCOUNT"]:
        how = f"spins {w['GOMP_SPINCOUNT']}"
    else:
        how = "spins (libgomp default)"
    out["info"] = {"omp_wait_policy": f"loaded by {first}: {how}"}
    return out


def child_busy(args):
    import flatext as fx
    import numpy as np  # noqa: F401

    W, a, X, y, _, _ = _problem(*args["shape"], "float64")
    # GD at a size above the kernels' one-thread threshold (~2M multiply-adds per GEMM)
    Ws, as_, Xs, ys, _, _ = _problem(2048, 32, 256, "float64", seed=1)
    calls = {
        "hessian_trace_grad": lambda: fx.hessian_trace_grad(W, a, X, y),
        "GD, 20 steps (2048,32,256)": lambda: fx.train(
            Ws, as_, Xs, ys, method="gd", lr=0.05, max_iter=20, tol=0.0, polish=False
        ),
        "hessian_trace_grad (2048,128,512)": None,
    }
    W2, a2, X2, y2, _, _ = _problem(2048, 128, 512, "float64", seed=2)
    calls["hessian_trace_grad (2048,128,512)"] = lambda: fx.hessian_trace_grad(W2, a2, X2, y2)
    calls["pattern Gram product (8192,256,1024)"] = lambda: fx._core.gram_apply(W, a, X, y, 1.0, 0.0, pattern=True)
    default = fx.get_num_threads()
    res = {}
    for name, fn in calls.items():
        t = {1: [], default: []}
        for k in t:
            fx.set_num_threads(k)
            fn()
        for i in range(args["rounds"]):
            for k in list(t) if i % 2 == 0 else list(t)[::-1]:  # alternate the order
                fx.set_num_threads(k)
                t[k].append(_t(fn))
        res[name] = {
            "one": statistics.median(t[1]),
            "default": statistics.median(t[default]),
            "default_threads": default,
        }
    fx.set_num_threads(0)
    return res


CHILDREN = {"numpy": child_numpy, "torch": child_torch, "busy": child_busy}


# ----------------------------------------------------------------------------- parent side
def run_child(scenario, env_name, args):
    env = {k: v for k, v in os.environ.items() if k not in CLEAR}
    env.update(ENVS[env_name])
    cmd = [sys.executable, os.path.abspath(__file__), "--child", scenario, json.dumps(args)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{scenario}/{env_name} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def busy_procs(k):
    code = "import time\nx = 0\nwhile True:\n    x += 1\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(k)]


def fr(x, target=None):
    s = f"{x:.2f}x"
    if target is not None:
        s += " pass" if x <= target else " MISS"
    return s


def ms(t):
    return f"{t * 1e3:.1f} ms"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def section_numpy(results):
    rows = []
    for env_name, res in results.items():
        for key, v in res.items():
            if key == "info":
                continue
            name, dtype = key.split("/")
            rows.append(
                [
                    env_name,
                    name,
                    dtype,
                    ms(v["gemm_alone"]),
                    ms(v["kernel_alone"]),
                    fr(v["kernel_alone"] / v["gemm_alone"]),
                    fr(v["kernel_alt"] / v["gemm_alt"], TARGETS.get(name)),
                    fr(v["kernel_alt"] / v["kernel_alone"]),
                    fr(v["gemm_alt"] / v["gemm_alone"], 1.1),
                ]
            )
    return table(
        [
            "env",
            "kernel",
            "dtype",
            "GEMM alone",
            "kernel alone",
            "kernel/GEMM alone",
            "kernel/GEMM alternating",
            "kernel alt/alone",
            "GEMM after kernel/alone",
        ],
        rows,
    )


def section_torch(results):
    rows = []
    for env_name, v in results.items():  # env_name: "<env>, <who> imported first"
        rows.append(
            [
                env_name,
                v["info"]["omp_wait_policy"],
                ms(v["k_alone"]),
                fr(v["k_after_torch"] / v["k_alone"], 1.2),
                fr(v["k_after_gemm"] / v["k_alone"], 1.2),
                ms(v["torch_alone"]),
                fr(v["torch_after_k"] / v["torch_alone"], 1.1),
                fr(v["gemm_after_k"] / v["gemm_alone"], 1.1),
            ]
        )
    return table(
        [
            "env",
            "libgomp",
            "trace alone",
            "trace after torch step",
            "trace after GEMM",
            "torch step alone",
            "torch step after trace",
            "GEMM after trace",
        ],
        rows,
    )


def section_busy(results):
    rows = []
    for env_name, res in results.items():
        for name, v in res.items():
            rows.append([env_name, name, ms(v["one"]), ms(v["default"]), fr(v["default"] / v["one"], 1.0)])
    return table(["env", "call", "1 thread", "default threads (2)", "default / 1 thread"], rows)


EXPLAIN = """What flatext does about the other thread pools in its process (`flatext.threads`):

- **Its own threads do not spin.** When flatext's extension loads libgomp (the usual case: nothing
  else loaded it before), `flatext/_native.py` first sets `OMP_WAIT_POLICY=PASSIVE` unless the
  environment already says `OMP_WAIT_POLICY` or `GOMP_SPINCOUNT`: after a kernel its threads sleep
  at once instead of spinning (libgomp's default spins ~300,000 iterations) on the cores numpy's
  or PyTorch's next call needs. Compare the `default` and `spin` rows (`spin` sets libgomp's own
  default explicitly, i.e. what flatext did before).
- **PyTorch imported first** loads its libgomp (the same soname: only one copy loads) before
  flatext can choose; libgomp then spins after every region, PyTorch's and flatext's. `flatext.info()`
  says so (`omp_wait_policy`). Remedy: `OMP_WAIT_POLICY=PASSIVE` in the environment, or
  `os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")` at the top of the script, before `import torch`.
- **numpy's OpenBLAS workers** spin up to ~0.1 s after each BLAS call; only `OPENBLAS_THREAD_TIMEOUT`
  (read when numpy loads) changes that. flatext does not change numpy's behaviour behind the user's
  back: set it in the environment (or `os.environ`, before `import numpy`; `flatext.threads.PROCESS_ENV`
  holds both settings); flatext's own command line (hence `flatext sweep` and `flatext reproduce`) re-executes itself once
  with both set, and the sweep workers get them too. Compare the `timeout` and `process_env` rows.
- **Busy machine.** The kernels' chunks are handed out dynamically (`schedule(dynamic, 1)` over the
  fixed chunk partition, reduced in chunk order, so the bits do not depend on the thread count) and
  calls below ~2M multiply-adds run on one thread; with passive waiting a descheduled team member
  no longer stalls a spinning partner. No load-average heuristic: see the busy table.
- `flatext.threads.thread_limits(n)` limits every pool (numpy's BLAS, OpenMP, flatext) for a block;
  `flatext.info()["thread_pools"]` lists the pools and how their idle threads wait."""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--scenario", default="numpy,torch,busy")
    ap.add_argument("--envs", default="default,spin,timeout,process_env")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dtypes", default="float64,float32")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "docs", "performance.md"))
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args(argv)
    if a.child:
        res = CHILDREN[a.child[0]](json.loads(a.child[1]))
        print(json.dumps(res))
        return 0

    import _common

    envs = a.envs.split(",")
    parts = [
        MARKER,
        "",
        "## Good neighbours: flatext beside numpy, PyTorch and other processes",
        "",
        f"Generated by `python benchmarks/bench_interop.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        f" ({a.rounds} rounds, medians; load average at the start: {_common.loadavg()}). Environments: "
        + "; ".join(f"`{k}` = {v or 'as the user has it'}" for k, v in ENVS.items() if k in envs)
        + ". "
        "With a load average above the core count, other processes dominate the times and even the "
        "ratios (a GEMM 'alone' can take 2x its quiet time): re-run on a quiet machine before reading "
        "a single row; the busy-machine table is the one such load does not spoil.",
        "",
        EXPLAIN,
        "",
    ]
    for sc in a.scenario.split(","):
        if sc == "numpy":
            args = {"shape": [8192, 256, 1024], "dtypes": a.dtypes.split(","), "rounds": a.rounds}
            res = {e: run_child("numpy", e, args) for e in envs}
            parts += [
                "### numpy GEMM and flatext alternating, (8192, 256, 1024), 2 threads",
                "",
                section_numpy(res),
                "",
            ]
        elif sc == "torch":
            res = {}
            for e in envs:
                for tf in (True, False):
                    args = {"shape": [2048, 128, 512], "rounds": a.rounds, "torch_first": tf}
                    res[f"{e}, {'torch' if tf else 'flatext'} imported first"] = run_child("torch", e, args)
            parts += [
                "### PyTorch forward/backward and flatext's hessian_trace alternating, (2048, 128, 512), float64",
                "",
                section_torch(res),
                "",
            ]
        elif sc == "busy":
            args = {"shape": [8192, 256, 1024], "rounds": a.rounds}
            res = {}
            for e in [x for x in envs if x in ("default", "spin")]:
                procs = busy_procs(2)
                try:
                    time.sleep(1.0)
                    res[e] = run_child("busy", e, args)
                finally:
                    for p in procs:
                        p.kill()
                        p.wait()
            parts += ["### Two other CPU-bound processes running", "", section_busy(res), ""]
        print("\n".join(parts[-4:]), flush=True)
    text = "\n".join(parts) + "\n"
    if not a.no_write:
        path = os.path.abspath(a.out)
        old = open(path).read() if os.path.exists(path) else ""
        head = old.split(MARKER)[0].rstrip("\n")
        with open(path, "w") as fh:
            fh.write((head + "\n\n" if head else "") + text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
