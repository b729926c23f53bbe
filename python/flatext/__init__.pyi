# Type stubs for flatext's public API.
import os
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .curvature import TraceParts as TraceParts

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
