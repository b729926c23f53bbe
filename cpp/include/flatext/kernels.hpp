// flatext/kernels.hpp: fused, tiled kernels for f(x) = sum_i a_i sigma(w_i . x).
//
// Conventions (docs/design.md section 2): W (m, d) rows w_i, a (m), X (n, d) rows
// x_j, y (n); z_ij = w_i . x_j; r_j = f(x_j) - y_j; s_j = ||x_j||^2;
//
//   L(theta) = (1/(2n)) sum_j r_j^2.
//
// Every kernel is a tile body on the skeleton of skeleton.hpp: for a tile it
// gets the tile's pre-activations Z_t = X_t W^T (one GEMM), reduces them to the
// per-row quantities it needs, and accumulates; the n x m matrix Z is never
// held whole. Per-neuron and scalar sums accumulate in double. Each formula
// of docs/design.md sections 2-3 is written once here: the per-neuron trace
// combination (neuron_trace), J^T u (jt_pass: the loss gradient is J^T r / n),
// J v (row_jv: jacobian_product and the HVP), and the trace / Gauss-Newton
// gradient with the loss gradient riding along (curvature_pass, shared with
// objective.hpp).
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "activation.hpp"
#include "config.hpp"
#include "skeleton.hpp"

namespace flatext {

/// A value with its gradient with respect to (W, a).
template <class T>
struct ValueGrad {
    T value{};
    Mat<T> W;  ///< (m, d)
    Vec<T> a;  ///< (m)
};

namespace detail {
/// The checks of a value-and-gradient kernel writing into caller buffers (gW (m, d), ga (m)).
template <class T>
void check_grad_call(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& y,
                     const Activation& act, const Eigen::Ref<Mat<T>>& gW, const Eigen::Ref<Vec<T>>& ga) {
    act.validate();
    check_network(W, a, X);
    check_labels(X, y);
    check_out(gW.rows(), gW.cols(), W.rows(), W.cols(), "gW");
    check_out(ga.size(), 1, W.rows(), 1, "ga");
}

/// A kernel's value and gradient in fresh buffers: ``write(gW, ga)`` fills them and returns the value.
template <class T, class Write>
ValueGrad<T> with_grad_buffers(Index m, Index d, Write&& write) {
    ValueGrad<T> out;
    out.W.resize(m, d);
    out.a.resize(m);
    out.value = write(out.W, out.a);
    return out;
}
}  // namespace detail

/// The exact Hessian trace split into its parts (docs/design.md section 3).
template <class T>
struct TraceParts {
    T total{};            ///< T = G + R
    T gauss_newton{};     ///< G = (1/n) sum_j ||grad_theta f(x_j)||^2
    T residual{};         ///< R = (1/n) sum_j r_j Tr hess_theta f(x_j)
    T loss{};             ///< L at the same point (free by-product)
    Vec<T> per_neuron;    ///< T_i = A_i + B_i
    Vec<T> per_neuron_a;  ///< A_i = (1/n) sum_j sigma(z_ij)^2 (the a_i diagonal entry)
    Vec<T> per_neuron_w;  ///< B_i = (1/n) sum_j [a_i^2 sigma'^2 s_j + r_j a_i sigma'' s_j] (the w_i block)
};

namespace detail {

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

/// (J v)_j = sum_i [va_i sigma(z_ij) + a_i sigma'(z_ij) u_ij] for one row (u_ij = VW_i . x_j);
/// with WithF also f_j = sum_i a_i sigma(z_ij) into *f_out (the same loop).
template <bool WithF, class T, class S>
inline T row_jv(const S sl, const T* z, const T* u, const VecRef<T>& a, const VecRef<T>& va, Index m, T* f_out) {
    // a and va through restrict pointers: the loops vectorize without gathers under generic tuning
    const T* __restrict ap = a.data();
    const T* __restrict vap = va.data();
    T jv = T(0);
    if constexpr (WithF) {
        T f = T(0);
#pragma omp simd reduction(+ : f, jv)
        for (Index i = 0; i < m; ++i) {
            const auto s = sl.template eval<1>(z[i]);
            f += ap[i] * s.v0;
            jv += vap[i] * s.v0 + ap[i] * s.v1 * u[i];
        }
        *f_out = f;
    } else {
        (void)f_out;
#pragma omp simd reduction(+ : jv)
        for (Index i = 0; i < m; ++i) {
            const auto s = sl.template eval<1>(z[i]);
            jv += vap[i] * s.v0 + ap[i] * s.v1 * u[i];
        }
    }
    return jv;
}

/// One neuron's trace terms from its column sums (docs/design.md sections 3-4):
/// A_i = sA scale, the Gauss-Newton part of B_i = a_i^2 sD scale, the residual
/// part a_i sR scale, with sA = sum_j sigma^2, sD = sum_j sigma'^2 s_j,
/// sR = sum_j r_j sigma'' s_j.
struct NeuronTrace {
    double A, Bg, Br;
};
inline NeuronTrace neuron_trace(double ai, double sA, double sD, double sR, double scale) {
    return {sA * scale, ai * ai * sD * scale, ai * sR * scale};
}

/// J^T w with w_j = weight(sig, z_j, j) (docs/design.md section 3): slot i <- sum_j w_j sigma(z_ij),
/// slot m <- sum_j w_j^2, gradient <- sum_j w_j a_i sigma'(z_ij) x_j. The loss gradient is this with
/// w = r (times 1/n), vjp with w = u. Two GEMMs per tile.
template <class T, class Weight>
ChunkSums<T> jt_pass(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const Activation& act,
                     Weight&& weight) {
    const Index m = W.rows();
    return dispatch_sigma<T>(act, [&](auto sig) {
        return tiled_pass<T>(W, X, nullptr, PassShape{m + 1, m, true, false}, [&](const Tile<T>& t) {
            const auto sl = sig;  // a local copy: provably not aliased by the stores below
            T* __restrict tg = t.scratch;
            double* ga = t.acc;
            double& L = ga[m];
            for (Index j = 0; j < t.rows; ++j) {
                T* z = t.Z + j * m;
                const T r = weight(sig, z, t.r0 + j);
                L += double(r) * double(r);
#pragma omp simd
                for (Index i = 0; i < m; ++i) {
                    const auto s = sl.template eval<1>(z[i]);
                    tg[i] += r * s.v0;
                    z[i] = r * a[i] * s.v1;  // C_ij, overwrites Z in place
                }
            }
            for (Index i = 0; i < m; ++i) ga[i] += double(tg[i]);  // tile sums in T, flushed to double
        });
    });
}

/// Which curvature term a curvature_pass differentiates.
enum class Curvature { gauss_newton, trace };

/// The gradient of [Loss] L + lam K, K = T (trace) or G (gauss_newton), in one walk
/// (docs/design.md section 3). Slots: 0..m-1 the a-gradient sums, m the sum of the
/// neurons' K terms, m+1 sum_j r_j^2. With Loss = false (lam = 1) it is the trace gradient.
/// Per tile, the loss coefficients r_j a_i sigma' ride in the same C as K's:
///   C_ij = [Loss] r_j a_i sigma' + lam (2 sigma sigma' + 2 a_i^2 sigma' sigma'' s_j
///                                       + [trace] (r_j a_i sigma''' s_j + q_j a_i sigma')).
/// Two GEMMs per tile.
template <bool Loss, Curvature K, class T>
ChunkSums<T> curvature_pass(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& y,
                            const Activation& act, double lam) {
    constexpr bool trace = K == Curvature::trace;
    const Index m = W.rows();
    const bool linear = act.piecewise_linear();
    const T lt = T(lam);
    return dispatch_sigma<T>(act, [&](auto sig) {
        return tiled_pass<T>(W, X, nullptr, PassShape{m + 2, (Loss ? 5 : 4) * m, true, false}, [&](const Tile<T>& t) {
            const auto sl = sig;  // a local copy: provably not aliased by the stores below
            // Per-neuron column sums of the tile, in T (no reductions in the hot loops, so
            // they vectorize), flushed to double once per tile:
            //   sA = sum_j sigma^2, sD = sum_j sigma'^2 s_j, sR = sum_j r_j sigma'' s_j,
            //   sQ = sum_j q_j sigma, sL = sum_j r_j sigma; then (neuron_trace) T_i = sA + a_i^2 sD + a_i sR,
            //   dT/da_i = 2 a_i sD + sR + sQ, dG/da_i = 2 a_i sD, dL/da_i = sL (times 1/n).
            T* __restrict sA = t.scratch;
            T* __restrict sD = sA + m;
            T* __restrict sR = sD + m;
            T* __restrict sQ = sR + m;
            T* __restrict sL = sQ + m;  // only with Loss
            double* ga = t.acc;
            double& tr = ga[m];
            double& L2 = ga[m + 1];
            for (Index j = 0; j < t.rows; ++j) {
                T* z = t.Z + j * m;
                const T sj = X.row(t.r0 + j).squaredNorm();
                T f = T(0), h = T(0);
                if (trace && !linear) {
#pragma omp simd reduction(+ : f, h)
                    for (Index i = 0; i < m; ++i) {
                        const auto s = sl.template eval<2>(z[i]);
                        f += a[i] * s.v0;
                        h += a[i] * s.v2;
                    }
                } else {
                    f = row_output(sig, z, a.data(), m);
                }
                const T r = f - y[t.r0 + j], q = sj * h, rs = r * sj;
                if constexpr (Loss) L2 += double(r) * double(r);
                if (linear) {
#pragma omp simd
                    for (Index i = 0; i < m; ++i) {
                        const auto s = sl.template eval<1>(z[i]);
                        sA[i] += s.v0 * s.v0;
                        sD[i] += s.v1 * s.v1 * sj;
                        const T c = T(2) * s.v0 * s.v1;  // C_ij: the second and third derivatives vanish
                        if constexpr (Loss) {
                            sL[i] += r * s.v0;
                            z[i] = r * a[i] * s.v1 + lt * c;
                        } else {
                            z[i] = c;
                        }
                    }
                } else if constexpr (trace) {
#pragma omp simd
                    for (Index i = 0; i < m; ++i) {
                        const auto s = sl.template eval<3>(z[i]);
                        const T ai = a[i];
                        sA[i] += s.v0 * s.v0;
                        sD[i] += s.v1 * s.v1 * sj;
                        sR[i] += rs * s.v2;
                        sQ[i] += q * s.v0;
                        const T c =
                            T(2) * s.v0 * s.v1 + T(2) * ai * ai * s.v1 * s.v2 * sj + rs * ai * s.v3 + q * ai * s.v1;
                        if constexpr (Loss) {
                            sL[i] += r * s.v0;
                            z[i] = r * ai * s.v1 + lt * c;
                        } else {
                            z[i] = c;
                        }
                    }
                } else {
#pragma omp simd
                    for (Index i = 0; i < m; ++i) {
                        const auto s = sl.template eval<2>(z[i]);
                        const T ai = a[i];
                        sA[i] += s.v0 * s.v0;
                        sD[i] += s.v1 * s.v1 * sj;
                        const T c = T(2) * s.v0 * s.v1 + T(2) * ai * ai * s.v1 * s.v2 * sj;
                        if constexpr (Loss) {
                            sL[i] += r * s.v0;
                            z[i] = r * ai * s.v1 + lt * c;
                        } else {
                            z[i] = c;
                        }
                    }
                }
            }
            double trt = 0.0;
            for (Index i = 0; i < m; ++i) {
                const double ai = double(a[i]);
                const NeuronTrace nt = neuron_trace(ai, double(sA[i]), double(sD[i]), double(sR[i]), 1.0);
                trt += nt.A + nt.Bg + nt.Br;
                const double gk = 2.0 * ai * double(sD[i]) + double(sR[i]) + double(sQ[i]);
                if constexpr (Loss)
                    ga[i] += double(sL[i]) + lam * gk;
                else
                    ga[i] += gk;
            }
            tr += trt;
        });
    });
}

}  // namespace detail

/// Network outputs f(x_j), shape (n).
template <class T>
Vec<T> forward(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const Activation& act) {
    act.validate();
    detail::check_network(W, a, X);
    const Index m = W.rows();
    Vec<T> out(X.rows());
    dispatch_sigma<T>(act, [&](auto sig) {
        detail::tiled_pass<T>(W, X, nullptr, detail::PassShape{}, [&](const detail::Tile<T>& t) {
            for (Index j = 0; j < t.rows; ++j) out[t.r0 + j] = detail::row_output(sig, t.Z + j * m, a.data(), m);
        });
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

/// L and its gradient written into (gW (m, d), ga (m)); returns L:
/// dL/da_i = (1/n) sum_j r_j sigma(z_ij), dL/dw_i = (1/n) sum_j r_j a_i sigma'(z_ij) x_j. Two GEMMs per tile.
template <class T>
T loss_grad(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& y, const Activation& act,
            Eigen::Ref<Mat<T>> gW, Eigen::Ref<Vec<T>> ga) {
    detail::check_grad_call(W, a, X, y, act, gW, ga);
    const Index n = X.rows(), m = W.rows();
    const auto sums = detail::jt_pass<T>(W, a, X, act, [&](const auto sig, const T* z, Index j) -> T {
        return detail::row_output(sig, z, a.data(), m) - y[j];
    });
    const auto tot = sums.reduce();
    for (Index i = 0; i < m; ++i) ga[i] = T(tot[std::size_t(i)] / double(n));
    sums.reduce_grad(1.0 / double(n), gW);
    return T(tot[std::size_t(m)] / (2.0 * double(n)));
}

/// L and its gradient (see the overload writing into caller buffers).
template <class T>
ValueGrad<T> loss_grad(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& y,
                       const Activation& act) {
    return detail::with_grad_buffers<T>(W.rows(), W.cols(),
                                        [&](auto& gW, auto& ga) { return loss_grad<T>(W, a, X, y, act, gW, ga); });
}

/// J^T u, the transposed Jacobian of the outputs times u (n), not divided by n:
/// (J^T u)_a_i = sum_j u_j sigma(z_ij), (J^T u)_w_i = sum_j u_j a_i sigma'(z_ij) x_j
/// (the loss-gradient kernel with r -> u). Returns ((J^T u)_W, (J^T u)_a). Two GEMMs per tile.
template <class T>
std::pair<Mat<T>, Vec<T>> jacobian_t_product(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X,
                                             const VecRef<T>& u, const Activation& act) {
    act.validate();
    detail::check_network(W, a, X);
    if (u.size() != X.rows())
        throw std::invalid_argument("u must have length n = X.shape[0] = " + std::to_string(X.rows()));
    const Index m = W.rows();
    const auto sums = detail::jt_pass<T>(W, a, X, act, [&](const auto, const T*, Index j) -> T { return u[j]; });
    const auto tot = sums.reduce();
    Vec<T> ga(m);
    for (Index i = 0; i < m; ++i) ga[i] = T(tot[std::size_t(i)]);
    return {sums.reduce_grad(1.0), ga};
}

/// J v, shape (n): (Jv)_j = sum_i [va_i sigma(z_ij) + a_i sigma'(z_ij) (VW_i . x_j)]. Two GEMMs per tile.
template <class T>
Vec<T> jacobian_product(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const MatRef<T>& VW,
                        const VecRef<T>& va, const Activation& act) {
    act.validate();
    detail::check_network(W, a, X);
    detail::check_direction(W, a, VW, va);
    const Index m = W.rows();
    Vec<T> out(X.rows());
    dispatch_sigma<T>(act, [&](auto sig) {
        detail::tiled_pass<T>(W, X, &VW, detail::PassShape{0, 0, false, true}, [&](const detail::Tile<T>& t) {
            const auto sl = sig;  // a local copy: provably not aliased by the stores below
            for (Index j = 0; j < t.rows; ++j)
                out[t.r0 + j] = detail::row_jv<false, T>(sl, t.Z + j * m, t.U + j * m, a, va, m, nullptr);
        });
    });
    return out;
}

/// The exact Hessian trace of L and its parts (docs/design.md section 3):
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
    // per chunk: A (m), D (m), R (m), sum r^2; a tile's column sums run in T (vectorized,
    // <= 256 terms) in the scratch and are flushed into the chunk's double accumulators
    const auto sums = dispatch_sigma<T>(act, [&](auto sig) {
        return detail::tiled_pass<T>(W, X, nullptr, detail::PassShape{3 * m + 1, 3 * m, false, false},
                                     [&](const detail::Tile<T>& t) {
                                         const auto sl = sig;  // a local copy: provably not aliased by the stores below
                                         double* A = t.acc;
                                         double* D = A + m;  // sum_j sigma'^2 s_j        (times a_i^2 at the end)
                                         double* R = D + m;  // sum_j r_j sigma'' s_j      (times a_i at the end)
                                         double& L = R[m];
                                         T* pA = t.scratch;
                                         T* pD = pA + m;
                                         T* pR = pD + m;
                                         for (Index j = 0; j < t.rows; ++j) {
                                             const T* z = t.Z + j * m;
                                             const T sj = X.row(t.r0 + j).squaredNorm();
                                             const T r = detail::row_output(sig, z, a.data(), m) - y[t.r0 + j];
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
    });
    const auto tot = sums.reduce();
    TraceParts<T> out;
    out.per_neuron.resize(m);
    out.per_neuron_a.resize(m);
    out.per_neuron_w.resize(m);
    double G = 0.0, R = 0.0;
    const double inv = 1.0 / double(n);
    for (Index i = 0; i < m; ++i) {
        const detail::NeuronTrace nt = detail::neuron_trace(double(a[i]), tot[std::size_t(i)], tot[std::size_t(m + i)],
                                                            tot[std::size_t(2 * m + i)], inv);
        out.per_neuron_a[i] = T(nt.A);
        out.per_neuron_w[i] = T(nt.Bg + nt.Br);
        out.per_neuron[i] = T(nt.A + nt.Bg + nt.Br);
        G += nt.A + nt.Bg;
        R += nt.Br;
    }
    out.gauss_newton = T(G);
    out.residual = T(R);
    out.total = T(G + R);
    out.loss = T(tot[std::size_t(3 * m)] * inv * 0.5);
    return out;
}

/// T = Tr hess L (see hessian_trace_parts).
template <class T>
T hessian_trace(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& y, const Activation& act) {
    return hessian_trace_parts<T>(W, a, X, y, act).total;
}

/// T and its gradient written into (gW (m, d), ga (m)); returns T (docs/design.md section 3).
/// With q_j = s_j sum_k a_k sigma''(z_kj):
///   dT/da_i = (1/n) sum_j [2 a_i sigma'^2 s_j + r_j sigma'' s_j + q_j sigma],
///   dT/dw_i = (1/n) sum_j C_ij x_j,
///   C_ij    = 2 sigma sigma' + 2 a_i^2 sigma' sigma'' s_j + r_j a_i sigma''' s_j + q_j a_i sigma'.
/// Two GEMMs per tile.
template <class T>
T hessian_trace_grad(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& y,
                     const Activation& act, Eigen::Ref<Mat<T>> gW, Eigen::Ref<Vec<T>> ga) {
    detail::check_grad_call(W, a, X, y, act, gW, ga);
    const Index n = X.rows(), m = W.rows();
    const auto sums = detail::curvature_pass<false, detail::Curvature::trace, T>(W, a, X, y, act, 1.0);
    const auto tot = sums.reduce();
    for (Index i = 0; i < m; ++i) ga[i] = T(tot[std::size_t(i)] / double(n));
    sums.reduce_grad(1.0 / double(n), gW);
    return T(tot[std::size_t(m)] / double(n));
}

/// T and its gradient (see the overload writing into caller buffers).
template <class T>
ValueGrad<T> hessian_trace_grad(const MatRef<T>& W, const VecRef<T>& a, const MatRef<T>& X, const VecRef<T>& y,
                                const Activation& act) {
    return detail::with_grad_buffers<T>(
        W.rows(), W.cols(), [&](auto& gW, auto& ga) { return hessian_trace_grad<T>(W, a, X, y, act, gW, ga); });
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
    detail::check_direction(W, a, VW, va);
    const Index n = X.rows(), m = W.rows();
    const bool linear = act.piecewise_linear();
    const auto sums = dispatch_sigma<T>(act, [&](auto sig) {
        return detail::tiled_pass<T>(W, X, &VW, detail::PassShape{m, m, true, true}, [&](const detail::Tile<T>& t) {
            const auto sl = sig;  // a local copy: provably not aliased by the stores below
            T* __restrict tg = t.scratch;
            double* ha = t.acc;
            for (Index j = 0; j < t.rows; ++j) {
                T* z = t.Z + j * m;
                const T* u = t.U + j * m;
                T f = T(0);
                const T jv = detail::row_jv<true, T>(sl, z, u, a, va, m, &f);
                const T r = f - y[t.r0 + j];
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
        });
    });
    const auto tot = sums.reduce();
    Vec<T> ha(m);
    for (Index i = 0; i < m; ++i) ha[i] = T(tot[std::size_t(i)] / double(n));
    return {sums.reduce_grad(1.0 / double(n)), ha};
}

}  // namespace flatext
