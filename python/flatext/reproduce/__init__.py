"""``flatext reproduce``: the paper's claims, end to end, as checks that can fail.

Vardhan, Taheri, Mazumdar (2026), *Flatness and Generalization: Learning
Multi-Index Models with Homogeneous Neural Networks*. On embedded default
configurations, on several seeds (each seed: new teacher directions, inputs
and initializations), this module checks

1. the rescaling symmetry: rescalings keep the function and move the Hessian
   trace; the orbit-minimal trace is invariant and is the infimum over the
   orbit (no random rescaling beats it);
2. on a representable sum-of-single-index teacher, the flattest search's
   interpolator is the flattest of all interpolators found (GD from small and
   large init, SAM, label-noise SGD, each measured where it stopped and after a
   Gauss-Newton polish; memorizer; the teacher network) and the best
   generalizer; the same comparison on a non-representable teacher
   (``he2+relu``) is reported, outside the theorem's condition;
3. memorizing interpolators (two constructions) are sharper and generalize worse;
4. the flattest interpolator's population loss falls with n (fitted slope) and
   label noise raises it;
5. the theorem's regime: teachers with a controlled approximation error
   (``teacher + eps (|x|^2 - d - p)``, orthogonal to every p-homogeneous
   function) and label noise on a grid.

``--full`` adds the sample-complexity grid (d in {8, 16, 32}, k in {1, 2, 3}).
It writes ``results.parquet``, ``results.csv``, ``results.md``, ``claims.md`` and
PNG figures into the output folder (see ``docs/reproduce.md``). Population
losses are exact (Gaussian inputs), reported relative to the zero predictor's,
``E[(f - f*)^2] / E[f*^2]``. The exit status is 1 when a counted check fails.
"""

from __future__ import annotations

import argparse

from .claims import Check, check_all, check_claim1, check_claim2, check_claim3, check_claim4, check_claim5
from .config import TEACHERS, ReproduceConfig
from .problems import Row
from .runner import exit_status, reproduce

__all__ = [
    "ReproduceConfig",
    "reproduce",
    "add_parser",
    "Row",
    "Check",
    "check_all",
    "check_claim1",
    "check_claim2",
    "check_claim3",
    "check_claim4",
    "check_claim5",
    "TEACHERS",
]


def _run(args):
    kw = {}
    for k in ("d", "n", "starts", "seeds", "seed"):
        if getattr(args, k) is not None:
            kw[k] = getattr(args, k)
    if args.teacher is not None:
        kw["teacher"] = args.teacher
    if args.power is not None:
        kw["power"] = args.power
        if args.teacher is None and args.power == 2.0:
            kw["teacher"] = "relu2+relu2"
    if args.full:
        kw["full"] = True
    for k in ("full_ds", "full_ks", "full_ns"):
        if getattr(args, k) is not None:
            kw[k] = tuple(getattr(args, k))
    cfg = ReproduceConfig.quick_config(**kw) if args.quick else ReproduceConfig(**kw)
    _, checks = reproduce(cfg, out=args.out, progress=not args.no_progress, resume=not args.no_resume)
    return exit_status(checks)


def add_parser(sub):
    p = sub.add_parser("reproduce", help="reproduce the paper's claims as checks that can fail", description=__doc__)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--out", default="flatext-reproduce", help="output folder (default ./flatext-reproduce)")
    p.add_argument("--quick", action="store_true", help="a smaller run (under a minute), as in the tests")
    p.add_argument(
        "--full",
        action="store_true",
        help="add the sample-complexity grid (d in 8 16 32, k in 1 2 3; long: not run by default)",
    )
    p.add_argument("--full-ds", type=int, nargs="+", help="input dimensions of the --full grid (default 8 16 32)")
    p.add_argument(
        "--full-ks", type=int, nargs="+", help="numbers of teacher directions of the --full grid (default 1 2 3)"
    )
    p.add_argument(
        "--full-ns", type=int, nargs="+", help="sample sizes of the --full grid (default 50 100 200 400 800)"
    )
    p.add_argument("--d", type=int, help="input dimension (default 8)")
    p.add_argument("--n", type=int, help="sample size of claims 1-3 (default 100)")
    p.add_argument("--seeds", type=int, help="data sets per claim (default 3)")
    p.add_argument("--starts", type=int, help="random starts of the flattest search (default 2)")
    p.add_argument(
        "--teacher", choices=sorted(TEACHERS), help="main teacher (default relu+abs; relu2+relu2 when --power 2)"
    )
    p.add_argument("--power", type=float, help="activation degree p")
    p.add_argument("--seed", type=int, help="base seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--no-resume",
        action="store_true",
        help="recompute every step (default: reuse the steps an "
        "interrupted run with the same configuration and code saved in OUT/results.parquet.parts)",
    )
    p.set_defaults(func=_run)
