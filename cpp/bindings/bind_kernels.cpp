// Bindings of the fused kernels, the symmetry and Lanczos: check, dispatch on
// dtype, release the GIL, convert results. No arithmetic here.
#include "checks.hpp"

namespace flatext_py {

void bind_kernels(py::module_& m) {
    using namespace flatext;

    m.def("forward", [](py::handle W, py::handle a, py::handle X, double power, double neg) {
        const Net net = check_net(W, a, X, py::none(), false);
        const auto act = make_activation(power, neg);
        return dispatch(net.f32(), [&](auto tag) -> py::object {
            using T = decltype(tag);
            Vec<T> f = without_gil([&] { return flatext::forward<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), act); });
            require_finite(f, "forward");
            return py::cast(std::move(f));
        });
    });

    m.def("loss", [](py::handle W, py::handle a, py::handle X, py::handle y, double power, double neg) {
        const Net net = check_net(W, a, X, y, true);
        const auto act = make_activation(power, neg);
        return dispatch(net.f32(), [&](auto tag) -> py::object {
            using T = decltype(tag);
            T v = without_gil([&] { return flatext::loss<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), net.yv<T>(), act); });
            return scalar<T>(v, "loss");
        });
    });

    m.def("loss_grad", [](py::handle W, py::handle a, py::handle X, py::handle y, double power, double neg) {
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
    });

    m.def("hessian_trace", [](py::handle W, py::handle a, py::handle X, py::handle y, double power, double neg) {
        const Net net = check_net(W, a, X, y, true);
        const auto act = make_activation(power, neg);
        return dispatch(net.f32(), [&](auto tag) -> py::object {
            using T = decltype(tag);
            T v = without_gil(
                [&] { return flatext::hessian_trace<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), net.yv<T>(), act); });
            return scalar<T>(v, "hessian_trace");
        });
    });

    m.def("hessian_trace_parts", [](py::handle W, py::handle a, py::handle X, py::handle y, double power,
                                    double neg) {
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
    });

    m.def("hessian_trace_grad", [](py::handle W, py::handle a, py::handle X, py::handle y, double power,
                                   double neg) {
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
    });

    m.def("hvp", [](py::handle W, py::handle a, py::handle X, py::handle y, py::handle VW, py::handle va,
                    double power, double neg) {
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
    });

    m.def("hessian_top_eigenvalues", [](py::handle W, py::handle a, py::handle X, py::handle y, int k,
                                        double power, double neg, int max_iter, double tol, std::uint64_t seed) {
        const Net net = check_net(W, a, X, y, true);
        const auto act = make_activation(power, neg);
        if (k < 1) throw py::value_error("k must be >= 1; got " + std::to_string(k));
        if (k > net.m * (net.d + 1))
            throw py::value_error("k must be <= the number of parameters m*(d+1) = " +
                                  std::to_string(net.m * (net.d + 1)) + "; got " + std::to_string(k));
        if (!(tol > 0.0) || !std::isfinite(tol)) throw py::value_error("tol must be finite and > 0");
        if (max_iter < 0) throw py::value_error("max_iter must be >= 0 (0: automatic)");
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
    });

    m.def("rescale", [](py::handle W, py::handle a, py::handle t, double power) {
        Arg Wa = to_arg(W, "W", 2), aa = to_arg(a, "a", 1), ta = to_arg(t, "t", 1);
        same_dtype({&Wa, &aa, &ta});
        const Index m = Wa.dim(0), d = Wa.dim(1);
        if (aa.dim(0) != m)
            throw py::value_error("a must have shape (m,) = (" + std::to_string(m) + ",); got " + shape_str(aa.arr));
        if (ta.dim(0) != m)
            throw py::value_error("t must be a scalar or have shape (m,) = (" + std::to_string(m) + ",); got " +
                                  shape_str(ta.arr));
        if (m == 0) throw py::value_error("W is empty (m = 0 neurons)");
        if (d == 0) throw py::value_error("W is empty (d = 0 input dimensions)");
        if (!std::isfinite(power) || power < 1.0)
            throw py::value_error("power must be a finite number >= 1; got " + std::to_string(power));
        check_finite(Wa);
        check_finite(aa);
        check_finite(ta);
        return dispatch(Wa.f32, [&](auto tag) -> py::object {
            using T = decltype(tag);
            Eigen::Map<const Mat<T>> Wm(Wa.data<T>(), m, d);
            Eigen::Map<const Vec<T>> am(aa.data<T>(), m), tm(ta.data<T>(), m);
            for (Index i = 0; i < m; ++i)
                if (!(tm[i] > T(0)))
                    throw py::value_error("t must be > 0; t[" + std::to_string(i) + "] = " + std::to_string(double(tm[i])));
            auto r = flatext::rescale<T>(Wm, am, tm, power);
            require_finite(r.first, "rescale");
            require_finite(r.second, "rescale");
            return py::make_tuple(std::move(r.first), std::move(r.second));
        });
    });

    m.def("balance", [](py::handle W, py::handle a, py::handle X, py::handle y, double power, double neg) {
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
    });

    m.def("orbit_min_trace", [](py::handle W, py::handle a, py::handle X, py::handle y, double power, double neg) {
        const Net net = check_net(W, a, X, y, true);
        const auto act = make_activation(power, neg);
        return dispatch(net.f32(), [&](auto tag) -> py::object {
            using T = decltype(tag);
            T v = without_gil(
                [&] { return flatext::orbit_min_trace<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), net.yv<T>(), act); });
            return scalar<T>(v, "orbit_min_trace");
        });
    });
}

}  // namespace flatext_py
