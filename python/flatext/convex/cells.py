"""The activation patterns (cells of the samples' hyperplane arrangement) the cone program ranges over.

Exact enumeration of every cell (:func:`arrangement_patterns`), sampling by random
directions, and a direction strictly inside a given cell.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from .checks import _check_n_patterns, _check_X
from .constants import KINK_RTOL, default_n_patterns


def arrangement_cell_count(n, d):
    """Number of cells of a central arrangement of n hyperplanes in general position in R^d.

    ``2 sum_{k=0}^{d-1} C(n-1, k)`` (for ``n >= 1``).
    """
    if n < 1 or d < 1:
        raise ValueError(f"need n >= 1 and d >= 1; got n = {n}, d = {d}")
    return 2 * sum(math.comb(n - 1, k) for k in range(d))


def _row_basis(X, rtol=1e-12):
    """Orthonormal basis Q (d, r) of the row space of X, so that X = (X Q) Q^T."""
    _, s, Vt = np.linalg.svd(X, full_matrices=False)
    r = int(np.sum(s > rtol * max(s[0], 1e-300))) if s.size else 0
    return Vt[:r].T


def _enumerate_cells(Xr, gp_tol=1e-9, chunk=20000):
    """Cells of the central arrangement {x_j . u = 0} in R^r, Xr of rank r.

    Every cell of a central arrangement whose normals span R^r is a pointed cone,
    the conic hull of its extreme rays; each extreme ray is the line where r-1
    hyperplanes meet. So: for every (r-1)-subset T of the samples take the
    direction v orthogonal to them; near +-v all 2^(r-1) sign combinations of
    the samples in T occur (general position), the other signs are sign(X v).
    Returns (signs int8 (C, n), touch bool (C, n): hyperplanes through some
    extreme ray of the cell (its facets are among them), inner (C, r): a point
    strictly inside the cell (the mean of its unit extreme rays)).
    """
    n, r = Xr.shape
    norms = np.linalg.norm(Xr, axis=1)
    if r == 1:
        s = np.where(Xr[:, 0] > 0, 1, -1).astype(np.int8)
        signs = np.stack([s, -s])
        touch = np.zeros((2, n), dtype=bool)
        return signs, touch, np.array([[1.0], [-1.0]])
    k = r - 1
    combos = np.array(list(itertools.product((1, -1), repeat=k)), dtype=np.int8)  # (2^k, k)
    keys, touches, inners = {}, [], []
    subsets = itertools.combinations(range(n), k)
    while True:
        T = np.array(list(itertools.islice(subsets, chunk)), dtype=np.intp)
        if T.size == 0:
            break
        T = T.reshape(-1, k)
        _, sv, Vt = np.linalg.svd(Xr[T], full_matrices=True)  # (B, k, r) -> Vt (B, r, r)
        scale = np.linalg.norm(Xr[T], axis=2).max(axis=1)
        if np.any(sv[:, -1] <= gp_tol * scale):
            raise ValueError(
                "X is not in general position (r-1 samples span less than r-1 dimensions, e.g. "
                "repeated or parallel samples): exact enumeration needs general position; "
                "use patterns='sampled' or add a tiny jitter to X"
            )
        V = Vt[:, -1, :]  # (B, r) unit rays
        Z = V @ Xr.T  # (B, n)
        rel = np.abs(Z) / np.where(norms > 0, norms, 1.0)
        rows = np.arange(T.shape[0])[:, None]
        rel[rows, T] = np.inf
        if np.any(rel <= gp_tol):
            raise ValueError(
                "X is not in general position (r samples lie in a common hyperplane through "
                "the origin): exact enumeration needs general position; use patterns='sampled' "
                "or add a tiny jitter to X"
            )
        S = np.where(Z > 0, 1, -1).astype(np.int8)
        for sgn in (1, -1):
            base = S * sgn
            for cmb in combos:
                cand = base.copy()
                cand[rows, T] = cmb[None, :]
                packed = np.packbits(cand > 0, axis=1)
                for b in range(cand.shape[0]):
                    key = packed[b].tobytes()
                    idx = keys.get(key)
                    if idx is None:
                        idx = len(touches)
                        keys[key] = idx
                        touches.append(np.zeros(n, dtype=bool))
                        inners.append(np.zeros(r))
                    touches[idx][T[b]] = True
                    inners[idx] += sgn * V[b]
    C = len(touches)
    signs = np.empty((C, n), dtype=np.int8)
    for key, idx in keys.items():
        signs[idx] = np.where(np.unpackbits(np.frombuffer(key, dtype=np.uint8))[:n] > 0, 1, -1)
    touch = np.array(touches)
    inner = np.array(inners)
    inner /= np.linalg.norm(inner, axis=1, keepdims=True)
    return signs, touch, inner


def arrangement_patterns(X, *, return_interior=False):
    """Every activation pattern of a bias-free neuron on the samples X, exactly.

    The cells of the central hyperplane arrangement ``{u : x_j . u = 0}``: sign
    vectors ``sign(X u)`` with no zero entry, one per cell. Their number is
    ``2 sum_{k=0}^{r-1} C(n-1, k)`` (r = rank X) for samples in general position,
    ``O(n^(r-1))``: exact enumeration is for small r (about r <= 4).

    Parameters
    ----------
    X : array_like, shape (n, d)
        Samples in general position (any r of them linearly independent in the
        row space); otherwise a ValueError.
    return_interior : bool
        Also return one direction strictly inside each cell.

    Returns
    -------
    signs : ndarray of int8, shape (C, n)
        Entries +1 / -1; rows in no particular order.
    interior : ndarray, shape (C, d)
        Only with ``return_interior``: unit vectors u with ``sign(X u) = signs``.
    """
    X = _check_X(X)
    Q = _row_basis(X)
    if Q.shape[1] == 0:
        raise ValueError("X is zero: no hyperplane arrangement")
    if np.any(np.linalg.norm(X, axis=1) == 0):
        raise ValueError("X has a zero row: its hyperplane is the whole space (drop it)")
    signs, _, inner = _enumerate_cells(X @ Q)
    expected = arrangement_cell_count(X.shape[0], Q.shape[1])
    if signs.shape[0] != expected:
        raise ValueError(
            f"enumerated {signs.shape[0]} cells, expected {expected} for samples in general "
            "position: X is not in general position; use patterns='sampled'"
        )
    if return_interior:
        return signs, inner @ Q.T
    return signs


@dataclass
class _Patterns:
    signs: np.ndarray  # (C, n) int8, +-1
    rows: list  # per pattern: indices of the cone constraints kept (facets are among them)
    inner: np.ndarray  # (C, r) unit directions strictly inside each cell
    exact: bool


def _sampled_patterns(Xr, n_patterns, rng, warm_dirs):
    """Sign vectors of random Gaussian directions plus warm-start directions, de-duplicated."""
    r = Xr.shape[1]
    dirs = [rng.standard_normal((n_patterns, r))]
    if warm_dirs is not None and len(warm_dirs):
        dirs.insert(0, warm_dirs)
    U = np.concatenate(dirs)
    Z = U @ Xr.T
    tiny = KINK_RTOL * np.linalg.norm(U, axis=1, keepdims=True) * np.linalg.norm(Xr, axis=1)[None, :]
    ok = np.all(np.abs(Z) > tiny, axis=1)  # a direction on a kink has no cell
    U, Z = U[ok], Z[ok]
    S = np.where(Z > 0, 1, -1).astype(np.int8)
    _, first = np.unique(np.packbits(S > 0, axis=1), axis=0, return_index=True)
    first = np.sort(first)
    inner = U[first] / np.linalg.norm(U[first], axis=1, keepdims=True)
    return S[first], inner


def _interior_direction(Xr, sg):
    """A unit direction strictly inside the cell {sg_j x_j.u > 0}, or None (empty cell).

    LP: maximise t subject to sg_j x_j.u / ||x_j|| >= t, -1 <= u <= 1.
    """
    n, r = Xr.shape
    A = -(sg / np.linalg.norm(Xr, axis=1))[:, None] * Xr
    res = linprog(
        np.r_[np.zeros(r), -1.0],
        A_ub=np.hstack([A, np.ones((n, 1))]),
        b_ub=np.zeros(n),
        bounds=[(-1, 1)] * r + [(None, 1)],
        method="highs",
    )
    if res.status != 0 or not res.x[r] > 1e-9:
        return None
    u = res.x[:r]
    return u / np.linalg.norm(u)


def _exact_patterns(Xr):
    """Every cell of the arrangement, with the rows describing each (its facets are among them)."""
    n, r = Xr.shape
    signs, touch, inner = _enumerate_cells(Xr)
    if signs.shape[0] != arrangement_cell_count(n, r):
        raise ValueError(
            f"enumerated {signs.shape[0]} cells, expected {arrangement_cell_count(n, r)}: X is "
            "not in general position; use patterns='sampled'"
        )
    rows = [np.nonzero(tmask)[0] for tmask in touch]
    if r == 1:
        rows = [np.arange(n)] * signs.shape[0]
    return _Patterns(signs, rows, inner, True)


def _random_patterns(Xr, neg, n_patterns, seed, warm_dirs):
    """The cells of ``n_patterns`` Gaussian directions (seeded) and of the warm starts' neurons."""
    n = Xr.shape[0]
    if n_patterns is None:
        n_patterns = default_n_patterns(n)
    _check_n_patterns(n_patterns, warm_dirs)
    signs, inner = _sampled_patterns(Xr, int(n_patterns), np.random.default_rng(seed), warm_dirs)
    if neg == 1.0:  # |z|: P and -P are one cell (_groups keeps the one with sg[0] > 0)
        flip = signs[:, 0] < 0
        signs[flip], inner[flip] = -signs[flip], -inner[flip]
        _, first = np.unique(np.packbits(signs > 0, axis=1), axis=0, return_index=True)
        signs, inner = signs[np.sort(first)], inner[np.sort(first)]
    return _Patterns(signs, [np.arange(n)] * signs.shape[0], inner, False)


def _candidate_patterns(Xr, neg, patterns, max_exact, n_patterns, seed, warm_dirs):
    """The cells of the cone program: every cell (``"exact"``, or ``"auto"`` with at most
    ``max_exact`` of them) or sampled ones."""
    n, r = Xr.shape
    if patterns == "exact" or (patterns == "auto" and arrangement_cell_count(n, r) <= max_exact):
        return _exact_patterns(Xr)
    return _random_patterns(Xr, neg, n_patterns, seed, warm_dirs)
