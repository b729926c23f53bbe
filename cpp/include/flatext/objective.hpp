// flatext/objective.hpp: the combined objective L + lambda * K in one walk over
// X, for training loops and third-party solvers (docs/design.md section 3).
//
//   none          K = 0: L alone (the loss_grad kernel).
//   gauss_newton  K = G = (1/n) sum_j ||grad_theta f(x_j)||^2 >= 0, the Gauss-Newton
//                 part of the trace: bounded below by 0 everywhere, so L + lambda G
//                 (lambda >= 0) is bounded below. It is C^1 in theta for p >= 2 away
//                 from measure-zero sets; for p = 1 the term a_i^2 sigma'^2 s_j jumps
//                 when a sample crosses a neuron's hyperplane (G is piecewise smooth).
//   trace         K = T = Tr hess L = G + R. For p = 1 (sigma'' = 0 a.e.) T = G. For
//                 p > 1, R = (1/n) sum_j r_j Tr hess f(x_j) can be negative away from
//                 interpolation, and T is unbounded below along the rescaling orbit
//                 (a neuron with B_i < 0 sends T_i(t) -> -inf as t -> 0 at fixed loss):
//                 L + lambda T then has no minimum (docs/design.md section 4). For p = 2,
//                 sigma'' = 2 * 1{z > 0} makes T jump when a sample crosses a hyperplane
//                 (line searches see discontinuities); for p = 1 the a^2 sigma'^2 term jumps.
//
// The loss gradient's coefficients r_j a_i sigma' ride in the same per-tile
// coefficient matrix as K's, so one evaluation costs about one trace gradient
// (two GEMMs per tile). The gradient is written into caller buffers.
#pragma once

#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels.hpp"

namespace flatext {

/// The curvature term K of objective().
enum class Regularizer { none, gauss_newton, trace };

/// "none", "gauss_newton", "trace".
inline const char* regularizer_name(Regularizer r) {
    switch (r) {
        case Regularizer::none:
            return "none";
        case Regularizer::gauss_newton:
            return "gauss_newton";
        case Regularizer::trace:
            return "trace";
    }
    return "?";
}

/// The value of objective() and its parts: value = loss + lambda * regularizer.
template <class T>
struct ObjectiveValue {
    T value{};        ///< L + lambda K
    T loss{};         ///< L = (1/(2n)) sum_j r_j^2
    T regularizer{};  ///< K (0 for Regularizer::none)
};

/// L + lambda K and its gradient with respect to (W, a), written into gW (m, d) and
/// ga (m), in one walk over X (see the top of this file for K and when it is bounded
/// or smooth). lambda must be finite (any sign; a negative lambda with K = T or G
/// rewards sharpness).
template <class T>
ObjectiveValue<T> objective(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& y,
                            const Activation& act, Regularizer which, double lambda, Eigen::Ref<Mat<T>> gW,
                            Eigen::Ref<Vec<T>> ga) {
    if (!std::isfinite(lambda))
        throw std::invalid_argument("lambda (lam) must be finite; got " + std::to_string(lambda));
    ObjectiveValue<T> out;
    if (which == Regularizer::none) {
        out.loss = loss_grad<T>(W, a, X, y, act, gW, ga);
        out.value = out.loss;
        return out;
    }
    detail::check_grad_call(W, a, X, y, act, gW, ga);
    const Index n = X.rows(), m = W.rows();
    const auto sums = which == Regularizer::trace
                          ? detail::curvature_pass<true, detail::Curvature::trace, T>(W, a, X, y, act, lambda)
                          : detail::curvature_pass<true, detail::Curvature::gauss_newton, T>(W, a, X, y, act, lambda);
    const auto tot = sums.reduce();
    for (Index i = 0; i < m; ++i) ga[i] = T(tot[std::size_t(i)] / double(n));
    sums.reduce_grad(1.0 / double(n), gW);
    const double L = tot[std::size_t(m + 1)] / (2.0 * double(n)), K = tot[std::size_t(m)] / double(n);
    out.loss = T(L);
    out.regularizer = T(K);
    out.value = T(L + lambda * K);
    return out;
}

}  // namespace flatext
