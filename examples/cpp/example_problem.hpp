// example_problem.hpp: the examples' data, drawn the same way in both programs.
//
// Random numbers: splitmix64, uniform in [-1, 1), drawn in the order X, teacher W,
// teacher a, student W, student a (easy to reproduce in any language); the labels are
// the teacher's outputs y = f_teacher(X) with the given activation.
#pragma once

#include <flatext/kernels.hpp>

#include <cstdint>

namespace example {

using Mat = flatext::Mat<double>;
using Vec = flatext::Vec<double>;

struct SplitMix64 {
    std::uint64_t state;
    double uniform() {  // in [-1, 1)
        std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        return double(z >> 11) * 0x1.0p-53 * 2.0 - 1.0;
    }
};

inline void fill(SplitMix64& rng, double* p, long k, double scale) {
    for (long i = 0; i < k; ++i) p[i] = scale * rng.uniform();
}

/// Inputs X (n, d), labels y from a 3-neuron teacher, and a student (W (m, d), a (m)).
struct Problem {
    Mat X, W;
    Vec y, a;
};

inline Problem make_problem(long n, long d, long m, const flatext::Activation& act) {
    const long mt = 3;  // teacher neurons
    SplitMix64 rng{20260101};
    Mat X(n, d), Wt(mt, d), W(m, d);
    Vec at(mt), a(m);
    fill(rng, X.data(), n * d, 1.0);
    fill(rng, Wt.data(), mt * d, 1.0);
    fill(rng, at.data(), mt, 1.0);
    fill(rng, W.data(), m * d, 1.0);
    fill(rng, a.data(), m, 1.0 / double(m));
    Vec y = flatext::forward<double>(Wt, at, X, act);
    return {std::move(X), std::move(W), std::move(y), std::move(a)};
}

}  // namespace example
