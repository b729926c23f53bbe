"""PyTorch adapter: flatext's exact curvature as differentiable ``torch`` functions.

Install with the extra: ``pip install flatext[torch]``. Import as
``import flatext.torch as fxt`` (the module imports the real ``torch``).

The network and loss are flatext's (``docs/design.md`` section 2)::

    f(x) = sum_i a_i sigma(w_i . x),   sigma(z) = max(z,0)^p + neg * max(-z,0)^p
    L    = (1/(2n)) sum_j (f(x_j) - y_j)^2

**Factor 2 against** ``nn.MSELoss``. ``nn.MSELoss()`` is ``(1/n) sum r^2 = 2 L``:
its loss, gradient, Hessian, trace and HVPs are twice flatext's. Every function
here takes ``reduction``:

- ``"half_mean"`` (default): flatext's ``L = (1/(2n)) sum r^2``;
- ``"mean"``: ``nn.MSELoss()``'s ``(1/n) sum r^2`` (everything times 2);
- ``"sum"``: ``nn.MSELoss(reduction="sum")``'s ``sum r^2`` (everything times 2n).

Tensors: CPU, float32 or float64, all of one dtype. Contiguous tensors reach
the C++ kernels without a copy (numpy views their memory) and results come back
as tensors viewing the kernels' output (no copy). ``nn.Parameter``s and tensors
that require grad are accepted (detached internally; gradients flow through the
autograd Functions below). The second-layer weight of ``nn.Linear(m, 1)``
(shape ``(1, m)``) and targets of shape ``(n, 1)`` are accepted; gradients come
back in the caller's shapes. CUDA (or other non-CPU) tensors raise a
``ValueError`` naming the fix (``.cpu()``): the kernels run on the CPU only.
:class:`TwoLayer`'s own forward runs in PyTorch on any device.

Gradients flow to ``W`` and ``a`` (and to the direction ``(VW, va)`` in
:func:`hvp`). Asking for gradients with respect to ``X`` or ``y``, or
differentiating a result twice (``create_graph=True``), raises a
``RuntimeError`` saying so, never a silent zero.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

import flatext as _fx

from ._adapters import REGULARIZERS  # values of ``which`` in regularized_loss
from ._adapters import objective as _objective

__all__ = [
    "loss",
    "hessian_trace",
    "hessian_trace_parts",
    "hvp",
    "orbit_min_trace",
    "regularized_loss",
    "REGULARIZERS",
    "REDUCTIONS",
    "ReLUPower",
    "TwoLayer",
    "from_sequential",
]

#: Values of ``reduction`` and the factor each puts on flatext's ``L = (1/(2n)) sum r^2``.
REDUCTIONS = ("half_mean", "mean", "sum")


# --------------------------------------------------------------------------- conversion


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_NP_DTYPE = {torch.float32: np.float32, torch.float64: np.float64}


def _np(t, name):
    """A numpy view of a CPU float tensor (no copy; a strided one is copied later by flatext)."""
    try:
        arr = t.detach().numpy()  # fast path: CPU, dense, numpy-compatible dtype
    except AttributeError:
        raise TypeError(
            f"{name} must be a torch.Tensor; got {type(t).__name__} (use the numpy API flatext.* for arrays)"
        ) from None
    except (TypeError, RuntimeError):
        _refuse(t, name)
        raise
    if arr.dtype not in _FLOATS:
        _refuse(t, name)
    return arr


def _refuse(t, name):
    """Raise the error that says what is wrong with tensor t and how to fix it."""
    if t.device.type != "cpu":
        raise ValueError(
            f"{name} is on device {t.device}; flatext's kernels run on the CPU: pass {name}.cpu() "
            "(or keep the model on the GPU and call the flatext functions on CPU copies of its weights)"
        )
    if t.layout != torch.strided:
        raise TypeError(f"{name} must be a dense (strided) tensor; got layout {t.layout} (use {name}.to_dense())")
    if t.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64; got {t.dtype} (convert with {name}.double() or .float())")


def _vec(t, name, length_name):
    """A 1-D view of a (k,), (1, k) or (k, 1) tensor."""
    if isinstance(t, torch.Tensor) and t.dim() == 2 and 1 in t.shape:
        return t.reshape(-1)
    if isinstance(t, torch.Tensor) and t.dim() != 1:
        raise ValueError(
            f"{name} must have shape ({length_name},), (1, {length_name}) or ({length_name}, 1); got {tuple(t.shape)}"
        )
    return t


def _args(W, a, X, y):
    """numpy views of (W, a, X, y) with a and y flattened; checks one common dtype."""
    if isinstance(W, torch.Tensor) and W.dim() != 2:
        raise ValueError(f"W must be 2-D (m, d), e.g. nn.Linear(d, m).weight; got shape {tuple(W.shape)}")
    a = _vec(a, "a", "m")
    y = _vec(y, "y", "n")
    out = [_np(W, "W"), _np(a, "a"), _np(X, "X"), _np(y, "y")]
    dts = {o.dtype for o in out}
    if len(dts) != 1:
        raise TypeError(
            f"W, a, X, y must share one dtype (float32 or float64); got W {out[0].dtype}, a {out[1].dtype}, "
            f"X {out[2].dtype}, y {out[3].dtype}"
        )
    return out


def _scale(reduction, n):
    if reduction == "half_mean":
        return 1.0
    if reduction == "mean":
        return 2.0
    if reduction == "sum":
        return 2.0 * n
    raise ValueError(f"reduction must be one of {REDUCTIONS}; got {reduction!r}")


def _t(x, like):
    """A tensor viewing the numpy result x (no copy when the dtypes agree)."""
    t = torch.from_numpy(np.asarray(x))
    return t if t.dtype == like.dtype else t.to(like.dtype)


def _scalar(v, scale, like):
    """A 0-d tensor of like's dtype holding v * scale."""
    return torch.from_numpy(np.asarray(v * scale if scale != 1.0 else v, dtype=_NP_DTYPE[like.dtype]))


