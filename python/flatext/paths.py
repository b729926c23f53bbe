"""Where the installed C++ core lives: headers and CMake package config.

Like ``numpy.get_include()`` and ``pybind11.get_cmake_dir()``::

    cmake -S . -B build -Dflatext_DIR="$(python -c 'import flatext; print(flatext.get_cmake_dir())')"

then, in the consumer's ``CMakeLists.txt``::

    find_package(flatext CONFIG REQUIRED)
    target_link_libraries(my_target PRIVATE flatext::flatext)

The wheel installs the headers in ``site-packages/flatext/include/flatext/``
and ``flatextConfig.cmake`` in ``site-packages/flatext/share/cmake/flatext/``
(see ``docs/cpp.md``).
"""

from __future__ import annotations

import os
import sys

__all__ = ["get_include", "get_cmake_dir", "get_eigen_include", "compile_flags"]

_HERE = os.path.dirname(os.path.abspath(__file__))


def _existing(path, what, marker):
    if os.path.exists(os.path.join(path, marker)):
        return path
    # editable installs import the Python files from the source tree while the
    # CMake-installed files sit in site-packages/flatext: look there too
    rel = os.path.relpath(path, _HERE)
    for entry in sys.path:
        cand = os.path.join(entry or os.curdir, "flatext", rel)
        if os.path.exists(os.path.join(cand, marker)):
            return os.path.abspath(cand)
    raise FileNotFoundError(
        f"flatext: the {what} are not installed at {path} (expected {marker} there); "
        "reinstall flatext from a wheel or with `pip install .` (an in-tree checkout has them in "
        "cpp/include and builds its CMake config with CMakeLists.txt)"
    )


def get_include():
    """Directory to add to the include path for ``#include <flatext/flatext.hpp>``.

    Returns
    -------
    str
        ``<site-packages>/flatext/include``.

    Raises
    ------
    FileNotFoundError
        If the headers are not installed there.
    """
    return _existing(os.path.join(_HERE, "include"), "C++ headers", os.path.join("flatext", "flatext.hpp"))


def get_cmake_dir():
    """Directory holding ``flatextConfig.cmake``: pass it as ``-Dflatext_DIR=...``.

    Returns
    -------
    str
        ``<site-packages>/flatext/share/cmake/flatext``.

    Raises
    ------
    FileNotFoundError
        If the CMake package config is not installed there.
    """
    return _existing(os.path.join(_HERE, "share", "cmake", "flatext"), "CMake package files", "flatextConfig.cmake")


def get_eigen_include():
    """Directory holding Eigen's headers (``<dir>/Eigen/Core``).

    PyPI's ``cmeel-eigen`` (``<site-packages>/cmeel.prefix/include/eigen3``),
    looked for first next to this flatext, then on ``sys.path``; then the
    system's ``/usr/include/eigen3`` and ``/usr/local/include/eigen3``.

    Returns
    -------
    str

    Raises
    ------
    FileNotFoundError
        If no Eigen is found (``pip install cmeel-eigen`` fixes it).
    """
    site = os.path.dirname(_HERE)
    cands = [os.path.join(p, "cmeel.prefix", "include", "eigen3") for p in [site, *sys.path] if p]
    cands += ["/usr/include/eigen3", "/usr/local/include/eigen3"]
    for c in cands:
        if os.path.exists(os.path.join(c, "Eigen", "Core")):
            return os.path.abspath(c)
    raise FileNotFoundError(
        "flatext: Eigen's headers were not found (looked for cmeel.prefix/include/eigen3 on sys.path and "
        "/usr/include/eigen3): pip install cmeel-eigen, or install your system's Eigen (libeigen3-dev)"
    )


def _openblas_libdir():
    try:
        import scipy_openblas32 as sob
    except ImportError:
        return None
    lib = sob.get_lib_dir()
    return lib if os.path.isdir(lib) else None


def compile_flags(openblas=True):
    """Flags to compile and link one C++ file against flatext without CMake.

    The same build as the CMake target ``flatext::flatext`` in a Release build
    (``-O3 -DNDEBUG``; without ``-DNDEBUG`` Eigen's index checks halve the
    kernels' speed) plus ``-fno-trapping-math`` (see ``docs/cpp.md``). Put the
    flags after the source files (they end with the linker flags)::

        g++ main.cpp $(flatext paths --cflags) -o main

    Parameters
    ----------
    openblas : bool
        Link OpenBLAS from the ``scipy-openblas32`` wheel when it is installed
        (``-DFLATEXT_USE_OPENBLAS``, about 2x faster GEMMs); ``False`` uses
        Eigen's GEMM and needs no library.

    Returns
    -------
    list of str
    """
    flags = [
        "-std=c++17",
        "-O3",
        "-DNDEBUG",
        "-fno-trapping-math",
        "-fopenmp",
        "-DEIGEN_DONT_PARALLELIZE",
        f"-I{get_include()}",
        f"-I{get_eigen_include()}",
    ]
    lib = _openblas_libdir() if openblas else None
    if lib is not None:
        flags += ["-DFLATEXT_USE_OPENBLAS", f"-L{lib}", f"-Wl,-rpath,{lib}", "-lscipy_openblas"]
    return flags


def _run(args):
    if args.cflags:
        import shlex

        print(" ".join(shlex.quote(f) for f in compile_flags(openblas=not args.no_openblas)))
    elif args.cmakedir:
        print(get_cmake_dir())
    elif args.includedir:
        print(get_include())
    else:
        print(f"include: {get_include()}")
        print(f"cmake_dir: {get_cmake_dir()}")


def add_parser(sub):
    p = sub.add_parser("paths", help="print where the C++ headers and the CMake package config are installed")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--cmakedir", action="store_true", help="only the directory of flatextConfig.cmake (flatext_DIR)")
    g.add_argument("--includedir", action="store_true", help="only the include directory (for <flatext/flatext.hpp>)")
    g.add_argument(
        "--cflags",
        action="store_true",
        help="compiler and linker flags for building without CMake: g++ main.cpp $(flatext paths --cflags)",
    )
    p.add_argument(
        "--no-openblas",
        action="store_true",
        help="with --cflags: Eigen's GEMM instead of OpenBLAS from scipy-openblas32 (no library to link)",
    )
    p.set_defaults(func=_run)
