// Bindings of the interpolator search by Gauss-Newton projection
// (flatext/interpolation.hpp): find_interpolator, its options and the solver choice. Check,
// dispatch on dtype, release the GIL, convert results. No arithmetic here.
#include <pybind11/stl.h>

#include "checks.hpp"
#include "solver_arg.hpp"

#include <string>

#include <flatext/interpolation.hpp>

namespace flatext_py {

namespace {
void check_params(const Net& net) {
    if (net.n > net.m * (net.d + 1))
        throw py::value_error("cannot interpolate: n = " + std::to_string(net.n) +
                              " samples exceed the number of parameters m*(d+1) = " +
                              std::to_string(net.m * (net.d + 1)) + " (W has shape " + shape_str(net.W.arr) + ")");
}

/// InterpolationOptions from the binding's arguments, checked once (InterpolationOptions::validate).
flatext::InterpolationOptions make_interpolation_options(double tol, int max_iter, double lambda_init,
                                                         const std::string& solver, double cg_rtol, int cg_max_iter,
                                                         long long cg_rank) {
    flatext::InterpolationOptions o;
    o.tol = tol;
    o.max_iter = max_iter;
    o.lambda_init = lambda_init;
    o.solver = parse_solver(solver);
    o.cg_rtol = cg_rtol;
    o.cg_max_iter = cg_max_iter;
    o.cg_rank = Index(cg_rank);
    o.validate();
    return o;
}

const char* solver_name(flatext::SolverKind k) {
    return k == flatext::SolverKind::Cholesky ? "cholesky" : k == flatext::SolverKind::CG ? "cg" : "auto";
}

/// flatext::InterpolationOptions, read-only, built by a checking constructor: the Python
/// InterpolationOptions (flatext/options.py) takes its defaults from it and builds one to check its values.
void bind_interpolation_options(py::module_& m) {
    using flatext::InterpolationOptions;
    const InterpolationOptions d;
    py::class_<InterpolationOptions>(m, "InterpolationOptions",
                                     "Options of find_interpolator (flatext::InterpolationOptions), checked when built",
                                     py::module_local())
        .def(py::init(&make_interpolation_options), py::arg("tol") = d.tol, py::arg("max_iter") = d.max_iter,
             py::arg("lambda_init") = d.lambda_init, py::arg("solver") = solver_name(d.solver),
             py::arg("cg_rtol") = d.cg_rtol, py::arg("cg_max_iter") = d.cg_max_iter,
             py::arg("cg_rank") = (long long)d.cg_rank)
        .def_readonly("tol", &InterpolationOptions::tol)
        .def_readonly("max_iter", &InterpolationOptions::max_iter)
        .def_readonly("lambda_init", &InterpolationOptions::lambda_init)
        .def_readonly("lambda_min", &InterpolationOptions::lambda_min)
        .def_readonly("lambda_max", &InterpolationOptions::lambda_max)
        .def_property_readonly("solver", [](const InterpolationOptions& o) { return solver_name(o.solver); })
        .def_readonly("cg_rtol", &InterpolationOptions::cg_rtol)
        .def_readonly("cg_max_iter", &InterpolationOptions::cg_max_iter)
        .def_property_readonly("cg_rank", [](const InterpolationOptions& o) { return (long long)o.cg_rank; });
}

}  // namespace

void bind_interpolation(py::module_& m) {
    using namespace flatext;
    bind_interpolation_options(m);

    m.def(
        "choose_solver",
        [](long long n, long long d) {
            return choose_solver(SolverKind::Auto, Index(n), Index(d)) == SolverKind::CG ? "cg" : "cholesky";
        },
        py::arg("n"), py::arg("d"));

    m.def(
        "find_interpolator",
        [](py::handle W, py::handle a, py::handle X, py::handle y, double power, double neg, double tol, int max_iter,
           double lambda_init, const std::string& solver, double cg_rtol, int cg_max_iter, long long cg_rank) {
            const Net net = check_net(W, a, X, y, true);
            const auto act = make_activation(power, neg);
            check_params(net);
            const InterpolationOptions o =
                make_interpolation_options(tol, max_iter, lambda_init, solver, cg_rtol, cg_max_iter, cg_rank);
            return dispatch(net.f32(), [&](auto tag) -> py::object {
                using T = decltype(tag);
                auto r = without_gil([&] {
                    return flatext::find_interpolator<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), net.yv<T>(), act, o);
                });
                py::dict d;
                d["W"] = std::move(r.W);
                d["a"] = std::move(r.a);
                d["max_residual"] = r.max_residual;
                d["scale"] = r.scale;
                d["lambda"] = r.lambda;
                d["iterations"] = r.iterations;
                d["gram_builds"] = r.gram_builds;
                d["krylov_iters"] = r.krylov_iters;
                d["krylov_failures"] = r.krylov_failures;
                d["solver"] = r.used_cg ? "cg" : "cholesky";
                d["converged"] = r.converged;
                d["history"] = r.history;
                return d;
            });
        },
        py::arg("W"), py::arg("a"), py::arg("X"), py::arg("y"), py::arg("power"), py::arg("neg"),
        py::arg("tol") = InterpolationOptions{}.tol, py::arg("max_iter") = InterpolationOptions{}.max_iter,
        py::arg("lambda_init") = InterpolationOptions{}.lambda_init, py::arg("solver") = "auto",
        py::arg("cg_rtol") = InterpolationOptions{}.cg_rtol,
        py::arg("cg_max_iter") = InterpolationOptions{}.cg_max_iter, py::arg("cg_rank") = -1);
}

}  // namespace flatext_py
