// The pybind11 module flatext._core: only checks, dispatch and GIL release;
// every computation lives in the header-only core (cpp/include/flatext).
#include "checks.hpp"

#include <flatext/activation.hpp>
#include <flatext/config.hpp>
#include <flatext/gemm.hpp>

namespace flatext_py {
void bind_kernels(py::module_& m);
void bind_lanczos(py::module_& m);
void bind_symmetry(py::module_& m);
void bind_objective(py::module_& m);
void bind_population(py::module_& m);
void bind_gram(py::module_& m);
void bind_interpolation(py::module_& m);
void bind_search(py::module_& m);
void bind_training(py::module_& m);
}  // namespace flatext_py

// PYBIND11_MODULE(name, variable, ...) takes module options since pybind11 2.13;
// invoking it without any trips -Wpedantic ("requires at least one argument for
// the ..."), so the default (the module uses the GIL) is spelled out.
#if PYBIND11_VERSION_MAJOR >= 3
PYBIND11_MODULE(_core, m, py::mod_gil_used()) {
#elif PYBIND11_VERSION_HEX >= 0x020D0000
PYBIND11_MODULE(_core, m, py::mod_gil_not_used(false)) {
#else
PYBIND11_MODULE(_core, m) {
#endif
    m.doc() = "flatext C++ core (see the flatext package for documentation)";
    flatext_py::bind_kernels(m);
    flatext_py::bind_lanczos(m);
    flatext_py::bind_symmetry(m);
    flatext_py::bind_objective(m);
    flatext_py::bind_population(m);
    flatext_py::bind_gram(m);
    flatext_py::bind_interpolation(m);
    flatext_py::bind_search(m);
    flatext_py::bind_training(m);
    m.def("get_num_threads", &flatext::get_num_threads, "Number of threads the kernels use.");
    m.def(
        "set_num_threads",
        [](int k) {
            if (k < 0) throw py::value_error("k must be >= 0 (0 restores the default); got " + std::to_string(k));
            flatext::set_num_threads(k);
        },
        py::arg("k"), "Set the kernels' thread count for the process; 0 restores the default.");
    // module_local: every dispatch variant (flatext/_isa/<v>/_core) registers its own type, so that
    // several variants can be loaded in one process (benchmarks/bench_kernels.py --dispatch).
    py::class_<flatext::Activation>(m, "Activation",
                                    "sigma(z) = max(z,0)^power + neg*max(-z,0)^power; checks power >= 1 and neg",
                                    py::module_local())
        .def(py::init<double, double>(), py::arg("power") = 1.0, py::arg("neg") = 0.0)
        .def_readonly("power", &flatext::Activation::power)
        .def_readonly("neg", &flatext::Activation::neg)
        .def("__repr__", [](const flatext::Activation& a) {
            return "Activation(power=" + std::to_string(a.power) + ", neg=" + std::to_string(a.neg) + ")";
        });
    m.attr("openmp_enabled") = flatext::openmp_enabled();
    m.attr("blas_backend") = flatext::gemm::backend_name();
#ifdef FLATEXT_VERSION
    m.attr("__version__") = FLATEXT_VERSION;
#endif
}
