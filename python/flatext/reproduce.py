"""``flatext reproduce``: the paper's claims, end to end, in one command.

Vardhan, Taheri, Mazumdar (2026), *Flatness and Generalization: Learning
Multi-Index Models with Homogeneous Neural Networks*. On an embedded default
configuration this module

1. shows that rescalings change the Hessian trace of one interpolator by many
   orders of magnitude while the training loss, the population loss and the
   orbit-minimal trace do not move (raw flatness is vacuous);
2. compares, on a sum-of-single-index teacher the network class can represent
   (``relu(u1.x) + 0.5 |u2.x|`` for ReLU), the interpolators found by gradient
   descent from small and large initialization, the Gauss-Newton projection of a
   random start, the memorizing interpolator and the flattest interpolator from
   several starts: orbit-minimal trace against population loss; and repeats it
   on a teacher the class cannot represent (``He2(u1.x) + 0.5 relu(u2.x)``:
   approximation error by design, the edge of the theorem);
3. shows that the memorizing class stays sharp even after the best rescaling,
   and that its population loss stays large;
4. follows the flattest interpolator's population loss as label noise and
   sample size vary.

It writes ``results.csv``, ``results.md``, ``claims.md`` and PNG figures into the
output folder and prints the Markdown tables. Population losses are exact
(Gaussian inputs) and reported relative to the zero predictor's,
``E[(f - f*)^2] / E[f*^2]``.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import List, Sequence

import numpy as np

__all__ = ["ReproduceConfig", "reproduce", "add_parser"]

# Teachers: name -> (links, weights, representable by a bias-free homogeneous network of degree p)
TEACHERS = {
    "relu+abs": (("relu", "abs"), (1.0, 0.5), True),        # for p = 1
    "relu2+relu2": (("relu2", "relu2"), (1.0, 0.5), True),  # for p = 2
    "he2+relu": (("he2", "relu"), (1.0, 0.5), False),       # He2 = z^2 - 1: its constant is not representable
    "tanh": (("tanh",), (1.0,), False),
}


@dataclass(frozen=True)
class ReproduceConfig:
    """What ``flatext reproduce`` runs (defaults: the README's run)."""

    d: int = 8
    ns: Sequence[int] = (100, 300)          # sample sizes of claims 2-3
    width_factor: float = 2.0               # m = width_factor * n
    power: float = 1.0
    neg: float = 0.0
    teacher: str = "relu+abs"               # representable teacher
    edge_teacher: str = "he2+relu"          # non-representable one (approximation error)
    starts: int = 3                         # random starts of the flattest search
    small_init: float = 1e-2
    large_init: float = 1.0
    gd_max_iter: int = 3000
    search_max_iter: int = 200
    noise_levels: Sequence[float] = (0.0, 0.1, 0.3)
    noise_ns: Sequence[int] = (50, 100, 200)
    rescale_range: float = 3.0              # global rescalings t in 10^[-r, r]
    seed: int = 0
    quick: bool = False

    @classmethod
    def quick_config(cls, **kw):
        base = dict(d=5, ns=(40,), starts=2, gd_max_iter=1500, search_max_iter=60, noise_levels=(0.0, 0.2),
                    noise_ns=(30, 60), quick=True)
        base.update(kw)
        return cls(**base)


@dataclass
class Row:
    claim: str
    teacher: str
    n: int
    m: int
    noise: float
    method: str
    seed: int
    trace: float
    orbit_min_trace: float
    max_residual: float
    train_loss: float
    pop_loss: float
    rel_pop_loss: float
    seconds: float
    note: str = ""


def _pop_value(res):
    return float(getattr(res, "value", res))


class _Problem:
    """One (teacher, n, noise, seed) training set with its exact population loss."""

    def __init__(self, cfg, teacher_name, n, noise, seed):
        from . import teachers

        links, weights, representable = TEACHERS[teacher_name]
        self.cfg = cfg
        self.name = teacher_name
        self.representable = representable
        self.teacher = teachers.SumOfSingleIndex.random(cfg.d, list(links), weights=list(weights),
                                                        seed=cfg.seed + 1000)
        self.n = n
        self.m = int(round(cfg.width_factor * n))
        self.noise = noise
        self.seed = seed
        self.X, self.y = self.teacher.sample(n, noise=noise, seed=cfg.seed + 7919 * seed + n)
        self.zero = self.pop(np.zeros((1, cfg.d)), np.zeros(1))

    def pop(self, W, a):
        from . import population_loss

        return _pop_value(population_loss(W, a, self.teacher, power=self.cfg.power, neg=self.cfg.neg,
                                          method="exact"))

    def init(self, scale, seed):
        rng = np.random.default_rng(10_000 + seed)
        W = rng.standard_normal((self.m, self.cfg.d)) * (scale / math.sqrt(self.cfg.d))
        a = rng.standard_normal(self.m) * (scale / math.sqrt(self.m))
        return W, a

    def row(self, claim, method, W, a, seed, seconds, note=""):
        import flatext as fx

        kw = dict(power=self.cfg.power, neg=self.cfg.neg)
        r = fx.forward(W, a, self.X, **kw) - self.y
        try:
            omin = float(fx.orbit_min_trace(W, a, self.X, self.y, **kw))
        except ValueError:
            omin = float("nan")
        pop = self.pop(W, a)
        return Row(claim=claim, teacher=self.name + ("" if self.representable else " (not representable)"),
                   n=self.n, m=W.shape[0], noise=self.noise, method=method, seed=seed,
                   trace=float(fx.hessian_trace(W, a, self.X, self.y, **kw)), orbit_min_trace=omin,
                   max_residual=float(np.max(np.abs(r))), train_loss=float(0.5 * np.mean(r ** 2)),
                   pop_loss=pop, rel_pop_loss=pop / self.zero, seconds=seconds, note=note)


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def _gd_interpolator(prob: _Problem, claim: str, label: str, W0, a0) -> Row:
    """Full-batch GD with step 0.9 / lambda_max(init) (at most 0.2), then a
    Gauss-Newton polish from where it stopped: the interpolator GD finds."""
    import flatext as fx

    cfg = prob.cfg
    kw = dict(power=cfg.power, neg=cfg.neg)
    t0 = time.perf_counter()
    lam = float(fx.hessian_top_eigenvalues(W0, a0, prob.X, prob.y, k=1, max_iter=60, tol=1e-3, **kw)[0])
    lr = min(0.2, 0.9 / max(lam, 1e-12))
    res = fx.train(W0, a0, prob.X, prob.y, method="gd", lr=lr, max_iter=cfg.gd_max_iter, tol=1e-9, polish=False,
                   **kw)
    note = f"lr {lr:.3g}, {res.iterations} steps to loss {float(res.loss):.1e}"
    W, a = res.W, res.a
    polished = False
    try:
        pol = fx.find_interpolator(W, a, prob.X, prob.y, **kw)
        if pol.converged:
            W, a, polished = pol.W, pol.a, True
            note += ", then Gauss-Newton polish"
    except ValueError:
        pass
    if not polished:
        note += "; not an interpolator (Gauss-Newton polish did not converge from there)"
    return prob.row(claim, label, W, a, prob.seed, time.perf_counter() - t0, note=note)


def _methods(prob: _Problem, claim: str) -> List[Row]:
    """Every interpolator of claim 2 on one problem."""
    import flatext as fx

    cfg = prob.cfg
    kw = dict(power=cfg.power, neg=cfg.neg)
    rows = []
    for label, scale in (("gd, small init", cfg.small_init), ("gd, large init", cfg.large_init)):
        W0, a0 = prob.init(scale, prob.seed)
        rows.append(_gd_interpolator(prob, claim, label, W0, a0))
    (Wm, am), dt = _timed(lambda: fx.memorizing_interpolator(prob.X, prob.y, m=max(prob.m, prob.n), **kw))
    rows.append(prob.row(claim, "memorizer", Wm, am, prob.seed, dt))
    for s in range(cfg.starts):
        W0, a0 = prob.init(1.0, 100 + s)
        proj, dt0 = _timed(lambda: fx.find_interpolator(W0, a0, prob.X, prob.y, **kw))
        if s == 0:
            rows.append(prob.row(claim, "GN projection of random init", proj.W, proj.a, s, dt0))
        res, dt = _timed(lambda: fx.flattest_interpolator(proj.W, proj.a, prob.X, prob.y,
                                                          max_iter=cfg.search_max_iter, **kw))
        rows.append(prob.row(claim, "flattest", res.W, res.a, s, dt0 + dt,
                             note="" if res.converged else "max_iter reached"))
    return rows


def _claim1(prob: _Problem):
    """Global and random per-neuron rescalings of one interpolator."""
    import flatext as fx

    cfg = prob.cfg
    kw = dict(power=cfg.power, neg=cfg.neg)
    W0, a0 = prob.init(1.0, 0)
    base = fx.find_interpolator(W0, a0, prob.X, prob.y, **kw)
    rows = []
    rng = np.random.default_rng(cfg.seed)
    for k in np.linspace(-cfg.rescale_range, cfg.rescale_range, 7):
        W, a = fx.rescale(base.W, base.a, 10.0 ** k, power=cfg.power)
        rows.append(prob.row("1", f"global rescale t=1e{k:+.0f}", W, a, 0, 0.0))
    for s in (1.0, 3.0):
        t = np.exp(rng.normal(0.0, s, size=base.a.shape))
        W, a = fx.rescale(base.W, base.a, t, power=cfg.power)
        rows.append(prob.row("1", f"random per-neuron rescale (log-sd {s:g})", W, a, 0, 0.0))
    Wb, ab = fx.balance(base.W, base.a, prob.X, prob.y, **kw)
    rows.append(prob.row("1", "balanced (orbit minimum)", Wb, ab, 0, 0.0))
    return rows


def _claim4(cfg, noise, n):
    import flatext as fx

    kw = dict(power=cfg.power, neg=cfg.neg)
    prob = _Problem(cfg, cfg.teacher, n, noise, seed=0)
    W0, a0 = prob.init(1.0, 200)
    proj, dt0 = _timed(lambda: fx.find_interpolator(W0, a0, prob.X, prob.y, **kw))
    res, dt = _timed(lambda: fx.flattest_interpolator(proj.W, proj.a, prob.X, prob.y,
                                                      max_iter=cfg.search_max_iter, **kw))
    return [prob.row("4", "flattest", res.W, res.a, 0, dt0 + dt)]


def _steps(cfg):
    """The reproduction as independent steps: (key, function returning rows)."""
    steps = [("claim1", lambda: _claim1(_Problem(cfg, cfg.teacher, cfg.ns[0], 0.0, seed=0)))]
    for n in cfg.ns:
        for te in (cfg.teacher, cfg.edge_teacher):
            steps.append((f"claim2-{te}-n{n}", lambda n=n, te=te: _methods(_Problem(cfg, te, n, 0.0, seed=0), "2")))
    for noise in cfg.noise_levels:
        for n in cfg.noise_ns:
            steps.append((f"claim4-noise{noise:g}-n{n}", lambda noise=noise, n=n: _claim4(cfg, noise, n)))
    return steps


def _fingerprint(cfg) -> str:
    """Configuration, version and the code itself (Python sources and the compiled core):
    steps saved by other code are recomputed, never reused."""
    import hashlib
    import json

    from . import __version__, _native

    h = hashlib.sha256(json.dumps([__version__, dataclasses.asdict(cfg)], sort_keys=True, default=list).encode())
    pkg = os.path.dirname(os.path.abspath(__file__))
    for name in sorted(os.listdir(pkg)):
        if name.endswith(".py"):
            with open(os.path.join(pkg, name), "rb") as f:
                h.update(f.read())
    with open(_native._core.__file__, "rb") as f:
        h.update(f.read())
    return h.hexdigest()[:16]


def _load_step(path, fp):
    import json

    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if data.get("fingerprint") != fp:
        return None
    return [Row(**r) for r in data["rows"]]


def _save_step(path, fp, rows):
    import json

    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"fingerprint": fp, "rows": [dataclasses.asdict(r) for r in rows]}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # atomic: a killed run never leaves half a step


