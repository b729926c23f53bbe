// flatext/config.hpp: types, thread count and error capture shared by the core.
#pragma once

#ifndef EIGEN_DONT_PARALLELIZE
#define EIGEN_DONT_PARALLELIZE  // the core parallelizes over row tiles itself
#endif

#include <Eigen/Core>

#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <stdexcept>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace flatext {

using Index = Eigen::Index;

/// Row-major dense matrix (the layout of W (m, d) and X (n, d)).
template <class T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
/// Read-only views: any Eigen expression with unit inner stride binds without a copy.
template <class T>
using MatRef = Eigen::Ref<const Mat<T>>;
template <class T>
using VecRef = Eigen::Ref<const Vec<T>>;

/// True when the core was compiled with OpenMP.
inline constexpr bool openmp_enabled() {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

namespace detail {
inline std::atomic<int>& thread_setting() {
    static std::atomic<int> k{0};  // 0: use omp_get_max_threads() at call time
    return k;
}
}  // namespace detail

/// Number of threads the kernels use. Results never depend on it.
inline int get_num_threads() {
    int k = detail::thread_setting().load();
    if (k > 0) return k;
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/// Set the number of threads of every later kernel call (process-wide, any
/// thread). k <= 0 restores the default (OMP_NUM_THREADS / all cores).
inline void set_num_threads(int k) { detail::thread_setting().store(k > 0 ? k : 0); }

namespace detail {
/// Collects the first exception thrown inside an OpenMP region so it can be
/// rethrown on the calling thread (an exception escaping a region aborts).
class ExceptionTrap {
  public:
    template <class F>
    void run(F&& f) noexcept {
        try {
            f();
        } catch (...) {
            std::lock_guard<std::mutex> lock(mu_);
            if (!ptr_) ptr_ = std::current_exception();
        }
    }
    void rethrow() const {
        if (ptr_) std::rethrow_exception(ptr_);
    }

  private:
    std::mutex mu_;
    std::exception_ptr ptr_;
};
}  // namespace detail

}  // namespace flatext