def _check_no_input_grads(ctx, names, what):
    for need, name in zip(ctx.needs_input_grad, names):
        if need and name is not None:
            raise RuntimeError(
                f"flatext.torch.{what}: gradients with respect to {name} are not implemented (only W and a"
                f"{' and the direction' if what == 'hvp' else ''}); detach {name} (e.g. {name}.detach())"
            )


def _check_first_order(what):
    if torch.is_grad_enabled():  # backward with create_graph=True
        raise RuntimeError(
            f"flatext.torch.{what} supports first derivatives only: its backward cannot be differentiated again "
            "(create_graph=True / torch.autograd.functional.hessian / double backward). For second derivatives "
            "of the loss use flatext.torch.hvp; for the trace's gradient use hessian_trace's backward."
        )


def _grads(gW, ga, W, a, scale, gout):
    """Turn numpy (gW, ga) into tensors shaped like W and a, times scale * gout."""
    c = float(gout) * scale
    if c != 1.0:
        gW, ga = gW * c, ga * c
    tW, ta = _t(gW, W), _t(ga, a)
    if ta.shape != a.shape:
        ta = ta.reshape(a.shape)
    return tW, ta


# --------------------------------------------------------------------------- autograd Functions


def _value_and_grad_function(name, value, value_grad):
    """A torch.autograd.Function for the scalar kernel ``value`` (``name`` in messages) whose
    gradient in (W, a) comes from the fused kernel ``value_grad`` (called only when needed)."""

    def forward(ctx, W, a, X, y, power, neg, scale):
        Wn, an, Xn, yn = _args(W, a, X, y)
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            val, gW, ga = value_grad(Wn, an, Xn, yn, power=power, neg=neg)
            ctx.grads = (gW, ga)
        else:
            val = value(Wn, an, Xn, yn, power=power, neg=neg)
        ctx.scale, ctx.shapes = scale, (W, a)
        return _scalar(val, scale, W)

    def backward(ctx, g):
        _check_first_order(name)
        _check_no_input_grads(ctx, (None, None, "X", "y"), name)
        gW, ga = ctx.grads
        W, a = ctx.shapes
        return (*_grads(gW, ga, W, a, ctx.scale, g), None, None, None, None, None)

    return type(
        f"_{name}", (torch.autograd.Function,), {"forward": staticmethod(forward), "backward": staticmethod(backward)}
    )


