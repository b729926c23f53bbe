"""Certified flattest interpolator (flatext.certified_flattest) against the nonconvex search.

Usage::

    python benchmarks/bench_convex.py table            # the issue's three ReLU problems
    python benchmarks/bench_convex.py table --neg -0.25  # the same with leaky ReLU (1: |z|)
    python benchmarks/bench_convex.py reach 3:50,100 4:30,40 --sampled 10:100,200
    python benchmarks/bench_convex.py solvers 3:20,40
    python benchmarks/bench_convex.py restricted 20:1000          # Clarabel vs the structured IPM

``table``: per problem (X Gaussian, y from a sum of single-index ReLU teachers), the
certified optimum (exact pattern enumeration) and the search's min / median / max
orbit-minimal trace from 10 starts (8 random initialisations at two scales, the
teacher itself, and the teacher with perturbed weights), as a ratio to the optimum,
with the number of runs that report convergence more than 5 % above it.
``reach``: seconds of an exact (and optionally a sampled) certification per (d, n);
exact mode prices every cell and keeps few in the program (``--pricing-rounds 0``: the
full program over all cells).
``solvers``: the same cone program through Clarabel's own API, the structured IPM, cvxpy + Clarabel and SCS.
``restricted``: the cone program over the cells of the cell-sparse method's penalty path on the
held-out scale problem of ``bench_methods.py`` (a three-direction teacher with a |z| component),
one solve by Clarabel and one by the structured interior-point method (``solver="ipm"``).
"""

from __future__ import annotations

import argparse
import math
import time

import flatext as fx
import numpy as np
from flatext.convex import arrangement_cell_count


