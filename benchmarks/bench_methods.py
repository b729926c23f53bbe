"""The flattest-interpolator methods side by side: the manifold search and the cell-sparse method.

Two tables, both methods run in one process on the same data (``flatext.flattest_interpolator``
with ``method="manifold"`` / ``"cells"``, and the default ``"auto"``):

- ``scale``: d = 20, m = 2n, a three-direction teacher ``relu(u1.x) + 0.5 |u2.x| + 0.7 relu(u3.x)``
  (representable: four ReLU neurons), noise-free and with label noise; seconds, the orbit-minimal
  trace, its ratio to the teacher network's (noise-free), max|r|, and for the cell-sparse method the
  gap to its restricted program's optimum, the lower bound over the cells tried and the cells used.
- ``planted``: d = 8-10, n = 100-200, a planted width-3 ReLU network; the default method, the search
  alone and the planted network's orbit-minimal trace (the flattest is never above it).

Usage::

    python benchmarks/bench_search.py --methods scale --sizes 1000 2000 --noise 0 0.3
    python benchmarks/bench_search.py --methods planted

Timings on a shared machine are noisy: compare the two methods within one run.
"""

from __future__ import annotations

import argparse
import time

import flatext as fx
import numpy as np
from flatext import teachers


def teacher_problem(n, d, noise, seed):
    """X, y and the teacher's representable network (None with label noise: it does not interpolate)."""
    t = teachers.SumOfSingleIndex.random(d, ["relu", "abs", "relu"], weights=[1.0, 0.5, 0.7], seed=seed)
    X, y = t.sample(n, noise=noise, seed=seed + 1)
    U, w = t.directions, np.asarray(t.weights)
    Wt = np.vstack([U[0], U[1], -U[1], U[2]])
    at = np.array([w[0], w[1], w[1], w[2]])
    return X, y, (None if noise > 0 else (Wt, at))


def planted_problem(n, d, seed, k=3):
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((d, k)))[0].T
    w = rng.uniform(0.5, 1.0, k)
    X = rng.standard_normal((n, d))
    return X, np.maximum(X @ U.T, 0) @ w, (U, w)


def start(n, d, seed):
    rng = np.random.default_rng(seed + 2)
    m = 2 * n
    return rng.standard_normal((m, d)) / np.sqrt(d), rng.standard_normal(m) / np.sqrt(m)


def run(method, W0, a0, X, y, max_seconds=None):
    t = time.perf_counter()
    try:
        s = fx.flattest_interpolator(W0, a0, X, y, method=method, max_seconds=max_seconds)
    except (RuntimeError, ValueError) as e:
        return None, time.perf_counter() - t, str(e)
    return s, time.perf_counter() - t, ""


def row(label, s, secs, ref, err):
    if s is None:
        return f"{label:<24} {secs:>8.1f}  failed: {err}"
    vs = f"{s.orbit_min_trace / ref - 1:+.3%}" if ref else "-"
    gap = f"{s.orbit_min_trace / s.restricted_optimum - 1:.1e}" if np.isfinite(s.restricted_optimum) else "-"
    lb = f"{s.lower_bound:.6f}" if np.isfinite(s.lower_bound) else "-"
    return (
        f"{label:<24} {secs:>8.1f} {s.orbit_min_trace:>12.6f} {vs:>9} {s.max_residual:>8.1e} {gap:>8} {lb:>10} "
        f"{s.cells:>5} {s.method:>8} {s.reason:>18}"
    )


HEADER = (
    f"{'problem / method':<24} {'seconds':>8} {'orbit-min T':>12} {'vs teach':>9} {'max|r|':>8} {'gap':>8} "
    f"{'lower bd':>10} {'cells':>5} {'result':>8} {'reason':>18}"
)


def main_scale(args):
    print(f"flatext {fx.__version__}, threads {fx.get_num_threads()}, d = {args.d}, m = 2n; NOISY shared machine")
    print(HEADER)
    for n in args.sizes:
        for noise in args.noise:
            X, y, tnet = teacher_problem(n, args.d, noise, args.seed)
            W0, a0 = start(n, args.d, args.seed)
            ref = fx.orbit_min_trace(*tnet, X, y) if tnet is not None else None
            print(f"n = {n}, noise = {noise}" + (f": teacher network {ref:.6f}" if ref else ""), flush=True)
            for method in args.method_list:
                s, secs, err = run(method, W0, a0, X, y, args.max_seconds)
                print(row(f"  {method}", s, secs, ref, err), flush=True)


def main_planted(args):
    print(f"flatext {fx.__version__}, threads {fx.get_num_threads()}, planted width-3 ReLU teacher, m = 2n")
    print(HEADER)
    for d, n in ((8, 100), (8, 200), (10, 100), (10, 150)):
        for seed in range(args.seeds):
            X, y, (U, w) = planted_problem(n, d, seed)
            W0, a0 = start(n, d, seed)
            ref = fx.orbit_min_trace(U, w, X, y)
            print(f"d = {d}, n = {n}, seed {seed}: planted network {ref:.6f}", flush=True)
            for method in ("manifold", "auto"):
                s, secs, err = run(method, W0, a0, X, y)
                print(row(f"  {method}", s, secs, ref, err), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", choices=("scale", "planted"), required=True)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000])
    ap.add_argument("--d", type=int, default=20)
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.3])
    ap.add_argument("--method-list", nargs="+", default=["manifold", "cells"])
    ap.add_argument("--max-seconds", type=float, default=None, help="budget of each search")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=3, help="planted: seeds per size")
    args = ap.parse_args(argv)
    return main_scale(args) if args.methods == "scale" else main_planted(args)


if __name__ == "__main__":
    main()
