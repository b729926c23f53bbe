#!/usr/bin/env python
"""Cost of one flatness-regularized training step in PyTorch: flatext.torch vs plain PyTorch.

One step = the loss L, the Hessian trace T and the gradients of both with
respect to (W, a), for ``f(x) = a . relu(W x)^2`` (ReLU^2, so the trace has a
residual part) at (n, d, m) = (2048, 128, 512), float64, in one process:

- ``flatext.torch``: ``regularized_loss(W, a, X, y, lam)`` forward + backward
  (today ``loss_grad`` + ``hessian_trace_grad``; one pass with ``flatext.objective``).
- the same kernels called directly from numpy (the adapter's overhead is the difference).
- Hutchinson-100 in plain PyTorch: ``(1/K) sum_k v_k^T H v_k`` with Rademacher
  ``v_k``, each ``H v`` by double backward (``create_graph=True``), then one more
  backward for the estimate's gradient; its error against the exact value and gradient.
- the exact trace in plain PyTorch by double backward needs one HVP per basis vector
  (P = m (d + 1) = 66,048 of them): timed on a small case, where it is also
  checked against flatext, and extrapolated at full size as P/100 times the
  Hutchinson-100 step (same per-probe work).
- numpy's ``X @ W.T`` of the same shapes, as the unit.

And the adapter's overhead on a tiny network (n, d, m) = (8, 3, 4): median per
call of ``flatext.torch.hessian_trace`` forward + backward minus that of
``flatext.hessian_trace_grad`` on numpy arrays (target <= 30 us).

Usage: ``python benchmarks/bench_frameworks.py [--quick] [--probes K] [--out docs/frameworks.md]``
(prints a markdown table; ``--out`` replaces the block between the markers in that file).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

_common.prepare_env()

import flatext as fx  # noqa: E402
import flatext.torch as fxt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

BEGIN, END = "<!-- bench_frameworks:begin -->", "<!-- bench_frameworks:end -->"


def problem(n, d, m, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    W = torch.randn(m, d, generator=g, dtype=torch.float64) / d**0.5
    a = torch.randn(m, generator=g, dtype=torch.float64) / m
    y = torch.randn(n, generator=g, dtype=torch.float64)
    return W, a, X, y


def torch_loss(W, a, X, y):
    return 0.5 * torch.mean((torch.relu(X @ W.T) ** 2 @ a - y) ** 2)


def med(fn, reps, warmup=1):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def flatext_step(W, a, X, y, lam):
    Wg, ag = W.clone().requires_grad_(True), a.clone().requires_grad_(True)
    v, lo, tr = fxt.regularized_loss(Wg, ag, X, y, lam, which="trace", power=2.0, return_parts=True)
    v.backward()
    return lo, tr, Wg.grad, ag.grad


def hutchinson_step(W, a, X, y, lam, K, seed=0):
    """L + lam * (Hutchinson-K estimate of T) and its gradient, in plain PyTorch."""
    Wg, ag = W.clone().requires_grad_(True), a.clone().requires_grad_(True)
    L = torch_loss(Wg, ag, X, y)
    gW, ga = torch.autograd.grad(L, (Wg, ag), create_graph=True)
    g = torch.Generator().manual_seed(seed)
    est = 0.0
    for _ in range(K):
        vW = torch.randint(0, 2, W.shape, generator=g, dtype=torch.float64) * 2 - 1
        va = torch.randint(0, 2, a.shape, generator=g, dtype=torch.float64) * 2 - 1
        HW, ha = torch.autograd.grad((gW * vW).sum() + (ga * va).sum(), (Wg, ag), create_graph=True)
        est = est + ((HW * vW).sum() + (ha * va).sum()) / K
    (L + lam * est).backward()
    return float(est.detach()), Wg.grad, ag.grad


def exact_double_backward_trace(W, a, X, y, lam):
    """T and the gradient of L + lam T by one HVP per basis vector (plain PyTorch)."""
    Wg, ag = W.clone().requires_grad_(True), a.clone().requires_grad_(True)
    L = torch_loss(Wg, ag, X, y)
    gW, ga = torch.autograd.grad(L, (Wg, ag), create_graph=True)
    tr = 0.0
    for k in range(W.numel()):
        tr = tr + torch.autograd.grad(gW.reshape(-1)[k], Wg, create_graph=True)[0].reshape(-1)[k]
    for k in range(a.numel()):
        tr = tr + torch.autograd.grad(ga[k], ag, create_graph=True)[0][k]
    (L + lam * tr).backward()
    return float(tr), Wg.grad, ag.grad


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="(512, 32, 128) and 20 probes")
    ap.add_argument("--probes", type=int, default=100)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--out", default=None, help="markdown file whose marked block is replaced by the results")
    args = ap.parse_args(argv)
    n, d, m = (512, 32, 128) if args.quick else (2048, 128, 512)
    K = 20 if args.quick else args.probes
    lam = 1e-3
    W, a, X, y = problem(n, d, m)
    Wn, an, Xn, yn = (t.numpy() for t in (W, a, X, y))
    P = m * (d + 1)
    rows = []

    t_gemm = med(lambda: Xn @ Wn.T, args.reps * 3)
    _, tr, fW, fa = flatext_step(W, a, X, y, lam)
    t_fxt = med(lambda: flatext_step(W, a, X, y, lam), args.reps)

    def direct():
        fx.loss_grad(Wn, an, Xn, yn, power=2.0)
        fx.hessian_trace_grad(Wn, an, Xn, yn, power=2.0)

    t_np = med(direct, args.reps)
    # exact gradient of L + lam T, for the estimate's error
    gref = torch.cat([fW.reshape(-1), fa])
    t0 = time.perf_counter()
    est, hW, ha = hutchinson_step(W, a, X, y, lam, K)
    t_hut = time.perf_counter() - t0
    t_hut2 = med(lambda: hutchinson_step(W, a, X, y, lam, K, seed=1), 1, warmup=0)
    t_hut = min(t_hut, t_hut2)
    ghut = torch.cat([hW.reshape(-1), ha])
    # error of the estimate's gradient of lam*T alone: subtract the (exact) loss gradient from both
    Wg, ag = W.clone().requires_grad_(True), a.clone().requires_grad_(True)
    gl = torch.cat([x.reshape(-1) for x in torch.autograd.grad(torch_loss(Wg, ag, X, y), (Wg, ag))])
    err_val = abs(est - float(tr)) / abs(float(tr))
    err_grad = float(torch.linalg.norm((ghut - gl) - (gref - gl)) / torch.linalg.norm(gref - gl))

    # exact double backward on a small case, checked against flatext
    ns, ds, ms = 64, 6, 8
    Ws, as_, Xs, ys = problem(ns, ds, ms, seed=3)
    trs, sW, sa = exact_double_backward_trace(Ws, as_, Xs, ys, lam)
    _, ftr, fsW, fsa = flatext_step(Ws, as_, Xs, ys, lam)
    small_err = max(
        abs(trs - float(ftr)) / abs(float(ftr)),
        float(
            torch.linalg.norm(torch.cat([sW.reshape(-1), sa]) - torch.cat([fsW.reshape(-1), fsa]))
            / torch.linalg.norm(torch.cat([fsW.reshape(-1), fsa]))
        ),
    )
    t_exact_small = med(lambda: exact_double_backward_trace(Ws, as_, Xs, ys, lam), 1, warmup=0)
    t_fxt_small = med(lambda: flatext_step(Ws, as_, Xs, ys, lam), args.reps * 3)
    t_exact_extrap = t_hut * P / K

    # adapter overhead on a tiny network
    Wt, at, Xt, yt = problem(8, 3, 4, seed=5)
    Wtn, atn, Xtn, ytn = (t.numpy() for t in (Wt, at, Xt, yt))
    Wtg, atg = Wt.clone().requires_grad_(True), at.clone().requires_grad_(True)

    def tiny_torch():
        fxt.hessian_trace(Wtg, atg, Xt, yt, power=2.0).backward()

    def tiny_np():
        fx.hessian_trace_grad(Wtn, atn, Xtn, ytn, power=2.0)

    class Nothing(torch.autograd.Function):  # PyTorch's own floor for any custom Function
        @staticmethod
        def forward(ctx, W, a):
            return torch.zeros((), dtype=W.dtype)

        @staticmethod
        def backward(ctx, g):
            return torch.zeros_like(Wtg), torch.zeros_like(atg)

    def tiny_nothing():
        Nothing.apply(Wtg, atg).backward()

    def tiny_fwd():
        fxt.hessian_trace(Wt, at, Xt, yt, power=2.0)

    def tiny_np_value():
        fx.hessian_trace(Wtn, atn, Xtn, ytn, power=2.0)

    fns = (tiny_torch, tiny_np, tiny_nothing, tiny_fwd, tiny_np_value)
    tt = [[med(f, 2000) for f in fns] for _ in range(2)]  # two interleaved rounds, best of each
    t_tiny_torch, t_tiny_np, t_nothing, t_fwd, t_np_value = (min(r[k] for r in tt) for k in range(len(fns)))

    ms_ = lambda t: f"{t * 1e3:.1f} ms" if t < 10 else f"{t:.1f} s"  # noqa: E731
    rows.append(("numpy `X @ W.T` (unit)", ms_(t_gemm), "1.0x", "exact"))
    rows.append(("flatext.torch `regularized_loss` + backward", ms_(t_fxt), f"{t_fxt / t_gemm:.1f}x", "exact"))
    rows.append(("flatext numpy `loss_grad` + `hessian_trace_grad`", ms_(t_np), f"{t_np / t_gemm:.1f}x", "exact"))
    rows.append(
        (
            f"PyTorch Hutchinson-{K} + gradient (double backward)",
            ms_(t_hut),
            f"{t_hut / t_gemm:.0f}x",
            f"T {100 * err_val:.1f}% off, grad of T {100 * err_grad:.0f}% off",
        )
    )
    rows.append(
        (
            f"PyTorch exact trace by double backward (P = {P} HVPs; extrapolated P/{K} x Hutchinson-{K})",
            f"~{t_exact_extrap / 3600:.1f} h",
            f"~{t_exact_extrap / t_gemm:.1e}x",
            "exact",
        )
    )
    lines = [
        f"One regularized step (L, T and both gradients), ReLU^2, float64, (n, d, m) = ({n}, {d}, {m}), "
        f"P = {P} parameters; medians of {args.reps} runs (Hutchinson: best of 2), one process, torch "
        f"{torch.__version__} with {torch.get_num_threads()} threads, flatext with {fx.get_num_threads()} threads.",
        "",
        "| method | time | / GEMM | accuracy |",
        "|---|---|---|---|",
        *[f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} |" for r in rows],
        "",
        f"- flatext.torch vs Hutchinson-{K} with gradient: **{t_hut / t_fxt:.0f}x faster** (target >= 50x), "
        f"and exact; vs the extrapolated exact double backward: ~{t_exact_extrap / t_fxt:.1e}x.",
        f"- Exact double backward measured on a small case (n, d, m) = ({ns}, {ds}, {ms}), "
        f"P = {ms * (ds + 1)}: {ms_(t_exact_small)} vs flatext.torch {t_fxt_small * 1e6:.0f} us "
        f"({t_exact_small / t_fxt_small:.0f}x); values and gradients agree to {small_err:.1e}.",
        f"- Adapter overhead, tiny network (8, 3, 4): flatext.torch.hessian_trace forward + backward "
        f"{t_tiny_torch * 1e6:.1f} us vs flatext.hessian_trace_grad on numpy {t_tiny_np * 1e6:.1f} us: "
        f"**{(t_tiny_torch - t_tiny_np) * 1e6:.1f} us** per call (target <= 30 us), of which "
        f"{t_nothing * 1e6:.1f} us is PyTorch's floor (forward + backward of a custom Function that does nothing); "
        f"forward alone (no grad) {t_fwd * 1e6:.1f} us vs flatext.hessian_trace {t_np_value * 1e6:.1f} us: "
        f"{(t_fwd - t_np_value) * 1e6:.1f} us.",
        f"- Machine: loadavg {_common.loadavg()} at the end (shared, 2 cores: noisy); "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out) as fh:
            doc = fh.read()
        i, j = doc.index(BEGIN), doc.index(END)
        with open(args.out, "w") as fh:
            fh.write(doc[: i + len(BEGIN)] + "\n" + text + "\n" + doc[j:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
