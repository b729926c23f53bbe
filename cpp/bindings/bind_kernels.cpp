// Bindings of the fused kernels (flatext/kernels.hpp): forward pass, loss and
// gradient, exact Hessian trace, its parts and gradient, Hessian-vector product.
// Convert and check types/shapes, dispatch on dtype, release the GIL, convert
// results. No arithmetic here; value checks (power, neg) live in the core, whose
// std::invalid_argument / std::domain_error arrive in Python as ValueError.
#include "checks.hpp"

#include <flatext/kernels.hpp>

namespace flatext_py {

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
}

}  // namespace flatext_py
