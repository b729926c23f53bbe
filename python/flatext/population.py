"""Population loss of a two-layer homogeneous network against a teacher.

    population loss = E_x[(f(x) - f*(x))^2],    f(x) = sum_i a_i sigma(w_i . x)

The label-noise variance is *not* included: the noisy risk E[(f(x) - y)^2]
with y = f*(x) + N(0, tau^2) is ``population_loss(...).value + tau^2``.

Two methods (``docs/population.md``):

- ``"exact"`` (Gaussian inputs x ~ N(0, I_d)): the square expands into
  two-dimensional Gaussian integrals. Neuron-neuron (and homogeneous /
  polynomial teacher) terms use the closed-form angular reduction of
  ``flatext/population.hpp`` in C++ (OpenMP over pairs, cost O(m^2 d));
  terms with a non-polynomial link (tanh, callables) use composite
  Gauss-Legendre quadrature against the Gaussian weight, split at the neuron's
  kink. No sampling: the result is deterministic.
- ``"mc"``: fresh samples from any input distribution of
  :func:`flatext.teachers.sample_inputs`, streamed in batches (bounded memory),
  with the standard error of the mean.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from ._native import _core
from .curvature import _check_matrix_and_vector
from .teachers import INPUTS, Teacher, _check_spectrum, _rng, sample_inputs

__all__ = ["PopulationEstimate", "population_loss"]

_CHUNK = 1 << 19  # quadrature points evaluated at once (bounded memory)


@dataclass(frozen=True)
class PopulationEstimate:
    """Result of :func:`population_loss`.

    Attributes
    ----------
    value : float
        E_x[(f(x) - f*(x))^2] (noise variance not included).
    stderr : float
        Standard error of ``value``: 0.0 for ``method="exact"``.
    n_samples : int
        Monte Carlo samples used (0 for ``"exact"``).
    method : str
        ``"exact"`` or ``"mc"``.
    """

    value: float
    stderr: float
    n_samples: int
    method: str

    def __float__(self):
        return float(self.value)


# --------------------------------------------------------------------------- quadrature rules
def _sidi(s):
    return s - np.sin(2 * np.pi * s) / (2 * np.pi), 1 - np.cos(2 * np.pi * s)


def _gauss_line(h, n, T):
    """Composite Gauss-Legendre on [-T, T] (panels of width h, n nodes) for E over N(0, 1)."""
    s, w = np.polynomial.legendre.leggauss(n)
    K = int(round(2 * T / h))
    left = -T + h * np.arange(K)
    x = (left[:, None] + h * (s + 1) / 2).ravel()
    wt = np.tile(w * h / 2, K) * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    return x, wt


def _half_line(h, n, T):
    """Nodes t on (0, T] and weights for int_0^inf F(t) e^{-t^2/2}/sqrt(2 pi) dt.

    Composite Gauss-Legendre; the first panel is Sidi-mapped so that F(t) = t^p G(t)
    with non-integer p (not smooth at 0) still converges fast.
    """
    s, w = np.polynomial.legendre.leggauss(n)
    s, w = (s + 1) / 2, w / 2
    psi, dpsi = _sidi(s)
    xs, ws = [h * psi], [h * w * dpsi]
    K = int(round(T / h))
    for k in range(1, K):
        xs.append(h * (k + s))
        ws.append(h * w)
    x, wt = np.concatenate(xs), np.concatenate(ws)
    return x, wt * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)


# Grids (panel width, nodes per panel, half-width), chosen by refinement studies
# (docs/population.md): smooth dimensions k -> ~1e-14 (k = 1), ~1e-11 (k = 2) for
# tanh-like links; the kink direction with k smooth dimensions beside it -> ~1e-15
# (k <= 1), ~1e-11 (k = 2).
_SMOOTH = {1: (1.0, 12, 9.0), 2: (1.5, 12, 9.0)}
_KINK = {0: (1.0, 20, 10.0), 1: (1.0, 20, 10.0), 2: (1.0, 16, 10.0)}


def _grid(k):
    """Tensor grid (N, k) and weights for E over N(0, I_k); k = 0 is one point."""
    if k == 0:
        return np.zeros((1, 0)), np.ones(1)
    if k not in _SMOOTH:
        raise NotImplementedError(
            f"the exact population loss needs Gaussian integrals in {k} smooth dimensions beyond the "
            'neurons\' direction; only up to 2 are supported (e.g. MultiIndex with r <= 2): use method="mc"'
        )
    x, w = _gauss_line(*_SMOOTH[k])
    if k == 1:
        return x[:, None], w
    X1, X2 = np.meshgrid(x, x, indexing="ij")
    return np.stack([X1.ravel(), X2.ravel()], axis=1), np.outer(w, w).ravel()


def _factor(C):
    """L (s, k) with L L^T = C for a PSD matrix C, dropping null directions."""
    lam, Q = np.linalg.eigh(C)
    top = max(float(lam.max(initial=0.0)), 1e-300)
    keep = lam > 1e-13 * max(top, 1.0)
    return Q[:, keep] * np.sqrt(lam[keep])


def _eval_weighted(H, Z, w):
    """sum_j w_j H(Z_j) in chunks."""
    acc = 0.0
    for i in range(0, Z.shape[0], _CHUNK):
        h = np.asarray(H(Z[i : i + _CHUNK]), dtype=np.float64)
        if h.shape != (min(_CHUNK, Z.shape[0] - i),):
            raise ValueError(f"a link returned shape {h.shape} for {Z.shape[0]} points; links must return (n,)")
        acc += float(w[i : i + _CHUNK] @ h)
    return acc


def _smooth_expect(H, V):
    """E[H(V^T x)], x ~ N(0, I_d), V (d, s); H treated as smooth."""
    L = _factor(V.T @ V)
    Y, w = _grid(L.shape[1])
    return _eval_weighted(H, Y @ L.T, w)


def _kinked_expect(v, p, c, H, V):
    """E[s(v . x) H(V^T x)] with s(z) = z+^p + c z-^p, kink on the plane v . x = 0."""
    nv = float(np.linalg.norm(v))
    if nv == 0.0:
        return 0.0
    e = v / nv
    b = V.T @ e  # (s,)
    Vp = V - np.outer(e, b)
    L = _factor(Vp.T @ Vp)
    k = L.shape[1]
    Y, wy = _grid(k)
    t, wt = _half_line(*_KINK[k])
    base = Y @ L.T  # (Ny, s)
    total = 0.0
    for sign, coef in ((1.0, 1.0), (-1.0, c)):
        if coef == 0.0:
            continue
        tt = sign * t
        # E over y for each t, accumulated in chunks of t
        per_t = max(1, _CHUNK // max(1, base.shape[0]))
        vals = np.empty(t.shape[0])
        for i in range(0, t.shape[0], per_t):
            tc = tt[i : i + per_t]
            Z = (tc[:, None, None] * b[None, None, :] + base[None, :, :]).reshape(-1, b.shape[0])
            h = np.asarray(H(Z), dtype=np.float64)
            if h.shape != (Z.shape[0],):
                raise ValueError(f"a link returned shape {h.shape} for {Z.shape[0]} points; links must return (n,)")
            vals[i : i + per_t] = h.reshape(tc.shape[0], -1) @ wy
        total += coef * float((wt * t**p) @ vals)
    return nv**p * total


def _abs_moment(p):
    """E|Z|^p, Z ~ N(0, 1)."""
    return math.exp(0.5 * p * math.log(2.0) + math.lgamma((p + 1) / 2) - 0.5 * math.log(math.pi))


def _product(h1, s1, h2):
    return lambda Z: np.asarray(h1(Z[:, :s1]), dtype=np.float64) * np.asarray(h2(Z[:, s1:]), dtype=np.float64)


def _exact(W, a, teacher, power, neg):
    ex = teacher._expansion()
    U = np.ascontiguousarray(np.vstack([W, ex.V]))
    P = np.concatenate([np.full(W.shape[0], power), ex.power])
    C = np.concatenate([np.full(W.shape[0], neg), ex.neg])
    beta = np.concatenate([a, -ex.coef])  # e(x) = sum beta s(.) - const - sum gamma h
    total = _core.gaussian_quadratic_form(U, P, C, beta)
    kappa = ex.const
    if kappa != 0.0:
        norms = np.linalg.norm(U, axis=1)
        first = sum(bb * nn**pp * _abs_moment(pp) * (1 + cc) / 2 for bb, nn, pp, cc in zip(beta, norms, P, C))
        total += kappa * kappa - 2 * kappa * first
    gen = ex.general
    for i, (Vg, hg, gg) in enumerate(gen):
        if kappa != 0.0:
            total += 2 * kappa * gg * _smooth_expect(hg, Vg)
        for j in range(i, len(gen)):
            Vh, hh, gh = gen[j]
            both = _smooth_expect(_product(hg, Vg.shape[1], hh), np.hstack([Vg, Vh]))
            total += (1 if i == j else 2) * gg * gh * both
        for u, p, c, bb in zip(U, P, C, beta):
            if bb != 0.0:
                total -= 2 * bb * gg * _kinked_expect(u, p, c, hg, Vg)
    return total


# --------------------------------------------------------------------------- API
def population_loss(
    W,
    a,
    teacher,
    *,
    power=1.0,
    neg=0.0,
    method="exact",
    n_samples=1_000_000,
    seed=None,
    inputs="gaussian",
    spectrum=None,
    batch=65536,
):
    """Population loss ``E_x[(f(x) - f*(x))^2]`` of the network (W, a) against a teacher.

    The label-noise variance is not included (noisy risk = value + noise^2).

    Parameters
    ----------
    W : array_like (m, d)
    a : array_like (m,)
    teacher : flatext.teachers.Teacher
        Any teacher (``SumOfSingleIndex``, ``MultiIndex``, ``PlantedNetwork``);
        for ``"mc"`` any object with ``d`` and a vectorized ``__call__`` works.
    power, neg : float
        The network's activation ``max(z,0)^power + neg * max(-z,0)^power``.
    method : {"exact", "mc"}
        ``"exact"``: Gaussian inputs only, deterministic quadrature (no
        sampling); accuracy ~1e-14 relative for homogeneous / polynomial links,
        ~1e-10 or better with tanh / smooth callables; MultiIndex needs r <= 2.
        ``"mc"``: Monte Carlo on ``n_samples`` fresh inputs in batches.
    n_samples : int
        Monte Carlo sample size (``"mc"`` only).
    seed : int, None or numpy.random.Generator
        Monte Carlo seed (the draws depend on ``batch`` too).
    inputs : {"gaussian", "sphere", "rademacher", "anisotropic"}
        Input distribution (``"exact"`` requires ``"gaussian"``).
    spectrum : array_like (d,), for ``inputs="anisotropic"``
    batch : int
        Samples per batch for ``"mc"`` (memory O(batch * (d + m))).

    Returns
    -------
    PopulationEstimate
        ``value``, ``stderr`` (0 for exact), ``n_samples`` (0 for exact), ``method``.
        ``float(result)`` gives the value. An exact value is not clipped: when
        the network equals the teacher it is 0 up to rounding (may be -1e-17).
    """
    if not isinstance(teacher, Teacher) and not (callable(teacher) and hasattr(teacher, "d")):
        raise TypeError(f"teacher must be a flatext.teachers.Teacher; got {type(teacher).__name__}")
    W = np.array(W, dtype=np.float64)
    a = np.array(a, dtype=np.float64)
    _check_matrix_and_vector(W, a, ("W", "a"), ("m", "d"))
    if W.shape[1] != teacher.d:
        raise ValueError(f"W must have d = {teacher.d} columns (the teacher's input dimension); got {W.shape}")
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(a))):
        raise ValueError("W and a must be finite")
    for name, v in (("power", power), ("neg", neg)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise ValueError(f"{name} must be a real number; got {v!r}")
    power, neg = float(power), float(neg)
    _core.Activation(power, neg)  # the one check of power >= 1 and neg finite (ValueError naming them)
    if inputs not in INPUTS:
        raise ValueError(f"inputs must be one of {INPUTS}; got {inputs!r}")
    _check_spectrum(spectrum, inputs, teacher.d)
    if method == "exact":
        if inputs != "gaussian":
            raise ValueError(f'method="exact" needs inputs="gaussian"; got {inputs!r}: use method="mc"')
        if not isinstance(teacher, Teacher):
            raise TypeError('method="exact" needs a flatext.teachers.Teacher; use method="mc"')
        v = _exact(W, a, teacher, power, neg)
        if not math.isfinite(v):
            raise ValueError("population_loss: the result is not finite (overflow)")
        return PopulationEstimate(v, 0.0, 0, "exact")
    if method != "mc":
        raise ValueError(f'method must be "exact" or "mc"; got {method!r}')
    if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) or n_samples < 2:
        raise ValueError(f"n_samples must be an int >= 2; got {n_samples!r}")
    if isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or batch < 1:
        raise ValueError(f"batch must be an int >= 1; got {batch!r}")
    from .curvature import forward

    rng = _rng(seed)
    n_done, mean, m2 = 0, 0.0, 0.0  # Chan et al. pooled mean / sum of squared deviations
    while n_done < n_samples:
        b = min(int(batch), int(n_samples) - n_done)
        X = sample_inputs(b, teacher.d, inputs, seed=rng, spectrum=spectrum)
        e = (np.asarray(forward(W, a, X, power=power, neg=neg)) - teacher(X)) ** 2
        bm = float(e.mean())
        bm2 = float(((e - bm) ** 2).sum())
        tot = n_done + b
        delta = bm - mean
        mean += delta * b / tot
        m2 += bm2 + delta * delta * n_done * b / tot
        n_done = tot
    var = m2 / (n_done - 1)
    return PopulationEstimate(mean, math.sqrt(var / n_done), n_done, "mc")
