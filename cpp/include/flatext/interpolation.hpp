// flatext/interpolation.hpp: Jacobian products, the NTK Gram matrix, and the
// projection onto the interpolation set M = {theta : r(theta) = 0}
// (DESIGN.md section 5).
//
// J is the Jacobian of the outputs f(x_j) with respect to theta = (W, a)
// (n x P, P = m (d+1); not divided by n). With z_ij = w_i . x_j:
//
//   (J v)_j   = sum_i [ b_i sigma(z_ij) + a_i sigma'(z_ij) (V_i . x_j) ],   v = (V, b)
//   (J^T u)_a_i = sum_j u_j sigma(z_ij)
//   (J^T u)_w_i = sum_j u_j a_i sigma'(z_ij) x_j
//   K = J J^T = S S^T + (X X^T) o (D diag(a^2) D^T),   S_ji = sigma(z_ij), D_ji = sigma'(z_ij)
//
// jvp / vjp walk X in row tiles like kernels.hpp (two GEMMs per tile). The
// Gram matrix is built in row-tile blocks: for every pair of tiles (I, J >= I)
// the tiles' features S_t and (D a)_t are formed from Z_t = X_t W^T (tile I's
// once per task, tile J's recomputed: about d / (2 tile) of K's own cost) and
//
//   K_IJ = S_I S_J^T + (X_I X_J^T) o ((D a)_I (D a)_J^T)
//
// with three GEMMs; the n x m matrices S, D are never held whole. Each block is
// written by exactly one task, so K does not depend on the thread count.
//
// Projection (find_interpolator): Levenberg-Marquardt damped minimum-norm
// Gauss-Newton steps theta <- theta - J^T (K + lambda I)^{-1} r, solves by
// Cholesky in double (LDLT fallback).
#pragma once

#include <Eigen/Cholesky>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels.hpp"

