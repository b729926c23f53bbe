// flatext/search.hpp: the flattest-interpolator search, projected gradient on
// M = {theta : r(theta) = 0} (docs/design.md section 5, docs/interpolators.md).
//
// One step from an interpolator theta (search_step):
//   1. g = grad T(theta)                          (hessian_trace_grad, 2 GEMMs)
//   2. g_t = g - J^T u, (K + lambda I) u = J g    (GramSolver: Cholesky of K, or
//      matrix-free PCG with the Nystrom preconditioner, warm-started from the
//      previous u; lambda = lambda_rel * trace(K)/n, default 1e-10). A CG solve
//      that misses cg_rtol is reported (krylov_converged = false) and no step is
//      taken.
//   3. trial theta' = theta - eta g_t (p = 1: - eta^2 J^T (K + lambda I)^{-1} q, the
//      second-order term, below); retract theta' to M (retract below); balance;
//      accept if T(final) <= T(theta) - c1 eta ||g_t||^2 (Armijo on the point that
//      is returned, whose residual is checked again), else eta /= 2.
//   4. balance (default): every neuron moved to its orbit minimum (exact,
//      keeps every prediction, so theta stays on M). Negative B_i, which on M
//      are residual-level round-off (r_j a_i sigma'' terms), are clipped to 0.
// Cost per step (Cholesky): one K (n^2 (m + d) multiply-adds), one n^3/3
// Cholesky, about 8 GEMMs (p = 1: one jvp and solve more, the second-order
// trial) plus about 6 per line-search trial, 3 per chord or Gauss-Newton
// iteration and 4 per CG iteration of the retraction. CG: the Nystrom
// preconditioner (2 n m k) and 4 GEMM-equivalents per CG iteration instead of
// K (docs/design.md section 5).
#pragma once

#include <limits>

#include "interpolation.hpp"
#include "symmetry.hpp"

namespace flatext {

struct SearchOptions {
    double tol = 1e-10;         ///< retraction target: max|r| <= tol * max(1, max|y|)
    double lambda_rel = 1e-10;  ///< projection damping / (trace(K)/n)
    double gtol = 1e-4;         ///< no step if ||g_t|| <= gtol ||g|| (converged; as flatext.SearchOptions)
    double c1 = 1e-4;           ///< Armijo constant
    int max_backtrack = 30;     ///< line-search halvings
    int retract_iter = 6;       ///< chord and Gauss-Newton iterations (each) before the fallbacks
    /// Fallback 1 (Cholesky path only): the exact minimum-norm correction of a alone.
    bool a_correction = false;
    bool balance = true;  ///< balance each trial before its Armijo test
    double eta = 0;       ///< first trial step (<= 0: automatic)
    SolverKind solver = SolverKind::Auto;
    double cg_rtol = 1e-8;       ///< CG accuracy of the tangent projection (relative to ||J g||)
    double retract_rtol = 1e-3;  ///< CG accuracy of each PCG solve of the retraction
    int cg_max_iter = 2000;      ///< CG iterations per solve
    Index cg_rank = -1;          ///< rank of the CG path's Nystrom preconditioner (< 0: default_rank(n), 0: Jacobi)

