// flatext/activation.hpp: the positively homogeneous activation family.
//
//   sigma(z)    = z+^p + c z-^p                         (z+ = max(z,0), z- = max(-z,0))
//   sigma'(z)   = p z+^(p-1) - c p z-^(p-1)
//   sigma''(z)  = p(p-1) (z+^(p-2) + c z-^(p-2))
//   sigma'''(z) = p(p-1)(p-2) (z+^(p-3) - c z-^(p-3))
//
// p >= 1 (real), c = `neg`. At z = 0 every value here is 0 (derivatives of
// order >= p are defined as 0 there). For non-integer p, sigma'' (p < 2) and
// sigma''' (p < 3) are unbounded as z -> 0; each value is still computed to
// working accuracy wherever it is representable (overflow gives inf, which
// the bindings report as an error). ReLU: (1, 0); ReLU^k: (k, 0); leaky ReLU
// of slope alpha: (1, -alpha); |z|: (1, 1).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace flatext {

/// Parameters of sigma(z) = max(z,0)^p + c max(-z,0)^p, checked by the constructor
/// (std::invalid_argument naming power or neg). The default is ReLU.
struct Activation {
    double power = 1.0;  ///< p >= 1
    double neg = 0.0;    ///< c, the negative-side coefficient

    Activation() = default;
    Activation(double p, double c) : power(p), neg(c) { validate(); }

    /// The one check of (power, neg): every kernel and binding relies on it.
    void validate() const {
        check_power(power);
        if (!std::isfinite(neg)) throw std::invalid_argument("neg must be finite; got " + std::to_string(neg));
    }
    /// p must be finite and >= 1 (also the check of rescale's power).
    static void check_power(double p) {
        if (!std::isfinite(p) || p < 1.0)
            throw std::invalid_argument(
                "power must be a finite number >= 1 (sigma(z) = max(z,0)^p + neg*max(-z,0)^p); got " +
                std::to_string(p));
    }
    /// sigma'' vanishes identically (p = 1): the residual part of the trace is 0.
    bool piecewise_linear() const { return power == 1.0; }
};

/// sigma and its derivatives at one point: v0 = sigma, v1 = sigma', v2 = sigma'', v3 = sigma'''.
template <class T>
struct Derivs {
    T v0, v1, v2, v3;
};

/// Evaluates sigma and its first K derivatives at z. P selects a fast path
/// for integer powers 1, 2, 3; P = 0 is the general real-p path (one pow).
template <class T, int P>
struct Sigma {
    T p, c;
    explicit Sigma(const Activation& a) : p(T(a.power)), c(T(a.neg)) {}

    /// sigma, sigma', ... (up to order K; higher entries 0) at z, returned by
    /// value so the loops that call it keep it in registers and vectorize.
    template <int K>
    inline Derivs<T> eval(T z) const {
        Derivs<T> s{};
        eval_into<K>(z, s);
        return s;
    }

    template <int K>
    inline void eval_into(T z, Derivs<T>& s) const {
        // Branch-free (selects, max, compares as 0/1) so that `omp simd` loops vectorize.
        const T zp = std::max(z, T(0)), zm = std::max(-z, T(0));
        const T ip = T(z > T(0)), im = T(z < T(0));  // indicators
        if constexpr (P == 1) {
            s.v0 = zp + c * zm;
            if constexpr (K >= 1) s.v1 = ip - c * im;
            if constexpr (K >= 2) s.v2 = T(0);
            if constexpr (K >= 3) s.v3 = T(0);
        } else if constexpr (P == 2) {
            s.v0 = zp * zp + c * zm * zm;
            if constexpr (K >= 1) s.v1 = T(2) * (zp - c * zm);
            if constexpr (K >= 2) s.v2 = T(2) * (ip + c * im);
            if constexpr (K >= 3) s.v3 = T(0);
        } else if constexpr (P == 3) {
            s.v0 = zp * zp * zp + c * zm * zm * zm;
            if constexpr (K >= 1) s.v1 = T(3) * (zp * zp - c * zm * zm);
            if constexpr (K >= 2) s.v2 = T(6) * (zp + c * zm);
            if constexpr (K >= 3) s.v3 = T(6) * (ip - c * im);
        } else {
            // z = 0 and the negative side of c = 0 are exactly 0 (u^(p-1) may
            // overflow there: 0 * inf must not make a NaN); a NaN z (inf - inf
            // in the GEMM) falls through and propagates to the checked result.
            const bool pos = z > T(0), negz = z < T(0);
            if (z == T(0) || (negz && c == T(0))) {
                s = Derivs<T>{};
                return;
            }
            const T u = pos ? z : -z;
            const T k = pos ? T(1) : c;
            const T sg = pos ? T(1) : T(-1);
            const T up1 = std::pow(u, p - T(1));  // u^(p-1)
            s.v0 = k * up1 * u;
            if constexpr (K >= 1) s.v1 = sg * k * p * up1;
            if constexpr (K >= 2) {
                // u^(p-k) by division unless the power above underflowed (tiny u,
                // p > k): then 0/u would give 0 for a value that may be huge.
                constexpr T tiny = std::numeric_limits<T>::min();
                const T up2 = up1 >= tiny ? up1 / u : std::pow(u, p - T(2));
                s.v2 = k * p * (p - T(1)) * up2;
                if constexpr (K >= 3) {
                    const T up3 = up2 >= tiny ? up2 / u : std::pow(u, p - T(3));
                    s.v3 = sg * k * p * (p - T(1)) * (p - T(2)) * up3;
                }
            }
        }
    }
};

/// Calls f(Sigma<T, P>{act}) with the fastest evaluator for act.power.
template <class T, class F>
decltype(auto) dispatch_sigma(const Activation& act, F&& f) {
    if (act.power == 1.0) return f(Sigma<T, 1>(act));
    if (act.power == 2.0) return f(Sigma<T, 2>(act));
    if (act.power == 3.0) return f(Sigma<T, 3>(act));
    return f(Sigma<T, 0>(act));
}

}  // namespace flatext