namespace flatext {

namespace detail {

template <class T>
void check_same_shape_w(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& VW, const VecRef<T>& va) {
    if (VW.rows() != W.rows() || VW.cols() != W.cols())
        throw std::invalid_argument("VW must have the shape of W");
    if (va.size() != a.size()) throw std::invalid_argument("va must have the shape of a");
}

inline double max_abs(const Vec<double>& v) { return v.size() ? v.cwiseAbs().maxCoeff() : 0.0; }

}  // namespace detail

/// J v, shape (n): (Jv)_j = sum_i [va_i sigma(z_ij) + a_i sigma'(z_ij) (VW_i . x_j)]. Two GEMMs per tile.
template <class T>
Vec<T> jvp(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const MatRef<T>& VW, const VecRef<T>& va,
           const Activation& act) {
    act.validate();
    detail::check_network(W, a, X);
    detail::check_same_shape_w(W, a, VW, va);
    const Index n = X.rows(), d = X.cols(), m = W.rows();
    Vec<T> out(n);
    TilePlan plan(n, 2 * m, 0, sizeof(T));
    dispatch_sigma<T>(act, [&](auto sig) {
        parallel_chunks(plan, [&](Index c) {
            std::vector<T> Z(std::size_t(plan.tile * m)), U(std::size_t(plan.tile * m));
            detail::walk_tiles<T>(plan, c, X, W, Z, [&](Index r0, Index rows, const T* Zt) {
                gemm::xwt(X.row(r0).data(), rows, d, X.outerStride(), VW.data(), m, VW.outerStride(), U.data());
                for (Index j = 0; j < rows; ++j) {
                    const T* z = Zt + j * m;
                    const T* u = U.data() + j * m;
                    T jv = T(0);
#pragma omp simd reduction(+ : jv)
                    for (Index i = 0; i < m; ++i) {
                        T s[2];
                        sig.template eval<1>(z[i], s);
                        jv += va[i] * s[0] + a[i] * s[1] * u[i];
                    }
                    out[r0 + j] = jv;
                }
            });
        }, detail::gemm_work(X, W));
    });
    return out;
}

/// J^T u: ((J^T u)_W, (J^T u)_a) with (J^T u)_a_i = sum_j u_j sigma(z_ij),
/// (J^T u)_w_i = sum_j u_j a_i sigma'(z_ij) x_j (loss_grad with r -> u, no 1/n). Two GEMMs per tile.
template <class T>
std::pair<Mat<T>, Vec<T>> vjp(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& u,
                              const Activation& act) {
    act.validate();
    detail::check_network(W, a, X);
    if (u.size() != X.rows())
        throw std::invalid_argument("u must have length n = X.shape[0] = " + std::to_string(X.rows()));
    const Index n = X.rows(), d = X.cols(), m = W.rows();
    TilePlan plan(n, m, m * d, sizeof(T));
    std::vector<double> acc(std::size_t(plan.chunks * m), 0.0);
    std::vector<T> gacc(std::size_t(plan.chunks * m * d), T(0));
    dispatch_sigma<T>(act, [&](auto sig) {
        parallel_chunks(plan, [&](Index c) {
            std::vector<T> Z(std::size_t(plan.tile * m));
            double* ga = &acc[std::size_t(c * m)];
            T* G = &gacc[std::size_t(c * m * d)];
            detail::walk_tiles<T>(plan, c, X, W, Z, [&](Index r0, Index rows, T* Zt) {
                for (Index j = 0; j < rows; ++j) {
                    T* z = Zt + j * m;
                    const T uj = u[r0 + j];
#pragma omp simd
                    for (Index i = 0; i < m; ++i) {
                        T s[2];
                        sig.template eval<1>(z[i], s);
                        ga[i] += double(uj * s[0]);
                        z[i] = uj * a[i] * s[1];
                    }
                }
                gemm::ctx_acc(Zt, rows, m, X.row(r0).data(), d, X.outerStride(), G);
            });
        }, detail::gemm_work(X, W));
    });
    const auto tot = detail::reduce_chunks(acc, plan.chunks, m);
    Vec<T> ga(m);
    for (Index i = 0; i < m; ++i) ga[i] = T(tot[std::size_t(i)]);
    return {detail::reduce_grad_chunks(gacc, plan.chunks, m, d, 1.0), ga};
}

/// The Gram matrix K = J J^T (n x n, the empirical NTK), built in row-tile blocks (see the top of this file).
/// With features_only, the first term alone: S S^T (the Gram matrix of the a-block of J).
template <class T>
Mat<T> gram(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const Activation& act,
            bool features_only = false) {
    act.validate();
    detail::check_network(W, a, X);
    const Index n = X.rows(), d = X.cols(), m = W.rows();
    // Tiles: as the other kernels (~2 MB of features per buffer), but at least
    // 64 rows when n allows, so that the block GEMMs stay efficient.
    TilePlan base(n, m, 0, sizeof(T));
    const Index tile = std::min<Index>(n, std::max<Index>(base.tile, 64));
    const Index tiles = (n + tile - 1) / tile;
    Mat<T> K(n, n);
    gemm::init_backend();
    detail::ExceptionTrap trap;
    const int nt = int(std::max<Index>(1, std::min<Index>(get_num_threads(), tiles)));
    dispatch_sigma<T>(act, [&](auto sig) {
        auto features = [&](Index t, T* S, T* Da) {
            const Index r0 = t * tile, rows = std::min(tile, n - r0);
            gemm::xwt(X.row(r0).data(), rows, d, X.outerStride(), W.data(), m, W.outerStride(), S);
            for (Index j = 0; j < rows; ++j) {
                T* s0 = S + j * m;
                T* s1 = Da + j * m;
#pragma omp simd
                for (Index i = 0; i < m; ++i) {
                    T s[2];
                    sig.template eval<1>(s0[i], s);
                    s0[i] = s[0];
                    s1[i] = a[i] * s[1];
                }
            }
        };
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
#endif
        for (Index I = 0; I < tiles; ++I)
            trap.run([&] {
                std::vector<T> SI(std::size_t(tile * m)), DI(std::size_t(tile * m)), SJ(std::size_t(tile * m)),
                    DJ(std::size_t(tile * m)), B1(std::size_t(tile * tile)), B2(std::size_t(tile * tile)),
                    B3(std::size_t(tile * tile));
                const Index rI = I * tile, nI = std::min(tile, n - rI);
                features(I, SI.data(), DI.data());
                for (Index J = I; J < tiles; ++J) {
                    const Index rJ = J * tile, nJ = std::min(tile, n - rJ);
                    const T *Sj = SI.data(), *Dj = DI.data();
                    if (J != I) {
                        features(J, SJ.data(), DJ.data());
                        Sj = SJ.data();
                        Dj = DJ.data();
                    }
                    gemm::xwt(SI.data(), nI, m, m, Sj, nJ, m, B1.data());
                    if (!features_only) {
                        gemm::xwt(DI.data(), nI, m, m, Dj, nJ, m, B2.data());
                        gemm::xwt(X.row(rI).data(), nI, d, X.outerStride(), X.row(rJ).data(), nJ, X.outerStride(),
                                  B3.data());
                    }
                    for (Index i = 0; i < nI; ++i)
                        for (Index j = (J == I ? i : 0); j < nJ; ++j) {
                            const std::size_t k = std::size_t(i * nJ + j);
                            const T v = features_only ? B1[k] : B1[k] + B3[k] * B2[k];
                            K(rI + i, rJ + j) = v;
                            K(rJ + j, rI + i) = v;
                        }
                }
            });
    });
    trap.rethrow();
    return K;
}

/// Solves (K + lambda I) x = b in double: Cholesky (LLT), LDLT if that fails.
class ShiftedSolver {
  public:
    /// Factors K + lambda I; false if neither LLT nor LDLT gives a positive definite factor.
    bool factor(const Eigen::MatrixXd& K, double lambda) {
        Eigen::MatrixXd A = K;
        A.diagonal().array() += lambda;
        llt_.compute(A);
        if (llt_.info() == Eigen::Success) {
            ldlt_used_ = false;
            return ok_ = true;
        }
        ldlt_.compute(A);
        ldlt_used_ = true;
        ok_ = ldlt_.info() == Eigen::Success && ldlt_.isPositive();
        return ok_;
    }
    bool ok() const { return ok_; }
    bool used_ldlt() const { return ldlt_used_; }
    Vec<double> solve(const Vec<double>& b) const {
        if (!ok_) throw std::logic_error("ShiftedSolver::solve before a successful factor()");
        return ldlt_used_ ? Vec<double>(ldlt_.solve(b)) : Vec<double>(llt_.solve(b));
    }