_Loss = _value_and_grad_function("loss", _fx.loss, _fx.loss_grad)
_Trace = _value_and_grad_function("hessian_trace", _fx.hessian_trace, _fx.hessian_trace_grad)


class _OrbitMin(torch.autograd.Function):
    @staticmethod
    def forward(ctx, W, a, X, y, power, neg, scale):
        Wn, an, Xn, yn = _args(W, a, X, y)
        parts = _fx.hessian_trace_parts(Wn, an, Xn, yn, power=power, neg=neg)
        val = _fx.orbit_min_trace(Wn, an, Xn, yn, power=power, neg=neg)  # raises if some B_i < 0
        ctx.scale, ctx.shapes = scale, (W, a)
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            ctx.grads = _orbit_min_grad(Wn, an, Xn, yn, parts, power, neg)
        return _scalar(val, scale, W)

    @staticmethod
    def backward(ctx, g):
        _check_first_order("orbit_min_trace")
        _check_no_input_grads(ctx, (None, None, "X", "y"), "orbit_min_trace")
        gW, ga = ctx.grads
        W, a = ctx.shapes
        return (*_grads(gW, ga, W, a, ctx.scale, g), None, None, None, None, None)


def _orbit_min_grad(W, a, X, y, parts, p, neg):
    """Gradient of min_t T(t w, t^-p a) by the envelope theorem.

    With ``t*`` the minimizing per-neuron factors and ``(W*, a*)`` the balanced
    point, ``d/dw_i = t_i dT/dw_i(W*, a*)``, ``d/da_i = t_i^-p dT/da_i(W*, a*)``
    (the rescaling separates over neurons and keeps the residuals). Neurons whose
    minimum is 0 (``A_i = 0`` or ``B_i = 0``, e.g. dead or ``a_i = 0``) get a zero
    (sub)gradient.
    """
    A = np.asarray(parts.per_neuron_a, dtype=np.float64)
    B = np.asarray(parts.per_neuron_w, dtype=np.float64)
    ok = (A > 0) & (B > 0)
    t = np.ones_like(A)
    t[ok] = (B[ok] / (p * A[ok])) ** (1.0 / (2.0 * p + 2.0))
    t = t.astype(W.dtype)
    W2, a2 = _fx.rescale(W, a, t, power=p)
    _, gW, ga = _fx.hessian_trace_grad(W2, a2, X, y, power=p, neg=neg)
    gW = gW * t[:, None]
    ga = ga * t ** (-p)
    gW[~ok] = 0
    ga[~ok] = 0
    return gW, ga


class _Hvp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, W, a, X, y, VW, va, power, neg, scale):
        Wn, an, Xn, yn = _args(W, a, X, y)
        va1 = _vec(va, "va", "m")
        VWn, van = _np(VW, "VW"), _np(va1, "va")
        if VWn.dtype != Wn.dtype or van.dtype != Wn.dtype:
            raise TypeError(f"VW and va must have W's dtype {Wn.dtype}; got {VWn.dtype}, {van.dtype}")
        if VWn.shape != Wn.shape:
            raise ValueError(f"VW must have W's shape {Wn.shape}; got {VWn.shape}")
        HW, ha = _fx.hvp(Wn, an, Xn, yn, VWn, van, power=power, neg=neg)
        ctx.save = (Wn, an, Xn, yn, power, neg, scale, W, a)
        ctx.vshapes = (VW.shape, va.shape)
        HW, ha = _t(HW, W), _t(ha, a).reshape(a.shape)
        if scale != 1.0:
            HW, ha = HW * scale, ha * scale
        return HW, ha

    @staticmethod
    def backward(ctx, gHW, gha):
        _check_first_order("hvp")
        _check_no_input_grads(ctx, ("W", "a", "X", "y"), "hvp")
        Wn, an, Xn, yn, power, neg, scale, W, a = ctx.save
        # H is symmetric: the vector-Jacobian product of v -> H v is H applied to the cotangent
        cW = _np(gHW.reshape(Wn.shape).to(W.dtype), "grad of HW")
        ca = _np(gha.reshape(-1).to(W.dtype), "grad of ha")
        HW, ha = _fx.hvp(Wn, an, Xn, yn, cW, ca, power=power, neg=neg)
        return (
            None,
            None,
            None,
            None,
            (_t(HW, W) * scale).reshape(ctx.vshapes[0]),
            (_t(ha, a) * scale).reshape(ctx.vshapes[1]),
            None,
            None,
            None,
        )


