// Bindings of the exact Gaussian pair moments (flatext/population.hpp):
// check types and shapes, dispatch on dtype, release the GIL, convert results.
// No arithmetic here; `nodes` is checked by the core (population::arc_rule).
#include "checks.hpp"

#include <flatext/population.hpp>

#include <utility>

namespace flatext_py {

namespace {

/// Units (rows of U with per-row power and neg), checked together.
struct UnitsArg {
    Arg U, p, c;
    Index k = 0, d = 0;
    template <class T>
    flatext::population::Units<T> units() const {
        return {Eigen::Map<const flatext::Mat<T>>(U.data<T>(), k, d), Eigen::Map<const flatext::Vec<T>>(p.data<T>(), k),
                Eigen::Map<const flatext::Vec<T>>(c.data<T>(), k)};
    }
};

UnitsArg check_units(py::handle U, py::handle p, py::handle c, const char* nU, const char* np_, const char* nc) {
    UnitsArg u{to_arg(U, nU, 2), to_arg(p, np_, 1), to_arg(c, nc, 1)};
    same_dtype({&u.U, &u.p, &u.c});
    u.k = u.U.dim(0);
    u.d = u.U.dim(1);
    if (u.p.dim(0) != u.k || u.c.dim(0) != u.k)
        throw py::value_error(std::string(np_) + " and " + nc + " must have shape (k,) = (" + std::to_string(u.k) +
                              ",) to match " + nU + " of shape " + shape_str(u.U.arr) + "; got " + shape_str(u.p.arr) +
                              " and " + shape_str(u.c.arr));
    for (const Arg* a : {&u.U, &u.p, &u.c}) check_finite(*a);
    const auto bad_power = [&](auto tag) {
        using T = decltype(tag);
        const T* pp = u.p.data<T>();
        for (Index i = 0; i < u.k; ++i)
            if (!(pp[i] > T(0))) return true;
        return false;
    };
    if (u.p.f32 ? bad_power(float{}) : bad_power(double{}))
        throw py::value_error(std::string(np_) + " must be > 0 everywhere");
    return u;
}

/// The two unit sets (U, pu, cu) and (V, pv, cv) of a pair moment: same dtype and d.
std::pair<UnitsArg, UnitsArg> check_unit_pair(py::handle U, py::handle pu, py::handle cu, py::handle V, py::handle pv,
                                              py::handle cv) {
    UnitsArg a = check_units(U, pu, cu, "U", "pu", "cu");
    UnitsArg b = check_units(V, pv, cv, "V", "pv", "cv");
    same_dtype({&a.U, &b.U});
    if (a.d != b.d)
        throw py::value_error("U and V must have the same number of columns d; got " + shape_str(a.U.arr) + " and " +
                              shape_str(b.U.arr));
    return {std::move(a), std::move(b)};
}

Arg check_coef(py::handle a, const char* name, const UnitsArg& u) {
    Arg c = to_arg(a, name, 1);
    same_dtype({&u.U, &c});
    if (c.dim(0) != u.k)
        throw py::value_error(std::string(name) + " must have shape (" + std::to_string(u.k) + ",); got " +
                              shape_str(c.arr));
    check_finite(c);
    return c;
}

}  // namespace

void bind_population(py::module_& m) {
    using namespace flatext;
    namespace pop = flatext::population;

    m.def(
        "gaussian_pair_moments",
        [](py::handle U, py::handle pu, py::handle cu, py::handle V, py::handle pv, py::handle cv, int nodes,
           bool closed_forms) {
            const auto units = check_unit_pair(U, pu, cu, V, pv, cv);  // named: lambdas below capture them
            const UnitsArg &a = units.first, &b = units.second;
            return dispatch(a.U.f32, [&](auto tag) -> py::object {
                using T = decltype(tag);
                Mat<double> M;
                {
                    py::gil_scoped_release release;
                    M = pop::pair_moments<T>(a.units<T>(), b.units<T>(), nodes, closed_forms);
                }
                require_finite(M, "gaussian_pair_moments");
                return py::cast(std::move(M));
            });
        },
        py::arg("U"), py::arg("pu"), py::arg("cu"), py::arg("V"), py::arg("pv"), py::arg("cv"),
        py::arg("nodes") = pop::kDefaultArcNodes, py::arg("closed_forms") = true,
        "Matrix M_ij = E[s_i(u_i.x) s_j(v_j.x)], x ~ N(0, I), s(z) = z+^p + c z-^p (float64).");

    m.def(
        "gaussian_pair_moment_sum",
        [](py::handle U, py::handle pu, py::handle cu, py::handle alpha, py::handle V, py::handle pv, py::handle cv,
           py::handle beta, int nodes, bool closed_forms) {
            const auto units = check_unit_pair(U, pu, cu, V, pv, cv);  // named: lambdas below capture them
            const UnitsArg &a = units.first, &b = units.second;
            const Arg al = check_coef(alpha, "alpha", a), be = check_coef(beta, "beta", b);
            return dispatch(a.U.f32, [&](auto tag) -> double {
                using T = decltype(tag);
                Eigen::Map<const Vec<T>> am(al.data<T>(), a.k), bm(be.data<T>(), b.k);
                double v;
                {
                    py::gil_scoped_release release;
                    v = pop::pair_moment_sum<T>(a.units<T>(), am, b.units<T>(), bm, nodes, closed_forms);
                }
                if (!std::isfinite(v)) throw py::value_error("gaussian_pair_moment_sum: the result is not finite");
                return v;
            });
        },
        py::arg("U"), py::arg("pu"), py::arg("cu"), py::arg("alpha"), py::arg("V"), py::arg("pv"), py::arg("cv"),
        py::arg("beta"), py::arg("nodes") = pop::kDefaultArcNodes, py::arg("closed_forms") = true,
        "sum_ij alpha_i beta_j E[s_i(u_i.x) s_j(v_j.x)], x ~ N(0, I) (float).");

    m.def(
        "gaussian_quadratic_form",
        [](py::handle U, py::handle pu, py::handle cu, py::handle alpha, int nodes, bool closed_forms) {
            const UnitsArg a = check_units(U, pu, cu, "U", "pu", "cu");
            const Arg al = check_coef(alpha, "alpha", a);
            return dispatch(a.U.f32, [&](auto tag) -> double {
                using T = decltype(tag);
                Eigen::Map<const Vec<T>> am(al.data<T>(), a.k);
                double v;
                {
                    py::gil_scoped_release release;
                    v = pop::quadratic_form<T>(a.units<T>(), am, nodes, closed_forms);
                }
                if (!std::isfinite(v)) throw py::value_error("gaussian_quadratic_form: the result is not finite");
                return v;
            });
        },
        py::arg("U"), py::arg("pu"), py::arg("cu"), py::arg("alpha"), py::arg("nodes") = pop::kDefaultArcNodes,
        py::arg("closed_forms") = true,
        "E[(sum_i alpha_i s_i(u_i.x))^2], x ~ N(0, I), using the symmetry of the pair moments (float).");
}

}  // namespace flatext_py
