"""The house checks (CONTRIBUTING.md): lint, format and type checks of the source tree.

They run only from a source checkout (they read the repository's files) and need the
tools of the `test` extra: ruff, mypy, clang-format.
"""

import ast
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


STUB = ROOT / "python" / "flatext" / "_core.pyi"


def _stub_members():
    """Top-level names of the stub: function -> parameter names, class/attribute -> None."""
    out = {}
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            out[node.name] = [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs]
        elif isinstance(node, ast.ClassDef):
            out[node.name] = None
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id != "__all__":
            out[node.target.id] = None
    return out


def _split_top_level(text):
    """Split at the commas outside brackets and quotes."""
    parts, depth, quote, cur = [], 0, None, ""
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    return [p for p in parts + [cur] if p.strip()]


def _compiled_params(fn):
    """Parameter names from pybind11's signature line ``name(p: T, q: T = v) -> R``; None if overloaded."""
    first = (fn.__doc__ or "").splitlines()[0] if fn.__doc__ else ""
    if "Overloaded function" in (fn.__doc__ or "") or "(" not in first:
        return None
    inner = first[first.index("(") + 1 : first.rindex(") ->")]
    return [p.split(":")[0].split("=")[0].strip() for p in _split_top_level(inner)]


def test_core_stub_matches_the_compiled_module():
    """python/flatext/_core.pyi (what mypy checks the Python layer against) names every public
    function, class and constant of the compiled module, with the same parameters, and nothing
    else; regenerate it with tools/gen_core_stub.py after changing a binding."""
    try:
        from flatext._native import _core
    except ImportError as e:  # pragma: no cover - no built extension in this tree
        pytest.skip(f"the compiled module does not import: {e}")
    stub = _stub_members()
    compiled = {n: getattr(_core, n) for n in dir(_core) if not n.startswith("_")}
    missing = sorted(set(compiled) - set(stub))
    stale = sorted(n for n in set(stub) - set(compiled) if not n.startswith("_"))
    assert not missing, f"in flatext._core but not in {STUB.name}: {missing}; run tools/gen_core_stub.py"
    assert not stale, f"in {STUB.name} but not in flatext._core: {stale}; run tools/gen_core_stub.py"
    functions = [n for n, v in compiled.items() if callable(v) and not isinstance(v, type)]
    assert len(functions) >= 25  # the bindings: curvature, interpolators, training, population, threads
    for name in functions:
        params = _compiled_params(compiled[name])
        if params is not None:
            assert stub[name] == params, f"{name}: compiled parameters {params}, stub {stub[name]}"