class _Objective(torch.autograd.Function):
    @staticmethod
    def forward(ctx, W, a, X, y, lam, which, power, neg, scale):
        Wn, an, Xn, yn = _args(W, a, X, y)
        value, lo, reg, gW, ga = _objective(Wn, an, Xn, yn, lam, which, power, neg)
        ctx.grads, ctx.scale, ctx.shapes = (gW, ga), scale, (W, a)
        lo_t, reg_t = _scalar(lo, scale, W), _scalar(reg, scale, W)
        ctx.mark_non_differentiable(lo_t, reg_t)  # reported values; the gradient is that of the total
        return _scalar(value, scale, W), lo_t, reg_t

    @staticmethod
    def backward(ctx, g, g_loss, g_reg):
        _check_first_order("regularized_loss")
        _check_no_input_grads(ctx, (None, None, "X", "y"), "regularized_loss")
        gW, ga = ctx.grads
        W, a = ctx.shapes
        return (*_grads(gW, ga, W, a, ctx.scale, g), None, None, None, None, None, None, None)


# --------------------------------------------------------------------------- public functions


def _act(power, neg):
    p, c = float(power), float(neg)
    if not (math.isfinite(p) and p >= 1.0):
        raise ValueError(f"power must be a finite number >= 1; got {power!r}")
    if not math.isfinite(c):
        raise ValueError(f"neg must be finite; got {neg!r}")
    return p, c


def _n(X):
    return X.shape[0] if isinstance(X, torch.Tensor) and X.dim() >= 1 else 1


def loss(W, a, X, y, *, power=1.0, neg=0.0, reduction="half_mean"):
    """The training loss as a differentiable scalar tensor.

    Parameters
    ----------
    W : Tensor, shape (m, d)
        First-layer weights (``nn.Linear(d, m, bias=False).weight``).
    a : Tensor, shape (m,) or (1, m)
        Output weights (``nn.Linear(m, 1, bias=False).weight`` works as is).
    X : Tensor, shape (n, d)
    y : Tensor, shape (n,) or (n, 1)
    power, neg : float
        The activation ``max(z,0)^power + neg * max(-z,0)^power``.
    reduction : {"half_mean", "mean", "sum"}
        ``"half_mean"``: flatext's ``(1/(2n)) sum r^2``; ``"mean"`` equals
        ``nn.MSELoss()`` (twice flatext's); ``"sum"`` equals ``nn.MSELoss(reduction="sum")``.

    Returns
    -------
    Tensor, 0-d, of the inputs' dtype; backward via ``flatext.loss_grad``.
    """
    p, c = _act(power, neg)
    return _Loss.apply(W, a, X, y, p, c, _scale(reduction, _n(X)))


def hessian_trace(W, a, X, y, *, power=1.0, neg=0.0, reduction="half_mean"):
    """Exact trace of the loss Hessian with respect to (W, a), differentiable.

    Forward: ``flatext.hessian_trace`` (or ``hessian_trace_grad`` when W or a
    requires grad, computing value and gradient in one pass); backward: that
    gradient. Parameters as in :func:`loss`; with ``reduction="mean"`` the
    result is the trace of ``nn.MSELoss()``'s Hessian (twice flatext's).

    Bounded below only where the trace is: for p > 1 away from interpolation
    it is unbounded below along rescalings (``docs/frameworks.md``).

    Returns
    -------
    Tensor, 0-d
    """
    p, c = _act(power, neg)
    return _Trace.apply(W, a, X, y, p, c, _scale(reduction, _n(X)))


