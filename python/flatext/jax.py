"""JAX adapter: flatext's exact loss, Hessian trace, HVP and regularized loss as differentiable JAX functions.

Install with the extra: ``pip install flatext[jax]``. Import as ``import flatext.jax as fxj``.

Each function is a ``jax.custom_vjp`` whose forward and backward run the C++
kernels through ``jax.pure_callback`` on the host, so they work under
``jax.jit`` and ``jax.grad``. Under ``jax.vmap`` the callback is called once
per batch element, in a loop (``vmap_method="sequential"``): correct, not
batched. Arrays: float32, or float64 with ``jax.config.update("jax_enable_x64", True)``;
all of one dtype. The network and loss are flatext's (``docs/design.md``
section 2), ``L = (1/(2n)) sum_j r_j^2`` (``optax.l2_loss``'s mean; half of a
plain mean squared error: multiply by 2 for ``mean((f - y)^2)``).

Derivatives: with respect to ``W`` and ``a`` (and the direction ``(VW, va)``
of :func:`hvp`). ``X`` and ``y`` are data: their cotangents are zero by
definition (as under ``jax.lax.stop_gradient``) -- do not differentiate with
respect to them. Second derivatives of these functions (``jax.hessian`` of
:func:`loss`, ``grad`` of ``grad``) are not available; use :func:`hvp`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

import flatext as _fx

from ._adapters import REGULARIZERS
from ._adapters import objective as _objective

__all__ = ["loss", "hessian_trace", "hvp", "regularized_loss", "REGULARIZERS"]


def _host(fn):
    """A host function of numpy arrays with the float check done on the host side."""

    @functools.wraps(fn)
    def wrapped(*args):
        return fn(*[np.asarray(x) for x in args])

    return wrapped


def _call(fn, shapes, *args):
    return jax.pure_callback(_host(fn), shapes, *args, vmap_method="sequential")


def _check(W, a, X, y):
    dts = {jnp.result_type(v) for v in (W, a, X, y)}
    if len(dts) != 1:
        raise TypeError(f"W, a, X, y must share one dtype; got {[str(jnp.result_type(v)) for v in (W, a, X, y)]}")
    (dt,) = dts
    if dt not in (jnp.float32, jnp.float64):
        raise TypeError(f"W, a, X, y must be float32 or float64 (float64 needs jax_enable_x64); got {dt}")
    if jnp.ndim(W) != 2 or jnp.ndim(X) != 2 or jnp.ndim(a) != 1 or jnp.ndim(y) != 1:
        raise ValueError(
            f"expected W (m, d), a (m,), X (n, d), y (n,); got shapes {jnp.shape(W)}, {jnp.shape(a)}, "
            f"{jnp.shape(X)}, {jnp.shape(y)}"
        )
    return dt


def _sds(shape, dt):
    return jax.ShapeDtypeStruct(shape, dt)


@functools.lru_cache(maxsize=None)
def _scalar_fn(kind, power, neg):
    """custom_vjp (W, a, X, y) -> scalar for kind in {"loss", "trace"}."""
    value = {"loss": _fx.loss, "trace": _fx.hessian_trace}[kind]
    vgrad = {"loss": _fx.loss_grad, "trace": _fx.hessian_trace_grad}[kind]

    def host_value(W, a, X, y):
        return np.asarray(value(W, a, X, y, power=power, neg=neg), dtype=W.dtype)

    def host_vgrad(W, a, X, y):
        v, gW, ga = vgrad(W, a, X, y, power=power, neg=neg)
        return np.asarray(v, dtype=W.dtype), gW, ga

    @jax.custom_vjp
    def f(W, a, X, y):
        dt = _check(W, a, X, y)
        return _call(host_value, _sds((), dt), W, a, X, y)

    def fwd(W, a, X, y):
        dt = _check(W, a, X, y)
        v, gW, ga = _call(host_vgrad, (_sds((), dt), _sds(W.shape, dt), _sds(a.shape, dt)), W, a, X, y)
        return v, (gW, ga, X, y)

    def bwd(res, g):
        gW, ga, X, y = res
        return g * gW, g * ga, jnp.zeros_like(X), jnp.zeros_like(y)

    f.defvjp(fwd, bwd)
    return f


@functools.lru_cache(maxsize=None)
def _hvp_fn(power, neg):
    def host_hvp(W, a, X, y, VW, va):
        return _fx.hvp(W, a, X, y, VW, va, power=power, neg=neg)

    def apply(W, a, X, y, VW, va):
        dt = _check(W, a, X, y)
        if jnp.shape(VW) != jnp.shape(W) or jnp.shape(va) != jnp.shape(a):
            raise ValueError(
                f"VW, va must have the shapes of W, a {jnp.shape(W)}, {jnp.shape(a)}; got "
                f"{jnp.shape(VW)}, {jnp.shape(va)}"
            )
        VW, va = jnp.asarray(VW, dt), jnp.asarray(va, dt)
        return _call(host_hvp, (_sds(W.shape, dt), _sds(a.shape, dt)), W, a, X, y, VW, va)

    @jax.custom_vjp
    def f(W, a, X, y, VW, va):
        return apply(W, a, X, y, VW, va)

    def fwd(W, a, X, y, VW, va):
        return apply(W, a, X, y, VW, va), (W, a, X, y)

    def bwd(res, g):
        W, a, X, y = res
        gW, ga = g
        # H is symmetric: the VJP of v -> H v is H applied to the cotangent. The
        # derivative with respect to (W, a) (third derivatives) is not provided:
        # NaN, so that using it cannot pass unnoticed.
        HW, ha = apply(W, a, X, y, gW, ga)
        nan = jnp.array(jnp.nan, dtype=W.dtype)
        return (jnp.full_like(W, nan), jnp.full_like(a, nan), jnp.zeros_like(X), jnp.zeros_like(y), HW, ha)

    f.defvjp(fwd, bwd)
    return f


@functools.lru_cache(maxsize=None)
def _objective_fn(which, power, neg):
    """custom_vjp (W, a, X, y, lam) -> (value, loss, regularizer); lam is a traced scalar."""

    def host(W, a, X, y, lam):
        v, lo, reg, gW, ga = _objective(W, a, X, y, float(lam), which, power, neg)
        dt = W.dtype
        return np.asarray(v, dt), np.asarray(lo, dt), np.asarray(reg, dt), gW, ga

    def run(W, a, X, y, lam):
        dt = _check(W, a, X, y)
        lam = jnp.asarray(lam, dt)
        s = _sds((), dt)
        return _call(host, (s, s, s, _sds(W.shape, dt), _sds(a.shape, dt)), W, a, X, y, lam)

    @jax.custom_vjp
    def f(W, a, X, y, lam):
        v, lo, reg, _, _ = run(W, a, X, y, lam)
        return v, lo, reg

    def fwd(W, a, X, y, lam):
        v, lo, reg, gW, ga = run(W, a, X, y, lam)
        return (v, lo, reg), (gW, ga, reg, X, y, lam)

    def bwd(res, g):
        gW, ga, reg, X, y, lam = res
        gv, glo, greg = g
        # loss and regularizer are reported values; their cotangents must be zero (NaN otherwise)
        bad = (glo != 0) | (greg != 0)
        nan = jnp.where(bad, jnp.nan, 1.0).astype(gW.dtype)
        return (
            gv * gW * nan,
            gv * ga * nan,
            jnp.zeros_like(X),
            jnp.zeros_like(y),
            jnp.asarray(gv * reg * nan, dtype=jnp.result_type(lam)),
        )

    f.defvjp(fwd, bwd)
    return f


def regularized_loss(W, a, X, y, lam, *, which="trace", power=1.0, neg=0.0, return_parts=False):
    """``L + lam * K`` with its exact gradient (and the derivative in ``lam``, which is K).

    Parameters
    ----------
    lam : float or 0-d array
        Weight of the regularizer (may be traced).
    which : {"trace", "gauss_newton", "loss"} (static)
        ``"trace"``: K = Tr H (bounded below for p = 1 and at interpolation; for
        p > 1 away from interpolation ``L + lam T`` is unbounded below).
        ``"gauss_newton"``: K = G >= 0, well posed for every p (needs
        ``flatext.objective``). ``"loss"``: K = 0.
    return_parts : bool
        Also return L and K (as values: differentiate only the total; a
        cotangent on them turns the gradients into NaN).

    Returns
    -------
    0-d array (or ``(value, loss, regularizer)``)
    """
    if which not in REGULARIZERS:
        raise ValueError(f"which must be one of {REGULARIZERS}; got {which!r}")
    v, lo, reg = _objective_fn(which, *_act(power, neg))(W, a, X, y, lam)
    return (v, lo, reg) if return_parts else v


def _act(power, neg):
    return float(power), float(neg)


def loss(W, a, X, y, *, power=1.0, neg=0.0):
    """Training loss ``L = (1/(2n)) sum_j (f(x_j) - y_j)^2``, differentiable in (W, a).

    Parameters
    ----------
    W : array, shape (m, d)
    a : array, shape (m,)
    X : array, shape (n, d)
    y : array, shape (n,)
    power, neg : float (static)
        The activation ``max(z,0)^power + neg * max(-z,0)^power``.

    Returns
    -------
    0-d array of the inputs' dtype; its VJP is ``flatext.loss_grad``.
    """
    return _scalar_fn("loss", *_act(power, neg))(W, a, X, y)


def hessian_trace(W, a, X, y, *, power=1.0, neg=0.0):
    """Exact trace of the loss Hessian with respect to (W, a), differentiable in (W, a).

    The forward pass of ``jax.grad`` / ``jax.value_and_grad`` computes value
    and gradient in one kernel call (``flatext.hessian_trace_grad``).

    Returns
    -------
    0-d array
    """
    return _scalar_fn("trace", *_act(power, neg))(W, a, X, y)


def hvp(W, a, X, y, VW, va, *, power=1.0, neg=0.0):
    """Exact Hessian-vector product ``H v``, ``v = (VW, va)``.

    Differentiable in the direction (``VW``, ``va``); the cotangent for
    ``W`` and ``a`` is NaN (third derivatives are not provided).

    Returns
    -------
    (HW, ha) with the shapes of (W, a)
    """
    return _hvp_fn(*_act(power, neg))(W, a, X, y, VW, va)
