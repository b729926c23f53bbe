// flatext/gemm.hpp: the two GEMM shapes the tiled kernels need, run
// single-threaded inside a tile (the kernels own the cores).
//
// With FLATEXT_USE_OPENBLAS defined (the default build), OpenBLAS from the
// scipy-openblas32 wheel does the work (its symbols carry a `scipy_` prefix);
// otherwise Eigen's own GEMM. OpenBLAS ran ~2x faster than Eigen here
// (docs/performance.md, benchmarks/README.md), which is what puts the trace at the GEMM floor.
#pragma once

#include "config.hpp"

#ifdef FLATEXT_USE_OPENBLAS
extern "C" {
void scipy_cblas_sgemm(int order, int transa, int transb, int m, int n, int k, float alpha, const float* a, int lda,
                       const float* b, int ldb, float beta, float* c, int ldc);
void scipy_cblas_dgemm(int order, int transa, int transb, int m, int n, int k, double alpha, const double* a, int lda,
                       const double* b, int ldb, double beta, double* c, int ldc);
void scipy_openblas_set_num_threads(int num_threads);
}
#endif

namespace flatext {
namespace gemm {

#ifdef FLATEXT_USE_OPENBLAS
enum : int { RowMajor = 101, NoTrans = 111, Trans = 112 };
inline void blas(int ta, int tb, int m, int n, int k, float al, const float* A, int lda, const float* B, int ldb,
                 float be, float* C, int ldc) {
    scipy_cblas_sgemm(RowMajor, ta, tb, m, n, k, al, A, lda, B, ldb, be, C, ldc);
}
inline void blas(int ta, int tb, int m, int n, int k, double al, const double* A, int lda, const double* B, int ldb,
                 double be, double* C, int ldc) {
    scipy_cblas_dgemm(RowMajor, ta, tb, m, n, k, al, A, lda, B, ldb, be, C, ldc);
}
/// OpenBLAS must not start its own thread pool under our OpenMP tiles.
inline void init_backend() {
    static const bool once = [] {
        scipy_openblas_set_num_threads(1);
        return true;
    }();
    (void)once;
}
inline constexpr const char* backend_name() { return "openblas"; }
#else
inline void init_backend() {}
inline constexpr const char* backend_name() { return "eigen"; }
#endif

using OStride = Eigen::OuterStride<>;

/// Z (rows x m, contiguous) = Xt (rows x d, row stride ldx) * W^T, W (m x d, row stride ldw).
template <class T>
inline void xwt(const T* Xt, Index rows, Index d, Index ldx, const T* W, Index m, Index ldw, T* Z) {
#ifdef FLATEXT_USE_OPENBLAS
    blas(NoTrans, Trans, int(rows), int(m), int(d), T(1), Xt, int(ldx), W, int(ldw), T(0), Z, int(m));
#else
    Eigen::Map<const Mat<T>, 0, OStride> X(Xt, rows, d, OStride(ldx)), Wm(W, m, d, OStride(ldw));
    Eigen::Map<Mat<T> > Zm(Z, rows, m);
    Zm.noalias() = X * Wm.transpose();
#endif
}

/// G (m x d, contiguous) += C^T * Xt, C (rows x m, contiguous), Xt (rows x d, row stride ldx).
template <class T>
inline void ctx_acc(const T* C, Index rows, Index m, const T* Xt, Index d, Index ldx, T* G) {
#ifdef FLATEXT_USE_OPENBLAS
    blas(Trans, NoTrans, int(m), int(d), int(rows), T(1), C, int(m), Xt, int(ldx), T(1), G, int(d));
#else
    Eigen::Map<const Mat<T> > Cm(C, rows, m);
    Eigen::Map<const Mat<T>, 0, OStride> X(Xt, rows, d, OStride(ldx));
    Eigen::Map<Mat<T> > Gm(G, m, d);
    Gm.noalias() += Cm.transpose() * X;
#endif
}

}  // namespace gemm
}  // namespace flatext