def _interpolates(r: Row) -> bool:
    """Interpolation to 1e-8 of the label scale: orbit-minimal traces of points off
    the interpolation set are not comparable (their residual part differs)."""
    return r.max_residual <= 1e-8 * max(1.0, abs(r.pop_loss) ** 0.5 + 1.0)


def _check_claims(rows: List[Row], cfg) -> List[tuple]:
    """The claims as inequalities on the computed numbers: (claim, statement, holds)."""
    out = []
    c1 = [r for r in rows if r.claim == "1"]
    if c1:
        tr = [r.trace for r in c1]
        om = [r.orbit_min_trace for r in c1]
        tl = [r.train_loss for r in c1]
        pl = [r.pop_loss for r in c1]
        spread = max(tr) / min(tr)
        out.append(("1", f"rescalings move the trace by a factor {spread:.2e} (>= 1e4)", spread >= 1e4))
        out.append(("1", f"...while the train loss moves by {max(tl) - min(tl):.1e} and the population loss "
                         f"by {(max(pl) - min(pl)) / max(pl):.1e} relative (<= 1e-8)",
                    max(tl) - min(tl) <= 1e-12 + 1e-8 * max(tl) and (max(pl) - min(pl)) <= 1e-8 * max(pl)))
        out.append(("1", f"...and the orbit-minimal trace by {(max(om) - min(om)) / min(om):.1e} relative (<= 1e-8)",
                    (max(om) - min(om)) <= 1e-8 * min(om)))
    for n in sorted({r.n for r in rows if r.claim == "2"}):
        rs = [r for r in rows if r.claim == "2" and r.n == n and "not representable" not in r.teacher]
        if not rs:
            continue
        flat = [r for r in rs if r.method == "flattest" and _interpolates(r) and math.isfinite(r.orbit_min_trace)]
        others = [r for r in rs if r.method != "flattest"]
        interp = [r for r in others if _interpolates(r) and math.isfinite(r.orbit_min_trace)]
        if not flat or not interp:
            out.append(("2", f"n={n}: no interpolating flattest point or no other interpolator to compare with", False))
            continue
        best_flat = min(flat, key=lambda r: r.orbit_min_trace)
        ok_t = best_flat.orbit_min_trace <= min(r.orbit_min_trace for r in interp)
        ok_p = best_flat.rel_pop_loss <= min(r.rel_pop_loss for r in others)
        out.append(("2", f"n={n}: the flattest interpolator has the least orbit-minimal trace of the interpolators "
                         f"({best_flat.orbit_min_trace:.4g} vs >= {min(r.orbit_min_trace for r in interp):.4g})", ok_t))
        out.append(("2", f"n={n}: ...and the least population loss of all ({best_flat.rel_pop_loss:.2e} vs >= "
                         f"{min(r.rel_pop_loss for r in others):.2e}, relative to the zero predictor)", ok_p))
        mem = [r for r in rs if r.method == "memorizer"]
        if mem:
            ratio = mem[0].orbit_min_trace / best_flat.orbit_min_trace
            out.append(("3", f"n={n}: the memorizer's orbit-minimal trace is {ratio:.2f}x the flattest's (> 1.5x)",
                        ratio > 1.5))
            out.append(("3", f"n={n}: the memorizer's population loss is {mem[0].rel_pop_loss:.2f} of the zero "
                             f"predictor's (> 0.1) vs the flattest's {best_flat.rel_pop_loss:.2e}",
                        mem[0].rel_pop_loss > 0.1 and mem[0].rel_pop_loss > 10 * best_flat.rel_pop_loss))
    # claim 4: without noise the flattest interpolator's population loss falls as n grows, and label
    # noise raises it at the largest n
    c4 = [r for r in rows if r.claim == "4"]
    if c4:
        clean = sorted((r for r in c4 if r.noise == 0.0), key=lambda r: r.n)
        if len(clean) >= 2:
            out.append(("4", f"without noise the flattest interpolator's population loss falls from "
                             f"{clean[0].rel_pop_loss:.2e} (n={clean[0].n}) to {clean[-1].rel_pop_loss:.2e} "
                             f"(n={clean[-1].n})", clean[-1].rel_pop_loss < clean[0].rel_pop_loss))
        nmax = max(r.n for r in c4)
        at = sorted((r for r in c4 if r.n == nmax), key=lambda r: r.noise)
        if len(at) >= 2:
            out.append(("4", f"at n={nmax} label noise {at[-1].noise:g} raises it from {at[0].rel_pop_loss:.2e} "
                             f"to {at[-1].rel_pop_loss:.2e}", at[-1].rel_pop_loss > at[0].rel_pop_loss))
    return out


