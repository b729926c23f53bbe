#!/usr/bin/env bash
# Tests an installed wheel, not the checkout, in a fresh venv where no compiler is found:
#
#   bash tools/test_wheel.sh [dist/flatext-*.whl] [pytest args...]
#
# 1. a new venv (WHEEL_VENV, default .venv-wheel; --system-site-packages, so that the test
#    dependencies of the checkout's Python, e.g. PyTorch, are reused: the wheel's own
#    flatext shadows any other) installs the wheel with pip, binary only;
# 2. PATH becomes the venv's bin/ plus a folder of symlinks to a few shell tools: gcc, g++,
#    cc, c++ and cmake are not found (checked), nor are CC and CXX set;
# 3. from an empty temporary folder (the checkout's python/ is not importable) it checks
#    that flatext comes from the venv, prints `flatext info` (the dispatch variants), checks
#    that PyTorch and flatext share one OpenMP runtime in either import order, and runs
#    `python -m pytest -q` on the checkout's tests/ with the project's default options
#    (the quick tier). tests/test_tooling.py (ruff, mypy, clang-format on the source tree)
#    is left out; tests/test_cpp.py skips itself, with its reason in the summary, because
#    no compiler is found.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
VENV=${WHEEL_VENV:-.venv-wheel}
wheel=${1:-$(ls dist/flatext-*manylinux*.whl 2> /dev/null | head -n 1)}
[ $# -eq 0 ] || shift
[ -f "$wheel" ] || { echo "test_wheel.sh: no wheel (run tools/build_dist.sh first)" >&2; exit 2; }
start=$(date +%s)

rm -rf "$VENV"
"$PY" -m venv --system-site-packages "$VENV"
VENV=$(cd "$VENV" && pwd)
# first the wheel into the venv even if the outer Python has the same flatext version
# installed, then whatever of its dependencies the outer Python lacks (wheels only)
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --ignore-installed --no-deps "$wheel"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --only-binary :all: "$wheel"

tools=$(mktemp -d)
work=$(mktemp -d)
trap 'rm -rf "$tools" "$work"' EXIT
for t in bash sh env cat ls rm mkdir cp mv uname nproc grep sed date sleep kill ps true false; do
  p=$(command -v "$t" || true)
  [ -z "$p" ] || ln -s "$p" "$tools/$t"
done
export PATH="$VENV/bin:$tools"
unset CC CXX CPP CMAKE_ARGS
for c in gcc g++ cc c++ cmake; do
  if command -v "$c" > /dev/null; then echo "test_wheel.sh: $c found on PATH" >&2; exit 2; fi
done
cd "$work"
python - "$VENV" << 'EOF'
import os, subprocess, sys

import flatext

venv = sys.argv[1]
assert flatext.__file__.startswith(venv + os.sep), f"flatext imported from {flatext.__file__}, not from {venv}"
print("flatext", flatext.__version__, "from", os.path.dirname(flatext.__file__))

# one OpenMP runtime beside PyTorch, whichever loads first
probe = (
    "import {0}, {1}; print(sorted({{l.split()[-1] for l in open('/proc/self/maps') if 'libgomp' in l}}))"
)
try:
    import torch  # noqa: F401
except ImportError:
    print("PyTorch not installed: OpenMP runtime check skipped")
else:
    for order in (("torch", "flatext"), ("flatext", "torch")):
        out = subprocess.run([sys.executable, "-c", probe.format(*order)], check=True, capture_output=True, text=True)
        libs = eval(out.stdout)
        print(f"import {order[0]}, then {order[1]}: libgomp mapped from {libs}")
        assert len(libs) == 1, f"{len(libs)} OpenMP runtimes loaded: {libs}"
EOF
flatext info
python -m pytest -q -p no:cacheprovider "$ROOT/tests" --ignore="$ROOT/tests/test_tooling.py" "$@"
echo "test_wheel.sh: $(($(date +%s) - start)) s"