def problem(n, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    links = ["relu"] * min(d, 3)
    teacher = fx.SumOfSingleIndex.random(d, links, seed=seed + 1)
    return X, teacher(X), teacher


def starts(teacher, m, d, seed, k=10):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(k - 2):
        scale = 1.0 if i % 2 == 0 else 0.3
        out.append(
            (
                f"random(scale={scale})",
                scale * rng.standard_normal((m, d)) / math.sqrt(d),
                rng.standard_normal(m) / math.sqrt(m),
            )
        )
    U, w = teacher.directions, teacher.weights
    kt = U.shape[0]
    W = np.vstack([U, 0.1 * rng.standard_normal((m - kt, d))])
    a = np.concatenate([w, 0.01 * rng.standard_normal(m - kt)])
    out.append(("teacher+small", W, a))
    reps = m // kt
    W2 = np.vstack([np.repeat(U, reps, axis=0), np.zeros((m - kt * reps, d))])
    W2 = W2 + 0.05 * rng.standard_normal((m, d))
    a2 = np.concatenate([np.repeat(w / reps, reps), np.zeros(m - kt * reps)])
    out.append(("teacher-split", W2, a2))
    return out


def table(args):
    rows = []
    for d, n, m, seed in [(3, 20, 40, 11), (3, 40, 120, 12), (4, 30, 90, 13)]:
        X, y, teacher = problem(n, d, seed)
        t0 = time.perf_counter()
        # the reference: the full program over every cell (pricing_rounds=0), independent of the
        # pricing that the polish's exact mode uses
        cert = fx.certified_flattest(X, y, neg=args.neg, m=m, patterns="exact", pricing_rounds=0)
        tc = time.perf_counter() - t0
        vals, raw, conv_bad, secs, fails = [], [], 0, [], 0
        for name, W0, a0 in starts(teacher, m, d, seed + 100, args.starts):
            t0 = time.perf_counter()
            try:
                sr = fx.flattest_interpolator(W0, a0, X, y, neg=args.neg)
            except ValueError as e:
                fails += 1
                print(f"  d{d} n{n} m{m} {name}: search failed: {str(e)[:80]}", flush=True)
                continue
            secs.append(time.perf_counter() - t0)
            v = sr.orbit_min_trace
            vals.append(v)
            raw.append(sr.search_orbit_min_trace)
            if sr.converged and v > 1.05 * cert.bound:
                conv_bad += 1
            if v < cert.bound * (1 - 1e-7):
                raise AssertionError(f"search below the certified optimum: {v} < {cert.bound}")
            print(
                f"  d{d} n{n} m{m} {name}: search {raw[-1]:.6g} ({raw[-1] / cert.bound - 1:+.2%}), polished {v:.6g} "
                f"({v / cert.bound - 1:+.3%}) converged={sr.converged} reason={sr.reason} polish={sr.polish} "
                f"iters={sr.iterations} {secs[-1]:.1f}s",
                flush=True,
            )
        v = np.array(vals)
        rows.append((d, n, m, cert, tc, v, np.array(raw), conv_bad, fails, np.median(secs) if secs else float("nan")))
        print(
            f"d{d} n{n} m{m}: optimum {cert.bound:.6f} (network {cert.value:.6f}, {cert.active_neurons} neurons, "
            f"{cert.n_patterns} cells, {tc:.1f}s)",
            flush=True,
        )
    print()
    print(
        f"| problem (neg = {args.neg}) | certified optimum (full program) | cells | seconds | search alone: min / median / max (vs optimum) "
        "| with the convex polish (default) | converged > +5% | failed starts | seconds per search |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for d, n, m, cert, tc, v, r, cb, fl, sec in rows:

        def rel(a):
            if not len(a):
                return "(no start)"
            return " / ".join(f"{x / cert.bound - 1:+.2%}" for x in (a.min(), np.median(a), a.max()))

        print(
            f"| d{d} n{n} m{m} | {cert.bound:.6f} | {cert.n_patterns} | {tc:.1f} | {rel(r)} | {rel(v)} | "
            f"{cb} of {len(v)} | {fl} | {sec:.1f} |"
        )


def _pairs(specs):
    out = []
    for spec in specs or []:
        d, ns = spec.split(":")
        out += [(int(d), int(n)) for n in ns.split(",")]
    return out


def reach(args):
    print(
        "| mode | d | n | cells | cells in the program | pricing rounds | groups | nnz(A) | "
        "seconds: patterns / assemble / solve / polish | total | status | value/bound - 1 | bound/lower_bound - 1 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for mode, pairs in (("exact", _pairs(args.specs)), ("sampled", _pairs(args.sampled))):
        for d, n in pairs:
            X, y, _ = problem(n, d, 1000 + n + d)
            try:
                r = fx.certified_flattest(
                    X,
                    y,
                    neg=args.neg,
                    patterns=mode,
                    n_patterns=args.n_patterns if mode == "sampled" else None,
                    pricing_rounds=args.pricing_rounds,
                )
            except (RuntimeError, ValueError, ImportError) as e:  # report and go on: this measures reach
                print(
                    f"| {mode} | {d} | {n} | {arrangement_cell_count(n, d) if mode == 'exact' else '-'} | | | | | "
                    f"failed: {str(e)[:60]} | | | | |",
                    flush=True,
                )
                continue
            t = r.info["times"]
            pr = r.info["pricing"]
            lb = pr.get("lower_bound")
            print(
                f"| {mode} | {d} | {n} | {arrangement_cell_count(n, d) if mode == 'exact' else '-'} | "
                f"{r.n_patterns} | {pr['rounds']} | {r.info['groups']} | {r.info['nnz']} | "
                f"{t['patterns']:.2f} / {t['assemble']:.2f} / {t['solve']:.1f} / {t['polish']:.2f} | "
                f"{r.seconds:.1f} | {r.status} | {r.value / r.bound - 1:.1e} | "
                f"{'-' if lb is None else f'{r.bound / lb - 1:.1e}'} |",
                flush=True,
            )


def solvers(args):
    print("| d | n | solver | seconds | optimum | status |")
    print("|---|---|---|---|---|---|")
    for d, n in _pairs(args.specs):
        X, y, _ = problem(n, d, 2000 + n)
        for solver in ("clarabel", "ipm", "ecos", "scs", "cvxpy"):
            t0 = time.perf_counter()
            try:
                r = fx.certified_flattest(X, y, solver=solver, tol=1e-8)
                print(
                    f"| {d} | {n} | {solver} | {r.info['times']['solve']:.2f} (total {time.perf_counter() - t0:.1f}) "
                    f"| {r.bound:.8f} | {r.status} |",
                    flush=True,
                )
            except (RuntimeError, ValueError, ImportError) as e:
                print(
                    f"| {d} | {n} | {solver} | {time.perf_counter() - t0:.1f} | failed: {str(e)[:60]} | |", flush=True
                )


def restricted(args):
    from bench_methods import start, teacher_problem
    from flatext.cells import _start_rows, active_neurons, penalty_path
    from flatext.convex import _backend, _candidate_patterns, _groups, _row_basis, _socp_blocks, _warm_directions

    print("| d | n | groups | cone rows | solver | seconds | Clarabel / this | optimum | status |")
    print("|---|---|---|---|---|---|---|---|---|")
    for d, n in _pairs(args.specs):
        X, y, _ = teacher_problem(n, d, 0.0, 0)
        W0, a0 = start(n, d, 0)
        Wp, ap, _ = penalty_path(*_start_rows(W0, a0, max(100, n // 4)), X, y)
        Q = _row_basis(X)
        Xr = X @ Q
        pats = _candidate_patterns(Xr, 0.0, "sampled", 0, 0, 0, _warm_directions([active_neurons(Wp, ap, X, y)], Q))
        groups, kappa, Ls = _groups(Xr, pats, 0.0)
        q, A, b, cones = _socp_blocks(Xr, y, pats, 0.0, groups, kappa, Ls)
        secs = {}
        for solver in ("clarabel", "ipm"):
            t0 = time.perf_counter()
            _, status, obj, _ = _backend(solver)(q, A, b, cones, 1e-8)
            secs[solver] = time.perf_counter() - t0
            print(
                f"| {d} | {n} | {len(groups)} | {A.shape[0] - n} | {solver} | {secs[solver]:.1f} "
                f"| {secs['clarabel'] / secs[solver]:.2f}x | {obj:.8f} | {status} |",
                flush=True,
            )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["table", "reach", "solvers", "restricted"])
    ap.add_argument("specs", nargs="*", help="d:n1,n2,... (reach, solvers)")
    ap.add_argument("--sampled", nargs="*", help="d:n1,n2,... for patterns='sampled' (reach)")
    ap.add_argument("--n-patterns", type=int, default=None)
    ap.add_argument(
        "--pricing-rounds",
        type=int,
        default=None,
        help="reach: 0 solves the full program in exact mode (default: priced)",
    )
    ap.add_argument("--neg", type=float, default=0.0)
    ap.add_argument("--starts", type=int, default=10)
    args = ap.parse_args()
    {"table": table, "reach": reach, "solvers": solvers, "restricted": restricted}[args.what](args)


if __name__ == "__main__":
    main()
