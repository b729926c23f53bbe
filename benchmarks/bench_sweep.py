"""Sweep throughput and per-call overhead of the Python API.

    python benchmarks/bench_sweep.py            # 2000 cells (n=64, d=8, m=32)
    python benchmarks/bench_sweep.py --quick    # 200 cells

Measures

1. cells per second of the default local executor on 1 and on 2 cores (1 and 2
   single-threaded worker processes; target: >= 1.8x with 2), on many small cells: full-batch GD for
   a fixed number of steps, then train loss, Hessian trace and orbit-minimal
   trace. Wall time includes starting the workers and writing the Parquet
   parts; "steady" rates leave out the start-up (time to the first finished
   task).
2. the sweep machinery's own cost per cell (``random`` method, no training,
   in this process);
3. the per-call overhead of ``flatext.hessian_trace`` (and friends) on tiny
   inputs (n=4, d=2, m=2), median of ``timeit`` repeats (target <= 20 us);
4. with ``--dask``: the Dask LocalCluster against the local pool on the same
   cores (target: >= 0.9x its throughput), on GD cells the size of
   ``examples/sweeps/reproduce.toml``'s (n=100, d=8, m=200), also with Dask's
   default worker environment (``MALLOC_TRIM_THRESHOLD_=65536``, the cause of
   the old 2.5x slowdown).

Timings on a shared machine are noisy: compare ratios, and rerun.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import timeit

import flatext
import numpy as np
from flatext.sweeps import executor as ex
from flatext.sweeps.config import load_config
from flatext.sweeps.store import ResultStore


def grid(cells, method="gd", steps=200):
    seeds = max(1, cells // 2)
    methods = {"gd": {"lr": 0.05, "max_iter": steps, "tol": 0.0}} if method == "gd" else {"random": {}}
    return {
        "sweep": {
            "name": f"bench-{method}",
            "seeds": seeds,
            "measurements": ["train_loss", "trace", "orbit_min_trace", "time"],
        },
        "teacher": {"links": ["relu", "abs"], "weights": [1.0, 0.5]},
        "data": {"n": 64, "d": 8, "noise": [0.0, 0.1]},
        "model": {"m": 32, "init_scale": 1.0},
        "methods": methods,
    }


def run(raw, workers, tmp):
    """Wall time, time to the first finished task, and number of cells, for one sweep."""
    cfg = load_config(raw)
    store = ResultStore(os.path.join(tmp, f"w{workers}.parquet"), resume=False)
    first = []
    t0 = time.perf_counter()

    def on_result(rows):
        if not first:
            first.append((time.perf_counter(), len(rows)))
        store.write_part(rows)

    ex.run_local(cfg.cells, on_result, workers=workers, cores=workers)  # k cores: k processes x 1 thread
    wall = time.perf_counter() - t0
    df = store.consolidate([c["cell_id"] for c in cfg.cells])
    assert len(df) == len(cfg.cells) and (df["status"] == "ok").all()
    t_first, n_first = first[0]
    steady = (len(cfg.cells) - n_first) / max(t0 + wall - t_first, 1e-9)
    return wall, t_first - t0, len(cfg.cells), steady, df


def _burn(sec):
    t = time.process_time()
    x = 0
    while time.process_time() - t < sec:
        x += 1
    return x


def machine_speedup(sec=1.0):
    """Speed-up the machine gives right now to 2 CPU-bound processes over 1 (2.0 on two idle cores)."""
    import concurrent.futures as cf
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    walls = {}
    for k in (1, 2):
        with cf.ProcessPoolExecutor(k, mp_context=ctx) as pool:
            list(pool.map(_burn, [0.01] * k))
            t = time.perf_counter()
            list(pool.map(_burn, [sec] * k))
            walls[k] = time.perf_counter() - t
    return 2 * walls[1] / walls[2]


def overhead(repeat=15, number=2000):
    rng = np.random.default_rng(0)
    W, a = rng.standard_normal((2, 2)), rng.standard_normal(2)
    X, y = rng.standard_normal((4, 2)), rng.standard_normal(4)
    out = {}
    for name, fn in (
        ("hessian_trace", lambda: flatext.hessian_trace(W, a, X, y)),
        ("loss", lambda: flatext.loss(W, a, X, y)),
        ("loss_grad", lambda: flatext.loss_grad(W, a, X, y)),
        ("hessian_trace_grad", lambda: flatext.hessian_trace_grad(W, a, X, y)),
        ("orbit_min_trace", lambda: flatext.orbit_min_trace(W, a, X, y)),
    ):
        fn()
        ts = timeit.repeat(fn, number=number, repeat=repeat)
        out[name] = statistics.median(ts) / number * 1e6
    return out


def dask_vs_local(n_cells, steps=2000, repeats=2):
    """Wall time and summed cell CPU of one GD sweep: local pool, LocalCluster, LocalCluster with Dask's defaults."""
    raw = {
        "sweep": {
            "name": "bench-dask",
            "seeds": max(1, n_cells // 2),
            "measurements": ["train_loss", "trace", "orbit_min_trace", "time"],
        },
        "teacher": {"links": ["relu", "abs"], "weights": [1.0, 0.5]},
        "data": {"n": 100, "d": 8, "noise": [0.0, 0.1]},
        "model": {"m": 200, "init_scale": 1.0},
        "methods": {"gd": {"lr": 0.1, "max_iter": steps, "tol": 0.0}},
    }
    cores = ex.cpu_count()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):  # interleaved, so that a change of the machine's load hits all three
            for name in ("local pool", "LocalCluster", "LocalCluster, Dask's default env"):
                kw = {"workers": cores} if name == "local pool" else {"local_cluster": cores}
                saved = ex._DASK_LOCAL_CONFIG
                if name.endswith("default env"):
                    ex._DASK_LOCAL_CONFIG = {}
                try:
                    t = time.perf_counter()
                    df = flatext.sweep(raw, out=os.path.join(tmp, "d.parquet"), resume=False, progress=False, **kw)
                    wall = time.perf_counter() - t
                finally:
                    ex._DASK_LOCAL_CONFIG = saved
                assert (df["status"] == "ok").all()
                out.setdefault(name, []).append((wall, float(df["time_cpu"].sum()), len(df)))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 cells instead of 2000")
    ap.add_argument("--cells", type=int, default=None)
    ap.add_argument("--steps", type=int, default=200, help="GD steps per cell")
    ap.add_argument("--dask", action="store_true", help="only the Dask LocalCluster vs local pool comparison")
    args = ap.parse_args(argv)
    if args.dask:
        n = args.cells or (16 if args.quick else 40)
        res = dask_vs_local(n)
        print(
            f"GD sweep, {n} cells (n=100, d=8, m=200, 2000 steps), {ex.cpu_count()} cores; "
            "wall includes starting the workers"
        )
        print("| executor | wall (s), each run | median wall (s) | cell CPU, summed (s) | throughput vs local pool |")
        print("|---|---|---|---|---|")
        base = statistics.median(w for w, _, _ in res["local pool"])
        for name, runs in res.items():
            med = statistics.median(w for w, _, _ in runs)
            print(
                f"| {name} | {', '.join(f'{w:.1f}' for w, _, _ in runs)} | {med:.1f} "
                f"| {statistics.median(c for _, c, _ in runs):.1f} | {base / med:.2f}x |"
            )
        try:
            print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        except OSError:  # pragma: no cover
            pass
        return
    n_cells = args.cells or (200 if args.quick else 2000)
    cores = ex.cpu_count()
    print(f"flatext {flatext.__version__}, {cores} cores, {os.uname().nodename}, python {sys.version.split()[0]}")
    print(f"cells: n=64, d=8, m=32, GD {args.steps} steps + train loss, trace, orbit-min trace; {n_cells} cells\n")

    with tempfile.TemporaryDirectory() as tmp:
        res = {}
        for w in (1, 2):
            wall, startup, n, steady, df = run(grid(n_cells, steps=args.steps), w, tmp)
            res[w] = (wall, startup, n, steady, float(df["time_total"].median()), float(df["time_cpu"].median()))
        print(
            "| cores = workers | wall (s) | start-up (s) | cells/s (wall) | cells/s (steady) | median cell wall (ms) "
            "| median cell CPU (ms) |"
        )
        print("|---|---|---|---|---|---|---|")
        for w, (wall, startup, n, steady, med, cpu) in res.items():
            print(
                f"| {w} | {wall:.2f} | {startup:.2f} | {n / wall:.0f} | {steady:.0f} | {med * 1e3:.2f} "
                f"| {cpu * 1e3:.2f} |"
            )
        s_wall = res[1][0] / res[2][0]
        s_steady = res[2][3] / res[1][3]
        print(f"\nspeed-up 2 vs 1 cores: {s_wall:.2f}x wall, {s_steady:.2f}x steady (target >= 1.8x)")
        ms = machine_speedup()
        print(
            f"the machine's own speed-up for 2 busy processes right now: {ms:.2f}x "
            f"(sweep efficiency {s_steady / ms:.0%} of it)"
        )
        print("(a cell's wall time well above its CPU time means the cores were busy with other work)")
        try:
            print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        except OSError:  # pragma: no cover
            pass

        cfg = load_config(grid(n_cells, method="random"))
        store = ResultStore(os.path.join(tmp, "rand.parquet"), resume=False)
        t0 = time.perf_counter()
        ex.run_local(cfg.cells, store.write_part, workers=0)
        dt = time.perf_counter() - t0
        print(
            f"sweep machinery, 'random' cells in-process (data + 3 measurements + row + Parquet part): "
            f"{dt / len(cfg.cells) * 1e6:.0f} us/cell"
        )

    print("\nper-call overhead on tiny inputs (n=4, d=2, m=2), median of timeit repeats:")
    for name, us in overhead().items():
        print(f"  {name:20s} {us:6.2f} us" + ("   (target <= 20 us)" if name == "hessian_trace" else ""))


if __name__ == "__main__":
    main()
