#!/usr/bin/env python
"""Speed of flatext's kernels as multiples of numpy's GEMM, and their peak memory.

For each shape (n, d, m), dtype (float64, float32) and thread count (1, 2),
the median time of every kernel (forward, loss_grad, hessian_trace,
hessian_trace_grad, hvp) is divided by the median time of numpy's
``X @ W.T`` on the same arrays, in the same process, with numpy's OpenBLAS
limited to the same number of threads (threadpoolctl). Timings are
interleaved (each round times the GEMM and every kernel once) so that load
from other processes hits all of them alike; medians over the rounds.

Targets: hessian_trace <= 1.3x the GEMM, hessian_trace_grad <= 2.6x,
hvp <= 4x; memory beyond the inputs under 100 MB.

Memory: for a shape whose pre-activations alone take gigabytes (default
n=2,000,000, d=32, m=512: X is 0.5 GB and X W^T would be 8 GB in float64),
each kernel runs twice in a fresh subprocess that builds the inputs; before
each call the peak RSS is reset (``/proc/self/clear_refs``) and ``VmHWM`` is
read after it: the growth of the peak beyond the resident inputs is what the
call needed (C++ allocations included, which tracemalloc would not see). The
first call also pays the one-time thread-pool and OpenBLAS buffer set-up.

Usage::

    python benchmarks/bench_kernels.py            # a few minutes
    python benchmarks/bench_kernels.py --quick    # small shapes, no memory run
    python benchmarks/bench_kernels.py --full     # all shapes, float32 memory too

Writes ``docs/performance.md`` (``--out``; ``--no-write`` to skip). Exits 1 if
a kernel's result disagrees with numpy (a sanity check, not a test), never for
a missed timing target (timings on a shared machine are noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

if __name__ == "__main__":
    _common.prepare_env()

import numpy as np  # noqa: E402

KERNELS = ["forward", "loss_grad", "hessian_trace", "hessian_trace_grad", "hvp"]
TARGETS = {"hessian_trace": 1.3, "hessian_trace_grad": 2.6, "hvp": 4.0}
MEM_TARGET_MB = 100.0

SHAPES = {
    "quick": [(1024, 64, 256), (2048, 128, 512)],
    "default": [(1024, 64, 256), (2048, 128, 512), (4096, 256, 1024), (8192, 256, 1024)],
    "full": [(256, 32, 64), (1024, 64, 256), (2048, 128, 512), (4096, 256, 1024), (8192, 256, 1024), (65536, 32, 2048)],
}
REPEATS = {"quick": 5, "default": 7, "full": 11}


def make_problem(n, d, m, dtype, seed=0):
    """Inputs built in place in their dtype (no float64 temporaries)."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    X = rng.standard_normal((n, d), dtype=dt)
    W = rng.standard_normal((m, d), dtype=dt)
    W *= dt.type(1.0 / np.sqrt(d))
    a = rng.standard_normal(m, dtype=dt)
    a *= dt.type(1.0 / np.sqrt(m))
    y = rng.standard_normal(n, dtype=dt)
    VW = rng.standard_normal((m, d), dtype=dt)
    va = rng.standard_normal(m, dtype=dt)
    return W, a, X, y, VW, va


def sig(z, p, c, k=0):
    """k-th derivative of max(z,0)^p + c max(-z,0)^p in float64 (0 at z = 0 for k >= 1)."""
    coef = 1.0
    for j in range(k):
        coef *= p - j
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = np.where(z > 0, np.maximum(z, 0.0) ** (p - k), 0.0)
        neg = np.where(z < 0, np.maximum(-z, 0.0) ** (p - k), 0.0)
    return coef * (pos + (-1) ** k * c * neg)


def kernel_calls(flatext, W, a, X, y, VW, va, power, neg):
    kw = dict(power=power, neg=neg)
    return {
        "forward": lambda: flatext.forward(W, a, X, **kw),
        "loss_grad": lambda: flatext.loss_grad(W, a, X, y, **kw),
        "hessian_trace": lambda: flatext.hessian_trace(W, a, X, y, **kw),
        "hessian_trace_grad": lambda: flatext.hessian_trace_grad(W, a, X, y, **kw),
        "hvp": lambda: flatext.hvp(W, a, X, y, VW, va, **kw),
    }


