"""The house checks (CONTRIBUTING.md): lint, format and type checks of the source tree.

They run only from a source checkout (they read the repository's files) and need the
tools of the `test` extra: ruff, mypy, clang-format.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.tooling,
    pytest.mark.skipif(not (ROOT / "pyproject.toml").exists(), reason="needs the source tree"),
]

PY_PATHS = ["python", "tests", "benchmarks", "examples"]


def _tool(name):
    exe = shutil.which(name) or str(Path(sys.executable).with_name(name))
    if not Path(exe).exists():
        pytest.fail(f"{name} is not installed: pip install '.[test]' installs it")
    return exe


def _run(args):
    p = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"{' '.join(args)} failed:\n{p.stdout[-4000:]}\n{p.stderr[-2000:]}"


def test_ruff_lint():
    _run([_tool("ruff"), "check", *PY_PATHS])


def test_ruff_format():
    _run([_tool("ruff"), "format", "--check", *PY_PATHS])


def test_clang_format():
    files = [
        str(p.relative_to(ROOT))
        for base in ("cpp", "tests/cpp", "examples/cpp")
        for p in sorted((ROOT / base).rglob("*"))
        if p.suffix in (".hpp", ".cpp", ".h") and "third_party" not in p.parts
    ]
    assert files
    _run([_tool("clang-format"), "--dry-run", "-Werror", *files])


@pytest.mark.slow  # the type checker over the whole package
def test_mypy():
    _run([sys.executable, "-m", "mypy", "python/flatext"])
