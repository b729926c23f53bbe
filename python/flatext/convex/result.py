"""The result of :func:`flatext.certified_flattest`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ConvexResult:
    """Result of :func:`certified_flattest`.

    Attributes
    ----------
    W : ndarray, shape (m, d)
    a : ndarray, shape (m,)
        A balanced network that interpolates (``max|r| <= tol``-checked), padded
        with zero neurons to width ``m`` when ``m`` was given.
    value : float
        ``flatext.orbit_min_trace(W, a, X, y, neg=neg)`` of the returned network.
    bound : float
        The optimum of the cone program over the patterns used (its primal
        objective). With ``certificate == "global"`` it is the infimum of the
        orbit-minimal trace over all interpolators (any width, no sample on a
        kink); ``value`` exceeds it by the solver's accuracy (typically 1e-9 to
        1e-5 relative; a RuntimeWarning above ``max(1e4 tol, 1e-4)``;
        ``docs/convex.md``).
    certificate : str
        ``"global"`` (every cell of the arrangement was a candidate) or
        ``"upper_bound"`` (sampled patterns, or exact pricing stopped by
        ``pricing_rounds``: ``bound`` and ``value`` are upper bounds of the
        global infimum).
    n_patterns : int
        Candidate patterns in the cone program.
    active_neurons : int
        Neurons of the optimum (non-zero rows before padding).
    solver : str
    status : str
        The conic solver's status.
    seconds : float
        Wall time of the whole call.
    max_residual : float
        ``max_j |f(x_j) - y_j|`` of the returned network.
    info : dict
        Timings of the parts, sizes of the cone program, ``stopped``
        (``"time_budget"``, ``"callback"`` or None: what ended the pricing
        rounds early), and ``pricing`` (the
        column generation's rounds, cells added, largest dual ratio; in exact
        mode with pricing also ``lower_bound``, a lower bound of the global
        optimum from the dual multipliers, and ``priced_exactly``).
    """

    W: np.ndarray = field(repr=False)
    a: np.ndarray = field(repr=False)
    value: float
    bound: float
    certificate: str
    n_patterns: int
    active_neurons: int
    solver: str
    status: str
    seconds: float
    max_residual: float
    info: dict = field(repr=False, default_factory=dict)
