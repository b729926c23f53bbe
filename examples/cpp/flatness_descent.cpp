// flatness_descent: the exact Hessian trace of a two-layer network from C++,
// and a few steps that make the network flatter.
//
//   f(x) = sum_i a_i sigma(w_i . x),  sigma(z) = max(z,0) (ReLU: power 1, neg 0),
//   L    = (1/(2n)) sum_j (f(x_j) - y_j)^2,   T = Tr hess L.
//
// 1. A random student (W, a) and data (X, y = teacher(X)).
// 2. balance: the point of the student's rescaling orbit (w_i, a_i) ->
//    (t_i w_i, t_i^-p a_i) with the least trace; same function, same loss.
// 3. Gradient steps on T itself (hessian_trace_grad), each with a backtracking
//    (Armijo) line search, so the printed trace goes down at every step.
//
// Usage: flatness_descent [n d m steps]     (defaults 200 10 64 8)
// Output: one "<label> loss <L> trace <T>" line per stage (17 digits).
// Data: example_problem.hpp (splitmix64, uniform in [-1, 1), drawn in the order X, teacher
// W, teacher a, student W, student a: easy to reproduce in any language).
#include <flatext/flatext.hpp>

#include "example_problem.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>

using example::Mat;
using example::Vec;

namespace {

void print_stage(const char* label, double L, double T) { std::printf("%-8s loss %.17g trace %.17g\n", label, L, T); }

}  // namespace

int main(int argc, char** argv) {
    const long n = argc > 1 ? std::atol(argv[1]) : 200, d = argc > 2 ? std::atol(argv[2]) : 10,
               m = argc > 3 ? std::atol(argv[3]) : 64, steps = argc > 4 ? std::atol(argv[4]) : 8;
    if (n < 1 || d < 1 || m < 1 || steps < 0) {
        std::fprintf(stderr, "usage: flatness_descent [n d m steps] (positive sizes)\n");
        return 2;
    }
    const flatext::Activation act(1.0, 0.0);  // ReLU: B_i >= 0, so balance always has a minimum

    auto [X, W, y, a] = example::make_problem(n, d, m, act);

    std::printf("flatext %s example: n=%ld d=%ld m=%ld power=%g neg=%g gemm=%s threads=%d\n",
                flatext::openmp_enabled() ? "(OpenMP)" : "(serial)", n, d, m, act.power, act.neg,
                flatext::gemm::backend_name(), flatext::get_num_threads());

    try {
        const auto p0 = flatext::hessian_trace_parts<double>(W, a, X, y, act);
        print_stage("start", p0.loss, p0.total);

        // 2. the flattest point of the rescaling orbit: same predictions, same loss
        std::tie(W, a) = flatext::balance<double>(W, a, X, y, act);
        double L = flatext::loss<double>(W, a, X, y, act);
        double T = flatext::hessian_trace<double>(W, a, X, y, act);
        print_stage("balance", L, T);

        // 3. gradient descent on T with backtracking
        double lr = 1.0;
        for (long k = 1; k <= steps; ++k) {
            const auto g = flatext::hessian_trace_grad<double>(W, a, X, y, act);
            const double gg = g.W.squaredNorm() + g.a.squaredNorm();
            Mat W2;
            Vec a2;
            double T2 = T;
            for (int tries = 0; tries < 60; ++tries, lr *= 0.5) {
                W2 = W - lr * g.W;
                a2 = a - lr * g.a;
                T2 = flatext::hessian_trace<double>(W2, a2, X, y, act);
                if (T2 <= T - 1e-4 * lr * gg) break;
            }
            if (!(T2 < T)) {
                std::printf("stopped: no decrease along -grad T at step %ld\n", k);
                break;
            }
            W = W2;
            a = a2;
            T = T2;
            L = flatext::loss<double>(W, a, X, y, act);
            char label[32];
            std::snprintf(label, sizeof label, "step%ld", k);
            print_stage(label, L, T);
            lr *= 2.0;
        }
        std::printf("trace: %.6g -> %.6g (%.1f%% lower)\n", double(p0.total), T, 100.0 * (1.0 - T / double(p0.total)));
        return T < double(p0.total) ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
