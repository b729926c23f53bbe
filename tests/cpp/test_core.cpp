// C++ tests of the flatext core, without Python: a small self-contained runner.
//
// Every numeric result is checked against an independent float64 computation:
// a naive triple loop for f and L, central finite differences of L for its
// gradient, of the gradient for the Hessian (trace, HVP, explicit matrix for
// the top eigenvalue), of T for its gradient; plus the rescaling invariance
// and bit-identical results with 1 and 2 threads.
//
// Usage: flatext_test_core [substring]   runs the tests whose name contains it.
// Exit code 0 iff every check passed. Built by tests/cpp/CMakeLists.txt.
#include <flatext/flatext.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

using flatext::Activation;
using flatext::Index;
template <class T>
using Mat = flatext::Mat<T>;
template <class T>
using Vec = flatext::Vec<T>;

// ---------------------------------------------------------------- runner ----
namespace {

int g_checks = 0, g_failures = 0;
std::string g_current;

void report_failure(const char* file, int line, const std::string& what) {
    ++g_failures;
    std::printf("  FAIL %s (%s:%d): %s\n", g_current.c_str(), file, line, what.c_str());
}

bool close(double got, double want, double rtol, double atol) {
    return std::isfinite(got) && std::abs(got - want) <= atol + rtol * std::abs(want);
}

#define CHECK(cond)                                                          \
    do {                                                                     \
        ++g_checks;                                                          \
        if (!(cond)) report_failure(__FILE__, __LINE__, "CHECK(" #cond ")"); \
    } while (0)

#define CHECK_CLOSE(got, want, rtol, atol)                                                                          \
    do {                                                                                                            \
        ++g_checks;                                                                                                 \
        const double g_ = double(got), w_ = double(want);                                                           \
        if (!close(g_, w_, rtol, atol)) {                                                                           \
            char buf_[256];                                                                                         \
            std::snprintf(buf_, sizeof buf_, "%s = %.17g, want %s = %.17g (rtol %g, atol %g)", #got, g_, #want, w_, \
                          double(rtol), double(atol));                                                              \
            report_failure(__FILE__, __LINE__, buf_);                                                               \
        }                                                                                                           \
    } while (0)

/// Elementwise closeness of two vectors, reporting the worst entry.
void check_all_close(const char* file, int line, const Vec<double>& got, const Vec<double>& want, double rtol,
                     double atol, const char* what) {
    ++g_checks;
    if (got.size() != want.size()) {
        report_failure(file, line, std::string(what) + ": sizes differ");
        return;
    }
    for (Index k = 0; k < got.size(); ++k)
        if (!close(got[k], want[k], rtol, atol)) {
            char buf[256];
            std::snprintf(buf, sizeof buf, "%s[%ld] = %.17g, want %.17g (rtol %g, atol %g)", what, long(k), got[k],
                          want[k], rtol, atol);
            report_failure(file, line, buf);
            return;
        }
}
#define CHECK_ALL_CLOSE(got, want, rtol, atol) check_all_close(__FILE__, __LINE__, got, want, rtol, atol, #got)

#define CHECK_THROWS(expr, Exc)                                                         \
    do {                                                                                \
        ++g_checks;                                                                     \
        bool thrown_ = false;                                                           \
        try {                                                                           \
            (void)(expr);                                                               \
        } catch (const Exc&) {                                                          \
            thrown_ = true;                                                             \
        }                                                                               \
        if (!thrown_) report_failure(__FILE__, __LINE__, #expr " did not throw " #Exc); \
    } while (0)

struct TestCase {
    const char* name;
    std::function<void()> fn;
};
std::vector<TestCase>& registry() {
    static std::vector<TestCase> r;
    return r;
}
struct Register {
    Register(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};
#define TEST(name)                               \
    void name();                                 \
    const Register register_##name(#name, name); \
    void name()

// ------------------------------------------------- independent references ----

struct Problem {
    Mat<double> W, X;
    Vec<double> a, y;
};

Problem problem(Index n, Index d, Index m, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> nd;
    Problem p;
    p.W.resize(m, d);
    p.X.resize(n, d);
    p.a.resize(m);
    p.y.resize(n);
    for (Index k = 0; k < m * d; ++k) p.W.data()[k] = nd(rng) / std::sqrt(double(d));
    for (Index k = 0; k < n * d; ++k) p.X.data()[k] = nd(rng);
    for (Index i = 0; i < m; ++i) p.a[i] = nd(rng) / std::sqrt(double(m));
    for (Index j = 0; j < n; ++j) p.y[j] = nd(rng);
    return p;
}

/// sigma(z) = max(z,0)^p + c max(-z,0)^p, written out directly.
double sigma_ref(double z, double p, double c) {
    if (z > 0) return std::pow(z, p);
    if (z < 0) return c * std::pow(-z, p);
    return 0.0;
}

double loss_ref(const Mat<double>& W, const Vec<double>& a, const Mat<double>& X, const Vec<double>& y,
                const Activation& act) {
    double L = 0.0;
    for (Index j = 0; j < X.rows(); ++j) {
        double f = 0.0;
        for (Index i = 0; i < W.rows(); ++i) {
            double z = 0.0;
            for (Index k = 0; k < X.cols(); ++k) z += W(i, k) * X(j, k);
            f += a[i] * sigma_ref(z, act.power, act.neg);
        }
        L += (f - y[j]) * (f - y[j]);
    }
    return L / (2.0 * double(X.rows()));
}

Vec<double> flat(const Mat<double>& W, const Vec<double>& a) {
    Vec<double> t(W.size() + a.size());
    t << Eigen::Map<const Vec<double>>(W.data(), W.size()), a;
    return t;
}
void unflat(const Vec<double>& t, Index m, Index d, Mat<double>& W, Vec<double>& a) {
    W = Eigen::Map<const Mat<double>>(t.data(), m, d);
    a = t.tail(m);
}

/// Central differences of a scalar function of theta = [vec(W), a].
Vec<double> fd_grad(const std::function<double(const Mat<double>&, const Vec<double>&)>& fun, const Mat<double>& W,
                    const Vec<double>& a, double h) {
    const Index m = W.rows(), d = W.cols();
    const Vec<double> t0 = flat(W, a);
    Vec<double> g(t0.size());
    Mat<double> Wp, Wm;
    Vec<double> ap, am;
    for (Index k = 0; k < t0.size(); ++k) {
        Vec<double> tp = t0, tm = t0;
        tp[k] += h;
        tm[k] -= h;
        unflat(tp, m, d, Wp, ap);
        unflat(tm, m, d, Wm, am);
        g[k] = (fun(Wp, ap) - fun(Wm, am)) / (2.0 * h);
    }
    return g;
}

Vec<double> grad_flat(const Problem& P, const Mat<double>& W, const Vec<double>& a, const Activation& act) {
    const auto g = flatext::loss_grad<double>(W, a, P.X, P.y, act);
    return flat(g.W, g.a);
}

/// Explicit Hessian by central differences of loss_grad (itself checked against
/// finite differences of the naive loss in loss_grad_matches_fd).
Mat<double> fd_hessian(const Problem& P, const Activation& act, double h = 1e-5) {
    const Index m = P.W.rows(), d = P.W.cols();
    const Vec<double> t0 = flat(P.W, P.a);
    const Index N = t0.size();
    Mat<double> H(N, N);
    Mat<double> W;
    Vec<double> a;
    for (Index k = 0; k < N; ++k) {
        Vec<double> tp = t0, tm = t0;
        tp[k] += h;
        tm[k] -= h;
        unflat(tp, m, d, W, a);
        const Vec<double> gp = grad_flat(P, W, a, act);
        unflat(tm, m, d, W, a);
        const Vec<double> gm = grad_flat(P, W, a, act);
        H.col(k) = (gp - gm) / (2.0 * h);
    }
    return (H + H.transpose()) / 2.0;
}

const std::vector<Activation> kActs = {{1.0, 0.0},  {1.0, -0.2}, {1.0, 1.0}, {2.0, 0.5},
                                       {3.0, -0.3}, {2.5, 0.0},  {1.5, 0.7}};

// ------------------------------------------------------------------- tests ----

TEST(forward_and_loss_match_naive_loops) {
    const Problem P = problem(40, 6, 9, 1);
    for (const auto& act : kActs) {
        const Vec<double> f = flatext::forward<double>(P.W, P.a, P.X, act);
        for (Index j = 0; j < P.X.rows(); ++j) {
            double fj = 0.0;
            for (Index i = 0; i < P.W.rows(); ++i)
                fj += P.a[i] * sigma_ref(P.W.row(i).dot(P.X.row(j)), act.power, act.neg);
            CHECK_CLOSE(f[j], fj, 1e-12, 1e-12);
        }
        CHECK_CLOSE(flatext::loss<double>(P.W, P.a, P.X, P.y, act), loss_ref(P.W, P.a, P.X, P.y, act), 1e-12, 0);
    }
}

TEST(loss_grad_matches_fd) {
    const Problem P = problem(15, 4, 5, 2);
    for (const auto& act : kActs) {
        const auto g = flatext::loss_grad<double>(P.W, P.a, P.X, P.y, act);
        CHECK_CLOSE(g.value, loss_ref(P.W, P.a, P.X, P.y, act), 1e-12, 0);
        const Vec<double> fd = fd_grad(
            [&](const Mat<double>& W, const Vec<double>& a) { return loss_ref(W, a, P.X, P.y, act); }, P.W, P.a, 1e-6);
        CHECK_ALL_CLOSE(flat(g.W, g.a), fd, 1e-6, 1e-8);
    }
}

TEST(hessian_trace_matches_fd_of_loss_grad) {
    const Problem P = problem(12, 4, 5, 3);
    for (const auto& act : kActs) {
        const Mat<double> H = fd_hessian(P, act);
        const double T = flatext::hessian_trace<double>(P.W, P.a, P.X, P.y, act);
        CHECK_CLOSE(T, H.trace(), 1e-7, 1e-9);
        const auto parts = flatext::hessian_trace_parts<double>(P.W, P.a, P.X, P.y, act);
        CHECK_CLOSE(parts.total, T, 1e-13, 0);
        CHECK_CLOSE(parts.gauss_newton + parts.residual, T, 1e-12, 0);
        CHECK_CLOSE(parts.per_neuron.sum(), T, 1e-12, 0);
        CHECK_CLOSE(parts.loss, loss_ref(P.W, P.a, P.X, P.y, act), 1e-12, 0);
        // per-neuron blocks: the a_i diagonal entry and the trace of the w_i block
        const Index m = P.W.rows(), d = P.W.cols();
        Vec<double> Aref(m), Bref(m);
        for (Index i = 0; i < m; ++i) {
            Aref[i] = H(m * d + i, m * d + i);
            Bref[i] = 0.0;
            for (Index k = 0; k < d; ++k) Bref[i] += H(i * d + k, i * d + k);
        }
        CHECK_ALL_CLOSE(parts.per_neuron_a, Aref, 1e-6, 1e-9);
        CHECK_ALL_CLOSE(parts.per_neuron_w, Bref, 1e-6, 1e-9);
        if (act.power == 1.0) CHECK(parts.residual == 0.0);
    }
}

TEST(hessian_trace_grad_matches_fd_of_trace) {
    const Problem P = problem(12, 4, 5, 4);
    for (const auto& act : kActs) {
        const auto g = flatext::hessian_trace_grad<double>(P.W, P.a, P.X, P.y, act);
        CHECK_CLOSE(g.value, flatext::hessian_trace<double>(P.W, P.a, P.X, P.y, act), 1e-12, 0);
        const Vec<double> fd =
            fd_grad([&](const Mat<double>& W,
                        const Vec<double>& a) { return flatext::hessian_trace<double>(W, a, P.X, P.y, act); },
                    P.W, P.a, 1e-6);
        CHECK_ALL_CLOSE(flat(g.W, g.a), fd, 1e-5, 1e-7);
    }
}

TEST(hvp_matches_fd_of_loss_grad) {
    const Problem P = problem(12, 4, 5, 5);
    std::mt19937_64 rng(7);
    std::normal_distribution<double> nd;
    const Index m = P.W.rows(), d = P.W.cols();
    for (const auto& act : kActs) {
        Mat<double> VW(m, d);
        Vec<double> va(m);
        for (Index k = 0; k < m * d; ++k) VW.data()[k] = nd(rng);
        for (Index i = 0; i < m; ++i) va[i] = nd(rng);
        const auto hv = flatext::hvp<double>(P.W, P.a, P.X, P.y, VW, va, act);
        // directional central difference of the gradient along v
        const double h = 1e-5;
        const Vec<double> t0 = flat(P.W, P.a), v = flat(VW, va);
        Mat<double> W;
        Vec<double> a;
        unflat(t0 + h * v, m, d, W, a);
        const Vec<double> gp = grad_flat(P, W, a, act);
        unflat(t0 - h * v, m, d, W, a);
        const Vec<double> gm = grad_flat(P, W, a, act);
        CHECK_ALL_CLOSE(flat(hv.first, hv.second), Vec<double>((gp - gm) / (2.0 * h)), 1e-6, 1e-8);
        // and against the explicit Hessian
        CHECK_ALL_CLOSE(flat(hv.first, hv.second), Vec<double>(fd_hessian(P, act) * v), 1e-6, 1e-8);
    }
}

TEST(top_eigenvalues_match_explicit_hessian) {
    const Problem P = problem(20, 4, 6, 6);
    for (const Activation act : {Activation(1.0, 0.0), Activation(2.0, 0.3), Activation(2.5, 0.0)}) {
        const Mat<double> H = fd_hessian(P, act);
        Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(Eigen::MatrixXd(H.cast<double>()));
        const auto r = flatext::hessian_top_eigenvalues<double>(P.W, P.a, P.X, P.y, act, 3);
        CHECK(r.converged);
        const Index N = H.rows();
        for (Index i = 0; i < 3; ++i) CHECK_CLOSE(r.values[i], es.eigenvalues()[N - 1 - i], 1e-6, 1e-8);
    }
}

TEST(rescale_keeps_function_and_balance_minimizes_trace) {
    const Problem P = problem(30, 5, 7, 8);
    std::mt19937_64 rng(3);
    std::uniform_real_distribution<double> ud(0.3, 3.0);
    for (const Activation act : {Activation(1.0, 0.0), Activation(2.0, 0.5), Activation(3.0, -0.3)}) {
        // an interpolation-free point still has B_i >= 0 for p = 1; use labels = outputs
        // (an interpolator) so that every p has an orbit minimum
        const Vec<double> y = flatext::forward<double>(P.W, P.a, P.X, act);
        Vec<double> t(P.W.rows());
        for (Index i = 0; i < t.size(); ++i) t[i] = ud(rng);
        const auto r = flatext::rescale<double>(P.W, P.a, t, act.power);
        for (Index i = 0; i < t.size(); ++i) {
            CHECK_CLOSE(r.first(i, 0), t[i] * P.W(i, 0), 1e-15, 0);
            CHECK_CLOSE(r.second[i], P.a[i] * std::pow(t[i], -act.power), 1e-14, 0);
        }
        CHECK_ALL_CLOSE(Vec<double>(flatext::forward<double>(r.first, r.second, P.X, act)),
                        Vec<double>(flatext::forward<double>(P.W, P.a, P.X, act)), 1e-12, 1e-12);
        // per-neuron trace parts move as T_i(t) = t^(2p) A_i + t^(-2) B_i
        const auto p0 = flatext::hessian_trace_parts<double>(P.W, P.a, P.X, y, act);
        const auto p1 = flatext::hessian_trace_parts<double>(r.first, r.second, P.X, y, act);
        for (Index i = 0; i < t.size(); ++i)
            CHECK_CLOSE(p1.per_neuron[i],
                        std::pow(t[i], 2 * act.power) * p0.per_neuron_a[i] + std::pow(t[i], -2.0) * p0.per_neuron_w[i],
                        1e-10, 1e-14);
        // balance: same function, trace equal to the orbit minimum and below the start
        const auto b = flatext::balance<double>(P.W, P.a, P.X, y, act);
        CHECK_ALL_CLOSE(Vec<double>(flatext::forward<double>(b.first, b.second, P.X, act)), y, 1e-10, 1e-12);
        const double Tb = flatext::hessian_trace<double>(b.first, b.second, P.X, y, act);
        const double Tmin = flatext::orbit_min_trace<double>(P.W, P.a, P.X, y, act);
        CHECK_CLOSE(Tb, Tmin, 1e-10, 0);
        CHECK(Tb <= p0.total * (1 + 1e-12));
        // and no random rescaling of the balanced point beats it
        for (int rep = 0; rep < 5; ++rep) {
            Vec<double> s(t.size());
            for (Index i = 0; i < s.size(); ++i) s[i] = ud(rng);
            const auto q = flatext::rescale<double>(b.first, b.second, s, act.power);
            CHECK(flatext::hessian_trace<double>(q.first, q.second, P.X, y, act) >= Tb * (1 - 1e-12));
        }
    }
}

template <class M>
bool bit_identical(const M& x, const M& y) {
    return x.size() == y.size() && std::memcmp(x.data(), y.data(), sizeof(typename M::Scalar) * x.size()) == 0;
}

TEST(results_bit_identical_with_1_and_2_threads) {
    // n large enough for several tiles and chunks (tile <= 256 rows)
    const Problem P = problem(3000, 16, 24, 9);
    const Activation act(2.0, 0.3);
    Mat<double> VW = P.W.reverse();
    Vec<double> va = P.a.reverse();
    const int saved = flatext::get_num_threads();
    flatext::TilePlan plan(P.X.rows(), P.W.rows(), P.W.size(), sizeof(double));
    CHECK(plan.chunks > 1);
    const auto at_threads = [&](int t) {  // the four kernels with t threads
        flatext::set_num_threads(t);
        CHECK(flatext::get_num_threads() == t);
        return std::make_tuple(flatext::hessian_trace_grad<double>(P.W, P.a, P.X, P.y, act),
                               flatext::loss_grad<double>(P.W, P.a, P.X, P.y, act),
                               flatext::hvp<double>(P.W, P.a, P.X, P.y, VW, va, act),
                               flatext::hessian_trace_parts<double>(P.W, P.a, P.X, P.y, act));
    };
    const auto [g1, l1, h1, t1] = at_threads(1);
    const auto [g2, l2, h2, t2] = at_threads(2);
    flatext::set_num_threads(saved);
    CHECK(g1.value == g2.value);
    CHECK(bit_identical(g1.W, g2.W));
    CHECK(bit_identical(g1.a, g2.a));
    CHECK(l1.value == l2.value);
    CHECK(bit_identical(l1.W, l2.W));
    CHECK(bit_identical(h1.first, h2.first));
    CHECK(bit_identical(h1.second, h2.second));
    CHECK(t1.total == t2.total);
    CHECK(bit_identical(t1.per_neuron, t2.per_neuron));
    // and the value itself is right: the trace against a naive double loop
    double Tref = 0.0;
    for (Index j = 0; j < P.X.rows(); ++j) {
        const double s = P.X.row(j).squaredNorm();
        double f = 0.0;
        Vec<double> z = P.W * P.X.row(j).transpose();
        for (Index i = 0; i < z.size(); ++i) f += P.a[i] * sigma_ref(z[i], 2.0, 0.3);
        const double r = f - P.y[j];
        for (Index i = 0; i < z.size(); ++i) {
            const double k = z[i] > 0 ? 1.0 : (z[i] < 0 ? 0.3 : 0.0);
            const double s0 = k * z[i] * z[i], s1 = 2 * k * z[i], s2 = 2 * k;
            Tref += s0 * s0 + P.a[i] * P.a[i] * s1 * s1 * s + r * P.a[i] * s2 * s;
        }
    }
    CHECK_CLOSE(t1.total, Tref / double(P.X.rows()), 1e-12, 0);
}

TEST(float32_agrees_with_float64) {
    const Problem P = problem(200, 8, 10, 10);
    for (const Activation act : {Activation(1.0, 0.0), Activation(2.0, 0.5)}) {
        const double T64 = flatext::hessian_trace<double>(P.W, P.a, P.X, P.y, act);
        const Mat<float> W = P.W.cast<float>(), X = P.X.cast<float>();
        const Vec<float> a = P.a.cast<float>(), y = P.y.cast<float>();
        const float T32 = flatext::hessian_trace<float>(W, a, X, y, act);
        CHECK_CLOSE(T32, T64, 1e-4, 0);
        const auto g32 = flatext::hessian_trace_grad<float>(W, a, X, y, act);
        const auto g64 = flatext::hessian_trace_grad<double>(P.W, P.a, P.X, P.y, act);
        CHECK_ALL_CLOSE(Vec<double>(flat(g32.W.cast<double>(), g32.a.cast<double>())), flat(g64.W, g64.a), 1e-3,
                        1e-4 * flat(g64.W, g64.a).cwiseAbs().maxCoeff());
    }
}

TEST(bad_input_throws) {
    const Problem P = problem(10, 3, 4, 11);
    const Activation act(1.0, 0.0);
    CHECK_THROWS(Activation(0.5, 0.0), std::invalid_argument);
    CHECK_THROWS(Activation(2.0, std::nan("")), std::invalid_argument);
    const Vec<double> a_short = P.a.head(3), y_short = P.y.head(5);
    const Mat<double> X_bad(10, 4);
    CHECK_THROWS(flatext::hessian_trace<double>(P.W, a_short, P.X, P.y, act), std::invalid_argument);
    CHECK_THROWS(flatext::hessian_trace<double>(P.W, P.a, P.X, y_short, act), std::invalid_argument);
    CHECK_THROWS(flatext::loss_grad<double>(P.W, P.a, X_bad, P.y, act), std::invalid_argument);
    Vec<double> t = Vec<double>::Ones(4);
    t[2] = -1.0;
    CHECK_THROWS(flatext::rescale<double>(P.W, P.a, t, 1.0), std::invalid_argument);
    CHECK_THROWS(flatext::hessian_top_eigenvalues<double>(P.W, P.a, P.X, P.y, act, 0), std::invalid_argument);
    // InterpolationOptions::validate, the one check of the projection's options
    flatext::InterpolationOptions o;
    o.validate();
    for (int k = 0; k < 5; ++k) {
        flatext::InterpolationOptions bad;
        if (k == 0) bad.tol = -1.0;
        if (k == 1) bad.max_iter = -1;
        if (k == 2) bad.lambda_init = std::nan("");
        if (k == 3) bad.lambda_min = 2 * bad.lambda_max;
        if (k == 4) bad.cg_max_iter = 0;
        CHECK_THROWS(bad.validate(), std::invalid_argument);
        CHECK_THROWS(flatext::find_interpolator<double>(P.W, P.a, P.X, P.y, act, bad), std::invalid_argument);
    }
}

TEST(objective_matches_fd_and_separate_kernels) {
    const Problem P = problem(14, 3, 5, 12);
    const double lam = 0.37;
    using flatext::Regularizer;
    for (const auto& act : kActs) {
        for (const Regularizer which : {Regularizer::none, Regularizer::gauss_newton, Regularizer::trace}) {
            // K by hessian_trace_parts (itself checked against the explicit Hessian above)
            auto K = [&](const Mat<double>& W, const Vec<double>& a) {
                if (which == Regularizer::none) return 0.0;
                const auto parts = flatext::hessian_trace_parts<double>(W, a, P.X, P.y, act);
                return which == Regularizer::trace ? double(parts.total) : double(parts.gauss_newton);
            };
            Mat<double> gW(P.W.rows(), P.W.cols());
            Vec<double> ga(P.a.size());
            const auto v = flatext::objective<double>(P.W, P.a, P.X, P.y, act, which, lam, gW, ga);
            const double L = loss_ref(P.W, P.a, P.X, P.y, act);
            CHECK_CLOSE(v.loss, L, 1e-12, 0);
            CHECK_CLOSE(v.regularizer, K(P.W, P.a), 1e-11, 1e-14);
            CHECK_CLOSE(v.value, L + lam * K(P.W, P.a), 1e-11, 0);
            const Vec<double> fd =
                fd_grad([&](const Mat<double>& W,
                            const Vec<double>& a) { return loss_ref(W, a, P.X, P.y, act) + lam * K(W, a); },
                        P.W, P.a, 1e-6);
            CHECK_ALL_CLOSE(flat(gW, ga), fd, 1e-5, 1e-7);
        }
        // L alone is loss_grad, bit for bit; the buffer overloads equal the allocating ones
        Mat<double> gW(P.W.rows(), P.W.cols()), gW2(P.W.rows(), P.W.cols());
        Vec<double> ga(P.a.size()), ga2(P.a.size());
        const auto v = flatext::objective<double>(P.W, P.a, P.X, P.y, act, Regularizer::none, 0.0, gW, ga);
        const auto lg = flatext::loss_grad<double>(P.W, P.a, P.X, P.y, act);
        CHECK(v.value == lg.value && v.regularizer == 0.0 && bit_identical(gW, lg.W) && bit_identical(ga, lg.a));
        const double L2 = flatext::loss_grad<double>(P.W, P.a, P.X, P.y, act, gW2, ga2);
        CHECK(L2 == lg.value && bit_identical(gW2, lg.W) && bit_identical(ga2, lg.a));
        const auto tg = flatext::hessian_trace_grad<double>(P.W, P.a, P.X, P.y, act);
        const double T2 = flatext::hessian_trace_grad<double>(P.W, P.a, P.X, P.y, act, gW2, ga2);
        CHECK(T2 == tg.value && bit_identical(gW2, tg.W) && bit_identical(ga2, tg.a));
        // a block of a bigger matrix is a valid output buffer (Eigen::Ref with an outer stride)
        Mat<double> big = Mat<double>::Zero(P.W.rows() + 2, P.W.cols() + 3);
        flatext::hessian_trace_grad<double>(P.W, P.a, P.X, P.y, act, big.block(1, 2, P.W.rows(), P.W.cols()), ga2);
        CHECK(Mat<double>(big.block(1, 2, P.W.rows(), P.W.cols())) == tg.W);
        CHECK(big.col(0).isZero() && big.row(0).isZero());
    }
    Mat<double> gW(P.W.rows(), P.W.cols() + 1);
    Vec<double> ga(P.a.size());
    CHECK_THROWS(flatext::objective<double>(P.W, P.a, P.X, P.y, kActs[0], Regularizer::trace, 1.0, gW, ga),
                 std::invalid_argument);
    Mat<double> gW_ok(P.W.rows(), P.W.cols());
    CHECK_THROWS(flatext::objective<double>(P.W, P.a, P.X, P.y, kActs[0], Regularizer::trace, std::nan(""), gW_ok, ga),
                 std::invalid_argument);
}

TEST(objective_bit_identical_with_1_and_2_threads) {
    const Problem P = problem(3000, 16, 24, 13);
    const int saved = flatext::get_num_threads();
    for (const auto which : {flatext::Regularizer::gauss_newton, flatext::Regularizer::trace}) {
        for (const Activation act : {Activation(1.0, 0.0), Activation(2.0, 0.3), Activation(2.5, 0.3)}) {
            Mat<double> gW1(24, 16), gW2(24, 16);
            Vec<double> ga1(24), ga2(24);
            flatext::set_num_threads(1);
            const auto v1 = flatext::objective<double>(P.W, P.a, P.X, P.y, act, which, 0.5, gW1, ga1);
            flatext::set_num_threads(2);
            const auto v2 = flatext::objective<double>(P.W, P.a, P.X, P.y, act, which, 0.5, gW2, ga2);
            CHECK(v1.value == v2.value && v1.loss == v2.loss && v1.regularizer == v2.regularizer);
            CHECK(bit_identical(gW1, gW2) && bit_identical(ga1, ga2));
        }
    }
    flatext::set_num_threads(saved);
}

TEST(theta_pack_unpack_and_objective_theta) {
    const Problem P = problem(20, 4, 6, 14);
    const Vec<double> th = flatext::pack<double>(P.W, P.a);
    CHECK(th.size() == flatext::theta_size(6, 4));
    CHECK(th == flat(P.W, P.a));  // [W row-major, a], the layout of python/flatext/scipy.py
    Mat<double> W;
    Vec<double> a;
    flatext::unpack<double>(th, 6, 4, W, a);
    CHECK(W == P.W && a == P.a);
    Vec<double> buf = th;
    auto view = flatext::theta_view<double>(buf, 6, 4);
    view.a[0] = 42.0;  // a view, not a copy
    view.W(1, 2) = -7.0;
    CHECK(buf[6 * 4] == 42.0 && buf[1 * 4 + 2] == -7.0);
    const Activation act(2.0, 0.3);
    Vec<double> g(th.size());
    const double v = flatext::objective_theta<double>(th, P.X, P.y, act, flatext::Regularizer::trace, 0.25, g);
    Mat<double> gW(6, 4);
    Vec<double> ga(6);
    const auto o = flatext::objective<double>(P.W, P.a, P.X, P.y, act, flatext::Regularizer::trace, 0.25, gW, ga);
    CHECK(v == o.value && g == flat(gW, ga));
    CHECK_THROWS(flatext::theta_view<double>(buf, 5, 4), std::invalid_argument);
    Vec<double> th_bad(th.size() + 1), g_bad(th.size() - 1);
    CHECK_THROWS(flatext::objective_theta<double>(th_bad, P.X, P.y, act, flatext::Regularizer::trace, 0.25, th_bad),
                 std::invalid_argument);
    CHECK_THROWS(flatext::objective_theta<double>(th, P.X, P.y, act, flatext::Regularizer::trace, 0.25, g_bad),
                 std::invalid_argument);
}

TEST(jacobian_products_match_fd_and_interpolation_jvp_vjp) {
    const Problem P = problem(600, 5, 40, 15);  // several tiles
    const Mat<double> VW = P.W.reverse();
    const Vec<double> va = P.a.reverse();
    for (const auto& act : kActs) {
        const Vec<double> jv = flatext::jacobian_product<double>(P.W, P.a, P.X, VW, va, act);
        CHECK(bit_identical(jv, flatext::jvp<double>(P.W, P.a, P.X, VW, va, act)));
        const Vec<double> u = P.y;
        const auto jt = flatext::jacobian_t_product<double>(P.W, P.a, P.X, u, act);
        const auto vj = flatext::vjp<double>(P.W, P.a, P.X, u, act);
        CHECK(bit_identical(jt.first, vj.first) && bit_identical(jt.second, vj.second));
        // J v by central differences of f along v; u . J v = (J^T u) . v
        const double h = 1e-6;
        const Vec<double> fp = flatext::forward<double>(P.W + h * VW, P.a + h * va, P.X, act);
        const Vec<double> fm = flatext::forward<double>(P.W - h * VW, P.a - h * va, P.X, act);
        CHECK_ALL_CLOSE(jv, Vec<double>((fp - fm) / (2 * h)), 1e-6, 1e-7);
        CHECK_CLOSE(u.dot(jv), flat(jt.first, jt.second).dot(flat(VW, va)), 1e-11, 0);
    }
}

TEST(rescale_scalar_and_clipped_orbit) {
    const Problem P = problem(30, 3, 6, 3);
    const Activation act(2.0, 0.0);
    const auto rs = flatext::rescale<double>(P.W, P.a, 1.7, 2.0);
    const auto rv = flatext::rescale<double>(P.W, P.a, Vec<double>::Constant(6, 1.7), 2.0);
    CHECK(bit_identical(rs.first, rv.first) && bit_identical(rs.second, rv.second));
    CHECK_THROWS(flatext::rescale<double>(P.W, P.a, 0.0, 2.0), std::invalid_argument);
    CHECK_THROWS(flatext::rescale<double>(P.W, P.a, 1.0, 0.5), std::invalid_argument);
    // away from interpolation some B_i < 0 for p = 2: raise by default, clip on request
    const auto parts = flatext::hessian_trace_parts<double>(P.W, P.a, P.X, P.y, act);
    CHECK(parts.per_neuron_w.minCoeff() < 0);
    CHECK_THROWS(flatext::orbit_min_trace<double>(P.W, P.a, P.X, P.y, act), std::domain_error);
    const double clipped = flatext::orbit_min_trace<double>(P.W, P.a, P.X, P.y, act, flatext::NegativeB::clip);
    double want = 0.0;  // sum over B_i > 0 of (p+1) A^(1/(p+1)) (B/p)^(p/(p+1)), p = 2
    for (Index i = 0; i < 6; ++i) {
        const double A = parts.per_neuron_a[i], B = parts.per_neuron_w[i];
        if (A > 0 && B > 0) want += 3.0 * std::cbrt(A) * std::pow(B / 2.0, 2.0 / 3.0);
    }
    CHECK_CLOSE(clipped, want, 1e-12, 0);
    const auto b = flatext::balance<double>(P.W, P.a, P.X, P.y, act, flatext::NegativeB::clip);
    CHECK_ALL_CLOSE(Vec<double>(flatext::forward<double>(b.first, b.second, P.X, act)),
                    Vec<double>(flatext::forward<double>(P.W, P.a, P.X, act)), 1e-12, 1e-12);
    for (Index i = 0; i < 6; ++i)
        if (parts.per_neuron_w[i] < 0) CHECK(b.first.row(i) == P.W.row(i));  // clipped neurons stay put
}

TEST(objective_theta_drives_a_descent_solver) {
    // The solver glue in use: a plain gradient descent with Armijo backtracking on a flat theta,
    // as a third-party minimizer would run it, on L + lambda G (ReLU^2) and L + lambda T (ReLU).
    const Problem P = problem(40, 3, 8, 16);
    struct Case {
        Activation act;
        flatext::Regularizer which;
    };
    for (const Case c : {Case{Activation(2.0, 0.0), flatext::Regularizer::gauss_newton},
                         Case{Activation(1.0, 0.0), flatext::Regularizer::trace}}) {
        Vec<double> th = flatext::pack<double>(P.W, P.a), g(th.size()), g_new(th.size());
        double f = flatext::objective_theta<double>(th, P.X, P.y, c.act, c.which, 0.05, g);
        const double f0 = f, g0 = g.norm();
        double step = 1.0;
        bool monotone = true;
        for (int it = 0; it < 300; ++it) {
            for (int bt = 0; bt < 60; ++bt, step *= 0.5) {
                const Vec<double> trial = th - step * g;
                const double ft = flatext::objective_theta<double>(trial, P.X, P.y, c.act, c.which, 0.05, g_new);
                if (ft <= f - 1e-4 * step * g.squaredNorm()) {
                    monotone = monotone && ft <= f;
                    th = trial;
                    f = ft;
                    g = g_new;
                    step *= 2.0;
                    break;
                }
            }
        }
        std::printf("  descent: f %g -> %g, |g| %g -> %g\n", f0, f, g0, g.norm());
        CHECK(monotone);
        CHECK(f < 0.75 * f0);
        CHECK(g.norm() < 0.05 * g0);
        // the final value and gradient agree with the (W, a) entry point
        const auto v = flatext::theta_cview<double>(th, 8, 3);
        Mat<double> gW(8, 3);
        Vec<double> ga(8);
        const auto o = flatext::objective<double>(v.W, v.a, P.X, P.y, c.act, c.which, 0.05, gW, ga);
        CHECK(o.value == f && flat(gW, ga) == g);
        if (c.which == flatext::Regularizer::gauss_newton) CHECK(o.regularizer >= 0.0);
    }
}

}  // namespace

int main(int argc, char** argv) {
    const char* filter = argc > 1 ? argv[1] : "";
    std::printf("flatext C++ core tests (GEMM backend: %s, OpenMP: %s, threads: %d)\n", flatext::gemm::backend_name(),
                flatext::openmp_enabled() ? "yes" : "no", flatext::get_num_threads());
    int ran = 0;
    for (const auto& tc : registry()) {
        if (std::strstr(tc.name, filter) == nullptr) continue;
        g_current = tc.name;
        const int before = g_failures;
        try {
            tc.fn();
        } catch (const std::exception& e) {
            report_failure(__FILE__, __LINE__, std::string("unexpected exception: ") + e.what());
        }
        ++ran;
        std::printf("%s %s\n", g_failures == before ? "ok  " : "FAIL", tc.name);
    }
    std::printf("%d tests, %d checks, %d failures\n", ran, g_checks, g_failures);
    if (ran == 0) {
        std::printf("no test matches '%s'\n", filter);
        return 2;
    }
    return g_failures == 0 ? 0 : 1;
}
