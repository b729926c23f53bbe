"""Solver options: one frozen dataclass per solver, and the one rule that merges keywords into it.

Each solver takes ``options=`` (its options class, or a dict of the same names)
and, for backward compatibility and the common cases, the same names as keywords
(``tol=``, ``max_iter=``, ...). :func:`merge_options` is the single place where
the two meet (``docs/design.md``, "Solver options"):

- a keyword left at ``None`` is not given; the options' value (or its default) applies;
- a dict key that is not an option raises ``TypeError`` naming it (as an unexpected keyword);
- a name given both as a keyword and in ``options`` raises ``TypeError`` (an options
  object gives the fields whose values differ from the class defaults);
- a name given for a method that does not use it raises ``TypeError`` (as an
  unexpected keyword of that method): an option is never ignored silently;
- values are checked once, by the options class when it is built (``ValueError``
  or ``TypeError`` naming the option).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Iterable, TypeVar, Union

import numpy as np

from ._native import _core
from .convex.constants import DUAL_SOLVERS, SOLVERS
from .curvature import _int_arg
from .stepsize import parse_lr

__all__ = [
    "ConvexOptions",
    "InterpolationOptions",
    "LabelNoiseOptions",
    "SearchOptions",
    "TrainOptions",
    "merge_options",
]

O = TypeVar("O")  # noqa: E741


def given_fields(options: Any) -> dict[str, Any]:
    """The fields of an options object whose values differ from the class defaults."""
    out = {}
    for f in dataclasses.fields(options):
        v = getattr(options, f.name)
        if f.default is dataclasses.MISSING or v is not f.default and not _same(v, f.default):
            out[f.name] = v
    return out


def _same(v, default):
    try:
        return bool(type(v) is type(default) and v == default)
    except (TypeError, ValueError):  # e.g. an array: not a default
        return False


def merge_options(cls: type[O], options, keywords: dict[str, Any], *, where: str, ignored: Iterable[str] = ()) -> O:
    """``cls`` built from ``options`` (None, a ``cls`` or a mapping) and the keywords that
    are not None; ``where`` names the caller (and method) in messages, ``ignored`` the
    option names the method does not use."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    if options is None:
        base: dict[str, Any] = {}
    elif isinstance(options, cls):
        base = given_fields(options)
    elif isinstance(options, Mapping):
        base = dict(options)
        unknown = sorted(set(map(str, base)) - names)
        if unknown:
            known = ", ".join(sorted(names))
            raise TypeError(f"{where}: unknown option(s) {', '.join(map(repr, unknown))}; the options are {known}")
    else:
        raise TypeError(f"{where}: options must be a {cls.__name__} or a dict; got {type(options).__name__}")
    given = {k: v for k, v in keywords.items() if v is not None}
    both = sorted(given.keys() & base.keys())
    if both:
        raise TypeError(f"{where}: {', '.join(map(repr, both))} given both as a keyword and in options")
    merged = {**base, **given}
    unused = sorted(merged.keys() & set(ignored))
    if unused:
        raise TypeError(f"{where} does not use the option(s) {', '.join(map(repr, unused))}")
    return cls(**merged)


# Checks of single values, raising with the option's name.


def check_int(v, name: str, low: int) -> int:
    """An integer ``>= low`` (bool and float raise TypeError)."""
    k = _int_arg(v, name)
    if k < low:
        raise ValueError(f"{name} must be >= {low}; got {v!r}")
    return k


def _optional_int(v, name: str, low: int) -> int | None:
    """None, or an integer ``>= low``."""
    return None if v is None else check_int(v, name, low)


def check_real(v, name: str, low: float = 0.0, *, strict: bool = True, none: bool = False) -> float | None:
    """A finite real ``> low`` (``>= low`` when not ``strict``); None passes when ``none``."""
    if v is None and none:
        return None
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number; got {v!r}")
    if v < low or (strict and v == low):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low:g}; got {v!r}")
    return float(v)


