"""The interpolators of the reproduction, each labelled by how it got there.

Labels (``Row.method``):

- ``"gd, small init"`` / ``"gd, large init"``: full-batch GD run until its loss
  reaches ``cfg.gd_tol`` or ``cfg.gd_max_iter`` steps (flagged ``stop="max_iter"``);
  measured where GD stopped;
- ``"<trainer> + GN polish"``: the same point after a Gauss-Newton projection
  (:func:`flatext.find_interpolator`), a separate row (the polish moves theta);
- ``"sam"``: sharpness-aware minimization (Foret et al. 2021) from the large init;
- ``"label_noise_sgd"``: label-noise SGD (:func:`flatext.label_noise_sgd`)
  from the large init, then the same drift continued;
- ``"memorizer"``: one neuron per training point (:func:`flatext.memorizing_interpolator`);
- ``"teacher + memorizer"``: the teacher network plus a memorizer of the label noise
  (noisy problems only: without noise it *is* the teacher);
- ``"teacher network (reference)"``: the representable teacher as a network, an
  interpolator of noise-free labels;
- ``"GN projection of random init (search start)"``: the flattest search's start,
  shown as such, never a competitor;
- ``"flattest search"``: :func:`flatext.flattest_interpolator` from that start.
"""

from __future__ import annotations

from typing import List

from ..interpolators import find_interpolator, flattest_interpolator, memorizing_interpolator, teacher_plus_memorizer
from ..polish import gauss_newton_polish
from ..stepsize import resolve_lr
from ..training import label_noise_sgd, train
from .problems import Problem, Row, measure_row, timed

__all__ = [
    "SEARCH",
    "START",
    "MEMORIZERS",
    "REFERENCE",
    "trained",
    "searched",
    "memorizers",
    "reference",
    "competitors_of",
]

SEARCH = "flattest search"
START = "GN projection of random init (search start)"
MEMORIZERS = ("memorizer", "teacher + memorizer")
REFERENCE = "teacher network (reference)"
POLISH = " + GN polish"
POLISH_MAX_ITER = 500


def _polish_row(prob: Problem, claim: str, label: str, W, a, start: int, seconds: float) -> List[Row]:
    """The Gauss-Newton polish of a trained point, as its own row, by the package's one polish rule
    (:func:`flatext.polish.gauss_newton_polish`: the polished point where it lowered max|r|, else the
    trained point); ``stop`` is the polish's status (``"converged"``, ``"improved"``,
    ``"no improvement"``, ``"failed"``)."""
    pol, dt = timed(lambda: gauss_newton_polish(W, a, prob.X, prob.y, max_iter=POLISH_MAX_ITER, **prob.kw))
    note = pol.message or f"{pol.iterations} Gauss-Newton steps from max|r| {pol.max_residual_before:.2e}"
    row = measure_row(
        prob, claim, label + POLISH, pol.W, pol.a, start=start, seconds=seconds + dt, stop=pol.status, note=note[:200]
    )
    return [row]


def trained(
    prob: Problem,
    claim: str,
    which=("gd, small init", "gd, large init", "sam", "label_noise_sgd"),
    start: int = 0,
    max_iter=None,
) -> List[Row]:
    """Rows of the trainers (each measured where it stopped, then after a Gauss-Newton polish)."""
    cfg = prob.cfg
    rows: List[Row] = []
    for label in which:
        scale = cfg.small_init if label == "gd, small init" else cfg.large_init
        W0, a0 = prob.init(scale, start)
        if label == "label_noise_sgd":
            steps = cfg.lnsgd_steps
            res, dt = timed(
                lambda: label_noise_sgd(
                    W0,
                    a0,
                    prob.X,
                    prob.y,
                    noise=cfg.lnsgd_noise,
                    batch=min(cfg.lnsgd_batch, prob.n),
                    lr=cfg.lnsgd_lr,
                    max_iter=steps,
                    tol=cfg.gd_tol,
                    seed=[cfg.seed, prob.seed, 5],
                    **prob.kw,
                )
            )
            note = (
                f"noise {cfg.lnsgd_noise:g}, batch {cfg.lnsgd_batch}, lr {cfg.lnsgd_lr:g}, {res.iterations} "
                f"steps to loss {res.loss:.1e}"
            )
            stop = "max_iter (by design: drifts after fitting)" if res.reason == "max_iter" else res.reason
        else:
            method = "sam" if label == "sam" else "gd"
            steps = (
                max_iter
                if max_iter is not None
                else (cfg.gd_small_max_iter if label == "gd, small init" else cfg.gd_max_iter)
            )
            res, dt = timed(
                lambda: train(
                    W0,
                    a0,
                    prob.X,
                    prob.y,
                    method=method,
                    lr=_gd_lr(prob, W0, a0),
                    rho=cfg.sam_rho if method == "sam" else None,
                    max_iter=steps,
                    tol=cfg.gd_tol,
                    polish=False,
                    **prob.kw,
                )
            )
            note = f"lr {res.lr:.3g}, {res.iterations} steps to loss {res.loss:.1e}; {res.message}"
            stop = res.reason  # "tol", "max_iter", "diverged", "stationary" (SAM)
        rows.append(measure_row(prob, claim, label, res.W, res.a, start=start, seconds=dt, stop=stop, note=note))
        rows += _polish_row(prob, claim, label, res.W, res.a, start, dt)
    return rows


