// flatext/interpolation.hpp: Jacobian products, the NTK Gram matrix, and the
// projection onto the interpolation set M = {theta : r(theta) = 0}
// (docs/design.md section 5).
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
// Cholesky in double (LDLT fallback) or by PCG (GramSolver, with the Nystrom
// preconditioner of preconditioner.hpp).
#pragma once

#include <Eigen/Cholesky>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "kernels.hpp"
#include "pattern_gram.hpp"
#include "preconditioner.hpp"

namespace flatext {

namespace detail {

template <class T>
void check_same_shape_w(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& VW, const VecRef<T>& va) {
    if (VW.rows() != W.rows() || VW.cols() != W.cols()) throw std::invalid_argument("VW must have the shape of W");
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
        parallel_chunks(
            plan,
            [&](Index c) {
                std::vector<T> Z(std::size_t(plan.tile * m)), U(std::size_t(plan.tile * m));
                detail::walk_tiles<T>(plan, c, X, W, Z, [&](Index r0, Index rows, const T* Zt) {
                    const auto sl = sig;  // a local copy: provably not aliased by the stores below
                    gemm::xwt(X.row(r0).data(), rows, d, X.outerStride(), VW.data(), m, VW.outerStride(), U.data());
                    for (Index j = 0; j < rows; ++j) {
                        const T* z = Zt + j * m;
                        const T* u = U.data() + j * m;
                        T jv = T(0);
#pragma omp simd reduction(+ : jv)
                        for (Index i = 0; i < m; ++i) {
                            const auto s = sl.template eval<1>(z[i]);
                            jv += va[i] * s.v0 + a[i] * s.v1 * u[i];
                        }
                        out[r0 + j] = jv;
                    }
                });
            },
            detail::gemm_work(X, W));
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
        parallel_chunks(
            plan,
            [&](Index c) {
                std::vector<T> Z(std::size_t(plan.tile * m));
                double* ga = &acc[std::size_t(c * m)];
                T* G = &gacc[std::size_t(c * m * d)];
                detail::walk_tiles<T>(plan, c, X, W, Z, [&](Index r0, Index rows, T* Zt) {
                    const auto sl = sig;  // a local copy: provably not aliased by the stores below
                    std::vector<T> tgv(static_cast<std::size_t>(m), T(0));
                    T* __restrict tg = tgv.data();
                    for (Index j = 0; j < rows; ++j) {
                        T* z = Zt + j * m;
                        const T uj = u[r0 + j];
#pragma omp simd
                        for (Index i = 0; i < m; ++i) {
                            const auto s = sl.template eval<1>(z[i]);
                            tg[i] += uj * s.v0;
                            z[i] = uj * a[i] * s.v1;
                        }
                    }
                    for (Index i = 0; i < m; ++i) ga[i] += double(tg[i]);  // tile sums in T, flushed to double
                    gemm::ctx_acc(Zt, rows, m, X.row(r0).data(), d, X.outerStride(), G);
                });
            },
            detail::gemm_work(X, W));
    });
    const auto tot = detail::reduce_chunks(acc, plan.chunks, m);
    Vec<T> ga(m);
    for (Index i = 0; i < m; ++i) ga[i] = T(tot[std::size_t(i)]);
    return {detail::reduce_grad_chunks(gacc, plan.chunks, m, d, 1.0), ga};
}

/// diag(K)_j = ||grad_theta f(x_j)||^2 = sum_i sigma(z_ij)^2 + |x_j|^2 sum_i a_i^2 sigma'(z_ij)^2, in
/// one tiled pass (one GEMM per tile; every row is written by one task: thread-count independent). The
/// Jacobi preconditioner of the matrix-free solves.
template <class T>
Vec<double> gram_diag(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const Activation& act) {
    act.validate();
    detail::check_network(W, a, X);
    const Index n = X.rows(), m = W.rows();
    Vec<double> out(n);
    TilePlan plan(n, m, 0, sizeof(T));
    dispatch_sigma<T>(act, [&](auto sig) {
        parallel_chunks(
            plan,
            [&](Index c) {
                std::vector<T> Z(std::size_t(plan.tile * m));
                detail::walk_tiles<T>(plan, c, X, W, Z, [&](Index r0, Index rows, const T* Zt) {
                    const auto sl = sig;
                    for (Index j = 0; j < rows; ++j) {
                        const T* z = Zt + j * m;
                        T s0 = T(0), s1 = T(0);
#pragma omp simd reduction(+ : s0, s1)
                        for (Index i = 0; i < m; ++i) {
                            const auto s = sl.template eval<1>(z[i]);
                            const T q = a[i] * s.v1;
                            s0 += s.v0 * s.v0;
                            s1 += q * q;
                        }
                        out[r0 + j] = double(s0) + X.row(r0 + j).template cast<double>().squaredNorm() * double(s1);
                    }
                });
            },
            detail::gemm_work(X, W));
    });
    return out;
}

