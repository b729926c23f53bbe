"""flatext.torch against PyTorch's own autograd on tiny networks (float64).

The references build the network and loss in plain PyTorch and differentiate
them with torch.autograd: explicit Hessians (torch.autograd.functional.hessian),
the gradient of their trace (third derivatives by autograd), per-sample
gradients for the Gauss-Newton part.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import flatext as fx  # noqa: E402
import flatext.torch as fxt  # noqa: E402
from torch import nn  # noqa: E402

# float() of a 0-d result that requires grad is what users write; the warning is torch's
pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True:UserWarning")

ACTS = [(2.0, 0.0), (1.0, -0.2), (2.0, 0.5), (3.0, 0.0)]


def _problem(n=12, d=3, m=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(m, d, generator=g, dtype=dtype)
    a = torch.randn(m, generator=g, dtype=dtype)
    X = torch.randn(n, d, generator=g, dtype=dtype)
    y = torch.randn(n, generator=g, dtype=dtype)
    return W, a, X, y


def _sig(z, p, c):
    return torch.relu(z) ** p + c * torch.relu(-z) ** p


def _torch_loss(theta, X, y, p, c, m, d):
    W, a = theta[: m * d].reshape(m, d), theta[m * d :]
    r = _sig(X @ W.T, p, c) @ a - y
    return 0.5 * torch.mean(r**2)


def _theta(W, a):
    return torch.cat([W.reshape(-1), a]).clone().requires_grad_(True)


def _ref_trace_and_grad(W, a, X, y, p, c):
    """Tr of the explicit Hessian and its gradient, both by torch autograd."""
    m, d = W.shape
    th = _theta(W, a)
    H = torch.autograd.functional.hessian(lambda t: _torch_loss(t, X, y, p, c, m, d), th, create_graph=True)
    tr = torch.diagonal(H).sum()
    (g,) = torch.autograd.grad(tr, th)
    return tr.detach(), g[: m * d].reshape(m, d), g[m * d :]


def _rel(u, v):
    return float(torch.linalg.norm((u - v).reshape(-1)) / torch.linalg.norm(v.reshape(-1)))


@pytest.mark.parametrize("p,c", ACTS)
def test_trace_gradient_matches_autograd_of_explicit_hessian(p, c):
    W, a, X, y = _problem(seed=int(10 * p) + 3)
    Wg, ag = W.clone().requires_grad_(True), a.clone().requires_grad_(True)
    t = fxt.hessian_trace(Wg, ag, X, y, power=p, neg=c)
    t.backward()
    tr, gW, ga = _ref_trace_and_grad(W, a, X, y, p, c)
    assert float(t) == pytest.approx(float(tr), rel=1e-12)
    assert _rel(Wg.grad, gW) < 1e-10 and _rel(ag.grad, ga) < 1e-10


@pytest.mark.parametrize("p,c", ACTS)
def test_loss_gradient_and_hvp_match_autograd(p, c):
    W, a, X, y = _problem(seed=7)
    m, d = W.shape
    Wg, ag = W.clone().requires_grad_(True), a.clone().requires_grad_(True)
    lo = fxt.loss(Wg, ag, X, y, power=p, neg=c)
    lo.backward()
    th = _theta(W, a)
    ref = _torch_loss(th, X, y, p, c, m, d)
    (g,) = torch.autograd.grad(ref, th)
    assert float(lo) == pytest.approx(float(ref), rel=1e-13)
    assert _rel(torch.cat([Wg.grad.reshape(-1), ag.grad]), g) < 1e-12
    # hvp against the explicit Hessian, and its backward (H symmetric) against H^T u
    H = torch.autograd.functional.hessian(lambda t: _torch_loss(t, X, y, p, c, m, d), th)
    gen = torch.Generator().manual_seed(1)
    VW = torch.randn(m, d, generator=gen, dtype=torch.float64, requires_grad=True)
    va = torch.randn(m, generator=gen, dtype=torch.float64, requires_grad=True)
    HW, ha = fxt.hvp(W, a, X, y, VW, va, power=p, neg=c)
    Hv = H @ torch.cat([VW.detach().reshape(-1), va.detach()])
    assert _rel(torch.cat([HW.detach().reshape(-1), ha.detach()]), Hv) < 1e-12
    u = torch.randn(m * d + m, generator=gen, dtype=torch.float64)
    (HW.reshape(-1) @ u[: m * d] + ha @ u[m * d :]).backward()
    assert _rel(torch.cat([VW.grad.reshape(-1), va.grad]), H.T @ u) < 1e-12


@pytest.mark.parametrize("p,c", [(2.0, 0.0), (1.0, -0.3)])
def test_parts_total_is_differentiable_and_parts_are_right(p, c):
    W, a, X, y = _problem(seed=5)
    Wg, ag = W.clone().requires_grad_(True), a.clone().requires_grad_(True)
    parts = fxt.hessian_trace_parts(Wg, ag, X, y, power=p, neg=c)
    parts.total.backward()
    tr, gW, ga = _ref_trace_and_grad(W, a, X, y, p, c)
    assert _rel(Wg.grad, gW) < 1e-10 and _rel(ag.grad, ga) < 1e-10
    # G by per-sample gradients in torch
    m, d = W.shape
    th = _theta(W, a)
    G = 0.0
    for j in range(X.shape[0]):
        W_, a_ = th[: m * d].reshape(m, d), th[m * d :]
        (gj,) = torch.autograd.grad(_sig(X[j] @ W_.T, p, c) @ a_, th)
        G += float(gj @ gj) / X.shape[0]
    assert float(parts.gauss_newton) == pytest.approx(G, rel=1e-12)
    assert float(parts.total) == pytest.approx(float(tr), rel=1e-12)
    assert float(parts.per_neuron.sum()) == pytest.approx(float(tr), rel=1e-12)
    assert "TraceParts(total=" in repr(parts)


def _torch_G(theta, X, p, c, m, d):
    """G = (1/n) sum_j ||grad_theta f(x_j)||^2 by per-sample autograd (differentiable)."""
    G = 0.0
    for j in range(X.shape[0]):
        W_, a_ = theta[: m * d].reshape(m, d), theta[m * d :]
        (gj,) = torch.autograd.grad(_sig(X[j] @ W_.T, p, c) @ a_, theta, create_graph=True)
        G = G + gj @ gj
    return G / X.shape[0]


@pytest.mark.parametrize("p,c", [(2.0, 0.0), (1.0, -0.2), (3.0, 0.5)])
def test_regularized_loss_gauss_newton_matches_autograd(p, c):
    W, a, X, y = _problem(seed=11)
    m, d = W.shape
    lam = 0.37
    th = _theta(W, a)
    G = _torch_G(th, X, p, c, m, d)  # the reference itself, checked against the existing parts kernel
    parts = fx.hessian_trace_parts(W.numpy(), a.numpy(), X.numpy(), y.numpy(), power=p, neg=c)
    assert float(G) == pytest.approx(float(parts.gauss_newton), rel=1e-12)
    Wg, ag = W.clone().requires_grad_(True), a.clone().requires_grad_(True)
    v, lo, reg = fxt.regularized_loss(Wg, ag, X, y, lam, which="gauss_newton", power=p, neg=c, return_parts=True)
    v.backward()
    L = _torch_loss(th, X, y, p, c, m, d)
    (g,) = torch.autograd.grad(L + lam * G, th)
    assert float(lo) == pytest.approx(float(L), rel=1e-12) and float(reg) == pytest.approx(float(G), rel=1e-12)
    assert float(v) == pytest.approx(float(L + lam * G), rel=1e-12)
    assert _rel(torch.cat([Wg.grad.reshape(-1), ag.grad]), g) < 1e-10


@pytest.mark.parametrize("p,c", [(2.0, 0.0), (1.0, -0.2)])
def test_regularized_trace_matches_autograd(p, c):
    W, a, X, y = _problem(seed=13)
    lam = 0.25
    Wg, ag = W.clone().requires_grad_(True), a.clone().requires_grad_(True)
    v, lo, reg = fxt.regularized_loss(Wg, ag, X, y, lam, which="trace", power=p, neg=c, return_parts=True)
    v.backward()
    tr, gW, ga = _ref_trace_and_grad(W, a, X, y, p, c)
    m, d = W.shape
    th = _theta(W, a)
    (gl,) = torch.autograd.grad(_torch_loss(th, X, y, p, c, m, d), th)
    assert float(reg) == pytest.approx(float(tr), rel=1e-12)
    assert float(v) == pytest.approx(float(lo) + lam * float(tr), rel=1e-13)
    ref = gl + lam * torch.cat([gW.reshape(-1), ga])
    assert _rel(torch.cat([Wg.grad.reshape(-1), ag.grad]), ref) < 1e-10
    # which="loss" is the loss alone
    Wg.grad = ag.grad = None
    fxt.regularized_loss(Wg, ag, X, y, lam, which="loss", power=p, neg=c).backward()
    assert _rel(torch.cat([Wg.grad.reshape(-1), ag.grad]), gl) < 1e-12


@pytest.mark.parametrize("p,c", [(1.0, 0.0), (2.0, 0.0)])
def test_orbit_min_trace_gradient_by_finite_differences(p, c):
    # at an interpolator (y = f(X)) every B_i >= 0, so the orbit minimum exists for p > 1 too
    W, a, X, _ = _problem(n=15, d=3, m=4, seed=21)
    y = _sig(X @ W.T, p, c) @ a
    Wg, ag = W.clone().requires_grad_(True), a.clone().requires_grad_(True)
    val = fxt.orbit_min_trace(Wg, ag, X, y, power=p, neg=c)
    val.backward()
    assert float(val) == pytest.approx(
        float(fx.orbit_min_trace(W.numpy(), a.numpy(), X.numpy(), y.numpy(), power=p, neg=c)), rel=1e-14
    )
    th = torch.cat([W.reshape(-1), a]).numpy()
    m, d = W.shape
    h = 1e-6
    fd = np.empty_like(th)
    for k in range(th.size):
        vals = []
        for s in (1, -1):
            t2 = th.copy()
            t2[k] += s * h
            vals.append(
                fx.orbit_min_trace(t2[: m * d].reshape(m, d), t2[m * d :], X.numpy(), y.numpy(), power=p, neg=c)
            )
        fd[k] = (vals[0] - vals[1]) / (2 * h)
    got = torch.cat([Wg.grad.reshape(-1), ag.grad]).numpy()
    assert np.linalg.norm(got - fd) <= 1e-6 * np.linalg.norm(fd)


def test_reductions_match_mseloss():
    W, a, X, y = _problem(seed=3)
    m, d = W.shape
    net = nn.Sequential(nn.Linear(d, m, bias=False), fxt.ReLUPower(2.0), nn.Linear(m, 1, bias=False)).double()
    with torch.no_grad():
        net[0].weight.copy_(W)
        net[2].weight.copy_(a[None, :])
    Y = y[:, None]
    for red, fac in (("mean", 2.0), ("sum", 2.0 * X.shape[0])):
        ref = nn.MSELoss(reduction=red)(net(X), Y)
        # nn.Parameter, (1, m) output weights and (n, 1) targets go straight in
        got = fxt.loss(net[0].weight, net[2].weight, X, Y, power=2.0, reduction=red)
        assert float(got) == pytest.approx(float(ref), rel=1e-13)
        assert float(got) == pytest.approx(fac * float(fxt.loss(W, a, X, y, power=2.0)), rel=1e-13)
        got.backward()
        g1 = (net[0].weight.grad.clone(), net[2].weight.grad.clone())
        net.zero_grad()
        ref.backward()
        assert net[2].weight.grad.shape == (1, m)
        assert _rel(g1[0], net[0].weight.grad) < 1e-12 and _rel(g1[1], net[2].weight.grad) < 1e-12
        net.zero_grad()
        # the trace scales the same way
        t = fxt.hessian_trace(W, a, X, y, power=2.0, reduction=red)
        assert float(t) == pytest.approx(fac * float(fxt.hessian_trace(W, a, X, y, power=2.0)), rel=1e-13)
    with pytest.raises(ValueError, match="reduction"):
        fxt.loss(W, a, X, y, reduction="none")


def test_float32_and_no_copies():
    W, a, X, y = _problem(dtype=torch.float32)
    t = fxt.hessian_trace(W, a, X, y, power=2.0)
    assert t.dtype == torch.float32
    assert float(t) == pytest.approx(
        float(fx.hessian_trace(W.numpy(), a.numpy(), X.numpy(), y.numpy(), power=2.0)), rel=1e-6
    )
    # contiguous inputs are handed over as views: same memory
    from flatext.torch import _np

    assert _np(X, "X").ctypes.data == X.data_ptr()
    Wp = nn.Parameter(W.clone())
    assert _np(Wp, "W").ctypes.data == Wp.data_ptr()
    # non-contiguous inputs work (copied)
    Xt = X.T.contiguous().T
    assert not Xt.is_contiguous()
    assert float(fxt.hessian_trace(W, a, Xt, y, power=2.0)) == float(t)


def test_bad_inputs_raise_clear_errors():
    W, a, X, y = _problem()
    with pytest.raises(TypeError, match="one dtype"):
        fxt.loss(W.float(), a, X, y)
    with pytest.raises(TypeError, match="float32 or float64"):
        fxt.loss(W, a, X, y.long())
    with pytest.raises(TypeError, match="torch.Tensor"):
        fxt.loss(W.numpy(), a, X, y)
    with pytest.raises(ValueError, match=r"a must have shape"):
        fxt.loss(W, a.reshape(2, 2), X, y)
    with pytest.raises(ValueError, match=r"W must be 2-D"):
        fxt.loss(W.reshape(-1), a, X, y)
    with pytest.raises(ValueError, match="power"):
        fxt.hessian_trace(W, a, X, y, power=0.5)
    meta = X.to("meta")
    with pytest.raises(ValueError, match=r"X\.cpu\(\)"):
        fxt.loss(W, a, meta, y)
    # gradients with respect to the data are refused, not silently zero
    Xg = X.clone().requires_grad_(True)
    with pytest.raises(RuntimeError, match="with respect to X"):
        fxt.hessian_trace(W, a, Xg, y).backward()
    # double backward is refused
    Wg = W.clone().requires_grad_(True)
    t = fxt.hessian_trace(Wg, a, X, y, power=2.0)
    with pytest.raises(RuntimeError, match="first derivatives only"):
        torch.autograd.grad(t, Wg, create_graph=True)
    with pytest.raises(RuntimeError, match="first derivatives only"):
        torch.autograd.functional.hessian(lambda w: fxt.loss(w, a, X, y), W)
    Wg = W.clone().requires_grad_(True)
    HW, ha = fxt.hvp(Wg, a, X, y, torch.ones_like(W), torch.ones_like(a))
    with pytest.raises(RuntimeError, match="with respect to W"):
        HW.sum().backward()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_tensor_names_cpu():  # pragma: no cover - CPU-only CI
    W, a, X, y = _problem()
    with pytest.raises(ValueError, match=r"\.cpu\(\)"):
        fxt.loss(W.cuda(), a, X, y)


@pytest.mark.parametrize("p,c", [(1.0, 0.0), (2.0, 0.0), (1.0, -0.1), (2.0, 0.5)])
def test_twolayer_forward_equals_flatext_forward(p, c):
    torch.manual_seed(0)
    net = fxt.TwoLayer(6, 9, p, c, dtype=torch.float64)
    X = torch.randn(30, 6, dtype=torch.float64)
    out = net(X)
    ref = fx.forward(net.W.detach().numpy(), net.a.detach().numpy(), X.numpy(), power=p, neg=c)
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-13, atol=1e-15)
    assert isinstance(net, nn.Module)


def test_twolayer_curvature_methods_and_rescale_balance():
    torch.manual_seed(1)
    net = fxt.TwoLayer(4, 6, 2.0, dtype=torch.float64)
    X = torch.randn(25, 4, dtype=torch.float64)
    y = net(X).detach()  # an interpolator: the orbit minimum exists
    W0, a0 = net.W.detach().clone(), net.a.detach().clone()
    T0 = float(net.hessian_trace(X, y))
    assert T0 == pytest.approx(
        float(fx.hessian_trace(W0.numpy(), a0.numpy(), X.numpy(), y.numpy(), power=2.0)), rel=1e-14
    )
    HW, ha = net.hvp(X, y, torch.ones_like(W0), torch.ones_like(a0))
    HW = HW.detach()
    rW, _ = fx.hvp(W0.numpy(), a0.numpy(), X.numpy(), y.numpy(), np.ones((6, 4)), np.ones(6), power=2.0)
    np.testing.assert_allclose(HW.numpy(), rW, rtol=1e-14)
    om = float(net.orbit_min_trace(X, y))
    net.rescale(1.7)
    np.testing.assert_allclose(net(X).detach().numpy(), y.numpy(), rtol=1e-12, atol=1e-14)
    assert float(net.hessian_trace(X, y)) != pytest.approx(T0, rel=1e-6)
    net.balance(X, y)
    assert float(net.hessian_trace(X, y)) == pytest.approx(om, rel=1e-10)
    assert om < T0
    np.testing.assert_allclose(net(X).detach().numpy(), y.numpy(), rtol=1e-12, atol=1e-14)
    net.rescale(torch.full((6,), 0.5, dtype=torch.float64))
    np.testing.assert_allclose(net(X).detach().numpy(), y.numpy(), rtol=1e-12, atol=1e-14)
    assert "power=2.0" in repr(net)


def test_from_sequential_recognizes_and_refuses():
    torch.manual_seed(2)
    d, m = 5, 7
    X = torch.randn(11, d)
    for act, (p, c) in ((nn.ReLU(), (1.0, 0.0)), (nn.LeakyReLU(0.1), (1.0, -0.1)), (fxt.ReLUPower(3.0), (3.0, 0.0))):
        seq = nn.Sequential(nn.Linear(d, m, bias=False), act, nn.Linear(m, 1, bias=False))
        net = fxt.from_sequential(seq)
        assert (net.power, net.neg) == pytest.approx((p, c))
        torch.testing.assert_close(net(X), seq(X)[:, 0], rtol=1e-6, atol=1e-6)
        assert net.W.data_ptr() != seq[0].weight.data_ptr()
        assert isinstance(fxt.TwoLayer.from_sequential(seq), fxt.TwoLayer)
    with pytest.raises(TypeError, match="activation must be"):
        fxt.from_sequential(nn.Sequential(nn.Linear(d, m, bias=False), nn.Tanh(), nn.Linear(m, 1, bias=False)))
    with pytest.raises(TypeError, match="bias"):
        fxt.from_sequential(nn.Sequential(nn.Linear(d, m), nn.ReLU(), nn.Linear(m, 1, bias=False)))
    with pytest.raises(TypeError, match="one output"):
        fxt.from_sequential(nn.Sequential(nn.Linear(d, m, bias=False), nn.ReLU(), nn.Linear(m, 2, bias=False)))
    with pytest.raises(TypeError, match="nn.Sequential"):
        fxt.from_sequential(nn.Linear(d, m))
    with pytest.raises(TypeError, match="layer 0"):
        fxt.from_sequential(nn.Sequential(nn.ReLU(), nn.ReLU(), nn.Linear(m, 1, bias=False)))


def test_training_with_the_regularizer_lowers_the_trace():
    # fixed problem: a ReLU student on a planted teacher; Adam on L versus Adam on L + lam T from the same start
    teacher = fx.PlantedNetwork.random(8, 3, power=1.0, seed=0)
    Xn, yn = teacher.sample(200, seed=1)
    X, y = torch.from_numpy(Xn), torch.from_numpy(yn)

    def run(lam):
        torch.manual_seed(3)
        net = fxt.TwoLayer(8, 32, 1.0, dtype=torch.float64)
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        for _ in range(150):
            opt.zero_grad()
            net.regularized_loss(X, y, lam).backward()
            opt.step()
        return float(net.loss(X, y)), float(net.hessian_trace(X, y))

    L0, T0 = run(0.0)
    L1, T1 = run(0.003)
    assert T1 < 0.8 * T0, (T0, T1)  # measured: 13.5 -> 8.3
    assert L0 < 0.01 and L1 < 0.01, (L0, L1)  # both still fit (label variance / 2 is 0.49)


def test_orbit_min_trace_refuses_negative_w_blocks():
    # p = 2 far from interpolation: some B_i < 0, the trace is unbounded below on the orbit
    W, a, X, y = _problem(n=40, seed=9)
    parts = fx.hessian_trace_parts(W.numpy(), a.numpy(), X.numpy(), (y * 50).numpy(), power=2.0)
    assert (parts.per_neuron_w < 0).any()
    with pytest.raises(ValueError):
        fxt.orbit_min_trace(W, a, X, y * 50, power=2.0)