def hessian_trace_parts(W, a, X, y, *, power=1.0, neg=0.0, reduction="half_mean"):
    """The trace with its parts; ``total`` is differentiable (as :func:`hessian_trace`).

    Returns
    -------
    flatext.TraceParts
        Fields are tensors: ``total`` carries the gradient; ``gauss_newton``,
        ``residual``, ``per_neuron``, ``per_neuron_a``, ``per_neuron_w`` and
        ``loss`` are detached values (all scaled by ``reduction``).
    """
    p, c = _act(power, neg)
    s = _scale(reduction, _n(X))
    Wn, an, Xn, yn = _args(W, a, X, y)
    parts = _fx.hessian_trace_parts(Wn, an, Xn, yn, power=p, neg=c)
    if W.requires_grad or a.requires_grad:
        total = _Trace.apply(W, a, X, y, p, c, s)
    else:
        total = _scalar(parts.total, s, W)

    def sc(v):
        return torch.as_tensor(np.asarray(v)).to(W.dtype) * s

    return _TorchTraceParts(
        total,
        sc(parts.gauss_newton),
        sc(parts.residual),
        sc(parts.per_neuron),
        sc(parts.per_neuron_a),
        sc(parts.per_neuron_w),
        sc(parts.loss),
    )


class _TorchTraceParts(_fx.TraceParts):
    def __repr__(self):
        return (
            f"TraceParts(total={float(self.total.detach()):.6g}, gauss_newton={float(self.gauss_newton):.6g}, "
            f"residual={float(self.residual):.6g}, m={self.per_neuron.shape[0]})"
        )


def hvp(W, a, X, y, VW, va, *, power=1.0, neg=0.0, reduction="half_mean"):
    """Exact Hessian-vector product ``H v`` of the loss, ``v = (VW, va)``.

    Differentiable with respect to the direction (``VW``, ``va``) (``H`` is
    symmetric, so the backward is one more HVP); not with respect to W, a
    (that would need third derivatives: a clear RuntimeError).

    Returns
    -------
    HW : Tensor, shape of W
    ha : Tensor, shape of a
    """
    p, c = _act(power, neg)
    return _Hvp.apply(W, a, X, y, VW, va, p, c, _scale(reduction, _n(X)))


def orbit_min_trace(W, a, X, y, *, power=1.0, neg=0.0, reduction="half_mean"):
    """The least trace over per-neuron rescalings ``(t_i w_i, t_i^-p a_i)``, differentiable.

    The gradient comes from the envelope theorem: the trace gradient at the
    balanced point, pulled back through the rescaling. Neurons whose orbit
    minimum is 0 (``A_i = 0`` or ``B_i = 0``) contribute a zero subgradient.

    Raises
    ------
    ValueError
        If some neuron's w-block trace ``B_i < 0`` (possible only off
        interpolation for p > 1): the trace is then unbounded below on the orbit.

    Returns
    -------
    Tensor, 0-d
    """
    p, c = _act(power, neg)
    return _OrbitMin.apply(W, a, X, y, p, c, _scale(reduction, _n(X)))


def regularized_loss(W, a, X, y, lam, *, which="trace", power=1.0, neg=0.0, reduction="half_mean", return_parts=False):
    """``L + lam * R`` with its exact gradient, as one differentiable tensor.

    Parameters
    ----------
    lam : float
        Weight of the regularizer.
    which : {"trace", "gauss_newton", "loss"}
        ``"trace"``: R = Tr H, bounded below for p = 1 (and at interpolation);
        for p > 1 away from interpolation ``L + lam T`` is unbounded below.
        ``"gauss_newton"``: R = G = (1/n) sum_j ||grad_theta f(x_j)||^2 >= 0,
        well posed for every p (needs ``flatext.objective``).
        ``"loss"``: R = 0 (the plain loss).
    reduction : {"half_mean", "mean", "sum"}
        Scales L and R alike (see :func:`loss`).
    return_parts : bool
        Also return the loss and the regularizer (detached).

    Returns
    -------
    Tensor, 0-d (and, with ``return_parts``, ``(value, loss, regularizer)``)
    """
    p, c = _act(power, neg)
    if which not in REGULARIZERS:
        raise ValueError(f"which must be one of {REGULARIZERS}; got {which!r}")
    lam = float(lam)
    if not math.isfinite(lam):
        raise ValueError(f"lam must be finite; got {lam!r}")
    value, lo, reg = _Objective.apply(W, a, X, y, lam, which, p, c, _scale(reduction, _n(X)))
    if return_parts:
        return value, lo.detach(), reg.detach()
    return value


