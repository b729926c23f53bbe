"""The reproduction as independent steps, each a function returning rows."""

from __future__ import annotations

from functools import partial
from typing import Callable, List, Tuple

import numpy as np

from ..interpolators import find_interpolator
from ..symmetry import balance, rescale
from . import methods
from .config import ReproduceConfig, index_teacher_links
from .problems import Problem, Row, measure_row

__all__ = ["steps", "claim1_rows", "claim2_rows", "RESCALE_LOG_SDS"]

RESCALE_LOG_SDS = (0.01, 0.1, 1.0, 3.0)


def claim1_rows(cfg: ReproduceConfig, seed: int) -> List[Row]:
    """One interpolator (GN projection of a random init), its global and random per-neuron rescalings,
    and its balanced point."""
    prob = Problem(cfg, cfg.teacher, cfg.n, seed=seed)
    W0, a0 = prob.init(cfg.large_init, 0)
    base = find_interpolator(W0, a0, prob.X, prob.y, max_iter=200, **prob.kw)
    rows = [measure_row(prob, "1", "base interpolator", base.W, base.a, start=0)]
    p = cfg.power
    for k in range(-3, 4):
        if k == 0:
            continue
        W, a = rescale(base.W, base.a, 10.0**k, power=p)
        rows.append(measure_row(prob, "1", f"global rescale t=1e{k:+d}", W, a, start=0))
    rng = np.random.default_rng([cfg.seed, seed, 1])
    for s in RESCALE_LOG_SDS:
        for i in range(cfg.rescale_draws):
            t = np.exp(rng.normal(0.0, s, size=base.a.shape))
            W, a = rescale(base.W, base.a, t, power=p)
            rows.append(measure_row(prob, "1", f"random per-neuron rescale (log-sd {s:g})", W, a, start=i))
    Wb, ab = balance(base.W, base.a, prob.X, prob.y, **prob.kw)
    rows.append(measure_row(prob, "1", "balanced (orbit minimum)", Wb, ab, start=0))
    # random rescalings of the balanced point: the orbit minimum is a minimum, not just a stationary point
    for s in RESCALE_LOG_SDS[:2]:
        for i in range(cfg.rescale_draws):
            t = np.exp(rng.normal(0.0, s, size=ab.shape))
            W, a = rescale(Wb, ab, t, power=p)
            rows.append(measure_row(prob, "1", f"balanced, then random rescale (log-sd {s:g})", W, a, start=i))
    return rows


def claim2_rows(cfg: ReproduceConfig, teacher: str, seed: int) -> List[Row]:
    """Every interpolator of claims 2-3 on one data set."""
    prob = Problem(cfg, teacher, cfg.n, seed=seed)
    rows = methods.reference(prob, "2")
    rows += methods.trained(prob, "2")
    rows += methods.memorizers(prob, "2")
    rows += methods.searched(prob, "2", cfg.starts, method=cfg.search_method)
    return rows


def _search_only(prob: Problem, claim: str) -> List[Row]:
    return methods.searched(prob, claim, 1, show_start=False, method=prob.cfg.trend_search_method)


def claim4_rows(cfg: ReproduceConfig, n: int, noise: float, seed: int) -> List[Row]:
    return _search_only(Problem(cfg, cfg.teacher, n, noise=noise, seed=seed), "4")


def claim5_rows(cfg: ReproduceConfig, eps: float, noise: float, seed: int) -> List[Row]:
    prob = Problem(cfg, cfg.teacher, cfg.regime_n, noise=noise, seed=seed, eps=eps)
    rows = _search_only(prob, "5")
    if noise == 0.0:  # the strongest competitor, to show on which side of the condition each eps falls
        rows += methods.trained(prob, "5", which=("gd, small init",), max_iter=cfg.gd_max_iter)
    if eps == 0.0 and noise > 0:
        rows += methods.memorizers(prob, "5")
    return rows


def full_rows(cfg: ReproduceConfig, d: int, k: int, n: int, seed: int) -> List[Row]:
    links, weights = index_teacher_links(k, cfg.power)
    prob = Problem(cfg, f"{k}-index", n, seed=seed, d=d, links=links, weights=weights)
    return _search_only(prob, "full")


def steps(cfg: ReproduceConfig) -> List[Tuple[str, Callable[[], List[Row]]]]:
    """(key, function returning rows) for every step of the run, in order."""
    out: List[Tuple[str, Callable[[], List[Row]]]] = []
    S = range(cfg.seeds)
    for s in S:
        out.append((f"claim1-s{s}", partial(claim1_rows, cfg, s)))
    for te in (cfg.teacher, cfg.edge_teacher):
        for s in S:
            out.append((f"claim2-{te}-s{s}", partial(claim2_rows, cfg, te, s)))
    for noise in cfg.sample_noise:
        for n in cfg.sample_ns:
            for s in S:
                out.append((f"claim4-noise{noise:g}-n{n}-s{s}", partial(claim4_rows, cfg, n, noise, s)))
    for eps in cfg.regime_eps:
        for noise in cfg.regime_noise:
            for s in S:
                out.append((f"claim5-eps{eps:g}-noise{noise:g}-s{s}", partial(claim5_rows, cfg, eps, noise, s)))
    if cfg.full:
        for d in cfg.full_ds:
            for k in cfg.full_ks:
                for n in cfg.full_ns:
                    for s in S:
                        out.append((f"full-d{d}-k{k}-n{n}-s{s}", partial(full_rows, cfg, d, k, n, s)))
    return out
