#!/usr/bin/env bash
# Builds flatext's extension with AddressSanitizer + UndefinedBehaviorSanitizer
# (CMake option FLATEXT_SANITIZE) into a dedicated venv and build dir, then
# runs the test suite under it. .ci/run runs it after the normal suite.
#
#   tools/sanitize.sh [pytest args...]        (default: -q tests)
#
# Environment: SANITIZE_VENV (default .venv-asan), PYTHON (default python3).
# Python itself is not instrumented: the sanitizer runtimes are LD_PRELOADed,
# leak detection is off (the interpreter "leaks" by design), and UBSan aborts
# on the first report so that any finding fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${SANITIZE_VENV:-.venv-asan}
CXX_BIN=${CXX:-c++}

start=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv --system-site-packages "$VENV"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
# build requirements must be importable for --no-build-isolation
"$VENV/bin/python" -c "import scikit_build_core, pybind11, cmeel, scipy_openblas32" 2>/dev/null ||
  "$VENV/bin/python" -m pip install -q "scikit-build-core>=0.10" "pybind11>=2.12" "cmeel-eigen>=3.4" "scipy-openblas32>=0.3.27"
# test dependencies (the `test` extra) only if missing: resolving them is slow
"$VENV/bin/python" -c "import pytest, hypothesis, scipy" 2>/dev/null || "$VENV/bin/python" -m pip install -q ".[test]"
"$VENV/bin/python" -m pip install -q --no-build-isolation --no-deps --force-reinstall \
  -Ccmake.define.FLATEXT_SANITIZE=ON -Ccmake.define.FLATEXT_DISPATCH_VARIANTS=baseline -Cbuild-dir=build/asan .
built=$(date +%s)

ASAN_LIB=$("$CXX_BIN" -print-file-name=libasan.so)
UBSAN_LIB=$("$CXX_BIN" -print-file-name=libubsan.so)
for lib in "$ASAN_LIB" "$UBSAN_LIB"; do
  [ -f "$lib" ] || { echo "sanitize.sh: runtime $lib not found (is $CXX_BIN the compiler that built _core?)" >&2; exit 2; }
done
# the installed module really is instrumented (one CPU-dispatch variant only: baseline)
CORE=$("$VENV/bin/python" -c 'import glob, os, importlib.util as u
print(glob.glob(os.path.join(os.path.dirname(u.find_spec("flatext").origin), "_isa", "*", "_core*.so"))[0])')
# (grep reads all of nm's output: with `grep -q` and pipefail, nm's SIGPIPE would fail the check)
nm -D "$CORE" | grep __asan_ > /dev/null || { echo "sanitize.sh: _core is not built with ASan" >&2; exit 2; }

[ $# -gt 0 ] || set -- -q tests
set +e
LD_PRELOAD="$ASAN_LIB $UBSAN_LIB" \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_init_order=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
OMP_WAIT_POLICY=passive \
  "$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
rc=$?
set -e
end=$(date +%s)
echo "sanitize.sh: build+install $((built - start)) s, tests $((end - built)) s, exit code $rc"
exit $rc