def check_float_type(v, name: str) -> float | None:
    """None, or a real number as a float (its value is checked elsewhere); bool and others raise TypeError."""
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a number; got {type(v).__name__} {v!r}")
    return float(v)


def _number(v, name: str) -> float:
    """A real number as a float (its value is checked elsewhere); None, bool and others raise TypeError."""
    x = check_float_type(v, name)
    if x is None:
        raise TypeError(f"{name} must be a number; got None")
    return x


def check_lr(v, name: str = "lr"):
    """A number > 0 or a ``"auto"`` / ``"F/lambda_max"`` string (:func:`flatext.stepsize.parse_lr`)."""
    parse_lr(v, name)
    return v if isinstance(v, str) else float(v)


def check_bool(v, name: str) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {v!r}")
    return bool(v)


def set_checked(obj, **values) -> None:
    """Store checked values on a frozen dataclass (inside ``__post_init__``)."""
    for k, v in values.items():
        object.__setattr__(obj, k, v)


# The options classes. Their defaults are the C++ structs' where one exists (tests/test_options.py
# reads cpp/include/flatext/*.hpp and the compiled bindings' defaults and compares).

#: The defaults of the C++ ``flatext::InterpolationOptions`` (as the compiled module has them).
_CPP_INTERPOLATION = _core.InterpolationOptions()
#: The defaults of the C++ ``flatext::TrainOptions``.
_CPP_TRAIN = _core.TrainOptions()
_C_INT_MAX = 2**31 - 1


@dataclass(frozen=True)
class InterpolationOptions:
    """Options of :func:`flatext.find_interpolator` (the C++ ``flatext::InterpolationOptions``).

    The defaults are the C++ struct's (None stands for a rule below); the values are
    checked by the C++ ``InterpolationOptions::validate`` when the object is built.

    Attributes
    ----------
    tol : float or None
        Relative residual tolerance: success when ``max_j |r_j| <= tol * max(1, max_j |y_j|)``
        (> 0; None: 1e-10 for float64, the C++ default, and 1e-4 for float32).
    max_iter : int
        Accepted Gauss-Newton steps at most (>= 0; default 100).
    lambda_init : float or None
        Initial damping relative to ``trace(K)/n`` (> 0). None: 1e-6, the C++ default, and
        when that run ends at a non-interpolating point, retries from the start with 1e-3 and 1e-1.
    solver : {"auto", "cholesky", "cg"}
        Cholesky of the n x n Gram matrix, matrix-free conjugate gradients, or (``"auto"``,
        the default) Cholesky for ``n <= 4096`` and CG above.
    cg_rtol : float
        Relative accuracy of each CG solve (> 0; default 1e-4).
    cg_max_iter : int
        CG iterations per solve (>= 1; default 500).
    cg_rank : int or None
        Rank of the CG path's Nystrom preconditioner (>= 0; 0: Jacobi; None: ``min(n // 2, 1000)``).
    """

    tol: Union[float, None] = None
    max_iter: int = _CPP_INTERPOLATION.max_iter
    lambda_init: Union[float, None] = None
    solver: str = _CPP_INTERPOLATION.solver
    cg_rtol: float = _CPP_INTERPOLATION.cg_rtol
    cg_max_iter: int = _CPP_INTERPOLATION.cg_max_iter
    cg_rank: Union[int, None] = None

    def __post_init__(self):
        # the types here (TypeError naming the option), the values in C++ (ValueError naming it)
        tol, lam = check_float_type(self.tol, "tol"), check_float_type(self.lambda_init, "lambda_init")
        max_iter, cg_max_iter = _int_arg(self.max_iter, "max_iter"), _int_arg(self.cg_max_iter, "cg_max_iter")
        if not isinstance(self.solver, str):
            raise TypeError(f"solver must be a str; got {self.solver!r}")
        cg_rtol = check_float_type(self.cg_rtol, "cg_rtol")
        cg_rank = None if self.cg_rank is None else check_int(self.cg_rank, "cg_rank", 0)
        d = _CPP_INTERPOLATION
        _core.InterpolationOptions(
            tol=d.tol if tol is None else tol, max_iter=max_iter, lambda_init=d.lambda_init if lam is None else lam,
            solver=self.solver, cg_rtol=cg_rtol, cg_max_iter=cg_max_iter, cg_rank=-1 if cg_rank is None else cg_rank,
        )  # fmt: skip
        set_checked(self, tol=tol, max_iter=max_iter, lambda_init=lam, solver=self.solver, cg_rtol=cg_rtol,
                    cg_max_iter=cg_max_iter, cg_rank=cg_rank)  # fmt: skip


