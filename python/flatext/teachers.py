"""Teachers, input distributions and labelled data (``docs/design.md`` section 6).

Three teacher classes, all callable on inputs ``X`` of shape (n, d) and returning
``f*(X)`` of shape (n,):

- :class:`SumOfSingleIndex`: ``f*(x) = sum_k weights_k g_k(u_k . x)``;
- :class:`MultiIndex`: ``f*(x) = g(U^T x)`` with ``U`` (d, r) orthonormal;
- :class:`PlantedNetwork`: ``f*(x) = sum_i a_i sigma(w_i . x)``, a two-layer
  homogeneous network with ``sigma(z) = max(z,0)^p + neg * max(-z,0)^p``.

Links are names or vectorized callables (``g(z)`` on an array of shape (n,)
returning shape (n,)):

========  =========================  ==========================================
name      g(z)                       exact-loss representation
========  =========================  ==========================================
relu      max(z, 0)                  homogeneous (power 1, neg 0)
relu2     max(z, 0)^2                homogeneous (2, 0)
relu3     max(z, 0)^3                homogeneous (3, 0)
abs       abs(z)                     homogeneous (1, 1)
linear    z                          homogeneous (1, -1)
he2       z^2 - 1                    z^2 (= (2, 1)) minus the constant 1
he3       z^3 - 3 z                  (3, -1) - 3 (1, -1)
he4       z^4 - 6 z^2 + 3            (4, 1) - 6 (2, 1) + 3
tanh      tanh(z)                    smooth, by quadrature
========  =========================  ==========================================

(``he*`` are the probabilists' Hermite polynomials, orthogonal under N(0, 1).)
Polynomial and homogeneous links are sums of homogeneous "atoms"
``z+^p + c z-^p``, so the exact population loss treats them with the same
closed-form angular quadrature as the network's neurons (machine precision).

Data: ``teacher.sample(n, noise=tau, inputs=..., seed=...)`` returns ``(X, y)``
with ``y = f*(X) + N(0, tau^2)``. Inputs: ``"gaussian"`` (N(0, I_d)),
``"sphere"`` (uniform on the sphere of radius sqrt(d)), ``"rademacher"``
(uniform on {-1, +1}^d), ``"anisotropic"`` (N(0, diag(spectrum))). A seed
(int, None or ``numpy.random.Generator``) makes every draw reproducible.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Callable, Optional, Tuple

import numpy as np

__all__ = [
    "Link",
    "as_link",
    "LINKS",
    "INPUTS",
    "sample_inputs",
    "Teacher",
    "SumOfSingleIndex",
    "MultiIndex",
    "PlantedNetwork",
    "with_approximation_error",
]

INPUTS = ("gaussian", "sphere", "rademacher", "anisotropic")


# --------------------------------------------------------------------------- links
@dataclass(frozen=True)
class Link:
    """A scalar link g: R -> R.

    Attributes
    ----------
    name : str
        A name from :data:`LINKS` or the callable's name.
    func : callable
        Vectorized g on arrays of shape (n,).
    atoms : tuple of (power, neg, coef), or None
        ``g(z) = const + sum coef * (z+^power + neg * z-^power)`` when g is a
        polynomial or homogeneous link; None for other links (tanh, callables).
    const : float
        The constant term of that expansion.
    """

    name: str
    func: Callable = field(repr=False, compare=False)
    atoms: Optional[Tuple[Tuple[float, float, float], ...]] = None
    const: float = 0.0

    @property
    def homogeneous(self):
        """``(power, neg)`` if g is positively homogeneous (``z+^p + neg z-^p``), else None."""
        if self.atoms is not None and len(self.atoms) == 1 and self.atoms[0][2] == 1.0 and self.const == 0.0:
            return (self.atoms[0][0], self.atoms[0][1])
        return None

    def __call__(self, z):
        return self.func(z)


def _homog(p, c):
    def f(z):
        z = np.asarray(z, dtype=np.float64)
        return np.where(z > 0, np.abs(z) ** p, c * np.abs(z) ** p)

    return f


LINKS = {
    "relu": Link("relu", lambda z: np.maximum(np.asarray(z, dtype=np.float64), 0.0), ((1.0, 0.0, 1.0),)),
    "relu2": Link("relu2", lambda z: np.maximum(np.asarray(z, dtype=np.float64), 0.0) ** 2, ((2.0, 0.0, 1.0),)),
    "relu3": Link("relu3", lambda z: np.maximum(np.asarray(z, dtype=np.float64), 0.0) ** 3, ((3.0, 0.0, 1.0),)),
    "abs": Link("abs", lambda z: np.abs(np.asarray(z, dtype=np.float64)), ((1.0, 1.0, 1.0),)),
    "linear": Link("linear", lambda z: np.array(z, dtype=np.float64), ((1.0, -1.0, 1.0),)),
    "he2": Link("he2", lambda z: np.asarray(z, dtype=np.float64) ** 2 - 1.0, ((2.0, 1.0, 1.0),), -1.0),
    "he3": Link(
        "he3",
        lambda z: (lambda z: z**3 - 3.0 * z)(np.asarray(z, dtype=np.float64)),
        ((3.0, -1.0, 1.0), (1.0, -1.0, -3.0)),
    ),
    "he4": Link(
        "he4",
        lambda z: (lambda z: z**4 - 6.0 * z**2 + 3.0)(np.asarray(z, dtype=np.float64)),
        ((4.0, 1.0, 1.0), (2.0, 1.0, -6.0)),
        3.0,
    ),
    "tanh": Link("tanh", lambda z: np.tanh(np.asarray(z, dtype=np.float64))),
}
"""The named links."""


def as_link(link, name="link") -> Link:
    """A :class:`Link` from a name, a :class:`Link` or a vectorized callable."""
    if isinstance(link, Link):
        return link
    if isinstance(link, str):
        if link not in LINKS:
            raise ValueError(f"{name}: unknown link {link!r}; choose one of {sorted(LINKS)} or pass a callable")
        return LINKS[link]
    if callable(link):
        return Link(getattr(link, "__name__", "callable"), link)
    raise TypeError(f"{name} must be a link name, a Link or a vectorized callable; got {type(link).__name__}")


# --------------------------------------------------------------------------- inputs
def _rng(seed):
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (numbers.Integral, np.random.SeedSequence)):
        return np.random.default_rng(seed)
    raise TypeError(f"seed must be None, an int or a numpy.random.Generator; got {type(seed).__name__}")


def _check_count(n, name):
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(n).__name__}")
    if n < 0:
        raise ValueError(f"{name} must be >= 0; got {n}")
    return int(n)


def _check_spectrum(spectrum, inputs, d):
    if inputs == "anisotropic":
        if spectrum is None:
            raise ValueError('spectrum is required for inputs="anisotropic" (the covariance diagonal, shape (d,))')
        s = np.asarray(spectrum, dtype=np.float64)
        if s.shape != (d,):
            raise ValueError(f"spectrum must have shape (d,) = ({d},); got {s.shape}")
        if not np.all(np.isfinite(s)) or np.any(s < 0):
            raise ValueError("spectrum must be finite and >= 0 (variances)")
        return s
    if spectrum is not None:
        raise ValueError(f'spectrum is only used with inputs="anisotropic"; got inputs={inputs!r}')
    return None


def sample_inputs(n, d, inputs="gaussian", *, seed=None, spectrum=None):
    """Draw n inputs in R^d.

    Parameters
    ----------
    n, d : int
    inputs : {"gaussian", "sphere", "rademacher", "anisotropic"}
        N(0, I_d); uniform on the sphere of radius sqrt(d) (so E||x||^2 = d as
        for the Gaussian); uniform on {-1, +1}^d; N(0, diag(spectrum)).
    seed : int, None or numpy.random.Generator
    spectrum : array_like (d,), only for ``"anisotropic"``
        The variances of the coordinates.

    Returns
    -------
    X : ndarray (n, d), float64
    """
    n = _check_count(n, "n")
    d = _check_count(d, "d")
    if d == 0:
        raise ValueError("d must be >= 1")
    if inputs not in INPUTS:
        raise ValueError(f"inputs must be one of {INPUTS}; got {inputs!r}")
    s = _check_spectrum(spectrum, inputs, d)
    rng = _rng(seed)
    if inputs == "rademacher":
        return (2.0 * rng.integers(0, 2, size=(n, d)) - 1.0).astype(np.float64)
    X = rng.standard_normal((n, d))
    if inputs == "sphere":
        nrm = np.linalg.norm(X, axis=1, keepdims=True)
        nrm[nrm == 0] = 1.0
        X *= math.sqrt(d) / nrm
    elif inputs == "anisotropic":
        X *= np.sqrt(s)
    return X


def _random_orthonormal(d, k, rng):
    """(k, d) with orthonormal rows (k <= d), Haar-distributed."""
    G = rng.standard_normal((d, k))
    Q, R = np.linalg.qr(G)
    Q = Q * np.sign(np.diag(R))  # Haar
    return np.ascontiguousarray(Q.T)


def _as_matrix(x, name, shape_hint):
    try:
        A = np.array(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a real array {shape_hint}") from e
    if A.ndim != 2:
        raise ValueError(f"{name} must be 2-D {shape_hint}; got shape {A.shape}")
    if A.size == 0:
        raise ValueError(f"{name} is empty; got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise ValueError(f"{name} contains NaN or inf")
    return A


# --------------------------------------------------------------------------- teachers
@dataclass
class _Expansion:
    """f*(x) = const + sum_k coef_k s_k(v_k . x) + sum_g gamma_g h_g(V_g^T x) (for the exact loss)."""

    V: np.ndarray  # (K, d) atom directions
    power: np.ndarray  # (K,)
    neg: np.ndarray  # (K,)
    coef: np.ndarray  # (K,)
    const: float
    general: list  # [(V_g (d, s), h_g callable on (N, s) -> (N,), gamma_g)]


class Teacher:
    """Base class: a target function f* on R^d with sampling helpers."""

    d: int

    def __call__(self, X):  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_X(self, X):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.d:
            raise ValueError(f"X must have shape (n, d) with d = {self.d}; got {X.shape}")
        return X

    def sample(self, n, *, noise=0.0, inputs="gaussian", seed=None, spectrum=None):
        """Draw a labelled data set.

        Parameters
        ----------
        n : int
            Number of samples.
        noise : float, default 0
            Standard deviation tau of the label noise: ``y = f*(x) + N(0, tau^2)``.
        inputs : {"gaussian", "sphere", "rademacher", "anisotropic"}
            See :func:`sample_inputs`.
        seed : int, None or numpy.random.Generator
            The inputs are drawn first, then the noise, from one generator.
        spectrum : array_like (d,), only for ``"anisotropic"``

        Returns
        -------
        X : ndarray (n, d)
        y : ndarray (n,)
        """
        if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not math.isfinite(noise) or noise < 0:
            raise ValueError(f"noise must be a finite number >= 0; got {noise!r}")
        rng = _rng(seed)
        X = sample_inputs(n, self.d, inputs, seed=rng, spectrum=spectrum)
        y = self(X)
        if noise > 0:
            y = y + noise * rng.standard_normal(y.shape[0])
        return X, y

    def _expansion(self) -> _Expansion:  # pragma: no cover - abstract
        raise NotImplementedError


class SumOfSingleIndex(Teacher):
    """``f*(x) = sum_k weights_k g_k(u_k . x)``.

    Parameters
    ----------
    directions : array_like, shape (k, d)
        The u_k, kept as given: they need not be unit norm nor orthogonal (the
        exact population loss handles any norms and angles; ``random`` draws
        orthonormal ones). A norm scales the link's argument.
    links : link or sequence of k links
        Names (see :data:`LINKS`), :class:`Link` objects or vectorized callables;
        one link is used for every direction.
    weights : array_like (k,), default all ones
    """

    def __init__(self, directions, links, weights=None):
        U = _as_matrix(directions, "directions", "of shape (k, d)")
        k, d = U.shape
        if isinstance(links, (str, Link)) or callable(links):
            links = [links] * k
        try:
            links = list(links)
        except TypeError:
            raise TypeError("links must be a link or a sequence of links") from None
        if len(links) != k:
            raise ValueError(f"links must have one link per direction (k = {k}); got {len(links)}")
        self.links = [as_link(g, f"links[{i}]") for i, g in enumerate(links)]
        if weights is None:
            w = np.ones(k)
        else:
            w = np.array(weights, dtype=np.float64)
            if w.shape != (k,):
                raise ValueError(f"weights must have shape (k,) = ({k},); got {w.shape}")
            if not np.all(np.isfinite(w)):
                raise ValueError("weights contains NaN or inf")
        self.directions = U
        self.weights = w
        self.d = d
        self.k = k

    @classmethod
    def random(cls, d, links, weights=None, seed=0):
        """Random orthonormal directions (Haar) for ``len(links)`` links in R^d (needs k <= d)."""
        if isinstance(links, (str, Link)) or callable(links):
            links = [links]
        links = list(links)
        d = _check_count(d, "d")
        if not 1 <= len(links) <= d:
            raise ValueError(f"need 1 <= k <= d orthonormal directions; got k = {len(links)}, d = {d}")
        return cls(_random_orthonormal(d, len(links), _rng(seed)), links, weights)

    def __call__(self, X):
        X = self._check_X(X)
        Z = X @ self.directions.T
        out = np.zeros(X.shape[0])
        for k, g in enumerate(self.links):
            out += self.weights[k] * np.asarray(g(Z[:, k]), dtype=np.float64).reshape(X.shape[0])
        return out

    def __repr__(self):
        names = [g.name for g in self.links]
        return f"SumOfSingleIndex(d={self.d}, k={self.k}, links={names}, weights={self.weights.tolist()})"

    def _expansion(self):
        V, P, C, A, gen = [], [], [], [], []
        const = 0.0
        for k, g in enumerate(self.links):
            wk, u = self.weights[k], self.directions[k]
            if g.atoms is None:
                gen.append((u[:, None].copy(), (lambda f: lambda Z: f(Z[:, 0]))(g.func), wk))
                continue
            const += wk * g.const
            for p, c, coef in g.atoms:
                V.append(u)
                P.append(p)
                C.append(c)
                A.append(wk * coef)
        return _Expansion(
            np.array(V).reshape(-1, self.d),
            np.array(P, dtype=np.float64),
            np.array(C, dtype=np.float64),
            np.array(A, dtype=np.float64),
            const,
            gen,
        )


class MultiIndex(Teacher):
    """``f*(x) = g(U^T x)`` with U of shape (d, r) orthonormal (``U^T U = I_r``).

    Parameters
    ----------
    U : array_like, shape (d, r)
        Orthonormal columns (checked to 1e-8).
    link : callable
        Vectorized g on arrays of shape (n, r) returning shape (n,). When r = 1
        a link name (see :data:`LINKS`) is also accepted.

    Notes
    -----
    The exact population loss treats a callable g as smooth (composite
    Gauss-Legendre against the Gaussian weight): spectral accuracy for smooth
    g, slow (algebraic) convergence for a kinked g. It is available for r <= 2.
    """

    def __init__(self, U, link):
        U = _as_matrix(U, "U", "of shape (d, r)")
        d, r = U.shape
        if r > d:
            raise ValueError(f"U must have shape (d, r) with r <= d; got {U.shape}")
        err = np.max(np.abs(U.T @ U - np.eye(r)))
        if err > 1e-8:
            raise ValueError(f"U must have orthonormal columns (U^T U = I); max |U^T U - I| = {err:.3g}")
        if isinstance(link, (str, Link)):
            if r != 1:
                raise TypeError("link must be a vectorized callable on arrays of shape (n, r) when r > 1")
            self._scalar = as_link(link, "link")
            self.link = lambda Z: self._scalar(Z[:, 0])
            self._name = self._scalar.name
        elif callable(link):
            self._scalar = None
            self.link = link
            self._name = getattr(link, "__name__", "callable")
        else:
            raise TypeError(f"link must be a vectorized callable; got {type(link).__name__}")
        self.U = U
        self.d, self.r = d, r

    @classmethod
    def random(cls, d, r, link, seed=0):
        """Random orthonormal U (Haar) of shape (d, r)."""
        d = _check_count(d, "d")
        r = _check_count(r, "r")
        if not 1 <= r <= d:
            raise ValueError(f"need 1 <= r <= d; got r = {r}, d = {d}")
        return cls(_random_orthonormal(d, r, _rng(seed)).T, link)

    def __call__(self, X):
        X = self._check_X(X)
        out = np.asarray(self.link(X @ self.U), dtype=np.float64)
        if out.shape != (X.shape[0],):
            raise ValueError(f"link must return shape (n,) = ({X.shape[0]},) on input (n, r); got {out.shape}")
        return out

    def __repr__(self):
        return f"MultiIndex(d={self.d}, r={self.r}, link={self._name})"

    def _expansion(self):
        g = self._scalar
        if g is not None and g.atoms is not None:
            u = self.U[:, 0]
            return _Expansion(
                np.array([u for _ in g.atoms]).reshape(-1, self.d),
                np.array([t[0] for t in g.atoms]),
                np.array([t[1] for t in g.atoms]),
                np.array([t[2] for t in g.atoms]),
                g.const,
                [],
            )
        return _Expansion(np.zeros((0, self.d)), np.zeros(0), np.zeros(0), np.zeros(0), 0.0, [(self.U, self.link, 1.0)])


class PlantedNetwork(Teacher):
    """A narrow two-layer homogeneous network ``f*(x) = sum_i a_i sigma(w_i . x)``.

    Parameters
    ----------
    W : array_like (m, d)
    a : array_like (m,)
    power, neg : float
        ``sigma(z) = max(z,0)^power + neg * max(-z,0)^power`` (power >= 1).
    """

    def __init__(self, W, a, *, power=1.0, neg=0.0):
        W = _as_matrix(W, "W", "of shape (m, d)")
        a = np.array(a, dtype=np.float64)
        if a.shape != (W.shape[0],):
            raise ValueError(f"a must have shape (m,) = ({W.shape[0]},); got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("a contains NaN or inf")
        if not isinstance(power, numbers.Real) or not math.isfinite(power) or power < 1:
            raise ValueError(f"power must be a finite number >= 1; got {power!r}")
        if not isinstance(neg, numbers.Real) or not math.isfinite(neg):
            raise ValueError(f"neg must be a finite number; got {neg!r}")
        self.W, self.a = W, a
        self.power, self.neg = float(power), float(neg)
        self.m, self.d = W.shape

    @classmethod
    def random(cls, d, m, power=1.0, neg=0.0, seed=0):
        """Unit-norm rows (orthonormal when m <= d), output weights +-1 at random."""
        d = _check_count(d, "d")
        m = _check_count(m, "m")
        if d < 1 or m < 1:
            raise ValueError(f"need d >= 1 and m >= 1; got d = {d}, m = {m}")
        rng = _rng(seed)
        if m <= d:
            W = _random_orthonormal(d, m, rng)
        else:
            W = rng.standard_normal((m, d))
            W /= np.linalg.norm(W, axis=1, keepdims=True)
        a = rng.choice([-1.0, 1.0], size=m)
        return cls(W, a, power=power, neg=neg)

    def __call__(self, X):
        from .curvature import forward

        X = self._check_X(X)
        return np.asarray(forward(self.W, self.a, np.ascontiguousarray(X), power=self.power, neg=self.neg))

    def __repr__(self):
        return f"PlantedNetwork(d={self.d}, m={self.m}, power={self.power}, neg={self.neg})"

    def _expansion(self):
        m = self.m
        return _Expansion(self.W, np.full(m, self.power), np.full(m, self.neg), self.a.copy(), 0.0, [])


# --------------------------------------------------------------------------- controlled approximation error
def with_approximation_error(teacher, eps, *, power=1.0):
    """``teacher + eps * g`` with ``g(x) = ||x||^2 - (d + p)``: an approximation error of known size.

    For Gaussian inputs ``x = R theta`` (``R ~ chi_d`` independent of the
    direction ``theta``), ``E[R^p g(R theta)] = E[R^(p+2)] - (d + p) E[R^p] = 0``
    for every ``theta``: ``g`` is orthogonal in ``L2(N(0, I_d))`` to *every*
    positively p-homogeneous function, hence to every bias-free two-layer
    network of degree ``p``. So, if ``teacher`` is p-homogeneous (e.g. a
    representable one), every network ``f`` has
    ``E[(f - f*)^2] = E[(f - teacher)^2] + eps^2 (2 d + p^2)``, and the best
    network's population loss is the approximation error ``eps^2 (2 d + p^2)``
    when the teacher is representable.

    ``g = sum_k He2(e_k . x) - p`` is written with the ``he2`` link on the d
    coordinate axes and a constant link, so the exact population loss applies.

    Parameters
    ----------
    teacher : SumOfSingleIndex
    eps : float
        Weight of the non-representable part (>= 0).
    power : float
        The network's degree p (the orthogonality depends on it).

    Returns
    -------
    SumOfSingleIndex
        With attribute ``approximation_error`` = ``eps^2 (2 d + p^2)``.
    """
    if not isinstance(teacher, SumOfSingleIndex):
        raise TypeError(f"teacher must be a SumOfSingleIndex; got {type(teacher).__name__}")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0; got {eps!r}")
    if isinstance(power, bool) or not isinstance(power, numbers.Real) or not math.isfinite(power) or power < 1:
        raise ValueError(f"power must be a finite number >= 1; got {power!r}")
    d = teacher.d
    const = Link("const", lambda z: np.ones(np.shape(z)), (), 1.0)
    dirs = np.concatenate([teacher.directions, np.eye(d), np.eye(d)[:1]])
    links = list(teacher.links) + [LINKS["he2"]] * d + [const]
    weights = np.concatenate([teacher.weights, np.full(d, float(eps)), [-float(power) * float(eps)]])
    out = SumOfSingleIndex(dirs, links, weights)
    out.approximation_error = float(eps) ** 2 * (2.0 * d + float(power) ** 2)
    return out
