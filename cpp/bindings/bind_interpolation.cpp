// Bindings of the interpolation core (Jacobian products, Gram matrix, the
// Gauss-Newton projection, the search step, memorizers): check,
// dispatch on dtype, release the GIL, convert results. No arithmetic here.
#include <pybind11/stl.h>

#include "checks.hpp"

namespace flatext_py {

namespace {

void check_positive(double v, const char* name) {
    if (!(v > 0) || !std::isfinite(v))
        throw py::value_error(std::string(name) + " must be finite and > 0; got " + std::to_string(v));
}

void check_params(const Net& net) {
    if (net.n > net.m * (net.d + 1))
        throw py::value_error("cannot interpolate: n = " + std::to_string(net.n) +
                              " samples exceed the number of parameters m*(d+1) = " +
                              std::to_string(net.m * (net.d + 1)) + " (W has shape " + shape_str(net.W.arr) + ")");
}

flatext::SolverKind parse_solver(const std::string& s) {
    if (s == "auto") return flatext::SolverKind::Auto;
    if (s == "cholesky") return flatext::SolverKind::Cholesky;
    if (s == "cg") return flatext::SolverKind::CG;
    throw py::value_error("solver must be 'auto', 'cholesky' or 'cg'; got '" + s + "'");
}

void check_cg(double rtol, int max_iter, const char* rname) {
    check_positive(rtol, rname);
    if (max_iter < 1) throw py::value_error("cg_max_iter must be >= 1; got " + std::to_string(max_iter));
}

/// An optional float64 vector of length n (None: empty).
flatext::Vec<double> optional_vec(py::handle v, Index n, const char* name) {
    if (v.is_none()) return {};
    Arg va = to_arg(v, name, 1);
    if (va.dim(0) != n)
        throw py::value_error(std::string(name) + " must have shape (n,) = (" + std::to_string(n) + ",); got " +
                              shape_str(va.arr));
    check_finite(va);
    flatext::Vec<double> out(n);
    for (Index j = 0; j < n; ++j) out[j] = va.f32 ? double(va.data<float>()[j]) : va.data<double>()[j];
    return out;
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

    m.def("jvp", [](py::handle W, py::handle a, py::handle X, py::handle VW, py::handle va, double power, double neg) {
        const Net net = check_net(W, a, X, py::none(), false);
        const auto act = make_activation(power, neg);
        const Direction v = check_direction(net, VW, va);
        return dispatch(net.f32(), [&](auto tag) -> py::object {
            using T = decltype(tag);
            const auto VWm = v.Wm<T>();
            const auto vam = v.av<T>();
            Vec<T> out =
                without_gil([&] { return flatext::jvp<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), VWm, vam, act); });
            require_finite(out, "jvp");
            return py::cast(std::move(out));
        });
    });

