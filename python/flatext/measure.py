"""The standard measurements of a network in one call: :func:`measure` -> :class:`Measurements`.

Train loss (with the 1/2, and as a mean square without it), residuals, Hessian trace, orbit-minimal trace, top Hessian
eigenvalue, population loss against a teacher with the zero predictor's
(the null loss) and their ratio, each timed. The sweeps build their rows from
it, so a script and a sweep row agree by construction.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, fields
from typing import Optional

import numpy as np

from .curvature import forward, hessian_top_eigenvalues, hessian_trace, loss
from .population import population_loss
from .symmetry import orbit_min_trace
from .teachers import INPUTS

__all__ = ["MEASUREMENTS", "Measurements", "measure"]

MEASUREMENTS = ("train_loss", "max_residual", "trace", "orbit_min_trace", "top_eigenvalue", "population_loss")
"""Names accepted by ``measure(which=...)`` (``train_loss`` also gives ``train_mse``; ``population_loss``
also gives ``null_loss`` and the ratio)."""


@dataclass(frozen=True)
class Measurements:
    """The measurements of one network (see :func:`measure`).

    A field is None when it was not asked for (``which``); a measured value
    that does not exist is NaN and ``notes`` says why.

    Loss conventions: ``train_loss`` is the trainers' objective
    ``(1/(2n)) sum_j r_j^2`` (with the 1/2); ``train_mse = (1/n) sum_j r_j^2 =
    2 train_loss`` and ``population_loss = E_x[(f(x) - f*(x))^2]`` have no 1/2:
    compare ``train_mse`` with ``population_loss``.

    Attributes
    ----------
    train_loss : float or None
        ``L = (1/(2n)) sum_j r_j^2``, :func:`flatext.loss` (with the 1/2).
    train_mse : float or None
        ``(1/n) sum_j r_j^2 = 2 L`` (no 1/2: the convention of ``population_loss``).
    max_residual : float or None
        ``max_j |r_j|``, ``r = forward(W, a, X) - y``.
    max_residual_rel : float or None
        ``max_residual / max(1, max_j |y_j|)``: the scale of every residual
        tolerance in flatext (``find_interpolator(tol=...)``).
    trace : float or None
        Exact Hessian trace, :func:`flatext.hessian_trace`.
    orbit_min_trace : float or None
        :func:`flatext.orbit_min_trace`; NaN when no orbit minimum exists
        (away from interpolation some ``B_i <= 0``), with the reason in ``notes``.
    top_eigenvalue : float or None
        Largest Hessian eigenvalue, :func:`flatext.hessian_top_eigenvalues`
        (a Lanczos run that did not reach its tolerance is noted in ``notes``).
    population_loss : float or None
        ``E_x[(f(x) - f*(x))^2]`` (no 1/2), :func:`flatext.population_loss`.
    population_stderr : float or None
        Its standard error (0 for the exact method).
    null_loss : float or None
        The zero predictor's population loss ``E_x[f*(x)^2]`` (same method and
        samples).
    population_loss_rel : float or None
        ``population_loss / null_loss`` (NaN if the null loss is 0): below 1
        the network does better than predicting 0.
    population_method : str or None
        ``"exact"`` or ``"mc"``.
    seconds : dict
        Wall-clock seconds per measurement name.
    notes : tuple of str
        Why a value is NaN, or a warning raised while measuring.
    """

    train_loss: Optional[float] = None
    train_mse: Optional[float] = None
    max_residual: Optional[float] = None
    max_residual_rel: Optional[float] = None
    trace: Optional[float] = None
    orbit_min_trace: Optional[float] = None
    top_eigenvalue: Optional[float] = None
    population_loss: Optional[float] = None
    population_stderr: Optional[float] = None
    null_loss: Optional[float] = None
    population_loss_rel: Optional[float] = None
    population_method: Optional[str] = None
    seconds: dict = field(default_factory=dict)
    notes: tuple = ()

    def as_dict(self):
        """All fields as a dict (``seconds`` a dict, ``notes`` a list)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["seconds"] = dict(self.seconds)
        out["notes"] = list(self.notes)
        return out

    def to_row(self):
        """A flat dict for a table row: the measured values (fields left None are
        absent), ``time_<name>`` seconds per measurement, and ``notes`` (one
        string, or None)."""
        row = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("seconds", "notes") and getattr(self, f.name) is not None
        }
        for k, v in self.seconds.items():
            row[f"time_{k}"] = v
        row["notes"] = "\n".join(self.notes) if self.notes else None
        return row

    def __repr__(self):
        # the losses first, side by side with their conventions, then the rest
        first = ("train_loss", "train_mse", "population_loss")
        names = [n for n in first if isinstance(getattr(self, n), float)]
        names += [f.name for f in fields(self) if f.name not in first and isinstance(getattr(self, f.name), float)]
        vals = ", ".join(f"{n}={getattr(self, n):.6g}" for n in names)
        conv = []
        if "train_loss" in names:
            conv.append("train_loss = (1/2n) sum r^2")
        if "train_mse" in names or "population_loss" in names:
            conv.append("train_mse = (1/n) sum r^2, population_loss = E(f - f*)^2: no 1/2")
        return f"Measurements({vals})" + (f"  [{'; '.join(conv)}]" if conv else "")


