"""Trainers: full-batch gradient descent and sharpness-aware minimization (SAM),
and label-noise SGD.

The loop runs in C++ (``flatext/training.hpp``, the fused loss gradient of
``docs/design.md`` section 2); this module adds what a researcher needs around
it: a Gauss-Newton polish of the last digits, a callback every ``k`` steps,
the stop reason, and a warning when fixed-``rho`` SAM plateaus.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ._native import _core
from .curvature import forward, loss_grad
from .options import _C_INT_MAX, LabelNoiseOptions, TrainOptions, merge_options
from .polish import gauss_newton_polish
from .results import ResultFields
from .stepsize import resolve_lr

__all__ = ["LabelNoiseOptions", "TrainOptions", "TrainResult", "label_noise_sgd", "train"]


@dataclass(frozen=True, repr=False)
class TrainResult(ResultFields):
    """Result of :func:`train` and :func:`label_noise_sgd` (the common fields: :mod:`flatext.results`).

    Attributes
    ----------
    W, a : ndarray
        The best point found: the polish's result when ``polished``, else the
        last point of training.
    loss : float
        Training loss ``(1/(2n)) sum r^2`` at the end of training (before the polish).
    iterations : int
        Gradient steps taken.
    converged : bool
        ``reason in CONVERGED_REASONS``, i.e. ``reason == "tol"``: training
        stopped because the loss reached ``tol`` (label-noise SGD: only with
        ``stop_at_tol``; a run that ends at ``max_iter`` below ``tol`` has
        ``reached_tol`` but not ``converged``).
    message : str
        Why training stopped and what the polish did, in words (divergence is
        reported here, never as NaN output).
    history : dict of ndarray
        ``iteration`` and ``loss``, every ``record_every`` steps and at the end.
    polished : bool
        ``W, a`` come from the Gauss-Newton polish (:func:`find_interpolator`),
        which lowered the maximum residual (and, if ``polish_converged``,
        reached its tolerance).
    max_residual_before, max_residual_after : float
        ``max_j |r_j|`` at the end of training and at the returned point
        (equal when not polished).
    reason : str
        Why training stopped: ``"tol"`` (loss <= tol), ``"max_iter"``,
        ``"diverged"``, ``"stationary"`` (zero gradient, SAM), ``"callback"``
        or ``"time_budget"`` (``max_seconds`` ran out; the last point is returned).
    polish : str
        What the polish did: ``"off"`` (``polish=False``), ``"skipped"`` (the
        loss was not within ``polish_factor * tol``), ``"converged"``,
        ``"improved"`` (did not reach its tolerance within ``polish_max_iter``
        but lowered max|r|: that point is returned), ``"no improvement"``
        (the trained point is returned) or ``"failed"`` (an error, in ``message``).
    lr : float
        The step size used (``lr="auto"`` and ``"F/lambda_max"`` resolved).
    lambda_max : float
        The top Hessian eigenvalue at the start that set ``lr`` (NaN when ``lr``
        was a number).
    seconds : float
        Wall-clock seconds of the whole call (step size, training, polish).
    reached_tol : bool
        The full-batch loss at the end of training (``loss``, before the polish)
        is ``<= tol``, whatever stopped the run (label-noise SGD runs on past
        ``tol`` by design: ``reached_tol`` without ``converged``).
    """

    #: The stop reasons that count as ``converged``.
    CONVERGED_REASONS = ("tol",)
    REASON_IF_UNSET = ("tol", "max_iter")
    REPR_FIELDS = ("loss", "lr", "lambda_max", "polish", "polished", "max_residual_before", "max_residual_after")

    W: np.ndarray
    a: np.ndarray
    loss: float
    iterations: int
    converged: bool
    message: str
    history: dict = field(repr=False)
    polished: bool = False
    max_residual_before: float = float("nan")
    max_residual_after: float = float("nan")
    reason: str = ""
    polish: str = "off"
    lr: float = float("nan")
    lambda_max: float = float("nan")
    seconds: float = float("nan")
    reached_tol: bool | None = None

    def __post_init__(self):
        if self.reached_tol is None:  # constructed without it: what converged meant before
            object.__setattr__(self, "reached_tol", bool(self.converged))
        super().__post_init__()

    @property
    def interpolating(self):
        """The returned point is an interpolator to the run's own tolerance: with the polish on, the
        polish converged (its residual tolerance: a loss below ``tol`` still allows max|r| ~ 1e-3 at
        n = 300); with ``polish=False``, training reached ``tol`` (``reached_tol``)."""
        return bool(self.polish == "converged" if self.polish != "off" else self.reached_tol)


def _reason(message):
    """The short stop reason of the C++ loop's message."""
    if message == "loss <= tol":
        return "tol"
    if message == "max_iter reached":
        return "max_iter"
    if message.startswith("diverged"):
        return "diverged"
    if message.startswith("stationary"):
        return "stationary"
    raise AssertionError(f"unknown training stop message {message!r}")  # pragma: no cover


