"""One training problem of the reproduction and the row that records a point on it."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..measure import measure
from ..population import population_loss
from ..teachers import SumOfSingleIndex, with_approximation_error
from .config import TEACHERS, ReproduceConfig

__all__ = ["Row", "Problem", "measure_row", "interpolates", "RESIDUAL_TOL"]

# A point interpolates when max_j |r_j| <= RESIDUAL_TOL * label scale (label scale: max(1, max|y|)),
# the target of the Gauss-Newton projection, 1e-10, with a 100x margin for the kernels' round-off.
RESIDUAL_TOL = 1e-8


@dataclass
class Row:
    """One point (a network) on one problem, measured."""

    claim: str  # "1" .. "5", or "full" (sample-complexity grid)
    teacher: str
    d: int
    k: int  # number of teacher directions
    n: int
    m: int
    noise: float
    eps: float  # weight of the non-representable part (claim 5)
    approx_error: float  # eps^2 (2d + p^2): population loss of the best network (NaN if unknown)
    method: str  # how the point was found
    seed: int  # data seed
    start: int  # initialization / search start (-1: none)
    trace: float
    orbit_min_trace: float
    max_residual: float
    rel_max_residual: float  # max|r| / max(1, max|y|)
    train_loss: float
    pop_loss: float
    null_loss: float  # population loss of the zero predictor, E[f*^2]
    rel_pop_loss: float  # pop_loss / null_loss
    seconds: float
    stop: str = ""  # why the method stopped ("max_iter" flags a run cut short)
    note: str = ""

    @property
    def representable(self) -> bool:
        return "not representable" not in self.teacher


def interpolates(r: Row) -> bool:
    """max|r| within :data:`RESIDUAL_TOL` of the label scale ``max(1, max|y|)``: orbit-minimal traces
    of points off the interpolation set are not comparable (their residual part differs)."""
    return math.isfinite(r.rel_max_residual) and r.rel_max_residual <= RESIDUAL_TOL


class Problem:
    """One (teacher, d, n, noise, eps, seed) training set with its exact population loss.

    The teacher's directions, the inputs, the label noise and every
    initialization derive from ``seed`` (and the configuration's base seed).
    """

    def __init__(
        self,
        cfg: ReproduceConfig,
        teacher: str,
        n: int,
        noise: float = 0.0,
        seed: int = 0,
        eps: float = 0.0,
        d: Optional[int] = None,
        links: Optional[Sequence[str]] = None,
        weights: Optional[Sequence[float]] = None,
    ):
        if links is None:
            links, weights, representable = TEACHERS[teacher]
        else:
            representable = True
        self.cfg = cfg
        self.d = int(d if d is not None else cfg.d)
        self.k = len(links)
        self.representable = representable
        base = SumOfSingleIndex.random(
            self.d, list(links), weights=None if weights is None else list(weights), seed=cfg.seed + 1000 + 7 * seed
        )
        self.base = base
        self.eps = float(eps)
        if eps > 0:
            self.teacher = with_approximation_error(base, eps, power=cfg.power)
            self.approx_error = self.teacher.approximation_error
            self.name = f"{teacher} + {eps:g} (|x|^2 - d - p)"
        else:
            self.teacher = base
            self.approx_error = 0.0 if representable else float("nan")
            self.name = teacher
        if not representable:
            self.name += " (not representable)"
        self.n = int(n)
        self.m = int(round(cfg.width_factor * n))
        self.noise = float(noise)
        self.seed = int(seed)
        self.X, self.y = self.teacher.sample(n, noise=noise, seed=cfg.seed + 7919 * seed + 31 * n + 1)
        self.label_scale = max(1.0, float(np.max(np.abs(self.y))))
        self.null = self.pop(np.zeros((1, self.d)), np.zeros(1))
        self.kw = dict(power=cfg.power, neg=cfg.neg)

    def pop(self, W, a) -> float:
        return float(population_loss(W, a, self.teacher, power=self.cfg.power, neg=self.cfg.neg, method="exact").value)

    def init(self, scale: float, start: int):
        """Gaussian init: rows of W with norm ~ scale, a with norm ~ scale."""
        rng = np.random.default_rng([self.cfg.seed, self.seed, start, 17])
        W = rng.standard_normal((self.m, self.d)) * (scale / math.sqrt(self.d))
        a = rng.standard_normal(self.m) * (scale / math.sqrt(self.m))
        return W, a

    def teacher_network(self):
        """The representable part of the teacher as a network of degree p (None if it is not one).

        For a ReLU^p network (``neg = 0``) a link atom ``coef (z+^p + c z-^p)`` is the
        neuron ``u`` with weight ``coef`` plus, if ``c != 0``, the neuron ``-u`` with
        weight ``coef c`` (``z-^p = (-z)+^p``). Other activations: None.
        """
        if not self.representable or self.cfg.neg != 0.0:
            return None
        ex = self.base._expansion()
        if ex.general or ex.const != 0.0:
            return None
        W, a = [], []
        for v, q, c, coef in zip(ex.V, ex.power, ex.neg, ex.coef):
            if q != self.cfg.power:
                return None
            W.append(v)
            a.append(coef)
            if c != 0.0:  # c z-^p = c (-z)+^p
                W.append(-v)
                a.append(coef * c)
        return np.array(W), np.array(a)


def measure_row(
    prob: Problem,
    claim: str,
    method: str,
    W,
    a,
    *,
    start: int = -1,
    seconds: float = 0.0,
    stop: str = "",
    note: str = "",
) -> Row:
    """Measure (W, a) on ``prob`` with :func:`flatext.measure`: a reproduction row and a
    script's measurement agree by construction (the population loss is exact: Gaussian inputs)."""
    m = measure(
        W,
        a,
        prob.X,
        prob.y,
        prob.teacher,
        which=["train_loss", "max_residual", "trace", "orbit_min_trace", "population_loss"],
        population="exact",
        **prob.kw,
    )
    return Row(
        claim=claim,
        teacher=prob.name,
        d=prob.d,
        k=prob.k,
        n=prob.n,
        m=int(np.shape(W)[0]),
        noise=prob.noise,
        eps=prob.eps,
        approx_error=prob.approx_error,
        method=method,
        seed=prob.seed,
        start=start,
        trace=m.trace,
        orbit_min_trace=m.orbit_min_trace,
        max_residual=m.max_residual,
        rel_max_residual=m.max_residual_rel,
        train_loss=m.train_loss,
        pop_loss=m.population_loss,
        null_loss=m.null_loss,
        rel_pop_loss=m.population_loss_rel,
        seconds=float(seconds),
        stop=stop,
        note=note,
    )


def timed(fn):
    """``(fn(), seconds)``."""
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t