/// How the systems (K + lambda I) c = b are solved.
enum class SolverKind { Auto, Cholesky, CG };

/// The automatic choice: Cholesky of the explicit K while n <= 4096 (K in 128
/// MB), matrix-free PCG above. Measured per search step (d = 20, m = 2n, 2
/// cores, docs/interpolators.md): Cholesky 0.23 / 1.13 / 7.26 s at n = 1000 /
/// 2000 / 4000 against 0.66 / 2.97 / 12.8 s for Nystrom-preconditioned CG, so
/// CG pays where K cannot be held; its steps grow ~4.3x per doubling of n, the
/// Cholesky path's like n^3.
inline SolverKind choose_solver(SolverKind k, Index n, Index /*d*/) {
    if (k != SolverKind::Auto) return k;
    return n <= 4096 ? SolverKind::Cholesky : SolverKind::CG;
}

/// Outcome of a Krylov solve.
struct KrylovInfo {
    int iterations = 0;       ///< CG iterations (0 for Cholesky)
    double rel_residual = 0;  ///< ||b - (K + lambda I) x|| / ||b|| (recurrence)
    bool converged = true;    ///< rel_residual <= rtol within the iteration cap
};

/// Preconditioned conjugate gradients on A x = b, A applied by apply(v), the
/// preconditioner by precond(r) (approximately A^{-1} r), warm start x0
/// (empty: 0). All vector arithmetic is sequential double: the bits do not
/// depend on the thread count.
template <class Apply, class Precond>
Vec<double> pcg(Apply&& apply, Precond&& precond, const Vec<double>& b, const Vec<double>& x0, double rtol,
                int max_iter, KrylovInfo& info) {
    const Index n = b.size();
    info = KrylovInfo{};
    const double bn = b.norm();
    if (bn == 0) return Vec<double>::Zero(n);
    const bool warm = x0.size() == n && x0.squaredNorm() > 0;
    Vec<double> x = warm ? x0 : Vec<double>(Vec<double>::Zero(n));
    Vec<double> r = warm ? Vec<double>(b - apply(x)) : b;
    Vec<double> z = precond(r), p = z;
    double rz = r.dot(z), rn = r.norm();
    while (rn > rtol * bn && info.iterations < max_iter) {
        const Vec<double> Ap = apply(p);
        const double pAp = p.dot(Ap);
        if (!(pAp > 0) || !std::isfinite(pAp)) break;  // round-off breakdown: keep the current iterate
        const double alpha = rz / pAp;
        x += alpha * p;
        r -= alpha * Ap;
        ++info.iterations;
        rn = r.norm();
        z = precond(r);
        const double rz2 = r.dot(z);
        p = z + (rz2 / rz) * p;
        rz = rz2;
    }
    info.rel_residual = rn / bn;
    info.converged = rn <= rtol * bn;
    return x;
}

/// (K + lambda I) v with K = J J^T at (W, a) applied as J (J^T v): vjp then jvp, four
/// GEMM-equivalents, never an n x n matrix.
template <class T>
Vec<double> gram_apply(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const Activation& act, double lambda,
                       const Vec<double>& v) {
    const Vec<T> vt = v.template cast<T>();
    const auto g = vjp<T>(W, a, X, vt, act);
    const Vec<T> Jv = jvp<T>(W, a, X, g.first, g.second, act);
    return Vec<double>(Jv.template cast<double>() + lambda * v);
}