def _sam_plateaued(hist_loss, W, a, X, y, power, neg, rho):
    """Fixed-rho SAM has stalled: over the last half of the run the loss fell by
    less than half (least loss of the last quarter vs the second quarter), and
    the SAM gradient is more than twice the loss gradient (the ascent step
    ``rho g/||g||``, not the loss, sets the step: about ``rho * curvature``)."""
    k = len(hist_loss)
    if k < 8 or min(hist_loss[3 * k // 4 :]) < 0.5 * min(hist_loss[k // 4 : k // 2]):
        return False
    _, gW, ga = _core.loss_grad(W, a, X, y, power, neg)
    g = math.sqrt(float(np.sum(gW * gW) + np.sum(ga * ga)))
    if g == 0:
        return False
    _, hW, ha = _core.loss_grad(W + (rho / g) * gW, a + (rho / g) * ga, X, y, power, neg)
    return math.sqrt(float(np.sum(hW * hW) + np.sum(ha * ha))) > 2 * g


def train(
    W0,
    a0,
    X,
    y,
    *,
    power=1.0,
    neg=0.0,
    method="gd",
    options=None,
    lr=None,
    rho=None,
    max_iter=None,
    tol=None,
    record_every=None,
    polish=None,
    polish_tol=None,
    polish_factor=None,
    polish_max_iter=None,
    callback=None,
    callback_every=None,
    noise=None,
    batch=None,
    seed=None,
    max_seconds=None,
):
    """Training of ``(W, a)`` by gradient descent, SAM or label-noise SGD.

    ``gd``:  ``theta <- theta - lr grad L(theta)``.
    ``sam``: ``eps = rho g / ||g||``, ``theta <- theta - lr grad L(theta + eps)``
    with ``g = grad L(theta)`` (Foret et al. 2021; two gradients per step).
    ``L = (1/(2n)) sum_j r_j^2``; the loop runs in C++ on the fused
    :func:`flatext.loss_grad`, ``callback_every`` steps at a time when a
    callback is given (the steps are the same bits either way: neither method
    keeps state between steps).

    Stopping rules: ``L <= tol`` (reason ``"tol"``), ``max_iter`` steps
    (``"max_iter"``), divergence (a non-finite loss, gradient or parameter:
    the last finite point is returned, ``"diverged"``), a zero gradient in SAM
    (``"stationary"``), the callback returning True (``"callback"``), or
    ``max_seconds`` spent (``"time_budget"``: checked between segments of
    steps sized to about 2 % of the budget, so the call ends within about
    ``1.02 max_seconds`` plus one segment; the polish is then skipped).

    Polish: if ``polish`` and the final loss is at most ``polish_factor * tol``
    (so also a run that stopped just short of ``tol``), :func:`find_interpolator`
    (Gauss-Newton, tolerance ``polish_tol``, at most ``polish_max_iter`` steps)
    finishes the last digits. Its point is returned only if it lowers
    ``max|r|``; ``polished``, ``polish`` and ``max_residual_before/after`` say
    what happened.

    SAM with a fixed ``rho`` converges to a point where ``grad L(theta + eps)``
    vanishes, not ``grad L(theta)``: the loss stalls at a level that grows with
    ``rho``. When SAM stops at ``max_iter`` above ``tol`` with the loss
    lowered by less than half over the last half of the run while the SAM
    gradient is more than twice the loss gradient (the ascent step, not the
    loss, sets the step), a ``RuntimeWarning`` says so: lower ``rho``, or
    let the polish finish (``polish_factor``).

    Parameters
    ----------
    W0 : array_like, shape (m, d)
        Initial input weights.
    a0 : array_like, shape (m,)
        Initial output weights.
    X : array_like, shape (n, d)
        Inputs.
    y : array_like, shape (n,)
        Labels.
    power, neg : float
        The activation ``max(z,0)^power + neg * max(-z,0)^power``.
    method : {"gd", "sam", "label_noise_sgd"}
        ``"label_noise_sgd"`` runs :func:`label_noise_sgd` (minibatch steps on
        labels with fresh noise; ``noise``, ``batch``, ``seed`` below; it does
        not stop at ``tol``, since the drift toward low trace happens after;
        its polish runs whenever ``polish`` is set).
    options : TrainOptions or dict, optional
        The options below (all but ``callback``) in one object
        (:class:`flatext.TrainOptions`, whose fields hold the defaults). A keyword
        left at None takes the options' value; a name given both here and as a
        keyword raises ``TypeError``, and so does an option the method does not
        use (``rho`` with ``gd`` or ``label_noise_sgd``; ``noise``, ``batch`` or
        ``seed`` with ``gd`` or ``sam``; ``polish_factor`` with
        ``label_noise_sgd``), whether given as a keyword or in ``options``.
    lr : float or str
        Step size (default 0.1): a number > 0, ``"auto"`` (``0.9 / lambda_max``) or
        ``"F/lambda_max"`` (``F / lambda_max``, ``F > 0``), with ``lambda_max``
        the top Hessian eigenvalue at ``(W0, a0)``, computed once
        (:mod:`flatext.stepsize`). GD diverges above ``2 / lambda_max``, and
        ``lambda_max`` at a random start grows with the width. The value used
        is ``result.lr``, the eigenvalue ``result.lambda_max``.
    rho : float
        SAM radius (> 0; default 0.05; SAM only).
    max_iter : int
        Gradient steps at most (default 10000).
    tol : float
        Loss tolerance (>= 0; default 1e-8).
    record_every : int
        History stride (in steps; default 10).
    polish : bool
        Run the Gauss-Newton polish (rules above; default True).
    polish_tol : float, optional
        Relative residual tolerance of the polish (default as in
        :func:`find_interpolator`: 1e-10 float64, 1e-4 float32).
    polish_factor : float
        The polish runs when the final loss is ``<= polish_factor * tol`` (>= 1;
        default 100; GD and SAM only).
    polish_max_iter : int
        Gauss-Newton steps of the polish at most (default 200).
    callback : callable, optional
        ``callback(info)`` every ``callback_every`` steps and at the end of
        training, ``info`` a dict with ``iteration``, ``loss``, ``W``, ``a``
        and ``elapsed`` (seconds since the call began) (e.g. to log
        :func:`flatext.hessian_trace` or show progress); return True to stop.
        With ``method="label_noise_sgd"``, ``info`` has the noisy minibatch
        loss ``batch_loss`` instead of ``loss``, and there is no call at the end.
    callback_every : int
        Steps between callbacks (>= 1; default 100).
    noise : float
        ``label_noise_sgd`` only: standard deviation of the label noise (default 0.1).
    batch : int, optional
        ``label_noise_sgd`` only: minibatch size (default ``min(n, 32)``).
    seed : int or numpy.random.Generator
        ``label_noise_sgd`` only: seeds batches and noise (default 0).
    max_seconds : float, optional
        Wall-clock budget of the call (> 0; None: none). When it runs out the
        last point is returned with ``reason="time_budget"``.

    Returns
    -------
    TrainResult
        The best point found and how it was reached (``reason``, ``polish``,
        ``polished``, ``max_residual_before``, ``max_residual_after``).

    Raises
    ------
    ValueError
        Bad input (shapes, dtypes, ``lr <= 0``, an unknown ``method``, ...).
    """
    t_start = time.perf_counter()
    if method not in ("gd", "sam", "label_noise_sgd"):
        raise ValueError(f"method must be 'gd', 'sam' or 'label_noise_sgd'; got {method!r}")
    o = merge_options(
        TrainOptions,
        options,
        dict(lr=lr, rho=rho, max_iter=max_iter, tol=tol, record_every=record_every, polish=polish,
             polish_tol=polish_tol, polish_factor=polish_factor, polish_max_iter=polish_max_iter,
             callback_every=callback_every, noise=noise, batch=batch, seed=seed, max_seconds=max_seconds),
        where=f"train(method={method!r})",
        ignored=TrainOptions.IGNORED[method],
    )  # fmt: skip
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable; got {type(callback).__name__}")
    if method == "label_noise_sgd":
        fields = {f.name: getattr(o, f.name) for f in dataclasses.fields(LabelNoiseOptions) if hasattr(o, f.name)}
        ln = LabelNoiseOptions(**dict(fields, batch=min(len(y), 32) if o.batch is None else o.batch))
        return label_noise_sgd(W0, a0, X, y, power=power, neg=neg, options=ln, callback=callback)
    lr, rho, max_iter, tol, record_every = o.lr, o.rho, o.max_iter, o.tol, o.record_every
    polish, polish_tol, polish_factor, polish_max_iter = o.polish, o.polish_tol, o.polish_factor, o.polish_max_iter
    every = max_iter if callback is None else o.callback_every
    max_seconds = o.max_seconds
    p, c = float(power), float(neg)
    deadline = None if max_seconds is None else t_start + max_seconds
    lr, lam = resolve_lr(lr, W0, a0, X, y, power=p, neg=c)
    W, a, it, reason, msg, r, hist, h_loss = _gd_loop(
        W0, a0, X, y, p, c, method, lr, rho, max_iter, tol, record_every, callback, every, deadline, t_start
    )
    loss_end = float(r["loss"])
    if (
        method == "sam"
        and reason == "max_iter"
        and loss_end > tol
        and _sam_plateaued(h_loss, W, a, np.asarray(X, dtype=W.dtype), np.asarray(y, dtype=W.dtype), p, c, float(rho))
    ):
        warnings.warn(
            f"train: SAM with a fixed rho = {rho:g} plateaued at loss {loss_end:.3g} > tol = {tol:g} "
            f"(it converges where grad L(theta + eps) = 0, not grad L(theta)); lower rho, or let the "
            f"Gauss-Newton polish finish (polish_factor * tol >= the loss)",
            RuntimeWarning,
            stacklevel=2,
        )
    if reason == "time_budget" and polish:
        msg += "; polish skipped (no time left)"
        polish = None
    W, a, msg, rb, ra, polished, status = _train_polish(
        W, a, X, y, p, c, msg, polish, loss_end, tol, polish_factor, polish_tol, polish_max_iter
    )
    return TrainResult(
        W, a, loss_end, it, reason in TrainResult.CONVERGED_REASONS, msg, hist, polished, rb, ra, reason, status,
        lr, lam, time.perf_counter() - t_start, reached_tol=bool(loss_end <= tol),
    )  # fmt: skip


def _gd_loop(W0, a0, X, y, p, c, method, lr, rho, max_iter, tol, record_every, callback, every, deadline, t_start):
    """The C++ loop in segments: ``every`` steps between callbacks and, with a
    deadline, segments of about 2 % of the budget (timed on the first ones).
    The history is recorded on the global step count; the iterates are the same
    bits however the run is cut (neither GD nor SAM keeps state between steps).
    Returns (W, a, iterations, reason, message, last C++ result, history, losses)."""
    W, a = W0, a0
    it = 0
    h_it: list[int] = []
    h_loss: list[float] = []
    segmented = callback is not None or deadline is not None
    rec = 1 if segmented else record_every  # one segment: the C++ history is already on the grid
    chunk, next_cb = 16, every
    while True:
        steps = min(max_iter - it, next_cb - it, _C_INT_MAX)  # a segment's steps are a C int
        if deadline is not None:
            steps = min(steps, chunk)
        t_seg = time.perf_counter()
        opts = _core.TrainOptions(method=method, lr=float(lr), rho=float(rho), max_iter=steps, tol=float(tol),
                                  record_every=rec)  # fmt: skip
        r = _core.train(W, a, X, y, p, c, opts)
        hi = np.asarray(r["history_iter"], dtype=np.int64) + it
        hl = np.asarray(r["history_loss"], dtype=np.float64)
        keep = (hi % record_every == 0) | (hi == it + r["iterations"])
        if h_it and len(hi) and hi[0] == h_it[-1]:  # a segment's first point is the previous one's last
            keep[0] = False
        h_it.extend(hi[keep].tolist())
        h_loss.extend(hl[keep].tolist())
        W, a, it = r["W"], r["a"], it + int(r["iterations"])
        reason, msg = _reason(r["message"]), r["message"]
        done = reason != "max_iter" or it >= max_iter
        now = time.perf_counter()
        if callback is not None and (it >= next_cb or done):
            info = {"iteration": it, "loss": float(r["loss"]), "W": W, "a": a, "elapsed": now - t_start}
            if callback(info) and not done:
                reason, msg, done = "callback", f"stopped by the callback at iteration {it}", True
            next_cb = it + every
        if not done and deadline is not None:
            if now >= deadline:
                reason, msg, done = "time_budget", f"max_seconds reached at iteration {it}", True
            else:  # next segment: about 2 % of the budget, from this segment's rate
                per_step = max(now - t_seg, 1e-9) / max(steps, 1)
                chunk = int(min(max(1.0, 0.02 * (deadline - t_start) / per_step), 2 * chunk, max_iter))
                chunk = max(1, min(chunk, int((deadline - now) / per_step) + 1))
        if done:
            break
    # drop the points that are not on the record_every grid, except the end
    keep = [j for j, i in enumerate(h_it) if i % record_every == 0 or j == len(h_it) - 1]
    hist = {
        "iteration": np.asarray([h_it[j] for j in keep], dtype=np.int64),
        "loss": np.asarray([h_loss[j] for j in keep]),
    }
    return W, a, it, reason, msg, r, hist, h_loss


def _train_polish(W, a, X, y, p, c, msg, polish, loss_end, tol, polish_factor, polish_tol, polish_max_iter):
    """The Gauss-Newton polish of :func:`train` (:func:`flatext.polish.gauss_newton_polish`), run when
    the final loss is within ``polish_factor * tol`` (``polish=None``: skipped for want of time).
    Returns (W, a, message, max_residual_before, max_residual_after, polished, polish status)."""
    if polish and math.isfinite(loss_end) and loss_end <= polish_factor * tol:
        o = gauss_newton_polish(W, a, X, y, power=p, neg=c, tol=polish_tol, max_iter=polish_max_iter)
        msg += f"; {o.message}" if o.message else ""
        return o.W, o.a, msg, o.max_residual_before, o.max_residual_after, o.polished, o.status
    yv = np.asarray(y, dtype=W.dtype)
    rb = float(np.max(np.abs(_core.forward(W, a, X, p, c) - yv)))
    return W, a, msg, rb, rb, False, "off" if polish is False else "skipped"


# Label-noise SGD.
#
# Label-noise SGD: minibatch gradient steps on labels with fresh Gaussian noise.
#
# Each step draws a minibatch ``B`` (``batch`` samples without replacement) and
# fresh label noise ``xi_j ~ N(0, noise^2)``, and takes
#
#     theta <- theta - lr * grad_theta (1/(2|B|)) sum_{j in B} (f(x_j) - y_j - xi_j)^2
#
# with the fused :func:`flatext.loss_grad` on ``X[B]``. Near the interpolation
# set the noise makes the iterates drift along it toward smaller Hessian trace
# (Blanc, Gupta, Valiant, Valiant 2020; Damian, Ma, Lee 2021; Li, Wang, Arora
# 2022): the implicit regularizer of label noise on the squared loss is the
# trace of the Hessian of the loss. The run is deterministic for a given
# ``seed`` (one ``numpy.random.Generator`` draws the batches and the noise).


def label_noise_sgd(
    W0,
    a0,
    X,
    y,
    *,
    noise=None,
    batch=None,
    lr=None,
    max_iter=None,
    tol=None,
    seed=None,
    power=1.0,
    neg=0.0,
    stop_at_tol=None,
    record_every=None,
    callback=None,
    callback_every=None,
    polish=None,
    polish_tol=None,
    polish_max_iter=None,
    max_seconds=None,
    options=None,
):
    """Minibatch SGD with fresh Gaussian label noise at every step.

    Each option (all the keywords but ``power``, ``neg`` and ``callback``) may also be
    given in ``options`` (:class:`flatext.LabelNoiseOptions` or a dict, its fields hold
    the defaults); a keyword left at None takes the options' value, and a name given
    both ways raises ``TypeError``.

    Parameters
    ----------
    W0, a0 : array_like, shapes (m, d), (m,)
        Start point (float64 or float32; the run is in that dtype).
    X, y : array_like, shapes (n, d), (n,)
        Training data (clean labels; the noise is added per step).
    noise : float
        Standard deviation of the label noise added to each minibatch label (>= 0;
        0 gives plain minibatch SGD; default 0.1).
    batch : int
        Minibatch size, ``1 <= batch <= n`` (drawn without replacement; default ``min(n, 32)``).
    lr : float or str
        Step size: a number > 0, ``"auto"`` or ``"F/lambda_max"`` (as in
        :func:`train`: ``lambda_max`` of the full-batch clean loss at the start; default 0.1).
    max_iter : int
        Number of steps (default 10000).
    tol : float
        Loss level: ``reached_tol`` is True when the full-batch loss at the end is
        ``<= tol``; with ``stop_at_tol`` the run stops the first time a recorded
        full-batch loss is ``<= tol`` (reason ``"tol"``: only then is ``converged`` True).
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
        ``iteration``, ``W``, ``a``, ``batch_loss`` (the noisy minibatch loss)
        and ``elapsed`` (seconds since the call began); return True to stop.
    callback_every : int
    polish : bool
        After the run, project onto the interpolation set by
        :func:`flatext.find_interpolator` (tolerance ``polish_tol``, at most
        ``polish_max_iter`` steps); kept only if it converges (skipped when
        ``max_seconds`` ran out).
    max_seconds : float, optional
        Wall-clock budget (> 0; None: none), checked after every step; when it
        runs out the current point is returned with ``reason="time_budget"``.
    options : LabelNoiseOptions or dict, optional
        The options in one object (above).

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
    t_start = time.perf_counter()
    W, a, X, y = _float_copies(W0, a0, X, y)
    n = X.shape[0]
    o = merge_options(
        LabelNoiseOptions,
        options,
        dict(noise=noise, batch=batch, lr=lr, max_iter=max_iter, tol=tol, seed=seed, stop_at_tol=stop_at_tol,
             record_every=record_every, callback_every=callback_every, polish=polish, polish_tol=polish_tol,
             polish_max_iter=polish_max_iter, max_seconds=max_seconds),
        where="label_noise_sgd",
    )  # fmt: skip
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable; got {type(callback).__name__}")
    batch = min(n, 32) if o.batch is None else o.batch
    if not 1 <= batch <= n:
        raise ValueError(f"batch must be in [1, n] = [1, {n}]; got {batch}")
    kw = dict(power=float(power), neg=float(neg))
    lr, lam = resolve_lr(o.lr, W, a, X, y, **kw)
    run = _lnsgd_steps(W, a, X, y, kw, o, lr, batch, callback, t_start)
    L = run.losses[-1]
    W, a, rb, ra, polished, message, status = _lnsgd_polish(run, X, y, kw, o)
    hist = {"iteration": np.asarray(run.its, dtype=np.int64), "loss": np.asarray(run.losses)}
    return TrainResult(
        W, a, float(L), run.it, run.reason in TrainResult.CONVERGED_REASONS, message, hist, polished, rb, ra,
        run.reason, status, lr, lam, time.perf_counter() - t_start, reached_tol=bool(L <= o.tol),
    )  # fmt: skip


def _float_copies(W0, a0, X, y):
    """Copies of the start (float64 unless float32) and X, y in its dtype, shapes checked."""
    W = np.array(W0, copy=True)
    a = np.array(a0, copy=True)
    if W.dtype not in (np.float32, np.float64):
        W = W.astype(np.float64)
    a = a.astype(W.dtype, copy=False)
    X = np.ascontiguousarray(X, dtype=W.dtype)
    y = np.ascontiguousarray(y, dtype=W.dtype)
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X must be (n, d) and y (n,); got X {X.shape}, y {y.shape}")
    return W, a, X, y


@dataclass
class _LnsgdRun:
    """Where the label-noise SGD steps ended: the point, the step count, the recorded full-batch
    losses, the stop reason in TrainResult's words and a message."""

    W: np.ndarray
    a: np.ndarray
    it: int
    its: list
    losses: list
    reason: str
    message: str


def _lnsgd_steps(W, a, X, y, kw, o, lr, batch, callback, t_start):
    """The minibatch steps with fresh label noise, until max_iter, tol (``stop_at_tol``), divergence,
    the callback or the budget."""
    n = X.shape[0]
    rng = o.seed if isinstance(o.seed, np.random.Generator) else np.random.default_rng(o.seed)
    deadline = None if o.max_seconds is None else t_start + o.max_seconds

    def full_loss(W, a):
        return float(loss_grad(W, a, X, y, **kw)[0])

    its, losses = [0], [full_loss(W, a)]
    message, reason = "max_iter reached", "max_iter"
    it = 0
    while it < o.max_iter:
        idx = rng.choice(n, size=batch, replace=False) if batch < n else np.arange(n)
        yb = y[idx] + o.noise * rng.standard_normal(batch).astype(W.dtype) if o.noise > 0 else y[idx]
        bl, gW, ga = loss_grad(W, a, X[idx], yb, **kw)
        Wn, an = W - lr * gW, a - lr * ga
        it += 1
        if not (np.all(np.isfinite(Wn)) and np.all(np.isfinite(an))):
            message = f"diverged at step {it} (non-finite parameters; the last finite point is returned)"
            reason = "diverged"
            it -= 1
            break
        W, a = Wn, an
        if it % o.record_every == 0 or it == o.max_iter:
            L = full_loss(W, a)
            its.append(it)
            losses.append(L)
            if not math.isfinite(L):
                message, reason = f"diverged at step {it} (non-finite loss)", "diverged"
                break
            if o.stop_at_tol and L <= o.tol:
                message, reason = "loss <= tol", "tol"
                break
        if callback is not None and it % o.callback_every == 0:
            info = {"iteration": it, "W": W, "a": a, "batch_loss": float(bl), "elapsed": time.perf_counter() - t_start}
            if callback(info):
                message, reason = f"stopped by the callback at step {it}", "callback"
                break
        if deadline is not None and it < o.max_iter and time.perf_counter() >= deadline:
            message, reason = f"max_seconds reached at step {it}", "time_budget"
            break
    if its[-1] != it:
        its.append(it)
        losses.append(full_loss(W, a))
    return _LnsgdRun(W, a, it, its, losses, reason, message)


def _lnsgd_polish(run, X, y, kw, o):
    """The Gauss-Newton polish of label-noise SGD's end point (:func:`flatext.polish.gauss_newton_polish`).
    Returns ``(W, a, max|r| before, max|r| after, polished, message, polish status)``."""
    W, a, message = run.W, run.a, run.message
    if not o.polish or run.reason == "time_budget":
        rb = float(np.max(np.abs(forward(W, a, X, **kw) - y)))
        skipped = "; polish skipped (no time left)" if o.polish else ""
        return W, a, rb, rb, False, message + skipped, "skipped" if o.polish else "off"
    q = gauss_newton_polish(W, a, X, y, tol=o.polish_tol, max_iter=o.polish_max_iter, **kw)
    message += f"; {q.message}" if q.message else ""
    return q.W, q.a, q.max_residual_before, q.max_residual_after, q.polished, message, q.status
