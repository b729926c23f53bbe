// flatext/kernels.hpp: fused, tiled kernels for f(x) = sum_i a_i sigma(w_i . x).
//
// Conventions (DESIGN.md section 2): W (m, d) rows w_i, a (m), X (n, d) rows
// x_j, y (n); z_ij = w_i . x_j; r_j = f(x_j) - y_j; s_j = ||x_j||^2;
//
//   L(theta) = (1/(2n)) sum_j r_j^2.
//
// Every kernel walks X in row tiles (tiling.hpp): for a tile it forms the
// tile's pre-activations Z_t = X_t W^T (one GEMM), reduces them to the
// per-row quantities it needs, and accumulates; the n x m matrix Z is never
// held whole. Per-neuron and scalar sums accumulate in double.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "activation.hpp"
#include "config.hpp"
#include "gemm.hpp"
#include "tiling.hpp"

namespace flatext {

/// A value with its gradient with respect to (W, a).
template <class T>
struct ValueGrad {
    T value{};
    Mat<T> W;  ///< (m, d)
    Vec<T> a;  ///< (m)
};

/// The exact Hessian trace split into its parts (DESIGN.md section 3).
template <class T>
struct TraceParts {
    T total{};         ///< T = G + R
    T gauss_newton{};  ///< G = (1/n) sum_j ||grad_theta f(x_j)||^2
    T residual{};      ///< R = (1/n) sum_j r_j Tr hess_theta f(x_j)
    T loss{};          ///< L at the same point (free by-product)
    Vec<T> per_neuron;    ///< T_i = A_i + B_i
    Vec<T> per_neuron_a;  ///< A_i = (1/n) sum_j sigma(z_ij)^2 (the a_i diagonal entry)
    Vec<T> per_neuron_w;  ///< B_i = (1/n) sum_j [a_i^2 sigma'^2 s_j + r_j a_i sigma'' s_j] (the w_i block)
};

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

template <class T>
Mat<T> reduce_grad_chunks(const std::vector<T>& acc, Index chunks, Index m, Index d, double scale) {
    Mat<T> out(m, d);
    const Index len = m * d;
    std::vector<double> sum(std::size_t(len), 0.0);
    for (Index c = 0; c < chunks; ++c)
        for (Index k = 0; k < len; ++k) sum[std::size_t(k)] += double(acc[std::size_t(c * len + k)]);
    for (Index k = 0; k < len; ++k) out.data()[k] = T(sum[std::size_t(k)] * scale);
    return out;
}

/// f_j for one row of pre-activations.
template <class T, class S>
inline T row_output(const S sig, const T* __restrict z, const T* __restrict a, Index m) {
    T f = T(0);
#pragma omp simd reduction(+ : f)
    for (Index i = 0; i < m; ++i) {
        const auto s = sig.template eval<0>(z[i]);
        f += a[i] * s.v0;
    }
    return f;
}

}  // namespace detail

/// Network outputs f(x_j), shape (n).
template <class T>
Vec<T> forward(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const Activation& act) {
    act.validate();
    detail::check_network(W, a, X);
    const Index n = X.rows(), m = W.rows();
    Vec<T> out(n);
    TilePlan plan(n, m, 0, sizeof(T));
    dispatch_sigma<T>(act, [&](auto sig) {
        parallel_chunks(plan, [&](Index c) {
            std::vector<T> Z(std::size_t(plan.tile * m));
            detail::walk_tiles<T>(plan, c, X, W, Z, [&](Index r0, Index rows, const T* Zt) {
                for (Index j = 0; j < rows; ++j) out[r0 + j] = detail::row_output(sig, Zt + j * m, a.data(), m);
            });
        }, detail::gemm_work(X, W));
    });
    return out;
}

/// L = (1/(2n)) sum_j r_j^2.
template <class T>
T loss(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& y, const Activation& act) {
    detail::check_labels(X, y);
    const Vec<T> f = forward<T>(W, a, X, act);
    double acc = 0.0;
    for (Index j = 0; j < f.size(); ++j) {
        const double r = double(f[j]) - double(y[j]);
        acc += r * r;
    }
    return T(acc / (2.0 * double(X.rows())));
}

