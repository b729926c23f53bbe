"""A primal-dual interior-point method for block-separable cone programs (``solver="ipm"``).

The cone program of :mod:`flatext.convex.program` has one block of variables per
(pattern, sign) group, ``x_q = (u_q, t_q)``; every cone row (the cell's sign
rows and the group's second-order cone) involves one block only, and only the
n interpolation equalities couple them. So the Newton system of a primal-dual
method reduces to one ``(r+1) x (r+1)`` matrix per group and one ``n x n``
Schur complement ``S = sum_q E_q H_q^{-1} E_q^T``, formed by one matrix product
(``docs/design.md`` section 11). A generic sparse LDL of the same system
(Clarabel) factors a matrix with a row per cone row instead.

The method: Mehrotra's predictor-corrector with Nesterov-Todd scaling, an
infeasible start (the initial point of CVXOPT's ``coneqp``: least-squares
solves with identity scaling, shifted into the cone), stopping when the
relative primal and dual residuals and the relative gap are below ``tol``.

Interface: that of the other back ends (:mod:`flatext.convex.backends`),
``min q.x s.t. A x + s = b, s in (zero^n0 x R+^n1 x SOC...)``, returning
``(x, status, objective, z)`` with Clarabel's sign conventions for the dual
``z`` (``q + A^T z = 0``), so that pricing can use it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from .constants import (
    IPM_DUAL_GAP,
    IPM_MAX_ITER,
    IPM_MIN_STEP,
    IPM_REDUCED_TOL,
    IPM_STALL,
    IPM_STALL_FAR,
    IPM_STEP,
    KKT_REFINE,
    KKT_REFINE_RATIO,
    SCHUR_PAIR_SHIFT,
)


class _Blocks:
    """The program split by blocks: the equality and sign rows as multiples of n base rows
    (:meth:`_equality_rows`, :meth:`_sign_rows`), the cones dense per block (padded)."""

    def __init__(self, q, A, b, cones):
        n0, n1, socs = cones
        Q = len(socs)
        N = A.shape[1]
        if Q == 0 or N % Q:
            raise ValueError("solver 'ipm' needs one second-order cone per block of variables")
        nv = N // Q
        A = A.tocsr()
        self.n0, self.Q, self.nv = n0, Q, nv
        self.shift = 0  # the last Schur complement's shift exponent (_regularized_cholesky)
        self.q = np.asarray(q, dtype=np.float64).reshape(Q, nv)
        self._equality_rows(A[:n0].tocoo(), nv)
        self.beq = np.asarray(b[:n0], dtype=np.float64)
        self._sign_rows(A[n0 : n0 + n1].tocsr(), nv)
        self.hn = np.asarray(b[n0 : n0 + n1], dtype=np.float64)
        self._cones(A[n0 + n1 :].tocsr(), np.asarray(b[n0 + n1 :], dtype=np.float64), socs, nv)
        self.mask = np.arange(self.kmax)[None, :] < self.socs[np.argsort(self.cone_block)][:, None]

    def _cones(self, M, h, socs, nv):
        """The cones, one per block, dense and padded to the largest dimension (zero rows: their
        slack is 0, still interior): Gs (Q, kmax, nv), hs (Q, kmax), cone_block[i] = block of cone i."""
        Q = len(socs)
        self.kmax = max(socs)
        self.socs = np.asarray(socs)
        rb, dense = self._dense_rows(M, nv)
        start = np.concatenate([[0], np.cumsum(self.socs)[:-1]])
        cone = np.repeat(np.arange(Q), self.socs)
        self.cone_block = rb[start]
        if np.any(rb != self.cone_block[cone]) or np.unique(self.cone_block).size != Q:
            raise ValueError("solver 'ipm' needs one second-order cone per block of variables")
        pos = np.arange(M.shape[0]) - start[cone]
        self.Gs = np.zeros((Q, self.kmax, nv))
        self.hs = np.zeros((Q, self.kmax))
        self.Gs[self.cone_block[cone], pos] = dense
        self.hs[self.cone_block[cone], pos] = h
        self.GsT = np.ascontiguousarray(np.transpose(self.Gs, (0, 2, 1)))

    def _sign_rows(self, M, nv):
        """The sign rows as +-(a base row): the cell constraints of every group are the samples
        (``sigma_j x_j / ||x_j||``), so there are at most n distinct rows up to sign. Stored as the
        base rows (nb, nv), and per sign row its block, base index and sign; the maps then cost
        one (Q, nv) x (nv, nb) product instead of a pass over Q n r non-zeros."""
        rb, dense = self._dense_rows(M, nv)
        key = dense @ np.random.default_rng(0).standard_normal(nv)  # exact negation keeps |key|
        sgn = np.where(key < 0, -1.0, 1.0)
        _, first, inv = np.unique(np.abs(key), return_index=True, return_inverse=True)
        base = dense[first] * sgn[first, None]
        if not np.array_equal(dense, sgn[:, None] * base[inv]):
            raise ValueError("solver 'ipm' needs sign rows that repeat one set of rows up to sign")
        self.rb, self.base, self.sgn = rb, base, sgn
        self.flat = rb * base.shape[0] + inv  # index into a (Q, nb) array
        self.base_outer = np.einsum("bi,bj->bij", base, base).reshape(base.shape[0], nv * nv)

    def _equality_rows(self, M, nv):
        """The equality rows as E[q, j] * (row j's base): sample j's output feature in group q is
        its cell's factor times x_j (``_socp_blocks``). Stored as E (Q, n0) and the bases (n0, nv);
        the Schur complement is then one (n0, nv) x (nv, Q nv) product and one (n0, Q nv) GEMM."""
        j, c, v = M.row, M.col, M.data
        blk, k = c // nv, c % nv
        first = np.full(M.shape[0], np.iinfo(np.intp).max)
        np.minimum.at(first, j, blk)  # each row's first block: its base
        ref = blk == first[j]
        base = np.zeros((M.shape[0], nv))
        base[j[ref], k[ref]] = v[ref]
        piv = np.argmax(np.abs(base), axis=1)
        E = np.zeros((self.Q, M.shape[0]))
        at = k == piv[j]
        E[blk[at], j[at]] = v[at] / base[j[at], piv[j[at]]]
        err = np.abs(v - E[blk, j] * base[j, k])
        if err.size and np.max(err) > 1e-13 * np.max(np.abs(v)):
            raise ValueError("solver 'ipm' needs equality rows whose blocks are multiples of one row")
        self.E, self.ebase = E, base
        # groups whose rows are equal up to sign (the two signs of one cell) share one term of the
        # Schur complement: E_q H_q^{-1} E_q^T + E_p H_p^{-1} E_p^T = E_q (H_q^{-1} + H_p^{-1}) E_q^T
        lead = E[np.arange(self.Q), np.argmax(E != 0, axis=1)]  # each row's first non-zero entry
        signed = E * np.where(lead < 0, -1.0, 1.0)[:, None]
        _, self.pair_rep, self.pair_of = np.unique(signed, axis=0, return_index=True, return_inverse=True)
        self.pair_of = self.pair_of.ravel()

    def sign_sum(self, v):
        """(Q, nb): the sum of v over each block's rows of each base row."""
        nb = self.base.shape[0]
        return np.bincount(self.flat, weights=v, minlength=self.Q * nb).reshape(self.Q, nb)

    @staticmethod
    def _dense_rows(M, nv):
        """(block per row, dense (rows, nv) coefficients) of a CSR matrix whose rows each touch one block."""
        M.sum_duplicates()
        rows = np.repeat(np.arange(M.shape[0]), np.diff(M.indptr))
        blk = M.indices // nv
        rb = np.zeros(M.shape[0], dtype=np.intp)
        first = M.indptr[:-1][np.diff(M.indptr) > 0]
        rb[np.diff(M.indptr) > 0] = blk[first]
        if np.any(blk != rb[rows]):
            raise ValueError("solver 'ipm' needs every cone row inside one block of variables")
        dense = np.zeros((M.shape[0], nv))
        dense[rows, M.indices % nv] = M.data  # canonical CSR: no repeated entries
        return rb, dense

    # the linear maps (x as (Q, nv); sign-row vectors in the original order; cones as (Q, kmax))
    def G(self, x):
        return self.sgn * (x @ self.base.T).ravel()[self.flat], (self.Gs @ x[:, :, None])[:, :, 0]

    def GT(self, zn, zs):
        out = (self.GsT @ zs[:, :, None])[:, :, 0]
        return out + self.sign_sum(self.sgn * zn) @ self.base

    def Aop(self, x):
        return np.einsum("qj,qj->j", self.E, x @ self.ebase.T)

    def AT(self, y):
        return (self.E * y) @ self.ebase

    def schur(self, Hinv, R):
        """A H^{-1} A^T for H^{-1} = R_q R_q^T per block: B B^T (one SYRK), B = [E_q * (base R_q)]_q.
        Blocks of equal rows up to sign first add their H_q^{-1} (:data:`SCHUR_PAIR_SHIFT`): half
        the columns of B for the two signs of every cell. Where such a sum does not factor, the
        blocks one by one."""
        nv, E = self.nv, self.E
        if self.pair_rep.size < self.Q:
            M = np.zeros((self.pair_rep.size, nv, nv))
            np.add.at(M, self.pair_of, Hinv)
            M += SCHUR_PAIR_SHIFT * np.trace(M, axis1=1, axis2=2)[:, None, None] / nv * np.eye(nv)
            try:
                R, E = np.linalg.cholesky(M), E[self.pair_rep]
            except np.linalg.LinAlgError:
                pass
        G = E.shape[0]
        T = (self.ebase @ np.transpose(R, (1, 0, 2)).reshape(nv, G * nv)).reshape(-1, G, nv)
        B = (T * E.T[:, :, None]).reshape(-1, G * nv)
        return B @ B.T


def _soc_dot(u, v):
    return np.sum(u * v, axis=1)


def _soc_det(u):
    """u0^2 - ||u1||^2 per cone, as (u0 - ||u1||)(u0 + ||u1||) (no cancellation near the boundary)."""
    nrm = np.linalg.norm(u[:, 1:], axis=1)
    return (u[:, 0] - nrm) * (u[:, 0] + nrm)


def _soc_prod(u, v):
    """Jordan product per cone (rows): (u.v, u0 v1 + v0 u1)."""
    out = u[:, :1] * v + v[:, :1] * u
    out[:, 0] = _soc_dot(u, v)
    return out


def _soc_div(lam, r):
    """x with lam o x = r per cone (lam interior)."""
    det = _soc_det(lam)
    x0 = (lam[:, 0] * r[:, 0] - _soc_dot(lam[:, 1:], r[:, 1:])) / det
    out = np.empty_like(r)
    out[:, 0] = x0
    out[:, 1:] = (r[:, 1:] - x0[:, None] * lam[:, 1:]) / lam[:, :1]
    return out


def _soc_step(x, d):
    """Largest alpha >= 0 with x + alpha d in the cone, per cone (x interior); inf if none."""
    a = d[:, 0] ** 2 - _soc_dot(d[:, 1:], d[:, 1:])
    b = 2.0 * (x[:, 0] * d[:, 0] - _soc_dot(x[:, 1:], d[:, 1:]))
    c = _soc_det(x)
    disc = b * b - 4.0 * a * c
    hit = (a < 0) | ((b < 0) & (disc >= 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = 2.0 * c / (-b + np.sqrt(np.maximum(disc, 0.0)))
    return np.where(hit & (alpha >= 0), alpha, np.inf)


def _max_step(s_n, ds_n, s_s, ds_s, mask):
    neg = ds_n < 0
    a_n = np.min(-s_n[neg] / ds_n[neg]) if np.any(neg) else np.inf
    a_s = np.min(_soc_step(s_s * mask, ds_s * mask))
    return min(a_n, a_s)


class _Scaling:
    """Nesterov-Todd scaling W (sign rows: sqrt(s/z); cones: eta (2 v v^T - J)), W z = W^{-1} s = lam
    (the formulas of Vandenberghe, "The CVXOPT linear and quadratic cone program solvers", 2010)."""

    def __init__(self, s_n, z_n, s_s, z_s, mask):
        self.dn = np.sqrt(s_n / z_n)
        self.lam_n = np.sqrt(s_n * z_n)
        k = s_s.shape[1]
        J = np.diag(np.r_[1.0, -np.ones(k - 1)])
        sJs, zJz = _soc_det(s_s), _soc_det(z_s)
        sb = s_s / np.sqrt(sJs)[:, None]
        zb = z_s / np.sqrt(zJz)[:, None]
        gam = np.sqrt((1.0 + _soc_dot(zb, sb)) / 2.0)
        wb = (sb + zb @ J) / (2.0 * gam)[:, None]  # W^2 = eta^2 (2 wb wb^T - J)
        wb[:, 0] += 1.0
        w = wb / np.sqrt(2.0 * wb[:, :1])  # v = (wb + e) / sqrt(2 (wb_0 + 1))
        w = w * mask  # padded coordinates: identity there (their slack and dual stay 0)
        eta = (sJs / zJz) ** 0.25
        Jm = J * (mask[:, :, None] & mask[:, None, :])
        pad = np.einsum("qi,ij->qij", ~mask, np.eye(k))
        Wm = 2.0 * np.einsum("qi,qj->qij", w, w) - Jm
        Jw = w @ J
        Wi = 2.0 * np.einsum("qi,qj->qij", Jw, Jw) - Jm
        self.W = eta[:, None, None] * Wm + pad
        self.Wi = Wi / eta[:, None, None] + pad
        self.lam_s = np.einsum("qij,qj->qi", self.W, z_s)

    def w(self, vn, vs):
        return self.dn * vn, np.einsum("qij,qj->qi", self.W, vs)

    def wi(self, vn, vs):
        return vn / self.dn, np.einsum("qij,qj->qi", self.Wi, vs)


def _regularized_cholesky(S, k0=0):
    """Cholesky factor of S + delta I with the smallest delta = 10^k eps max(diag S), k >= k0, that
    factors, and that k (S is positive semi-definite; its small eigenvalues come from the nearly
    inactive groups, and a larger delta than needed slows the iterative refinement). The Schur
    complements of one solve grow more ill-conditioned as it converges: the caller starts at the
    last k (on the n = 1000, d = 20 restricted program: the same iterates as starting at 0, with
    56 factorizations instead of 157)."""
    top = max(float(np.max(np.diag(S))), 1e-300)
    for k in range(max(k0, 0), 8):
        Sr = S.copy()
        Sr[np.diag_indices_from(Sr)] += 10.0**k * 1e-16 * top
        try:
            return sla.cho_factor(Sr, overwrite_a=True, check_finite=False), k
        except np.linalg.LinAlgError:
            continue
    raise np.linalg.LinAlgError("the Schur complement is not positive definite")


class _Kkt:
    """[[H, A^T], [A, 0]] with H = G^T W^{-2} G block-diagonal: factored once per iteration."""

    def __init__(self, P, wn2, Gs_scaled):
        Q, nv = P.Q, P.nv
        H = np.transpose(Gs_scaled, (0, 2, 1)) @ Gs_scaled
        H += (P.sign_sum(wn2) @ P.base_outer).reshape(Q, nv, nv)
        H += 1e-14 * np.trace(H, axis1=1, axis2=2)[:, None, None] / nv * np.eye(nv)
        Linv = np.linalg.inv(np.linalg.cholesky(H))  # H = L L^T
        self.Hinv = np.transpose(Linv, (0, 2, 1)) @ Linv
        R = np.transpose(Linv, (0, 2, 1))  # H^{-1} = R R^T
        S = P.schur(self.Hinv, R)
        self.cf = None
        if P.n0:
            self.cf, P.shift = _regularized_cholesky(S, P.shift)
        self.P = P

    def solve(self, f1, f2):
        """(dx, dy) with H dx + A^T dy = f1, A dx = f2 (the caller refines on the full system)."""
        P = self.P
        hf = np.einsum("qij,qj->qi", self.Hinv, f1)
        dy = sla.cho_solve(self.cf, P.Aop(hf) - f2, check_finite=False) if P.n0 else np.zeros(0)
        dx = hf - np.einsum("qij,qj->qi", self.Hinv, P.AT(dy))
        return dx, dy


class _Newton:
    """The Newton system G^T dz + A^T dy = b1, A dx = b2, W^{-1} G dx - W dz = c3 at one scaling
    (c3 = W^{-1} b3: the scaled form, whose matrices have the square root of the unscaled
    condition number), reduced to H = (W^{-1} G)^T (W^{-1} G) and the Schur complement
    (:class:`_Kkt`), with iterative refinement on the full scaled system."""

    def __init__(self, P, sc):
        self.P, self.sc = P, sc
        self.K = _Kkt(P, 1.0 / sc.dn**2, sc.Wi @ P.Gs)

    def _once(self, b1, b2, c3n, c3s):
        P, sc = self.P, self.sc
        dx, dy = self.K.solve(b1 + P.GT(*sc.wi(c3n, c3s)), b2)
        gn, gs = sc.wi(*P.G(dx))
        dzn, dzs = sc.wi(gn - c3n, (gs - c3s) * P.mask)
        return dx, dy, dzn, dzs * P.mask

    def solve(self, b1, b2, c3n, c3s, refine=KKT_REFINE):
        P, sc = self.P, self.sc
        sol = self._once(b1, b2, c3n, c3s)
        scale = max(float(np.max(np.abs(e))) for e in (b1, c3n, c3s, np.r_[b2, 0.0]))
        best, best_err, prev_err = sol, np.inf, np.inf
        for _ in range(refine + 1):
            dx, dy, dzn, dzs = sol
            gn, gs = sc.wi(*P.G(dx))
            wn, ws = sc.w(dzn, dzs)
            e1 = b1 - P.GT(dzn, dzs) - P.AT(dy)
            e2 = b2 - P.Aop(dx)
            e3n, e3s = c3n - gn + wn, (c3s - gs + ws) * P.mask
            err = max(float(np.max(np.abs(e))) for e in (e1, e3n, e3s, np.r_[e2, 0.0]))
            if err < best_err:
                best, best_err = sol, err
            # done when accurate, or when a step no longer halves the error (rounding: more steps only cost)
            if err <= 1e-14 * scale or err > KKT_REFINE_RATIO * prev_err:
                break
            prev_err = err
            cor = self._once(e1, e2, e3n, e3s)
            sol = tuple(u + v for u, v in zip(sol, cor))
        return best


def _shift_into(vn, vs, mask):
    """v + (1 + alpha) e when v is not strictly inside (alpha: its distance outside), as in coneqp."""
    a_n = float(np.max(-vn)) if vn.size else -np.inf
    a_s = float(np.max(np.linalg.norm(vs[:, 1:] * mask[:, 1:], axis=1) - vs[:, 0]))
    alpha = max(a_n, a_s)
    if alpha >= -1e-8 * max(1.0, float(np.max(np.abs(vs[:, 0])))):
        vn = vn + (1.0 + alpha)
        vs = vs.copy()
        vs[:, 0] += 1.0 + alpha
    return vn, vs * mask


def _initial_point(P):
    """CVXOPT coneqp's start: with identity scaling, x minimizes ||G x - h|| s.t. A x = b
    (s = h - G x), z minimizes ||z|| s.t. G^T z + A^T y + q = 0; both shifted into the cone."""
    ones_n = np.ones(P.rb.size)
    eye = np.broadcast_to(np.eye(P.kmax), (P.Q, P.kmax, P.kmax))
    K = _Kkt(P, ones_n, eye @ P.Gs)
    # x: G^T G x + A^T y = G^T h, A x = b
    x, y = K.solve(P.GT(P.hn, P.hs), P.beq)
    gn, gs = P.G(x)
    s_n, s_s = _shift_into(P.hn - gn, (P.hs - gs) * P.mask, P.mask)
    # z: G^T G v + A^T y = -q, A v = 0, z = G v
    v, y = K.solve(-P.q, np.zeros(P.n0))
    z_n, z_s = P.G(v)
    z_n, z_s = _shift_into(z_n, z_s * P.mask, P.mask)
    return x, y, s_n, s_s, z_n, z_s


@dataclass
class _Point:
    """An iterate: primal x (Q, nv), equality dual y, slacks and duals of the sign rows and cones."""

    x: np.ndarray
    y: np.ndarray
    s_n: np.ndarray
    s_s: np.ndarray
    z_n: np.ndarray
    z_s: np.ndarray


@dataclass
class _Residuals:
    r_d: np.ndarray
    r_p: np.ndarray
    r_gn: np.ndarray
    r_gs: np.ndarray
    mu: float
    pobj: float
    err: float  # the largest of the relative primal and dual residuals and the relative gaps
    parts: tuple  # (primal residual, dual residual, complementarity gap, objective gap), relative


def _residuals(P, pt, m_deg, nb, nc):
    gn, gs = P.G(pt.x)
    gtz, aty = P.GT(pt.z_n, pt.z_s), P.AT(pt.y)
    r_d = P.q + gtz + aty
    r_p = P.Aop(pt.x) - P.beq
    r_gn, r_gs = gn + pt.s_n - P.hn, (gs + pt.s_s - P.hs) * P.mask
    mu = (float(pt.s_n @ pt.z_n) + float(np.sum(pt.s_s * pt.z_s))) / m_deg
    pobj = float(np.sum(P.q * pt.x))
    dobj = -float(P.beq @ pt.y) - float(P.hn @ pt.z_n) - float(np.sum(P.hs * pt.z_s))
    pres = float(np.sqrt(r_p @ r_p + r_gn @ r_gn + np.sum(r_gs**2))) / nb
    # relative to the terms' sizes (as Clarabel's and CVXOPT's tests): large multipliers of
    # active rows cancel in G^T z + A^T y, and their rounding is not the method's error
    dres = float(np.linalg.norm(r_d)) / max(nc, float(np.linalg.norm(gtz)), float(np.linalg.norm(aty)))
    scale = max(1.0, abs(pobj))
    parts = (pres, dres, mu * m_deg / scale, abs(pobj - dobj) / scale)
    return _Residuals(r_d, r_p, r_gn, r_gs, mu, pobj, max(parts), parts)


def _step(P, pt, res, m_deg):
    """One Mehrotra predictor-corrector step; returns (next point, step length)."""
    mask = P.mask
    sc = _Scaling(pt.s_n, pt.z_n, pt.s_s, pt.z_s, mask)
    newton = _Newton(P, sc)
    wgn, wgs = sc.wi(res.r_gn, res.r_gs)

    def direction(rc_n, rc_s):  # lam o (W dz + W^{-1} ds) = rc, linearized
        c3n, c3s = -wgn - rc_n / sc.lam_n, (-wgs - _soc_div(sc.lam_s, rc_s)) * mask  # W^{-1} b3
        dx, dy, dzn, dzs = newton.solve(-res.r_d, -res.r_p, c3n, c3s)
        gdn, gds = P.G(dx)
        return _Point(dx, dy, -res.r_gn - gdn, (-res.r_gs - gds) * mask, dzn, dzs)

    def longest(d):
        return min(_max_step(pt.s_n, d.s_n, pt.s_s, d.s_s, mask), _max_step(pt.z_n, d.z_n, pt.z_s, d.z_s, mask))

    ll_n, ll_s = sc.lam_n**2, _soc_prod(sc.lam_s, sc.lam_s)
    aff = direction(-ll_n, -ll_s)  # predictor
    a_aff = min(1.0, longest(aff))
    mu_aff = float((pt.s_n + a_aff * aff.s_n) @ (pt.z_n + a_aff * aff.z_n))
    mu_aff = (mu_aff + float(np.sum((pt.s_s + a_aff * aff.s_s) * (pt.z_s + a_aff * aff.z_s)))) / m_deg
    sigma = min(1.0, max(0.0, mu_aff / res.mu)) ** 3
    a_n, a_s = sc.wi(aff.s_n, aff.s_s)  # corrector: Mehrotra's second-order term
    b_n, b_s = sc.w(aff.z_n, aff.z_s)
    e_s = np.zeros_like(ll_s)
    e_s[:, 0] = 1.0
    d = direction(-ll_n - a_n * b_n + sigma * res.mu, (-ll_s - _soc_prod(a_s, b_s) + sigma * res.mu * e_s) * mask)
    alpha = min(1.0, IPM_STEP * longest(d))
    nxt = _Point(*(u + alpha * v for u, v in zip(vars(pt).values(), vars(d).values())))
    return nxt, alpha


def _solve_ipm(q, A, b, cones, tol, verbose=False, time_limit=None, max_iter=IPM_MAX_ITER):
    """``min q.x s.t. A x + s = b, s in (zero^n0 x R+^n1 x SOC...)`` by the block-structured
    primal-dual method (module docstring). Returns ``(x, status, objective, z)``: the iterate
    with the smallest relative residuals and gap; status ``"Solved"`` when they are below
    ``tol``, ``"AlmostSolved"`` below ``IPM_REDUCED_TOL`` (rounding stopped the method first),
    ``"InaccurateDual"`` when only the objective gap is above it, below ``IPM_DUAL_GAP``
    (a converged primal point, its multipliers rounded), else ``"MaxIterations"``,
    ``"Stalled"``, ``"NumericalError"`` or ``"MaxTime"`` (after
    ``time_limit`` seconds, as Clarabel's)."""
    deadline = None if time_limit is None else time.perf_counter() + float(time_limit)
    P = _Blocks(q, A, b, cones)
    pt = _Point(*_initial_point(P))
    m_deg = pt.s_n.size + P.Q
    nb = max(1.0, float(np.linalg.norm(np.r_[P.beq, P.hn, P.hs.ravel()])))
    nc = max(1.0, float(np.linalg.norm(P.q)))
    best, best_res, stop, last_gain, gain_err = pt, None, "MaxIterations", 0, np.inf
    primal = None
    with np.errstate(all="ignore"):
        for it in range(max_iter):
            res = _residuals(P, pt, m_deg, nb, nc)
            if not np.isfinite(res.err):
                stop = "NumericalError"
                break
            if best_res is None or res.err < best_res.err:
                best, best_res = pt, res
            if res.parts[3] < IPM_DUAL_GAP and (primal is None or max(res.parts[:3]) < max(primal[1].parts[:3])):
                primal = (pt, res)  # the most converged primal point with an objective gap below IPM_DUAL_GAP
            if res.err < 0.5 * gain_err:
                last_gain, gain_err = it, res.err
            if it - last_gain > (IPM_STALL if best_res.err < IPM_REDUCED_TOL else IPM_STALL_FAR):
                stop = "Stalled"  # e.g. an infeasible program (y not interpolable in these cells)
                break
            if verbose:
                print(f"ipm {it:3d}: objective {res.pobj:.12e}  errors " + " ".join(f"{v:.1e}" for v in res.parts))
            if res.err < tol:
                break
            if deadline is not None and time.perf_counter() > deadline:
                stop = "MaxTime"
                break
            try:
                pt, alpha = _step(P, pt, res, m_deg)
            except (np.linalg.LinAlgError, ValueError):
                stop = "NumericalError"
                break
            if not alpha > IPM_MIN_STEP:
                stop = "NumericalError"
                break
    err = best_res.err if best_res is not None else np.inf
    status = "Solved" if err < tol else ("AlmostSolved" if err < max(tol, IPM_REDUCED_TOL) else stop)
    converged = primal is not None and max(primal[1].parts[:3]) < max(tol, IPM_REDUCED_TOL)
    if status == stop and stop != "MaxTime" and converged:
        best, best_res = primal  # the primal point converged; the dual objective is off by < IPM_DUAL_GAP
        status = "InaccurateDual"
    x = best.x
    z_soc = np.concatenate([best.z_s[P.cone_block[i], : P.socs[i]] for i in range(P.Q)])
    z = np.concatenate([best.y, best.z_n, z_soc])
    return x.ravel(), status, float(np.sum(P.q * x)), z
