// Binding of full-batch training (gradient descent, SAM; flatext/training.hpp):
// check, dispatch on dtype, release the GIL, convert the result. No arithmetic
// here. The Python wrapper (flatext.training.train) adds the polish, the
// callback and the result type.
#include <pybind11/stl.h>

#include "checks.hpp"

namespace flatext_py {

void bind_training(py::module_& m) {
    using namespace flatext;

    m.def(
        "train",
        [](py::handle W, py::handle a, py::handle X, py::handle y, double power, double neg, const std::string& method,
           double lr, double rho, int max_iter, double tol, int record_every) {
            const Net net = check_net(W, a, X, y, true);
            const auto act = make_activation(power, neg);
            TrainMethod meth;
            if (method == "gd")
                meth = TrainMethod::GD;
            else if (method == "sam")
                meth = TrainMethod::SAM;
            else
                throw py::value_error("method must be 'gd' or 'sam'; got '" + method + "'");
            if (!(lr > 0) || !std::isfinite(lr))
                throw py::value_error("lr must be finite and > 0; got " + std::to_string(lr));
            if (meth == TrainMethod::SAM && (!(rho > 0) || !std::isfinite(rho)))
                throw py::value_error("rho must be finite and > 0; got " + std::to_string(rho));
            if (max_iter < 0) throw py::value_error("max_iter must be >= 0");
            if (!(tol >= 0)) throw py::value_error("tol must be >= 0");
            if (record_every < 1) throw py::value_error("record_every must be >= 1");
            return dispatch(net.f32(), [&](auto tag) -> py::object {
                using T = decltype(tag);
                auto r = without_gil([&] {
                    return flatext::train<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), net.yv<T>(), act, meth, lr, rho,
                                             max_iter, tol, record_every);
                });
                py::dict d;
                d["W"] = std::move(r.W);
                d["a"] = std::move(r.a);
                d["loss"] = r.loss;
                d["iterations"] = r.iterations;
                d["converged"] = r.converged;
                d["message"] = r.message;
                d["history_iter"] = r.history_iter;
                d["history_loss"] = r.history_loss;
                return d;
            });
        },
        py::arg("W"), py::arg("a"), py::arg("X"), py::arg("y"), py::arg("power"), py::arg("neg"), py::arg("method"),
        py::arg("lr"), py::arg("rho"), py::arg("max_iter"), py::arg("tol"), py::arg("record_every"));
}

}  // namespace flatext_py
