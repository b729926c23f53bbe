"""Inputs that numpy.asarray converts: lists, objects with __array__, PyTorch CPU tensors,
Fortran-ordered and strided arrays. Each must give the same bits as the equivalent
C-contiguous numpy array (which is used without a copy)."""

import flatext as fx
import numpy as np
import pytest
import reference as ref

P, C = 2.0, 0.3


def _calls(W, a, X, y, VW, va, t):
    """Every public kernel on the given inputs, as a list of numpy arrays."""
    kw = {"power": P, "neg": C}
    out = [
        fx.forward(W, a, X, **kw),
        fx.loss(W, a, X, y, **kw),
        *fx.loss_grad(W, a, X, y, **kw),
        fx.hessian_trace(W, a, X, y, **kw),
        *fx.hessian_trace_grad(W, a, X, y, **kw),
        *fx.hvp(W, a, X, y, VW, va, **kw),
        fx.hessian_top_eigenvalues(W, a, X, y, k=2, **kw),
        *fx.rescale(W, a, t, power=P),
    ]
    parts = fx.hessian_trace_parts(W, a, X, y, **kw)
    out += [parts.total, parts.per_neuron, parts.per_neuron_w]
    return [np.asarray(v) for v in out]


def _problem():
    W, a, X, y = ref.problem(n=30, d=5, m=7, seed=11)
    rng = np.random.default_rng(12)
    return W, a, X, y, rng.standard_normal(W.shape), rng.standard_normal(7), rng.uniform(0.5, 2.0, 7)


def _assert_same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


def test_lists_give_the_same_bits_as_arrays():
    args = _problem()
    want = _calls(*args)
    # sanity of the reference point itself: the trace equals the trace of the explicit Hessian
    assert want[5] == pytest.approx(np.trace(ref.fd_hessian(*args[:4], P, C)), rel=1e-7)
    _assert_same(_calls(*[v.tolist() for v in args]), want)
    _assert_same(_calls(*[tuple(map(tuple, v)) if v.ndim == 2 else tuple(v) for v in args]), want)


def test_non_contiguous_inputs_are_copied_to_the_same_result():
    args = _problem()
    want = _calls(*args)
    fortran = [np.asfortranarray(v) for v in args]
    _assert_same(_calls(*fortran), want)
    strided = []
    for v in args:  # every other element of a twice-as-large buffer: a non-contiguous view
        big = np.zeros((v.shape[0] * 2,) + v.shape[1:])
        big[::2] = v
        strided.append(big[::2])
    assert not strided[2].flags.c_contiguous
    _assert_same(_calls(*strided), want)


class ArrayLike:
    """Not an ndarray, but numpy.asarray converts it (like a PyTorch CPU tensor)."""

    def __init__(self, arr):
        self._arr = arr

    def __array__(self, dtype=None, copy=None):
        return self._arr if dtype is None else self._arr.astype(dtype)


def test_objects_with_array_protocol():
    args = _problem()
    _assert_same(_calls(*[ArrayLike(v) for v in args]), _calls(*args))
    # float32 in, float32 out
    args32 = [v.astype(np.float32) for v in args]
    got = _calls(*[ArrayLike(v) for v in args32])
    assert all(g.dtype == np.float32 for g in got)
    _assert_same(got, _calls(*args32))


def test_integer_and_mixed_inputs_are_refused_with_the_argument_named():
    W, a, X, y, *_ = _problem()
    with pytest.raises(TypeError, match="y must have dtype float32 or float64"):
        fx.loss(W, a, X, [0, 1] * 15)  # a list of ints converts to an integer array
    with pytest.raises(TypeError, match="mixed dtypes"):
        fx.loss(W, a, X.astype(np.float32), y)
    with pytest.raises(TypeError, match="X must"):
        fx.loss(W, a, object(), y)


def test_torch_cpu_tensors():
    torch = pytest.importorskip("torch", reason="PyTorch not installed (optional: the `bench` extra has it)")
    args = _problem()
    want = _calls(*args)
    _assert_same(_calls(*[torch.from_numpy(v) for v in args]), want)  # float64 tensors
    args32 = [torch.from_numpy(v).to(torch.float32) for v in args]
    got = _calls(*args32)
    assert all(g.dtype == np.float32 for g in got)
    _assert_same(got, _calls(*[t.numpy() for t in args32]))
    # flatext.scipy takes tensors too
    from flatext.scipy import hessian_operator, objective, pack

    theta = pack(args[0], args[1])
    fun, jac, _ = objective(torch.from_numpy(args[2]), torch.from_numpy(args[3]), power=P, neg=C)
    assert fun(torch.from_numpy(theta)) == pytest.approx(float(want[1]), rel=1e-14)
    Hop = hessian_operator(*[torch.from_numpy(v) for v in args[:4]], power=P, neg=C)
    np.testing.assert_array_equal(Hop @ pack(args[4], args[5]), np.concatenate([want[9].ravel(), want[10]]))
    # a tensor that requires grad must be detached first (numpy cannot view it)
    Wg = torch.from_numpy(args[0]).requires_grad_(True)
    with pytest.raises(TypeError, match="W"):
        fx.forward(Wg, args[1], args[2], power=P)
    np.testing.assert_array_equal(fx.forward(Wg.detach(), args[1], args[2], power=P, neg=C), want[0])
