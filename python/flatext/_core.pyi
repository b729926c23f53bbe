# Type stub of the compiled module flatext._core (the pybind11 bindings in cpp/bindings),
# written by tools/gen_core_stub.py with pybind11-stubgen; tests/test_tooling.py checks it
# against the compiled module. Regenerate it after changing a binding.
"""
flatext C++ core (see the flatext package for documentation)
"""

from __future__ import annotations

import collections.abc
import typing

import numpy

__all__: list[str] = [
    "Activation",
    "InterpolationOptions",
    "SearchOptions",
    "SearchStep",
    "TrainOptions",
    "balance",
    "blas_backend",
    "choose_solver",
    "find_interpolator",
    "forward",
    "gaussian_pair_moment_sum",
    "gaussian_pair_moments",
    "gaussian_quadratic_form",
    "get_num_threads",
    "gram",
    "gram_apply",
    "gram_columns",
    "gram_diag",
    "gram_solve",
    "hessian_top_eigenvalues",
    "hessian_trace",
    "hessian_trace_grad",
    "hessian_trace_parts",
    "hvp",
    "jvp",
    "loss",
    "loss_grad",
    "memorizing_interpolator",
    "objective",
    "openmp_enabled",
    "orbit_min_trace",
    "orbit_min_trace_clipped",
    "rescale",
    "search_step",
    "set_num_threads",
    "train",
    "vjp",
]

class InterpolationOptions:
    """
    Options of find_interpolator (flatext::InterpolationOptions), checked when built
    """
    def __init__(
        self,
        tol: typing.SupportsFloat | typing.SupportsIndex = 1e-10,
        max_iter: typing.SupportsInt | typing.SupportsIndex = 100,
        lambda_init: typing.SupportsFloat | typing.SupportsIndex = 1e-06,
        solver: str = "auto",
        cg_rtol: typing.SupportsFloat | typing.SupportsIndex = 0.0001,
        cg_max_iter: typing.SupportsInt | typing.SupportsIndex = 500,
        cg_rank: typing.SupportsInt | typing.SupportsIndex = -1,
    ) -> None: ...
    @property
    def cg_max_iter(self) -> int: ...
    @property
    def cg_rank(self) -> int: ...
    @property
    def cg_rtol(self) -> float: ...
    @property
    def lambda_init(self) -> float: ...
    @property
    def lambda_max(self) -> float: ...
    @property
    def lambda_min(self) -> float: ...
    @property
    def max_iter(self) -> int: ...
    @property
    def solver(self) -> str: ...
    @property
    def tol(self) -> float: ...

class SearchOptions:
    """
    Options of search_step (flatext::SearchOptions), checked when built
    """
    def __init__(
        self,
        tol: typing.SupportsFloat | typing.SupportsIndex = 1e-10,
        lambda_rel: typing.SupportsFloat | typing.SupportsIndex = 1e-10,
        gtol: typing.SupportsFloat | typing.SupportsIndex = 0.0001,
        eta: typing.SupportsFloat | typing.SupportsIndex = 0.0,
        balance: bool = True,
        max_backtrack: typing.SupportsInt | typing.SupportsIndex = 30,
        retract_iter: typing.SupportsInt | typing.SupportsIndex = 6,
        a_correction: bool = False,
        solver: str = "auto",
        cg_rtol: typing.SupportsFloat | typing.SupportsIndex = 1e-08,
        retract_rtol: typing.SupportsFloat | typing.SupportsIndex = 0.001,
        cg_max_iter: typing.SupportsInt | typing.SupportsIndex = 2000,
        cg_rank: typing.SupportsInt | typing.SupportsIndex = -1,
    ) -> None: ...
    @property
    def a_correction(self) -> bool: ...
    @property
    def balance(self) -> bool: ...
    @property
    def cg_max_iter(self) -> int: ...
    @property
    def cg_rtol(self) -> float: ...
    @property
    def gtol(self) -> float: ...
    @property
    def lambda_rel(self) -> float: ...
    @property
    def retract_iter(self) -> int: ...
    @property
    def tol(self) -> float: ...

