"""Bad input for every public function.

Every check walks ``api_table.API``: wrong ndim and shapes, mismatched n / m / d,
integer / complex / bool / object dtypes (TypeError), mixed dtypes, NaN and
inf in each argument, empty dimensions, bad power / neg / t / k; each raises
ValueError or TypeError whose message names the argument. Valid input in other
layouts (Fortran order, strided, negative strides, unaligned, byte-swapped,
lists) gives bit-identical results to C-contiguous arrays.
"""

import re

import flatext as fx
import numpy as np
import pytest
from api_table import API, SHAPES, results

DIMS = {"n": 7, "m": 3, "d": 2}
IDS = [api.name for api in API]


def names(msg, arg):
    """The message names the argument (as a word followed by a verb or shape, not the article 'a')."""
    return re.search(rf"(^|[^\w.]){re.escape(arg)}( must| of shape| contains| is| has|\[|$|:)", msg) is not None


def call(api, arrays, **kw):
    return api(arrays, **{**api.act_kwargs(), **kw})


def expect(exc, api, arrays, arg, **kw):
    with pytest.raises(exc) as info:
        call(api, arrays, **kw)
    assert names(str(info.value), arg), f"{api.name}: message does not name {arg!r}: {info.value}"


@pytest.mark.parametrize("api", API, ids=IDS)
def test_valid_input_runs(api):
    for dt in (np.float64, np.float32):
        out = call(api, api.make(DIMS, dt))
        for v in results(out):
            if v.dtype.kind == "f" and v.size > 1:
                assert v.dtype == dt


@pytest.mark.parametrize("api", API, ids=IDS)
def test_wrong_ndim(api):
    base = api.make(DIMS)
    for arg in api.arrays:
        for bad in (base[arg][..., None], base[arg].ravel()[0] if base[arg].ndim == 1 else base[arg].ravel()):
            if arg == "t" and np.ndim(bad) == 0:
                continue  # a scalar t is the documented global rescaling
            expect(ValueError, api, {**base, arg: bad}, arg)


@pytest.mark.parametrize("api", API, ids=IDS)
def test_mismatched_dimensions(api):
    # change one array's size along one axis: the message names that array or
    # the one it is checked against
    base = api.make(DIMS)
    for arg in api.arrays:
        for axis, dim in enumerate(SHAPES[arg]):
            partners = [b for b in api.arrays if dim in SHAPES[b]]
            if len(partners) < 2:
                continue  # nothing to mismatch (forward has no y: any n is valid)
            shape = list(base[arg].shape)
            shape[axis] += 1
            bad = np.ones(shape)
            with pytest.raises(ValueError) as info:
                call(api, {**base, arg: bad})
            msg = str(info.value)
            assert any(names(msg, b) for b in partners), f"{api.name}/{arg}: {msg}"


@pytest.mark.parametrize("api", API, ids=IDS)
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_, np.complex128, np.float16, object])
def test_non_float_dtypes_raise_type_error(api, dtype):
    base = api.make(DIMS)
    for arg in api.arrays:
        bad = base[arg].astype(dtype) if dtype is not object else base[arg].astype(object)
        expect(TypeError, api, {**base, arg: bad}, arg)


@pytest.mark.parametrize("api", API, ids=IDS)
def test_none_and_strings_raise_type_error(api):
    base = api.make(DIMS)
    for arg in api.arrays:
        expect(TypeError, api, {**base, arg: None}, arg)
        expect(TypeError, api, {**base, arg: "abc"}, arg)


@pytest.mark.parametrize("api", API, ids=IDS)
def test_mixed_dtypes_raise_type_error(api):
    base = api.make(DIMS)
    for arg in api.arrays:
        bad = {**base, arg: base[arg].astype(np.float32)}
        expect(TypeError, api, bad, arg)


