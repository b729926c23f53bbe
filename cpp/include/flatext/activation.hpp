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

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace flatext {

/// Parameters of sigma(z) = max(z,0)^p + c max(-z,0)^p.
struct Activation {
    double power = 1.0;  ///< p >= 1
    double neg = 0.0;    ///< c, the negative-side coefficient

    Activation() = default;
    Activation(double p, double c) : power(p), neg(c) { validate(); }

    void validate() const {
        if (!std::isfinite(power) || power < 1.0)
            throw std::invalid_argument("power must be a finite number >= 1; got " + std::to_string(power));
        if (!std::isfinite(neg))
            throw std::invalid_argument("neg must be finite; got " + std::to_string(neg));
    }
    /// sigma'' vanishes identically (p = 1): the residual part of the trace is 0.
    bool piecewise_linear() const { return power == 1.0; }
};

/// Evaluates sigma and its first K derivatives at z. P selects a fast path
/// for integer powers 1, 2, 3; P = 0 is the general real-p path (one pow).
template <class T, int P>
struct Sigma {
    T p, c;
    explicit Sigma(const Activation& a) : p(T(a.power)), c(T(a.neg)) {}

    /// s[0..K] <- sigma, sigma', ... at z.
    template <int K>
    inline void eval(T z, T* s) const {
        const bool pos = z > T(0), negz = z < T(0);
        if constexpr (P == 1) {
            s[0] = pos ? z : -c * z;
            if constexpr (K >= 1) s[1] = pos ? T(1) : (negz ? -c : T(0));
            if constexpr (K >= 2) s[2] = T(0);
            if constexpr (K >= 3) s[3] = T(0);
        } else if constexpr (P == 2) {
            const T k = pos ? T(1) : c;
            s[0] = k * z * z;
            if constexpr (K >= 1) s[1] = T(2) * k * z;
            if constexpr (K >= 2) s[2] = (pos || negz) ? T(2) * k : T(0);
            if constexpr (K >= 3) s[3] = T(0);
        } else if constexpr (P == 3) {
            const T k = pos ? T(1) : -c;  // sigma = k z^3 on each side
            s[0] = k * z * z * z;
            if constexpr (K >= 1) s[1] = T(3) * k * z * z;
            if constexpr (K >= 2) s[2] = T(6) * k * z;
            if constexpr (K >= 3) s[3] = (pos || negz) ? T(6) * k : T(0);
        } else {
            // z = 0 and the negative side of c = 0 are exactly 0 (u^(p-1) may
            // overflow there: 0 * inf must not make a NaN); a NaN z (inf - inf
            // in the GEMM) falls through and propagates to the checked result.
            if (z == T(0) || (negz && c == T(0))) {
                for (int i = 0; i <= K; ++i) s[i] = T(0);
                return;
            }
            const T u = pos ? z : -z;
            const T k = pos ? T(1) : c;
            const T sg = pos ? T(1) : T(-1);
            const T up1 = std::pow(u, p - T(1));  // u^(p-1)
            s[0] = k * up1 * u;
            if constexpr (K >= 1) s[1] = sg * k * p * up1;
            if constexpr (K >= 2) {
                // u^(p-k) by division unless the power above underflowed (tiny u,
                // p > k): then 0/u would give 0 for a value that may be huge.
                constexpr T tiny = std::numeric_limits<T>::min();
                const T up2 = up1 >= tiny ? up1 / u : std::pow(u, p - T(2));
                s[2] = k * p * (p - T(1)) * up2;
                if constexpr (K >= 3) {
                    const T up3 = up2 >= tiny ? up2 / u : std::pow(u, p - T(3));
                    s[3] = sg * k * p * (p - T(1)) * (p - T(2)) * up3;
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
