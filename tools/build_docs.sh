#!/usr/bin/env bash
# Builds the HTML documentation (API reference from the docstrings + the guides in docs/)
# with warnings as errors:
#
#   bash tools/build_docs.sh [OUTDIR]        (default build/docs/html)
#
# autodoc imports flatext, so the compiled extension must be importable: install the
# package first (pip install ".[docs]"), or point PYTHONPATH at a source tree whose
# extension is built. The `docs` extra's requirements (pyproject.toml) are installed
# here if Sphinx or MyST is missing, without reinstalling flatext.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${1:-build/docs/html}
if ! "$PY" -c "import sphinx, myst_parser" 2>/dev/null; then
  "$PY" - <<'PYEOF' | xargs "$PY" -m pip install -q
try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["docs"]))
PYEOF
fi
"$PY" -c "import flatext" || { echo "build_docs.sh: flatext does not import (install it, or build the extension)" >&2; exit 2; }
rm -rf "$OUT"
"$PY" -m sphinx -W --keep-going -q -b html docs "$OUT"
echo "build_docs.sh: $OUT/index.html"
