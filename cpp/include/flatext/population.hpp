// flatext/population.hpp: exact Gaussian second moments of homogeneous units.
//
// A homogeneous unit is s(z) = z+^p + c z-^p (p > 0, c real), evaluated at
// u . x with x ~ N(0, I_d). For two units (u, p, c1), (v, q, c2) the moment
//
//     M = E[ s1(u . x) s2(v . x) ]
//
// depends only on |u|, |v| and the angle phi in [0, pi] between u and v. In
// polar coordinates (R, theta) of the plane of (u, v), with R ~ chi(2):
//
//     M = |u|^p |v|^q E[R^(p+q)] (1/2pi) int_0^2pi s1(cos th) s2(cos(th - phi)) dth,
//     E[R^k] = 2^(k/2) Gamma(k/2 + 1).
//
// The four sign regions of (cos th, cos(th - phi)) reduce to one arc integral
//
//     I_{p,q}(phi) = int_{cos th > 0, cos(th - phi) > 0} cos^p th cos^q(th - phi) dth
//                  = L int_0^1 sin(L (1 - psi(s)))^p sin(L psi(s))^q psi'(s) ds,  L = pi - phi,
//
// (the region (-,-) is (+,+) turned by pi; (+,-) and (-,+) are (+,+) for -v,
// at angle pi - phi):
//
//     (1/2pi) int ... = [ (1 + c1 c2) I_{p,q}(phi) + (c1 + c2) I_{p,q}(pi - phi) ] / (2 pi).
//
// The integrand is smooth inside the arc; at its ends it behaves like t^p or
// t^q (not smooth for non-integer powers). The Sidi map psi(s) = s - sin(2 pi s)/(2 pi)
// (psi' = 1 - cos(2 pi s) ~ s^2 at the ends) makes it vanish to high order
// there, and Gauss-Legendre in s then converges fast: 48 nodes give ~1e-15
// absolute error for p, q in [1, 3] (checked against the arc-cosine kernels and
// against 30-digit quadrature). For p = q = 1 and p = q = 2 the arc integral
// has a closed form (Cho and Saul's arc-cosine kernels), used by default. Legendre nodes come from Newton's method on
// the three-term recurrence and are cached per node count.
//
// Sums over all pairs of two sets of units (m^2 pairs, O(d) each for the angle
// plus O(nodes) for the quadrature) are parallel over rows with OpenMP; row
// sums are reduced in a fixed order, so results do not depend on the thread count.
#pragma once

#include "config.hpp"