FIELDS = [f.name for f in dataclasses.fields(Row)]


def _markdown(rows: List[Row]) -> str:
    cols = ["claim", "teacher", "n", "m", "noise", "method", "seed", "trace", "orbit_min_trace", "max_residual",
            "rel_pop_loss", "seconds", "note"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        vals = []
        for c in cols:
            v = getattr(r, c)
            vals.append(f"{v:.4g}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines)


def _save(fig, out: str, name: str) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = os.path.join(out, name)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _figures(rows: List[Row], out: str, cfg) -> List[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    # 1. rescaling
    c1 = [r for r in rows if r.claim == "1" and r.method.startswith("global")]
    if c1:
        t = [float(r.method.split("t=")[1]) for r in c1]
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.loglog(t, [r.trace for r in c1], "o-", label="Hessian trace")
        ax.loglog(t, [r.orbit_min_trace for r in c1], "s--", label="orbit-minimal trace")
        ax.loglog(t, [max(r.pop_loss, 1e-300) for r in c1], "^:", label="population loss")
        ax.set_xlabel("global rescaling t: (w, a) -> (t w, t^-p a)")
        ax.set_title("Claim 1: rescaling changes flatness, not the function")
        ax.legend()
        paths.append(_save(fig, out, "claim1_rescaling.png"))
    # 2-3. orbit-minimal trace vs population loss, per teacher
    c2 = [r for r in rows if r.claim == "2"]
    if c2:
        teachers = sorted({r.teacher for r in c2})
        fig, axes = plt.subplots(1, len(teachers), figsize=(6 * len(teachers), 4.5), squeeze=False)
        markers = {"flattest": "*", "memorizer": "X", "gd, small init": "o", "gd, large init": "s",
                   "GN projection of random init": "D"}
        for ax, te in zip(axes[0], teachers):
            for meth in markers:
                rs = [r for r in c2 if r.teacher == te and r.method == meth]
                if rs:
                    ax.scatter([r.orbit_min_trace for r in rs], [r.rel_pop_loss for r in rs], marker=markers[meth],
                               s=80, label=meth)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("orbit-minimal Hessian trace")
            ax.set_ylabel("population loss / zero predictor's")
            ax.set_title(te)
            ax.legend(fontsize=8)
        fig.suptitle("Claims 2-3: flattest interpolators generalize, memorizers stay sharp")
        paths.append(_save(fig, out, "claim2_flatness_vs_generalization.png"))
    # 4. noise and sample size
    c4 = [r for r in rows if r.claim == "4"]
    if c4:
        fig, ax = plt.subplots(figsize=(6, 4))
        for noise in sorted({r.noise for r in c4}):
            rs = sorted([r for r in c4 if r.noise == noise], key=lambda r: r.n)
            ax.plot([r.n for r in rs], [r.rel_pop_loss for r in rs], "o-", label=f"noise sd {noise:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("n (m = %g n)" % cfg.width_factor)
        ax.set_ylabel("population loss / zero predictor's")
        ax.set_title("Claim 4: the flattest interpolator vs noise and n")
        ax.legend()
        paths.append(_save(fig, out, "claim4_noise_and_n.png"))
    return paths


def reproduce(cfg: ReproduceConfig = ReproduceConfig(), out: str = "flatext-reproduce", progress: bool = True,
              resume: bool = True, echo=print):
    """Run the reproduction; returns ``(rows, checks)`` and writes the output folder.

    Each step's rows are saved atomically under ``out/steps/`` as it finishes; a
    rerun with the same configuration (and flatext version) reuses them, so an
    interrupted run loses only the step it was in. ``resume=False`` recomputes.
    """
    from tqdm.auto import tqdm

    os.makedirs(out, exist_ok=True)
    cache = os.path.join(out, "steps")
    os.makedirs(cache, exist_ok=True)
    fp = _fingerprint(cfg)
    steps = _steps(cfg)
    rows: List[Row] = []
    t0 = time.perf_counter()
    reused = 0
    with tqdm(total=len(steps), desc="flatext reproduce", disable=not progress, file=sys.stderr) as bar:
        for key, fn in steps:
            path = os.path.join(cache, key + ".json")
            got = _load_step(path, fp) if resume else None
            if got is None:
                bar.set_postfix_str(key)
                got = fn()
                _save_step(path, fp, got)
            else:
                reused += 1
            rows += got
            bar.update(1)
    checks = _check_claims(rows, cfg)
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow(dataclasses.asdict(r))
    md = _markdown(rows)
    claims_md = "\n".join(f"- [{'x' if ok else ' '}] claim {c}: {s}" for c, s, ok in checks)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(md + "\n")
    with open(os.path.join(out, "claims.md"), "w") as f:
        f.write(claims_md + "\n")
    figs = _figures(rows, out, cfg)
    echo(md)
    echo("")
    echo(claims_md)
    echo(f"\nwrote {out}/results.csv, results.md, claims.md and {len(figs)} figures in "
         f"{time.perf_counter() - t0:.0f} s" + (f" ({reused} of {len(steps)} steps reused from {cache})" if reused else ""))
    return rows, checks


def _run(args):
    kw = {}
    for k in ("d", "starts", "seed"):
        if getattr(args, k) is not None:
            kw[k] = getattr(args, k)
    if args.n is not None:
        kw["ns"] = tuple(args.n)
    if args.teacher is not None:
        kw["teacher"] = args.teacher
    if args.power is not None:
        kw["power"] = args.power
        if args.teacher is None and args.power == 2.0:
            kw["teacher"] = "relu2+relu2"
    cfg = ReproduceConfig.quick_config(**kw) if args.quick else ReproduceConfig(**kw)
    _, checks = reproduce(cfg, out=args.out, progress=not args.no_progress, resume=not args.no_resume)
    return 0 if all(ok for _, _, ok in checks) else 1


def add_parser(sub):
    p = sub.add_parser("reproduce", help="reproduce the paper's claims on an embedded default configuration",
                       description=__doc__)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--out", default="flatext-reproduce", help="output folder (default ./flatext-reproduce)")
    p.add_argument("--quick", action="store_true", help="a smaller run (seconds), as in the tests")
    p.add_argument("--d", type=int, help="input dimension (default 8)")
    p.add_argument("--n", type=int, nargs="+", help="sample sizes of claims 2-3 (default 100 300)")
    p.add_argument("--starts", type=int, help="random starts of the flattest search (default 3)")
    p.add_argument("--teacher", choices=sorted(TEACHERS), help="main teacher (default relu+abs; relu2+relu2 "
                   "when --power 2)")
    p.add_argument("--power", type=float, help="activation degree p")
    p.add_argument("--seed", type=int, help="base seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-resume", action="store_true", help="recompute every step (default: reuse finished steps "
                   "saved in OUT/steps by an interrupted run with the same configuration)")
    p.set_defaults(func=_run)
