// Bindings of the Jacobian products and the Gram matrix K = J J^T
// (flatext/interpolation.hpp, pattern_gram.hpp, preconditioner.hpp): jvp, vjp,
// K, its diagonal, columns and products, and the solve of (K + lambda I) x = b.
// Check, dispatch on dtype, release the GIL, convert results. No arithmetic here.
#include <pybind11/stl.h>

#include "checks.hpp"
#include "solver_arg.hpp"

#include <string>
#include <vector>

#include <flatext/interpolation.hpp>
#include <flatext/pattern_gram.hpp>
#include <flatext/preconditioner.hpp>

namespace flatext_py {

void bind_gram(py::module_& m) {
    using namespace flatext;

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
}

}  // namespace flatext_py
