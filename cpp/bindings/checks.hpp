// Input checks and dtype dispatch shared by the binding files. Every check
// names the argument; nothing here computes. Only the core's types are included
// (Index, Mat, Vec, Activation): each binding file includes the headers it binds,
// so that editing one of them recompiles only the files that use it.
#pragma once

#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>
#include <vector>

#include <flatext/activation.hpp>
#include <flatext/config.hpp>

namespace py = pybind11;

namespace flatext_py {

using flatext::Index;

/// One validated input: C-contiguous, float32 or float64.
struct Arg {
    py::array arr;
    const char* name;
    bool f32 = false;

    template <class T>
    const T* data() const {
        return static_cast<const T*>(arr.data());
    }
    Index dim(int k) const { return Index(arr.shape(k)); }
};

inline std::string shape_str(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t k = 0; k < a.ndim(); ++k) s += (k ? ", " : "") + std::to_string(a.shape(k));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

/// Converts like numpy.asarray, then requires a real floating dtype and ndim.
inline Arg to_arg(py::handle obj, const char* name, int ndim) {
    if (obj.is_none()) throw py::type_error(std::string(name) + " must be an array, not None");
    py::array arr = py::array::ensure(obj);
    if (!arr) throw py::type_error(std::string(name) + " must be convertible to a numpy array");
    {
        // byte-swapped or unaligned float arrays: an aligned native copy
        const py::dtype d0 = arr.dtype();
        const bool aligned = arr.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_;
        if (d0.kind() == 'f' && (d0.itemsize() == 4 || d0.itemsize() == 8) &&
            (!aligned || !d0.attr("isnative").cast<bool>()))
            arr = py::module_::import("numpy").attr("require")(
                arr, d0.itemsize() == 4 ? py::dtype::of<float>() : py::dtype::of<double>(), "CA");
    }
    const py::dtype dt = arr.dtype();
    const bool f32 = dt.is(py::dtype::of<float>()), f64 = dt.is(py::dtype::of<double>());
    if (!f32 && !f64)
        throw py::type_error(std::string(name) + " must have dtype float32 or float64; got " +
                             std::string(py::str(dt)));
    if (arr.ndim() != ndim)
        throw py::value_error(std::string(name) + " must be " + std::to_string(ndim) + "-D; got shape " +
                              shape_str(arr));
    Arg a{arr, name, f32};
    // contiguous copies where needed (non-contiguous / Fortran order give the same result)
    if (f32)
        a.arr = py::array_t<float, py::array::c_style>::ensure(arr);
    else
        a.arr = py::array_t<double, py::array::c_style>::ensure(arr);
    return a;
}

template <class T>
inline void check_finite_data(const Arg& a) {
    const T* p = a.data<T>();
    const py::ssize_t sz = a.arr.size();
    bool ok = true;
    for (py::ssize_t i = 0; i < sz; ++i) ok &= std::isfinite(p[i]);
    if (!ok) {
        py::ssize_t i = 0;
        while (std::isfinite(p[i])) ++i;
        throw py::value_error(std::string(a.name) + " contains NaN or inf (first at flat index " + std::to_string(i) +
                              ")");
    }
}

inline void check_finite(const Arg& a) {
    if (a.f32)
        check_finite_data<float>(a);
    else
        check_finite_data<double>(a);
}

/// All arguments must share one dtype.
inline void same_dtype(const std::vector<const Arg*>& args) {
    for (const Arg* a : args)
        if (a->f32 != args[0]->f32)
            throw py::type_error("mixed dtypes: " + std::string(args[0]->name) + " is " +
                                 (args[0]->f32 ? "float32" : "float64") + " but " + a->name + " is " +
                                 (a->f32 ? "float32" : "float64") + "; pass all arrays in one dtype");
}

/// The network (W, a), data X and optionally labels y, checked together.
struct Net {
    Arg W, a, X, y;
    bool has_y = false;
    Index m = 0, d = 0, n = 0;
    bool f32() const { return W.f32; }