def _gd_lr(prob: Problem, W0, a0) -> float:
    """``lr="auto"`` (0.9 / lambda_max at the init, flatext.stepsize), at most ``cfg.gd_lr_cap``: from a
    small init the sharpness grows as GD leaves it, and 0.9 / lambda_max(init) = 1.2-1.7 diverged on
    all three he2+relu data sets of the default run."""
    lr, _ = resolve_lr("auto", W0, a0, prob.X, prob.y, **prob.kw)
    return min(prob.cfg.gd_lr_cap, lr)


def searched(prob: Problem, claim: str, starts: int, show_start: bool = True, method: str = "auto") -> List[Row]:
    """The flattest search (``method`` of :func:`flattest_interpolator`) from ``starts`` random starts
    (with each start's projection shown as such)."""
    cfg = prob.cfg
    rows: List[Row] = []
    for s in range(starts):
        W0, a0 = prob.init(cfg.large_init, 100 + s)
        proj, dt0 = timed(lambda: find_interpolator(W0, a0, prob.X, prob.y, max_iter=200, **prob.kw))
        if show_start:
            rows.append(
                measure_row(
                    prob,
                    claim,
                    START,
                    proj.W,
                    proj.a,
                    start=100 + s,
                    seconds=dt0,
                    stop="converged" if proj.converged else "max_iter",
                )
            )
        if not proj.converged:
            continue
        res, dt = timed(
            lambda: flattest_interpolator(
                proj.W, proj.a, prob.X, prob.y, max_iter=cfg.search_max_iter, method=method, **prob.kw
            )
        )
        rows.append(
            measure_row(
                prob,
                claim,
                SEARCH,
                res.W,
                res.a,
                start=100 + s,
                seconds=dt0 + dt,
                stop=res.reason,
                note=f"{res.method}: {res.iterations} iterations" + (f"; {res.message}" if res.message else ""),
            )
        )
    return rows


def memorizers(prob: Problem, claim: str) -> List[Row]:
    """The memorizer, and (noisy labels, representable teacher) the teacher plus a memorizer of the noise."""
    rows: List[Row] = []
    (Wm, am), dt = timed(lambda: memorizing_interpolator(prob.X, prob.y, m=max(prob.m, prob.n), **prob.kw))
    rows.append(measure_row(prob, claim, "memorizer", Wm, am, seconds=dt))
    net = prob.teacher_network()
    if prob.noise > 0 and net is not None and prob.eps == 0.0:
        (Wt, at), dt = timed(lambda: teacher_plus_memorizer(net[0], net[1], prob.X, prob.y, **prob.kw))
        rows.append(measure_row(prob, claim, "teacher + memorizer", Wt, at, seconds=dt))
    return rows


def reference(prob: Problem, claim: str) -> List[Row]:
    """The teacher as a network, when it interpolates (noise-free, representable)."""
    net = prob.teacher_network()
    if net is None or prob.noise > 0 or prob.eps > 0:
        return []
    return [measure_row(prob, claim, REFERENCE, net[0], net[1], note="pop loss 0 by construction")]


def competitors_of(rows: List[Row]) -> List[Row]:
    """Every row that competes with the flattest search: not the search, not its start."""
    return [r for r in rows if r.method not in (SEARCH, START)]
