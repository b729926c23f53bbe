"""Plain-numpy float64 references, written independently of the C++ core.

Everything here is the textbook definition: outputs by a dense forward pass,
gradients by the chain rule on the dense pre-activation matrix, Hessians by
central differences of that gradient.
"""

import numpy as np

ACTIVATIONS = [
    (1.0, 0.0),
    (1.0, -0.2),
    (1.0, 1.0),
    (2.0, 0.0),
    (2.0, 0.5),
    (3.0, -0.3),
    (2.5, 0.0),
    (1.5, 0.7),
    (4.0, 0.0),
]


def sig(z, p, c, k=0):
    """k-th derivative of max(z,0)^p + c max(-z,0)^p (0 at z = 0 for k >= 1)."""
    zp, zm = np.maximum(z, 0.0), np.maximum(-z, 0.0)
    coef = 1.0
    for j in range(k):
        coef *= p - j
    e = p - k
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = np.where(z > 0, zp**e, 0.0)
        neg = np.where(z < 0, zm**e, 0.0)
    return coef * (pos + (-1) ** k * c * neg)


def forward(W, a, X, p, c):
    return sig(X @ W.T, p, c) @ a


def loss(W, a, X, y, p, c):
    r = forward(W, a, X, p, c) - y
    return 0.5 * np.mean(r**2)


def loss_grad(W, a, X, y, p, c):
    n = X.shape[0]
    Z = X @ W.T
    r = sig(Z, p, c) @ a - y
    ga = sig(Z, p, c).T @ r / n
    gW = ((r[:, None] * sig(Z, p, c, 1)) * a[None, :]).T @ X / n
    return loss(W, a, X, y, p, c), gW, ga


def flat(W, a):
    return np.concatenate([W.ravel(), a])


def unflat(theta, m, d):
    return theta[: m * d].reshape(m, d), theta[m * d :]


def fd_hessian(W, a, X, y, p, c, h=1e-5):
    """Explicit Hessian of the loss by central differences of the gradient."""
    m, d = W.shape
    theta = flat(W, a)
    P = theta.size
    H = np.empty((P, P))
    for k in range(P):
        e = np.zeros(P)
        e[k] = h
        gp = flat(*loss_grad(*unflat(theta + e, m, d), X, y, p, c)[1:])
        gm = flat(*loss_grad(*unflat(theta - e, m, d), X, y, p, c)[1:])
        H[:, k] = (gp - gm) / (2 * h)
    return 0.5 * (H + H.T)


def fd_grad(fun, W, a, h=1e-6):
    """Central-difference gradient of a scalar function of (W, a)."""
    m, d = W.shape
    theta = flat(W, a)
    g = np.empty_like(theta)
    for k in range(theta.size):
        e = np.zeros_like(theta)
        e[k] = h
        g[k] = (fun(*unflat(theta + e, m, d)) - fun(*unflat(theta - e, m, d))) / (2 * h)
    return unflat(g, m, d)


def problem(n=12, d=4, m=5, seed=0, scale=1.0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((m, d)) * scale
    a = rng.standard_normal(m)
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    return [v.astype(dtype) for v in (W, a, X, y)]
