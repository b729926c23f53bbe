// flatext/symmetry.hpp: the rescaling symmetry and orbit-minimal flatness
// (docs/design.md section 4).
//
// For t_i > 0, (w_i, a_i) -> (t_i w_i, t_i^(-p) a_i) keeps f, L and the
// population loss, and moves each neuron's trace part along
//
//   T_i(t) = t^(2p) A_i + t^(-2) B_i,
//
// with A_i, B_i from hessian_trace_parts (per_neuron_a, per_neuron_w). If
// A_i > 0 and B_i > 0 the minimum is at t^(2p+2) = B_i / (p A_i) with value
// (p+1) A_i^(1/(p+1)) (B_i/p)^(p/(p+1)). If A_i = 0 or B_i = 0 the infimum is 0
// (the neuron can be squeezed to nothing). If B_i < 0 (only off the
// interpolation set) T_i -> -inf as t -> 0 and no minimum exists.
#pragma once

#include <cmath>
#include <string>

#include "kernels.hpp"

namespace flatext {

/// (W', a') = (diag(t) W, t^(-p) a): the same function, another point of its orbit.
template <class T>
std::pair<Mat<T>, Vec<T>> rescale(const MatRef<T>& W, const VecRef<T>& a, const VecRef<T>& t, double power) {
    Activation::check_power(power);
    if (W.rows() != a.size() || t.size() != a.size()) throw std::invalid_argument("t must have length m = W.shape[0]");
    for (Index i = 0; i < t.size(); ++i)
        if (!(t[i] > T(0)) || !std::isfinite(double(t[i])))
            throw std::invalid_argument("t must be finite and > 0; t[" + std::to_string(i) + "] is " +
                                        std::to_string(double(t[i])));
    Mat<T> W2 = W;
    Vec<T> a2 = a;
    for (Index i = 0; i < t.size(); ++i) {
        W2.row(i) *= t[i];
        // a t^-p as (a h) h with h = t^(-p/2): t^-p alone can underflow to a
        // subnormal (t = 1e104, p = 3) or overflow while a t^-p is representable
        const double h = std::pow(double(t[i]), -0.5 * power);
        a2[i] = T(double(a[i]) * h * h);
    }
    return {W2, a2};
}

/// rescale with one factor t for every neuron (the same bits as a vector of t's).
template <class T>
std::pair<Mat<T>, Vec<T>> rescale(const MatRef<T>& W, const VecRef<T>& a, double t, double power) {
    return rescale<T>(W, a, Vec<T>::Constant(a.size(), T(t)), power);
}

/// Per-neuron orbit minima of T_i(t) = t^(2p) A_i + t^(-2) B_i and the
/// minimizing t_i (1 where the infimum is not attained and nothing moves).
struct OrbitMinimum {
    Vec<double> value;          ///< min_t T_i(t)
    Vec<double> t;              ///< argmin (t_i = 1 where not attained)
    Index first_negative = -1;  ///< first neuron with B_i < 0 (no minimum), or -1
};

inline OrbitMinimum orbit_minimum(const Vec<double>& A, const Vec<double>& B, double p) {
    OrbitMinimum o;
    const Index m = A.size();
    o.value.setZero(m);
    o.t.setOnes(m);
    for (Index i = 0; i < m; ++i) {
        if (B[i] < 0.0) {
            if (o.first_negative < 0) o.first_negative = i;
            continue;
        }
        if (A[i] > 0.0 && B[i] > 0.0) {
            // work in logs: A and B can differ by hundreds of orders of magnitude
            const double lt = (std::log(B[i]) - std::log(p * A[i])) / (2.0 * p + 2.0);
            o.t[i] = std::exp(lt);
            o.value[i] = (p + 1.0) * std::exp(std::log(A[i]) / (p + 1.0) + (p / (p + 1.0)) * std::log(B[i] / p));
        }
    }
    return o;
}

namespace detail {
/// Overflowed parts (inf, or NaN from inf - inf) must not pass as "not attained" (value 0).
inline void require_finite_parts(const Vec<double>& A, const Vec<double>& B, const OrbitMinimum& o) {
    if (!A.allFinite() || !B.allFinite() || !o.value.allFinite())
        throw std::domain_error(
            "the result is not finite (overflow in the Hessian trace parts A_i, B_i); rescale the inputs or use "
            "float64");
}
[[noreturn]] inline void no_orbit_minimum(Index i) {
    throw std::domain_error("no orbit minimum: neuron " + std::to_string(i) +
                            " has a negative w-block trace B_i < 0 (possible only away from interpolation, "
                            "where r_j sigma'' terms dominate); T_i(t) -> -inf as t -> 0");
}
}  // namespace detail

/// What to do with a neuron whose w-block trace B_i < 0 (only away from the
/// interpolation set: T_i(t) -> -inf as t -> 0, no minimum exists).
enum class NegativeB {
    raise,  ///< std::domain_error naming the neuron (the default)
    clip,   ///< treat B_i as 0 (infimum 0, the neuron stays put): a diagnostic for points on M up to round-off
};

/// Per-neuron orbit minima of (W, a) with their minimizing t_i (see orbit_minimum), in double.
template <class T>
OrbitMinimum orbit_minima(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& y,
                          const Activation& act, NegativeB on_negative = NegativeB::raise) {
    const auto parts = hessian_trace_parts<T>(W, a, X, y, act);
    const Vec<double> A = parts.per_neuron_a.template cast<double>();
    Vec<double> B = parts.per_neuron_w.template cast<double>();
    if (on_negative == NegativeB::clip) B = B.cwiseMax(0.0);  // NaN stays NaN: caught below
    OrbitMinimum o = orbit_minimum(A, B, act.power);
    detail::require_finite_parts(A, B, o);
    if (o.first_negative >= 0) detail::no_orbit_minimum(o.first_negative);
    return o;
}

/// min over all per-neuron rescalings of T: sum_i min_t T_i(t). Throws
/// std::domain_error if some B_i < 0 (no minimum exists), unless on_negative is
/// NegativeB::clip (such neurons then count 0).
template <class T>
T orbit_min_trace(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& y, const Activation& act,
                  NegativeB on_negative = NegativeB::raise) {
    return T(orbit_minima<T>(W, a, X, y, act, on_negative).value.sum());
}

/// The point of the rescaling orbit of (W, a) with the least trace: every
/// neuron moved to its minimizing t_i. Keeps every prediction. Neurons with
/// a_i = 0 get w_i = 0 (the orbit's limit, same function); others whose
/// infimum is not attained stay put. Throws std::domain_error if some B_i < 0,
/// unless on_negative is NegativeB::clip (such neurons stay put).
template <class T>
std::pair<Mat<T>, Vec<T>> balance(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& y,
                                  const Activation& act, NegativeB on_negative = NegativeB::raise) {
    const auto o = orbit_minima<T>(W, a, X, y, act, on_negative);
    auto out = rescale<T>(W, a, o.t.template cast<T>(), act.power);
    for (Index i = 0; i < a.size(); ++i)
        if (a[i] == T(0)) out.first.row(i).setZero();
    return out;
}

}  // namespace flatext
