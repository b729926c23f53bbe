// flatext/training.hpp: memorizing interpolators and full-batch training
// (docs/design.md section 5).
//
// Memorizer: one neuron per sample, w_k = kappa x_k / ||x_k||, output weights
// from the n x n system S a = y, S_jk = sigma(w_k . x_j) (partial-pivot LU;
// if S is singular or ill-conditioned (reciprocal condition estimate below
// 1e-12), the minimum-norm least-squares solution by a complete orthogonal
// decomposition; the residual max_j |S a - y|_j is reported).
//
// Training: full-batch gradient descent theta <- theta - lr grad L, and
// sharpness-aware minimization (SAM): eps = rho g / ||g||, theta <- theta - lr
// grad L(theta + eps), with loss_grad (2 GEMMs per gradient); stops when
// L <= tol, at max_iter, or when the loss or gradient stops being finite
// (divergence: the last finite point is returned).
#pragma once

#include <Eigen/LU>
#include <Eigen/QR>

#include "kernels.hpp"

namespace flatext {

template <class T>
struct Memorizer {
    Mat<T> W;  ///< (max(m, n), d); rows >= n are 0
    Vec<T> a;
    double residual = 0;         ///< max_j |f(x_j) - y_j| of the solve (in double)
    double rcond = 0;            ///< LU reciprocal condition estimate of S
    bool least_squares = false;  ///< the minimum-norm least-squares solve was used
};

template <class T>
Memorizer<T> memorizing_interpolator(const MatRef<T>& X, const VecRef<T>& y, const Activation& act, double kappa,
                                     Index m) {
    act.validate();
    detail::check_labels(X, y);
    const Index n = X.rows(), d = X.cols();
    if (n == 0) throw std::invalid_argument("X is empty (n = 0)");
    if (!(kappa > 0) || !std::isfinite(kappa)) throw std::invalid_argument("kappa must be finite and > 0");
    if (m < n) throw std::invalid_argument("m must be >= n = " + std::to_string(n) + " (one neuron per sample)");
    const Eigen::MatrixXd Xd = X.template cast<double>();
    Eigen::MatrixXd Wd(n, d);
    for (Index k = 0; k < n; ++k) {
        const double nk = Xd.row(k).norm();
        if (!(nk > 0))
            throw std::domain_error("memorizing_interpolator: sample " + std::to_string(k) +
                                    " is zero (||x_k|| = 0), its neuron has no direction");
        Wd.row(k) = (kappa / nk) * Xd.row(k);
    }
    // S in double through the same activation code
    Eigen::MatrixXd Z = Xd * Wd.transpose();
    dispatch_sigma<double>(act, [&](auto sig) {
        for (Index i = 0; i < Z.size(); ++i) {
            const auto s = sig.template eval<0>(Z.data()[i]);
            Z.data()[i] = s.v0;
        }
        return 0;
    });
    const Eigen::VectorXd yd = y.template cast<double>();
    Memorizer<T> out;
    Eigen::PartialPivLU<Eigen::MatrixXd> lu(Z);
    out.rcond = lu.rcond();
    Eigen::VectorXd ad;
    if (out.rcond > 1e-12) ad = lu.solve(yd);
    if (!(out.rcond > 1e-12) || !ad.allFinite()) {
        ad = Eigen::CompleteOrthogonalDecomposition<Eigen::MatrixXd>(Z).solve(yd);
        out.least_squares = true;
    }
    out.residual = (Z * ad - yd).cwiseAbs().maxCoeff();
    out.W = Mat<T>::Zero(m, d);
    out.a = Vec<T>::Zero(m);
    out.W.topRows(n) = Wd.template cast<T>();
    out.a.head(n) = ad.template cast<T>();
    return out;
}

template <class T>
struct TrainResult {
    Mat<T> W;
    Vec<T> a;
    double loss = 0;
    int iterations = 0;
    bool converged = false;
    std::string message;
    std::vector<int> history_iter;
    std::vector<double> history_loss;
};

enum class TrainMethod { GD, SAM };

/// Options of train(): the loop's own (the Python TrainOptions adds the polish, label noise and the
/// budget, and takes its defaults from this struct).
struct TrainOptions {
    TrainMethod method = TrainMethod::GD;
    double lr = 0.1;        ///< step size
    double rho = 0.05;      ///< SAM radius (SAM only)
    int max_iter = 10000;   ///< steps at most
    double tol = 1e-8;      ///< stop when the loss is <= tol
    int record_every = 10;  ///< history stride in steps