def _check_run(o) -> None:
    """The checks shared by :class:`TrainOptions` and :class:`LabelNoiseOptions`: the types here,
    the values of the loop's own fields (``lr``, ``max_iter``, ``tol``, ``record_every``, ``rho``)
    by the C++ ``TrainOptions::validate`` (a string ``lr`` is a rule, checked by
    :func:`flatext.stepsize.parse_lr`)."""
    lr = check_lr(o.lr)
    max_iter, record_every = _int_arg(o.max_iter, "max_iter"), _int_arg(o.record_every, "record_every")
    tol, rho = _number(o.tol, "tol"), _number(getattr(o, "rho", _CPP_TRAIN.rho), "rho")
    # the Python loop runs the C++ one in segments, so max_iter may exceed a C int: the struct checks its sign
    _core.TrainOptions(lr=_CPP_TRAIN.lr if isinstance(lr, str) else lr, rho=rho, max_iter=min(max_iter, _C_INT_MAX),
                       tol=tol, record_every=min(record_every, _C_INT_MAX))  # fmt: skip
    set_checked(
        o,
        lr=lr,
        max_iter=max_iter,
        tol=tol,
        record_every=record_every,
        polish=check_bool(o.polish, "polish"),
        polish_tol=check_real(o.polish_tol, "polish_tol", none=True),
        polish_max_iter=check_int(o.polish_max_iter, "polish_max_iter", 1),
        callback_every=check_int(o.callback_every, "callback_every", 1),
        noise=check_real(o.noise, "noise", strict=False),
        batch=None if o.batch is None else check_int(o.batch, "batch", 1),
        max_seconds=check_real(o.max_seconds, "max_seconds", none=True),
    )


@dataclass(frozen=True)
class _RunOptions:
    """The fields of the trainers' options (the defaults :func:`flatext.train`'s; the loop's own
    are the C++ ``flatext::TrainOptions``')."""

    lr: Union[float, str] = _CPP_TRAIN.lr
    max_iter: int = _CPP_TRAIN.max_iter
    tol: float = _CPP_TRAIN.tol
    record_every: int = _CPP_TRAIN.record_every
    polish: bool = True
    polish_tol: Union[float, None] = None
    polish_max_iter: int = 200
    callback_every: int = 100
    noise: float = 0.1
    batch: Union[int, None] = None
    seed: Any = 0
    max_seconds: Union[float, None] = None

    def __post_init__(self):
        _check_run(self)