def numpy_blas_controllers():
    """threadpoolctl controllers of numpy's own BLAS only (never flatext's
    scipy-openblas32, which must stay single-threaded under the kernels' tiles)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    ctl = ThreadpoolController()
    return [c for c in ctl.lib_controllers if c.user_api == "blas" and "scipy_openblas32" not in c.filepath]


def set_threads(flatext, k, ctls):
    flatext.set_num_threads(k)
    if ctls:
        for c in ctls:
            c.set_num_threads(k)


def sanity(flatext, W, a, X, y, power, neg):
    """Relative error of forward and hessian_trace against plain numpy (small slice)."""
    Xs, ys = X[:512].astype(np.float64), y[:512].astype(np.float64)
    W64, a64 = W.astype(np.float64), a.astype(np.float64)
    Z = Xs @ W64.T
    s0, s1, s2 = (sig(Z, power, neg, k) for k in range(3))
    f = s0 @ a64
    r = f - ys
    s = (Xs**2).sum(1)
    T = np.mean((s0**2).sum(1) + (s1**2 * a64**2).sum(1) * s + r * (s2 @ a64) * s)
    f_fx = flatext.forward(W, a, X[:512], power=power, neg=neg).astype(np.float64)
    T_fx = float(flatext.hessian_trace(W, a, X[:512], y[:512], power=power, neg=neg))
    return max(np.max(np.abs(f_fx - f)) / max(np.max(np.abs(f)), 1e-300), abs(T_fx - T) / abs(T))


def bench_shape(flatext, n, d, m, dtype, threads, repeats, power, neg, ctls, stat="median"):
    W, a, X, y, VW, va = make_problem(n, d, m, dtype)
    calls = kernel_calls(flatext, W, a, X, y, VW, va, power, neg)
    Z = np.empty((n, m), dtype=dtype)
    WT = W.T
    gemm = {"gemm": lambda: X @ WT, "gemm_out": lambda: np.matmul(X, WT, out=Z)}
    rows = []
    for k in threads:
        set_threads(flatext, k, ctls)
        fns = dict(gemm, **calls)
        for fn in fns.values():  # warm-up (page faults, thread pools, BLAS buffers)
            fn()
            fn()
        times = {name: [] for name in fns}
        for _ in range(repeats):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        agg = min if stat == "min" else _common.median
        med = {name: agg(ts) for name, ts in times.items()}
        rows.append(
            dict(
                n=n,
                d=d,
                m=m,
                dtype=np.dtype(dtype).name,
                threads=k,
                times=med,
                gflops=2.0 * n * d * m / med["gemm"] / 1e9,
            )
        )
    return rows


def memory_child(args):
    """Runs in a subprocess: peak RSS growth of a kernel call beyond the inputs,
    for the first call in the process (cold: includes one-time thread-pool and
    BLAS-buffer set-up) and for a second call (warm)."""
    import flatext

    n, d, m = args.mem_shape
    dtype = args.mem_dtype
    flatext.set_num_threads(args.mem_threads)
    W, a, X, y, VW, va = make_problem(n, d, m, dtype)
    call = kernel_calls(flatext, W, a, X, y, VW, va, args.power, args.neg)[args.memory_child]

    def status():
        out = {}
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS", "VmHWM")):
                    k, v = line.split(":")
                    out[k] = int(v.split()[0]) * 1024
        return out

    def reset_peak():
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            return True
        except OSError:
            return False

    rec = dict(kernel=args.memory_child, inputs=sum(v.nbytes for v in (W, a, X, y, VW, va)))
    for label in ("cold", "warm"):
        reset = reset_peak()
        before = status()
        t0 = time.perf_counter()
        res = call()
        rec[label + "_seconds"] = time.perf_counter() - t0
        after = status()
        # without a reset, the peak so far (input generation included) is the baseline: a lower bound
        rec[label] = after["VmHWM"] - (before["VmRSS"] if reset else before["VmHWM"])
        rec["reset"] = reset
        rec["rss_before"] = before["VmRSS"]
        rec["output"] = sum(np.asarray(r).nbytes for r in (res if isinstance(res, tuple) else (res,)))
        del res
    rec["extra"] = max(rec["cold"], rec["warm"])
    rec["seconds"] = rec["warm_seconds"]
    print(json.dumps(rec))


def run_memory(args, kernels, dtypes):
    rows = []
    n, d, m = args.mem_shape
    for dtype in dtypes:
        for kern in kernels:
            cmd = [
                sys.executable,
                os.path.abspath(__file__),
                "--memory-child",
                kern,
                "--mem-shape",
                str(n),
                str(d),
                str(m),
                "--mem-dtype",
                dtype,
                "--mem-threads",
                str(args.mem_threads),
                "--power",
                str(args.power),
                "--neg",
                str(args.neg),
            ]
            p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
            if p.returncode != 0:
                print(f"memory run of {kern} ({dtype}) failed:\n{p.stderr}", file=sys.stderr)
                rows.append(dict(kernel=kern, dtype=dtype, extra=float("nan"), error=p.stderr.strip()[-200:]))
                continue
            r = json.loads(p.stdout.strip().splitlines()[-1])
            r["dtype"] = dtype
            rows.append(r)
            print(
                f"  memory {kern:18s} {dtype}: first call +{r['cold'] / 2**20:.1f} MB, second call "
                f"+{r['warm'] / 2**20:.1f} MB beyond {r['rss_before'] / 2**20:.0f} MB resident "
                f"({r['seconds']:.2f} s)",
                flush=True,
            )
    return rows


DISPATCH_KERNELS = ["hessian_trace", "hessian_trace_grad", "hvp"]
DISPATCH_SHAPES = [(2048, 128, 512), (8192, 256, 1024)]


def bench_dispatch(threads, dtypes, repeats, power, neg, shapes=DISPATCH_SHAPES):
    """Every built variant of the extension (flatext._native) loaded in this process, the
    kernels timed with each in interleaved rounds: time relative to the `native` variant
    (the -march=native build, if built) or else to the best variant."""
    from flatext import _native

    names = list(_native.RUNNABLE)
    mods = {v: _native.load_variant(v) for v in names}
    ref = "native" if "native" in mods else names[0]
    auto = next((v for v in names if v != "native"), names[0])  # what a default build picks here
    rows = []
    for n, d, m in shapes:
        for dtype in dtypes:
            W, a, X, y, VW, va = make_problem(n, d, m, dtype)
            calls = {}
            for v, mod in mods.items():
                calls[("hessian_trace", v)] = lambda mod=mod: mod.hessian_trace(W, a, X, y, power, neg)
                calls[("hessian_trace_grad", v)] = lambda mod=mod: mod.hessian_trace_grad(W, a, X, y, power, neg)
                calls[("hvp", v)] = lambda mod=mod: mod.hvp(W, a, X, y, VW, va, power, neg)
            for k in threads:
                for mod in mods.values():
                    mod.set_num_threads(k)
                times = {key: [] for key in calls}
                for fn in calls.values():
                    fn()
                for _ in range(repeats):
                    for key, fn in calls.items():
                        t0 = time.perf_counter()
                        fn()
                        times[key].append(time.perf_counter() - t0)
                med = {key: _common.median(ts) for key, ts in times.items()}
                for kern in DISPATCH_KERNELS:
                    rows.append(
                        dict(
                            n=n,
                            d=d,
                            m=m,
                            dtype=dtype,
                            threads=k,
                            kernel=kern,
                            ref=ref,
                            auto=auto,
                            times={v: med[(kern, v)] for v in names},
                        )
                    )
                print(
                    f"  dispatch ({n},{d},{m}) {dtype} {k} thr: "
                    + "  ".join(
                        f"{r['kernel']}: " + " ".join(f"{v}={r['times'][v] / r['times'][ref]:.2f}" for v in names)
                        for r in rows[-len(DISPATCH_KERNELS) :]
                    ),
                    flush=True,
                )
    for mod in mods.values():
        mod.set_num_threads(0)
    return names, rows


def render_dispatch(names, rows):
    ref, auto = rows[0]["ref"], rows[0]["auto"]
    header = ["n", "d", "m", "dtype", "thr", "kernel", f"{ref} time"]
    for v in names:
        if v != ref:
            header.append(f"{v} / {ref}" + (" (default, <= 1.05x)" if v == auto else ""))
    out, misses = [], []
    for r in rows:
        cells = [r["n"], r["d"], r["m"], r["dtype"], r["threads"], r["kernel"], _common.fmt_time(r["times"][ref])]
        for v in names:
            if v == ref:
                continue
            x = r["times"][v] / r["times"][ref]
            c = f"{x:.2f}x"
            if v == auto and auto != ref:
                c += " pass" if x <= 1.05 else " MISS"
                if x > 1.05:
                    misses.append(
                        f"default ({auto}) vs {ref}: {r['kernel']} at ({r['n']},{r['d']},{r['m']}) "
                        f"{r['dtype']} {r['threads']} thr: {x:.2f}x > 1.05x"
                    )
            cells.append(c)
        out.append(cells)
    return header, out, misses


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="small shapes only, no memory run")
    g.add_argument("--full", action="store_true", help="all shapes, float32 memory run too")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--dtypes", default="float64,float32")
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds per shape (median)")
    ap.add_argument(
        "--stat",
        choices=["median", "min"],
        default="median",
        help="statistic over the rounds (min is steadier on a loaded machine)",
    )
    ap.add_argument("--power", type=float, default=1.0)
    ap.add_argument("--neg", type=float, default=0.0)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--mem-shape", type=int, nargs=3, default=[2_000_000, 32, 512], metavar=("N", "D", "M"))
    ap.add_argument("--mem-threads", type=int, default=2)
    ap.add_argument("--mem-dtype", default="float64", help=argparse.SUPPRESS)
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument(
        "--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "performance.md")
    )
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument(
        "--dispatch",
        action="store_true",
        help="also compare the built CPU-dispatch variants (baseline/avx2/avx512/native) in one process",
    )
    ap.add_argument("--dispatch-only", action="store_true", help="only the variant comparison (implies --no-memory)")
    ap.add_argument(
        "--keep-openblas-env",
        action="store_true",
        help="keep OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE (default: removed for this run)",
    )
    args = ap.parse_args(argv)
    if args.memory_child:
        return memory_child(args)

    import flatext

    mode = "quick" if args.quick else "full" if args.full else "default"
    shapes = SHAPES[mode]
    repeats = args.repeats or REPEATS[mode]
    threads = sorted(int(t) for t in args.threads.split(","))
    dtypes = args.dtypes.split(",")
    ctls = numpy_blas_controllers()
    if ctls is None:
        print("threadpoolctl is not installed: numpy's GEMM runs with its default threads", file=sys.stderr)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(
        f"flatext kernels vs numpy X @ W.T ({mode}; {args.stat} of {repeats} interleaved rounds; threads {threads}; "
        f"power={args.power:g} neg={args.neg:g})",
        flush=True,
    )

    bad = []
    results = []
    disp = None
    if args.dispatch or args.dispatch_only:
        print("CPU-dispatch variants, each kernel's time relative to the reference variant:", flush=True)
        disp = render_dispatch(*bench_dispatch(threads, dtypes, repeats, args.power, args.neg))
        print(_common.text_table(disp[0], disp[1]))
        if args.dispatch_only:
            shapes, args.no_memory = [], True
    for n, d, m in shapes:
        for dtype in dtypes:
            err = sanity(flatext, *make_problem(min(n, 512), d, m, dtype)[:4], args.power, args.neg)
            tol = 1e-10 if dtype == "float64" else 1e-3
            if not err <= tol:
                bad.append(f"({n},{d},{m}) {dtype}: relative error {err:.2e} vs numpy > {tol}")
            shape_rows = bench_shape(flatext, n, d, m, dtype, threads, repeats, args.power, args.neg, ctls, args.stat)
            for r in shape_rows:
                # the floor for k threads: numpy's fastest GEMM with at most k threads (on a loaded
                # machine a 2-thread OpenBLAS GEMM can be far slower than a 1-thread one; the kernels
                # must not get credit for that)
                r["floor"] = min(q["times"]["gemm"] for q in shape_rows if q["threads"] <= r["threads"])
                r["gflops"] = 2.0 * n * d * m / r["floor"] / 1e9
                results.append(r)
                t = r["times"]
                print(
                    f"  n={n:6d} d={d:4d} m={m:5d} {dtype:8s} {r['threads']} thr: gemm {_common.fmt_time(t['gemm'])}, "
                    f"floor {_common.fmt_time(r['floor'])} ({r['gflops']:.0f} GFLOP/s)  "
                    + "  ".join(f"{k}={t[k] / r['floor']:.2f}x" for k in KERNELS),
                    flush=True,
                )
    set_threads(flatext, 0, None)

    mem = []
    if not args.quick and not args.no_memory:
        n, d, m = args.mem_shape
        print(
            f"peak memory beyond the inputs, n={n} d={d} m={m}, {args.mem_threads} threads "
            f"(pre-activations would take {n * m * 8 / 2**30:.1f} GiB in float64)",
            flush=True,
        )
        mem = run_memory(
            args, KERNELS if args.full else list(TARGETS), ["float64", "float32"] if args.full else ["float64"]
        )

    header = ["n", "d", "m", "dtype", "thr", "GEMM", "floor", "GEMM (out=)"] + [
        k + (f" (<= {TARGETS[k]:g}x)" if k in TARGETS else "") for k in KERNELS
    ]
    rows = []
    misses = []
    for r in results:
        t = r["times"]
        cells = [
            r["n"],
            r["d"],
            r["m"],
            r["dtype"],
            r["threads"],
            _common.fmt_time(t["gemm"]),
            f"{_common.fmt_time(r['floor'])} ({r['gflops']:.0f} GF/s)",
            f"{t['gemm_out'] / t['gemm']:.2f}x",
        ]
        for k in KERNELS:
            x = t[k] / r["floor"]
            c = f"{x:.2f}x"
            if k in TARGETS:
                ok = x <= TARGETS[k]
                c += " pass" if ok else " MISS"
                if not ok:
                    misses.append(
                        f"{k} at ({r['n']},{r['d']},{r['m']}) {r['dtype']} {r['threads']} thr: "
                        f"{x:.2f}x > {TARGETS[k]:g}x"
                    )
            cells.append(c)
        rows.append(cells)
    print()
    print(_common.text_table(header, rows))
    mem_rows = []
    for r in mem:
        extra = r.get("extra", float("nan")) / 2**20
        ok = extra < MEM_TARGET_MB
        mem_rows.append(
            [
                r["kernel"],
                r["dtype"],
                f"{r.get('cold', float('nan')) / 2**20:.1f} MB",
                f"{r.get('warm', float('nan')) / 2**20:.1f} MB",
                "pass" if ok else "MISS",
                f"{r.get('inputs', 0) / 2**20:.0f} MB",
                f"{r.get('output', 0) / 2**20:.1f} MB",
                _common.fmt_time(r.get("seconds", float("nan"))),
            ]
        )
        if not ok:
            misses.append(f"memory of {r['kernel']} ({r['dtype']}): {extra:.1f} MB >= {MEM_TARGET_MB:g} MB")
    mem_header = [
        "kernel",
        "dtype",
        "first call",
        "second call",
        f"both < {MEM_TARGET_MB:g} MB",
        "inputs",
        "output",
        "time (2nd call)",
    ]
    if mem_rows:
        print()
        print(_common.text_table(mem_header, mem_rows))
    if disp is not None:
        misses += disp[2]
    print()
    print("target misses:" if misses else "all targets met", *misses, sep="\n  ")
    if bad:
        print("RESULT MISMATCH:", *bad, sep="\n  ", file=sys.stderr)

    if args.dispatch_only:
        if not args.no_write:
            write_dispatch_only(args.out, dispatch_section(args, repeats, disp))
            print(f"wrote the dispatch section of {os.path.relpath(args.out)}")
        return 1 if bad else 0
    if not args.no_write:
        doc = render_doc(args, mode, started, repeats, header, rows, mem_header, mem_rows, misses, disp)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        # keep the section that benchmarks/bench_interop.py writes after its marker
        marker = "<!-- bench_interop -->"
        old = open(args.out).read() if os.path.exists(args.out) else ""
        if marker in old:
            doc = doc.rstrip("\n") + "\n\n" + marker + old.split(marker, 1)[1]
        with open(args.out, "w") as fh:
            fh.write(doc)
        print(f"wrote {os.path.relpath(args.out)}")
    return 1 if bad else 0


def render_doc(args, mode, started, repeats, header, rows, mem_header, mem_rows, misses, disp=None):
    n, d, m = args.mem_shape
    parts = [
        "# Kernel performance",
        "",
        _common.generated_by("bench_kernels.py", mode, args.stat, started)
        + f"Each kernel's {args.stat} time divided by the {args.stat} time of numpy's `X @ W.T` on the same "
        "arrays, in the same process, with numpy's BLAS and flatext limited to the same thread count "
        f"(`thr`); {repeats} interleaved rounds after warm-up; activation power={args.power:g}, "
        f"neg={args.neg:g}. `GEMM (out=)` is `np.matmul(X, W.T, out=Z)` into a preallocated Z, "
        "relative to `X @ W.T` (the difference is the page faults of a fresh n x m output). "
        "The ratios divide by `floor`: the fastest of numpy's `X @ W.T` medians with at most `thr` "
        "threads (on a loaded machine numpy's 2-thread GEMM can be much slower than its 1-thread one, "
        "and the kernels must not get credit for that).",
        "",
        "Targets: `hessian_trace` <= 1.3x the GEMM, `hessian_trace_grad` <= 2.6x, `hvp` <= 4x; "
        "peak memory beyond the inputs < 100 MB.",
        "",
        "## Machine",
        "",
        *_common.machine_lines(),
        "",
        "## Time as a multiple of numpy's GEMM",
        "",
        _common.md_table(header, rows),
        "",
    ]
    if mem_rows:
        parts += [
            "## Peak memory",
            "",
            f"n={n}, d={d}, m={m}, {args.mem_threads} threads: the pre-activations X W^T alone would take "
            f"{n * m * 8 / 2**30:.1f} GiB in float64 ({n * m * 4 / 2**30:.1f} GiB in float32). Each kernel runs "
            "twice in a fresh subprocess that holds only the inputs; the figures are the growth of the peak "
            "RSS (`VmHWM`, reset through `/proc/self/clear_refs` before each call) beyond what was resident "
            "before the call, so they include the result arrays and every C++ allocation; the first call "
            "also pays the one-time set-up of the thread pool and OpenBLAS's buffers.",
            "",
            _common.md_table(mem_header, mem_rows),
            "",
        ]
    if disp is not None:
        parts += dispatch_section(args, repeats, disp)
    parts += ["## Misses", ""]
    parts += [f"- {x}" for x in misses] if misses else ["None."]
    parts += ["", NOTES, ""]
    return "\n".join(parts)


DISPATCH_BEGIN, DISPATCH_END = "<!-- dispatch:begin -->", "<!-- dispatch:end -->"


def dispatch_section(args, repeats, disp):
    return [
        DISPATCH_BEGIN,
        "## Run-time CPU dispatch",
        "",
        DISPATCH_DESIGN,
        "",
        "### The variants measured",
        "",
        "Every built variant (flatext/_native.py) loaded in one process, the kernels timed with each in "
        f"interleaved rounds ({args.stat} of {repeats}); time relative to the reference variant (`native`, "
        "the `-march=native` build, when the build has it: `FLATEXT_DISPATCH_VARIANTS` includes `native`). "
        "Target: the default choice within 5% of `-march=native`.",
        "",
        _common.md_table(disp[0], disp[1]),
        "",
        "Misses: " + ("; ".join(disp[2]) if disp[2] else "none") + ".",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {_common.loadavg()}.",
        DISPATCH_END,
        "",
    ]


def write_dispatch_only(path, section):
    """Put the dispatch section into an existing performance doc (replacing an older one)."""
    old = open(path).read() if os.path.exists(path) else ""
    text = "\n".join(section)
    if DISPATCH_BEGIN in old and DISPATCH_END in old:
        head, rest = old.split(DISPATCH_BEGIN, 1)
        new = head + text.rstrip("\n") + rest.split(DISPATCH_END, 1)[1]
    elif "## Misses" in old:
        head, rest = old.split("## Misses", 1)
        new = head + text + "\n## Misses" + rest
    else:
        new = old + "\n" + text
    with open(path, "w") as fh:
        fh.write(new)


DISPATCH_DESIGN = """OpenBLAS picks its GEMM kernels at run time by itself; the compiler flags decide only the elementwise
passes between the GEMMs (the activation and its derivatives, the per-row and per-neuron sums). A
portable build used to compile them for SSE2 only. The build now compiles the whole extension module
once per x86-64 level and installs each copy as `flatext/_isa/<variant>/_core*.so`:

