"""flatext: exact, fast curvature of two-layer homogeneous networks.

``f(x) = sum_i a_i sigma(w_i . x)`` with ``sigma(z) = max(z,0)^p + neg * max(-z,0)^p``
and the loss ``L = (1/(2n)) sum_j (f(x_j) - y_j)^2``. See ``README.md``.
"""

from importlib import metadata as _metadata

from . import teachers
from ._native import _core
from .convex import ConvexResult, arrangement_patterns, certified_flattest
from .curvature import (
    Objective,
    TraceParts,
    forward,
    hessian_top_eigenvalues,
    hessian_trace,
    hessian_trace_grad,
    hessian_trace_parts,
    hvp,
    loss,
    loss_grad,
    objective,
)
from .info import info
from .interpolators import (
    InterpolationResult,
    SearchResult,
    find_interpolator,
    flattest_interpolator,
    jvp,
    memorizing_interpolator,
    ntk_gram,
    teacher_plus_memorizer,
    vjp,
)
from .measure import Measurements, measure
from .options import ConvexOptions, InterpolationOptions, LabelNoiseOptions, SearchOptions, TrainOptions
from .paths import get_cmake_dir, get_include
from .population import PopulationEstimate, population_loss
from .sweeps import sweep
from .sweeps.plot import plot
from .symmetry import balance, orbit_min_trace, rescale
from .teachers import MultiIndex, PlantedNetwork, SumOfSingleIndex, sample_inputs
from .training import TrainResult, label_noise_sgd, train

__version__ = _metadata.version("flatext")


def get_num_threads():
    """Number of threads the kernels use (results never depend on it)."""
    return _core.get_num_threads()


def set_num_threads(k):
    """Set the kernels' thread count for the whole process; 0 restores the default."""
    from .curvature import _int_arg

    k = _int_arg(k, "k")
    if not 0 <= k < 2**31:
        raise ValueError(f"k must be >= 0 (0 restores the default); got {k}")
    _core.set_num_threads(k)


__all__ = [
    "forward",
    "loss",
    "loss_grad",
    "hessian_trace",
    "TraceParts",
    "hessian_trace_parts",
    "hessian_trace_grad",
    "hvp",
    "hessian_top_eigenvalues",
    "Objective",
    "objective",
    "rescale",
    "balance",
    "orbit_min_trace",
    "get_num_threads",
    "set_num_threads",
    "info",
    "sweep",
    "plot",
    "measure",
    "Measurements",
    "PopulationEstimate",
    "population_loss",
    "teachers",
    "SumOfSingleIndex",
    "MultiIndex",
    "PlantedNetwork",
    "sample_inputs",
    "get_include",
    "get_cmake_dir",
    "jvp",
    "vjp",
    "ntk_gram",
    "InterpolationResult",
    "SearchResult",
    "TrainResult",
    "InterpolationOptions",
    "ConvexOptions",
    "SearchOptions",
    "TrainOptions",
    "LabelNoiseOptions",
    "find_interpolator",
    "flattest_interpolator",
    "memorizing_interpolator",
    "teacher_plus_memorizer",
    "train",
    "label_noise_sgd",
    "ConvexResult",
    "arrangement_patterns",
    "certified_flattest",
]