@dataclass(frozen=True)
class TrainOptions(_RunOptions):
    """Options of :func:`flatext.train` (gradient descent, SAM, label-noise SGD).

    ``rho`` is SAM's alone; ``noise``, ``batch`` and ``seed`` are label-noise SGD's alone;
    ``polish_factor`` is GD's and SAM's (label-noise SGD polishes whenever ``polish``):
    giving one to a method that does not use it raises ``TypeError``.

    Attributes
    ----------
    lr : float or str
        Step size: a number > 0, ``"auto"`` or ``"F/lambda_max"`` (:mod:`flatext.stepsize`).
    max_iter : int
        Steps at most (>= 0).
    tol : float
        Loss tolerance (>= 0).
    record_every : int
        History stride in steps (>= 1).
    polish : bool
        Run the Gauss-Newton polish (:func:`flatext.find_interpolator`) after training.
    polish_tol : float or None
        Relative residual tolerance of the polish (None: as :class:`InterpolationOptions`).
    polish_max_iter : int
        Gauss-Newton steps of the polish at most (>= 1).
    callback_every : int
        Steps between callbacks (>= 1).
    noise : float
        Label-noise standard deviation (>= 0).
    batch : int or None
        Minibatch size (>= 1; None: ``min(n, 32)``).
    seed : int, sequence of int or numpy.random.Generator
        Seeds label-noise SGD's batches and noise.
    max_seconds : float or None
        Wall-clock budget of the call (> 0; None: none).
    rho : float
        SAM radius (> 0).
    polish_factor : float
        GD and SAM polish when the final loss is ``<= polish_factor * tol`` (>= 1).
    """

    rho: float = _CPP_TRAIN.rho
    polish_factor: float = 100.0

    def __post_init__(self):
        super().__post_init__()  # checks rho too (the C++ struct's field)
        set_checked(
            self,
            rho=float(self.rho),
            polish_factor=check_real(self.polish_factor, "polish_factor", 1.0, strict=False),
        )

    #: The options each method does not use.
    IGNORED = {
        "gd": ("rho", "noise", "batch", "seed"),
        "sam": ("noise", "batch", "seed"),
        "label_noise_sgd": ("rho", "polish_factor"),
    }


@dataclass(frozen=True)
class LabelNoiseOptions(_RunOptions):
    """Options of :func:`flatext.label_noise_sgd`: the fields of :class:`TrainOptions` but
    ``rho`` and ``polish_factor``, with ``stop_at_tol``; it records and polishes less by default
    (``record_every=100``, ``polish=False``, ``polish_max_iter=100``).

    Attributes
    ----------
    stop_at_tol : bool
        Stop at the first recorded full-batch loss ``<= tol`` (default False: label-noise SGD
        drifts after it fits).
    """

    record_every: int = 100
    polish: bool = False
    polish_max_iter: int = 100
    stop_at_tol: bool = False

    def __post_init__(self):
        super().__post_init__()
        set_checked(self, stop_at_tol=check_bool(self.stop_at_tol, "stop_at_tol"))


def _check_choice(v, name: str, choices: tuple) -> Any:
    if not any(v is c or (isinstance(v, str) and v == c) for c in choices):
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {v!r}")
    return v


