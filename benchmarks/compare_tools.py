#!/usr/bin/env python
"""flatext's exact Hessian trace against the tools researchers use today.

On the same two-layer network and data, for several shapes, this measures
(median of several runs after warm-up) time, ratio to flatext, multiple of
numpy's GEMM ``X @ W.T``, and relative error against the exact trace of

* flatext ``hessian_trace`` (exact; one GEMM-equivalent);
* the exact trace through ``torch.func`` (forward-over-reverse HVPs against
  every basis vector, and the full ``jacfwd(jacrev)`` Hessian) where P is small;
* BackPACK ``DiagHessian`` summed and ``DiagGGNExact`` summed (exact for
  ReLU, p = 1; BackPACK has no extension for p >= 2);
* PyHessian's ``hessian(...).trace()`` (Hutchinson, Rademacher probes);
* Hutchinson through autograd HVPs (the PyHessian method, re-implemented so
  the probe count is exact) at 10, 100 and 1000 probes;
* curvlinops ``hutchpp_trace`` on ``HessianLinearOperator`` at matched
  matvec counts (9, 99, 999: Hutch++ needs a multiple of 3);
* flatext ``hessian_trace_grad`` against the exact gradient through
  ``torch.func`` (small P) and the double-backward autograd gradient of a
  Hutchinson estimate (10, 100, 1000 probes);
* numpy ``X @ W.T`` as the floor.

The PyTorch twin is ``nn.Linear(d, m, bias=False)``, the activation,
``nn.Linear(m, 1, bias=False)`` with flatext's (W, a) copied in. flatext's
loss is ``L = (1/(2n)) sum r^2``; ``nn.MSELoss`` (BackPACK, PyHessian,
curvlinops) on (n, 1) tensors is ``(1/n) sum r^2 = 2L``, so their traces and
gradients are halved. The script first checks that both losses equal
flatext's.

Exit status 1 if an exact tool disagrees with flatext beyond 1e-8 relative
(float64), if an estimator is further than 6 standard errors (from its own
probes) from flatext's value, or if the losses differ. Tools that are not
installed are skipped with a note. Writes ``docs/benchmarks.md``.

Usage::

    python benchmarks/compare_tools.py          # a few minutes
    python benchmarks/compare_tools.py --quick  # small shapes only
    python benchmarks/compare_tools.py --full   # up to n=8192, d=256, m=1024 (long: 1000-probe runs)
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

if __name__ == "__main__":
    _common.prepare_env()

import numpy as np  # noqa: E402

EXACT_RTOL = 1e-8
N_SIGMA = 6.0

SHAPES = {
    "quick": [(256, 16, 32), (1024, 32, 128)],
    "default": [(256, 16, 32), (2048, 128, 512)],
    "full": [(256, 16, 32), (1024, 32, 128), (2048, 128, 512), (8192, 256, 1024)],
}
POWERS = {"quick": [1.0, 2.0], "default": [1.0, 2.0], "full": [1.0, 2.0]}
PROBES = {"quick": [10, 100], "default": [10, 100, 1000], "full": [10, 100, 1000]}
BUDGET = {"quick": 30.0, "default": 60.0, "full": 1200.0}
# targets: shape -> (speed-up vs 100-probe Hutchinson, speed-up vs BackPACK DiagGGNExact)
SPEED_TARGETS = {(2048, 128, 512): (400.0, 7.0), (8192, 256, 1024): (150.0, 4.0)}

TOOLS = {}


def probe_tools():
    """Imports the optional anchors; a missing one is reported and skipped."""
    for name, mod in [
        ("torch", "torch"),
        ("backpack", "backpack"),
        ("pyhessian", "pyhessian"),
        ("curvlinops", "curvlinops"),
    ]:
        try:
            TOOLS[name] = __import__(mod)
        except Exception as exc:  # ImportError, or a broken install
            TOOLS[name] = None
            print(
                f"note: {name} is not installed or failed to import ({type(exc).__name__}: {exc}); skipping it",
                file=sys.stderr,
            )
    if TOOLS["torch"] is None:
        for k in ("backpack", "pyhessian", "curvlinops"):
            TOOLS[k] = None


def version(name):
    try:
        import importlib.metadata as md

        dist = {
            "torch": "torch",
            "backpack": "backpack-for-pytorch",
            "pyhessian": "pyhessian",
            "curvlinops": "curvlinops-for-pytorch",
        }[name]
        return md.version(dist)
    except Exception:
        return "?"


def make_problem(n, d, m, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((m, d)) / np.sqrt(d)
    a = rng.standard_normal(m) / np.sqrt(m)
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    return W, a, X, y


# --------------------------------------------------------------------------- torch twin


def torch_twin(W, a, power, neg):
    """nn.Sequential(Linear(d, m), activation, Linear(m, 1)) holding flatext's (W, a)."""
    import torch
    from torch import nn

    class Homogeneous(nn.Module):
        """sigma(z) = max(z,0)^p + neg * max(-z,0)^p."""

        def __init__(self, p, c):
            super().__init__()
            self.p, self.c = p, c

        def forward(self, z):
            out = torch.relu(z) ** self.p
            if self.c != 0.0:
                out = out + self.c * torch.relu(-z) ** self.p
            return out

    m, d = W.shape
    if power == 1.0 and neg == 0.0:
        act = nn.ReLU()
    elif power == 1.0 and neg < 0.0:
        act = nn.LeakyReLU(-neg)  # max(z,0) - alpha max(-z,0) = leaky ReLU of slope alpha
    else:
        act = Homogeneous(power, neg)
    l1, l2 = nn.Linear(d, m, bias=False), nn.Linear(m, 1, bias=False)
    with torch.no_grad():
        l1.weight.copy_(torch.from_numpy(W))
        l2.weight.copy_(torch.from_numpy(a[None, :]))
    return nn.Sequential(l1, act, l2).double()