@pytest.mark.parametrize("api", API, ids=IDS)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_entries(api, value):
    for dt in (np.float64, np.float32):
        base = api.make(DIMS, dt)
        for arg in api.arrays:
            for pos in (0, -1, base[arg].size // 2):
                bad = base[arg].copy()
                bad.flat[pos] = value
                expect(ValueError, api, {**base, arg: bad}, arg)


@pytest.mark.parametrize("api", API, ids=IDS)
@pytest.mark.parametrize("dim", ["n", "m", "d"])
def test_empty_dimensions(api, dim):
    dims = {**DIMS, dim: 0}
    if not any(dim in SHAPES[k] for k in api.arrays):
        pytest.skip(f"{api.name} has no {dim}")
    base = api.make(dims)
    with pytest.raises(ValueError, match="empty"):
        call(api, base)


@pytest.mark.parametrize("api", [a for a in API if a.activation or a.power_only], ids=lambda a: a.name)
def test_bad_power_and_neg(api):
    base = api.make(DIMS)
    for p in (0.999, 0.5, 0.0, -1.0, np.nan, np.inf, -np.inf):
        expect(ValueError, api, base, "power", power=p)
    with pytest.raises(TypeError):
        call(api, base, power=1j)
    if api.activation and not api.power_only:
        for c in (np.nan, np.inf, -np.inf):
            expect(ValueError, api, base, "neg", neg=c)


def test_rescale_bad_t():
    W, a = np.ones((3, 2)), np.ones(3)
    for t in (0.0, -1.0, np.nan, np.inf, -np.inf, [1.0, 0.0, 1.0], [1.0, 1.0, -2.0], [1.0, np.nan, 1.0]):
        with pytest.raises(ValueError) as info:
            fx.rescale(W, a, t)
        assert names(str(info.value), "t"), str(info.value)
    with pytest.raises(ValueError, match=r"\bt\b"):
        fx.rescale(W, a, np.ones(4))
    with pytest.raises(ValueError, match=r"\bt\b"):
        fx.rescale(W, a, np.ones((3, 1)))
    # an overflowing result is an error, not inf
    with pytest.raises(ValueError, match="not finite"):
        fx.rescale(W, a, 1e-200, power=2.0)


def test_top_eigenvalues_bad_k_and_options():
    W, a, X, y = (np.ones((2, 2)), np.ones(2), np.ones((3, 2)), np.zeros(3))
    P = 2 * 3
    for k in (0, -1, P + 1, 2**40):
        with pytest.raises(ValueError, match=r"\bk\b"):
            fx.hessian_top_eigenvalues(W, a, X, y, k=k)
    for k in (1.5, 2.0, "1", None, True):
        with pytest.raises(TypeError, match=r"\bk\b"):
            fx.hessian_top_eigenvalues(W, a, X, y, k=k)
    for tol in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="tol"):
            fx.hessian_top_eigenvalues(W, a, X, y, tol=tol)
    with pytest.raises(ValueError, match="max_iter"):
        fx.hessian_top_eigenvalues(W, a, X, y, max_iter=-1)
    with pytest.raises(ValueError, match="seed"):
        fx.hessian_top_eigenvalues(W, a, X, y, seed=-1)
    # k = P is allowed
    assert fx.hessian_top_eigenvalues(W, a, X, y, k=P).shape == (P,)


def test_set_num_threads_bad_k():
    old = fx.get_num_threads()
    for k in (-1, 2**40):
        with pytest.raises(ValueError, match=r"\bk\b"):
            fx.set_num_threads(k)
    for k in (1.5, "2", None):
        with pytest.raises(TypeError, match=r"\bk\b"):
            fx.set_num_threads(k)
    assert fx.get_num_threads() == old


def _layouts(x, rng):
    """The same values in other memory layouts."""
    out = {"fortran": np.asfortranarray(x)}
    big = np.empty((2 * x.shape[0],) + x.shape[1:], x.dtype)
    big[::2] = x
    out["strided"] = big[::2]
    rev = np.ascontiguousarray(x[::-1])
    out["negative_stride"] = rev[::-1]
    if x.ndim == 2:
        wide = np.zeros((x.shape[0], 3 * x.shape[1] + 1), x.dtype)
        wide[:, 1::3] = x
        out["column_strided"] = wide[:, 1::3]
        out["transposed_view"] = np.ascontiguousarray(x.T).T
    raw = np.zeros(x.nbytes + 1, np.uint8)
    un = np.frombuffer(raw.data, dtype=x.dtype, count=x.size, offset=1).reshape(x.shape)
    assert not un.flags.aligned
    un[...] = x
    out["unaligned"] = un
    out["byteswapped"] = x.astype(x.dtype.newbyteorder(">"))
    ro = x.copy()
    ro.flags.writeable = False
    out["readonly"] = ro
    return out


@pytest.mark.parametrize("api", API, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layouts_give_identical_results(api, dtype):
    dims = {"n": 40, "m": 5, "d": 3}
    base = api.make(dims, dtype, seed=3)
    ref = results(call(api, base))
    rng = np.random.default_rng(0)
    for arg in api.arrays:
        for kind, v in _layouts(base[arg], rng).items():
            np.testing.assert_array_equal(v, base[arg])
            got = results(call(api, {**base, arg: v}))
            for g, r in zip(got, ref):
                np.testing.assert_array_equal(g, r, err_msg=f"{api.name}: {arg} {kind}")
    # every argument non-contiguous at once
    allv = {k: _layouts(v, rng)["strided"] for k, v in base.items()}
    for g, r in zip(results(call(api, allv)), ref):
        np.testing.assert_array_equal(g, r)


@pytest.mark.parametrize("api", API, ids=IDS)
def test_lists_accepted(api):
    base = api.make(DIMS)
    ref = results(call(api, base))
    got = results(call(api, {k: v.tolist() for k, v in base.items()}))
    for g, r in zip(got, ref):
        np.testing.assert_array_equal(g, r)
    # lists of Python ints are integer arrays: refused like them
    ints = {**base, api.arrays[0]: np.ones(base[api.arrays[0]].shape, int).tolist()}
    expect(TypeError, api, ints, api.arrays[0])


def test_no_orbit_minimum_is_a_value_error():
    # away from interpolation B_i < 0 is possible for p > 1: no minimum
    rng = np.random.default_rng(1)
    for seed in range(50):
        W, a, X = rng.standard_normal((4, 3)), rng.standard_normal(4), rng.standard_normal((10, 3))
        y = 50 * rng.standard_normal(10)
        parts = fx.hessian_trace_parts(W, a, X, y, power=2.0)
        if np.any(parts.per_neuron_w < 0):
            with pytest.raises(ValueError, match="no orbit minimum"):
                fx.orbit_min_trace(W, a, X, y, power=2.0)
            with pytest.raises(ValueError, match="no orbit minimum"):
                fx.balance(W, a, X, y, power=2.0)
            return
    pytest.fail("no case with B_i < 0 found")
