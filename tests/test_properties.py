"""Property-based tests of the whole array API.

Hypothesis draws shapes (1-sized dimensions included), dtypes, memory layouts,
magnitudes from 1e-300 to 1e300 (1e-45 to 1e38 in float32) per array, exact
zeros, NaN / inf placements, p in [1, 6] (integers, (1, 2), (2, 3), any real)
and neg in [-2, 2]. Every call must either

- return finite results that agree with an independent reference computed in
  extended precision (numpy longdouble: exponent range 1e+-4932, so the
  reference itself neither overflows nor underflows here), to a tolerance
  scaled by the magnitude of the summed terms and by the conditioning of the
  pre-activations (|x||w| / |z|); or
- raise ValueError / TypeError naming the argument (bad input) or saying the
  result is not finite (overflow in the working dtype).

When every intermediate term of the reference is comfortably representable in
the working dtype, raising is a failure; when some term overflows it, only the
contract (finite or a ValueError) is checked. Never a crash, hang or NaN.
"""

import os
import warnings

import flatext as fx
import numpy as np
import pytest
from api_table import API, BY_NAME, SHAPES, results
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

LD = np.longdouble
# CI: 40 fixed examples per function. FLATEXT_FUZZ_EXAMPLES=N: N fresh random ones (longer fuzzing runs).
_FUZZ = int(os.environ.get("FLATEXT_FUZZ_EXAMPLES", "0"))
SETTINGS = settings(
    max_examples=_FUZZ or 40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=not _FUZZ,
    database=None,
)

if np.finfo(LD).maxexp < 4000:  # pragma: no cover - platforms where longdouble is double
    pytest.skip("needs an extended-precision numpy longdouble for the reference", allow_module_level=True)


# ---------------------------------------------------------------- reference


def _sig(z, p, c, k):
    """k-th derivative of z+^p + c z-^p in long double (0 at z = 0; sides with c = 0 exactly 0)."""
    coef = LD(1)
    for j in range(k):
        coef *= LD(p) - j
    out = np.zeros_like(z)
    pos, neg = z > 0, z < 0
    e = LD(p) - k
    if coef != 0:
        out[pos] = coef * z[pos] ** e
        if c != 0:
            out[neg] = coef * (-1) ** k * LD(c) * (-z[neg]) ** e
    return out


