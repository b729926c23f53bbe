// Bindings of the rescaling symmetry (flatext/symmetry.hpp): rescale, balance, and
// the minimal trace over the orbit. t and power are checked by the core (ValueError).
#include "checks.hpp"

#include <flatext/symmetry.hpp>

namespace flatext_py {

void bind_symmetry(py::module_& m) {
    using namespace flatext;

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
}

}  // namespace flatext_py
