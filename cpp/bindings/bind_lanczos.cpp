// Binding of the Hessian's top eigenvalues (Lanczos, flatext/lanczos.hpp); k, tol
// and max_iter are checked by the core (ValueError).
#include "checks.hpp"

#include <cstdint>

#include <flatext/lanczos.hpp>

namespace flatext_py {

void bind_lanczos(py::module_& m) {
    using namespace flatext;

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
}

}  // namespace flatext_py
