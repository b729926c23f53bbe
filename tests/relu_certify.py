"""An independent certified optimum for ReLU: the convex program over all activation patterns.

Written for the tests only, from the formula (docs/design.md section 10), with
numpy and cvxpy; it shares no code with flatext. At a balanced ReLU
interpolator neuron i contributes ``(2/n) sqrt(sum_{j in S_i} |x_j|^2) ||X_{S_i} u_i||``
(``u_i = |a_i| w_i``, ``S_i`` its activation pattern). Over fixed patterns the
least total subject to interpolation and the pattern cones is a second-order
cone program; over every pattern of the hyperplane arrangement {x_j . w = 0}
its optimum is the global minimum of the orbit-minimal trace over all
bias-free ReLU interpolators of any width (at most about n + 1 neurons are
active).

Patterns are enumerated exactly for inputs in general position: every cell of
a central arrangement in R^d has a vertex ray where d - 1 hyperplanes meet, so
the 2^(d-1) perturbations around both signs of every such ray reach every cell.
"""

from itertools import combinations, product

import numpy as np


def arrangement_patterns(X, eps=1e-7):
    """Every activation pattern (boolean (C, n)) of the ReLU hyperplane arrangement of the rows of X."""
    n, d = X.shape
    pats = set()
    if d == 1:
        for s in (1.0, -1.0):
            pats.add(tuple(X[:, 0] * s > 0))
        return np.array(sorted(pats), dtype=bool)
    for sub in combinations(range(n), d - 1):
        A = X[list(sub)]
        _, _, Vt = np.linalg.svd(A)
        v = Vt[-1]
        P = np.linalg.pinv(A)  # d x (d-1): A (P s) = s
        for sign in (1.0, -1.0):
            base = sign * v
            for s in product((1.0, -1.0), repeat=d - 1):
                w = base + eps * (P @ np.array(s))
                z = X @ w
                pats.add(tuple(z > 0))
    return np.array(sorted(pats), dtype=bool)


def certified_relu_optimum(X, y, patterns=None):
    """Global minimum of the orbit-minimal trace over ReLU interpolators, and an optimal network.

    Returns
    -------
    value : float
    W, a : ndarray
        A balanced-free representation ``w = u / ||u||^(1/2)``-style is not
        needed: ``W`` holds the ``u``'s and ``a`` their signs (f is
        1-homogeneous in each neuron, so ``(u, sign)`` is an interpolator).
    """
    import cvxpy as cp

    n, d = X.shape
    if patterns is None:
        patterns = arrangement_patterns(X)
    patterns = patterns[patterns.any(axis=1)]
    s = np.sum(X * X, axis=1)
    C = len(patterns)
    Dm = patterns.T.astype(float)  # (n, C)
    G = 2.0 * Dm - 1.0
    c = 2.0 / n * np.sqrt(patterns.astype(float) @ s)  # (C,)
    U = cp.Variable((d, C))
    V = cp.Variable((d, C))
    ZU = cp.multiply(Dm, X @ U)  # column k: X_D u_k (zeros off the pattern)
    ZV = cp.multiply(Dm, X @ V)
    cost = c @ cp.norm(ZU, 2, axis=0) + c @ cp.norm(ZV, 2, axis=0)
    cons = [cp.multiply(G, X @ U) >= 0, cp.multiply(G, X @ V) >= 0, cp.sum(ZU - ZV, axis=1) == y]
    prob = cp.Problem(cp.Minimize(cost), cons)
    prob.solve(solver=cp.CLARABEL)
    if prob.status not in ("optimal", "optimal_inaccurate"):
        raise RuntimeError(f"cone program: {prob.status}")
    W = np.concatenate([U.value.T, V.value.T])
    a = np.concatenate([np.ones(C), -np.ones(C)])
    return float(prob.value), W, a