class SearchStep:
    """
    One step of the flatness search (flatext::SearchStep): read-only fields.
    """
    @property
    def W(self) -> numpy.ndarray:
        """
        first layer at the new point (m, d)
        """
    @property
    def a(self) -> numpy.ndarray:
        """
        second layer at the new point (m,)
        """
    @property
    def accepted(self) -> bool:
        """
        a trial passed the line search
        """
    @property
    def backtracks(self) -> int:
        """
        halvings of eta
        """
    @property
    def eta(self) -> float:
        """
        accepted step size (0: none)
        """
    @property
    def g_norm(self) -> float:
        """
        ||grad T|| at the start point
        """
    @property
    def gn_iters(self) -> int:
        """
        Gauss-Newton fallback iterations
        """
    @property
    def gram_builds(self) -> int:
        """
        n x n Gram matrices built (all trials)
        """
    @property
    def gt_norm(self) -> float:
        """
        ||g_t||, its tangent part
        """
    @property
    def krylov_converged(self) -> bool:
        """
        the projection's solve converged
        """
    @property
    def krylov_iters(self) -> int:
        """
        CG iterations (all solves)
        """
    @property
    def krylov_residual(self) -> float:
        """
        relative residual of the projection
        """
    @property
    def max_residual(self) -> float:
        """
        max |r| at the new point
        """
    @property
    def orbit_min_trace(self) -> float:
        """
        orbit-minimal T at the new point
        """
    @property
    def retract_iters(self) -> int:
        """
        retraction iterations of the accepted trial
        """
    @property
    def small_gradient(self) -> bool:
        """
        ||g_t|| <= gtol ||g||: no step tried
        """
    @property
    def solver(self) -> str:
        """
        'cholesky' or 'cg'
        """
    @property
    def trace(self) -> float:
        """
        T at the new point (after the balance)
        """
    @property
    def trace_before(self) -> float:
        """
        T at the start point
        """
    @property
    def u(self) -> numpy.ndarray:
        """
        multipliers of the tangent projection (n,): the next step's warm start
        """

class TrainOptions:
    """
    Options of train (flatext::TrainOptions), checked when built
    """
    def __init__(
        self,
        method: str = "gd",
        lr: typing.SupportsFloat | typing.SupportsIndex = 0.1,
        rho: typing.SupportsFloat | typing.SupportsIndex = 0.05,
        max_iter: typing.SupportsInt | typing.SupportsIndex = 10000,
        tol: typing.SupportsFloat | typing.SupportsIndex = 1e-08,
        record_every: typing.SupportsInt | typing.SupportsIndex = 10,
    ) -> None: ...
    @property
    def lr(self) -> float: ...
    @property
    def max_iter(self) -> int: ...
    @property
    def method(self) -> str: ...
    @property
    def record_every(self) -> int: ...
    @property
    def rho(self) -> float: ...
    @property
    def tol(self) -> float: ...

class Activation:
    """
    sigma(z) = max(z,0)^power + neg*max(-z,0)^power; checks power >= 1 and neg
    """
    def __init__(
        self,
        power: typing.SupportsFloat | typing.SupportsIndex = 1.0,
        neg: typing.SupportsFloat | typing.SupportsIndex = 0.0,
    ) -> None: ...
    def __repr__(self) -> str: ...
    @property
    def neg(self) -> float: ...
    @property
    def power(self) -> float: ...

def balance(
    W: typing.Any,
    a: typing.Any,
    X: typing.Any,
    y: typing.Any,
    power: typing.SupportsFloat | typing.SupportsIndex = 1.0,
    neg: typing.SupportsFloat | typing.SupportsIndex = 0.0,
) -> typing.Any: ...
def choose_solver(
    n: typing.SupportsInt | typing.SupportsIndex, d: typing.SupportsInt | typing.SupportsIndex
) -> str: ...
def find_interpolator(
    W: typing.Any,
    a: typing.Any,
    X: typing.Any,
    y: typing.Any,
    power: typing.SupportsFloat | typing.SupportsIndex,
    neg: typing.SupportsFloat | typing.SupportsIndex,
    tol: typing.SupportsFloat | typing.SupportsIndex = 1e-10,
    max_iter: typing.SupportsInt | typing.SupportsIndex = 100,
    lambda_init: typing.SupportsFloat | typing.SupportsIndex = 1e-06,
    solver: str = "auto",
    cg_rtol: typing.SupportsFloat | typing.SupportsIndex = 0.0001,
    cg_max_iter: typing.SupportsInt | typing.SupportsIndex = 500,
    cg_rank: typing.SupportsInt | typing.SupportsIndex = -1,
) -> typing.Any: ...
def forward(
    W: typing.Any,
    a: typing.Any,
    X: typing.Any,
    power: typing.SupportsFloat | typing.SupportsIndex = 1.0,
    neg: typing.SupportsFloat | typing.SupportsIndex = 0.0,
) -> typing.Any: ...
def gaussian_pair_moment_sum(
    U: typing.Any,
    pu: typing.Any,
    cu: typing.Any,
    alpha: typing.Any,
    V: typing.Any,
    pv: typing.Any,
    cv: typing.Any,
    beta: typing.Any,
    nodes: typing.SupportsInt | typing.SupportsIndex = 48,
    closed_forms: bool = True,
) -> float:
    """
    sum_ij alpha_i beta_j E[s_i(u_i.x) s_j(v_j.x)], x ~ N(0, I) (float).
    """

