#!/usr/bin/env bash
# Incremental developer build: compiles the extension in build/dev and installs it into
# the source tree (python/flatext/_isa, include/, share/: git-ignored), so that
#
#   bash tools/dev_build.sh                 # or: FLATEXT_DISPATCH_VARIANTS=avx2 bash tools/dev_build.sh
#   PYTHONPATH=$PWD/python python3 -m pytest -q tests/test_kernels.py
#
# runs the tests against what was just built. A re-run recompiles only the translation
# units whose sources or headers changed (Ninja's or Make's dependency tracking);
# docs/build.md has the measured times. FLATEXT_DISPATCH_VARIANTS (default: baseline;avx2;avx512)
# picks the modules to build: one variant is a third of the work. Variant folders not
# built are removed from python/flatext/_isa, so that the loader cannot import a stale one.
# PYTHON (default python3) must import pybind11, cmeel (cmeel-eigen) and scipy_openblas32:
#   python3 -m pip install pybind11 cmeel-eigen scipy-openblas32
# Set CMAKE_CXX_COMPILER_LAUNCHER=ccache to reuse objects across clean builds, and
# DEV_CMAKE_ARGS for more CMake options, e.g. -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF
# (no link-time optimization: faster rebuilds after an edit that recompiles one small binding
# file, slower ones after an edit of a header many files include, and a slower clean build).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
BUILD=${DEV_BUILD_DIR:-build/dev}
VARIANTS=${FLATEXT_DISPATCH_VARIANTS:-baseline;avx2;avx512}
"$PY" -c "import pybind11, cmeel, scipy_openblas32" ||
  { echo "dev_build.sh: $PY needs pybind11, cmeel-eigen and scipy-openblas32 (pip install them)" >&2; exit 2; }
gen=()
[ -f "$BUILD/CMakeCache.txt" ] || ! command -v ninja > /dev/null || gen=(-G Ninja)
launcher=()
[ -z "${CMAKE_CXX_COMPILER_LAUNCHER:-}" ] || launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER="$CMAKE_CXX_COMPILER_LAUNCHER")
read -r -a extra <<< "${DEV_CMAKE_ARGS:-}"
cmake -S . -B "$BUILD" "${gen[@]}" "${launcher[@]}" "${extra[@]}" -DCMAKE_BUILD_TYPE=Release -DFLATEXT_BUILD_PYTHON=ON \
  -DPython_EXECUTABLE="$(command -v "$PY")" -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" \
  -DFLATEXT_DISPATCH_VARIANTS="$VARIANTS" \
  -DFLATEXT_INSTALL_INCLUDEDIR=flatext/include -DFLATEXT_INSTALL_CMAKEDIR=flatext/share/cmake/flatext > /dev/null
cmake --build "$BUILD" --parallel "${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
for dir in python/flatext/_isa/*/; do
  case ";$VARIANTS;" in *";$(basename "$dir");"*) ;; *) rm -rf "$dir" ;; esac
done
cmake --install "$BUILD" --prefix python > /dev/null
echo "dev_build.sh: installed variant(s) $VARIANTS into python/flatext/_isa"
