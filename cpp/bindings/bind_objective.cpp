// Binding of the combined objective L + lam * K (flatext/objective.hpp); lam is
// checked by the core (ValueError).
#include "checks.hpp"

#include <string>

#include <flatext/objective.hpp>

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

void bind_objective(py::module_& m) {
    using namespace flatext;

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
