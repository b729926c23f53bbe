"""Fused kernels: outputs, loss, gradients, exact Hessian trace, HVPs, top eigenvalues.

Model and conventions (``docs/design.md`` section 2)::

    f(x)     = sum_i a_i sigma(w_i . x),   sigma(z) = max(z,0)^p + neg * max(-z,0)^p
    r_j      = f(x_j) - y_j,               L = (1/(2n)) sum_j r_j^2

Arrays: ``W`` (m, d), ``a`` (m,), ``X`` (n, d), ``y`` (n,), all float32 or all
float64 (results come back in that dtype). Anything ``numpy.asarray`` accepts
is taken; C-contiguous float arrays are used without a copy, others are copied
once. Bad input raises ``ValueError`` / ``TypeError`` naming the argument.
The kernels tile over rows of X and never hold the n x m pre-activations; the
result bits do not depend on the number of threads.
"""

from __future__ import annotations

import operator
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ._native import _core

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
]


def _int_arg(v, name):
    """An integer argument (bool and float are refused), for messages that name it."""
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer; got {v!r}")
    try:
        return operator.index(v)
    except TypeError:
        raise TypeError(f"{name} must be an integer; got {type(v).__name__} {v!r}") from None


def _check_matrix_and_vector(A, v, names, dims):
    """Raise ValueError unless ``A`` is 2-D and ``v`` has one entry per row of ``A``.

    Parameters
    ----------
    A, v : ndarray
    names : (str, str)
        Their names in the messages, e.g. ``("W", "a")``.
    dims : (str, str)
        The names of ``A``'s two dimensions, e.g. ``("m", "d")``.
    """
    (a_name, v_name), (rows, cols) = names, dims
    if A.ndim != 2:
        raise ValueError(f"{a_name} must be 2-D ({rows}, {cols}); got shape {A.shape}")
    if v.shape != (A.shape[0],):
        raise ValueError(
            f"{v_name} must have shape ({rows},) = ({A.shape[0]},) to match {a_name} of shape {A.shape}; got {v.shape}"
        )


def forward(W, a, X, *, power=1.0, neg=0.0):
    """Network outputs ``f(x_j) = sum_i a_i sigma(w_i . x_j)``.

    Parameters
    ----------
    W : array_like, shape (m, d)
        Input weights, one row per neuron.
    a : array_like, shape (m,)
        Output weights.
    X : array_like, shape (n, d)
        Inputs, one row per sample.
    power : float, default 1.0
        Degree p >= 1 of the activation ``max(z,0)^p + neg * max(-z,0)^p``.
    neg : float, default 0.0
        Negative-side coefficient c (ReLU 0, leaky ReLU ``-alpha``, ``|z|`` 1).

    Returns
    -------
    ndarray, shape (n,)
    """
    return _core.forward(W, a, X, float(power), float(neg))


def loss(W, a, X, y, *, power=1.0, neg=0.0):
    """Empirical loss ``L = (1/(2n)) sum_j (f(x_j) - y_j)^2``.

    Parameters are those of :func:`forward`, plus ``y`` (n,) the labels.

    Returns
    -------
    numpy scalar of the input dtype
    """
    return _core.loss(W, a, X, y, float(power), float(neg))


def loss_grad(W, a, X, y, *, power=1.0, neg=0.0):
    """Loss and its gradient.

    ``dL/da_i = (1/n) sum_j r_j sigma(z_ij)``,
    ``dL/dw_i = (1/n) sum_j r_j a_i sigma'(z_ij) x_j``.

    Returns
    -------
    loss : numpy scalar
    gW : ndarray, shape (m, d)
    ga : ndarray, shape (m,)
    """
    return _core.loss_grad(W, a, X, y, float(power), float(neg))


def hessian_trace(W, a, X, y, *, power=1.0, neg=0.0):
    """Exact trace of the Hessian of the loss (the "flatness").

    With ``s_j = ||x_j||^2``::

        T = (1/n) sum_j sum_i [ sigma(z_ij)^2 + a_i^2 sigma'(z_ij)^2 s_j
                                + r_j a_i sigma''(z_ij) s_j ]

    Cost: one GEMM-equivalent (``X @ W.T``), tiled, in bounded memory.

    Returns
    -------
    numpy scalar of the input dtype
    """
    return _core.hessian_trace(W, a, X, y, float(power), float(neg))