def backpack_supported(power, neg):
    return power == 1.0 and neg <= 0.0


def torch_loss_fn(X, y, power, neg, m, d):
    """theta (flat [W.ravel(), a]) -> flatext's L, for torch.func."""
    import torch

    def sig(z):
        if power == 1.0 and neg == 0.0:
            return torch.relu(z)
        out = torch.relu(z) ** power
        return out + neg * torch.relu(-z) ** power if neg != 0.0 else out

    def L(theta):
        Wt = theta[: m * d].reshape(m, d)
        at = theta[m * d :]
        r = sig(X @ Wt.T) @ at - y
        return 0.5 * (r * r).mean()

    return L


# --------------------------------------------------------------------------- rows


class Row:
    def __init__(
        self,
        tool,
        method,
        probes="",
        time=float("nan"),
        runs=0,
        value=None,
        err=None,
        bound=None,
        ok=True,
        note="",
        kind="trace",
    ):
        self.__dict__.update(locals())
        del self.__dict__["self"]


def rel(x, ref):
    return abs(float(x) - float(ref)) / abs(float(ref))


def exact_row(tool, method, t, runs, value, ref, note="", kind="trace"):
    e = rel(value, ref)
    return Row(tool, method, "exact", t, runs, float(value), e, EXACT_RTOL, e <= EXACT_RTOL, note, kind)


def estimate_row(tool, method, probes, t, runs, value, ref, se, note="", kind="trace"):
    e = rel(value, ref)
    bound = N_SIGMA * se / abs(float(ref)) if se is not None and se == se else None
    ok = True if bound is None else e <= bound + 1e-10
    return Row(tool, method, probes, t, runs, float(value), e, bound, ok, note, kind)


def over_budget_row(tool, method, probes, proj, limit="budget", kind="trace"):
    """The row of a run left out because its projected time ``proj`` (seconds) exceeds the
    budget; ``limit`` words the budget in the note."""
    return Row(tool, method, probes, kind=kind, note=f"skipped: projected {proj:.0f} s > {limit}")


def budget_repeats(proj, budget):
    """Timing repeats for a run projected to take ``proj`` seconds: 3 when three of them fit in a
    third of the budget, else 1."""
    return 3 if proj * 3 <= budget / 3 else 1


def rademacher_like(params, gen):
    import torch

    out = []
    for p in params:
        v = torch.randint(0, 2, p.shape, generator=gen, dtype=torch.int64).to(p.dtype)
        out.append(v.mul_(2).sub_(1))
    return out


def hutchinson_values(model, Xt, y2, K, seed):
    """K Rademacher probe values v^T H v through autograd HVPs (PyHessian's method:
    one create_graph backward, then one backward of the gradient per probe)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    params = list(model.parameters())
    loss = 0.5 * ((model(Xt) - y2) ** 2).mean()
    grads = torch.autograd.grad(loss, params, create_graph=True)
    vals = np.empty(K)
    for k in range(K):
        v = rademacher_like(params, gen)
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
        vals[k] = float(sum((h * u).sum() for h, u in zip(hv, v)))
    return vals


def hutchinson_grad(model, Xt, y2, K, seed):
    """Double-backward autograd gradient of the K-probe Hutchinson estimate of the
    trace: mean_k grad_theta (v_k^T H(theta) v_k). Returns (mean grad, sum of the
    per-coordinate variances / K) as flat numpy arrays / float."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    params = list(model.parameters())
    loss = 0.5 * ((model(Xt) - y2) ** 2).mean()
    grads = torch.autograd.grad(loss, params, create_graph=True)
    s = s2 = None
    for _ in range(K):
        v = rademacher_like(params, gen)
        hv = torch.autograd.grad(grads, params, grad_outputs=v, create_graph=True)
        t = sum((h * u).sum() for h, u in zip(hv, v))
        gk = torch.autograd.grad(t, params, retain_graph=True)
        flat = torch.cat([gk[0].reshape(-1), gk[1].reshape(-1)]).numpy()
        s = flat.copy() if s is None else s + flat
        s2 = flat * flat if s2 is None else s2 + flat * flat
    mean = s / K
    var = np.maximum(s2 / K - mean * mean, 0.0) * K / max(K - 1, 1)
    return mean, float(var.sum() / K)