    template <class T>
    Eigen::Map<const flatext::Mat<T>> Wm() const {
        return {W.data<T>(), m, d};
    }
    template <class T>
    Eigen::Map<const flatext::Vec<T>> av() const {
        return {a.data<T>(), m};
    }
    template <class T>
    Eigen::Map<const flatext::Mat<T>> Xm() const {
        return {X.data<T>(), n, d};
    }
    template <class T>
    Eigen::Map<const flatext::Vec<T>> yv() const {
        return {y.data<T>(), n};
    }
};

inline Net check_net(py::handle W, py::handle a, py::handle X, py::handle y, bool need_y) {
    Net net;
    net.W = to_arg(W, "W", 2);
    net.a = to_arg(a, "a", 1);
    net.X = to_arg(X, "X", 2);
    std::vector<const Arg*> all{&net.W, &net.a, &net.X};
    if (need_y) {
        net.y = to_arg(y, "y", 1);
        net.has_y = true;
        all.push_back(&net.y);
    }
    same_dtype(all);
    net.m = net.W.dim(0);
    net.d = net.W.dim(1);
    net.n = net.X.dim(0);
    if (net.a.dim(0) != net.m)
        throw py::value_error("a must have shape (m,) = (" + std::to_string(net.m) + ",) to match W of shape " +
                              shape_str(net.W.arr) + "; got " + shape_str(net.a.arr));
    if (net.X.dim(1) != net.d)
        throw py::value_error("X must have d = " + std::to_string(net.d) + " columns to match W of shape " +
                              shape_str(net.W.arr) + "; got X of shape " + shape_str(net.X.arr));
    if (need_y && net.y.dim(0) != net.n)
        throw py::value_error("y must have shape (n,) = (" + std::to_string(net.n) + ",) to match X of shape " +
                              shape_str(net.X.arr) + "; got " + shape_str(net.y.arr));
    if (net.m == 0) throw py::value_error("W is empty (m = 0 neurons)");
    if (net.d == 0) throw py::value_error("W and X are empty (d = 0 input dimensions)");
    if (net.n == 0) throw py::value_error("X is empty (n = 0 samples)");
    for (const Arg* p : all) check_finite(*p);
    return net;
}

/// A finite positive scalar argument.
inline void check_positive(double v, const char* name) {
    if (!(v > 0) || !std::isfinite(v))
        throw py::value_error(std::string(name) + " must be finite and > 0; got " + std::to_string(v));
}

/// An optional float64 vector of length n (None: empty).
inline flatext::Vec<double> optional_vec(py::handle v, Index n, const char* name) {
    if (v.is_none()) return {};
    Arg va = to_arg(v, name, 1);
    if (va.dim(0) != n)
        throw py::value_error(std::string(name) + " must have shape (n,) = (" + std::to_string(n) + ",); got " +
                              shape_str(va.arr));
    check_finite(va);
    flatext::Vec<double> out(n);
    for (Index j = 0; j < n; ++j) out[j] = va.f32 ? double(va.data<float>()[j]) : va.data<double>()[j];
    return out;
}

/// The activation; flatext::Activation checks power and neg itself (ValueError naming them).
inline flatext::Activation make_activation(double power, double neg) { return flatext::Activation(power, neg); }

/// Runs f() with the GIL released (f must not touch Python objects).
template <class F>
auto without_gil(F&& f) {
    py::gil_scoped_release release;
    return f();
}

/// A direction v = (VW, va) in parameter space, checked against the network.
struct Direction {
    Arg W, a;
    template <class T>
    Eigen::Map<const flatext::Mat<T>> Wm() const {
        return {W.data<T>(), W.dim(0), W.dim(1)};
    }
    template <class T>
    Eigen::Map<const flatext::Vec<T>> av() const {
        return {a.data<T>(), a.dim(0)};
    }
};

inline Direction check_direction(const Net& net, py::handle VW, py::handle va) {
    Direction v{to_arg(VW, "VW", 2), to_arg(va, "va", 1)};
    same_dtype({&net.W, &v.W, &v.a});
    if (v.W.dim(0) != net.m || v.W.dim(1) != net.d)
        throw py::value_error("VW must have the shape of W " + shape_str(net.W.arr) + "; got " + shape_str(v.W.arr));
    if (v.a.dim(0) != net.m)
        throw py::value_error("va must have the shape of a " + shape_str(net.a.arr) + "; got " + shape_str(v.a.arr));
    check_finite(v.W);
    check_finite(v.a);
    return v;
}

/// Runs f(T{}) with T = float or double.
template <class F>
decltype(auto) dispatch(bool f32, F&& f) {
    if (f32) return f(float{});
    return f(double{});
}

/// A numpy scalar of dtype T (np.float32 / np.float64); non-finite is an error.
template <class T>
py::object scalar(T v, const char* what) {
    if (!std::isfinite(double(v)))
        throw py::value_error(std::string(what) + ": the result is not finite (overflow in " +
                              (sizeof(T) == 4 ? "float32" : "float64") + "); rescale the inputs or use float64");
    static py::handle type =
        py::object(py::module_::import("numpy").attr(sizeof(T) == 4 ? "float32" : "float64")).release();
    return type(v);
}

template <class M>
void require_finite(const M& x, const char* what) {
    if (!x.allFinite())
        throw py::value_error(std::string(what) +
                              ": the result is not finite (overflow); rescale the inputs or use "
                              "float64");
}

}  // namespace flatext_py