/// L and its gradient: dL/da_i = (1/n) sum_j r_j sigma(z_ij),
/// dL/dw_i = (1/n) sum_j r_j a_i sigma'(z_ij) x_j. Two GEMMs per tile.
template <class T>
ValueGrad<T> loss_grad(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& y,
                       const Activation& act) {
    act.validate();
    detail::check_network(W, a, X);
    detail::check_labels(X, y);
    const Index n = X.rows(), d = X.cols(), m = W.rows();
    TilePlan plan(n, m, m * d, sizeof(T));
    std::vector<double> acc(std::size_t(plan.chunks * (m + 1)), 0.0);  // per chunk: ga (m), loss
    std::vector<T> gacc(std::size_t(plan.chunks * m * d), T(0));
    dispatch_sigma<T>(act, [&](auto sig) {
        parallel_chunks(plan, [&](Index c) {
            std::vector<T> Z(std::size_t(plan.tile * m));
            double* ga = &acc[std::size_t(c * (m + 1))];
            double& L = ga[m];
            T* G = &gacc[std::size_t(c * m * d)];
            detail::walk_tiles<T>(plan, c, X, W, Z, [&](Index r0, Index rows, T* Zt) {
                const auto sl = sig;  // a local copy: provably not aliased by the stores below
                std::vector<T> tgv(static_cast<std::size_t>(m), T(0));
                T* __restrict tg = tgv.data();
                for (Index j = 0; j < rows; ++j) {
                    T* z = Zt + j * m;
                    const T r = detail::row_output(sig, z, a.data(), m) - y[r0 + j];
                    L += double(r) * double(r);
#pragma omp simd
                    for (Index i = 0; i < m; ++i) {
                        const auto s = sl.template eval<1>(z[i]);
                        tg[i] += r * s.v0;
                        z[i] = r * a[i] * s.v1;  // C_ij, overwrites Z in place
                    }
                }
                for (Index i = 0; i < m; ++i) ga[i] += double(tg[i]);  // tile sums in T, flushed to double
                gemm::ctx_acc(Zt, rows, m, X.row(r0).data(), d, X.outerStride(), G);
            });
        }, detail::gemm_work(X, W));
    });
    const auto tot = detail::reduce_chunks(acc, plan.chunks, m + 1);
    ValueGrad<T> out;
    out.value = T(tot[std::size_t(m)] / (2.0 * double(n)));
    out.a.resize(m);
    for (Index i = 0; i < m; ++i) out.a[i] = T(tot[std::size_t(i)] / double(n));
    out.W = detail::reduce_grad_chunks(gacc, plan.chunks, m, d, 1.0 / double(n));
    return out;
}

