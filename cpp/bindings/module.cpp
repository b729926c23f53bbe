// The pybind11 module flatext._core: only checks, dispatch and GIL release;
// every computation lives in the header-only core (cpp/include/flatext).
#include "checks.hpp"

namespace flatext_py {
void bind_kernels(py::module_& m);
void bind_population(py::module_& m);
void bind_interpolation(py::module_& m);
void bind_training(py::module_& m);
}

PYBIND11_MODULE(_core, m) {
    m.doc() = "flatext C++ core (see the flatext package for documentation)";
    flatext_py::bind_kernels(m);
    flatext_py::bind_population(m);
    flatext_py::bind_interpolation(m);
    flatext_py::bind_training(m);
    m.def("get_num_threads", &flatext::get_num_threads);
    m.def("set_num_threads", [](int k) {
        if (k < 0) throw py::value_error("k must be >= 0 (0 restores the default); got " + std::to_string(k));
        flatext::set_num_threads(k);
    });
    m.attr("openmp_enabled") = flatext::openmp_enabled();
    m.attr("blas_backend") = flatext::gemm::backend_name();
#ifdef FLATEXT_VERSION
    m.attr("__version__") = FLATEXT_VERSION;
#endif
}