def gaussian_pair_moments(
    U: typing.Any,
    pu: typing.Any,
    cu: typing.Any,
    V: typing.Any,
    pv: typing.Any,
    cv: typing.Any,
    nodes: typing.SupportsInt | typing.SupportsIndex = 48,
    closed_forms: bool = True,
) -> typing.Any:
    """
    Matrix M_ij = E[s_i(u_i.x) s_j(v_j.x)], x ~ N(0, I), s(z) = z+^p + c z-^p (float64).
    """

def gaussian_quadratic_form(
    U: typing.Any,
    pu: typing.Any,
    cu: typing.Any,
    alpha: typing.Any,
    nodes: typing.SupportsInt | typing.SupportsIndex = 48,
    closed_forms: bool = True,
) -> float:
    """
    E[(sum_i alpha_i s_i(u_i.x))^2], x ~ N(0, I), using the symmetry of the pair moments (float).
    """

def get_num_threads() -> int:
    """
    Number of threads the kernels use.
    """

def gram(
    W: typing.Any,
    a: typing.Any,
    X: typing.Any,
    power: typing.SupportsFloat | typing.SupportsIndex,
    neg: typing.SupportsFloat | typing.SupportsIndex,
    features_only: bool = False,
) -> typing.Any: ...
def gram_apply(
    W: typing.Any,
    a: typing.Any,
    X: typing.Any,
    v: typing.Any,
    power: typing.SupportsFloat | typing.SupportsIndex,
    neg: typing.SupportsFloat | typing.SupportsIndex,
    pattern: bool = False,
) -> typing.Any: ...
def gram_columns(
    W: typing.Any,
    a: typing.Any,
    X: typing.Any,
    idx: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex],
    power: typing.SupportsFloat | typing.SupportsIndex,
    neg: typing.SupportsFloat | typing.SupportsIndex,
) -> typing.Any: ...
def gram_diag(
    W: typing.Any,
    a: typing.Any,
    X: typing.Any,
    power: typing.SupportsFloat | typing.SupportsIndex,
    neg: typing.SupportsFloat | typing.SupportsIndex,
) -> typing.Any: ...
def gram_solve(
    W: typing.Any,
    a: typing.Any,
    X: typing.Any,
    b: typing.Any,
    power: typing.SupportsFloat | typing.SupportsIndex,
    neg: typing.SupportsFloat | typing.SupportsIndex,
    lambda_: typing.SupportsFloat | typing.SupportsIndex = 0.0,
    solver: str = "auto",
    rtol: typing.SupportsFloat | typing.SupportsIndex = 1e-10,
    cg_max_iter: typing.SupportsInt | typing.SupportsIndex = 500,
    x0: typing.Any = None,
    cg_rank: typing.SupportsInt | typing.SupportsIndex = -1,
) -> typing.Any: ...
def hessian_top_eigenvalues(
    W: typing.Any,
    a: typing.Any,
    X: typing.Any,
    y: typing.Any,
    k: typing.SupportsInt | typing.SupportsIndex = 1,
    power: typing.SupportsFloat | typing.SupportsIndex = 1.0,
    neg: typing.SupportsFloat | typing.SupportsIndex = 0.0,
    max_iter: typing.SupportsInt | typing.SupportsIndex = 0,
    tol: typing.SupportsFloat | typing.SupportsIndex = 1e-08,
    seed: typing.SupportsInt | typing.SupportsIndex = 0,
) -> typing.Any: ...
def hessian_trace(
    W: typing.Any,
    a: typing.Any,
    X: typing.Any,
    y: typing.Any,
    power: typing.SupportsFloat | typing.SupportsIndex = 1.0,
    neg: typing.SupportsFloat | typing.SupportsIndex = 0.0,
) -> typing.Any: ...
def hessian_trace_grad(
    W: typing.Any,
    a: typing.Any,
    X: typing.Any,
    y: typing.Any,
    power: typing.SupportsFloat | typing.SupportsIndex = 1.0,
    neg: typing.SupportsFloat | typing.SupportsIndex = 0.0,
) -> typing.Any: ...
def hessian_trace_parts(
    W: typing.Any,
    a: typing.Any,
    X: typing.Any,
    y: typing.Any,
    power: typing.SupportsFloat | typing.SupportsIndex = 1.0,
    neg: typing.SupportsFloat | typing.SupportsIndex = 0.0,
) -> typing.Any: ...
def hvp(
    W: typing.Any,
    a: typing.Any,
    X: typing.Any,
    y: typing.Any,
    VW: typing.Any,
    va: typing.Any,
    power: typing.SupportsFloat | typing.SupportsIndex = 1.0,
    neg: typing.SupportsFloat | typing.SupportsIndex = 0.0,
) -> typing.Any: ...
def jvp(
    arg0: typing.Any,
    arg1: typing.Any,
    arg2: typing.Any,
    arg3: typing.Any,
    arg4: typing.Any,
    arg5: typing.SupportsFloat | typing.SupportsIndex,
    arg6: typing.SupportsFloat | typing.SupportsIndex,
) -> typing.Any: ...
def loss(
    W: typing.Any,
    a: typing.Any,
    X: typing.Any,
    y: typing.Any,
    power: typing.SupportsFloat | typing.SupportsIndex = 1.0,
    neg: typing.SupportsFloat | typing.SupportsIndex = 0.0,
) -> typing.Any: ...
def loss_grad(
    W: typing.Any,
    a: typing.Any,
    X: typing.Any,
    y: typing.Any,
    power: typing.SupportsFloat | typing.SupportsIndex = 1.0,
    neg: typing.SupportsFloat | typing.SupportsIndex = 0.0,
) -> typing.Any: ...
def memorizing_interpolator(
    arg0: typing.Any,
    arg1: typing.Any,
    arg2: typing.SupportsFloat | typing.SupportsIndex,
    arg3: typing.SupportsFloat | typing.SupportsIndex,
    arg4: typing.SupportsFloat | typing.SupportsIndex,
    arg5: typing.SupportsInt | typing.SupportsIndex,
) -> typing.Any: ...
def objective(
    W: typing.Any,
    a: typing.Any,
    X: typing.Any,
    y: typing.Any,
    lam: typing.SupportsFloat | typing.SupportsIndex = 0.0,
    which: str = "loss",
    power: typing.SupportsFloat | typing.SupportsIndex = 1.0,
    neg: typing.SupportsFloat | typing.SupportsIndex = 0.0,
) -> typing.Any:
    """
    (value, loss, regularizer, gW, ga) of L + lam * K, K by `which` (loss, gauss_newton, trace).
    """

