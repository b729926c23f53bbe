// flatext/pattern_gram.hpp: K = J J^T applied from a stored activation pattern
// (piecewise-linear activations, p = 1; docs/design.md section 5).
//
// For p = 1, sigma(z) = sigma'(z) z. With s_ij = sigma'(z_ij) in {1, -neg, 0}
// (z_ij > 0, < 0, = 0) and C = (s o v)^T X (m x d, C_i = sum_j v_j s_ij x_j):
//
//   J^T v = ((J^T v)_w_i, (J^T v)_a_i) = (a_i C_i, w_i . C_i),
//   (K v)_j = sum_i s_ij x_j . Q_i,   Q_i = (w_i . C_i) w_i + a_i^2 C_i.
//
// The pattern is formed once from X W^T (one GEMM-equivalent) and kept as bits
// (n ceil(m/64) words per sign, one sign when neg = 0: n m / 8 bytes, 25 MB at
// n = 10^4, m = 2 10^4); each K v is then two GEMM-equivalents (the tiles'
// C accumulation and X_t Q^T) instead of the four of vjp + jvp, which recompute
// X_t W^T each. The tiles, chunks and chunk-order sums are those of every
// kernel (tiling.hpp), so the result does not depend on the thread count. The
// n x m pre-activations are never held: only their signs.
#pragma once

#include <cstdint>
#include <vector>

#include "activation.hpp"
#include "skeleton.hpp"
#include "tiling.hpp"

namespace flatext {

/// Bytes of the stored pattern above which PatternGram is not used (the caller falls back to vjp + jvp).
inline constexpr double kPatternBudgetBytes = double(std::size_t(128) << 20);

template <class T>
class PatternGram {
  public:
    /// Bytes the pattern of an (n, m) problem needs.
    static double bytes(Index n, Index m, double neg) {
        return double(n) * double((m + 63) / 64) * 8.0 * (neg != 0.0 ? 2.0 : 1.0);
    }
    /// Applies for p = 1 within the memory budget.
    static bool usable(const Activation& act, Index n, Index m) {
        return act.piecewise_linear() && bytes(n, m, act.neg) <= kPatternBudgetBytes;
    }

    PatternGram(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const Activation& act)
        : W_(W), a_(a), X_(X), c_(T(act.neg)), words_((W.rows() + 63) / 64) {
        if (!act.piecewise_linear()) throw std::invalid_argument("PatternGram needs a piecewise-linear activation");
        detail::check_network(W, a, X);
        const Index n = X.rows(), m = W.rows();
        pos_.assign(std::size_t(n * words_), 0);
        if (c_ != T(0)) neg_.assign(std::size_t(n * words_), 0);
        TilePlan plan(n, m, 0, sizeof(T));
        parallel_chunks(
            plan,
            [&](Index c) {
                std::vector<T> Z(std::size_t(plan.tile * m));
                detail::walk_tiles<T>(plan, c, X, W, Z, [&](Index r0, Index rows, const T* Zt) {
                    for (Index j = 0; j < rows; ++j) pack_row(Zt + j * m, m, r0 + j);
                });
            },
            detail::gemm_work(X, W));
    }

    /// K v (double in and out; the products in T like vjp / jvp).
    Vec<double> apply(const Vec<double>& v) const {
        const Index n = X_.rows(), d = X_.cols(), m = W_.rows();
        // pass 1: C = (s o v)^T X, per chunk, summed in chunk order
        TilePlan p1(n, m, m * d, sizeof(T));
        std::vector<T> gacc(std::size_t(p1.chunks * m * d), T(0));
        parallel_chunks(
            p1,
            [&](Index c) {
                std::vector<T> B(std::size_t(p1.tile * m));
                T* G = &gacc[std::size_t(c * m * d)];
                for (Index t = p1.chunk_begin(c); t < p1.chunk_begin(c + 1); ++t) {
                    const Index r0 = p1.row_begin(t), rows = p1.rows(t);
                    for (Index j = 0; j < rows; ++j) unpack_row(r0 + j, T(v[r0 + j]), B.data() + j * m, m);
                    gemm::ctx_acc(B.data(), rows, m, X_.row(r0).data(), d, X_.outerStride(), G);
                }
            },
            detail::gemm_work(X_, W_));
        const Mat<T> C = detail::reduce_grad_chunks(gacc, p1.chunks, m, d, 1.0);
        // Q_i = (w_i . C_i) w_i + a_i^2 C_i
        Mat<T> Q(m, d);
        for (Index i = 0; i < m; ++i) {
            const T wc = W_.row(i).dot(C.row(i));
            Q.row(i) = wc * W_.row(i) + (a_[i] * a_[i]) * C.row(i);
        }
        // pass 2: (K v)_j = sum_i s_ij (X_t Q^T)_ji
        Vec<double> out(n);
        TilePlan p2(n, m, 0, sizeof(T));
        parallel_chunks(
            p2,
            [&](Index c) {
                std::vector<T> U(std::size_t(p2.tile * m)), S(static_cast<std::size_t>(m));
                for (Index t = p2.chunk_begin(c); t < p2.chunk_begin(c + 1); ++t) {
                    const Index r0 = p2.row_begin(t), rows = p2.rows(t);
                    gemm::xwt(X_.row(r0).data(), rows, d, X_.outerStride(), Q.data(), m, Q.outerStride(), U.data());
                    for (Index j = 0; j < rows; ++j) {
                        unpack_row(r0 + j, T(1), S.data(), m);
                        const T* u = U.data() + j * m;
                        const T* s = S.data();
                        T acc = T(0);
#pragma omp simd reduction(+ : acc)
                        for (Index i = 0; i < m; ++i) acc += s[i] * u[i];
                        out[r0 + j] = double(acc);
                    }
                }
            },
            detail::gemm_work(X_, W_));
        return out;
    }

  private:
    void pack_row(const T* z, Index m, Index row) {
        std::uint64_t* P = &pos_[std::size_t(row * words_)];
        std::uint64_t* N = neg_.empty() ? nullptr : &neg_[std::size_t(row * words_)];
        for (Index k = 0; k < words_; ++k) {
            const Index i0 = 64 * k, len = std::min<Index>(64, m - i0);
            std::uint64_t p = 0, q = 0;
            for (Index b = 0; b < len; ++b) {
                p |= std::uint64_t(z[i0 + b] > T(0)) << b;
                q |= std::uint64_t(z[i0 + b] < T(0)) << b;
            }
            P[k] = p;
            if (N) N[k] = q;
        }
    }
    /// out_i = scale * s_i for the samples' row (s = 1 where z > 0, -neg where z < 0, 0 at z = 0).
    void unpack_row(Index row, T scale, T* __restrict out, Index m) const {
        const std::uint64_t* P = &pos_[std::size_t(row * words_)];
        const std::uint64_t* N = neg_.empty() ? nullptr : &neg_[std::size_t(row * words_)];
        const T sn = -c_ * scale;
        for (Index k = 0; k < words_; ++k) {
            const Index i0 = 64 * k, len = std::min<Index>(64, m - i0);
            const std::uint64_t p = P[k], q = N ? N[k] : 0;
            T* o = out + i0;
#pragma omp simd
            for (Index b = 0; b < len; ++b)
                o[b] = scale * T((p >> b) & std::uint64_t(1)) + sn * T((q >> b) & std::uint64_t(1));
        }
    }

    MatRef<T> W_;
    VecRef<T> a_;
    MatRef<T> X_;
    T c_;
    Index words_;
    std::vector<std::uint64_t> pos_, neg_;
};

}  // namespace flatext
