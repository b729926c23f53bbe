// flatext/preconditioner.hpp: columns of the Gram matrix K = J J^T without K,
// and the low-rank preconditioner of the matrix-free solves built from them
// (docs/design.md section 5, "Preconditioners").
//
// Columns. With S_ji = sigma(z_ij), D_ji = a_i sigma'(z_ij) (interpolation.hpp),
//
//   K[:, L] = S S_L^T + (X X_L^T) o (D D_L^T)
//
// for a set L of k landmark samples: the landmarks' features (k x m) are
// formed once, then X is walked in the kernels' row tiles, each tile forming
// its own features from Z_t = X_t W^T and three GEMMs (rows x k). Cost
// 2 n m k + n k d multiply-adds; every row is written by one task, so the
// columns do not depend on the thread count.
//
// Low-rank preconditioner (randomly pivoted Cholesky; Chen, Epperly, Tropp and
// Webber 2023, block form): pivots are drawn in blocks with probability
// proportional to the diagonal of the residual K - F F^T, their columns
// formed as above, and F grows by G V e^(-1/2) (G the residual columns, V e V^T
// the eigendecomposition of G's pivot block). With F = U s V^T (thin SVD,
// Lambda = s^2, lambda_k its smallest entry) and the solve's shift mu,
//
//   P^{-1} r = U diag((lambda_k + mu) / (Lambda + mu)) U^T r + (r - U U^T r),
//
// the Nystrom preconditioner of Frangella, Tropp and Udell (2023): the top of
// K's spectrum (a few large outlying eigenvalues and the fast-decaying part
// below them) is mapped to about lambda_k + mu, the rest is left as it is.
// The pivots come from a fixed-seed generator in sequential code: the same
// inputs give the same preconditioner with any thread count.
#pragma once

#include <Eigen/Eigenvalues>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels.hpp"

namespace flatext {
namespace detail {

/// The Gram matrix's features of `rows` rows in place: S <- sigma(Z) (S holds Z = X_t W^T on entry),
/// D <- a o sigma'(Z); rows of m features. (gram() and gram_columns().)
template <class T, class Sig>
void gram_features(const Sig& sig, const VecRef<T>& a, T* S, T* D, Index rows, Index m) {
    for (Index j = 0; j < rows; ++j) {
        const auto sl = sig;  // a local copy: provably not aliased by the stores below
        T* s0 = S + j * m;
        T* s1 = D + j * m;
#pragma omp simd
        for (Index i = 0; i < m; ++i) {
            const auto s = sl.template eval<1>(s0[i]);
            s0[i] = s.v0;
            s1[i] = a[i] * s.v1;
        }
    }
}

}  // namespace detail

/// K[:, idx] (n x idx.size(), double) by the formula at the top of this file.
template <class T>
Eigen::MatrixXd gram_columns(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const Activation& act,
                             const std::vector<Index>& idx) {
    act.validate();
    detail::check_network(W, a, X);
    const Index n = X.rows(), d = X.cols(), m = W.rows(), k = Index(idx.size());
    for (Index l : idx)
        if (l < 0 || l >= n) throw std::invalid_argument("gram_columns: landmark index out of range");
    Eigen::MatrixXd C(n, k);
    if (k == 0) return C;
    Mat<T> XL(k, d);
    for (Index l = 0; l < k; ++l) XL.row(l) = X.row(idx[std::size_t(l)]);
    std::vector<T> SL(std::size_t(k * m)), DL(std::size_t(k * m));
    gemm::init_backend();
    dispatch_sigma<T>(act, [&](auto sig) {
        auto features = [&](T* S, T* D, Index rows) { detail::gram_features<T>(sig, a, S, D, rows, m); };
        gemm::xwt(XL.data(), k, d, d, W.data(), m, W.outerStride(), SL.data());
        features(SL.data(), DL.data(), k);
        // 256-row tiles where m allows (16 MB per buffer): the three GEMMs per tile have inner
        // dimension m, and 16-row tiles (the 2 MB default at m = 8000) ran them slowly (rank 1000
        // at n = 4000, m = 8000: 6.6 s with them, 4.6 s with these)
        TilePlan plan(n, 2 * m, 0, sizeof(T), std::size_t(32) << 20);
        parallel_chunks(
            plan,
            [&](Index c) {
                std::vector<T> Z(std::size_t(plan.tile * m)), D(std::size_t(plan.tile * m)),
                    B1(std::size_t(plan.tile * k)), B2(std::size_t(plan.tile * k)), B3(std::size_t(plan.tile * k));
                detail::walk_tiles<T>(plan, c, X, W, Z, [&](Index r0, Index rows, T* Zt) {
                    features(Zt, D.data(), rows);
                    gemm::xwt(Zt, rows, m, m, SL.data(), k, m, B1.data());
                    gemm::xwt(D.data(), rows, m, m, DL.data(), k, m, B2.data());
                    gemm::xwt(X.row(r0).data(), rows, d, X.outerStride(), XL.data(), k, d, B3.data());
                    for (Index j = 0; j < rows; ++j)
                        for (Index l = 0; l < k; ++l) {
                            const std::size_t q = std::size_t(j * k + l);
                            C(r0 + j, l) = double(B1[q] + B3[q] * B2[q]);
                        }
                });
            },
            2.0 * double(n) * double(m) * double(k));
    });
    return C;
}

/// The low-rank (Nystrom) preconditioner of K + mu I (see the top of this file).
class NystromPreconditioner {
  public:
    NystromPreconditioner() = default;