@dataclass(frozen=True)
class TraceParts:
    """The Hessian trace split into its parts (see :func:`hessian_trace_parts`).

    Attributes
    ----------
    total : float
        ``T = gauss_newton + residual``.
    gauss_newton : float
        ``G = (1/n) sum_j ||grad_theta f(x_j)||^2``, the trace of the Gauss-Newton matrix.
    residual : float
        ``R = (1/n) sum_j r_j Tr hess_theta f(x_j)``; 0 at an interpolator and for p = 1.
    per_neuron : ndarray (m,)
        ``T_i = per_neuron_a[i] + per_neuron_w[i]``; sums to ``total``.
    per_neuron_a : ndarray (m,)
        ``A_i = (1/n) sum_j sigma(z_ij)^2``, the Hessian diagonal entry of ``a_i``.
    per_neuron_w : ndarray (m,)
        ``B_i = (1/n) sum_j [a_i^2 sigma'^2 s_j + r_j a_i sigma'' s_j]``, the trace of the ``w_i`` block.
    loss : float
        The loss at the same point (a free by-product).
    """

    total: float
    gauss_newton: float
    residual: float
    per_neuron: np.ndarray
    per_neuron_a: np.ndarray
    per_neuron_w: np.ndarray
    loss: float

    def __repr__(self):
        return (
            f"TraceParts(total={float(self.total):.6g}, gauss_newton={float(self.gauss_newton):.6g}, "
            f"residual={float(self.residual):.6g}, m={self.per_neuron.shape[0]})"
        )


def hessian_trace_parts(W, a, X, y, *, power=1.0, neg=0.0):
    """Exact Hessian trace with its Gauss-Newton / residual and per-neuron parts.

    Under the rescaling ``(w_i, a_i) -> (t w_i, t^-p a_i)`` neuron i's part
    moves as ``t^(2p) A_i + t^(-2) B_i`` (``per_neuron_a``, ``per_neuron_w``).

    Returns
    -------
    TraceParts
    """
    t, g, r, pn, pa, pw, lo = _core.hessian_trace_parts(W, a, X, y, float(power), float(neg))
    return TraceParts(t, g, r, pn, pa, pw, lo)


def hessian_trace_grad(W, a, X, y, *, power=1.0, neg=0.0):
    """Exact Hessian trace and its gradient with respect to (W, a).

    With ``q_j = s_j sum_k a_k sigma''(z_kj)``::

        dT/da_i = (1/n) sum_j [2 a_i sigma'^2 s_j + r_j sigma'' s_j + q_j sigma]
        dT/dw_i = (1/n) sum_j C_ij x_j,
        C_ij    = 2 sigma sigma' + 2 a_i^2 sigma' sigma'' s_j
                  + r_j a_i sigma''' s_j + q_j a_i sigma'

    Cost: two GEMM-equivalents.

    Returns
    -------
    trace : numpy scalar
    gW : ndarray, shape (m, d)
    ga : ndarray, shape (m,)
    """
    return _core.hessian_trace_grad(W, a, X, y, float(power), float(neg))


def hvp(W, a, X, y, VW, va, *, power=1.0, neg=0.0):
    """Exact Hessian-vector product ``H v`` of the loss, ``v = (VW, va)``.

    With ``u_ij = VW_i . x_j`` and ``(Jv)_j = sum_i [va_i sigma + a_i sigma' u_ij]``::

        (Hv)_a_i = (1/n) sum_j [(Jv)_j sigma + r_j sigma' u_ij]
        (Hv)_w_i = (1/n) sum_j [(Jv)_j a_i sigma' + r_j (sigma' va_i + a_i sigma'' u_ij)] x_j

    Cost: three GEMM-equivalents.

    Returns
    -------
    HW : ndarray, shape (m, d)
    ha : ndarray, shape (m,)
    """
    return _core.hvp(W, a, X, y, VW, va, float(power), float(neg))


