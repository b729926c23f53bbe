// flatext/lanczos.hpp: the largest eigenvalues of the Hessian of L by Lanczos
// on exact Hessian-vector products (kernels.hpp: hvp), with full
// reorthogonalization. Parameters are flattened as theta = [vec(W), a]
// (W row-major), P = m (d + 1).
#pragma once

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>
#include <random>

#include "kernels.hpp"

namespace flatext {

struct EigenResult {
    Vec<double> values;     ///< the k largest (algebraic) eigenvalues, descending
    Vec<double> residuals;  ///< Lanczos residual bounds |beta_j s_ji| of each
    int iterations = 0;
    bool converged = false;
};

/// k largest eigenvalues of a symmetric operator op(v, out) of size P.
/// Stops when every wanted Ritz pair has residual <= tol * max(|theta_1|, 1e-300),
/// or after max_iter steps (P at most: the Krylov space is then exhausted).
/// A template (Real is double) so that a translation unit that includes this header
/// without calling it does not instantiate Eigen's eigensolvers (several seconds of
/// compile time per TU, docs/cpp.md).
template <class Op, class Real = double>
EigenResult lanczos_top(const Op& op, Index P, int k, int max_iter, double tol, std::uint64_t seed) {
    using MatR = Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic>;
    if (k < 1) throw std::invalid_argument("k must be >= 1; got " + std::to_string(k));
    if (k > P)
        throw std::invalid_argument("k must be <= the number of parameters m*(d+1) = " + std::to_string(P) + "; got " +
                                    std::to_string(k));
    if (!(tol > 0.0) || !std::isfinite(tol)) throw std::invalid_argument("tol must be finite and > 0");
    if (max_iter < 0) throw std::invalid_argument("max_iter must be >= 0 (0: automatic)");
    const Index maxit = std::min<Index>(P, max_iter > 0 ? max_iter : std::max(10 * k + 60, 150));
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> nd;
    MatR Q(P, maxit);
    std::vector<double> alpha, beta;
    Vec<Real> q(P), w(P);
    for (Index i = 0; i < P; ++i) q[i] = nd(rng);
    q /= q.norm();
    EigenResult res;
    // A breakdown (beta ~ 0) means the Krylov space is invariant: its Ritz
    // values are exact, but copies of repeated eigenvalues (e.g. the zero
    // eigenvalues of dead neurons) lie outside it. Lanczos then restarts from a
    // random vector orthogonal to Q (a new block of the block-diagonal T,
    // starting at column b0) and only stops once the latest block's top Ritz
    // value is converged and not above the k-th wanted value.
    Index b0 = 0;
    double hscale = 0.0;
    bool broke = false;
    auto ritz = [&](Index j, bool final_) {
        MatR Tm = MatR::Zero(j, j);
        for (Index i = 0; i < j; ++i) {
            Tm(i, i) = alpha[std::size_t(i)];
            if (i + 1 < j) Tm(i, i + 1) = Tm(i + 1, i) = beta[std::size_t(i)];
        }
        Eigen::SelfAdjointEigenSolver<MatR> es(Tm);
        const Index kk = std::min<Index>(k, j);
        res.values.resize(kk);
        res.residuals.resize(kk);
        const double bj = beta[std::size_t(j - 1)];
        bool ok = kk == k;
        const double scale = std::max(std::abs(es.eigenvalues()[j - 1]), 1e-300);
        for (Index i = 0; i < kk; ++i) {
            res.values[i] = es.eigenvalues()[j - 1 - i];
            res.residuals[i] = std::abs(bj * es.eigenvectors()(j - 1, j - 1 - i));
            if (res.residuals[i] > tol * scale) ok = false;
        }
        if (ok && broke && kk > 0) {
            const Index nb = j - b0;  // the latest block
            Eigen::SelfAdjointEigenSolver<MatR> eb(Tm.block(b0, b0, nb, nb));
            const double top = eb.eigenvalues()[nb - 1];
            const double rtop = std::abs(bj * eb.eigenvectors()(nb - 1, nb - 1));
            const bool done = rtop <= tol * scale && top <= res.values[kk - 1] + tol * scale;
            if (!done) ok = false;
        }
        res.iterations = int(j);
        res.converged = ok || (final_ && j == P);
        return res.converged;
    };
    for (Index j = 0; j < maxit; ++j) {
        Q.col(j) = q;
        op(q, w);
        hscale = std::max(hscale, w.stableNorm());  // ||H q||: the operator's scale so far
        const double al = q.dot(w);
        alpha.push_back(al);
        // full reorthogonalization (twice is enough)
        for (int pass = 0; pass < 2; ++pass) w -= Q.leftCols(j + 1) * (Q.leftCols(j + 1).transpose() * w);
        double b = w.stableNorm();                   // stable: plain norm() squares 1e-200 to 0
        const bool breakdown = b <= 1e-12 * hscale;  // relative: H may be 1e-300 or 1e300
        beta.push_back(breakdown ? 0.0 : b);
        if (breakdown) broke = true;
        const bool last = j + 1 == maxit;
        if (ritz(j + 1, last) || last) break;
        if (breakdown) {
            // invariant subspace found: continue from a fresh direction orthogonal to it
            for (Index i = 0; i < P; ++i) w[i] = nd(rng);
            for (int pass = 0; pass < 2; ++pass) w -= Q.leftCols(j + 1) * (Q.leftCols(j + 1).transpose() * w);
            b = w.stableNorm();
            if (b == 0.0) break;
            q = w / b;
            b0 = j + 1;
            continue;
        }
        q = w / b;
    }
    return res;
}

/// The k largest eigenvalues of the Hessian of L at (W, a).
template <class T>
EigenResult hessian_top_eigenvalues(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& y,
                                    const Activation& act, int k = 1, int max_iter = 0, double tol = 1e-8,
                                    std::uint64_t seed = 0) {
    const Index m = W.rows(), d = W.cols(), P = m * (d + 1);
    Mat<T> VW(m, d);
    Vec<T> va(m);
    auto op = [&](const Vec<double>& v, Vec<double>& out) {
        for (Index i = 0; i < m * d; ++i) VW.data()[i] = T(v[i]);
        for (Index i = 0; i < m; ++i) va[i] = T(v[m * d + i]);
        auto hv = hvp<T>(W, a, X, y, VW, va, act);
        for (Index i = 0; i < m * d; ++i) out[i] = double(hv.first.data()[i]);
        for (Index i = 0; i < m; ++i) out[m * d + i] = double(hv.second[i]);
    };
    return lanczos_top(op, P, k, max_iter, tol, seed);
}

}  // namespace flatext
