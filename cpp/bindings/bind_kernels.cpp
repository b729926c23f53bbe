// Bindings of the fused kernels, the combined objective, the symmetry and
// Lanczos: convert and check types/shapes, dispatch on dtype, release the GIL,
// convert results. No arithmetic here; value checks (power, neg, k, tol, t,
// lambda) live in the core's parameter structs and functions, whose
// std::invalid_argument / std::domain_error arrive in Python as ValueError.
#include "checks.hpp"

namespace flatext_py {

namespace {
/// `which` of objective(): "loss" (or "none"), "gauss_newton", "trace".
flatext::Regularizer parse_regularizer(const std::string& which) {
    if (which == "loss" || which == "none") return flatext::Regularizer::none;
    if (which == "gauss_newton") return flatext::Regularizer::gauss_newton;
    if (which == "trace") return flatext::Regularizer::trace;
    throw py::value_error("which must be \"loss\", \"gauss_newton\" or \"trace\"; got \"" + which + "\"");
}
}  // namespace

void bind_kernels(py::module_& m) {
    using namespace flatext;

    m.def(
        "forward",
        [](py::handle W, py::handle a, py::handle X, double power, double neg) {
            const Net net = check_net(W, a, X, py::none(), false);
            const auto act = make_activation(power, neg);
            return dispatch(net.f32(), [&](auto tag) -> py::object {
                using T = decltype(tag);
                Vec<T> f = without_gil([&] { return flatext::forward<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), act); });
                require_finite(f, "forward");
                return py::cast(std::move(f));
            });
        },
        py::arg("W"), py::arg("a"), py::arg("X"), py::arg("power") = 1.0, py::arg("neg") = 0.0);

    m.def(
        "loss",
        [](py::handle W, py::handle a, py::handle X, py::handle y, double power, double neg) {
            const Net net = check_net(W, a, X, y, true);
            const auto act = make_activation(power, neg);
            return dispatch(net.f32(), [&](auto tag) -> py::object {
                using T = decltype(tag);
                T v = without_gil(
                    [&] { return flatext::loss<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), net.yv<T>(), act); });
                return scalar<T>(v, "loss");
            });
        },
        py::arg("W"), py::arg("a"), py::arg("X"), py::arg("y"), py::arg("power") = 1.0, py::arg("neg") = 0.0);

    m.def(
        "loss_grad",
        [](py::handle W, py::handle a, py::handle X, py::handle y, double power, double neg) {
            const Net net = check_net(W, a, X, y, true);
            const auto act = make_activation(power, neg);
            return dispatch(net.f32(), [&](auto tag) -> py::object {
                using T = decltype(tag);
                auto g = without_gil(
                    [&] { return flatext::loss_grad<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), net.yv<T>(), act); });
                require_finite(g.W, "loss_grad");
                require_finite(g.a, "loss_grad");
                return py::make_tuple(scalar<T>(g.value, "loss_grad"), std::move(g.W), std::move(g.a));
            });
        },
        py::arg("W"), py::arg("a"), py::arg("X"), py::arg("y"), py::arg("power") = 1.0, py::arg("neg") = 0.0);

    m.def(
        "hessian_trace",
        [](py::handle W, py::handle a, py::handle X, py::handle y, double power, double neg) {
            const Net net = check_net(W, a, X, y, true);
            const auto act = make_activation(power, neg);
            return dispatch(net.f32(), [&](auto tag) -> py::object {
                using T = decltype(tag);
                T v = without_gil(
                    [&] { return flatext::hessian_trace<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), net.yv<T>(), act); });
                return scalar<T>(v, "hessian_trace");
            });
        },
        py::arg("W"), py::arg("a"), py::arg("X"), py::arg("y"), py::arg("power") = 1.0, py::arg("neg") = 0.0);

    m.def(
        "hessian_trace_parts",
        [](py::handle W, py::handle a, py::handle X, py::handle y, double power, double neg) {
            const Net net = check_net(W, a, X, y, true);
            const auto act = make_activation(power, neg);
            return dispatch(net.f32(), [&](auto tag) -> py::object {
                using T = decltype(tag);
                auto p = without_gil([&] {
                    return flatext::hessian_trace_parts<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), net.yv<T>(), act);
                });
                const char* w = "hessian_trace_parts";
                require_finite(p.per_neuron, w);
                require_finite(p.per_neuron_a, w);
                require_finite(p.per_neuron_w, w);
                return py::make_tuple(scalar<T>(p.total, w), scalar<T>(p.gauss_newton, w), scalar<T>(p.residual, w),
                                      std::move(p.per_neuron), std::move(p.per_neuron_a), std::move(p.per_neuron_w),
                                      scalar<T>(p.loss, w));
            });
        },
        py::arg("W"), py::arg("a"), py::arg("X"), py::arg("y"), py::arg("power") = 1.0, py::arg("neg") = 0.0);

    m.def(
        "hessian_trace_grad",
        [](py::handle W, py::handle a, py::handle X, py::handle y, double power, double neg) {
            const Net net = check_net(W, a, X, y, true);
            const auto act = make_activation(power, neg);
            return dispatch(net.f32(), [&](auto tag) -> py::object {
                using T = decltype(tag);
                auto g = without_gil([&] {
                    return flatext::hessian_trace_grad<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), net.yv<T>(), act);
                });
                require_finite(g.W, "hessian_trace_grad");
                require_finite(g.a, "hessian_trace_grad");
                return py::make_tuple(scalar<T>(g.value, "hessian_trace_grad"), std::move(g.W), std::move(g.a));
            });
        },
        py::arg("W"), py::arg("a"), py::arg("X"), py::arg("y"), py::arg("power") = 1.0, py::arg("neg") = 0.0);

    m.def(
        "hvp",
        [](py::handle W, py::handle a, py::handle X, py::handle y, py::handle VW, py::handle va, double power,
           double neg) {
            const Net net = check_net(W, a, X, y, true);
            const auto act = make_activation(power, neg);
            const Direction v = check_direction(net, VW, va);
            return dispatch(net.f32(), [&](auto tag) -> py::object {
                using T = decltype(tag);
                const auto VWm = v.Wm<T>();
                const auto vam = v.av<T>();
                auto h = without_gil(
                    [&] { return flatext::hvp<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), net.yv<T>(), VWm, vam, act); });
                require_finite(h.first, "hvp");
                require_finite(h.second, "hvp");
                return py::make_tuple(std::move(h.first), std::move(h.second));
            });
        },
        py::arg("W"), py::arg("a"), py::arg("X"), py::arg("y"), py::arg("VW"), py::arg("va"), py::arg("power") = 1.0,
        py::arg("neg") = 0.0);

    m.def(
        "hessian_top_eigenvalues",
        [](py::handle W, py::handle a, py::handle X, py::handle y, int k, double power, double neg, int max_iter,
           double tol, std::uint64_t seed) {
            const Net net = check_net(W, a, X, y, true);
            const auto act = make_activation(power, neg);
            return dispatch(net.f32(), [&](auto tag) -> py::object {
                using T = decltype(tag);
                auto r = without_gil([&] {
                    return flatext::hessian_top_eigenvalues<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), net.yv<T>(), act,
                                                               k, max_iter, tol, seed);
                });
                require_finite(r.values, "hessian_top_eigenvalues");
                Vec<T> vals = r.values.template cast<T>();
                return py::make_tuple(std::move(vals), std::move(r.residuals), r.iterations, r.converged);
            });
        },
        py::arg("W"), py::arg("a"), py::arg("X"), py::arg("y"), py::arg("k") = 1, py::arg("power") = 1.0,
        py::arg("neg") = 0.0, py::arg("max_iter") = 0, py::arg("tol") = 1e-8, py::arg("seed") = 0);

    m.def(
        "rescale",
        [](py::handle W, py::handle a, py::handle t, double power) {
            Arg Wa = to_arg(W, "W", 2), aa = to_arg(a, "a", 1), ta = to_arg(t, "t", 1);
            same_dtype({&Wa, &aa, &ta});
            const Index m = Wa.dim(0), d = Wa.dim(1);
            if (aa.dim(0) != m)
                throw py::value_error("a must have shape (m,) = (" + std::to_string(m) + ",); got " +
                                      shape_str(aa.arr));
            if (ta.dim(0) != m)
                throw py::value_error("t must be a scalar or have shape (m,) = (" + std::to_string(m) + ",); got " +
                                      shape_str(ta.arr));
            if (m == 0) throw py::value_error("W is empty (m = 0 neurons)");
            if (d == 0) throw py::value_error("W is empty (d = 0 input dimensions)");
            check_finite(Wa);
            check_finite(aa);
            check_finite(ta);
            return dispatch(Wa.f32, [&](auto tag) -> py::object {
                using T = decltype(tag);
                Eigen::Map<const Mat<T>> Wm(Wa.data<T>(), m, d);
                Eigen::Map<const Vec<T>> am(aa.data<T>(), m), tm(ta.data<T>(), m);
                auto r = flatext::rescale<T>(Wm, am, tm, power);  // checks power and t > 0
                require_finite(r.first, "rescale");
                require_finite(r.second, "rescale");
                return py::make_tuple(std::move(r.first), std::move(r.second));
            });
        },
        py::arg("W"), py::arg("a"), py::arg("t"), py::arg("power") = 1.0);

    m.def(
        "balance",
        [](py::handle W, py::handle a, py::handle X, py::handle y, double power, double neg) {
            const Net net = check_net(W, a, X, y, true);
            const auto act = make_activation(power, neg);
            return dispatch(net.f32(), [&](auto tag) -> py::object {
                using T = decltype(tag);
                auto r = without_gil(
                    [&] { return flatext::balance<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), net.yv<T>(), act); });
                require_finite(r.first, "balance");
                require_finite(r.second, "balance");
                return py::make_tuple(std::move(r.first), std::move(r.second));
            });
        },
        py::arg("W"), py::arg("a"), py::arg("X"), py::arg("y"), py::arg("power") = 1.0, py::arg("neg") = 0.0);

    m.def(
        "orbit_min_trace",
        [](py::handle W, py::handle a, py::handle X, py::handle y, double power, double neg) {
            const Net net = check_net(W, a, X, y, true);
            const auto act = make_activation(power, neg);
            return dispatch(net.f32(), [&](auto tag) -> py::object {
                using T = decltype(tag);
                T v = without_gil([&] {
                    return flatext::orbit_min_trace<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), net.yv<T>(), act);
                });
                return scalar<T>(v, "orbit_min_trace");
            });
        },
        py::arg("W"), py::arg("a"), py::arg("X"), py::arg("y"), py::arg("power") = 1.0, py::arg("neg") = 0.0);
    m.def(
        "objective",
        [](py::handle W, py::handle a, py::handle X, py::handle y, double lam, const std::string& which, double power,
           double neg) {
            const Net net = check_net(W, a, X, y, true);
            const auto act = make_activation(power, neg);
            const Regularizer reg = parse_regularizer(which);
            return dispatch(net.f32(), [&](auto tag) -> py::object {
                using T = decltype(tag);
                Mat<T> gW(net.m, net.d);
                Vec<T> ga(net.m);
                const auto v = without_gil([&] {
                    return flatext::objective<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), net.yv<T>(), act, reg, lam, gW,
                                                 ga);
                });
                const char* w = "objective";
                require_finite(gW, w);
                require_finite(ga, w);
                return py::make_tuple(scalar<T>(v.value, w), scalar<T>(v.loss, w), scalar<T>(v.regularizer, w),
                                      std::move(gW), std::move(ga));
            });
        },
        py::arg("W"), py::arg("a"), py::arg("X"), py::arg("y"), py::arg("lam") = 0.0, py::arg("which") = "loss",
        py::arg("power") = 1.0, py::arg("neg") = 0.0,
        "(value, loss, regularizer, gW, ga) of L + lam * K, K by `which` (loss, gauss_newton, trace).");
}

}  // namespace flatext_py