    /// Builds F with rank <= `rank` by block randomly pivoted Cholesky from K's diagonal `diag`
    /// (gram_diag) and its columns, `block` pivots at a time; then U, Lambda. `seed` fixes the pivots.
    template <class T>
    void build(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const Activation& act,
               const Vec<double>& diag, Index rank, Index block = 128, std::uint64_t seed = 0x5eed) {
        const Index n = X.rows();
        rank = std::clamp<Index>(rank, 0, n);
        Eigen::MatrixXd F(n, rank);
        Vec<double> res = diag.cwiseMax(0.0);
        const double total = res.sum();
        std::mt19937_64 rng(seed);
        std::vector<char> taken(std::size_t(n), 0);
        Index k = 0;
        while (k < rank) {
            // draw up to `block` new pivots with probability proportional to the residual diagonal
            std::vector<double> cum(static_cast<std::size_t>(n));
            double acc = 0;
            for (Index j = 0; j < n; ++j) cum[std::size_t(j)] = acc += taken[std::size_t(j)] ? 0.0 : res[j];
            if (!(acc > 1e-14 * total)) break;  // K is (numerically) reproduced: nothing left to pivot on
            std::vector<Index> idx;
            const Index want = std::min(block, rank - k);
            std::uniform_real_distribution<double> U01(0.0, 1.0);
            for (Index t = 0; t < 4 * want && Index(idx.size()) < want; ++t) {
                const double u = U01(rng) * acc;
                Index j = Index(std::upper_bound(cum.begin(), cum.end(), u) - cum.begin());
                j = std::min(j, n - 1);
                if (taken[std::size_t(j)] || res[j] <= 0) continue;
                taken[std::size_t(j)] = 1;
                idx.push_back(j);
            }
            if (idx.empty()) break;
            std::sort(idx.begin(), idx.end());
            const Index s = Index(idx.size());
            Eigen::MatrixXd G = gram_columns<T>(W, a, X, act, idx);
            Eigen::MatrixXd FS(s, k);
            for (Index l = 0; l < s; ++l) FS.row(l) = F.row(idx[std::size_t(l)]).head(k);
            if (k > 0) G.noalias() -= F.leftCols(k) * FS.transpose();
            Eigen::MatrixXd Gs(s, s);
            for (Index l = 0; l < s; ++l) Gs.row(l) = G.row(idx[std::size_t(l)]);
            Gs = 0.5 * (Gs + Gs.transpose()).eval();
            Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(Gs);
            const Vec<double>& e = es.eigenvalues();
            const double emax = e.size() ? e.maxCoeff() : 0.0;
            std::vector<Index> keep;
            for (Index l = 0; l < s; ++l)
                if (e[l] > 1e-12 * emax && e[l] > 0) keep.push_back(l);
            if (keep.empty()) break;
            const Index q = std::min<Index>(Index(keep.size()), rank - k);
            Eigen::MatrixXd Vk(s, q);
            for (Index l = 0; l < q; ++l)  // the largest q
                Vk.col(l) = es.eigenvectors().col(keep[keep.size() - 1 - std::size_t(l)]) /
                            std::sqrt(e[keep[keep.size() - 1 - std::size_t(l)]]);
            F.middleCols(k, q).noalias() = G * Vk;
            res -= F.middleCols(k, q).rowwise().squaredNorm();
            res = res.cwiseMax(0.0);
            k += q;
        }
        // thin SVD of F through its k x k Gram matrix: F = U s V^T, Lambda = s^2
        if (k == 0) {
            U_.resize(n, 0);
            Lambda_.resize(0);
            return;
        }
        const Eigen::MatrixXd FtF = F.leftCols(k).transpose() * F.leftCols(k);
        Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(FtF);
        const Vec<double>& L = es.eigenvalues();
        const double lmax = L.maxCoeff();
        Index first = 0;
        while (first < k && !(L[first] > 1e-10 * lmax)) ++first;
        const Index r = k - first;
        const Eigen::MatrixXd V = es.eigenvectors().rightCols(r);
        Lambda_ = L.tail(r);
        U_ = F.leftCols(k) * (V * Lambda_.cwiseSqrt().cwiseInverse().asDiagonal());
    }

    Index rank() const { return U_.cols(); }

    /// P^{-1} r for K + mu I: r + U diag((lambda_k + mu)/(Lambda + mu) - 1) U^T r.
    Vec<double> apply(const Vec<double>& r, double mu) const {
        if (U_.cols() == 0) return r;
        const double lk = Lambda_[0];
        const Vec<double> c = U_.transpose() * r;
        const Vec<double> w = ((lk + mu) / (Lambda_.array() + mu) - 1.0).matrix().cwiseProduct(c);
        return r + U_ * w;
    }

  private:
    Eigen::MatrixXd U_;   ///< n x rank, orthonormal columns
    Vec<double> Lambda_;  ///< eigenvalues of F F^T, ascending
};

}  // namespace flatext