class ChunkedOperator:
    """Duck-typed square operator for curvlinops' hutchpp_trace that multiplies
    ``chunk`` columns at a time (curvlinops vmaps over all columns at once,
    which needs columns x n x m memory)."""

    def __init__(self, op, chunk):
        self.op, self.chunk = op, max(1, int(chunk))
        self.shape, self.dtype, self.device = op.shape, op.dtype, op.device

    def __matmul__(self, M):
        import torch

        if M.ndim == 1:
            return self.op @ M
        return torch.cat([self.op @ M[:, k : k + self.chunk] for k in range(0, M.shape[1], self.chunk)], dim=1)


# --------------------------------------------------------------------------- one shape


def run_case(n, d, m, power, neg, args, mode, flatext, log):
    import torch

    torch.manual_seed(0)
    W, a, X, y = make_problem(n, d, m)
    P = m * (d + 1)
    kw = dict(power=power, neg=neg)
    rows, problems = [], []
    budget = args.budget if args.budget is not None else BUDGET[mode]
    probes = PROBES[mode] if args.probes is None else [int(k) for k in args.probes.split(",")]

    # floor and flatext
    WT = W.T
    t_gemm, r_gemm, _ = _common.timeit(lambda: X @ WT, repeats=args.repeats, warmup=2)
    t_fx, r_fx, T = _common.timeit(lambda: flatext.hessian_trace(W, a, X, y, **kw), repeats=args.repeats, warmup=2)
    T = float(T)
    rows.append(Row("numpy", "X @ W.T (floor)", "", t_gemm, r_gemm))
    rows.append(Row("flatext", "hessian_trace", "exact", t_fx, r_fx, T, 0.0, None, True))
    L_fx = float(flatext.loss(W, a, X, y, **kw))

    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    y2 = yt[:, None]
    model = torch_twin(W, a, power, neg)
    with torch.no_grad():
        L_t = float(0.5 * ((model(Xt) - y2) ** 2).mean())
        L_mse = float(torch.nn.MSELoss()(model(Xt), y2)) / 2
    for name, v in (("PyTorch twin 0.5*mean(r^2)", L_t), ("nn.MSELoss / 2", L_mse)):
        e = rel(v, L_fx)
        log(f"    loss check: {name} = {v:.15g} vs flatext {L_fx:.15g} (rel. {e:.1e})")
        if e > 1e-12:
            problems.append(f"loss mismatch ({name}): {e:.2e}")

    def add_exact(tool, method, fn, reps, note=""):
        try:
            t, r, v = _common.timeit(fn, repeats=reps, warmup=1, budget=budget)
        except Exception as exc:
            rows.append(Row(tool, method, note=f"failed: {type(exc).__name__}: {exc}", ok=False))
            problems.append(f"{tool} {method} failed: {exc}")
            return
        row = exact_row(tool, method, t, r, v, T, note)
        rows.append(row)
        if not row.ok:
            problems.append(f"{tool} {method}: rel. error {row.err:.2e} > {EXACT_RTOL:g}")

    # torch.func exact routes
    Lfun = torch_loss_fn(Xt, yt, power, neg, m, d)
    theta0 = torch.cat([torch.from_numpy(W).reshape(-1), torch.from_numpy(a)])
    work = float(P) * n * m * d
    if work <= args.exact_limit:
        from torch.func import grad, jvp, vmap

        gfun = grad(Lfun)
        chunk = int(max(1, min(P, 2e8 // (8 * 4 * n * m))))

        def basis_trace(theta=theta0):
            tot = torch.zeros((), dtype=torch.float64)
            hvp = lambda v: jvp(gfun, (theta,), (v,))[1]  # noqa: E731
            for s in range(0, P, chunk):
                e = min(P, s + chunk)
                E = torch.zeros(e - s, P, dtype=torch.float64)
                E[torch.arange(e - s), torch.arange(s, e)] = 1.0
                tot = tot + vmap(hvp)(E)[torch.arange(e - s), torch.arange(s, e)].sum()
            return tot

        add_exact("torch.func", f"HVPs against all {P} basis vectors", lambda: float(basis_trace()), 3)
        if P * n * m <= 3e7:
            from torch.func import jacfwd, jacrev

            add_exact(
                "torch.func",
                "jacfwd(jacrev) full Hessian, trace",
                lambda: float(torch.trace(jacfwd(jacrev(Lfun))(theta0))),
                3,
            )
    else:
        rows.append(
            Row(
                "torch.func",
                "exact (HVPs against all basis vectors)",
                note=f"skipped: P={P} HVPs too costly here (--exact-limit)",
            )
        )

    # BackPACK
    bp = TOOLS["backpack"]
    if bp is None:
        rows.append(Row("BackPACK", "DiagHessian / DiagGGNExact", note="not installed: skipped"))
    elif not backpack_supported(power, neg):
        rows.append(
            Row(
                "BackPACK",
                "DiagHessian / DiagGGNExact",
                note=f"no BackPACK extension for max(z,0)^{power:g}: no exact method (see autograd rows)",
            )
        )
    else:
        from backpack import backpack, extend
        from backpack.extensions import DiagGGNExact, DiagHessian

        bmodel = extend(torch_twin(W, a, power, neg))
        blossf = extend(torch.nn.MSELoss(reduction="mean"))

        def bp_trace(ext, attr):
            bmodel.zero_grad(set_to_none=True)
            loss = blossf(bmodel(Xt), y2)
            with backpack(ext()):
                loss.backward()
            return 0.5 * float(sum(getattr(p, attr).sum() for p in bmodel.parameters()))

        add_exact(
            "BackPACK",
            "DiagHessian, summed",
            lambda: bp_trace(DiagHessian, "diag_h"),
            args.repeats,
            note="MSELoss is 2L: halved",
        )
        add_exact(
            "BackPACK",
            "DiagGGNExact, summed",
            lambda: bp_trace(DiagGGNExact, "diag_ggn_exact"),
            args.repeats,
            note="= trace for ReLU (sigma''=0)",
        )

    # Hutchinson through autograd (own loop): one pass of max(probes) probes gives
    # the values for every prefix; the timings come from runs of exactly k probes.
    per_probe = None
    std_probe = None
    vals_all = None
    kmax = max(probes)
    t10, _, _ = _common.timeit(lambda: hutchinson_values(model, Xt, y2, 10, 1), repeats=1, warmup=1)
    per_probe = t10 / 10
    for k in probes:
        proj = per_probe * k
        if proj > budget:
            limit = f"budget {budget:.0f} s (--budget)"
            rows.append(over_budget_row("autograd", "Hutchinson (Rademacher, HVP loop)", str(k), proj, limit))
            continue
        reps = budget_repeats(proj, budget)
        t, r, vals = _common.timeit(lambda k=k: hutchinson_values(model, Xt, y2, k, 12345), repeats=reps, warmup=0)
        if vals_all is None or len(vals) > len(vals_all):
            vals_all = vals
        se = vals.std(ddof=1) / math.sqrt(k)
        row = estimate_row("autograd", "Hutchinson (Rademacher, HVP loop)", str(k), t, r, vals.mean(), T, se)
        rows.append(row)
        if not row.ok:
            problems.append(f"Hutchinson {k} probes: rel. error {row.err:.2e} > {N_SIGMA:g} SE ({row.bound:.2e})")
    if vals_all is not None:
        std_probe = float(vals_all.std(ddof=1))

    # PyHessian
    ph = TOOLS["pyhessian"]
    if ph is None:
        rows.append(Row("PyHessian", "hessian(...).trace()", note="not installed: skipped"))
    else:
        from pyhessian import hessian as ph_hessian

        crit = torch.nn.MSELoss()

        def ph_trace(max_iter, tol):
            model.zero_grad(set_to_none=True)
            hs = ph_hessian(model, crit, data=(Xt, y2), cuda=False)
            vals = np.asarray(hs.trace(maxIter=max_iter, tol=tol)) / 2.0
            model.zero_grad(set_to_none=True)
            return vals

        for max_iter, tol, label in (
            (100, 0.0, "trace(maxIter=100, tol=0)"),
            (100, 1e-3, "trace() defaults: maxIter=100, tol=1e-3"),
        ):
            proj = per_probe * max_iter
            if proj > budget:
                rows.append(over_budget_row("PyHessian", label, str(max_iter), proj))
                continue
            torch.manual_seed(7)
            reps = budget_repeats(proj, budget)
            t, r, vals = _common.timeit(lambda: ph_trace(max_iter, tol), repeats=reps, warmup=0)
            k = len(vals)
            se = vals.std(ddof=1) / math.sqrt(k) if k > 1 else None
            row = estimate_row(
                "PyHessian", label, str(k), t, r, vals.mean(), T, se, note="adaptive stop" if tol > 0 else ""
            )
            rows.append(row)
            if not row.ok:
                problems.append(f"PyHessian {label}: rel. error {row.err:.2e} > {N_SIGMA:g} SE")

    # curvlinops Hutch++
    cl = TOOLS["curvlinops"]
    if cl is None:
        rows.append(Row("curvlinops", "hutchpp_trace(HessianLinearOperator)", note="not installed: skipped"))
    else:
        from curvlinops import HessianLinearOperator, hutchpp_trace

        params = list(model.parameters())
        col_chunk = max(1, int(2e8 // (8 * 6 * n * m)))
        for k in probes:
            mv = 3 * (k // 3)
            if mv >= P or mv == 0:
                rows.append(Row("curvlinops", "Hutch++", str(mv), note=f"skipped: needs matvecs < P={P}"))
                continue
            proj = per_probe * mv * 1.2
            if proj > budget:
                rows.append(over_budget_row("curvlinops", "Hutch++ (HessianLinearOperator)", str(mv), proj))
                continue

            def hpp(mv=mv):
                torch.manual_seed(11)
                op = HessianLinearOperator(
                    model, torch.nn.MSELoss(), params, [(Xt, y2)], check_deterministic=False, num_data=n
                )
                return 0.5 * float(hutchpp_trace(ChunkedOperator(op, col_chunk), mv))

            reps = budget_repeats(proj, budget)
            try:
                t, r, v = _common.timeit(hpp, repeats=reps, warmup=0)
            except Exception as exc:
                rows.append(
                    Row("curvlinops", "Hutch++", str(mv), note=f"failed: {type(exc).__name__}: {exc}", ok=False)
                )
                problems.append(f"curvlinops Hutch++ failed: {exc}")
                continue
            # Hutch++'s deflated Hutchinson part uses mv/3 probes of a matrix with
            # no larger Frobenius norm: bound by plain Hutchinson's SE at mv/3 probes.
            se = std_probe / math.sqrt(mv // 3) if std_probe is not None else None
            row = estimate_row(
                "curvlinops",
                "Hutch++ (HessianLinearOperator)",
                str(mv),
                t,
                r,
                v,
                T,
                se,
                note="bound: Hutchinson SE at matvecs/3 probes",
            )
            rows.append(row)
            if not row.ok:
                problems.append(f"curvlinops Hutch++ {mv}: rel. error {row.err:.2e} > bound {row.bound:.2e}")

    # ---- gradient of the trace
    t_fg, r_fg, (Tg, gW, ga) = _common.timeit(
        lambda: flatext.hessian_trace_grad(W, a, X, y, **kw), repeats=args.repeats, warmup=2
    )
    gflat = np.concatenate([gW.ravel(), ga])
    gnorm = float(np.linalg.norm(gflat))
    rows.append(
        Row(
            "flatext",
            "hessian_trace_grad",
            "exact",
            t_fg,
            r_fg,
            float(np.linalg.norm(gflat)),
            0.0,
            kind="grad",
            note=f"value = ||grad T||; trace agrees to {rel(Tg, T):.0e}",
        )
    )
    if rel(Tg, T) > EXACT_RTOL:
        problems.append(f"hessian_trace_grad's trace differs from hessian_trace: {rel(Tg, T):.2e}")
    if work * 3 <= args.exact_limit and P <= 5000:
        from torch.func import grad, jvp, vmap

        gfun = grad(Lfun)

        gchunk = int(max(1, min(P, 4e8 // (8 * 12 * n * m))))  # bounded memory for the third-order pass

        def partial_trace(theta, s, e):
            """sum_{k in [s, e)} e_k^T H(theta) e_k; its gradient summed over chunks is grad T."""
            hvp = lambda v: jvp(gfun, (theta,), (v,))[1]  # noqa: E731
            E = torch.zeros(e - s, P, dtype=torch.float64)
            E[torch.arange(e - s), torch.arange(s, e)] = 1.0
            return vmap(hvp)(E)[torch.arange(e - s), torch.arange(s, e)].sum()

        def tg():
            g = torch.zeros(P, dtype=torch.float64)
            for s in range(0, P, gchunk):
                g += grad(partial_trace)(theta0, s, min(P, s + gchunk))
            return g.numpy()

        try:
            t, r, g = _common.timeit(tg, repeats=3, warmup=1, budget=budget)
            e = float(np.linalg.norm(g - gflat)) / gnorm
            row = Row(
                "torch.func",
                "grad of trace over all basis HVPs",
                "exact",
                t,
                r,
                float(np.linalg.norm(g)),
                e,
                EXACT_RTOL,
                e <= EXACT_RTOL,
                kind="grad",
            )
            rows.append(row)
            if not row.ok:
                problems.append(f"torch.func trace gradient: rel. error {e:.2e}")
        except Exception as exc:
            rows.append(Row("torch.func", "grad of trace", note=f"failed: {exc}", ok=False, kind="grad"))
            problems.append(f"torch.func trace gradient failed: {exc}")
    else:
        rows.append(
            Row(
                "torch.func",
                "exact trace gradient",
                kind="grad",
                note=f"skipped: P={P} third-order passes too costly here",
            )
        )
    rows.append(Row("BackPACK", "trace gradient", kind="grad", note="no BackPACK method: see autograd rows"))
    g10, _, _ = _common.timeit(lambda: hutchinson_grad(model, Xt, y2, 2, 1), repeats=1, warmup=0)
    per_gprobe = g10 / 2
    for k in probes:
        proj = per_gprobe * k
        if proj > budget:
            rows.append(over_budget_row("autograd", "double-backward grad of Hutchinson", str(k), proj, kind="grad"))
            continue
        reps = budget_repeats(proj, budget)
        t, r, (gm, var_sum) = _common.timeit(lambda k=k: hutchinson_grad(model, Xt, y2, k, 777), repeats=reps, warmup=0)
        e = float(np.linalg.norm(gm - gflat)) / gnorm
        bound = N_SIGMA * math.sqrt(var_sum) / gnorm
        row = Row(
            "autograd",
            "double-backward grad of Hutchinson",
            str(k),
            t,
            r,
            float(np.linalg.norm(gm)),
            e,
            bound,
            e <= bound + 1e-10,
            kind="grad",
        )
        rows.append(row)
        if not row.ok:
            problems.append(f"Hutchinson gradient {k} probes: rel. error {e:.2e} > {bound:.2e}")

    for row in rows:
        base = t_fg if row.kind == "grad" else t_fx
        row.ratio = row.time / base if row.time == row.time else float("nan")
        row.gemm = row.time / t_gemm if row.time == row.time else float("nan")
    return dict(
        n=n,
        d=d,
        m=m,
        P=P,
        power=power,
        neg=neg,
        T=T,
        gnorm=gnorm,
        t_gemm=t_gemm,
        t_fx=t_fx,
        t_fg=t_fg,
        rows=rows,
        problems=problems,
    )


# --------------------------------------------------------------------------- output

HEADER = [
    "tool",
    "method",
    "probes",
    "time",
    "runs",
    "x flatext",
    "x GEMM",
    "value",
    "rel. error",
    "allowed",
    "check",
    "note",
]


def table_rows(case):
    out = []
    for r in case["rows"]:
        if r.time != r.time and not r.note:
            continue
        out.append(
            [
                r.tool,
                r.method,
                r.probes,
                _common.fmt_time(r.time),
                r.runs or "",
                _common.fmt_ratio(r.ratio),
                _common.fmt_ratio(r.gemm),
                "" if r.value is None else f"{r.value:.10g}",
                _common.fmt_err(r.err),
                "" if r.bound is None else ("<= " + _common.fmt_err(r.bound)),
                "" if r.value is None else ("ok" if r.ok else "FAIL"),
                r.note,
            ]
        )
    return out


def headline(cases):
    """Speed-ups of flatext's exact trace over the anchors, and their targets."""
    lines, target_lines = [], []
    for c in cases:
        if c["power"] != 1.0:
            continue
        by = {(r.tool, r.method, r.probes): r for r in c["rows"]}
        h100 = by.get(("autograd", "Hutchinson (Rademacher, HVP loop)", "100"))
        ggn = by.get(("BackPACK", "DiagGGNExact, summed", "exact"))
        sh = (c["n"], c["d"], c["m"])
        parts = []
        if h100 and h100.time == h100.time:
            parts.append(f"{h100.ratio:.0f}x faster than 100-probe Hutchinson (whose error was {h100.err:.1e})")
        if ggn and ggn.time == ggn.time:
            parts.append(f"{ggn.ratio:.1f}x faster than BackPACK DiagGGNExact")
        if parts:
            lines.append(
                f"n={sh[0]}, d={sh[1]}, m={sh[2]} (ReLU): flatext's exact trace is "
                + ", ".join(parts)
                + f"; it took {c['t_fx'] / c['t_gemm']:.2f}x numpy's GEMM."
            )
        if sh in SPEED_TARGETS:
            th, tb = SPEED_TARGETS[sh]
            for label, row, tgt in (("100-probe Hutchinson", h100, th), ("BackPACK DiagGGNExact", ggn, tb)):
                if row is None or row.time != row.time:
                    target_lines.append(f"{sh}: vs {label}: not measured")
                else:
                    ok = row.ratio >= tgt
                    msg = f"{sh}: vs {label}: {row.ratio:.1f}x (target >= {tgt:g}x) " + (
                        "met" if ok else f"MISSED by {tgt / row.ratio:.2f}x"
                    )
                    fx_gemm = c["t_fx"] / c["t_gemm"]
                    if not ok and fx_gemm > 1.3:
                        msg += (
                            f"; flatext's trace took {fx_gemm:.2f}x the GEMM here against its own target of "
                            f"1.3x: at 1.3x this ratio would be {row.ratio * fx_gemm / 1.3:.0f}x"
                        )
                    target_lines.append(msg)
    return lines, target_lines


def render(cases, mode, started, threads, args, headlines, targets, all_problems):
    extra = [f"- threads: {threads} (flatext.set_num_threads, torch.set_num_threads, numpy's BLAS via threadpoolctl)"]
    for name in ("torch", "backpack", "pyhessian", "curvlinops"):
        extra.append(f"- {name}: " + (version(name) if TOOLS.get(name) is not None else "not installed (skipped)"))
    parts = [
        "# flatext against PyHessian, BackPACK, curvlinops and torch.func",
        "",
        _common.generated_by("compare_tools.py", mode, args.stat, started)
        + f"Float64 throughout. Times are {args.stat}s over `runs` runs after a warm-up "
        "(estimators that take long run once). `x flatext` divides by flatext's `hessian_trace` "
        "(trace rows) or `hessian_trace_grad` (gradient rows); `x GEMM` divides by numpy's `X @ W.T` on "
        "the same shape. `rel. error` is against flatext's exact value, which the exact rows "
        "(torch.func, BackPACK) confirm to rounding; for gradient rows it is "
        "`||g - g_flatext|| / ||g_flatext||` and `value` is `||g||`. `allowed` is 1e-8 for exact "
        f"methods and {N_SIGMA:g} standard errors (from the estimator's own probes) for estimators.",
        "",
        "Conventions: flatext's loss is `L = (1/(2n)) sum r^2`; `nn.MSELoss` on `(n, 1)` tensors (BackPACK, "
        "PyHessian, curvlinops) is `(1/n) sum r^2 = 2L`, so their traces are halved. The script checks "
        "first that the PyTorch twin's loss equals flatext's. BackPACK has no exact method for p >= 2 "
        "(no extension for `max(z,0)^p`) nor for the gradient of the trace: those rows compare with "
        "the autograd routes instead. Hutch++ needs a multiple of 3 matvecs: 9, 99, 999 stand for "
        "10, 100, 1000; its allowed error uses plain Hutchinson's per-probe spread at matvecs/3 "
        "probes (the deflated part it estimates has no larger Frobenius norm).",
        "",
        "The machine was shared with other jobs when this file was generated unless the load average "
        "below is near 0: treat absolute times as rough.",
        "",
        "## Machine",
        "",
        *_common.machine_lines(extra),
        "",
        "## Headline",
        "",
    ]
    parts += [f"- {h}" for h in headlines] or ["- (no ReLU case measured)"]
    if targets:
        parts += ["", "Targets (ReLU, float64):", ""] + [f"- {t}" for t in targets]
    for c in cases:
        parts += [
            "",
            f"## n={c['n']}, d={c['d']}, m={c['m']} (P={c['P']}), power={c['power']:g}, neg={c['neg']:g}",
            "",
            f"Exact trace {c['T']:.12g}; ||grad T|| {c['gnorm']:.6g}.",
            "",
            _common.md_table(HEADER, table_rows(c)),
        ]
    parts += ["", "## Problems", ""]
    parts += [f"- {p}" for p in all_problems] if all_problems else ["None: every tool agreed with flatext."]
    parts += ["", NOTES]
    return "\n".join(parts) + "\n"


NOTES = """## Notes

- Hutchinson through autograd is what PyHessian does (one `create_graph` backward, then one backward of
  the gradient per Rademacher probe); the `autograd` rows run it with an exact probe count, the
  `PyHessian` rows call `pyhessian.hessian(model, criterion, data=(x, y), cuda=False).trace()` itself.
  Its default stops when the running mean changes by less than 0.1%, which often happens after a
  handful of probes: its error is then that of a handful of probes.
- BackPACK's `DiagHessian` and `DiagGGNExact` are exact for ReLU (p = 1); for p >= 2 the Gauss-Newton
  trace differs from the Hessian trace by the residual term, and BackPACK has no extension for the
  activation anyway.
- The exact torch.func routes cost P Hessian-vector products (`jacfwd(jacrev)` holds the P x P Hessian);
  they are run only where P is small.
- Where a speed target is missed, the first thing to check is flatext's own trace as a multiple of the
  GEMM (`x GEMM` of the `hessian_trace` row; target 1.3x, see `docs/performance.md` and the diagnosis in
  `benchmarks/README.md`): the anchors' costs are set by their autograd passes and do not move.
- Estimators whose projected time exceeds the budget (`--budget`, seconds) are skipped, with the
  projection in the note; `--full` raises the budget."""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="small shapes only")
    g.add_argument("--full", action="store_true", help="all shapes up to n=8192, d=256, m=1024 (long)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--stat",
        choices=["median", "min"],
        default="median",
        help="statistic over the timed runs (min is steadier on a loaded machine)",
    )
    ap.add_argument("--powers", default=None, help="comma-separated activation powers (default by mode)")
    ap.add_argument("--neg", type=float, default=0.0)
    ap.add_argument("--probes", default=None, help="comma-separated probe counts (default 10,100[,1000])")
    ap.add_argument("--budget", type=float, default=None, help="seconds allowed per estimator run")
    ap.add_argument(
        "--exact-limit",
        type=float,
        default=None,
        help="max P*n*m*d for the exact torch.func routes (default 5e9, --full 1e11)",
    )
    ap.add_argument("--shapes", default=None, help="e.g. 256x16x32,2048x128x512 (n x d x m)")
    ap.add_argument(
        "--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "benchmarks.md")
    )
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--keep-openblas-env", action="store_true")
    args = ap.parse_args(argv)
    mode = "quick" if args.quick else "full" if args.full else "default"
    _common.STAT = args.stat
    if args.exact_limit is None:
        args.exact_limit = 1e11 if mode == "full" else 5e9

    import flatext

    probe_tools()
    if TOOLS["torch"] is None:
        print(
            "torch is not installed: nothing to compare (pip install .[bench], see benchmarks/README.md)",
            file=sys.stderr,
        )
        return 2
    import warnings

    import torch

    # known, harmless here: BackPACK's hooks on input tensors that need no gradient,
    # and PyHessian's backward(create_graph=True) (the .grad fields are reset after use)
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(args.threads)
    flatext.set_num_threads(args.threads)
    try:
        from threadpoolctl import ThreadpoolController

        for c in ThreadpoolController().lib_controllers:
            if c.user_api == "blas" and "scipy_openblas32" not in c.filepath:
                c.set_num_threads(args.threads)
    except ImportError:
        print("note: threadpoolctl not installed; numpy's BLAS keeps its default threads", file=sys.stderr)

    shapes = (
        SHAPES[mode] if args.shapes is None else [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    )
    powers = POWERS[mode] if args.powers is None else [float(p) for p in args.powers.split(",")]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"compare_tools ({mode}): shapes {shapes}, powers {powers}, {args.threads} threads", flush=True)

    cases, problems = [], []
    for n, d, m in shapes:
        for p in powers:
            print(f"\n== n={n} d={d} m={m} power={p:g} neg={args.neg:g}", flush=True)
            t0 = time.perf_counter()
            c = run_case(n, d, m, p, args.neg, args, mode, flatext, lambda s: print(s, flush=True))
            cases.append(c)
            problems += [f"(n={n}, d={d}, m={m}, p={p:g}) {x}" for x in c["problems"]]
            print(_common.text_table(HEADER[:-1], [r[:-1] for r in table_rows(c)]))
            for r in c["rows"]:
                if r.note and r.time != r.time:
                    print(f"    {r.tool} {r.method} {r.probes}: {r.note}")
            print(f"   ({time.perf_counter() - t0:.0f} s)", flush=True)

    heads, targets = headline(cases)
    print()
    for h in heads + targets:
        print(h)
    if not args.no_write:
        doc = render(cases, mode, started, args.threads, args, heads, targets, problems)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            fh.write(doc)
        print(f"wrote {os.path.relpath(args.out)}")
    if problems:
        print("\nPROBLEMS (tools disagreeing with flatext beyond rounding / expected error):", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        return 1
    print("all tools agree with flatext (exact to 1e-8, estimators within 6 standard errors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
