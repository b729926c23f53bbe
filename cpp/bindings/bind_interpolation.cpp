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

}  // namespace

void bind_interpolation(py::module_& m) {
    using namespace flatext;

    m.def("jvp", [](py::handle W, py::handle a, py::handle X, py::handle VW, py::handle va, double power, double neg) {
        const Net net = check_net(W, a, X, py::none(), false);
        const auto act = make_activation(power, neg);
        const Direction v = check_direction(net, VW, va);
        return dispatch(net.f32(), [&](auto tag) -> py::object {
            using T = decltype(tag);
            const auto VWm = v.Wm<T>();
            const auto vam = v.av<T>();
            Vec<T> out = without_gil([&] { return flatext::jvp<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), VWm, vam, act); });
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
            throw py::value_error("u must have shape (n,) = (" + std::to_string(net.n) + ",); got " + shape_str(ua.arr));
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

    m.def("gram", [](py::handle W, py::handle a, py::handle X, double power, double neg) {
        const Net net = check_net(W, a, X, py::none(), false);
        const auto act = make_activation(power, neg);
        return dispatch(net.f32(), [&](auto tag) -> py::object {
            using T = decltype(tag);
            Mat<T> K = without_gil([&] { return flatext::gram<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), act); });
            require_finite(K, "gram");
            return py::cast(std::move(K));
        });
    });

    m.def("find_interpolator", [](py::handle W, py::handle a, py::handle X, py::handle y, double power, double neg,
                                  double tol, int max_iter, double lambda_init) {
        const Net net = check_net(W, a, X, y, true);
        const auto act = make_activation(power, neg);
        check_params(net);
        check_positive(tol, "tol");
        check_positive(lambda_init, "lambda_init");
        if (max_iter < 0) throw py::value_error("max_iter must be >= 0");
        InterpolationOptions o;
        o.tol = tol;
        o.max_iter = max_iter;
        o.lambda_init = lambda_init;
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
            d["converged"] = r.converged;
            d["history"] = r.history;
            return d;
        });
    });

    m.def("search_step", [](py::handle W, py::handle a, py::handle X, py::handle y, double power, double neg,
                            double tol, double lambda_rel, double gtol, double eta, bool balance, int max_backtrack,
                            int retract_iter, bool a_correction) {
        const Net net = check_net(W, a, X, y, true);
        const auto act = make_activation(power, neg);
        check_positive(tol, "tol");
        check_positive(lambda_rel, "lambda_rel");
        if (!(gtol >= 0)) throw py::value_error("gtol must be >= 0");
        SearchOptions o;
        o.tol = tol;
        o.lambda_rel = lambda_rel;
        o.gtol = gtol;
        o.eta = eta;
        o.balance = balance;
        o.max_backtrack = max_backtrack;
        o.retract_iter = retract_iter;
        o.a_correction = a_correction;
        return dispatch(net.f32(), [&](auto tag) -> py::object {
            using T = decltype(tag);
            auto s = without_gil(
                [&] { return flatext::search_step<T>(net.Wm<T>(), net.av<T>(), net.Xm<T>(), net.yv<T>(), act, o); });
            py::dict d;
            d["W"] = std::move(s.W);
            d["a"] = std::move(s.a);
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
            d["accepted"] = s.accepted;
            d["small_gradient"] = s.small_gradient;
            return d;
        });
    });

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

    m.def("memorizing_interpolator", [](py::handle X, py::handle y, double power, double neg, double kappa,
                                        long long width) {
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