/// The exact Hessian trace of L and its parts (DESIGN.md section 3):
///   ||grad f(x_j)||^2 = sum_i [sigma^2 + a_i^2 sigma'^2 s_j],
///   Tr hess f(x_j)    = sum_i a_i sigma'' s_j,
///   T = (1/n) sum_j [||grad f(x_j)||^2 + r_j Tr hess f(x_j)] = G + R.
/// One GEMM per tile.
template <class T>
TraceParts<T> hessian_trace_parts(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& y,
                                  const Activation& act) {
    act.validate();
    detail::check_network(W, a, X);
    detail::check_labels(X, y);
    const Index n = X.rows(), m = W.rows();
    const bool linear = act.piecewise_linear();
    TilePlan plan(n, m, 0, sizeof(T));
    const Index len = 3 * m + 1;  // per chunk: A (m), D (m), R (m), sum r^2
    std::vector<double> acc(std::size_t(plan.chunks * len), 0.0);
    dispatch_sigma<T>(act, [&](auto sig) {
        parallel_chunks(plan, [&](Index c) {
            std::vector<T> Z(std::size_t(plan.tile * m));
            // a tile's column sums run in T (vectorized, <= 256 terms) and are
            // flushed into the chunk's double accumulators after each tile
            std::vector<T> tA(static_cast<std::size_t>(m)), tD(tA.size()), tR(tA.size());
            double* A = &acc[std::size_t(c * len)];
            double* D = A + m;  // sum_j sigma'^2 s_j        (times a_i^2 at the end)
            double* R = D + m;  // sum_j r_j sigma'' s_j      (times a_i at the end)
            double& L = R[m];
            detail::walk_tiles<T>(plan, c, X, W, Z, [&](Index r0, Index rows, const T* Zt) {
                const auto sl = sig;  // a local copy: provably not aliased by the stores below
                std::fill(tA.begin(), tA.end(), T(0));
                std::fill(tD.begin(), tD.end(), T(0));
                std::fill(tR.begin(), tR.end(), T(0));
                T* pA = tA.data();
                T* pD = tD.data();
                T* pR = tR.data();
                for (Index j = 0; j < rows; ++j) {
                    const T* z = Zt + j * m;
                    const T sj = X.row(r0 + j).squaredNorm();
                    const T r = detail::row_output(sig, z, a.data(), m) - y[r0 + j];
                    L += double(r) * double(r);
                    if (linear) {
#pragma omp simd
                        for (Index i = 0; i < m; ++i) {
                            const auto s = sl.template eval<1>(z[i]);
                            pA[i] += s.v0 * s.v0;
                            pD[i] += s.v1 * s.v1 * sj;
                        }
                    } else {
                        const T rs = r * sj;
#pragma omp simd
                        for (Index i = 0; i < m; ++i) {
                            const auto s = sl.template eval<2>(z[i]);
                            pA[i] += s.v0 * s.v0;
                            pD[i] += s.v1 * s.v1 * sj;
                            pR[i] += rs * s.v2;
                        }
                    }
                }
                for (Index i = 0; i < m; ++i) {
                    A[i] += double(pA[i]);
                    D[i] += double(pD[i]);
                    R[i] += double(pR[i]);
                }
            });
        }, detail::gemm_work(X, W));
    });
    const auto tot = detail::reduce_chunks(acc, plan.chunks, len);
    TraceParts<T> out;
    out.per_neuron.resize(m);
    out.per_neuron_a.resize(m);
    out.per_neuron_w.resize(m);
    double G = 0.0, R = 0.0;
    const double inv = 1.0 / double(n);
    for (Index i = 0; i < m; ++i) {
        const double ai = double(a[i]);
        const double Ai = tot[std::size_t(i)] * inv, Bgi = ai * ai * tot[std::size_t(m + i)] * inv,
                     Bri = ai * tot[std::size_t(2 * m + i)] * inv;
        out.per_neuron_a[i] = T(Ai);
        out.per_neuron_w[i] = T(Bgi + Bri);
        out.per_neuron[i] = T(Ai + Bgi + Bri);
        G += Ai + Bgi;
        R += Bri;
    }
    out.gauss_newton = T(G);
    out.residual = T(R);
    out.total = T(G + R);
    out.loss = T(tot[std::size_t(3 * m)] * inv * 0.5);
    return out;
}

/// T = Tr hess L (see hessian_trace_parts).
template <class T>
T hessian_trace(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& y,
                const Activation& act) {
    return hessian_trace_parts<T>(W, a, X, y, act).total;
}

