// flatext/search.hpp: the flattest-interpolator search, projected gradient on
// M = {theta : r(theta) = 0} (DESIGN.md section 5).
//
// One step from an interpolator theta (search_step):
//   1. g = grad T(theta)                          (hessian_trace_grad, 2 GEMMs)
//   2. g_t = g - J^T (K + lambda I)^{-1} J g      (gram, Cholesky, jvp + vjp; lambda =
//                                                  lambda_rel * trace(K)/n, default 1e-10)
//   3. trial theta' = theta - eta g_t; retract theta' to M; accept if
//      T(retracted) <= T(theta) - c1 eta ||g_t||^2 (Armijo), else eta /= 2.
//      Retraction: chord (simplified Gauss-Newton) iterations in the normal
//      space at theta, theta' <- theta' - J(theta)^T (K + lambda I)^{-1} r(theta'),
//      reusing theta's factor (3 GEMMs each, no new K); when they stall, the
//      exact minimum-norm correction of a alone (f is linear in a:
//      a <- a - S^T (S S^T)^{-1} r, one S S^T, about half a K), and only if that
//      fails (S S^T singular: m < n or dead neurons) the full damped
//      Gauss-Newton projection (find_interpolator).
//   4. optionally balance: every neuron moved to its orbit minimum (exact,
//      keeps every prediction, so theta stays on M). Negative B_i, which on M
//      are residual-level round-off (r_j a_i sigma'' terms), are clipped to 0.
// Cost per step: one K (n^2 (m + d) multiply-adds, about n (m + d) / (m d)
// GEMM-equivalents of X W^T), one n^3/3 Cholesky, about 7 GEMMs plus 4 per
// line-search trial and 3 per chord iteration.
#pragma once

#include <limits>

#include "interpolation.hpp"
#include "symmetry.hpp"

