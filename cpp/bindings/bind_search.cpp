// Bindings of the flatness search on the interpolating manifold
// (flatext/search.hpp): one search step, and the clipped orbit-minimal trace.
// Check, dispatch on dtype, release the GIL, convert results. No arithmetic here.
#include <pybind11/stl.h>

#include "checks.hpp"
#include "solver_arg.hpp"

#include <string>

#include <flatext/search.hpp>

namespace flatext_py {

/// What one search step returns to Python: flatext::SearchStep<T> with numpy arrays (read-only fields).
struct SearchStepResult {
    py::array W, a, u;
    double trace_before = 0, trace = 0, orbit_min_trace = 0, max_residual = 0, eta = 0, g_norm = 0, gt_norm = 0;
    double krylov_residual = 0;
    int backtracks = 0, retract_iters = 0, gn_iters = 0, gram_builds = 0, krylov_iters = 0;
    bool krylov_converged = false, accepted = false, small_gradient = false;
    std::string solver;
};

namespace {
/// SearchOptions from the binding's arguments, checked once (SearchOptions::validate).
flatext::SearchOptions make_search_options(double tol, double lambda_rel, double gtol, double eta, bool balance,
                                           int max_backtrack, int retract_iter, bool a_correction,
                                           const std::string& solver, double cg_rtol, double retract_rtol,
                                           int cg_max_iter, long long cg_rank) {
    flatext::SearchOptions o;
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
    o.validate();
    return o;
}

/// flatext::SearchOptions, read-only, built by a checking constructor: the Python SearchOptions
/// (flatext/options.py) builds one to check the values of the fields it shares with the struct.
void bind_search_options(py::module_& m) {
    using flatext::SearchOptions;
    const SearchOptions d;
    py::class_<SearchOptions>(m, "SearchOptions", "Options of search_step (flatext::SearchOptions), checked when built",
                              py::module_local())
        .def(py::init(&make_search_options), py::arg("tol") = d.tol, py::arg("lambda_rel") = d.lambda_rel,
             py::arg("gtol") = d.gtol, py::arg("eta") = d.eta, py::arg("balance") = d.balance,
             py::arg("max_backtrack") = d.max_backtrack, py::arg("retract_iter") = d.retract_iter,
             py::arg("a_correction") = d.a_correction, py::arg("solver") = "auto", py::arg("cg_rtol") = d.cg_rtol,
             py::arg("retract_rtol") = d.retract_rtol, py::arg("cg_max_iter") = d.cg_max_iter,
             py::arg("cg_rank") = (long long)d.cg_rank)
        .def_readonly("tol", &SearchOptions::tol)
        .def_readonly("lambda_rel", &SearchOptions::lambda_rel)
        .def_readonly("gtol", &SearchOptions::gtol)
        .def_readonly("retract_iter", &SearchOptions::retract_iter)
        .def_readonly("a_correction", &SearchOptions::a_correction)
        .def_readonly("balance", &SearchOptions::balance)
        .def_readonly("cg_rtol", &SearchOptions::cg_rtol)
        .def_readonly("cg_max_iter", &SearchOptions::cg_max_iter);
}
}  // namespace

void bind_search(py::module_& m) {
    using namespace flatext;
    bind_search_options(m);

    py::class_<SearchStepResult>(m, "SearchStep",
                                 "One step of the flatness search (flatext::SearchStep): read-only fields.",
                                 py::module_local())  // one registration per variant module
        .def_readonly("W", &SearchStepResult::W, "first layer at the new point (m, d)")
        .def_readonly("a", &SearchStepResult::a, "second layer at the new point (m,)")
        .def_readonly("u", &SearchStepResult::u,
                      "multipliers of the tangent projection (n,): the next step's warm start")
        .def_readonly("trace_before", &SearchStepResult::trace_before, "T at the start point")
        .def_readonly("trace", &SearchStepResult::trace, "T at the new point (after the balance)")
        .def_readonly("orbit_min_trace", &SearchStepResult::orbit_min_trace, "orbit-minimal T at the new point")
        .def_readonly("max_residual", &SearchStepResult::max_residual, "max |r| at the new point")
        .def_readonly("eta", &SearchStepResult::eta, "accepted step size (0: none)")
        .def_readonly("g_norm", &SearchStepResult::g_norm, "||grad T|| at the start point")
        .def_readonly("gt_norm", &SearchStepResult::gt_norm, "||g_t||, its tangent part")
        .def_readonly("backtracks", &SearchStepResult::backtracks, "halvings of eta")
        .def_readonly("retract_iters", &SearchStepResult::retract_iters, "retraction iterations of the accepted trial")
        .def_readonly("gn_iters", &SearchStepResult::gn_iters, "Gauss-Newton fallback iterations")
        .def_readonly("gram_builds", &SearchStepResult::gram_builds, "n x n Gram matrices built (all trials)")
        .def_readonly("krylov_iters", &SearchStepResult::krylov_iters, "CG iterations (all solves)")
        .def_readonly("krylov_residual", &SearchStepResult::krylov_residual, "relative residual of the projection")
        .def_readonly("krylov_converged", &SearchStepResult::krylov_converged, "the projection's solve converged")
        .def_readonly("solver", &SearchStepResult::solver, "'cholesky' or 'cg'")
        .def_readonly("accepted", &SearchStepResult::accepted, "a trial passed the line search")
        .def_readonly("small_gradient", &SearchStepResult::small_gradient, "||g_t|| <= gtol ||g||: no step tried");

    m.def(
        "search_step",
        [](py::handle W, py::handle a, py::handle X, py::handle y, double power, double neg, double tol,
           double lambda_rel, double gtol, double eta, bool balance, int max_backtrack, int retract_iter,
           bool a_correction, const std::string& solver, double cg_rtol, double retract_rtol, int cg_max_iter,
           py::handle u0, long long cg_rank) {
            const Net net = check_net(W, a, X, y, true);
            const auto act = make_activation(power, neg);
            const SearchOptions o =
                make_search_options(tol, lambda_rel, gtol, eta, balance, max_backtrack, retract_iter, a_correction,
                                    solver, cg_rtol, retract_rtol, cg_max_iter, cg_rank);
            const Vec<double> uw = optional_vec(u0, net.n, "u0");
            return dispatch(net.f32(), [&](auto tag) -> SearchStepResult {
                using T = decltype(tag);
                auto s = without_gil([&] {
                    return flatext::search_step<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), net.yv<T>(), act, o, uw);
                });
                SearchStepResult r;
                r.W = py::cast(std::move(s.W));  // numpy arrays (pybind11/eigen.h)
                r.a = py::cast(std::move(s.a));
                r.u = py::cast(std::move(s.u));
                r.trace_before = s.trace_before;
                r.trace = s.trace;
                r.orbit_min_trace = s.orbit_min;
                r.max_residual = s.max_residual;
                r.eta = s.eta;
                r.g_norm = s.g_norm;
                r.gt_norm = s.gt_norm;
                r.backtracks = s.backtracks;
                r.retract_iters = s.retract_iters;
                r.gn_iters = s.gn_iters;
                r.gram_builds = s.gram_builds;
                r.krylov_iters = s.krylov_iters;
                r.krylov_residual = s.krylov_residual;
                r.krylov_converged = s.krylov_converged;
                r.solver = s.used_cg ? "cg" : "cholesky";
                r.accepted = s.accepted;
                r.small_gradient = s.small_gradient;
                return r;
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