# --------------------------------------------------------------------------- modules


class ReLUPower(nn.Module):
    """``sigma(z) = max(z,0)^p + neg * max(-z,0)^p`` as a module (p = 2: ReLU squared).

    Parameters
    ----------
    p : float
        Degree, >= 1.
    neg : float
        Negative-side coefficient (0: ReLU^p).
    """

    def __init__(self, p=2.0, neg=0.0):
        super().__init__()
        self.p, self.neg = _act(p, neg)

    def forward(self, z):
        out = torch.relu(z) if self.p == 1.0 else torch.relu(z) ** self.p
        if self.neg != 0.0:
            out = out + self.neg * (torch.relu(-z) if self.p == 1.0 else torch.relu(-z) ** self.p)
        return out

    def extra_repr(self):
        return f"p={self.p}, neg={self.neg}"


class TwoLayer(nn.Module):
    """The network ``f(x) = sum_i a_i sigma(w_i . x)`` as an ``nn.Module``.

    ``forward`` runs in PyTorch (any device, any autograd use); the curvature
    methods call flatext on CPU tensors (move the module with ``.cpu()`` first,
    or they raise naming that fix). Parameters: ``W`` (m, d), ``a`` (m,);
    initialized like ``nn.Linear`` (uniform, bounds ``1/sqrt(d)`` and ``1/sqrt(m)``).

    Parameters
    ----------
    d, m : int
        Input dimension and width.
    power, neg : float
        The activation ``max(z,0)^power + neg * max(-z,0)^power``.
    dtype, device : optional
        As for ``torch.empty``.
    """

    def __init__(self, d, m, power=1.0, neg=0.0, *, dtype=None, device=None):
        super().__init__()
        d, m = int(d), int(m)
        if d < 1 or m < 1:
            raise ValueError(f"d and m must be >= 1; got d={d}, m={m}")
        self.power, self.neg = _act(power, neg)
        self.act = ReLUPower(self.power, self.neg)
        self.W = nn.Parameter(torch.empty(m, d, dtype=dtype, device=device).uniform_(-1, 1) / math.sqrt(d))
        self.a = nn.Parameter(torch.empty(m, dtype=dtype, device=device).uniform_(-1, 1) / math.sqrt(m))

    def forward(self, X):
        """``f(X)``, shape (n,)."""
        return self.act(X @ self.W.T) @ self.a

    def _kw(self, reduction):
        return {"power": self.power, "neg": self.neg, "reduction": reduction}

    def loss(self, X, y, *, reduction="half_mean"):
        """flatext's loss of this network (differentiable), see :func:`loss`."""
        return loss(self.W, self.a, X, y, **self._kw(reduction))

    def hessian_trace(self, X, y, *, reduction="half_mean"):
        """Exact Hessian trace (differentiable), see :func:`hessian_trace`."""
        return hessian_trace(self.W, self.a, X, y, **self._kw(reduction))

    def hessian_trace_parts(self, X, y, *, reduction="half_mean"):
        """See :func:`hessian_trace_parts`."""
        return hessian_trace_parts(self.W, self.a, X, y, **self._kw(reduction))

    def hvp(self, X, y, VW, va, *, reduction="half_mean"):
        """Exact ``H v`` at the current weights, see :func:`hvp`."""
        return hvp(self.W, self.a, X, y, VW, va, **self._kw(reduction))

    def orbit_min_trace(self, X, y, *, reduction="half_mean"):
        """Least trace over rescalings (differentiable), see :func:`orbit_min_trace`."""
        return orbit_min_trace(self.W, self.a, X, y, **self._kw(reduction))

    def regularized_loss(self, X, y, lam, *, which="trace", reduction="half_mean"):
        """``L + lam * R``, see :func:`regularized_loss`."""
        return regularized_loss(self.W, self.a, X, y, lam, which=which, **self._kw(reduction))

    @torch.no_grad()
    def rescale(self, t):
        """In place: ``(t_i w_i, t_i^-p a_i)`` for a positive scalar or per-neuron ``t``; same function.

        Returns
        -------
        self
        """
        if isinstance(t, torch.Tensor):
            t = t.detach().cpu().numpy().astype(_NP_DTYPE.get(self.W.dtype, np.float64))
        W2, a2 = _fx.rescale(_np(self.W, "W"), _np(self.a, "a"), t, power=self.power)
        self.W.copy_(torch.from_numpy(W2))
        self.a.copy_(torch.from_numpy(a2))
        return self

    @torch.no_grad()
    def balance(self, X, y):
        """In place: move to the point of least trace on the rescaling orbit (``flatext.balance``).

        Raises ``ValueError`` if some ``B_i < 0`` (no minimum). Returns self.
        """
        Wn, an, Xn, yn = _args(self.W, self.a, X, y)
        W2, a2 = _fx.balance(Wn, an, Xn, yn, power=self.power, neg=self.neg)
        self.W.copy_(torch.from_numpy(W2))
        self.a.copy_(torch.from_numpy(a2))
        return self

    @classmethod
    def from_sequential(cls, seq):
        """See :func:`from_sequential`."""
        return from_sequential(seq)

    def extra_repr(self):
        m, d = self.W.shape
        return f"d={d}, m={m}, power={self.power}, neg={self.neg}"