namespace flatext {

struct SearchOptions {
    double tol = 1e-10;        ///< retraction target: max|r| <= tol * max(1, max|y|)
    double lambda_rel = 1e-10; ///< projection damping / (trace(K)/n)
    double gtol = 1e-6;        ///< no step if ||g_t|| <= gtol ||g|| (converged)
    double c1 = 1e-4;          ///< Armijo constant
    int max_backtrack = 30;    ///< line-search halvings
    int retract_iter = 6;      ///< chord iterations before the fallback
    /// Fallback 1 (off by default): the exact minimum-norm correction of a alone.
    /// Cheaper than a Gauss-Newton projection, but it can land on points of
    /// higher trace; with ReLU it made the line search stall early (measured:
    /// orbit-minimal trace 5.6-6.0 instead of 4.96 on the quick reproduction).
    bool a_correction = false;
    bool balance = true;       ///< balance after each accepted step
    double eta = 0;            ///< first trial step (<= 0: automatic)
};

template <class T>
struct SearchStep {
    Mat<T> W;
    Vec<T> a;
    double trace_before = 0;   ///< T at the start point
    double trace = 0;          ///< T at the new point (after balance)
    double orbit_min = 0;      ///< orbit-minimal T at the new point
    double max_residual = 0;   ///< max |r| at the new point
    double eta = 0;            ///< accepted step size (0 if none)
    double g_norm = 0;         ///< ||grad T|| at the start point
    double gt_norm = 0;        ///< ||g_t|| at the start point
    int backtracks = 0;        ///< halvings of eta
    int retract_iters = 0;     ///< chord iterations of the accepted trial
    int gn_iters = 0;          ///< S S^T / Gram matrices built by the retraction of the accepted trial
    int gram_builds = 0;       ///< Gram matrices built in this step (all trials)
    bool accepted = false;     ///< a step was taken
    bool small_gradient = false;  ///< ||g_t|| <= gtol ||g||: no step tried
};

namespace detail {

template <class T>
double sq_norm(const Mat<T>& W, const Vec<T>& a) {
    return W.template cast<double>().squaredNorm() + a.template cast<double>().squaredNorm();
}

/// Orbit-minimal trace and the balanced point, with B_i < 0 clipped to 0.
template <class T>
double balance_clipped(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& y,
                       const Activation& act, bool move, Mat<T>& Wout, Vec<T>& aout) {
    const auto parts = hessian_trace_parts<T>(W, a, X, y, act);
    Vec<double> B = parts.per_neuron_w.template cast<double>().cwiseMax(0.0);
    const auto o = orbit_minimum(parts.per_neuron_a.template cast<double>(), B, act.power);
    if (move) {
        auto out = rescale<T>(W, a, o.t.template cast<T>(), act.power);
        for (Index i = 0; i < a.size(); ++i)
            if (a[i] == T(0)) out.first.row(i).setZero();
        Wout = std::move(out.first);
        aout = std::move(out.second);
    }
    return o.value.sum();
}

}  // namespace detail

/// Orbit-minimal trace with B_i < 0 clipped to 0 (for points on M up to round-off).
template <class T>
double orbit_min_trace_clipped(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& y,
                               const Activation& act) {
    Mat<T> W2;
    Vec<T> a2;
    return detail::balance_clipped<T>(W, a, X, y, act, false, W2, a2);
}

/// Retracts (W, a) to M: chord iterations with the factor and Jacobian of the
/// base point (Wb, ab), then the full projection if they stall. Returns false
/// if it cannot reach the target.
template <class T>
bool retract(const MatRef<T>& Wb, const VecRef<T>& ab, const MatRef<T>& X, const VecRef<T>& y,
             const Activation& act, const ShiftedSolver& solver, double target, double tol_rel, int chord_iter,
             Mat<T>& W, Vec<T>& a, int& iters, int& gn_iters, bool a_correction) {
    Vec<double> r = detail::residual<T>(W, a, X, y, act);
    double rmax = detail::max_abs(r), rn = r.norm();
    iters = 0;
    gn_iters = 0;
    while (rmax > target && iters < chord_iter && std::isfinite(rmax)) {
        ++iters;
        Mat<T> Wn = W;
        Vec<T> an = a;
        detail::step_back<T>(Wb, ab, X, solver.solve(r), act, Wn, an);
        Vec<double> r2 = detail::residual<T>(Wn, an, X, y, act);
        const double rn2 = r2.norm();
        if (!(rn2 < 0.7 * rn)) break;  // stalled or diverging: leave it to Gauss-Newton
        W = std::move(Wn);
        a = std::move(an);
        r = std::move(r2);
        rn = rn2;
        rmax = detail::max_abs(r);
    }
    if (rmax <= target) return true;
    if (!std::isfinite(rmax)) return false;
    // f is linear in a: the exact minimum-norm correction of a alone,
    // a <- a - S^T (S S^T + lambda I)^{-1} r with S = sigma(X W^T) at the current W
    // (one S S^T, about half a K); repeated (refinement) at most 3 times.
    if (a_correction) {
        const Eigen::MatrixXd SS = gram<T>(W, a, X, act, true).template cast<double>();
        ++gn_iters;
        const double mu = SS.trace() / double(X.rows());
        ShiftedSolver sol;
        if (mu > 0 && sol.factor(SS, 1e-13 * mu)) {
            for (int k = 0; k < 3 && rmax > target; ++k) {
                const Vec<T> c = sol.solve(r).template cast<T>();
                const Vec<T> an = a - vjp<T>(W, a, X, c, act).second;
                Vec<double> r2 = detail::residual<T>(W, an, X, y, act);
                if (!(r2.norm() < rn)) break;
                a = an;
                r = std::move(r2);
                rn = r.norm();
                rmax = detail::max_abs(r);
            }
        }
        if (rmax <= target) return true;
    }
    try {
        InterpolationOptions o;
        o.tol = tol_rel;
        o.max_iter = 20;
        o.lambda_init = 1e-9;  // close to M: (nearly) undamped steps converge fast
        auto p = find_interpolator<T>(W, a, X, y, act, o);
        gn_iters += p.gram_builds;
        if (!p.converged) return false;
        W = std::move(p.W);
        a = std::move(p.a);
        return true;
    } catch (const std::domain_error&) {
        return false;
    }
}

/// One projected-gradient step of the flattest-interpolator search from an
/// interpolator (W, a) (see the top of this file).
template <class T>
SearchStep<T> search_step(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& y,
                          const Activation& act, const SearchOptions& opt = {}) {
    act.validate();
    detail::check_network(W, a, X);
    detail::check_labels(X, y);
    const Index n = X.rows();
    SearchStep<T> st;
    st.W = W;
    st.a = a;
    const double scale = std::max(1.0, double(y.cwiseAbs().maxCoeff()));
    const double target = opt.tol * scale;

    const auto tg = hessian_trace_grad<T>(W, a, X, y, act);
    const double T0 = double(tg.value);
    st.trace_before = T0;
    const Eigen::MatrixXd K = gram<T>(W, a, X, act).template cast<double>();
    st.gram_builds = 1;
    const double mu = K.trace() / double(n);
    if (!(mu > 0)) throw std::domain_error("search_step: the Jacobian is zero (dead network)");
    ShiftedSolver solver;
    double lam = opt.lambda_rel * mu;
    while (!solver.factor(K, lam)) {
        lam *= 10;
        if (lam > 1e-2 * mu) throw std::domain_error("search_step: K + lambda I is not positive definite");
    }
    const Vec<T> Jg = jvp<T>(W, a, X, tg.W, tg.a, act);
    Mat<T> gtW = tg.W;
    Vec<T> gta = tg.a;
    detail::step_back<T>(W, a, X, solver.solve(Jg.template cast<double>()), act, gtW, gta);
    st.g_norm = std::sqrt(detail::sq_norm(tg.W, tg.a));
    const double gt2 = detail::sq_norm(gtW, gta);
    st.gt_norm = std::sqrt(gt2);

    auto finish = [&](const Mat<T>& Wc, const Vec<T>& ac) {
        Mat<T> Wb;
        Vec<T> ab;
        if (opt.balance) {
            detail::balance_clipped<T>(Wc, ac, X, y, act, true, Wb, ab);
        } else {
            Wb = Wc;
            ab = ac;
        }
        st.W = std::move(Wb);
        st.a = std::move(ab);
        st.trace = double(hessian_trace<T>(st.W, st.a, X, y, act));
        st.orbit_min = orbit_min_trace_clipped<T>(st.W, st.a, X, y, act);
        st.max_residual = detail::max_abs(detail::residual<T>(st.W, st.a, X, y, act));
    };

    if (!(st.gt_norm > opt.gtol * st.g_norm) || gt2 == 0) {
        st.small_gradient = true;
        finish(st.W, st.a);
        return st;
    }
    double eta = opt.eta;
    if (!(eta > 0)) {
        const double th = std::sqrt(detail::sq_norm(Mat<T>(W), Vec<T>(a)));
        eta = std::min(0.1 * std::abs(T0) / gt2, 0.05 * th / st.gt_norm);
        if (!(eta > 0) || !std::isfinite(eta)) eta = 1e-3;
    }
    for (int bt = 0; bt <= opt.max_backtrack; ++bt, eta *= 0.5) {
        Mat<T> Wt = W - T(eta) * gtW;
        Vec<T> at = a - T(eta) * gta;
        int it = 0, gi = 0;
        if (!Wt.allFinite() || !at.allFinite()) continue;
        const bool ok = retract<T>(W, a, X, y, act, solver, target, opt.tol, opt.retract_iter, Wt, at, it, gi,
                                     opt.a_correction);
        st.gram_builds += gi;
        if (!ok) {
            st.backtracks = bt + 1;
            continue;
        }
        const double Tn = double(hessian_trace<T>(Wt, at, X, y, act));
        if (std::isfinite(Tn) && Tn <= T0 - opt.c1 * eta * gt2) {
            st.accepted = true;
            st.eta = eta;
            st.backtracks = bt;
            st.retract_iters = it;
            st.gn_iters = gi;
            finish(Wt, at);
            return st;
        }
        st.backtracks = bt + 1;
    }
    finish(st.W, st.a);  // no acceptable step: stay
    return st;
}

}  // namespace flatext
