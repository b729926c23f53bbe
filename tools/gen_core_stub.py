"""Writes python/flatext/_core.pyi, the type stub of the compiled module ``flatext._core``.

    PYTHONPATH=$PWD/python python3 tools/gen_core_stub.py     (pip install pybind11-stubgen)

Runs pybind11-stubgen on the module that ``flatext._native`` loads (the variant this
CPU runs; every variant has the same bindings), drops the build-dependent values of
the module's constants (``blas_backend: str = 'openblas'`` becomes ``blas_backend: str``),
adds a header and sorts and formats the file with ruff. tests/test_tooling.py fails when a
function of the compiled module is missing from the stub or its parameters differ.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STUB = ROOT / "python" / "flatext" / "_core.pyi"
HEADER = (
    "# Type stub of the compiled module flatext._core (the pybind11 bindings in cpp/bindings),\n"
    "# written by tools/gen_core_stub.py with pybind11-stubgen; tests/test_tooling.py checks it\n"
    "# against the compiled module. Regenerate it after changing a binding.\n"
)


def main() -> int:
    import flatext  # noqa: F401  (flatext._native puts the chosen variant in sys.modules)

    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "pybind11_stubgen", "flatext._core", "-o", out]
        subprocess.run(cmd, check=True)
        text = (Path(out) / "flatext" / "_core.pyi").read_text()
    # module constants: keep the type, drop the value of this build
    text = re.sub(r"^(\w+): (str|bool|int|float) = .*$", r"\1: \2", text, flags=re.M)
    STUB.write_text(HEADER + text)
    ruff = [sys.executable, "-m", "ruff"]
    subprocess.run([*ruff, "format", "-q", str(STUB)], check=True)
    subprocess.run([*ruff, "check", "-q", "--select", "I", "--fix", str(STUB)], check=True)
    subprocess.run([*ruff, "format", "-q", str(STUB)], check=True)
    print(f"gen_core_stub: wrote {STUB.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
