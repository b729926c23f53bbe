"""Label-noise SGD: minibatch gradient steps on labels with fresh Gaussian noise.

Each step draws a minibatch ``B`` (``batch`` samples without replacement) and
fresh label noise ``xi_j ~ N(0, noise^2)``, and takes

    theta <- theta - lr * grad_theta (1/(2|B|)) sum_{j in B} (f(x_j) - y_j - xi_j)^2

with the fused :func:`flatext.loss_grad` on ``X[B]``. Near the interpolation
set the noise makes the iterates drift along it toward smaller Hessian trace
(Blanc, Gupta, Valiant, Valiant 2020; Damian, Ma, Lee 2021; Li, Wang, Arora
2022): the implicit regularizer of label noise on the squared loss is the
trace of the Hessian of the loss. The run is deterministic for a given
``seed`` (one ``numpy.random.Generator`` draws the batches and the noise).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .curvature import _int_arg, forward, loss_grad
from .interpolators import TrainResult, find_interpolator

__all__ = ["label_noise_sgd"]


def _positive(v, name, allow_zero=False):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number; got {v!r}")
    if v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}; got {v!r}")
    return float(v)


def label_noise_sgd(W0, a0, X, y, *, noise, batch, lr, max_iter=10000, tol=1e-8, seed=0, power=1.0, neg=0.0,
                    stop_at_tol=False, record_every=100, callback=None, callback_every=100, polish=False,
                    polish_tol=None, polish_max_iter=100):
    """Minibatch SGD with fresh Gaussian label noise at every step.

    Parameters
    ----------
    W0, a0 : array_like, shapes (m, d), (m,)
        Start point (float64 or float32; the run is in that dtype).
    X, y : array_like, shapes (n, d), (n,)
        Training data (clean labels; the noise is added per step).
    noise : float
        Standard deviation of the label noise added to each minibatch label (>= 0;
        0 gives plain minibatch SGD).
    batch : int
        Minibatch size, ``1 <= batch <= n`` (drawn without replacement).
    lr : float
        Step size (> 0).
    max_iter : int
        Number of steps.
    tol : float
        Loss level: ``converged`` is True when the full-batch loss at the end is
        ``<= tol``; with ``stop_at_tol`` the run stops the first time a recorded
        full-batch loss is ``<= tol``.
    seed : int or numpy.random.Generator
        Seeds the batches and the noise (same seed, same bits).
    power, neg : float
        The activation ``max(z,0)^p + neg * max(-z,0)^p``.
    stop_at_tol : bool
        Stop at the first record with loss ``<= tol`` (default False: label-noise
        SGD is meant to keep running after reaching low loss, that is where it drifts).
    record_every : int
        Full-batch loss recorded every this many steps (and at the end).
    callback : callable, optional
        ``callback(info)`` every ``callback_every`` steps, ``info`` a dict with
        ``iteration``, ``W``, ``a``, ``batch_loss`` (the noisy minibatch loss);
        return True to stop.
    callback_every : int
    polish : bool
        After the run, project onto the interpolation set by
        :func:`flatext.find_interpolator` (tolerance ``polish_tol``, at most
        ``polish_max_iter`` steps); kept only if it converges.

    Returns
    -------
    TrainResult
        ``loss`` is the full-batch clean loss at the end of the run (before the
        polish); ``history`` has ``iteration`` and ``loss`` (full-batch, clean).

    Raises
    ------
    ValueError
        Bad arguments (named in the message).
    """
    W = np.array(W0, copy=True)
    a = np.array(a0, copy=True)
    if W.dtype not in (np.float32, np.float64):
        W = W.astype(np.float64)
    a = a.astype(W.dtype, copy=False)
    X = np.ascontiguousarray(X, dtype=W.dtype)
    y = np.ascontiguousarray(y, dtype=W.dtype)
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X must be (n, d) and y (n,); got X {X.shape}, y {y.shape}")
    n = X.shape[0]
    noise = _positive(noise, "noise", allow_zero=True)
    lr = _positive(lr, "lr")
    batch = _int_arg(batch, "batch")
    if not 1 <= batch <= n:
        raise ValueError(f"batch must be in [1, n] = [1, {n}]; got {batch}")
    max_iter = _int_arg(max_iter, "max_iter")
    if max_iter < 0:
        raise ValueError(f"max_iter must be >= 0; got {max_iter}")
    record_every = _int_arg(record_every, "record_every")
    callback_every = _int_arg(callback_every, "callback_every")
    if record_every < 1 or callback_every < 1:
        raise ValueError("record_every and callback_every must be >= 1")
    tol = _positive(tol, "tol", allow_zero=True)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    kw = dict(power=float(power), neg=float(neg))

    def full_loss(W, a):
        return float(loss_grad(W, a, X, y, **kw)[0])

    its, losses = [0], [full_loss(W, a)]
    message = "max_iter reached"
    reason = "max_iter"  # the stop reason in TrainResult's words ("tol", "max_iter", "diverged", "callback")
    it = 0
    while it < max_iter:
        idx = rng.choice(n, size=batch, replace=False) if batch < n else np.arange(n)
        yb = y[idx] + noise * rng.standard_normal(batch).astype(W.dtype) if noise > 0 else y[idx]
        bl, gW, ga = loss_grad(W, a, X[idx], yb, **kw)
        Wn, an = W - lr * gW, a - lr * ga
        it += 1
        if not (np.all(np.isfinite(Wn)) and np.all(np.isfinite(an))):
            message = f"diverged at step {it} (non-finite parameters; the last finite point is returned)"
            reason = "diverged"
            it -= 1
            break
        W, a = Wn, an
        if it % record_every == 0 or it == max_iter:
            L = full_loss(W, a)
            its.append(it)
            losses.append(L)
            if not math.isfinite(L):
                message = f"diverged at step {it} (non-finite loss)"
                reason = "diverged"
                break
            if stop_at_tol and L <= tol:
                message = "loss <= tol"
                reason = "tol"
                break
        if callback is not None and it % callback_every == 0:
            if callback({"iteration": it, "W": W, "a": a, "batch_loss": float(bl)}):
                message = "callback"
                reason = "callback"
                break
    if its[-1] != it:
        its.append(it)
        losses.append(full_loss(W, a))
    L = losses[-1]
    rb = float(np.max(np.abs(forward(W, a, X, **kw) - y)))
    ra, polished = rb, False
    if polish:
        try:
            p = find_interpolator(W, a, X, y, tol=polish_tol, max_iter=polish_max_iter, **kw)
        except ValueError as e:
            message += f"; polish failed: {e}"
        else:
            if p.converged:
                W, a, ra, polished = p.W, p.a, p.max_residual, True
            else:
                message += f"; polish did not converge (max|r| = {p.max_residual:.3g})"
    hist = {"iteration": np.asarray(its, dtype=np.int64), "loss": np.asarray(losses)}
    # TODO(lead): once TrainResult has ``reason`` and ``polish`` (helper "workflow"), pass reason=reason and
    # polish="converged"/"off"/"failed" here.
    message = f"{message} [{reason}]"
    return TrainResult(W, a, float(L), it, bool(L <= tol), message, hist, polished, rb, ra)