def _activation_of(mod):
    if isinstance(mod, nn.ReLU):
        return 1.0, 0.0
    if isinstance(mod, nn.LeakyReLU):
        return 1.0, -float(mod.negative_slope)  # max(z,0) + s*min(z,0) = max(z,0) - s*max(-z,0)
    if isinstance(mod, ReLUPower):
        return mod.p, mod.neg
    raise TypeError(
        f"from_sequential: the activation must be nn.ReLU, nn.LeakyReLU or flatext.torch.ReLUPower(p); got "
        f"{type(mod).__name__} (flatext handles sigma(z) = max(z,0)^p + neg * max(-z,0)^p only)"
    )


def from_sequential(seq):
    """A :class:`TwoLayer` with the weights of an ``nn.Sequential``:
    ``nn.Sequential(Linear(d, m, bias=False), act, Linear(m, 1, bias=False))``.

    ``act`` is ``nn.ReLU()``, ``nn.LeakyReLU(s)`` (neg = -s) or :class:`ReLUPower`.
    The weights are copied (the new module does not share them).

    Raises
    ------
    TypeError
        For any other structure, a bias, or another activation.
    """
    if not isinstance(seq, nn.Sequential) or len(seq) != 3:
        raise TypeError(
            "from_sequential expects nn.Sequential(nn.Linear(d, m, bias=False), activation, "
            f"nn.Linear(m, 1, bias=False)); got {type(seq).__name__} of length "
            f"{len(seq) if hasattr(seq, '__len__') else '?'}"
        )
    l1, act, l2 = seq
    for k, lin in ((0, l1), (2, l2)):
        if not isinstance(lin, nn.Linear):
            raise TypeError(f"from_sequential: layer {k} must be nn.Linear; got {type(lin).__name__}")
        if lin.bias is not None:
            raise TypeError(
                f"from_sequential: layer {k} has a bias; flatext's network has none "
                "(build it with nn.Linear(..., bias=False))"
            )
    if l2.out_features != 1:
        raise TypeError(f"from_sequential: the last layer must have one output; got {l2.out_features}")
    if l2.in_features != l1.out_features:
        raise TypeError(f"from_sequential: widths differ ({l1.out_features} vs {l2.in_features})")
    p, c = _activation_of(act)
    w1 = l1.weight
    net = TwoLayer(l1.in_features, l1.out_features, p, c, dtype=w1.dtype, device=w1.device)
    with torch.no_grad():
        net.W.copy_(w1)
        net.a.copy_(l2.weight.reshape(-1))
    return net