#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace flatext {
namespace population {

inline constexpr int kDefaultArcNodes = 48;
inline constexpr double kPi = 3.14159265358979323846264338327950288;

/// Gauss-Legendre nodes and weights on [0, 1], mapped by the Sidi transform:
/// psi[k] = psi(s_k) and w[k] = omega_k psi'(s_k). Symmetric: psi[n-1-k] = 1 - psi[k].
struct ArcRule {
    int n = 0;
    std::vector<double> psi, w;
};

namespace detail {

inline ArcRule make_arc_rule(int n) {
    ArcRule r;
    r.n = n;
    r.psi.assign(n, 0.0);
    r.w.assign(n, 0.0);
    std::vector<double> x(n), wt(n);
    // Newton on P_n over (-1, 1); roots x_i = cos(...) with Tricomi's start.
    const int half = (n + 1) / 2;
    for (int i = 0; i < half; ++i) {
        double z = std::cos(kPi * (i + 0.75) / (n + 0.5));
        double dp = 0.0;
        for (int it = 0; it < 100; ++it) {
            double p0 = 1.0, p1 = z;  // P_0, P_1
            for (int k = 2; k <= n; ++k) {
                const double p2 = ((2.0 * k - 1.0) * z * p1 - (k - 1.0) * p0) / k;
                p0 = p1;
                p1 = p2;
            }
            dp = n * (z * p1 - p0) / (z * z - 1.0);  // P_n'(z)
            const double dz = p1 / dp;
            z -= dz;
            if (std::abs(dz) < 1e-16) {
                // one more evaluation of the derivative at the converged root
                p0 = 1.0;
                p1 = z;
                for (int k = 2; k <= n; ++k) {
                    const double p2 = ((2.0 * k - 1.0) * z * p1 - (k - 1.0) * p0) / k;
                    p0 = p1;
                    p1 = p2;
                }
                dp = n * (z * p1 - p0) / (z * z - 1.0);
                break;
            }
        }
        const double w = 2.0 / ((1.0 - z * z) * dp * dp);
        x[i] = -z;  // ascending
        x[n - 1 - i] = z;
        wt[i] = wt[n - 1 - i] = w;
    }
    if (n % 2 == 1) x[n / 2] = 0.0;
    for (int i = 0; i < n; ++i) {
        const double s = 0.5 * (x[i] + 1.0), om = 0.5 * wt[i];
        r.psi[i] = s - std::sin(2.0 * kPi * s) / (2.0 * kPi);
        r.w[i] = om * (1.0 - std::cos(2.0 * kPi * s));
    }
    for (int i = 0; i < n / 2; ++i) {  // exact mirror symmetry
        r.psi[n - 1 - i] = 1.0 - r.psi[i];
        r.w[n - 1 - i] = r.w[i];
    }
    if (n % 2 == 1) r.psi[n / 2] = 0.5;
    return r;
}

}  // namespace detail

/// The cached rule with n nodes (thread-safe).
inline const ArcRule& arc_rule(int n) {
    if (n < 2 || n > 4096) throw std::invalid_argument("nodes must be in [2, 4096]; got " + std::to_string(n));
    static std::mutex mu;
    static std::map<int, std::unique_ptr<ArcRule>> cache;
    std::lock_guard<std::mutex> lock(mu);
    auto& slot = cache[n];
    if (!slot) slot = std::make_unique<ArcRule>(detail::make_arc_rule(n));
    return *slot;
}

/// x^e for x >= 0 with a fast path for small integer e (0^0 = 1).
inline double pow_nonneg(double x, double e) {
    if (e == 1.0) return x;
    if (e == 2.0) return x * x;
    if (e == 3.0) return x * x * x;
    if (e == 4.0) {
        const double y = x * x;
        return y * y;
    }
    return std::pow(x, e);
}

/// I_{p,q}(phi) for phi in [0, pi] (see the top of this file). `buf` needs
/// 2 * rule.n doubles of scratch.
inline double arc_integral(double p, double q, double phi, const ArcRule& rule, double* buf) {
    const double L = kPi - phi;
    if (!(L > 0.0)) return 0.0;
    const int n = rule.n;
    double* A = buf;      // sin(L psi_k)^q
    double* B = buf + n;  // sin(L psi_k)^p
    for (int k = 0; k < n; ++k) {
        const double s = std::sin(L * rule.psi[k]);
        const double sa = s > 0.0 ? s : 0.0;
        A[k] = pow_nonneg(sa, q);
        B[k] = (p == q) ? A[k] : pow_nonneg(sa, p);
    }
    double acc = 0.0;
    for (int k = 0; k < n; ++k) acc += rule.w[k] * B[n - 1 - k] * A[k];
    return L * acc;
}

/// E[R^k] for R ~ chi(2): 2^(k/2) Gamma(k/2 + 1).
inline double radial_moment(double k) { return std::exp(0.5 * k * std::log(2.0) + std::lgamma(0.5 * k + 1.0)); }

/// Angle in [0, pi] between unit vectors (accurate near 0 and pi).
template <class T>
inline double unit_angle(const T* u, const T* v, Index d) {
    double dm = 0.0, dp = 0.0;
    for (Index k = 0; k < d; ++k) {
        const double x = double(u[k]), y = double(v[k]);
        dm += (x - y) * (x - y);
        dp += (x + y) * (x + y);
    }
    return 2.0 * std::atan2(std::sqrt(dm), std::sqrt(dp));
}

/// I_{p,q}(phi) in closed form for p = q = 1 and p = q = 2 (the arc-cosine
/// kernels of Cho and Saul 2009: I_{1,1} = J_1 / 2, I_{2,2} = J_2 / 8 with
/// J_1 = sin t + (pi - t) cos t, J_2 = 3 sin t cos t + (pi - t)(1 + 2 cos^2 t));
/// otherwise the quadrature.
inline double arc_integral_fast(double p, double q, double phi, const ArcRule& rule, double* buf, bool closed) {
    if (closed && p == q && (p == 1.0 || p == 2.0)) {
        const double L = kPi - phi;
        if (!(L > 0.0)) return 0.0;
        const double s = std::sin(phi), c = std::cos(phi);
        if (p == 1.0) return 0.5 * (s + L * c);
        return (3.0 * s * c + L * (1.0 + 2.0 * c * c)) / 8.0;
    }
    return arc_integral(p, q, phi, rule, buf);
}

/// E[s1(u.x) s2(v.x)] from the norms nu, nv and the angle phi (closed: use the
/// closed forms where they exist).
inline double pair_moment(double nu, double p, double c1, double nv, double q, double c2, double phi,
                          const ArcRule& rule, double* buf, bool closed = true) {
    if (nu == 0.0 || nv == 0.0) return 0.0;
    const double k_same = 1.0 + c1 * c2, k_opp = c1 + c2;
    double ang = 0.0;
    if (k_same != 0.0) ang += k_same * arc_integral_fast(p, q, phi, rule, buf, closed);
    if (k_opp != 0.0) ang += k_opp * arc_integral_fast(p, q, kPi - phi, rule, buf, closed);
    return pow_nonneg(nu, p) * pow_nonneg(nv, q) * radial_moment(p + q) * ang / (2.0 * kPi);
}

/// A set of homogeneous units: rows of U (k, d) with powers and negative-side coefficients.
template <class T>
struct Units {
    Eigen::Map<const Mat<T>> U;
    Eigen::Map<const Vec<T>> power, neg;
};

namespace detail {

template <class T>
struct Normalized {
    Mat<T> dir;  // unit rows (zero rows stay zero)
    std::vector<double> nrm;
    explicit Normalized(const Eigen::Map<const Mat<T>>& U) : dir(U.rows(), U.cols()), nrm(U.rows()) {
        for (Index i = 0; i < U.rows(); ++i) {
            double s = 0.0;
            for (Index k = 0; k < U.cols(); ++k) s += double(U(i, k)) * double(U(i, k));
            nrm[i] = std::sqrt(s);
            if (nrm[i] > 0.0)
                for (Index k = 0; k < U.cols(); ++k) dir(i, k) = T(double(U(i, k)) / nrm[i]);
            else
                dir.row(i).setZero();
        }
    }
};

template <class T>
void validate_units(const Units<T>& u, const char* name) {
    for (Index i = 0; i < u.power.size(); ++i) {
        const double p = double(u.power[i]), c = double(u.neg[i]);
        if (!std::isfinite(p) || !(p > 0.0))
            throw std::invalid_argument(std::string(name) + ": every power must be finite and > 0");
        if (!std::isfinite(c)) throw std::invalid_argument(std::string(name) + ": every neg must be finite");
    }
}

/// Calls row(i, buf) for i in [0, rows) in parallel; returns the row results in order.
template <class F>
std::vector<double> parallel_rows(Index rows, int nodes, F&& row) {
    std::vector<double> out(rows, 0.0);
    flatext::detail::ExceptionTrap trap;
#pragma omp parallel num_threads(get_num_threads())
    {
        std::vector<double> buf(2 * nodes);
#pragma omp for schedule(dynamic, 4)
        for (Index i = 0; i < rows; ++i) trap.run([&] { out[i] = row(i, buf.data()); });
    }
    trap.rethrow();
    return out;
}

}  // namespace detail

/// M_ij = E[s_i(u_i . x) s_j(v_j . x)] for all pairs: an (k1, k2) matrix.
template <class T>
Mat<double> pair_moments(const Units<T>& a, const Units<T>& b, int nodes = kDefaultArcNodes, bool closed = true) {
    detail::validate_units(a, "U");
    detail::validate_units(b, "V");
    const ArcRule& rule = arc_rule(nodes);
    const detail::Normalized<T> na(a.U), nb(b.U);
    const Index d = a.U.cols(), k2 = b.U.rows();
    Mat<double> M(a.U.rows(), k2);
    detail::parallel_rows(a.U.rows(), nodes, [&](Index i, double* buf) {
        for (Index j = 0; j < k2; ++j) {
            const double phi = unit_angle<T>(na.dir.row(i).data(), nb.dir.row(j).data(), d);
            M(i, j) = pair_moment(na.nrm[i], double(a.power[i]), double(a.neg[i]), nb.nrm[j], double(b.power[j]),
                                  double(b.neg[j]), phi, rule, buf, closed);
        }
        return 0.0;
    });
    return M;
}

/// sum_ij alpha_i beta_j E[s_i(u_i . x) s_j(v_j . x)] without forming the matrix.
template <class T>
double pair_moment_sum(const Units<T>& a, const VecRef<T>& alpha, const Units<T>& b, const VecRef<T>& beta,
                       int nodes = kDefaultArcNodes, bool closed = true) {
    detail::validate_units(a, "U");
    detail::validate_units(b, "V");
    const ArcRule& rule = arc_rule(nodes);
    const detail::Normalized<T> na(a.U), nb(b.U);
    const Index d = a.U.cols(), k2 = b.U.rows();
    const auto rows = detail::parallel_rows(a.U.rows(), nodes, [&](Index i, double* buf) {
        if (double(alpha[i]) == 0.0) return 0.0;
        double acc = 0.0;
        for (Index j = 0; j < k2; ++j) {
            if (double(beta[j]) == 0.0) continue;
            const double phi = unit_angle<T>(na.dir.row(i).data(), nb.dir.row(j).data(), d);
            acc += double(beta[j]) * pair_moment(na.nrm[i], double(a.power[i]), double(a.neg[i]), nb.nrm[j],
                                                 double(b.power[j]), double(b.neg[j]), phi, rule, buf, closed);
        }
        return double(alpha[i]) * acc;
    });
    double s = 0.0;
    for (double r : rows) s += r;
    return s;
}

/// E[(sum_i alpha_i s_i(u_i . x))^2] = sum_ij alpha_i alpha_j M_ij, using M's symmetry (half the pairs).
template <class T>
double quadratic_form(const Units<T>& a, const VecRef<T>& alpha, int nodes = kDefaultArcNodes, bool closed = true) {
    detail::validate_units(a, "U");
    const ArcRule& rule = arc_rule(nodes);
    const detail::Normalized<T> na(a.U);
    const Index d = a.U.cols(), k = a.U.rows();
    const auto rows = detail::parallel_rows(k, nodes, [&](Index i, double* buf) {
        const double ai = double(alpha[i]);
        if (ai == 0.0) return 0.0;
        const double pi_ = double(a.power[i]), ci = double(a.neg[i]);
        double off = 0.0;
        for (Index j = i + 1; j < k; ++j) {
            if (double(alpha[j]) == 0.0) continue;
            const double phi = unit_angle<T>(na.dir.row(i).data(), na.dir.row(j).data(), d);
            off += double(alpha[j]) * pair_moment(na.nrm[i], pi_, ci, na.nrm[j], double(a.power[j]), double(a.neg[j]),
                                                  phi, rule, buf, closed);
        }
        const double diag = pair_moment(na.nrm[i], pi_, ci, na.nrm[i], pi_, ci, 0.0, rule, buf, closed);
        return ai * (ai * diag + 2.0 * off);
    });
    double s = 0.0;
    for (double r : rows) s += r;
    return s;
}

}  // namespace population
}  // namespace flatext