    /// The one check of the options (std::invalid_argument naming the option): search_step and
    /// the Python SearchOptions rely on it. gtol may be +inf (a step that only balances).
    void validate() const {
        detail::check_positive_option(tol, "tol");
        detail::check_positive_option(lambda_rel, "lambda_rel");
        if (!(gtol >= 0)) throw std::invalid_argument("gtol must be >= 0; got " + std::to_string(gtol));
        if (!(c1 > 0 && c1 < 1)) throw std::invalid_argument("c1 must be in (0, 1); got " + std::to_string(c1));
        detail::check_int_option(max_backtrack, 0, "max_backtrack");
        detail::check_int_option(retract_iter, 1, "retract_iter");
        if (!std::isfinite(eta)) throw std::invalid_argument("eta must be finite; got " + std::to_string(eta));
        detail::check_positive_option(cg_rtol, "cg_rtol");
        detail::check_positive_option(retract_rtol, "retract_rtol");
        detail::check_int_option(cg_max_iter, 1, "cg_max_iter");
    }
};

template <class T>
struct SearchStep {
    Mat<T> W;
    Vec<T> a;
    Vec<double> u;                 ///< multipliers of the tangent projection: K u = J g (warm start of the next step)
    double trace_before = 0;       ///< T at the start point
    double trace = 0;              ///< T at the new point (after balance)
    double orbit_min = 0;          ///< orbit-minimal T at the new point
    double max_residual = 0;       ///< max |r| at the new point
    double eta = 0;                ///< accepted step size (0 if none)
    double g_norm = 0;             ///< ||grad T|| at the start point
    double gt_norm = 0;            ///< ||g_t|| at the start point
    int backtracks = 0;            ///< halvings of eta
    int retract_iters = 0;         ///< chord iterations of the accepted trial
    int gn_iters = 0;              ///< S S^T / Gram matrices built by the retraction of the accepted trial
    int gram_builds = 0;           ///< explicit Gram matrices built in this step (all trials)
    int krylov_iters = 0;          ///< CG iterations in this step (all solves)
    double krylov_residual = 0;    ///< relative residual of the tangent-projection solve
    bool krylov_converged = true;  ///< the tangent-projection solve reached cg_rtol
    bool used_cg = false;          ///< the matrix-free path was used
    bool accepted = false;         ///< a step was taken
    bool small_gradient = false;   ///< ||g_t|| <= gtol ||g||: no step tried
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

/// Retracts (W, a) to M, cheapest first:
///  1. (Cholesky path) chord iterations theta' <- theta' - J(theta)^T (K + lambda I)^{-1} r(theta')
///     with the base point's factor, while each lowers ||r|| by 30 %;
///  2. Gauss-Newton at the trial point, theta' <- theta' - J(theta')^T c with
///     (K(theta') + lambda I) c = r(theta') solved by PCG preconditioned with the base point's solver
///     (its factor of K(theta), or its Nystrom approximation) to retract_rtol; on the Cholesky path
///     each solve may take at most as many CG iterations as a fresh K and its factor would cost
///     (GramSolver::refactor_cost), else the fallbacks below are cheaper;
///  3. (Cholesky path) Newton with chords: a fresh factor of K at the current point, then
///     chord iterations with it while each lowers ||r|| by 30 %; at most 3 factors;
///  4. (Cholesky path, a_correction) the exact correction of a alone;
///  5. the full projection (find_interpolator, a fresh K per step).
/// iters counts the steps of 1 and 2, gn_iters the Gram matrices of 3-5. Returns false if it
/// cannot reach the target.
template <class T>
bool retract(const GramSolver<T>& solver, const MatRef<T>& Wb, const VecRef<T>& ab, const MatRef<T>& X,
             const VecRef<T>& y, const Activation& act, double target, const SearchOptions& opt, Mat<T>& W, Vec<T>& a,
             int& iters, int& gn_iters, int& krylov_iters) {
    Vec<double> r = detail::residual<T>(W, a, X, y, act);
    double rmax = detail::max_abs(r), rn = r.norm();
    iters = 0;
    gn_iters = 0;
    // one step (chord: J and solver at the base point; else Gauss-Newton at the trial point);
    // false when it does not lower ||r|| by 30 % or its solve did not converge
    auto step = [&](bool chord, int cap) {
        Mat<T> Wn = W;
        Vec<T> an = a;
        KrylovInfo ki;
        const Vec<double> c = chord ? solver.solve(r, opt.retract_rtol, cap, Vec<double>(), ki)
                                    : solver.solve_at(W, a, r, opt.retract_rtol, cap, Vec<double>(), ki);
        krylov_iters += ki.iterations;
        if (!ki.converged) return false;
        if (chord)
            detail::step_back<T>(Wb, ab, X, c, act, Wn, an);
        else
            detail::step_back<T>(W, a, X, c, act, Wn, an);
        Vec<double> r2 = detail::residual<T>(Wn, an, X, y, act);
        const double rn2 = r2.norm();
        if (!(rn2 < 0.7 * rn)) return false;  // stalled or diverging
        W = std::move(Wn);
        a = std::move(an);
        r = std::move(r2);
        rn = rn2;
        rmax = detail::max_abs(r);
        return true;
    };
    if (solver.cholesky())
        while (rmax > target && iters < opt.retract_iter && std::isfinite(rmax)) {
            ++iters;
            if (!step(true, opt.cg_max_iter)) break;
        }
    const int cap = solver.cholesky() ? std::max(5, solver.refactor_cost()) : opt.cg_max_iter;
    for (int k = 0; rmax > target && k < opt.retract_iter && std::isfinite(rmax); ++k) {
        ++iters;
        if (!step(false, cap)) break;
    }
    if (rmax <= target) return true;
    if (!std::isfinite(rmax)) return false;
    // (Cholesky path) Newton with chords: a fresh factor at the current point, then chord
    // iterations with it while they contract, at most 3 factors
    if (solver.cholesky()) {
        for (int f = 0; f < 3 && rmax > target; ++f) {
            GramSolver<T> fresh(W, a, X, act, SolverKind::Cholesky, opt.cg_rank);
            ++gn_iters;
            double lam = opt.lambda_rel * fresh.mu();
            if (!(fresh.mu() > 0) || !fresh.set_lambda(lam)) break;
            const Mat<T> Wf = W;
            const Vec<T> af = a;
            int k = 0;
            for (; k < 2 * opt.retract_iter && rmax > target; ++k) {
                KrylovInfo ki;
                const Vec<double> c = fresh.solve(r, opt.retract_rtol, opt.cg_max_iter, Vec<double>(), ki);
                Mat<T> Wn = W;
                Vec<T> an = a;
                detail::step_back<T>(Wf, af, X, c, act, Wn, an);
                Vec<double> r2 = detail::residual<T>(Wn, an, X, y, act);
                const double rn2 = r2.norm();
                if (!(rn2 < 0.7 * rn)) break;
                W = std::move(Wn);
                a = std::move(an);
                r = std::move(r2);
                rn = rn2;
                rmax = detail::max_abs(r);
            }
            if (k == 0) break;  // not even the Newton step helped
        }
        if (rmax <= target) return true;
    }
    // f is linear in a: the exact minimum-norm correction of a alone,
    // a <- a - S^T (S S^T + lambda I)^{-1} r with S = sigma(X W^T) at the current W
    // (one S S^T, about half a K); repeated (refinement) at most 3 times.
    if (opt.a_correction && solver.cholesky()) {
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
        o.tol = opt.tol;
        o.max_iter = 20;
        o.lambda_init = 1e-9;  // close to M: (nearly) undamped steps converge fast
        o.solver = solver.cholesky() ? SolverKind::Cholesky : SolverKind::CG;
        o.cg_max_iter = opt.cg_max_iter;
        o.cg_rank = opt.cg_rank;
        auto p = find_interpolator<T>(W, a, X, y, act, o);
        gn_iters += p.gram_builds + p.iterations * (p.used_cg ? 1 : 0);
        krylov_iters += p.krylov_iters;
        if (!p.converged) return false;
        W = std::move(p.W);
        a = std::move(p.a);
        return true;
    } catch (const std::domain_error&) {
        return false;
    }
}

/// One projected-gradient step of the flattest-interpolator search from an
/// interpolator (W, a) (see the top of this file). u0: warm start of the
/// projection's multipliers (empty: zero).
template <class T>
SearchStep<T> search_step(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& y,
                          const Activation& act, const SearchOptions& opt = {}, const Vec<double>& u0 = Vec<double>()) {
    act.validate();
    opt.validate();
    detail::check_network(W, a, X);
    detail::check_labels(X, y);
    SearchStep<T> st;
    st.W = W;
    st.a = a;
    const double scale = std::max(1.0, double(y.cwiseAbs().maxCoeff()));
    const double target = opt.tol * scale;

    const auto tg = hessian_trace_grad<T>(W, a, X, y, act);
    const double T0 = double(tg.value);
    st.trace_before = T0;
    GramSolver<T> solver(W, a, X, act, opt.solver, opt.cg_rank);
    st.used_cg = !solver.cholesky();
    st.gram_builds = solver.gram_builds();
    const double mu = solver.mu();
    if (!(mu > 0)) throw std::domain_error("search_step: the Jacobian is zero (dead network)");
    double lam = opt.lambda_rel * mu;
    while (!solver.set_lambda(lam)) {
        lam *= 10;
        if (lam > 1e-2 * mu) throw std::domain_error("search_step: K + lambda I is not positive definite");
    }
    const Vec<T> Jg = jvp<T>(W, a, X, tg.W, tg.a, act);
    KrylovInfo ki;
    st.u = solver.solve(Jg.template cast<double>(), opt.cg_rtol, opt.cg_max_iter, u0, ki);
    st.krylov_iters = ki.iterations;
    st.krylov_residual = ki.rel_residual;
    st.krylov_converged = ki.converged;
    Mat<T> gtW = tg.W;
    Vec<T> gta = tg.a;
    detail::step_back<T>(W, a, X, st.u, act, gtW, gta);
    st.g_norm = std::sqrt(detail::sq_norm(tg.W, tg.a));
    const double gt2 = detail::sq_norm(gtW, gta);
    st.gt_norm = std::sqrt(gt2);

    auto balanced = [&](const Mat<T>& Wc, const Vec<T>& ac, Mat<T>& Wb, Vec<T>& ab) {
        if (opt.balance) {
            detail::balance_clipped<T>(Wc, ac, X, y, act, true, Wb, ab);
        } else {
            Wb = Wc;
            ab = ac;
        }
    };
    auto finish = [&](Mat<T> Wb, Vec<T> ab, double trace, double rmax) {
        st.W = std::move(Wb);
        st.a = std::move(ab);
        st.trace = trace;
        st.orbit_min = orbit_min_trace_clipped<T>(st.W, st.a, X, y, act);
        st.max_residual = rmax;
    };
    auto stay = [&]() {
        Mat<T> Wb;
        Vec<T> ab;
        balanced(st.W, st.a, Wb, ab);
        const double tr = double(hessian_trace<T>(Wb, ab, X, y, act));
        const double rmax = detail::max_abs(detail::residual<T>(Wb, ab, X, y, act));
        finish(std::move(Wb), std::move(ab), tr, rmax);
    };

    if (!ki.converged) {  // an inaccurate projection: no step (the caller reports it)
        stay();
        return st;
    }
    if (!(st.gt_norm > opt.gtol * st.g_norm) || gt2 == 0) {
        st.small_gradient = true;
        stay();
        return st;
    }
    double eta = opt.eta;
    if (!(eta > 0)) {
        const double th = std::sqrt(detail::sq_norm(Mat<T>(W), Vec<T>(a)));
        eta = std::min(0.1 * std::abs(T0) / gt2, 0.05 * th / st.gt_norm);
        if (!(eta > 0) || !std::isfinite(eta)) eta = 1e-3;
    }
    // Second-order trial (p = 1): within the activation cells f is bilinear in (w_i, a_i),
    // f(theta + eta v) = f + eta J v + eta^2 q with q_j = sum_i v_a,i sigma'(z_ij) v_w,i . x_j;
    // J v = 0 for the tangent v = -g_t, so the trial theta + eta v - eta^2 J^T (K + lambda I)^{-1} q
    // leaves a residual of O(eta^3) plus what the samples that cross a kink add (measured at
    // n = 1000: the trial residuals 5-10x smaller; docs/design.md section 5). On the CG path its
    // solve is one more PCG solve, repaid by the retraction (n = 8000: 70.5 s per step with it,
    // 77.3 s without).
    Mat<T> cW = Mat<T>::Zero(W.rows(), W.cols());
    Vec<T> ca = Vec<T>::Zero(a.size());
    if (act.power == 1.0) {
        const Vec<T> q = jvp<T>(W, gta, X, gtW, Vec<T>::Zero(a.size()), act);
        KrylovInfo kq;
        const Vec<double> cq =
            solver.solve(q.template cast<double>(), opt.retract_rtol, opt.cg_max_iter, Vec<double>(), kq);
        st.krylov_iters += kq.iterations;
        if (kq.converged) detail::step_back<T>(W, a, X, -cq, act, cW, ca);  // cW, ca = J^T c
    }
    for (int bt = 0; bt <= opt.max_backtrack; ++bt, eta *= 0.5) {
        Mat<T> Wt = W - T(eta) * gtW - T(eta * eta) * cW;
        Vec<T> at = a - T(eta) * gta - T(eta * eta) * ca;
        int it = 0, gi = 0;
        if (!Wt.allFinite() || !at.allFinite()) continue;
        const bool ok = retract<T>(solver, W, a, X, y, act, target, opt, Wt, at, it, gi, st.krylov_iters);
        st.gram_builds += gi;
        st.backtracks = bt + 1;
        if (!ok) continue;
        // The Armijo test is made at the point that is returned: after the
        // balance, whose round-off could otherwise move a sample across a kink
        // unseen; its residual is checked again for the same reason.
        Mat<T> Wb;
        Vec<T> ab;
        balanced(Wt, at, Wb, ab);
        const double Tn = double(hessian_trace<T>(Wb, ab, X, y, act));
        if (!(std::isfinite(Tn) && Tn <= T0 - opt.c1 * eta * gt2)) continue;
        const double rmax = detail::max_abs(detail::residual<T>(Wb, ab, X, y, act));
        if (!(rmax <= target)) continue;
        st.accepted = true;
        st.eta = eta;
        st.backtracks = bt;
        st.retract_iters = it;
        st.gn_iters = gi;
        finish(std::move(Wb), std::move(ab), Tn, rmax);
        return st;
    }
    stay();  // no acceptable step: stay
    return st;
}

}  // namespace flatext