@dataclass(frozen=True)
class SearchOptions:
    """Options of :func:`flatext.flattest_interpolator` (the search's part is the C++
    ``flatext::SearchOptions``, whose ``validate`` checks those values; None stands for the
    C++ default, or the rule below).

    ``cells_width`` and ``cells_rtol`` are the cell-sparse method's alone: giving one with ``method="manifold"``
    raises ``TypeError``. ``polish=None`` (never polish) differs from the default ``"auto"``.

    Attributes
    ----------
    max_iter : int
        Search iterations at most (>= 0; default 500).
    balance : bool
        Balance each trial point before its line-search test (default True).
    tol : float or None
        Relative residual tolerance of the retraction (> 0; None: 1e-10 float64, 1e-4 float32).
    gtol : float
        Converged when ``||g_t|| <= gtol ||g||`` (>= 0; default 1e-4).
    ftol, patience
        Stalled when the trace fell by at most ``ftol |T|`` over ``patience`` steps
        (ftol >= 0, default 1e-9; patience >= 1, default 10).
    lambda_rel : float or None
        Projection damping relative to ``trace(K)/n`` (> 0; None: the C++ 1e-10).
    retract_iter : int or None
        Chord and Gauss-Newton iterations of the retraction before its fallbacks (>= 1; None: 6).
    a_correction : bool or None
        The exact correction of ``a`` alone before the Gauss-Newton fallback (None: off).
    solver : {"auto", "cholesky", "cg"}
        Linear solver of the projections (default "auto": Cholesky up to n = 4096).
    cg_rtol, cg_max_iter, cg_rank
        The CG path's accuracy (> 0; None: 1e-8), iterations per solve (>= 1; None: 2000) and
        Nystrom preconditioner rank (>= 0, 0: Jacobi; None: ``min(n // 2, 1000)``).
    polish : {"auto", "convex", None}
        The convex polish (default "auto").
    polish_rounds : int
        Rounds of the convex polish at most (>= 1; default 4).
    seed : int
        Seeds the polish's and the cell-sparse method's random choices (default 0).
    method : {"auto", "manifold", "cells"}
        The method (default "auto").
    max_seconds : float or None
        Time budget of the call (> 0; None: none).
    cells_width : int or None
        Width of the cell-sparse method's penalty path (>= 1; None: ``min(m, max(100, n // 4))``).
    cells_rtol : float or None
        The cell-sparse method's pricing rounds end once a round lowered the restricted optimum by
        less than ``cells_rtol`` times it (>= 0; None: :data:`flatext.cells.CELLS_RTOL` = 1e-3 where
        the method runs alone, no such rule where it follows the search).
    """

    max_iter: int = 500
    balance: bool = True
    tol: Union[float, None] = None
    gtol: float = 1e-4
    ftol: float = 1e-9
    patience: int = 10
    lambda_rel: Union[float, None] = None
    retract_iter: Union[int, None] = None
    a_correction: Union[bool, None] = None
    solver: str = "auto"
    cg_rtol: Union[float, None] = None
    cg_max_iter: Union[int, None] = None
    cg_rank: Union[int, None] = None
    polish: Union[str, None] = "auto"
    polish_rounds: int = 4
    seed: int = 0
    method: str = "auto"
    max_seconds: Union[float, None] = None
    cells_width: Union[int, None] = None
    cells_rtol: Union[float, None] = None

    def __post_init__(self):
        # the fields of the C++ struct: their types here, their values by SearchOptions::validate
        shared = dict(
            tol=check_float_type(self.tol, "tol"),
            lambda_rel=check_float_type(self.lambda_rel, "lambda_rel"),
            gtol=_number(self.gtol, "gtol"),
            retract_iter=None if self.retract_iter is None else _int_arg(self.retract_iter, "retract_iter"),
            a_correction=None if self.a_correction is None else check_bool(self.a_correction, "a_correction"),
            balance=check_bool(self.balance, "balance"),
            solver=self.solver,
            cg_rtol=check_float_type(self.cg_rtol, "cg_rtol"),
            cg_max_iter=None if self.cg_max_iter is None else _int_arg(self.cg_max_iter, "cg_max_iter"),
        )
        if not isinstance(self.solver, str):
            raise TypeError(f"solver must be a str; got {self.solver!r}")
        _core.SearchOptions(**{k: v for k, v in shared.items() if v is not None})
        set_checked(
            self,
            **shared,
            max_iter=check_int(self.max_iter, "max_iter", 0),
            ftol=check_real(self.ftol, "ftol", strict=False),
            patience=check_int(self.patience, "patience", 1),
            cg_rank=None if self.cg_rank is None else check_int(self.cg_rank, "cg_rank", 0),
            polish=_check_choice(self.polish, "polish", ("auto", "convex", None)),
            polish_rounds=check_int(self.polish_rounds, "polish_rounds", 1),
            seed=_int_arg(self.seed, "seed"),
            method=_check_choice(self.method, "method", ("auto", "manifold", "cells")),
            max_seconds=check_real(self.max_seconds, "max_seconds", none=True),
            cells_width=None if self.cells_width is None else check_int(self.cells_width, "cells_width", 1),
            cells_rtol=check_real(self.cells_rtol, "cells_rtol", strict=False, none=True),
        )

    #: The options each method does not use.
    IGNORED = {"manifold": ("cells_width", "cells_rtol"), "cells": (), "auto": ()}


