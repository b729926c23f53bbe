# Type stubs for flatext's public API.
import os
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import teachers as teachers
from .convex import ConvexResult as ConvexResult
from .convex import arrangement_patterns as arrangement_patterns
from .convex import certified_flattest as certified_flattest
from .curvature import TraceParts as TraceParts
from .interpolators import InterpolationResult as InterpolationResult
from .interpolators import SearchResult as SearchResult
from .interpolators import TrainResult as TrainResult
from .interpolators import find_interpolator as find_interpolator
from .interpolators import flattest_interpolator as flattest_interpolator
from .interpolators import jvp as jvp
from .interpolators import memorizing_interpolator as memorizing_interpolator
from .interpolators import ntk_gram as ntk_gram
from .interpolators import teacher_plus_memorizer as teacher_plus_memorizer
from .interpolators import train as train
from .interpolators import vjp as vjp
from .paths import get_cmake_dir as get_cmake_dir
from .paths import get_include as get_include
from .population import PopulationEstimate as PopulationEstimate
from .population import population_loss as population_loss
from .teachers import MultiIndex as MultiIndex
from .teachers import PlantedNetwork as PlantedNetwork
from .teachers import SumOfSingleIndex as SumOfSingleIndex
from .teachers import sample_inputs as sample_inputs

Float = Union[np.float32, np.float64]
Arr = NDArray[Any]

__version__: str

def forward(W: ArrayLike, a: ArrayLike, X: ArrayLike, *, power: float = ..., neg: float = ...) -> Arr: ...
def loss(W: ArrayLike, a: ArrayLike, X: ArrayLike, y: ArrayLike, *, power: float = ..., neg: float = ...) -> Float: ...
def loss_grad(
    W: ArrayLike, a: ArrayLike, X: ArrayLike, y: ArrayLike, *, power: float = ..., neg: float = ...
) -> Tuple[Float, Arr, Arr]: ...
def hessian_trace(
    W: ArrayLike, a: ArrayLike, X: ArrayLike, y: ArrayLike, *, power: float = ..., neg: float = ...
) -> Float: ...
def hessian_trace_parts(
    W: ArrayLike, a: ArrayLike, X: ArrayLike, y: ArrayLike, *, power: float = ..., neg: float = ...
) -> TraceParts: ...
def hessian_trace_grad(
    W: ArrayLike, a: ArrayLike, X: ArrayLike, y: ArrayLike, *, power: float = ..., neg: float = ...
) -> Tuple[Float, Arr, Arr]: ...
def hvp(
    W: ArrayLike,
    a: ArrayLike,
    X: ArrayLike,
    y: ArrayLike,
    VW: ArrayLike,
    va: ArrayLike,
    *,
    power: float = ...,
    neg: float = ...,
) -> Tuple[Arr, Arr]: ...
def hessian_top_eigenvalues(
    W: ArrayLike,
    a: ArrayLike,
    X: ArrayLike,
    y: ArrayLike,
    k: int = ...,
    *,
    power: float = ...,
    neg: float = ...,
    max_iter: int = ...,
    tol: float = ...,
    seed: int = ...,
    return_info: bool = ...,
) -> Any: ...
def rescale(W: ArrayLike, a: ArrayLike, t: Union[float, ArrayLike], *, power: float = ...) -> Tuple[Arr, Arr]: ...
def balance(
    W: ArrayLike, a: ArrayLike, X: ArrayLike, y: ArrayLike, *, power: float = ..., neg: float = ...
) -> Tuple[Arr, Arr]: ...
def orbit_min_trace(
    W: ArrayLike, a: ArrayLike, X: ArrayLike, y: ArrayLike, *, power: float = ..., neg: float = ...
) -> Float: ...
def get_num_threads() -> int: ...
def set_num_threads(k: int) -> None: ...
def info() -> Dict[str, Any]: ...
def sweep(
    config: Union[str, "os.PathLike[str]", Dict[str, Any]],
    *,
    out: Union[str, "os.PathLike[str]"],
    scheduler: Optional[str] = ...,
    local_cluster: Optional[int] = ...,
    resume: bool = ...,
    progress: bool = ...,
    workers: Optional[int] = ...,
    chunk_size: Optional[int] = ...,
) -> Any: ...
