// flatext/theta.hpp: the flat parameter vector theta = [W row-major, a] of length
// P = m (d + 1), the layout of python/flatext/scipy.py's pack/unpack and of
// hessian_top_eigenvalues. Views need no copy: a solver that owns theta (and its
// gradient) can hand their parts to the kernels directly.
#pragma once

#include <stdexcept>
#include <string>

#include "config.hpp"
#include "objective.hpp"

namespace flatext {

/// Number of parameters of a width-m network on d inputs: m (d + 1).
inline Index theta_size(Index m, Index d) { return m * (d + 1); }

namespace detail {
inline void check_theta(Index size, Index m, Index d) {
    if (m < 0 || d < 0 || size != theta_size(m, d))
        throw std::invalid_argument("theta must have length m (d + 1) = " + std::to_string(theta_size(m, d)) +
                                    "; got " + std::to_string(size));
}
}  // namespace detail

/// (W, a) as views into a flat theta (no copy); theta must have length m (d + 1).
template <class T>
struct ThetaView {
    Eigen::Map<Mat<T>> W;
    Eigen::Map<Vec<T>> a;
};
template <class T>
ThetaView<T> theta_view(Eigen::Ref<Vec<T>> theta, Index m, Index d) {
    detail::check_theta(theta.size(), m, d);
    return {Eigen::Map<Mat<T>>(theta.data(), m, d), Eigen::Map<Vec<T>>(theta.data() + m * d, m)};
}
template <class T>
struct ConstThetaView {
    Eigen::Map<const Mat<T>> W;
    Eigen::Map<const Vec<T>> a;
};
/// (W, a) as read-only views into a flat theta.
template <class T>
ConstThetaView<T> theta_cview(const Eigen::Ref<const Vec<T>>& theta, Index m, Index d) {
    detail::check_theta(theta.size(), m, d);
    return {Eigen::Map<const Mat<T>>(theta.data(), m, d), Eigen::Map<const Vec<T>>(theta.data() + m * d, m)};
}

/// theta = [W row-major, a].
template <class T>
Vec<T> pack(const MatRef<T>& W, const VecRef<T>& a) {
    if (W.rows() != a.size())
        throw std::invalid_argument("a must have length m = W.shape[0] = " + std::to_string(W.rows()) + "; got " +
                                    std::to_string(a.size()));
    Vec<T> theta(theta_size(W.rows(), W.cols()));
    auto v = theta_view<T>(theta, W.rows(), W.cols());
    v.W = W;
    v.a = a;
    return theta;
}

/// (W, a) from theta = [W row-major, a] (copies; see theta_view for views).
template <class T>
void unpack(const Eigen::Ref<const Vec<T>>& theta, Index m, Index d, Mat<T>& W, Vec<T>& a) {
    const auto v = theta_cview<T>(theta, m, d);
    W = v.W;
    a = v.a;
}

/// objective() on a flat theta with the gradient written into grad (length m (d + 1)): the
/// signature third-party minimizers (LBFGSpp, ...) call. Returns the value L + lambda K.
template <class T>
T objective_theta(const Eigen::Ref<const Vec<T>>& theta, const MatRef<T>& X, const VecRef<T>& y, const Activation& act,
                  Regularizer which, double lambda, Eigen::Ref<Vec<T>> grad) {
    const Index d = X.cols();
    if (theta.size() % (d + 1) != 0)
        throw std::invalid_argument("theta must have length m (d + 1) with d = X.shape[1] = " + std::to_string(d) +
                                    "; got " + std::to_string(theta.size()));
    const Index m = theta.size() / (d + 1);
    if (grad.size() != theta.size())
        throw std::invalid_argument("grad must have the length of theta " + std::to_string(theta.size()) + "; got " +
                                    std::to_string(grad.size()));
    const auto v = theta_cview<T>(theta, m, d);
    auto g = theta_view<T>(grad, m, d);
    return objective<T>(v.W, v.a, X, y, act, which, lambda, g.W, g.a).value;
}

}  // namespace flatext