@dataclass(frozen=True)
class ConvexOptions:
    """Options of :func:`flatext.certified_flattest` (the cone program, its solver and its pricing).

    ``n_patterns``, ``pricing_max_add``, ``pricing_max_columns`` and ``pricing_rtol`` are the sampled patterns' alone
    and ``max_exact`` is
    ``patterns="auto"``'s alone: giving one with a mode that does not use it raises ``TypeError``.

    Attributes
    ----------
    patterns : {"auto", "exact", "sampled"}
        Every cell of the arrangement (certificate ``"global"``), sampled cells
        (``"upper_bound"``), or exact when the cell count is at most ``max_exact`` (default).
    n_patterns : int or None
        Random directions of the sampled patterns (>= 0; None: ``max(200, 10 n)``; 0: the
        warm starts' patterns alone).
    solver : {"clarabel", "ipm", "scs", "ecos", "cvxpy"}
        The conic solver (default "clarabel"); pricing needs "clarabel" or "ipm".
    seed : int
        Seeds the sampled directions and the pricing's candidates (default 0).
    tol : float
        Solver tolerance, gap and feasibility (in (0, 1e-2); default 1e-8).
    max_exact : int
        Cell-count limit of ``patterns="auto"`` (>= 1; default 200000).
    pricing_rounds : int or None
        Column-generation rounds at most (>= 0; None: 50 in exact mode and 5 with sampled
        patterns with "clarabel" or "ipm", else 0; > 0 needs one of those two).
    pricing_max_add : int or None
        Cells added per sampled pricing round at most (>= 1; None: n).
    pricing_max_columns : int or None
        Columns of each sampled pricing round's program at most, two groups of ``r + 1`` per
        cell (>= 1; None: no limit): fewer cells join, the most violated first; none fit, the
        rounds end (``info["pricing"]["column_limit"]``).
    pricing_rtol : float or None
        The sampled pricing rounds end once a round lowered the optimum by less than
        ``pricing_rtol`` times it (>= 0; None: they run while violated candidates are found, up to
        ``pricing_rounds``; ``info["pricing"]["small_gain"]`` says so).
    verbose : bool
        The solver's log (default False).
    max_seconds : float or None
        Wall-clock budget of the call (> 0; None: none).
    """

    patterns: str = "auto"
    n_patterns: Union[int, None] = None
    solver: str = "clarabel"
    seed: int = 0
    tol: float = 1e-8
    max_exact: int = 200000
    pricing_rounds: Union[int, None] = None
    pricing_max_add: Union[int, None] = None
    pricing_max_columns: Union[int, None] = None
    pricing_rtol: Union[float, None] = None
    verbose: bool = False
    max_seconds: Union[float, None] = None

    def __post_init__(self):
        tol = check_real(self.tol, "tol")
        if not tol < 1e-2:
            raise ValueError(f"tol must be a float in (0, 1e-2); got {self.tol!r}")
        rounds = None if self.pricing_rounds is None else check_int(self.pricing_rounds, "pricing_rounds", 0)
        solver = _check_choice(self.solver, "solver", SOLVERS)
        if rounds and solver not in DUAL_SOLVERS:
            raise ValueError(f"pricing_rounds > 0 needs a solver of {DUAL_SOLVERS} (their dual variables)")
        set_checked(
            self,
            patterns=_check_choice(self.patterns, "patterns", ("auto", "exact", "sampled")),
            n_patterns=_optional_int(self.n_patterns, "n_patterns", 0),
            solver=solver,
            seed=_int_arg(self.seed, "seed"),
            tol=tol,
            max_exact=check_int(self.max_exact, "max_exact", 1),
            pricing_rounds=rounds,
            pricing_max_add=None
            if self.pricing_max_add is None
            else check_int(self.pricing_max_add, "pricing_max_add", 1),
            pricing_max_columns=_optional_int(self.pricing_max_columns, "pricing_max_columns", 1),
            pricing_rtol=check_real(self.pricing_rtol, "pricing_rtol", 0.0, strict=False, none=True),
            verbose=check_bool(self.verbose, "verbose"),
            max_seconds=check_real(self.max_seconds, "max_seconds", none=True),
        )

    #: The options each ``patterns`` mode does not use.
    IGNORED = {
        "exact": ("n_patterns", "pricing_max_add", "pricing_max_columns", "pricing_rtol", "max_exact"),
        "sampled": ("max_exact",),
        "auto": (),
    }
