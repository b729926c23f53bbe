// lbfgs_flatness: flatness-regularized training with a third-party solver
// (LBFGSpp, header-only, MIT licence, vendored in third_party/LBFGSpp).
//
//   f(x) = sum_i a_i sigma(w_i . x),  L = (1/(2n)) sum_j (f(x_j) - y_j)^2
//
// Two well-posed targets (docs/frameworks.md, "Which regularizer"):
//   gn    : L + lambda * G with sigma = ReLU^2 (p = 2). G = (1/n) sum_j ||grad_theta f(x_j)||^2
//           >= 0 is the Gauss-Newton part of the trace, so the target is bounded below.
//           (L + lambda * T is NOT for p = 2: off interpolation T -> -inf along rescalings.)
//   trace : L + lambda * T with sigma = ReLU (p = 1). T = Tr hess L >= 0 (sigma'' = 0).
//
// The solver sees one flat vector theta = [W row-major, a] (the layout of
// flatext.scipy.pack); the callback views it as (W, a) without copying and
// writes the gradient into LBFGSpp's buffer; flatext::objective (objective.hpp,
// one walk over X) evaluates L + lambda K and its gradient for both targets.
//
// Usage: lbfgs_flatness [n d m lambda_gn lambda_trace out_prefix]
//        (defaults 200 8 24 0.01 0.01; with out_prefix, each target's final theta
//        is written to <out_prefix>_<target>.txt, one number per line, 17 digits)
// Output per target: "<target> start <value>", then
//        "<target> iterations <k> value <v> loss <L> reg <K> gnorm <|g|> xnorm <|theta|>
//        stationary <0|1> converged <0|1>" (stationary: ||g|| <= 1e-7 ||theta||; converged: stationary,
//        or for the trace target the value stalled, before the iteration cap and without a line-search failure)
// Data: example_problem.hpp (splitmix64; X, teacher W, teacher a, student W, student a).
#include <flatext/objective.hpp>  // include what you use: no Lanczos, no searches

#include <LBFGS.h>

#include "example_problem.hpp"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

using example::Mat;
using example::Vec;

namespace {

enum class Target { gauss_newton, trace };

// The callback LBFGSpp calls: value of L + lambda K at theta, gradient into grad.
struct Objective {
    const Mat& X;
    const Vec& y;
    flatext::Activation act;
    Target target;
    double lambda;
    double last_loss = 0, last_reg = 0;

    double operator()(const Vec& theta, Vec& grad) {
        const long d = X.cols(), m = theta.size() / (d + 1);
        Eigen::Map<const Mat> W(theta.data(), m, d);
        Eigen::Map<const Vec> a(theta.data() + m * d, m);
        Eigen::Map<Mat> gW(grad.data(), m, d);
        Eigen::Map<Vec> ga(grad.data() + m * d, m);
        const auto which = target == Target::trace ? flatext::Regularizer::trace : flatext::Regularizer::gauss_newton;
        const auto v = flatext::objective<double>(W, a, X, y, act, which, lambda, gW, ga);
        last_loss = v.loss;
        last_reg = v.regularizer;
        return v.value;
    }
};

int run(const char* name, Target target, double power, double lambda, long n, long d, long m, const char* prefix) {
    const flatext::Activation act(power, 0.0);
    auto [X, W, y, a] = example::make_problem(n, d, m, act);

    Vec theta(m * (d + 1));
    Eigen::Map<Mat>(theta.data(), m, d) = W;
    theta.tail(m) = a;

    Objective obj{X, y, act, target, lambda};
    Vec g(theta.size());
    std::printf("%s start %.17g\n", name, obj(theta, g));

    LBFGSpp::LBFGSParam<double> param;
    param.epsilon = 1e-9;      // absolute gradient-norm tolerance
    param.epsilon_rel = 1e-7;  // relative: ||g|| <= 1e-7 ||theta||
    param.max_iterations = 5000;
    param.max_linesearch = 60;
    // T (p = 1) jumps where a sample crosses a neuron's hyperplane (sigma'^2 does), so its
    // minimum may sit on such a kink where the gradient does not vanish: stop there when the
    // value has stalled (relative change <= delta over `past` iterations).
    param.past = 20;
    param.delta = 1e-12;
    LBFGSpp::LBFGSSolver<double, LBFGSpp::LineSearchMoreThuente> solver(param);
    double fx = 0;
    int iters = 0;
    bool stopped_early = false;
    try {
        iters = solver.minimize(obj, theta, fx);
    } catch (const std::exception& e) {  // a line search that cannot progress (kinks, rounding)
        std::printf("%s line search stopped: %s\n", name, e.what());
        stopped_early = true;
        iters = -1;
    }
    fx = obj(theta, g);
    const double gnorm = g.norm(), xnorm = theta.norm();
    // converged: a stationary point, or (only for the piecewise-smooth trace target) a stalled value
    const bool stationary = gnorm <= std::max(param.epsilon, param.epsilon_rel * xnorm);
    const bool converged = !stopped_early && iters < param.max_iterations && (stationary || target == Target::trace);
    std::printf("%s iterations %d value %.17g loss %.17g reg %.17g gnorm %.3e xnorm %.17g stationary %d converged %d\n",
                name, iters, fx, obj.last_loss, obj.last_reg, gnorm, xnorm, int(stationary), int(converged));
    if (prefix) {
        const std::string path = std::string(prefix) + "_" + name + ".txt";
        FILE* f = std::fopen(path.c_str(), "w");
        if (!f) {
            std::fprintf(stderr, "cannot write %s\n", path.c_str());
            return 1;
        }
        for (long k = 0; k < theta.size(); ++k) std::fprintf(f, "%.17g\n", theta[k]);
        std::fclose(f);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const long n = argc > 1 ? std::atol(argv[1]) : 200, d = argc > 2 ? std::atol(argv[2]) : 8,
               m = argc > 3 ? std::atol(argv[3]) : 24;
    const double lam_gn = argc > 4 ? std::atof(argv[4]) : 0.01, lam_tr = argc > 5 ? std::atof(argv[5]) : 0.01;
    const char* prefix = argc > 6 ? argv[6] : nullptr;
    if (n < 1 || d < 1 || m < 1 || !(lam_gn >= 0) || !(lam_tr >= 0)) {
        std::fprintf(stderr, "usage: lbfgs_flatness [n d m lambda_gn lambda_trace out_prefix]\n");
        return 2;
    }
    std::printf("flatext LBFGSpp example: n=%ld d=%ld m=%ld gemm=%s\n", n, d, m, flatext::gemm::backend_name());
    try {
        if (int rc = run("gn", Target::gauss_newton, 2.0, lam_gn, n, d, m, prefix)) return rc;
        return run("trace", Target::trace, 1.0, lam_tr, n, d, m, prefix);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
