"""Flattest-interpolator search: flatext against the same algorithm in plain PyTorch.

Times one search iteration (projected-gradient step: trace gradient, Gram
matrix K, Cholesky, tangent projection, line search with retraction,
balance) and a whole search (Gauss-Newton projection of a random start, then
``--iters`` steps; ``--iters-large`` at the largest size), at n=1024, d=64,
m=1024 and a smaller (256, 32, 256) and a larger (2048, 64, 2048) size.
Costs are also given in GEMM-equivalents: the median time of numpy ``X @ W.T``
of the same shape, measured in the same process.

The PyTorch baseline is the algorithm as a researcher would write it: the
trace formula in torch with autograd for its gradient, ``torch.func.jvp`` and
``torch.autograd.grad`` for J v and J^T u, K from its closed form with dense
n x m matrices, ``torch.linalg.cholesky`` / ``cholesky_solve`` for the solves;
same step rule, line search, retraction and balance as flatext.

Usage::

    python benchmarks/bench_search.py            # sizes 256/1024/2048, p = 2
    python benchmarks/bench_search.py --quick    # sizes 128/512, few repeats
    python benchmarks/bench_search.py --power 1  # ReLU
    python benchmarks/bench_search.py --scale --sizes 1000 2000 4000 8000   # d=20, m=2n, ReLU,
                                                 # Cholesky vs CG per iteration, whole search up to --whole-max
    python benchmarks/bench_search.py --methods scale [--sizes 1000 2000] [--noise 0 0.3]
    python benchmarks/bench_search.py --methods planted
                                                 # the manifold search beside the cell-sparse method
                                                 # (benchmarks/bench_methods.py)

Timings on a shared machine are noisy: compare ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import flatext as fx  # noqa: E402
import numpy as np  # noqa: E402
from flatext._native import _core  # noqa: E402


def median_time(fn, repeats, warmup=1, with_min=False):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return (statistics.median(ts), min(ts)) if with_min else statistics.median(ts)


def problem(n, d, m, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    y = np.maximum(X @ u, 0.0)
    W = rng.standard_normal((m, d)) / np.sqrt(d)
    a = rng.standard_normal(m) / np.sqrt(m)
    return W, a, X, y


# ---------------------------------------------------------------- PyTorch baseline
class TorchSearch:
    def __init__(self, X, y, p, c, tol=1e-10, lambda_rel=1e-10, retract_iter=6):
        import torch

        self.torch = torch
        self.X = torch.from_numpy(X)
        self.y = torch.from_numpy(y)
        self.s = (self.X * self.X).sum(1)
        self.n = X.shape[0]
        self.p, self.c = float(p), float(c)
        self.target = tol * max(1.0, float(np.abs(y).max()))
        self.tol = tol
        self.lambda_rel = lambda_rel
        self.retract_iter = retract_iter

    def sig(self, z, k):
        torch = self.torch
        p, c = self.p, self.c
        coef = 1.0
        for j in range(k):
            coef *= p - j
        if coef == 0.0:
            return torch.zeros_like(z)
        e = p - k
        pos = z > 0
        negm = z < 0
        zp = torch.where(pos, z, torch.ones_like(z))
        zm = torch.where(negm, -z, torch.ones_like(z))
        out = torch.where(pos, zp**e, torch.zeros_like(z))
        out = out + ((-1) ** k) * c * torch.where(negm, zm**e, torch.zeros_like(z))
        return coef * out

    def f(self, W, a):
        return self.sig(self.X @ W.T, 0) @ a

    def residual(self, W, a):
        return self.f(W, a) - self.y

    def trace(self, W, a):
        Z = self.X @ W.T
        S0, S1, S2 = self.sig(Z, 0), self.sig(Z, 1), self.sig(Z, 2)
        r = S0 @ a - self.y
        return ((S0**2).sum() + ((S1**2) @ (a**2) * self.s).sum() + (r * self.s * (S2 @ a)).sum()) / self.n

    def trace_grad(self, W, a):
        W = W.detach().requires_grad_(True)
        a = a.detach().requires_grad_(True)
        T = self.trace(W, a)
        gW, ga = self.torch.autograd.grad(T, (W, a))
        return T.detach(), gW, ga

    def gram(self, W, a):
        Z = self.X @ W.T
        S = self.sig(Z, 0)
        Da = self.sig(Z, 1) * a
        return S @ S.T + (self.X @ self.X.T) * (Da @ Da.T)

    def jvp(self, W, a, VW, va):
        return self.torch.func.jvp(self.f, (W, a), (VW, va))[1]

    def vjp(self, W, a, u):
        W = W.detach().requires_grad_(True)
        a = a.detach().requires_grad_(True)
        return self.torch.autograd.grad(self.f(W, a), (W, a), u)

    def factor(self, K, lam):
        torch = self.torch
        A = K + lam * torch.eye(K.shape[0], dtype=K.dtype)
        L, info = torch.linalg.cholesky_ex(A)
        return L if int(info) == 0 else None

    def solve(self, L, b):
        return self.torch.cholesky_solve(b[:, None], L)[:, 0]

    def project(self, W, a, max_iter=200, lambda_init=1e-3):
        r = self.residual(W, a)
        rn2 = float(r @ r)
        lam = None
        it = 0
        while float(r.abs().max()) > self.target and it < max_iter:
            K = self.gram(W, a)
            mu = float(K.trace()) / self.n
            if lam is None:
                lam = lambda_init * mu
            while True:
                if lam > 1e8 * mu:
                    raise RuntimeError("torch projection: lambda blew up")
                L = self.factor(K, lam)
                if L is None:
                    lam *= 10
                    continue
                gW, ga = self.vjp(W, a, self.solve(L, r))
                Wn, an = W - gW, a - ga
                rn = self.residual(Wn, an)
                if bool(torch_isfinite(rn)) and float(rn @ rn) < rn2:
                    W, a, r, rn2 = Wn, an, rn, float(rn @ rn)
                    lam = max(lam / 10, 1e-12 * mu)
                    break
                lam *= 10
            it += 1
        return W, a, float(r.abs().max()) <= self.target

    def retract(self, Wb, ab, L, W, a):
        r = self.residual(W, a)
        rmax, rn = float(r.abs().max()), float(r.norm())
        it = 0
        while rmax > self.target and it < self.retract_iter:
            it += 1
            gW, ga = self.vjp(Wb, ab, self.solve(L, r))
            Wn, an = W - gW, a - ga
            r2 = self.residual(Wn, an)
            if not float(r2.norm()) < 0.7 * rn:
                break
            W, a, r, rn, rmax = Wn, an, r2, float(r2.norm()), float(r2.abs().max())
        if rmax <= self.target:
            return W, a, True
        # exact minimum-norm correction of a alone (f is linear in a)
        S = self.sig(self.X @ W.T, 0)
        SS = S @ S.T
        Ls = self.factor(SS, 1e-13 * float(SS.trace()) / self.n)
        if Ls is not None:
            for _ in range(3):
                if rmax <= self.target:
                    break
                an = a - S.T @ self.solve(Ls, r)
                r2 = self.residual(W, an)
                if not float(r2.norm()) < rn:
                    break
                a, r, rn, rmax = an, r2, float(r2.norm()), float(r2.abs().max())
        if rmax <= self.target:
            return W, a, True
        try:
            return self.project(W, a, max_iter=20, lambda_init=1e-9)
        except RuntimeError:
            return W, a, False

    def balance(self, W, a):
        torch = self.torch
        Z = self.X @ W.T
        S0, S1, S2 = self.sig(Z, 0), self.sig(Z, 1), self.sig(Z, 2)
        r = S0 @ a - self.y
        A = (S0**2).mean(0)
        B = (a**2) * ((S1**2) * self.s[:, None]).mean(0) + a * ((r * self.s) @ S2) / self.n
        B = B.clamp(min=0)
        p = self.p
        ok = (A > 0) & (B > 0)
        t = torch.where(
            ok,
            (torch.where(ok, B, torch.ones_like(B)) / (p * torch.where(ok, A, torch.ones_like(A))))
            ** (1 / (2 * p + 2)),
            torch.ones_like(A),
        )
        W2 = W * t[:, None]
        a2 = a * t ** (-p)
        W2 = torch.where((a == 0)[:, None], torch.zeros_like(W2), W2)
        return W2, a2

    def step(self, W, a, eta_prev, gtol=1e-4):
        torch = self.torch
        T0, gW, ga = self.trace_grad(W, a)
        T0 = float(T0)
        K = self.gram(W, a)
        mu = float(K.trace()) / self.n
        lam = self.lambda_rel * mu
        L = self.factor(K, lam)
        while L is None:
            lam *= 10
            L = self.factor(K, lam)
        cW, ca = self.vjp(W, a, self.solve(L, self.jvp(W, a, gW, ga)))
        gtW, gta = gW - cW, ga - ca
        gt2 = float((gtW**2).sum() + (gta**2).sum())
        g_norm = float(torch.sqrt((gW**2).sum() + (ga**2).sum()))
        if not np.sqrt(gt2) > gtol * g_norm:
            return W, a, T0, 0.0, False
        eta = 2 * eta_prev
        if not eta > 0:
            th = float(torch.sqrt((W**2).sum() + (a**2).sum()))
            eta = min(0.1 * abs(T0) / gt2, 0.05 * th / np.sqrt(gt2))
        for _ in range(31):
            Wt, at = W - eta * gtW, a - eta * gta
            Wt, at, ok = self.retract(W, a, L, Wt, at)
            if ok:
                Tn = float(self.trace(Wt, at))
                if Tn <= T0 - 1e-4 * eta * gt2:
                    Wb, ab = self.balance(Wt, at)
                    return Wb, ab, float(self.trace(Wb, ab)), eta, True
            eta *= 0.5
        return W, a, T0, 0.0, False

    def search(self, W0, a0, iters, ftol=1e-6, patience=5):
        torch = self.torch
        with torch.no_grad():
            W, a = torch.from_numpy(W0.copy()), torch.from_numpy(a0.copy())
        W, a, ok = self.project(W, a)
        if not ok:
            raise RuntimeError("torch projection failed")
        W, a = self.balance(W, a)
        traces = [float(self.trace(W, a))]
        eta = 0.0
        for _ in range(iters):
            W, a, T, eta, acc = self.step(W, a, eta)
            if not acc:
                break
            traces.append(T)
            if len(traces) > patience and traces[-1 - patience] - traces[-1] <= ftol * abs(traces[-1]):
                break
        return W, a, traces


def torch_isfinite(x):
    import torch

    return torch.isfinite(x).all()


# ---------------------------------------------------------------- driver
def run(n, d, m, iters, repeats, p, c, do_torch):
    """One table row. Whole searches run ``iters`` iterations (fewer if a stopping rule fires)."""
    import torch

    W0, a0, X, y = problem(n, d, m)
    tol = 1e-10
    Wn, an = W0[:, :], a0
    gemm, gemm_min = median_time(lambda: X @ Wn.T, 25, warmup=3, with_min=True)
    # start point shared by both one-iteration timings: projected and balanced by flatext
    start = fx.find_interpolator(W0, a0, X, y, power=p, neg=c, tol=tol)
    Ws, as_ = fx.balance(start.W, start.a, X, y, power=p, neg=c)
    kw = dict(X=X, y=y, power=p, neg=c, tol=tol, gtol=1e-4, solver="cholesky")
    s0 = _core.search_step(Ws, as_, **kw)
    eta = s0.eta
    t_step = median_time(lambda: _core.search_step(Ws, as_, eta=eta, **kw), repeats)
    t0 = time.perf_counter()
    res = fx.flattest_interpolator(W0, a0, X, y, power=p, neg=c, tol=tol, max_iter=iters)
    t_search = time.perf_counter() - t0
    row = dict(
        n=n,
        d=d,
        m=m,
        gemm_ms=1e3 * gemm,
        gemm_min_ms=1e3 * gemm_min,
        fx_step_ms=1e3 * t_step,
        fx_step_gemm=t_step / gemm,
        fx_search_s=t_search,
        fx_iters=res.iterations,
        fx_trace=res.trace,
    )
    if do_torch:
        ts = TorchSearch(X, y, p, c, tol=tol)
        Wt, at = torch.from_numpy(Ws.copy()), torch.from_numpy(as_.copy())
        t_tstep = median_time(lambda: ts.step(Wt, at, eta / 2), max(1, repeats // 2))
        t0 = time.perf_counter()
        _, _, traces = ts.search(W0, a0, iters)
        t_tsearch = time.perf_counter() - t0
        row.update(
            torch_step_ms=1e3 * t_tstep,
            torch_search_s=t_tsearch,
            torch_iters=len(traces) - 1,
            torch_trace=traces[-1],
            step_ratio=t_tstep / t_step,
            search_ratio=t_tsearch / t_search,
            trace_rel_diff=abs(traces[-1] - res.trace) / res.trace,
        )
    return row


# ---------------------------------------------------------------- scale
def scale_problem(n, d, seed=0):
    """Gaussian inputs, labels from a sum of three ReLU single-index teachers; start N(0, 1/d), N(0, 1/m)."""
    from flatext import teachers

    t = teachers.SumOfSingleIndex.random(d, ["relu", "relu", "relu"], seed=seed)
    X, y = t.sample(n, seed=seed + 1)
    rng = np.random.default_rng(seed + 2)
    m = 2 * n
    return X, y, rng.standard_normal((m, d)) / np.sqrt(d), rng.standard_normal(m) / np.sqrt(m)


def _rss_mb():
    """Resident memory of this process now (MB)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _reset_peak():
    """Resets the kernel's peak-RSS mark of this process (Linux >= 4.0: /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak_mb():
    """Peak resident memory of this process since the last _reset_peak (MB)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_scale(n, d, solver, steps, whole, max_iter, rank=None):
    """Per-iteration time (median over ``steps`` chained search steps from a projected, balanced start)
    and optionally the whole search's time (random start -> projection -> flattest, its own stopping rule).
    ``mem_mb``: peak resident memory beyond the inputs, from the start of the projection on."""
    X, y, W0, a0 = scale_problem(n, d)
    kw = {} if rank is None else {"cg_rank": rank}
    Wn = W0
    gemm = median_time(lambda: X @ Wn.T, 9, warmup=2)
    rss0 = _rss_mb()  # after the GEMM timing, whose n x m output is freed again
    _reset_peak()
    t0 = time.perf_counter()
    start = fx.find_interpolator(W0, a0, X, y, solver=solver, **kw)
    t_proj = time.perf_counter() - t0
    W, a = fx.balance(start.W, start.a, X, y)
    ts, eta, u, kry = [], 0.0, None, []
    for _ in range(steps):
        t0 = time.perf_counter()
        s = _core.search_step(W, a, X, y, 1.0, 0.0, eta=2 * eta, gtol=1e-4, solver=solver, u0=u, **kw)
        ts.append(time.perf_counter() - t0)
        kry.append(s.krylov_iters)
        if not s.accepted:
            break
        W, a, u, eta = s.W, s.a, s.u, s.eta
    row = dict(
        n=n,
        d=d,
        m=2 * n,
        solver=solver,
        gemm_ms=1e3 * gemm,
        proj_s=t_proj,
        step_s=statistics.median(ts),
        step_gemm=statistics.median(ts) / gemm,
        cg_iters=statistics.median(kry),
    )
    if whole:
        t0 = time.perf_counter()
        res = fx.flattest_interpolator(W0, a0, X, y, solver=solver, max_iter=max_iter, **kw)
        row.update(
            search_s=time.perf_counter() - t0,
            iters=res.iterations,
            reason=res.reason,
            trace=res.orbit_min_trace,
            grad_ratio=res.grad_ratio,
        )
    row["mem_mb"] = _peak_mb() - rss0
    return row