def _which(which, teacher):
    if which is None:
        return [w for w in MEASUREMENTS if w != "population_loss" or teacher is not None]
    if isinstance(which, str) or not all(isinstance(w, str) for w in which):
        raise TypeError(f"which must be None or a list of names from {list(MEASUREMENTS)}; got {which!r}")
    for w in which:
        if w not in MEASUREMENTS:
            raise ValueError(f"which: unknown measurement {w!r}; expected some of {list(MEASUREMENTS)}")
    if "population_loss" in which and teacher is None:
        raise ValueError("which: 'population_loss' needs a teacher (teacher=None)")
    return [w for w in MEASUREMENTS if w in which]


def measure(
    W,
    a,
    X,
    y,
    teacher=None,
    *,
    power=1.0,
    neg=0.0,
    which=None,
    inputs="gaussian",
    spectrum=None,
    population="auto",
    n_samples=100_000,
    seed=0,
):
    """The standard measurements of the network ``(W, a)`` on data ``(X, y)``, in one call.

    Each value is the direct kernel call (:func:`flatext.loss`,
    :func:`flatext.hessian_trace`, :func:`flatext.orbit_min_trace`,
    :func:`flatext.hessian_top_eigenvalues`, :func:`flatext.population_loss`);
    nothing is recomputed differently here.

    Parameters
    ----------
    W : array_like, shape (m, d)
    a : array_like, shape (m,)
    X : array_like, shape (n, d)
    y : array_like, shape (n,)
        Training data (same dtype as ``W`` and ``a``).
    teacher : flatext.teachers.Teacher, optional
        Needed for the population loss (measured whenever a teacher is given
        and ``which`` does not leave it out).
    power, neg : float
        The activation ``max(z,0)^power + neg * max(-z,0)^power``.
    which : list of str, optional
        Names from :data:`MEASUREMENTS` (default: all; the population loss
        only with a teacher).
    inputs : {"gaussian", "sphere", "rademacher", "anisotropic"}
        The input law of the population loss (the law the training inputs came from).
    spectrum : array_like (d,), optional
        Covariance diagonal for ``inputs="anisotropic"``.
    population : {"auto", "exact", "mc"}
        Population-loss method; ``"auto"``: exact for Gaussian inputs, else Monte Carlo.
    n_samples : int
        Monte Carlo samples (``"mc"``).
    seed : int
        Monte Carlo seed (the null loss uses the same samples).

    Returns
    -------
    Measurements
        Typed record; ``.as_dict()`` and ``.to_row()`` (a flat dict for pandas).

    Raises
    ------
    ValueError, TypeError
        Bad ``which``, ``inputs`` or ``population``; a population loss without
        a teacher; bad arrays (from the kernels).
    """
    names = _which(which, teacher)
    if inputs not in INPUTS:
        raise ValueError(f"inputs must be one of {INPUTS}; got {inputs!r}")
    if population not in ("auto", "exact", "mc"):
        raise ValueError(f"population must be 'auto', 'exact' or 'mc'; got {population!r}")
    kw = dict(power=power, neg=neg)
    vals, seconds, notes = {}, {}, []
    for name in names:
        t0 = time.perf_counter()
        if name == "train_loss":
            vals["train_loss"] = float(loss(W, a, X, y, **kw))
            vals["train_mse"] = 2.0 * vals["train_loss"]
        elif name == "max_residual":
            r = forward(W, a, X, **kw) - np.asarray(y)
            vals["max_residual"] = float(np.max(np.abs(r)))
            vals["max_residual_rel"] = vals["max_residual"] / max(1.0, float(np.max(np.abs(y))))
        elif name == "trace":
            vals["trace"] = float(hessian_trace(W, a, X, y, **kw))
        elif name == "orbit_min_trace":
            try:
                vals["orbit_min_trace"] = float(orbit_min_trace(W, a, X, y, **kw))
            except ValueError as e:  # no minimum away from interpolation
                vals["orbit_min_trace"] = float("nan")
                notes.append(f"orbit_min_trace: {e}")
        elif name == "top_eigenvalue":
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                vals["top_eigenvalue"] = float(hessian_top_eigenvalues(W, a, X, y, 1, **kw)[0])
            notes.extend(f"top_eigenvalue: {w.message}" for w in caught)
        else:
            method = population if population != "auto" else ("exact" if inputs == "gaussian" else "mc")
            pkw = dict(kw, method=method, inputs=inputs, spectrum=spectrum)
            if method == "mc":
                pkw.update(n_samples=n_samples, seed=seed)
            Wf = np.asarray(W, dtype=np.float64)
            v = population_loss(Wf, np.asarray(a, dtype=np.float64), teacher, **pkw)
            z = population_loss(np.zeros((1, Wf.shape[1])), np.zeros(1), teacher, **pkw)
            vals.update(
                population_loss=float(v.value),
                population_stderr=float(v.stderr),
                null_loss=float(z.value),
                population_loss_rel=float(v.value) / float(z.value) if z.value > 0 else float("nan"),
                population_method=method,
            )
        seconds[name] = time.perf_counter() - t0
    return Measurements(**vals, seconds=seconds, notes=tuple(notes))