    m.def("vjp", [](py::handle W, py::handle a, py::handle X, py::handle u, double power, double neg) {
        const Net net = check_net(W, a, X, py::none(), false);
        const auto act = make_activation(power, neg);
        Arg ua = to_arg(u, "u", 1);
        same_dtype({&net.W, &ua});
        if (ua.dim(0) != net.n)
            throw py::value_error("u must have shape (n,) = (" + std::to_string(net.n) + ",); got " +
                                  shape_str(ua.arr));
        check_finite(ua);
        return dispatch(net.f32(), [&](auto tag) -> py::object {
            using T = decltype(tag);
            Eigen::Map<const Vec<T>> um(ua.data<T>(), net.n);
            auto r = without_gil([&] { return flatext::vjp<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), um, act); });
            require_finite(r.first, "vjp");
            require_finite(r.second, "vjp");
            return py::make_tuple(std::move(r.first), std::move(r.second));
        });
    });

    m.def(
        "gram",
        [](py::handle W, py::handle a, py::handle X, double power, double neg, bool features_only) {
            const Net net = check_net(W, a, X, py::none(), false);
            const auto act = make_activation(power, neg);
            return dispatch(net.f32(), [&](auto tag) -> py::object {
                using T = decltype(tag);
                Mat<T> K = without_gil(
                    [&] { return flatext::gram<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), act, features_only); });
                require_finite(K, "gram");
                return py::cast(std::move(K));
            });
        },
        py::arg("W"), py::arg("a"), py::arg("X"), py::arg("power"), py::arg("neg"), py::arg("features_only") = false);

    m.def(
        "gram_diag",
        [](py::handle W, py::handle a, py::handle X, double power, double neg) {
            const Net net = check_net(W, a, X, py::none(), false);
            const auto act = make_activation(power, neg);
            return dispatch(net.f32(), [&](auto tag) -> py::object {
                using T = decltype(tag);
                Vec<double> D =
                    without_gil([&] { return flatext::gram_diag<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), act); });
                require_finite(D, "gram_diag");
                return py::cast(std::move(D));
            });
        },
        py::arg("W"), py::arg("a"), py::arg("X"), py::arg("power"), py::arg("neg"));

    m.def(
        "gram_apply",
        [](py::handle W, py::handle a, py::handle X, py::handle v, double power, double neg, bool pattern) {
            const Net net = check_net(W, a, X, py::none(), false);
            const auto act = make_activation(power, neg);
            const Vec<double> vv = optional_vec(v, net.n, "v");
            if (vv.size() != net.n) throw py::type_error("v must be an array");
            if (pattern && !act.piecewise_linear()) throw py::value_error("pattern=True needs power = 1");
            return dispatch(net.f32(), [&](auto tag) -> py::object {
                using T = decltype(tag);
                Vec<double> Kv = without_gil([&] {
                    if (pattern) return PatternGram<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), act).apply(vv);
                    return gram_apply<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), act, 0.0, vv);
                });
                require_finite(Kv, "gram_apply");
                return py::cast(std::move(Kv));
            });
        },
        py::arg("W"), py::arg("a"), py::arg("X"), py::arg("v"), py::arg("power"), py::arg("neg"),
        py::arg("pattern") = false);

    m.def(
        "gram_solve",
        [](py::handle W, py::handle a, py::handle X, py::handle b, double power, double neg, double lambda_,
           const std::string& solver, double rtol, int cg_max_iter, py::handle x0, long long cg_rank) {
            const Net net = check_net(W, a, X, py::none(), false);
            const auto act = make_activation(power, neg);
            const auto kind = parse_solver(solver);
            check_cg(rtol, cg_max_iter, "rtol");
            if (!(lambda_ >= 0) || !std::isfinite(lambda_)) throw py::value_error("lambda_ must be finite and >= 0");
            const Vec<double> bv = optional_vec(b, net.n, "b");
            if (bv.size() != net.n) throw py::type_error("b must be an array");
            const Vec<double> xv = optional_vec(x0, net.n, "x0");
            return dispatch(net.f32(), [&](auto tag) -> py::object {
                using T = decltype(tag);
                KrylovInfo ki;
                bool cg = false;
                Index rank = 0;
                Vec<double> x = without_gil([&] {
                    GramSolver<T> s(net.Wm<T>(), net.av<T>(), net.Xm<T>(), act, kind, Index(cg_rank));
                    cg = !s.cholesky();
                    rank = s.rank();
                    if (!s.set_lambda(lambda_))
                        throw std::domain_error("gram_solve: K + lambda I is not positive definite");
                    return s.solve(bv, rtol, cg_max_iter, xv, ki);
                });
                py::dict d;
                d["x"] = std::move(x);
                d["iterations"] = ki.iterations;
                d["rel_residual"] = ki.rel_residual;
                d["converged"] = ki.converged;
                d["solver"] = cg ? "cg" : "cholesky";
                d["rank"] = rank;
                return d;
            });
        },
        py::arg("W"), py::arg("a"), py::arg("X"), py::arg("b"), py::arg("power"), py::arg("neg"),
        py::arg("lambda_") = 0.0, py::arg("solver") = "auto", py::arg("rtol") = 1e-10,
        py::arg("cg_max_iter") = InterpolationOptions{}.cg_max_iter, py::arg("x0") = py::none(),
        py::arg("cg_rank") = -1);

    m.def(
        "gram_columns",
        [](py::handle W, py::handle a, py::handle X, std::vector<long long> idx, double power, double neg) {
            const Net net = check_net(W, a, X, py::none(), false);
            const auto act = make_activation(power, neg);
            std::vector<Index> id;
            for (long long j : idx) {
                if (j < 0 || j >= (long long)net.n)
                    throw py::index_error("gram_columns: index " + std::to_string(j) + " out of range [0, " +
                                          std::to_string(net.n) + ")");
                id.push_back(Index(j));
            }
            return dispatch(net.f32(), [&](auto tag) -> py::object {
                using T = decltype(tag);
                Eigen::MatrixXd C = without_gil(
                    [&] { return flatext::gram_columns<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), act, id); });
                return py::cast(std::move(C));
            });
        },
        py::arg("W"), py::arg("a"), py::arg("X"), py::arg("idx"), py::arg("power"), py::arg("neg"));

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