/// The Gram matrix K = J J^T (n x n, the empirical NTK), built in row-tile blocks (see the top of this file).
/// With features_only, the first term alone: S S^T (the Gram matrix of the a-block of J).
template <class T>
Mat<T> gram(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const Activation& act,
            bool features_only = false) {
    act.validate();
    detail::check_network(W, a, X);
    const Index n = X.rows(), d = X.cols(), m = W.rows();
    // Tiles of ~8 MB of features per buffer (four per thread), 64 to 512 rows: the
    // block GEMMs (tile x m times m x tile) run near GEMM speed only with tiles of a
    // few hundred rows (measured at n = 2000, m = 4000, 2 threads: 65-row tiles 0.75 s,
    // 262-row 0.50 s, 512-row 0.57 s: too few blocks to share).
    const Index tile = std::min<Index>(
        n,
        std::clamp<Index>(Index((std::size_t(8) << 20) / (sizeof(T) * std::size_t(std::max<Index>(m, 1)))), 64, 512));
    const Index tiles = (n + tile - 1) / tile;
    Mat<T> K(n, n);
    gemm::init_backend();
    detail::ExceptionTrap trap;
    const int nt = int(std::max<Index>(1, std::min<Index>(get_num_threads(), tiles)));
    dispatch_sigma<T>(act, [&](auto sig) {
        auto features = [&](Index t, T* S, T* Da) {
            const Index r0 = t * tile, rows = std::min(tile, n - r0);
            gemm::xwt(X.row(r0).data(), rows, d, X.outerStride(), W.data(), m, W.outerStride(), S);
            detail::gram_features<T>(sig, a, S, Da, rows, m);
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

/// Default rank of the Nystrom preconditioner: min(n/2, 1000). Building it
/// costs about 2 n m k multiply-adds (k / (2 d) CG iterations) plus its k x k
/// eigenproblems and 2 n k doubles; measured at n = 1000, d = 20 (K's
/// condition ~1e4): Jacobi 287 CG iterations to 1e-8, rank 125: 83, rank 309:
/// 44, rank 550: 27. Per search step (docs/interpolators.md): n = 4000, d = 20:
/// rank 250: 18.4 s (269 CG iterations), 500: 8.7 s (95), 1000: 9.8 s (76);
/// n = 10^4, d = 30: rank 500 249 s (294), so 1000 stays the cap.
inline Index default_rank(Index n) { return std::min<Index>(n / 2, 1000); }

/// (K + lambda I) c = b at a fixed point (W, a): Cholesky of the explicit K
/// (float64, LDLT fallback) or matrix-free PCG with the Nystrom
/// preconditioner of rank `rank` (preconditioner.hpp; < 0: default_rank(n),
/// 0: Jacobi), chosen by choose_solver. solve_at solves the same system at a
/// nearby point by PCG, preconditioned by this point's factor or Nystrom
/// approximation (the retraction's Gauss-Newton steps). The point's arrays
/// must outlive the solver.
template <class T>
class GramSolver {
  public:
    GramSolver(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const Activation& act, SolverKind kind,
               Index rank = -1)
        : W_(W), a_(a), X_(X), act_(act), kind_(choose_solver(kind, X.rows(), X.cols())) {
        if (kind_ == SolverKind::Cholesky) {
            K_ = gram<T>(W, a, X, act).template cast<double>();
            diag_ = K_.diagonal();
        } else {
            diag_ = gram_diag<T>(W, a, X, act);
            const Index k = rank < 0 ? default_rank(X.rows()) : rank;
            if (k > 0) nys_.build<T>(W, a, X, act, diag_, k);
        }
        mu_ = diag_.size() ? diag_.sum() / double(diag_.size()) : 0.0;
    }
    bool cholesky() const { return kind_ == SolverKind::Cholesky; }
    double mu() const { return mu_; }  ///< trace(K) / n
    const Vec<double>& diag() const { return diag_; }
    double lambda() const { return lambda_; }
    Index rank() const { return nys_.rank(); }  ///< rank of the Nystrom preconditioner (0: Jacobi or Cholesky)
    int gram_builds() const { return kind_ == SolverKind::Cholesky ? 1 : 0; }
    /// A fresh K and its factor in CG iterations of this size: (n^2 (m + d) + n^3) / (8 n m d), i.e.
    /// the factor's n^3 / 3 counted at a third of GEMM speed and a CG iteration's four thin GEMMs
    /// (inner dimension d) at half the speed of K's (measured at n = 2000, m = 4000, d = 20: K and its
    /// factor 0.63 s, a CG iteration 31 ms: 20 iterations; this gives 19). The retraction's cap on a
    /// PCG solve.
    int refactor_cost() const {
        const double n = double(X_.rows()), m = double(W_.rows()), d = double(X_.cols());
        return int(std::min(1e6, (n * n * (m + d) + n * n * n) / (8 * n * m * d)));
    }
    /// Sets the shift; a Cholesky solver factors K + lambda I. False if that is not positive definite.
    bool set_lambda(double lambda) {
        lambda_ = lambda;
        if (kind_ != SolverKind::Cholesky) return ok_ = true;
        return ok_ = chol_.factor(K_, lambda);
    }
    /// Solves (K + lambda I) x = b; CG to ||residual|| <= rtol ||b|| (at most max_iter iterations) from x0.
    Vec<double> solve(const Vec<double>& b, double rtol, int max_iter, const Vec<double>& x0, KrylovInfo& info) const {
        if (!ok_) throw std::logic_error("GramSolver::solve before a successful set_lambda()");
        if (kind_ == SolverKind::Cholesky) {
            info = KrylovInfo{};
            return chol_.solve(b);
        }
        return solve_at(W_, a_, b, rtol, max_iter, x0, info);
    }
    /// Solves (K(W2, a2) + lambda I) x = b by PCG preconditioned with this point's solver.
    Vec<double> solve_at(const MatRef<T>& W2, const VecRef<T>& a2, const Vec<double>& b, double rtol, int max_iter,
                         const Vec<double>& x0, KrylovInfo& info) const {
        if (!ok_) throw std::logic_error("GramSolver::solve_at before a successful set_lambda()");
        // p = 1 on the CG path: K v from the stored activation pattern (two GEMM-equivalents per
        // product, not four). Not on the Cholesky path's capped retraction solves: there it changed
        // the search's path at the kinks (n = 2000 whole search 229 s, 39 steps, T = 13.001371
        // against 146 s, 46 steps, T = 13.001356 with vjp + jvp; one run each) for no gain per step.
        std::unique_ptr<PatternGram<T>> pg;
        if (kind_ != SolverKind::Cholesky && PatternGram<T>::usable(act_, X_.rows(), W2.rows()))
            pg = std::make_unique<PatternGram<T>>(W2, a2, X_, act_);
        auto apply = [&](const Vec<double>& v) {
            return pg ? Vec<double>(pg->apply(v) + lambda_ * v) : gram_apply<T>(W2, a2, X_, act_, lambda_, v);
        };
        if (kind_ == SolverKind::Cholesky)
            return pcg(apply, [&](const Vec<double>& r) { return chol_.solve(r); }, b, x0, rtol, max_iter, info);
        if (nys_.rank() > 0)
            return pcg(
                apply, [&](const Vec<double>& r) { return nys_.apply(r, lambda_); }, b, x0, rtol, max_iter, info);
        const Vec<double> minv = (diag_.array() + lambda_).max(1e-300).inverse().matrix();
        return pcg(
            apply, [&](const Vec<double>& r) { return Vec<double>(minv.cwiseProduct(r)); }, b, x0, rtol, max_iter,
            info);
    }

  private:
    MatRef<T> W_;
    VecRef<T> a_;
    MatRef<T> X_;
    Activation act_;
    SolverKind kind_;
    Eigen::MatrixXd K_;
    Vec<double> diag_;
    ShiftedSolver chol_;
    NystromPreconditioner nys_;
    double mu_ = 0, lambda_ = 0;
    bool ok_ = false;
};

/// Options of find_interpolator. lambda's are relative to mu = trace(K)/n.
struct InterpolationOptions {
    double tol = 1e-10;         ///< stop when max_j |r_j| <= tol * max(1, max_j |y_j|)
    int max_iter = 100;         ///< outer (Gauss-Newton) iterations
    double lambda_init = 1e-6;  ///< initial damping / mu
    double lambda_min = 1e-15;  ///< damping floor / mu
    double lambda_max = 1e8;    ///< damping ceiling / mu: beyond it, std::domain_error
    SolverKind solver = SolverKind::Auto;
    double cg_rtol = 1e-4;  ///< relative accuracy of each (inexact) Gauss-Newton solve by CG
    int cg_max_iter = 500;  ///< CG iterations per solve
    Index cg_rank = -1;     ///< rank of the CG path's Nystrom preconditioner (< 0: default_rank(n), 0: Jacobi)

    /// The one check of the options (std::invalid_argument naming the option): find_interpolator
    /// and the Python options class rely on it.
    void validate() const {
        detail::check_positive_option(tol, "tol");
        detail::check_int_option(max_iter, 0, "max_iter");
        detail::check_positive_option(lambda_init, "lambda_init");
        detail::check_positive_option(lambda_min, "lambda_min");
        detail::check_positive_option(lambda_max, "lambda_max");
        if (!(lambda_min <= lambda_max))
            throw std::invalid_argument("lambda_min must be <= lambda_max; got " + std::to_string(lambda_min) + " > " +
                                        std::to_string(lambda_max));
        detail::check_positive_option(cg_rtol, "cg_rtol");
        detail::check_int_option(cg_max_iter, 1, "cg_max_iter");
    }
};

template <class T>
struct InterpolationResult {
    Mat<T> W;
    Vec<T> a;
    double max_residual = 0;  ///< max_j |r_j| at the result
    double scale = 1;         ///< max(1, max_j |y_j|); the target is tol * scale
    double lambda = 0;        ///< last damping (absolute)
    int iterations = 0;       ///< accepted Gauss-Newton steps
    int gram_builds = 0;      ///< explicit n x n Gram matrices built (Cholesky path)
    int krylov_iters = 0;     ///< CG iterations in all (CG path)
    int krylov_failures = 0;  ///< CG solves that stopped at cg_max_iter above cg_rtol
    bool used_cg = false;     ///< the matrix-free path was used
    bool converged = false;
    std::vector<double> history;  ///< max |r| after each accepted step (entry 0: start)
};

/// Levenberg-Marquardt damped minimum-norm Gauss-Newton projection onto M:
///   theta <- theta - J^T (K + lambda I)^{-1} r.
/// A trial step is accepted if it lowers ||r||. The damping follows Nielsen's
/// rule on the gain ratio rho = actual / predicted decrease of ||r||^2
/// (predicted: ||r||^2 - lambda^2 ||c||^2 for (K + lambda I) c = r): on
/// acceptance lambda *= max(1/3, 1 - (2 rho - 1)^3) (floor lambda_min mu), on
/// rejection lambda *= nu, nu *= 2 (nu = 2 after an acceptance); the
/// Cholesky path reuses K for the retries, the CG path re-solves.
/// Stops when max_j |r_j| <= tol * max(1, max|y|) (converged), or after
/// max_iter steps (converged = false). Throws std::domain_error when
/// n > m (d+1), when K has a zero row at a sample that is not fitted (a dead
/// network), or when lambda exceeds lambda_max mu (no step lowers the loss: a
/// non-interpolating stationary point, or tol below the float precision); the
/// message gives the residual reached.
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
    opt.validate();
    InterpolationResult<T> res;
    res.W = W0;
    res.a = a0;
    res.scale = std::max(1.0, double(y.cwiseAbs().maxCoeff()));
    res.used_cg = choose_solver(opt.solver, n, d) == SolverKind::CG;
    const double target = opt.tol * res.scale;
    Vec<double> r = detail::residual<T>(res.W, res.a, X, y, act);
    double rmax = detail::max_abs(r), rn2 = r.squaredNorm();
    res.history.push_back(rmax);
    double lam = -1, nu = 2;
    Vec<double> c_prev;
    while (rmax > target && res.iterations < opt.max_iter) {
        GramSolver<T> solver(res.W, res.a, X, act, opt.solver, opt.cg_rank);
        res.gram_builds += solver.gram_builds();
        const double mu = solver.mu();
        if (!(mu > 0) || !std::isfinite(mu))
            throw std::domain_error("cannot interpolate: the Jacobian is zero (trace(K) = " + std::to_string(mu * n) +
                                    "); the network is dead on all samples");
        for (Index j = 0; j < n; ++j)
            if (solver.diag()[j] <= 0 && std::abs(r[j]) > target)
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
                    std::to_string(target) + ", after " + std::to_string(res.iterations) +
                    " steps); a non-interpolating stationary point (e.g. dead or too few active neurons), or tol below "
                    "the precision of the dtype");
            if (!solver.set_lambda(lam)) {
                lam *= 10;
                continue;
            }
            KrylovInfo ki;
            const Vec<double> c = solver.solve(r, opt.cg_rtol, opt.cg_max_iter, Vec<double>(), ki);
            res.krylov_iters += ki.iterations;
            if (!ki.converged) ++res.krylov_failures;
            Mat<T> Wn = res.W;
            Vec<T> an = res.a;
            detail::step_back<T>(res.W, res.a, X, c, act, Wn, an);
            Vec<double> rn;
            if (Wn.allFinite() && an.allFinite()) rn = detail::residual<T>(Wn, an, X, y, act);
            const double pred = rn2 - lam * lam * c.squaredNorm();
            if (rn.size() && rn.allFinite() && rn.squaredNorm() < rn2) {
                const double rho = pred > 0 ? (rn2 - rn.squaredNorm()) / pred : 1.0;
                res.W = std::move(Wn);
                res.a = std::move(an);
                r = std::move(rn);
                rn2 = r.squaredNorm();
                rmax = detail::max_abs(r);
                const double q = 2 * std::min(rho, 1.0) - 1;
                lam = std::max(lam * std::max(1.0 / 3, 1 - q * q * q), opt.lambda_min * mu);
                nu = 2;
                accepted = true;
            } else {
                lam *= nu;
                nu *= 2;
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