class Ref:
    """All the quantities of docs/design.md sections 2-4 in long double, with the
    matching 'abs' magnitudes (every signed factor replaced by its absolute
    value, r_j by |f|_abs + |y_j|) that bound rounding errors."""

    def __init__(self, x, p, c):
        self.p, self.c = p, c
        g = {k: np.asarray(v, dtype=LD) for k, v in x.items()}
        self.g = g
        W, a, X = g["W"], g["a"], g["X"]
        self.n = X.shape[0]
        Z = X @ W.T
        self.Zabs = np.abs(X) @ np.abs(W).T
        # relative rounding error of z_ij in the working dtype: eps |x||w| / |z|, and
        # the spacing of subnormals (tiny * eps) where z is subnormal
        tiny = np.finfo(np.asarray(x["W"]).dtype).tiny
        with np.errstate(divide="ignore", invalid="ignore"):
            kap = np.where(self.Zabs > 0, (self.Zabs + tiny) / np.abs(Z), 1.0)
        self.kappa = float(np.max(kap)) if kap.size else 1.0
        S = [_sig(Z, p, c, k) for k in range(4)]
        self.S = S
        # a sigma^(k) value in the subnormal range keeps only |value| / (tiny eps) digits
        for Sk in S:
            nz = np.abs(Sk[Sk != 0])
            if nz.size:
                self.kappa = max(self.kappa, float(tiny / np.min(nz)))
        self.s = np.sum(X * X, 1)
        self.f = S[0] @ a
        self.fabs = np.abs(S[0]) @ np.abs(a)
        # intermediate quantities the kernels form: z, each sigma^(k) (k <= 3), a_i^2, s_j, products.
        # If any of these overflows the working dtype, an overflow error is acceptable even
        # when the result itself is representable (e.g. a_i^2 with a_i = 1e20 in float32).
        self.terms = [self.Zabs, S[0] * a, S[0] ** 2, (a * S[1]) ** 2 * self.s[:, None], S[1], S[2], S[3], a**2, self.s]
        if "y" in g:
            y = g["y"]
            self.r = self.f - y
            self.R = self.fabs + np.abs(y)
            self.terms += [
                self.R[:, None] * np.abs(a),
                self.R[:, None] * np.abs(a * S[2]),
                self.R[:, None] * np.abs(a * S[2]) * self.s[:, None],
                self.R[:, None] * np.abs(a * S[3]) * self.s[:, None],
                self.R**2,
            ]

    def peak(self):
        """Largest magnitude of any intermediate term (inf / nan: overflow in long double)."""
        vals = [np.max(np.abs(t)) if t.size else LD(0) for t in self.terms]
        m = max(vals)
        return np.inf if not np.isfinite(m) else m

    # each returns [(value, scale), ...] in the order of the API's results
    def forward(self):
        return [(self.f, self.fabs)]

    def loss(self):
        return [(np.mean(self.r**2) / 2, np.mean(self.R**2) / 2)]

    def loss_grad(self):
        S, a, X, n = self.S, self.g["a"], self.g["X"], self.n
        ga = S[0].T @ self.r / n
        gas = np.abs(S[0]).T @ self.R / n
        C = self.r[:, None] * a * S[1]
        Cs = self.R[:, None] * np.abs(a * S[1])
        return [self.loss()[0], (C.T @ X / n, Cs.T @ np.abs(X) / n), (ga, gas)]

    def parts(self):
        S, a, s = self.S, self.g["a"], self.s
        A = np.mean(S[0] ** 2, 0)
        Bg = np.mean((a * S[1]) ** 2 * s[:, None], 0)
        Br = np.mean(self.r[:, None] * a * S[2] * s[:, None], 0)
        Brs = np.mean(self.R[:, None] * np.abs(a * S[2]) * s[:, None], 0)
        return A, Bg, Br, Brs

    def hessian_trace(self):
        A, Bg, Br, Brs = self.parts()
        return [(np.sum(A + Bg + Br), np.sum(A + Bg + Brs))]

    def hessian_trace_parts(self):
        A, Bg, Br, Brs = self.parts()
        return [
            (np.sum(A + Bg + Br), np.sum(A + Bg + Brs)),
            (np.sum(A + Bg), np.sum(A + Bg)),
            (np.sum(Br), np.sum(Brs)),
            (A + Bg + Br, A + Bg + Brs),
            (A, A),
            (Bg + Br, Bg + Brs),
            self.loss()[0],
        ]

    def hessian_trace_grad(self):
        S, a, s, X, n, r, R = self.S, self.g["a"], self.s, self.g["X"], self.n, self.r, self.R
        q = s * (S[2] @ a)
        Q = s * (np.abs(S[2]) @ np.abs(a))
        ga = np.mean(2 * a * S[1] ** 2 * s[:, None] + r[:, None] * S[2] * s[:, None] + q[:, None] * S[0], 0)
        gas = np.mean(
            2 * np.abs(a) * S[1] ** 2 * s[:, None] + R[:, None] * np.abs(S[2]) * s[:, None] + Q[:, None] * np.abs(S[0]),
            0,
        )
        C = (
            2 * S[0] * S[1]
            + 2 * a**2 * S[1] * S[2] * s[:, None]
            + r[:, None] * a * S[3] * s[:, None]
            + q[:, None] * a * S[1]
        )
        Cs = (
            2 * np.abs(S[0] * S[1])
            + 2 * a**2 * np.abs(S[1] * S[2]) * s[:, None]
            + R[:, None] * np.abs(a * S[3]) * s[:, None]
            + Q[:, None] * np.abs(a * S[1])
        )
        return [self.hessian_trace()[0], (C.T @ X / n, Cs.T @ np.abs(X) / n), (ga, gas)]

    def hvp(self):
        S, a, X, n, r, R = self.S, self.g["a"], self.g["X"], self.n, self.r, self.R
        VW, va = self.g["VW"], self.g["va"]
        U = X @ VW.T
        Us = np.abs(X) @ np.abs(VW).T
        jv = S[0] @ va + (S[1] * U) @ a
        jvs = np.abs(S[0]) @ np.abs(va) + (np.abs(S[1]) * Us) @ np.abs(a)
        ha = np.mean(jv[:, None] * S[0] + r[:, None] * S[1] * U, 0)
        has = np.mean(jvs[:, None] * np.abs(S[0]) + R[:, None] * np.abs(S[1]) * Us, 0)
        C = jv[:, None] * a * S[1] + r[:, None] * (S[1] * va + a * S[2] * U)
        Cs = jvs[:, None] * np.abs(a * S[1]) + R[:, None] * (np.abs(S[1] * va) + np.abs(a * S[2]) * Us)
        self.terms += [Us, jvs[:, None] * np.abs(a * S[1])]
        return [(C.T @ X / n, Cs.T @ np.abs(X) / n), (ha, has)]

    def orbit(self):
        """Per-neuron orbit minima and t_i; None where B_i < 0 is certain, 'unsure' near sign changes."""
        A, Bg, Br, Brs = self.parts()
        B, Bs = Bg + Br, Bg + Brs
        p = LD(self.p)
        with np.errstate(divide="ignore", invalid="ignore"):
            val = np.where((A > 0) & (B > 0), (p + 1) * A ** (1 / (p + 1)) * (B / p) ** (p / (p + 1)), 0)
            t = np.where((A > 0) & (B > 0), (B / (p * A)) ** (1 / (2 * p + 2)), 1)
            # relative sensitivity of the minima to rounding of B: Bs / |B|
            sens = np.where(B != 0, Bs / np.abs(B), np.where(Bs > 0, np.inf, 1))
        return A, B, Bs, val, t, float(np.max(sens))

    def rescale(self):
        W, a, t, p = self.g["W"], self.g["a"], self.g["t"], LD(self.p)
        self.terms = [W * t[:, None], a * t**-p, t**-p]  # t^-p itself is formed first
        return [(W * t[:, None], np.abs(W * t[:, None])), (a * t**-p, np.abs(a * t**-p))]

    def hessian(self):
        """The explicit Hessian of L (n, P = m(d+1)) by the textbook formulas."""
        S, a, X, n, r = self.S, self.g["a"], self.g["X"], self.n, self.r
        m, d = self.g["W"].shape
        P = m * (d + 1)
        H = np.zeros((P, P), dtype=LD)
        Hs = np.zeros((P, P), dtype=LD)
        for j in range(n):
            gj = np.concatenate([(a * S[1][j])[:, None] * X[j][None, :], S[0][j][:, None]], 1)  # (m, d+1)
            gflat = np.concatenate([gj[:, :d].ravel(), gj[:, d]])
            H += np.outer(gflat, gflat)
            Hs += np.abs(np.outer(gflat, gflat))
            for i in range(m):
                blk = slice(i * d, (i + 1) * d)
                H[blk, blk] += r[j] * a[i] * S[2][j, i] * np.outer(X[j], X[j])
                Hs[blk, blk] += self.R[j] * np.abs(a[i] * S[2][j, i] * np.outer(X[j], X[j]))
                for col, v in ((m * d + i, r[j] * S[1][j, i] * X[j]),):
                    H[blk, col] += v
                    H[col, blk] += v
                    Hs[blk, col] += self.R[j] * np.abs(S[1][j, i] * X[j])
                    Hs[col, blk] = Hs[blk, col]
        return H / n, Hs / n


