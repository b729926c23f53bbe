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

__all__ = ["get_include", "get_cmake_dir"]

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


def _run(args):
    if args.cmakedir:
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
    p.set_defaults(func=_run)
