// Bindings of the flatness search on the interpolating manifold
// (flatext/search.hpp): one search step, and the clipped orbit-minimal trace.
// Check, dispatch on dtype, release the GIL, convert results. No arithmetic here.
#include <pybind11/stl.h>

#include "checks.hpp"
#include "solver_arg.hpp"

#include <string>

#include <flatext/search.hpp>

namespace flatext_py {

void bind_search(py::module_& m) {
    using namespace flatext;

    m.def(
        "search_step",
        [](py::handle W, py::handle a, py::handle X, py::handle y, double power, double neg, double tol,
           double lambda_rel, double gtol, double eta, bool balance, int max_backtrack, int retract_iter,
           bool a_correction, const std::string& solver, double cg_rtol, double retract_rtol, int cg_max_iter,
           py::handle u0, long long cg_rank) {
            const Net net = check_net(W, a, X, y, true);
            const auto act = make_activation(power, neg);
            check_positive(tol, "tol");
            check_positive(lambda_rel, "lambda_rel");
            check_cg(cg_rtol, cg_max_iter, "cg_rtol");
            check_positive(retract_rtol, "retract_rtol");
            if (!(gtol >= 0)) throw py::value_error("gtol must be >= 0");
            if (max_backtrack < 0) throw py::value_error("max_backtrack must be >= 0");
            if (retract_iter < 0) throw py::value_error("retract_iter must be >= 0");
            SearchOptions o;
            o.tol = tol;
            o.lambda_rel = lambda_rel;
            o.gtol = gtol;
            o.eta = eta;
            o.balance = balance;
            o.max_backtrack = max_backtrack;
            o.retract_iter = retract_iter;
            o.a_correction = a_correction;
            o.solver = parse_solver(solver);
            o.cg_rtol = cg_rtol;
            o.retract_rtol = retract_rtol;
            o.cg_max_iter = cg_max_iter;
            o.cg_rank = Index(cg_rank);
            const Vec<double> uw = optional_vec(u0, net.n, "u0");
            return dispatch(net.f32(), [&](auto tag) -> py::object {
                using T = decltype(tag);
                auto s = without_gil([&] {
                    return flatext::search_step<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), net.yv<T>(), act, o, uw);
                });
                py::dict d;
                d["W"] = std::move(s.W);
                d["a"] = std::move(s.a);
                d["u"] = std::move(s.u);
                d["trace_before"] = s.trace_before;
                d["trace"] = s.trace;
                d["orbit_min_trace"] = s.orbit_min;
                d["max_residual"] = s.max_residual;
                d["eta"] = s.eta;
                d["g_norm"] = s.g_norm;
                d["gt_norm"] = s.gt_norm;
                d["backtracks"] = s.backtracks;
                d["retract_iters"] = s.retract_iters;
                d["gn_iters"] = s.gn_iters;
                d["gram_builds"] = s.gram_builds;
                d["krylov_iters"] = s.krylov_iters;
                d["krylov_residual"] = s.krylov_residual;
                d["krylov_converged"] = s.krylov_converged;
                d["solver"] = s.used_cg ? "cg" : "cholesky";
                d["accepted"] = s.accepted;
                d["small_gradient"] = s.small_gradient;
                return d;
            });
        },
        py::arg("W"), py::arg("a"), py::arg("X"), py::arg("y"), py::arg("power"), py::arg("neg"),
        py::arg("tol") = SearchOptions{}.tol, py::arg("lambda_rel") = SearchOptions{}.lambda_rel,
        py::arg("gtol") = SearchOptions{}.gtol, py::arg("eta") = SearchOptions{}.eta,
        py::arg("balance") = SearchOptions{}.balance, py::arg("max_backtrack") = SearchOptions{}.max_backtrack,
        py::arg("retract_iter") = SearchOptions{}.retract_iter, py::arg("a_correction") = SearchOptions{}.a_correction,
        py::arg("solver") = "auto", py::arg("cg_rtol") = SearchOptions{}.cg_rtol,
        py::arg("retract_rtol") = SearchOptions{}.retract_rtol, py::arg("cg_max_iter") = SearchOptions{}.cg_max_iter,
        py::arg("u0") = py::none(), py::arg("cg_rank") = -1);

    m.def("orbit_min_trace_clipped", [](py::handle W, py::handle a, py::handle X, py::handle y, double power,
                                        double neg) {
        const Net net = check_net(W, a, X, y, true);
        const auto act = make_activation(power, neg);
        return dispatch(net.f32(), [&](auto tag) -> double {
            using T = decltype(tag);
            return without_gil([&] {
                return flatext::orbit_min_trace_clipped<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), net.yv<T>(), act);
            });
        });
    });
}

}  // namespace flatext_py