def main_scale(args):
    print(
        f"flatext {fx.__version__}, threads {fx.get_num_threads()}, float64, ReLU, d={args.d}, m=2n; "
        f"load average at start {os.getloadavg()[0]:.1f}: medians"
    )
    for n in args.sizes:
        for solver in args.solvers:
            if solver == "cholesky" and n > 4096:
                continue
            r = run_scale(n, args.d, solver, args.steps, n <= args.whole_max, args.max_iter, args.rank)
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()), flush=True)


def main():
    import sys

    if "--methods" in sys.argv:  # the manifold search beside the cell-sparse method
        from bench_methods import main as main_methods

        return main_methods(sys.argv[1:])
    if "--scale" in sys.argv:
        ap = argparse.ArgumentParser(description="search scaling: per-iteration and whole-search time")
        ap.add_argument("--scale", action="store_true")
        ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
        ap.add_argument("--d", type=int, default=20)
        ap.add_argument("--solvers", nargs="+", default=["cholesky", "cg"])
        ap.add_argument("--steps", type=int, default=3)
        ap.add_argument("--whole-max", type=int, default=2000, help="whole searches up to this n")
        ap.add_argument("--max-iter", type=int, default=500)
        ap.add_argument("--rank", type=int, default=None, help="cg_rank (default: flatext's)")
        return main_scale(ap.parse_args())
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    ap.add_argument("--iters", type=int, default=10, help="search iterations of the whole-search timing")
    ap.add_argument("--iters-large", type=int, default=3, help="the same for the largest size")
    ap.add_argument(
        "--power",
        type=float,
        default=2.0,
        help="activation degree (default 2: smooth, so both codes follow the same path; with ReLU "
        "the kinks of T make the two trajectories part after round-off-level differences)",
    )
    ap.add_argument("--neg", type=float, default=0.0)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="threads for flatext and torch (0: default)")
    args = ap.parse_args()
    import torch

    if args.threads > 0:
        fx.set_num_threads(args.threads)
    torch.set_num_threads(fx.get_num_threads())
    torch.set_default_dtype(torch.float64)
    if args.quick:
        sizes, repeats = [(128, 16, 128), (512, 32, 512)], 3
    else:
        sizes, repeats = [(256, 32, 256), (1024, 64, 1024), (2048, 64, 2048)], 5
    print(
        f"flatext {fx.__version__} ({_core.blas_backend}), torch {torch.__version__}, threads "
        f"{fx.get_num_threads()}, float64, activation p={args.power} neg={args.neg}; NOISY shared machine"
    )
    hdr = (
        f"{'n':>5} {'d':>4} {'m':>5} | {'GEMM ms':>8} {'(min)':>6} | {'fx step ms':>10} {'(GEMM-eq)':>9} | "
        f"{'torch step ms':>13} {'ratio':>6} | {'fx search s':>11} {'it':>3} {'torch search s':>14} {'it':>3} "
        f"{'ratio':>6} | {'fx trace':>10} {'torch trace':>11} {'rel diff':>8}"
    )
    print(hdr)
    print("-" * len(hdr))
    for k, (n, d, m) in enumerate(sizes):
        iters = args.iters_large if (k == len(sizes) - 1 and not args.quick) else args.iters
        r = run(n, d, m, iters, repeats if k < 2 else 2, args.power, args.neg, not args.no_torch)
        line = f"{n:>5} {d:>4} {m:>5} | {r['gemm_ms']:>8.2f} {r['gemm_min_ms']:>6.2f} | {r['fx_step_ms']:>10.1f} {r['fx_step_gemm']:>9.1f} | "
        if "torch_step_ms" in r:
            line += (
                f"{r['torch_step_ms']:>13.1f} {r['step_ratio']:>6.1f} | {r['fx_search_s']:>11.2f} "
                f"{r['fx_iters']:>3} {r['torch_search_s']:>14.2f} {r['torch_iters']:>3} "
                f"{r['search_ratio']:>6.1f} | {r['fx_trace']:>10.5g} {r['torch_trace']:>11.5g} "
                f"{r['trace_rel_diff']:>8.1e}"
            )
        else:
            line += f"{'-':>13} {'-':>6} | {r['fx_search_s']:>11.2f} {r['fx_iters']:>3} | {r['fx_trace']:>10.5g}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
