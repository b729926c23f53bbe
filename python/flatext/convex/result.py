"""The result of :func:`flatext.certified_flattest`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..results import ResultFields
from .constants import PRICE_THRESHOLD

#: The sentence of each stop reason (:attr:`ConvexResult.message`).
_MESSAGES = {
    "global_optimum": "the global optimum: every cell of the arrangement was a candidate",
    "restricted_optimum": "the optimum over the sampled cells; the last pricing round found no violated candidate",
    "program_optimum": "the optimum over the given cells (no pricing rounds)",
    "pricing_rounds": "the pricing rounds ran out with violated candidate cells left (value is an upper bound)",
    "small_gain": "a pricing round lowered the optimum by less than pricing_rtol (value is an upper bound)",
    "time_budget": "max_seconds reached: the pricing rounds stopped (value is an upper bound)",
    "callback": "the callback stopped the pricing rounds (value is an upper bound)",
}


@dataclass(frozen=True, repr=False)
class ConvexResult(ResultFields):
    """Result of :func:`certified_flattest` (the common fields: :mod:`flatext.results`).

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

    The common fields are read from the above (properties): ``reason``
    (``"global_optimum"``, ``"restricted_optimum"``: sampled cells and no violated
    candidate in the last pricing round, ``"program_optimum"``: sampled cells and
    no pricing, ``"pricing_rounds"``, ``"small_gain"``: a round lowered the optimum by less
    than ``pricing_rtol`` times it, ``"time_budget"``, ``"callback"``),
    ``message``, ``converged`` (``reason in CONVERGED_REASONS``: the cone program's
    optimum over the cells it was asked to price), ``iterations`` (pricing rounds)
    and ``history`` (empty: the rounds keep no per-round record; ``info["pricing"]``
    has their totals).
    """

    #: The stop reasons that count as ``converged``.
    CONVERGED_REASONS = ("global_optimum", "restricted_optimum", "program_optimum")
    REPR_FIELDS = ("value", "bound", "certificate", "n_patterns", "active_neurons", "max_residual")

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

    @property
    def reason(self) -> str:
        """Why the pricing rounds ended (see the class docstring)."""
        if self.certificate == "global":
            return "global_optimum"
        if self.info.get("stopped"):
            return str(self.info["stopped"])
        ratio = self.info.get("pricing", {}).get("max_ratio")
        if ratio is None:
            return "program_optimum"
        if ratio <= PRICE_THRESHOLD:
            return "restricted_optimum"
        return "small_gain" if self.info["pricing"].get("small_gain") else "pricing_rounds"

    @property
    def message(self) -> str:
        """The stop reason in a sentence, with the value and the bound."""
        return f"{_MESSAGES[self.reason]}; value {self.value:.10g}, bound {self.bound:.10g}"

    @property
    def converged(self) -> bool:
        """``reason in CONVERGED_REASONS``."""
        return self.reason in self.CONVERGED_REASONS

    @property
    def iterations(self) -> int:
        """Pricing rounds (re-solves after cells were added)."""
        return int(self.info.get("pricing", {}).get("rounds", 0))

    @property
    def history(self) -> dict:
        """Empty: the pricing rounds keep no per-round record (``info["pricing"]`` has their totals)."""
        return {}