  private:
    Eigen::LLT<Eigen::MatrixXd> llt_;
    Eigen::LDLT<Eigen::MatrixXd> ldlt_;
    bool ok_ = false, ldlt_used_ = false;
};

namespace detail {

template <class T>
Vec<double> residual(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& y,
                     const Activation& act) {
    const Vec<T> f = forward<T>(W, a, X, act);
    Vec<double> r(f.size());
    for (Index j = 0; j < f.size(); ++j) r[j] = double(f[j]) - double(y[j]);
    return r;
}

inline bool all_finite(const Vec<double>& v) { return v.allFinite(); }

/// (W, a) -= J^T c, with J at (Wb, ab).
template <class T>
void step_back(const MatRef<T>& Wb, const VecRef<T>& ab, const MatRef<T>& X, const Vec<double>& c,
               const Activation& act, Mat<T>& W, Vec<T>& a) {
    const Vec<T> ct = c.template cast<T>();
    auto s = vjp<T>(Wb, ab, X, ct, act);
    W -= s.first;
    a -= s.second;
}

}  // namespace detail

/// Options of find_interpolator. lambda's are relative to mu = trace(K)/n.
struct InterpolationOptions {
    double tol = 1e-10;             ///< stop when max_j |r_j| <= tol * max(1, max_j |y_j|)
    int max_iter = 100;             ///< outer (Gauss-Newton) iterations
    double lambda_init = 1e-3;      ///< initial damping / mu
    double lambda_min = 1e-12;      ///< damping floor / mu
    double lambda_max = 1e8;        ///< damping ceiling / mu: beyond it, std::domain_error
};

template <class T>
struct InterpolationResult {
    Mat<T> W;
    Vec<T> a;
    double max_residual = 0;  ///< max_j |r_j| at the result
    double scale = 1;         ///< max(1, max_j |y_j|); the target is tol * scale
    double lambda = 0;        ///< last damping (absolute)
    int iterations = 0;       ///< accepted Gauss-Newton steps
    int gram_builds = 0;      ///< Gram matrices built
    bool converged = false;
    std::vector<double> history;  ///< max |r| after each accepted step (entry 0: start)
};

/// Levenberg-Marquardt damped minimum-norm Gauss-Newton projection onto M:
///   theta <- theta - J^T (K + lambda I)^{-1} r.
/// A trial step is accepted only if it lowers ||r|| (the loss); then lambda /= 10
/// (not below lambda_min mu), otherwise lambda *= 10 and the step is retried
/// with the same K. Stops when max_j |r_j| <= tol * max(1, max|y|)
/// (converged), or after max_iter steps (converged = false). Throws
/// std::domain_error when n > m (d+1) (more equations than parameters), when
/// K has a zero row at a sample that is not fitted (no neuron sees it: a dead
/// network), or when lambda exceeds lambda_max mu (no step lowers the loss: a
/// non-interpolating stationary point, or tol below the float precision).
template <class T>
InterpolationResult<T> find_interpolator(const MatRef<T>& W0, const VecRef<T>& a0, const MatRef<T>& X,
                                         const VecRef<T>& y, const Activation& act,
                                         const InterpolationOptions& opt = {}) {
    act.validate();
    detail::check_network(W0, a0, X);
    detail::check_labels(X, y);
    const Index n = X.rows(), d = X.cols(), m = W0.rows();
    if (n > m * (d + 1))
        throw std::domain_error("cannot interpolate: n = " + std::to_string(n) +
                                " samples exceed the number of parameters m (d+1) = " + std::to_string(m * (d + 1)));
    if (!(opt.tol > 0)) throw std::invalid_argument("tol must be > 0");
    InterpolationResult<T> res;
    res.W = W0;
    res.a = a0;
    res.scale = std::max(1.0, double(y.cwiseAbs().maxCoeff()));
    const double target = opt.tol * res.scale;
    Vec<double> r = detail::residual<T>(res.W, res.a, X, y, act);
    double rmax = detail::max_abs(r), rn2 = r.squaredNorm();
    res.history.push_back(rmax);
    double lam = -1;
    ShiftedSolver solver;
    while (rmax > target && res.iterations < opt.max_iter) {
        const Eigen::MatrixXd K = gram<T>(res.W, res.a, X, act).template cast<double>();
        ++res.gram_builds;
        const double mu = K.trace() / double(n);
        if (!(mu > 0) || !std::isfinite(mu))
            throw std::domain_error("cannot interpolate: the Jacobian is zero (trace(K) = " + std::to_string(mu * n) +
                                    "); the network is dead on all samples");
        for (Index j = 0; j < n; ++j)
            if (K(j, j) <= 0 && std::abs(r[j]) > target)
                throw std::domain_error("cannot interpolate: sample " + std::to_string(j) +
                                        " has a zero Jacobian row (no neuron is active on it, K_jj = 0) but residual " +
                                        std::to_string(r[j]) + "; the network is dead there");
        if (lam < 0) lam = opt.lambda_init * mu;
        bool accepted = false;
        while (!accepted) {
            if (lam > opt.lambda_max * mu)
                throw std::domain_error(
                    "cannot interpolate: no damped Gauss-Newton step lowers the loss (lambda = " + std::to_string(lam) +
                    " > lambda_max * trace(K)/n) at max|r| = " + std::to_string(rmax) + " (target " +
                    std::to_string(target) +
                    "); a non-interpolating stationary point (e.g. dead or too few active neurons), or tol below the "
                    "precision of the dtype");
            if (!solver.factor(K, lam)) {
                lam *= 10;
                continue;
            }
            const Vec<double> c = solver.solve(r);
            Mat<T> Wn = res.W;
            Vec<T> an = res.a;
            detail::step_back<T>(res.W, res.a, X, c, act, Wn, an);
            Vec<double> rn;
            if (Wn.allFinite() && an.allFinite()) rn = detail::residual<T>(Wn, an, X, y, act);
            if (rn.size() && rn.allFinite() && rn.squaredNorm() < rn2) {
                res.W = std::move(Wn);
                res.a = std::move(an);
                r = std::move(rn);
                rn2 = r.squaredNorm();
                rmax = detail::max_abs(r);
                lam = std::max(lam / 10, opt.lambda_min * mu);
                accepted = true;
            } else {
                lam *= 10;
            }
        }
        ++res.iterations;
        res.history.push_back(rmax);
    }
    res.max_residual = rmax;
    res.lambda = lam;
    res.converged = rmax <= target;
    return res;
}

}  // namespace flatext
