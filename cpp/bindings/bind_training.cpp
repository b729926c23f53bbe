// Bindings of flatext/training.hpp: full-batch training (gradient descent, SAM)
// and the memorizing interpolator. Check, dispatch on dtype, release the GIL,
// convert the result. No arithmetic here. The Python wrapper
// (flatext.training.train) adds the polish, the callback and the result type.
#include <pybind11/stl.h>

#include "checks.hpp"

#include <flatext/training.hpp>

namespace flatext_py {

namespace {
const char* method_name(flatext::TrainMethod k) { return k == flatext::TrainMethod::SAM ? "sam" : "gd"; }

/// TrainOptions from the binding's arguments, checked once (TrainOptions::validate).
flatext::TrainOptions make_train_options(const std::string& method, double lr, double rho, int max_iter, double tol,
                                         int record_every) {
    flatext::TrainOptions o;
    if (method == "sam")
        o.method = flatext::TrainMethod::SAM;
    else if (method != "gd")
        throw py::value_error("method must be 'gd' or 'sam'; got '" + method + "'");
    o.lr = lr;
    o.rho = rho;
    o.max_iter = max_iter;
    o.tol = tol;
    o.record_every = record_every;
    o.validate();
    return o;
}

/// flatext::TrainOptions, read-only, built by a checking constructor: the Python TrainOptions
/// (flatext/options.py) takes its defaults from it and builds one to check its values.
void bind_train_options(py::module_& m) {
    using flatext::TrainOptions;
    const TrainOptions d;
    py::class_<TrainOptions>(m, "TrainOptions", "Options of train (flatext::TrainOptions), checked when built",
                             py::module_local())
        .def(py::init(&make_train_options), py::arg("method") = method_name(d.method), py::arg("lr") = d.lr,
             py::arg("rho") = d.rho, py::arg("max_iter") = d.max_iter, py::arg("tol") = d.tol,
             py::arg("record_every") = d.record_every)
        .def_property_readonly("method", [](const TrainOptions& o) { return method_name(o.method); })
        .def_readonly("lr", &TrainOptions::lr)
        .def_readonly("rho", &TrainOptions::rho)
        .def_readonly("max_iter", &TrainOptions::max_iter)
        .def_readonly("tol", &TrainOptions::tol)
        .def_readonly("record_every", &TrainOptions::record_every);
}
}  // namespace

void bind_training(py::module_& m) {
    using namespace flatext;
    bind_train_options(m);

    m.def(
        "train",
        [](py::handle W, py::handle a, py::handle X, py::handle y, double power, double neg, const TrainOptions& o) {
            const Net net = check_net(W, a, X, y, true);
            const auto act = make_activation(power, neg);
            return dispatch(net.f32(), [&](auto tag) -> py::object {
                using T = decltype(tag);
                auto r = without_gil(
                    [&] { return flatext::train<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), net.yv<T>(), act, o); });
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
        py::arg("W"), py::arg("a"), py::arg("X"), py::arg("y"), py::arg("power"), py::arg("neg"), py::arg("options"));

    m.def("memorizing_interpolator",
          [](py::handle X, py::handle y, double power, double neg, double kappa, long long width) {
              Arg Xa = to_arg(X, "X", 2), ya = to_arg(y, "y", 1);
              same_dtype({&Xa, &ya});
              const Index n = Xa.dim(0), d = Xa.dim(1);
              if (n == 0) throw py::value_error("X is empty (n = 0 samples)");
              if (d == 0) throw py::value_error("X has no columns (d = 0)");
              if (ya.dim(0) != n)
                  throw py::value_error("y must have shape (n,) = (" + std::to_string(n) + ",) to match X of shape " +
                                        shape_str(Xa.arr) + "; got " + shape_str(ya.arr));
              check_finite(Xa);
              check_finite(ya);
              const auto act = make_activation(power, neg);
              check_positive(kappa, "kappa");
              const Index mm = width <= 0 ? n : Index(width);
              if (mm < n)
                  throw py::value_error("m must be >= n = " + std::to_string(n) + " (one neuron per sample); got " +
                                        std::to_string(mm));
              return dispatch(Xa.f32, [&](auto tag) -> py::object {
                  using T = decltype(tag);
                  Eigen::Map<const Mat<T>> Xm(Xa.data<T>(), n, d);
                  Eigen::Map<const Vec<T>> yv(ya.data<T>(), n);
                  auto r = without_gil([&] { return flatext::memorizing_interpolator<T>(Xm, yv, act, kappa, mm); });
                  require_finite(r.a, "memorizing_interpolator");
                  return py::make_tuple(std::move(r.W), std::move(r.a), r.residual, r.rcond, r.least_squares);
              });
          });
}

}  // namespace flatext_py