def hessian_top_eigenvalues(W, a, X, y, k=1, *, power=1.0, neg=0.0, max_iter=0, tol=1e-8, seed=0, return_info=False):
    """The ``k`` largest (algebraic) eigenvalues of the Hessian of the loss.

    Lanczos with full reorthogonalization on exact :func:`hvp` products over
    the flat parameter vector ``theta = [W.ravel(), a]``. Stops when each wanted
    Ritz value has residual bound ``<= tol * |lambda_max|``; a
    ``RuntimeWarning`` says so when ``max_iter`` is reached first.

    Parameters
    ----------
    k : int
        Number of eigenvalues.
    max_iter : int
        Lanczos steps at most (0: ``max(10k + 60, 150)``, capped at m(d+1)).
    tol : float
        Relative residual tolerance.
    seed : int
        Seed of the start vector (results are deterministic).
    return_info : bool
        Also return a dict with ``residuals``, ``iterations``, ``converged``.

    Returns
    -------
    ndarray, shape (k,), descending
    """
    # only what converting to C integers needs: the core checks k, max_iter and tol themselves
    k, max_iter, seed = _int_arg(k, "k"), _int_arg(max_iter, "max_iter"), _int_arg(seed, "seed")
    if not -(2**31) <= k < 2**31:
        raise ValueError(f"k must be >= 1 and at most the number of parameters m*(d+1); got {k}")
    if not -(2**31) <= max_iter < 2**31:
        raise ValueError(f"max_iter must be >= 0 (0: automatic); got {max_iter}")
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64); got {seed}")
    vals, res, it, conv = _core.hessian_top_eigenvalues(
        W, a, X, y, k, float(power), float(neg), max_iter, float(tol), seed
    )
    if not conv:
        warnings.warn(
            f"hessian_top_eigenvalues: Lanczos stopped after {it} steps before reaching tol={tol}; "
            f"residual bounds {res}",
            RuntimeWarning,
            stacklevel=2,
        )
    if return_info:
        return vals, {"residuals": res, "iterations": it, "converged": conv}
    return vals


class Objective(NamedTuple):
    """Result of :func:`objective`: ``value = loss + lam * regularizer`` and its gradient.

    Attributes
    ----------
    value : numpy scalar
        ``L + lam * K``.
    loss : numpy scalar
        ``L = (1/(2n)) sum_j r_j^2``.
    regularizer : numpy scalar
        ``K`` (0 for ``which="loss"``).
    gW : ndarray, shape (m, d)
        Gradient of ``value`` with respect to W.
    ga : ndarray, shape (m,)
        Gradient of ``value`` with respect to a.
    """

    value: np.floating
    loss: np.floating
    regularizer: np.floating
    gW: np.ndarray
    ga: np.ndarray


def objective(W, a, X, y, lam=0.0, *, which="loss", power=1.0, neg=0.0):
    """The training objective ``L + lam * K`` and its gradient, in one pass over X.

    ``which`` selects the curvature term K:

    - ``"loss"``: K = 0, the loss alone (``lam`` must be 0); same values as :func:`loss_grad`.
    - ``"gauss_newton"``: K = G = ``(1/n) sum_j ||grad_theta f(x_j)||^2``, the
      Gauss-Newton part of the Hessian trace (exact value and gradient). G >= 0
      everywhere, so ``L + lam * G`` (lam >= 0) is bounded below: the well-posed
      flatness regularizer. For p = 1 (and p < 2 generally) its term
      ``a_i^2 sigma'(z_ij)^2 s_j`` jumps or kinks when a sample crosses a neuron's
      hyperplane; for p >= 2 it is continuously differentiable.
    - ``"trace"``: K = T = Tr hess L = G + R (:func:`hessian_trace`). For p = 1,
      T = G. For p > 1 the residual part R can be negative away from
      interpolation and T is unbounded below along the rescaling orbit (a neuron
      with ``B_i < 0`` sends it to -inf at fixed loss, ``docs/design.md`` section
      4): minimizing ``L + lam * T`` can diverge. For p = 2, ``sigma'' = 2 * 1{z > 0}``
      makes T jump when a sample crosses a hyperplane (line searches see the jumps).

    Cost: about one :func:`hessian_trace_grad` (two GEMM-equivalents): the loss
    gradient rides in the same pass.

    Parameters
    ----------
    W, a, X, y : array_like
        The network, inputs and labels, as in :func:`loss_grad`.
    lam : float, default 0.0
        Weight of K (finite).
    which : {"loss", "gauss_newton", "trace"}
        The curvature term.
    power, neg : float
        The activation, as in :func:`forward`.

    Returns
    -------
    Objective
        NamedTuple ``(value, loss, regularizer, gW, ga)`` in the input dtype.
    """
    if which == "loss" and lam != 0:
        raise ValueError(
            f'lam must be 0 with which="loss" (no regularizer to weigh); got lam={lam!r}: '
            'pass which="gauss_newton" or which="trace"'
        )
    return Objective(*_core.objective(W, a, X, y, float(lam), which, float(power), float(neg)))