def orbit_min_trace(
    W: typing.Any,
    a: typing.Any,
    X: typing.Any,
    y: typing.Any,
    power: typing.SupportsFloat | typing.SupportsIndex = 1.0,
    neg: typing.SupportsFloat | typing.SupportsIndex = 0.0,
) -> typing.Any: ...
def orbit_min_trace_clipped(
    arg0: typing.Any,
    arg1: typing.Any,
    arg2: typing.Any,
    arg3: typing.Any,
    arg4: typing.SupportsFloat | typing.SupportsIndex,
    arg5: typing.SupportsFloat | typing.SupportsIndex,
) -> float: ...
def rescale(
    W: typing.Any, a: typing.Any, t: typing.Any, power: typing.SupportsFloat | typing.SupportsIndex = 1.0
) -> typing.Any: ...
def search_step(
    W: typing.Any,
    a: typing.Any,
    X: typing.Any,
    y: typing.Any,
    power: typing.SupportsFloat | typing.SupportsIndex,
    neg: typing.SupportsFloat | typing.SupportsIndex,
    tol: typing.SupportsFloat | typing.SupportsIndex = 1e-10,
    lambda_rel: typing.SupportsFloat | typing.SupportsIndex = 1e-10,
    gtol: typing.SupportsFloat | typing.SupportsIndex = 0.0001,
    eta: typing.SupportsFloat | typing.SupportsIndex = 0.0,
    balance: bool = True,
    max_backtrack: typing.SupportsInt | typing.SupportsIndex = 30,
    retract_iter: typing.SupportsInt | typing.SupportsIndex = 6,
    a_correction: bool = False,
    solver: str = "auto",
    cg_rtol: typing.SupportsFloat | typing.SupportsIndex = 1e-08,
    retract_rtol: typing.SupportsFloat | typing.SupportsIndex = 0.001,
    cg_max_iter: typing.SupportsInt | typing.SupportsIndex = 2000,
    u0: typing.Any = None,
    cg_rank: typing.SupportsInt | typing.SupportsIndex = -1,
) -> SearchStep: ...
def set_num_threads(k: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Set the kernels' thread count for the process; 0 restores the default.
    """

def train(
    W: typing.Any,
    a: typing.Any,
    X: typing.Any,
    y: typing.Any,
    power: typing.SupportsFloat | typing.SupportsIndex,
    neg: typing.SupportsFloat | typing.SupportsIndex,
    options: TrainOptions,
) -> typing.Any: ...
def vjp(
    arg0: typing.Any,
    arg1: typing.Any,
    arg2: typing.Any,
    arg3: typing.Any,
    arg4: typing.SupportsFloat | typing.SupportsIndex,
    arg5: typing.SupportsFloat | typing.SupportsIndex,
) -> typing.Any: ...

__version__: str
blas_backend: str
openmp_enabled: bool