/// T and its gradient (DESIGN.md section 3), with q_j = s_j sum_k a_k sigma''(z_kj):
///   dT/da_i = (1/n) sum_j [2 a_i sigma'^2 s_j + r_j sigma'' s_j + q_j sigma],
///   dT/dw_i = (1/n) sum_j C_ij x_j,
///   C_ij    = 2 sigma sigma' + 2 a_i^2 sigma' sigma'' s_j + r_j a_i sigma''' s_j + q_j a_i sigma'.
/// Two GEMMs per tile.
template <class T>
ValueGrad<T> hessian_trace_grad(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& y,
                                const Activation& act) {
    act.validate();
    detail::check_network(W, a, X);
    detail::check_labels(X, y);
    const Index n = X.rows(), d = X.cols(), m = W.rows();
    const bool linear = act.piecewise_linear();
    TilePlan plan(n, m, m * d, sizeof(T));
    const Index len = m + 1;  // per chunk: ga (m), trace
    std::vector<double> acc(std::size_t(plan.chunks * len), 0.0);
    std::vector<T> gacc(std::size_t(plan.chunks * m * d), T(0));
    dispatch_sigma<T>(act, [&](auto sig) {
        parallel_chunks(plan, [&](Index c) {
            std::vector<T> Z(std::size_t(plan.tile * m));
            double* ga = &acc[std::size_t(c * len)];
            double& tr = ga[m];
            T* G = &gacc[std::size_t(c * m * d)];
            detail::walk_tiles<T>(plan, c, X, W, Z, [&](Index r0, Index rows, T* Zt) {
                const auto sl = sig;  // a local copy: provably not aliased by the stores below
                // Per-neuron column sums of the tile, in T (no reductions in the hot loops, so
                // they vectorize), flushed to double once per tile:
                //   sA = sum_j sigma^2, sD = sum_j sigma'^2 s_j, sR = sum_j r_j sigma'' s_j,
                //   sQ = sum_j q_j sigma; then T_i = sA + a_i^2 sD + a_i sR and
                //   dT/da_i = 2 a_i sD + sR + sQ (times 1/n).
                std::vector<T> buf(static_cast<std::size_t>(4 * m), T(0));
                T* __restrict sA = buf.data();
                T* __restrict sD = sA + m;
                T* __restrict sR = sD + m;
                T* __restrict sQ = sR + m;
                for (Index j = 0; j < rows; ++j) {
                    T* z = Zt + j * m;
                    const T sj = X.row(r0 + j).squaredNorm();
                    T f = T(0), h = T(0);
                    if (!linear) {
#pragma omp simd reduction(+ : f, h)
                        for (Index i = 0; i < m; ++i) {
                            const auto s = sl.template eval<2>(z[i]);
                            f += a[i] * s.v0;
                            h += a[i] * s.v2;
                        }
                    } else {
                        f = detail::row_output(sig, z, a.data(), m);
                    }
                    const T r = f - y[r0 + j], q = sj * h, rs = r * sj;
                    if (linear) {
#pragma omp simd
                        for (Index i = 0; i < m; ++i) {
                            const auto s = sl.template eval<1>(z[i]);
                            sA[i] += s.v0 * s.v0;
                            sD[i] += s.v1 * s.v1 * sj;
                            z[i] = T(2) * s.v0 * s.v1;  // C_ij: the second and third derivatives vanish
                        }
                    } else {
#pragma omp simd
                        for (Index i = 0; i < m; ++i) {
                            const auto s = sl.template eval<3>(z[i]);
                            const T ai = a[i];
                            sA[i] += s.v0 * s.v0;
                            sD[i] += s.v1 * s.v1 * sj;
                            sR[i] += rs * s.v2;
                            sQ[i] += q * s.v0;
                            z[i] = T(2) * s.v0 * s.v1 + T(2) * ai * ai * s.v1 * s.v2 * sj + rs * ai * s.v3 +
                                   q * ai * s.v1;
                        }
                    }
                }
                double trt = 0.0;
                for (Index i = 0; i < m; ++i) {
                    const double ai = double(a[i]);
                    trt += double(sA[i]) + ai * ai * double(sD[i]) + ai * double(sR[i]);
                    ga[i] += 2.0 * ai * double(sD[i]) + double(sR[i]) + double(sQ[i]);
                }
                tr += trt;
                gemm::ctx_acc(Zt, rows, m, X.row(r0).data(), d, X.outerStride(), G);
            });
        }, detail::gemm_work(X, W));
    });
    const auto tot = detail::reduce_chunks(acc, plan.chunks, len);
    ValueGrad<T> out;
    out.value = T(tot[std::size_t(m)] / double(n));
    out.a.resize(m);
    for (Index i = 0; i < m; ++i) out.a[i] = T(tot[std::size_t(i)] / double(n));
    out.W = detail::reduce_grad_chunks(gacc, plan.chunks, m, d, 1.0 / double(n));
    return out;
}

