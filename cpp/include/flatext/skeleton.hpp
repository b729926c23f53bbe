// flatext/skeleton.hpp: the tiled-accumulation skeleton every kernel runs on
// (docs/design.md sections 3 and 8).
//
// A pass walks X in the fixed row tiles of a TilePlan (tiling.hpp). Per tile it
// forms Z_t = X_t W^T (and, for a direction pass, U_t = X_t V^T), zeroes the
// chunk's scratch, and calls the kernel's tile body, which reduces Z_t into
// the chunk's own accumulators: `slots` doubles (per-neuron column sums,
// scalars) and, for a gradient pass, an (m x d) matrix to which the skeleton
// adds C^T X_t after the body has left the coefficients C in Z_t's place.
// Chunks are handed to threads dynamically (a slow thread holds back nothing
// but its current chunk); every chunk writes only its own accumulators, and
// they are summed in chunk order afterwards. The partition depends on the
// shapes alone, so the bits never depend on the thread count.
#pragma once

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "config.hpp"
#include "gemm.hpp"
#include "tiling.hpp"

namespace flatext {
namespace detail {

template <class T>
void check_network(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X) {
    if (W.rows() != a.size())
        throw std::invalid_argument("a must have length m = W.shape[0] = " + std::to_string(W.rows()) + "; got " +
                                    std::to_string(a.size()));
    if (X.cols() != W.cols())
        throw std::invalid_argument("X must have d = W.shape[1] = " + std::to_string(W.cols()) + " columns; got " +
                                    std::to_string(X.cols()));
    if (X.rows() == 0) throw std::invalid_argument("X is empty (n = 0)");
    if (W.rows() == 0) throw std::invalid_argument("W is empty (m = 0)");
}

template <class T>
void check_labels(const MatRef<T>& X, const VecRef<T>& y) {
    if (y.size() != X.rows())
        throw std::invalid_argument("y must have length n = X.shape[0] = " + std::to_string(X.rows()) + "; got " +
                                    std::to_string(y.size()));
}

/// A direction v = (VW, va) in parameter space must have the shapes of (W, a).
template <class T>
void check_direction(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& VW, const VecRef<T>& va) {
    if (VW.rows() != W.rows() || VW.cols() != W.cols()) throw std::invalid_argument("VW must have the shape of W");
    if (va.size() != a.size()) throw std::invalid_argument("va must have the shape of a");
}

/// An option that must be finite and > 0 (the options structs' validate()).
inline void check_positive_option(double v, const char* name) {
    if (!(v > 0) || !std::isfinite(v))
        throw std::invalid_argument(std::string(name) + " must be finite and > 0; got " + std::to_string(v));
}

/// An integer option that must be >= low.
inline void check_int_option(long long v, long long low, const char* name) {
    if (v < low)
        throw std::invalid_argument(std::string(name) + " must be >= " + std::to_string(low) + "; got " +
                                    std::to_string(v));
}

/// An output buffer (gradient) must have the shape of what it receives.
inline void check_out(Index rows, Index cols, Index want_rows, Index want_cols, const char* name) {
    if (rows != want_rows || cols != want_cols)
        throw std::invalid_argument(std::string(name) + " must have shape (" + std::to_string(want_rows) + ", " +
                                    std::to_string(want_cols) + "); got (" + std::to_string(rows) + ", " +
                                    std::to_string(cols) + ")");
}

/// Multiply-adds of one X W^T: the work estimate that lets tiny calls stay serial.
template <class T>
double gemm_work(const MatRef<T>& X, const MatRef<T>& W) {
    return double(X.rows()) * double(W.rows()) * double(W.cols());
}

/// Per-chunk walk over the tiles: fn(row0, rows, Z) with Z = X_t W^T (rows x m).
template <class T, class Fn>
void walk_tiles(const TilePlan& plan, Index c, const MatRef<T>& X, const MatRef<T>& W, std::vector<T>& Z, Fn&& fn) {
    const Index d = X.cols(), m = W.rows();
    for (Index t = plan.chunk_begin(c); t < plan.chunk_begin(c + 1); ++t) {
        const Index r0 = plan.row_begin(t), rows = plan.rows(t);
        gemm::xwt(X.row(r0).data(), rows, d, X.outerStride(), W.data(), m, W.outerStride(), Z.data());
        fn(r0, rows, Z.data());
    }
}

/// Sums the chunks' accumulators in chunk order: out[k] = sum_c acc[c*len + k].
inline std::vector<double> reduce_chunks(const std::vector<double>& acc, Index chunks, Index len) {
    std::vector<double> out(std::size_t(len), 0.0);
    for (Index c = 0; c < chunks; ++c)
        for (Index k = 0; k < len; ++k) out[std::size_t(k)] += acc[std::size_t(c * len + k)];
    return out;
}

/// out = scale * sum_c acc_c (chunk order, in double), acc_c the chunks' (m x d) gradients.
template <class T, class Out>
void reduce_grad_into(const std::vector<T>& acc, Index chunks, Index m, Index d, double scale, Out&& out) {
    const Index len = m * d;
    std::vector<double> sum(std::size_t(len), 0.0);
    for (Index c = 0; c < chunks; ++c)
        for (Index k = 0; k < len; ++k) sum[std::size_t(k)] += double(acc[std::size_t(c * len + k)]);
    for (Index i = 0; i < m; ++i)
        for (Index k = 0; k < d; ++k) out(i, k) = T(sum[std::size_t(i * d + k)] * scale);
}

template <class T>
Mat<T> reduce_grad_chunks(const std::vector<T>& acc, Index chunks, Index m, Index d, double scale) {
    Mat<T> out(m, d);
    reduce_grad_into(acc, chunks, m, d, scale, out);
    return out;
}

/// What a pass accumulates per chunk.
struct PassShape {
    Index slots = 0;         ///< double accumulators per chunk (column sums, scalars)
    Index scratch = 0;       ///< T scratch per chunk, zeroed before every tile (a tile's column sums)
    bool grad = false;       ///< an (m x d) accumulator per chunk: += C^T X_t, C left in Z by the body
    bool direction = false;  ///< also U_t = X_t V^T per tile (V of W's shape)
};

/// What a tile body sees.
template <class T>
struct Tile {
    Index r0 = 0, rows = 0;  ///< the tile's rows of X: [r0, r0 + rows)
    T* Z = nullptr;          ///< rows x m, X_t W^T; a gradient body overwrites it with C
    const T* U = nullptr;    ///< rows x m, X_t V^T (direction passes), else nullptr
    double* acc = nullptr;   ///< the chunk's `slots` accumulators
    T* scratch = nullptr;    ///< `scratch` values, zero
};

/// The chunks' accumulators of a finished pass, reduced in chunk order.
template <class T>
struct ChunkSums {
    TilePlan plan;
    Index slots = 0, m = 0, d = 0;
    std::vector<double> acc;  ///< chunks x slots
    std::vector<T> grad;      ///< chunks x (m d), or empty