# ---------------------------------------------------------------- strategies

POWERS = st.one_of(
    st.sampled_from([1.0, 2.0, 3.0, 4.0, 6.0, 1.5, 2.5]),
    st.floats(1.0, 2.0),
    st.floats(2.0, 3.0),
    st.floats(1.0, 6.0),
)
NEGS = st.one_of(st.just(0.0), st.sampled_from([1.0, -1.0, -0.2]), st.floats(-2.0, 2.0))
LAYOUTS = ["C", "F", "strided", "reversed"]


def _layout(v, kind):
    if kind == "F":
        return np.asfortranarray(v)
    if kind == "strided":
        big = np.zeros((2 * v.shape[0],) + v.shape[1:], v.dtype)
        big[::2] = v
        return big[::2]
    if kind == "reversed":
        return np.ascontiguousarray(v[::-1])[::-1]
    return v


@st.composite
def problems(draw, api, small=False):
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    hi = 5 if small else 12
    dims = {
        "n": draw(st.integers(1, hi)),
        "m": draw(st.integers(1, 4 if small else 5)),
        "d": draw(st.integers(1, 3 if small else 4)),
    }
    lo_e, hi_e = (-300, 300) if dtype == np.float64 else (-45, 38)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = {}
    for k in api.arrays:
        shape = tuple(dims[s] for s in SHAPES[k])
        if k == "t":
            v = rng.uniform(0.5, 2.0, shape)
        else:
            v = rng.standard_normal(shape)
            if draw(st.booleans()):  # some exact zeros (z = 0, dead rows, a_i = 0)
                v[rng.random(shape) < 0.3] = 0.0
        scale = draw(st.one_of(st.just(0), st.integers(-3, 3), st.integers(lo_e, hi_e)))
        with np.errstate(over="ignore", under="ignore"):
            x[k] = (v * 10.0**scale).astype(dtype)
        if k == "t":
            x[k] = np.maximum(x[k], np.finfo(dtype).tiny)  # stay > 0 (positivity is test_inputs' business)
        x[k] = _layout(x[k], draw(st.sampled_from(LAYOUTS)))
    bad = None
    if draw(st.integers(0, 9)) == 0:  # a NaN / inf somewhere, now and then
        bad = draw(st.sampled_from(list(api.arrays)))
        v = np.array(x[bad])
        v.flat[draw(st.integers(0, max(v.size - 1, 0)))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        x[bad] = v
    p = draw(POWERS)
    c = draw(NEGS)
    return x, dtype, p, c, bad


# ---------------------------------------------------------------- the check


def _tolerance(ref, dtype, dims_sum):
    eps = np.finfo(dtype).eps
    return 64 * eps * (dims_sum + 4) * max(1.0, ref.kappa)


def _compare(got, expected, rtol, atol, what):
    for g, (v, s) in zip(got, expected):
        v = np.asarray(v, dtype=LD)
        s = np.asarray(s, dtype=LD)
        g = np.asarray(g, dtype=LD)
        # the scale of a vector output: its own entries and the output's overall magnitude
        s_all = s + rtol * 0 + np.max(s) * 1e-3 if s.size > 1 else s
        err = np.abs(g - v)
        bound = rtol * s_all + atol
        bad = err > bound
        assert not np.any(bad), (
            f"{what}: got {g[bad] if g.ndim else g}, reference {v[bad] if v.ndim else v}, "
            f"bound {bound[bad] if bound.ndim else bound} (rtol {rtol:.2e})"
        )


def _expect_error_message(e, bad):
    msg = str(e)
    if bad is not None:
        assert isinstance(e, ValueError) and bad in msg, msg
    else:
        assert isinstance(e, ValueError), msg
        assert "not finite" in msg or "overflow" in msg or "no orbit minimum" in msg, msg


def _check(api, x, dtype, p, c, bad, ref_fn):
    kw = api.act_kwargs(p, c)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out = api(x, **kw)
    except (ValueError, TypeError) as e:
        if bad is not None:
            _expect_error_message(e, bad)
            return
        _expect_error_message(e, None)
        ref = Ref({k: v for k, v in x.items()}, p, c) if api.name != "rescale" else None
        expected = ref_fn(ref, x, p, c, dtype, raised=True)
        assert expected is None, f"{api.name} raised {e!r} though every term is representable"
        return
    assert bad is None, f"{api.name} accepted a non-finite {bad}"
    got = results(out)
    for g in got:
        assert np.all(np.isfinite(g)), f"{api.name} returned a non-finite value: {g}"
        assert g.dtype == dtype or g.dtype.kind != "f" or g.dtype == np.float64 and g.ndim == 1 and g.size == 0
    ref_fn(Ref(x, p, c) if api.name != "rescale" else None, x, p, c, dtype, raised=False, got=got, api=api)


def _big(ref, dtype, expected=()):
    """Some intermediate term may overflow the working dtype (sums of n terms
    divided by n: a term can be n times the mean)."""
    peak = ref.peak()
    for v, s in expected:
        peak = max(peak, np.max(np.asarray(s, dtype=LD)) * ref.n if np.size(s) else LD(0))
    return not peak < np.finfo(dtype).max * 1e-6


def _generic(name):
    def fn(ref, x, p, c, dtype, raised, got=None, api=None):
        expected = getattr(ref, name)()
        if _big(ref, dtype, expected):
            return None  # some term overflows the working dtype: error or finite both fine
        if raised:
            return expected
        rtol = _tolerance(ref, dtype, sum(np.shape(x["W"])) + x["X"].shape[0])
        if rtol > 0.05:
            return expected  # ill-conditioned pre-activations: contract only
        _compare(got, expected, rtol, 1e4 * np.finfo(dtype).tiny, name)
        return expected

    return fn


def _rescale_ref(ref, x, p, c, dtype, raised, got=None, api=None):
    r = Ref.__new__(Ref)
    r.g = {k: np.asarray(v, dtype=LD) for k, v in x.items()}
    r.p = p
    expected = r.rescale()
    if not max(np.max(np.abs(t)) for t in r.terms) < np.finfo(dtype).max / 4:
        return None
    if raised:
        return expected
    _compare(
        got, expected, 16 * np.finfo(dtype).eps * (1 + p), 4 * np.finfo(dtype).tiny / np.finfo(dtype).eps, "rescale"
    )
    return expected


def _orbit_check(which):
    def fn(ref, x, p, c, dtype, raised, got=None, api=None):
        if _big(ref, dtype):
            return None
        A, B, Bs, val, t, sens = ref.orbit()
        rtol = _tolerance(ref, dtype, sum(np.shape(x["W"])) + x["X"].shape[0]) * max(1.0, sens)
        if rtol > 0.05:
            return None  # the sign or size of some B_i is not determined by the dtype: contract only
        tiny_parts = np.any((A > 0) & (A < 1e6 * np.finfo(dtype).tiny)) or np.any(
            (B != 0) & (np.abs(B) < 1e6 * np.finfo(dtype).tiny)
        )
        if tiny_parts:
            return None  # A_i or B_i underflows the dtype: which neurons move is not determined
        if np.any(B < 0):
            assert raised, f"{which} should raise: B = {B}"
            return None
        if raised:
            return val
        if which == "orbit_min_trace":
            _compare(got, [(np.sum(val), np.sum(val))], 4 * rtol, 1e4 * np.finfo(dtype).tiny, which)
        else:
            W, a = ref.g["W"], ref.g["a"]
            W2 = W * t[:, None]
            W2[a == 0] = 0
            a2 = a * t ** -LD(p)
            if not max(np.max(np.abs(W2)), np.max(np.abs(a2))) < np.finfo(dtype).max / 4:
                return None
            _compare(
                got,
                [(W2, np.abs(W2)), (a2, np.abs(a2))],
                4 * rtol + 1e-12,
                4 * np.finfo(dtype).tiny / np.finfo(dtype).eps,
                which,
            )
        return val

    return fn


def _eig_check(ref, x, p, c, dtype, raised, got=None, api=None):
    if _big(ref, dtype) or ref.peak() > 1e250 or ref.peak() < 1e-250:
        return None
    H, Hs = ref.hessian()
    if raised:
        return H
    rtol = _tolerance(ref, dtype, sum(np.shape(x["W"])) + x["X"].shape[0])
    if rtol > 0.05:
        return H
    ev = np.sort(np.linalg.eigvalsh(H.astype(np.float64)))[::-1]
    k = len(got[0])
    hn = max(float(np.max(np.abs(ev))), float(np.max(Hs)) * rtol)
    tol = (
        (1e-5 if dtype == np.float32 else 1e-6) * hn
        + float(np.max(np.sum(Hs, 1))) * rtol
        + 1e4 * float(np.finfo(dtype).tiny)
    )  # neg = 1e-216 is 0 in float32: underflow is absolute
    assert np.all(np.abs(got[0] - ev[:k]) <= tol), f"top {k}: got {got[0]}, eigvalsh {ev[:k]}, tol {tol}"
    return H


REFERENCES = {
    "forward": _generic("forward"),
    "loss": _generic("loss"),
    "loss_grad": _generic("loss_grad"),
    "hessian_trace": _generic("hessian_trace"),
    "hessian_trace_parts": _generic("hessian_trace_parts"),
    "hessian_trace_grad": _generic("hessian_trace_grad"),
    "hvp": _generic("hvp"),
    "rescale": _rescale_ref,
    "balance": _orbit_check("balance"),
    "orbit_min_trace": _orbit_check("orbit_min_trace"),
    "hessian_top_eigenvalues": _eig_check,
}


def test_every_api_entry_has_a_reference():
    assert set(REFERENCES) == set(BY_NAME)


def _property_test(name):
    api = BY_NAME[name]

    @SETTINGS
    @given(prob=problems(api, small=api.heavy), k=st.integers(1, 3))
    def test(prob, k):
        x, dtype, p, c, bad = prob
        if api.heavy:
            P = x["W"].shape[0] * (x["W"].shape[1] + 1)
            api_k = type(api)(**{**api.__dict__, "kwargs": {"k": min(k, P), "max_iter": 0, "tol": 1e-10}})
        else:
            api_k = api
        with np.errstate(all="ignore"):
            _check(api_k, x, dtype, p, c, bad, REFERENCES[name])

    test.__name__ = f"test_property_{name}"
    return test


for _name in BY_NAME:
    globals()[f"test_property_{_name}"] = _property_test(_name)


# ---------------------------------------------------------------- targeted edge cases


@pytest.mark.parametrize("p", [1.1, 1.5, 1.9, 2.5, 2.9])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tiny_preactivations_near_zero(p, dtype):
    """p in (1,2): sigma'' ~ |z|^(p-2) is unbounded at 0 (and 0 at z = 0 exactly); p in (2,3): sigma'''.
    Neurons with tiny weights put z_ij at 1e-30 .. 1e-300: each derivative must be
    evaluated where representable (no 0/0, no 0 from an underflowed power)."""
    rng = np.random.default_rng(0)
    W, a, X = rng.standard_normal((3, 3)), rng.standard_normal(3), rng.standard_normal((8, 3))
    y = rng.standard_normal(8)
    tinies = [1e-20, 1e-30, 1e-36] if dtype == np.float32 else [1e-20, 1e-100, 1e-200, 1e-250, 1e-300]
    for tiny in tinies:
        Wt = W.copy()
        Wt[1] *= tiny
        x = {k: v.astype(dtype) for k, v in zip("W a X y".split(), (Wt, a, X, y))}
        for name in ("loss_grad", "hessian_trace_parts", "hessian_trace_grad"):
            with np.errstate(all="ignore"):
                _check(BY_NAME[name], x, dtype, p, 0.3, None, REFERENCES[name])


def test_exact_zero_preactivation_is_defined():
    """At z = 0 exactly every derivative of order >= 1 is 0 (for p in (1,2) sigma'' is
    unbounded nearby; the value at 0 is the documented convention)."""
    W, a = np.array([[1.0, -1.0]]), np.array([2.0])
    X, y = np.array([[1.0, 1.0], [2.0, 2.0]]), np.array([0.5, -0.5])  # z = 0 for both rows
    for p in (1.0, 1.5, 2.0, 2.5, 3.0):
        T, gW, ga = fx.hessian_trace_grad(W, a, X, y, power=p, neg=0.4)
        parts = fx.hessian_trace_parts(W, a, X, y, power=p, neg=0.4)
        if p > 1:
            assert T == 0.0 and parts.total == 0.0 and np.all(gW == 0) and np.all(ga == 0)
        HW, ha = fx.hvp(W, a, X, y, W, a, power=p, neg=0.4)
        assert np.all(np.isfinite(HW)) and np.all(np.isfinite(ha))


@pytest.mark.parametrize("api", [a for a in API if a.name != "rescale"], ids=lambda a: a.name)
def test_float32_overflow_is_an_error(api):
    """1e30 inputs with p = 3 overflow float32 (z^3 ~ 1e90): a ValueError, never inf."""
    x = api.make({"n": 6, "m": 3, "d": 2}, np.float32, seed=5)
    x["X"] = (x["X"] * 1e30).astype(np.float32)
    x["W"] = np.abs(x["W"])
    x["X"] = np.abs(x["X"])
    with pytest.raises(ValueError, match="not finite"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            api(x, **api.act_kwargs(3.0, 0.0))
    # the same in float64 is finite (1e90 fits) for the value-type results
    if api.name in ("forward", "loss", "hessian_trace"):
        out = api({k: v.astype(np.float64) for k, v in x.items()}, **api.act_kwargs(3.0, 0.0))
        assert np.all(np.isfinite(results(out)[0]))


def test_negative_side_with_neg_zero_never_overflows():
    """sigma = 0 on z < 0 when neg = 0, however large |z| is (no 0 * inf)."""
    W = np.array([[-1.0], [1e-29]], np.float32)
    a = np.array([1.0, 1.0], np.float32)
    X = np.array([[1e30]], np.float32)  # z = (-1e30, 10): (1e30)^(p-1) overflows float32 for p > 2.3
    for p in (1.0, 2.0, 2.5, 3.0, 4.7):
        f = fx.forward(W, a, X, power=p)
        assert np.isfinite(f[0]) and f[0] == pytest.approx(10.0**p, rel=1e-5)


def test_top_eigenvalues_with_repeated_eigenvalues():
    """Dead ReLU neurons give the eigenvalue 0 with multiplicity d + 1; Lanczos must
    return each copy (a single Krylov sequence holds one copy of each eigenvalue)."""
    W = np.array([[1.0, 0.0], [-5.0, 0.0], [-6.0, 0.0]])
    a = np.ones(3)
    X = np.array([[1.0, 0.5], [2.0, -0.3], [0.5, 1.0]])
    y = np.zeros(3)
    H, _ = Ref({"W": W, "a": a, "X": X, "y": y}, 1.0, 0.0).hessian()
    ev = np.sort(np.linalg.eigvalsh(H.astype(np.float64)))[::-1]
    for k in range(1, 10):
        got = fx.hessian_top_eigenvalues(W, a, X, y, k=k)
        np.testing.assert_allclose(got, ev[:k], atol=1e-9 * ev[0])


@pytest.mark.parametrize("p,c", [(1.0, 0.0), (2.0, 0.3)])
def test_float32_accuracy_at_a_million_samples(p, c):
    """Sums over n = 10^6 rows keep float32 results at float32 accuracy (scalar and
    per-neuron sums in double; gradient tiles through float32 GEMMs, chunks in double).
    Same float32-representable data through the float64 kernels as the reference."""
    rng = np.random.default_rng(0)
    n, d, m = 10**6, 4, 8
    W, a = (rng.standard_normal((m, d)) / 2).astype(np.float32), rng.standard_normal(m).astype(np.float32)
    X, y = rng.standard_normal((n, d)).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    f32 = (W, a, X, y)
    f64 = [v.astype(np.float64) for v in f32]

    def rel(u, v):
        return np.linalg.norm(np.asarray(u, np.float64) - v) / np.linalg.norm(v)

    assert rel(fx.hessian_trace(*f32, power=p, neg=c), fx.hessian_trace(*f64, power=p, neg=c)) < 1e-6
    for u, v in zip(fx.loss_grad(*f32, power=p, neg=c), fx.loss_grad(*f64, power=p, neg=c)):
        assert rel(u, v) < 1e-6