/// Exact Hessian-vector product H v of L, v = (VW, va):
///   (Jv)_j = sum_i [va_i sigma(z_ij) + a_i sigma'(z_ij) u_ij],   u_ij = VW_i . x_j,
///   (Hv)_{a_i} = (1/n) sum_j [(Jv)_j sigma + r_j sigma' u_ij],
///   (Hv)_{w_i} = (1/n) sum_j [(Jv)_j a_i sigma' + r_j (sigma' va_i + a_i sigma'' u_ij)] x_j.
/// Three GEMMs per tile.
template <class T>
std::pair<Mat<T>, Vec<T>> hvp(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& y,
                              const MatRef<T>& VW, const VecRef<T>& va, const Activation& act) {
    act.validate();
    detail::check_network(W, a, X);
    detail::check_labels(X, y);
    if (VW.rows() != W.rows() || VW.cols() != W.cols())
        throw std::invalid_argument("VW must have the shape of W");
    if (va.size() != a.size()) throw std::invalid_argument("va must have the shape of a");
    const Index n = X.rows(), d = X.cols(), m = W.rows();
    const bool linear = act.piecewise_linear();
    TilePlan plan(n, 2 * m, m * d, sizeof(T));
    std::vector<double> acc(std::size_t(plan.chunks * m), 0.0);
    std::vector<T> gacc(std::size_t(plan.chunks * m * d), T(0));
    dispatch_sigma<T>(act, [&](auto sig) {
        parallel_chunks(plan, [&](Index c) {
            std::vector<T> Z(std::size_t(plan.tile * m)), U(std::size_t(plan.tile * m));
            double* ha = &acc[std::size_t(c * m)];
            T* G = &gacc[std::size_t(c * m * d)];
            detail::walk_tiles<T>(plan, c, X, W, Z, [&](Index r0, Index rows, T* Zt) {
                const auto sl = sig;  // a local copy: provably not aliased by the stores below
                std::vector<T> tgv(static_cast<std::size_t>(m), T(0));
                T* __restrict tg = tgv.data();
                gemm::xwt(X.row(r0).data(), rows, d, X.outerStride(), VW.data(), m, VW.outerStride(), U.data());
                for (Index j = 0; j < rows; ++j) {
                    T* z = Zt + j * m;
                    const T* u = U.data() + j * m;
                    T f = T(0), jv = T(0);
                    const T* __restrict ap = a.data();
                    const T* __restrict vap = va.data();
#pragma omp simd reduction(+ : f, jv)
                    for (Index i = 0; i < m; ++i) {
                        const auto s = sl.template eval<1>(z[i]);
                        f += ap[i] * s.v0;
                        jv += vap[i] * s.v0 + ap[i] * s.v1 * u[i];
                    }
                    const T r = f - y[r0 + j];
                    if (linear) {
#pragma omp simd
                        for (Index i = 0; i < m; ++i) {
                            const auto s = sl.template eval<1>(z[i]);
                            tg[i] += jv * s.v0 + r * s.v1 * u[i];
                            z[i] = jv * a[i] * s.v1 + r * s.v1 * va[i];
                        }
                    } else {
#pragma omp simd
                        for (Index i = 0; i < m; ++i) {
                            const auto s = sl.template eval<2>(z[i]);
                            tg[i] += jv * s.v0 + r * s.v1 * u[i];
                            z[i] = jv * a[i] * s.v1 + r * (s.v1 * va[i] + a[i] * s.v2 * u[i]);
                        }
                    }
                }
                for (Index i = 0; i < m; ++i) ha[i] += double(tg[i]);  // tile sums in T, flushed to double
                gemm::ctx_acc(Zt, rows, m, X.row(r0).data(), d, X.outerStride(), G);
            });
        }, detail::gemm_work(X, W));
    });
    const auto tot = detail::reduce_chunks(acc, plan.chunks, m);
    Vec<T> ha(m);
    for (Index i = 0; i < m; ++i) ha[i] = T(tot[std::size_t(i)] / double(n));
    return {detail::reduce_grad_chunks(gacc, plan.chunks, m, d, 1.0 / double(n)), ha};
}

}  // namespace flatext
