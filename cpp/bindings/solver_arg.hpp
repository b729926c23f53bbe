// The linear-solver arguments shared by the Gram, interpolation and search
// bindings: the solver name and the conjugate-gradient tolerances.
#pragma once

#include <string>

#include <flatext/interpolation.hpp>

#include "checks.hpp"

namespace flatext_py {

inline flatext::SolverKind parse_solver(const std::string& s) {
    if (s == "auto") return flatext::SolverKind::Auto;
    if (s == "cholesky") return flatext::SolverKind::Cholesky;
    if (s == "cg") return flatext::SolverKind::CG;
    throw py::value_error("solver must be 'auto', 'cholesky' or 'cg'; got '" + s + "'");
}

inline void check_cg(double rtol, int max_iter, const char* rname) {
    check_positive(rtol, rname);
    if (max_iter < 1) throw py::value_error("cg_max_iter must be >= 1; got " + std::to_string(max_iter));
}

}  // namespace flatext_py