    /// The slots summed over the chunks (in chunk order).
    std::vector<double> reduce() const { return reduce_chunks(acc, plan.chunks, slots); }
    /// out (m x d) = scale * the gradient accumulators summed in chunk order.
    template <class Out>
    void reduce_grad(double scale, Out&& out) const {
        reduce_grad_into(grad, plan.chunks, m, d, scale, out);
    }
    Mat<T> reduce_grad(double scale) const { return reduce_grad_chunks(grad, plan.chunks, m, d, scale); }
};

/// Runs body(const Tile<T>&) over every tile of X (see the top of this file).
/// V is the direction's W-part for a direction pass (else nullptr).
template <class T, class Body>
ChunkSums<T> tiled_pass(const MatRef<T>& W, const MatRef<T>& X, const MatRef<T>* V, const PassShape& shape,
                        Body&& body) {
    const Index n = X.rows(), d = X.cols(), m = W.rows();
    ChunkSums<T> out{
        TilePlan(n, shape.direction ? 2 * m : m, shape.grad ? m * d : 0, sizeof(T)), shape.slots, m, d, {}, {}};
    const TilePlan& plan = out.plan;
    out.acc.assign(std::size_t(plan.chunks * shape.slots), 0.0);
    if (shape.grad) out.grad.assign(std::size_t(plan.chunks * m * d), T(0));
    parallel_chunks(
        plan,
        [&](Index c) {
            std::vector<T> Z(std::size_t(plan.tile * m)), U(shape.direction ? std::size_t(plan.tile * m) : 0),
                scratch(std::size_t(shape.scratch));
            Tile<T> t;
            t.acc = out.acc.data() + c * shape.slots;
            t.scratch = scratch.data();
            T* G = shape.grad ? out.grad.data() + c * m * d : nullptr;
            walk_tiles<T>(plan, c, X, W, Z, [&](Index r0, Index rows, T* Zt) {
                if (shape.direction)
                    gemm::xwt(X.row(r0).data(), rows, d, X.outerStride(), V->data(), m, V->outerStride(), U.data());
                std::fill(scratch.begin(), scratch.end(), T(0));
                t.r0 = r0;
                t.rows = rows;
                t.Z = Zt;
                t.U = shape.direction ? U.data() : nullptr;
                body(t);
                if (G) gemm::ctx_acc(Zt, rows, m, X.row(r0).data(), d, X.outerStride(), G);
            });
        },
        gemm_work(X, W));
    return out;
}

}  // namespace detail
}  // namespace flatext
