#!/usr/bin/env python
"""Flatness-regularized training in PyTorch with flatext's exact Hessian trace.

A ReLU student ``flatext.torch.TwoLayer`` learns a planted ReLU teacher from
``flatext.teachers`` with Adam, once on the loss L alone and once on
``L + lam * Tr H`` (the exact trace and its exact gradient, through
``TwoLayer.regularized_loss``). For ReLU (p = 1) the trace is >= 0, so the
target is bounded below; for p > 1 use ``which="gauss_newton"`` instead
(``docs/frameworks.md``). The plot shows the training loss, the trace and
the population loss (exact, Gaussian inputs: ``flatext.population_loss``)
against the steps.

Usage::

    python examples/torch_flatness.py [--lam 0.003] [--steps 400] [--out torch_flatness.png]

Runs in well under a minute on a laptop core.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import flatext as fx  # noqa: E402
import flatext.torch as fxt  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def train(X, y, teacher, lam, steps, m, seed, every):
    torch.manual_seed(seed)
    net = fxt.TwoLayer(X.shape[1], m, power=1.0, dtype=torch.float64)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    hist = {"step": [], "loss": [], "trace": [], "population": []}
    for k in range(steps + 1):
        if k % every == 0 or k == steps:
            with torch.no_grad():
                W, a = net.W.detach().numpy(), net.a.detach().numpy()
                hist["step"].append(k)
                hist["loss"].append(float(net.loss(X, y)))
                hist["trace"].append(float(net.hessian_trace(X, y)))
                hist["population"].append(float(fx.population_loss(W, a, teacher, power=1.0)))
        if k == steps:
            break
        opt.zero_grad()
        net.regularized_loss(X, y, lam, which="trace").backward()  # L + lam * Tr H, exact gradient
        opt.step()
    return net, hist


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lam", type=float, default=0.003)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--d", type=int, default=10)
    ap.add_argument("--m", type=int, default=64)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="torch_flatness.png")
    args = ap.parse_args(argv)

    teacher = fx.PlantedNetwork.random(args.d, 3, power=1.0, seed=args.seed)
    Xn, yn = teacher.sample(args.n, noise=args.noise, seed=args.seed + 1)
    X, y = torch.from_numpy(Xn), torch.from_numpy(yn)
    every = max(1, args.steps // 40)
    runs = {}
    for lam in (0.0, args.lam):
        _, hist = train(X, y, teacher, lam, args.steps, args.m, args.seed + 2, every)
        runs[lam] = hist
        print(
            f"lam={lam:g}: loss {hist['loss'][-1]:.4g}, trace {hist['trace'][-1]:.4g}, "
            f"population loss {hist['population'][-1]:.4g}"
        )

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for lam, hist in runs.items():
        label = "L" if lam == 0 else f"L + {lam:g} Tr H"
        for ax, key in zip(axes, ("loss", "trace", "population")):
            ax.plot(hist["step"], hist[key], label=label)
    for ax, title in zip(axes, ("training loss L", "exact Hessian trace Tr H", "population loss E(f - f*)^2")):
        ax.set_title(title)
        ax.set_xlabel("Adam step")
        ax.set_yscale("log")
    axes[0].legend()
    fig.suptitle(
        f"ReLU student (m={args.m}) on a planted ReLU teacher, n={args.n}, d={args.d}, label noise {args.noise:g}"
    )
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return runs


if __name__ == "__main__":
    main()