| variant | flags | CPUs |
|---|---|---|
| `baseline` | none (SSE2) | every x86-64 CPU, and the only variant on other architectures |
| `avx2` | `-march=x86-64-v3` (AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE) | Haswell, Zen 1 and later |
| `avx512` | `-march=x86-64-v4` (v3 + AVX-512 F/BW/CD/DQ/VL) | Skylake-SP, Ice Lake, Zen 4 and later |
| `native` | `-march=native` | the build machine (`FLATEXT_NATIVE=ON` builds only this one) |

At `import flatext`, `flatext/_native.py` asks a tiny library (`_isa/lib_flatext_cpu.so`:
libgcc's `__builtin_cpu_supports("x86-64-v4")`, which also checks that the operating system saves
the AVX-512 registers) which level the CPU has, and imports the best variant it can run as
`flatext._core`. `FLATEXT_DISPATCH=baseline|avx2|avx512|native` forces one (ImportError if it is not
built or the CPU cannot run it: it would die with an illegal instruction); `flatext.info()` reports
`dispatch`, `dispatch_available`, `dispatch_runnable` and `cpu_level`. `-DFLATEXT_DISPATCH_VARIANTS=...`
chooses the variants at build time (`tools/sanitize.sh` builds `baseline` only).

Why copies of the whole module rather than function multiversioning or per-ISA translation units:
the elementwise passes are Eigen expressions and templates of the header-only core, instantiated
inline all over the kernels. Compiling some translation units with `-mavx2` and others without
gives the same (inline, weak) template instances two bodies, and the linker keeps one of them:
an AVX2 body can then be called on a CPU without AVX2 (an ODR violation that shows as SIGILL on old
CPUs only). `target_clones` multiversioning applies to one function, not to the templates it
instantiates. A SIMD library (Highway, xsimd) would mean rewriting the passes. Whole-module copies
need no change in the core, cannot mix ISAs (each copy is self-contained, with hidden symbols,
loaded alone), and every variant is tested against the baseline (`tests/test_dispatch.py`: 1e-12
relative on every kernel, bit-identical for 1 and 2 threads within a variant). All variants are
built with `-ffp-contract=off`: the compiler does not fuse the passes' `a * b + c` into FMAs, so
the variants round the passes' operations alike; Eigen's own vectorized products and reductions
(outside the OpenBLAS GEMMs) still use wider packets and explicit FMA instructions in the `avx2` and
`avx512` variants, so results differ from `baseline` in the last bits (at most 4e-16 relative
measured on the trace, its gradient, hvp and loss_grad; the test allows 1e-12). The cost is build
time and size: three copies of the module (about 1 MB each), about 1m50 s of compiler time each
(7 min of CPU for four variants here, 25 min of wall time on this shared, heavily loaded 2-core VM;
estimated from the CPU time: about 3 min for the default three on an idle 2-core machine). Link-time
optimization (pybind11's default) is a large part of it.

What the comparison with `-march=native` found: on this AMD EPYC (AVX-512; GCC 12 tunes
`-march=native` for znver3) the variants matched within noise except `hvp` in float32, where the
`native` build ran 1.3-1.6x faster than `avx512`, `avx2` and `baseline` alike. The cause was one loop
(the first pass over a tile in `hvp`, reading `a` and `va` through `Eigen::Ref`): GCC vectorized it
only with gather instructions, which its znver3 tuning allows and its generic tuning (the portable
variants) does not. Reading `a` and `va` through plain `__restrict` pointers makes it vectorize with
plain loads under every tuning: hvp float32 at (2048, 128, 512), 1 thread, in a standalone build of
the headers went from 41-44 ms (x86-64-v4) and 28-32 ms (native) to 22-26 ms (x86-64-v4 and -v3),
medians of 25 calls on the loaded machine."""

NOTES = """## Notes

- Timings on a shared 2-core VM drift by tens of percent between runs; compare ratios measured in the
  same process, and re-run on a quiet machine before drawing conclusions from a single miss.
- The GEMM floor is numpy's OpenBLAS; flatext's kernels run their own GEMMs through the `scipy-openblas32`
  OpenBLAS, single-threaded inside fixed row tiles, with OpenMP over the tiles (see `cpp/include/flatext/gemm.hpp`,
  `tiling.hpp`). `hessian_trace` needs one GEMM-equivalent, `hessian_trace_grad` and `loss_grad` two, `hvp`
  three; the elementwise passes between them are the rest.
"""


if __name__ == "__main__":
    sys.exit(main())
