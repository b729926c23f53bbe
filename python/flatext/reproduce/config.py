"""What ``flatext reproduce`` runs: the configuration and the teachers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

__all__ = ["ReproduceConfig", "TEACHERS", "index_teacher_links"]

# name -> (links, weights, representable by a bias-free homogeneous network of the degree it is meant for)
TEACHERS = {
    "relu+abs": (("relu", "abs"), (1.0, 0.5), True),  # for p = 1
    "relu2+relu2": (("relu2", "relu2"), (1.0, 0.5), True),  # for p = 2
    "he2+relu": (("he2", "relu"), (1.0, 0.5), False),  # He2 = z^2 - 1: not p-homogeneous (p = 1 or 2)
    "tanh": (("tanh",), (1.0,), False),
}


def index_teacher_links(k: int, power: float) -> Tuple[Tuple[str, ...], Tuple[float, ...]]:
    """Links and weights of the k-index teacher of the sample-complexity study.

    Representable by a bias-free network of degree ``power`` (1: relu / abs; 2: relu2),
    weights 1, 0.5, 0.25, ...
    """
    base = ("relu", "abs") if power == 1.0 else ("relu2",)
    links = tuple(base[i % len(base)] for i in range(k))
    return links, tuple(0.5**i for i in range(k))


@dataclass(frozen=True)
class ReproduceConfig:
    """What ``flatext reproduce`` runs (the defaults are the README's run).

    Claims 1-3 run on ``seeds`` data sets of size ``n`` (each with its own
    teacher directions, inputs and initializations); claim 4 on ``seeds`` data
    sets for every n of ``sample_ns`` and noise of ``sample_noise``; claim 5 (the
    theorem's regime) on every (eps, noise) of ``regime_eps`` x ``regime_noise``.
    ``full`` adds the sample-complexity grid over ``full_ds`` x ``full_ks`` x
    ``full_ns`` (not run by default, nor in CI).
    """

    d: int = 8
    n: int = 100
    width_factor: float = 2.0  # m = width_factor * n
    power: float = 1.0
    neg: float = 0.0
    teacher: str = "relu+abs"  # representable teacher
    edge_teacher: str = "he2+relu"  # non-representable one (outside the theorem's condition)
    seeds: int = 3
    starts: int = 3  # random starts of the flattest search per data set
    small_init: float = 1e-2
    large_init: float = 1.0
    gd_max_iter: int = 5000
    gd_small_max_iter: int = 20000  # GD from small init is slow to interpolate: more steps
    gd_tol: float = 1e-16  # loss at which GD counts as interpolating (max|r| ~ 1e-8 * label scale)
    sam_rho: float = 0.05
    gd_lr_cap: float = 0.2  # GD and SAM: lr = min(gd_lr_cap, 0.9 / lambda_max(init)) (methods._gd_lr)
    lnsgd_noise: float = 0.5
    lnsgd_batch: int = 10
    lnsgd_steps: int = 10000
    lnsgd_lr: float = 0.02
    search_max_iter: int = 200
    # the flattest search's method (flatext.flattest_interpolator): claims 2-3 compare it with every
    # other interpolator, so it is the default ("auto": the search, then the cell-sparse method);
    # claims 4-5 and the full grid read trends over many problems from the search alone (seconds each)
    search_method: str = "auto"
    trend_search_method: str = "manifold"
    rescale_draws: int = 10
    sample_ns: Sequence[int] = (50, 100, 200)
    sample_noise: Sequence[float] = (0.0, 0.3)
    regime_n: int = 100
    regime_eps: Sequence[float] = (0.0, 0.03, 0.1, 0.3)
    regime_noise: Sequence[float] = (0.0, 0.1, 0.3)
    full: bool = False
    full_ds: Sequence[int] = (8, 16, 32)
    full_ks: Sequence[int] = (1, 2, 3)
    full_ns: Sequence[int] = (50, 100, 200, 400, 800)
    full_target: float = 1e-2  # relative population loss whose sample size is reported
    seed: int = 0
    quick: bool = False

    @classmethod
    def quick_config(cls, **kw):
        """A small run (tests, ``--quick``): seconds.

        d = 6 is outside :func:`flatext.flattest_interpolator`'s automatic
        convex polish (``d <= 5``), like the default run's d = 8: the quick run
        checks the same search the default run does, without the certified
        polish, which costs 15-50 s per search at d = 4-5, n = 30-60 (the polish
        has its own tests).
        """
        base = dict(
            d=6,
            n=40,
            seeds=2,
            starts=1,
            gd_max_iter=3000,
            gd_small_max_iter=4000,
            lnsgd_steps=3000,
            lnsgd_batch=8,
            search_max_iter=60,
            rescale_draws=5,
            sample_ns=(30, 60),
            sample_noise=(0.0, 0.3),
            regime_n=40,
            regime_eps=(0.0, 0.3),
            regime_noise=(0.0, 0.3),
            full_ds=(6,),
            full_ks=(1, 2),
            full_ns=(30, 60),
            quick=True,
        )
        base.update(kw)
        return cls(**base)

    @property
    def m(self) -> int:
        return int(round(self.width_factor * self.n))