    /// The one check of the options (std::invalid_argument naming the option): train() and the
    /// Python options class rely on it.
    void validate() const {
        detail::check_positive_option(lr, "lr");
        detail::check_positive_option(rho, "rho");
        detail::check_int_option(max_iter, 0, "max_iter");
        if (!(tol >= 0) || !std::isfinite(tol))
            throw std::invalid_argument("tol must be finite and >= 0; got " + std::to_string(tol));
        detail::check_int_option(record_every, 1, "record_every");
    }
};

template <class T>
TrainResult<T> train(const MatRef<T>& W0, const VecRef<T>& a0, const MatRef<T>& X, const VecRef<T>& y,
                     const Activation& act, const TrainOptions& opt) {
    act.validate();
    opt.validate();
    detail::check_network(W0, a0, X);
    detail::check_labels(X, y);
    const TrainMethod method = opt.method;
    const double lr = opt.lr, rho = opt.rho, tol = opt.tol;
    const int max_iter = opt.max_iter, record_every = opt.record_every;
    TrainResult<T> res;
    res.W = W0;
    res.a = a0;
    int it = 0;
    Mat<T> Wprev;
    Vec<T> aprev;
    for (;; ++it) {
        auto g = loss_grad<T>(res.W, res.a, X, y, act);
        const double L = double(g.value);
        const bool finite = std::isfinite(L) && g.W.allFinite() && g.a.allFinite();
        if (!finite) {
            res.message = "diverged at iteration " + std::to_string(it) +
                          ": the loss or its gradient is not finite (lr too large?); returning the last finite point";
            if (it > 0) {
                res.W = std::move(Wprev);
                res.a = std::move(aprev);
                --it;
            } else {
                res.loss = L;
            }
            break;
        }
        res.loss = L;
        if (it % record_every == 0) {
            res.history_iter.push_back(it);
            res.history_loss.push_back(L);
        }
        if (L <= tol) {
            res.converged = true;
            res.message = "loss <= tol";
            break;
        }
        if (it >= max_iter) {
            res.message = "max_iter reached";
            break;
        }
        Mat<T> Wn;
        Vec<T> an;
        if (method == TrainMethod::SAM && rho > 0) {
            const double gn =
                std::sqrt(g.W.template cast<double>().squaredNorm() + g.a.template cast<double>().squaredNorm());
            if (gn == 0) {
                res.message = "stationary point (zero gradient) with loss > tol";
                break;
            }
            const T s = T(rho / gn);
            const Mat<T> We = res.W + s * g.W;
            const Vec<T> ae = res.a + s * g.a;
            auto g2 = loss_grad<T>(We, ae, X, y, act);
            if (!(std::isfinite(double(g2.value)) && g2.W.allFinite() && g2.a.allFinite())) {
                res.message = "diverged at iteration " + std::to_string(it) +
                              ": the SAM gradient is not finite; returning the last finite point";
                break;
            }
            Wn = res.W - T(lr) * g2.W;
            an = res.a - T(lr) * g2.a;
        } else {
            Wn = res.W - T(lr) * g.W;
            an = res.a - T(lr) * g.a;
        }
        if (!Wn.allFinite() || !an.allFinite()) {
            res.message = "diverged at iteration " + std::to_string(it) +
                          ": the parameters overflowed; returning the last finite point";
            break;
        }
        Wprev = std::move(res.W);
        aprev = std::move(res.a);
        res.W = std::move(Wn);
        res.a = std::move(an);
    }
    res.iterations = it;
    if (res.history_iter.empty() || res.history_iter.back() != it) {
        if (std::isfinite(res.loss) && res.message.rfind("diverged", 0) != 0) {
            res.history_iter.push_back(it);
            res.history_loss.push_back(res.loss);
        }
    }
    return res;
}

}  // namespace flatext
