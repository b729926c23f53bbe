"""The installed C++ core, consumed through its CMake package config.

Builds tests/cpp (the C++ tests of the core, no Python) and examples/cpp (a
flatness-descent program) with CMake against ``flatext.get_cmake_dir()`` into
a temporary directory, runs them, and checks their output against independent
numpy computations. Skipped only when cmake or a C++ compiler is missing.

The two projects are compiled at -O1 and in parallel to keep this file fast
(the core's templates dominate the build time; -O1 runs them fast enough).
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import flatext as fx
import reference as ref

ROOT = Path(__file__).resolve().parents[1]


def _cmake():
    exe = shutil.which("cmake")
    if exe is None:
        try:
            import cmake  # the PyPI cmake package

            exe = os.path.join(cmake.CMAKE_BIN_DIR, "cmake")
        except ImportError:
            return None
    return exe


def _cxx():
    cxx = os.environ.get("CXX")
    if cxx and shutil.which(cxx):
        return cxx
    for name in ("c++", "g++", "clang++"):
        if shutil.which(name):
            return shutil.which(name)
    return None


CMAKE, CXX = _cmake(), _cxx()
needs_toolchain = pytest.mark.skipif(
    CMAKE is None or CXX is None,
    reason=f"needs cmake and a C++ compiler to build against the installed package (cmake: {CMAKE}, c++: {CXX})",
)


def _configure(src, build, *extra):
    cmd = [CMAKE, "-S", str(src), "-B", str(build), f"-Dflatext_DIR={fx.get_cmake_dir()}",
           f"-DCMAKE_CXX_COMPILER={CXX}", "-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -DNDEBUG",
           *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"cmake configure of {src} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout + r.stderr


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """Configures and builds both projects (concurrently); returns their build dirs and configure logs."""
    base = tmp_path_factory.mktemp("cpp")
    projects = {"tests": ROOT / "tests" / "cpp", "example": ROOT / "examples" / "cpp"}
    out = {}
    for name, src in projects.items():
        out[name] = (base / name, _configure(src, base / name))
    procs = {name: subprocess.Popen([CMAKE, "--build", str(b)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True) for name, (b, _) in out.items()}
    for name, p in procs.items():
        log, _ = p.communicate(timeout=600)
        assert p.returncode == 0, f"building {name} failed:\n{log}"
    return out


def test_installed_layout_matches_sources():
    inc = Path(fx.get_include())
    assert (inc / "flatext" / "flatext.hpp").is_file()
    src = sorted(p.name for p in (ROOT / "cpp" / "include" / "flatext").glob("*.hpp"))
    assert sorted(p.name for p in (inc / "flatext").glob("*.hpp")) == src
    for name in src:  # the installed headers are those of this checkout
        assert (inc / "flatext" / name).read_bytes() == (ROOT / "cpp" / "include" / "flatext" / name).read_bytes()
    cm = Path(fx.get_cmake_dir())
    assert (cm / "flatextConfig.cmake").is_file() and (cm / "flatextConfigVersion.cmake").is_file()
    # both live inside the installed package, next to the extension module
    pkg = Path(fx.__file__).resolve().parent
    assert inc.resolve() == pkg / "include" and cm.resolve() == pkg / "share" / "cmake" / "flatext"


@needs_toolchain
def test_find_package_config_backends(tmp_path):
    # configure-only probe: what flatext::flatext brings along, and the Eigen fallback
    src = tmp_path / "probe"
    src.mkdir()
    (src / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.18)\nproject(probe LANGUAGES CXX)\n"
        "find_package(flatext 0.1 CONFIG REQUIRED)\n"
        "get_target_property(libs flatext::flatext INTERFACE_LINK_LIBRARIES)\n"
        "get_target_property(defs flatext::flatext INTERFACE_COMPILE_DEFINITIONS)\n"
        'message(STATUS "PROBE backend=${flatext_BLAS_BACKEND} libs=${libs} defs=${defs}")\n'
    )
    log = _configure(src, tmp_path / "b1", f"-DFLATEXT_PYTHON_EXECUTABLE={sys.executable}")
    assert "Eigen3::Eigen" in log and "OpenMP::OpenMP_CXX" in log
    if fx.info()["blas_backend"] == "openblas":  # the wheel's own backend is available to consumers too
        assert "PROBE backend=openblas" in log
        assert "OpenBLAS::OpenBLAS" in log and "FLATEXT_USE_OPENBLAS" in log
    log = _configure(src, tmp_path / "b2", "-DFLATEXT_USE_OPENBLAS=OFF")
    assert "PROBE backend=eigen" in log
    assert "OpenBLAS::OpenBLAS" not in log and "FLATEXT_USE_OPENBLAS" not in log.split("PROBE")[1]
    # a version the package cannot satisfy is refused
    (src / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.18)\nproject(probe LANGUAGES CXX)\nfind_package(flatext 7.0 CONFIG REQUIRED)\n"
    )
    r = subprocess.run([CMAKE, "-S", str(src), "-B", str(tmp_path / "b3"), f"-Dflatext_DIR={fx.get_cmake_dir()}"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "flatext" in r.stderr


@needs_toolchain
def test_cpp_core_tests_pass(builds):
    build, log = builds["tests"]
    assert "Found flatext" in log
    r = subprocess.run([str(build / "flatext_test_core")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    ran = re.search(r"^(\d+) tests, \d+ checks, 0 failures$", r.stdout, re.M)
    assert ran and int(ran.group(1)) >= 15, r.stdout
    assert r.stdout.count("\nok   ") == int(ran.group(1))
    backend = re.search(r"GEMM backend: (\w+)", r.stdout).group(1)
    assert backend in ("openblas", "eigen")
    # the same through ctest
    ctest = os.path.join(os.path.dirname(CMAKE), "ctest")
    ctest = ctest if os.path.exists(ctest) else (shutil.which("ctest") or "ctest")
    r = subprocess.run([ctest, "--test-dir", str(build), "--output-on-failure"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "100% tests passed" in r.stdout, r.stdout + r.stderr
    # the runner reports an unknown filter instead of passing vacuously
    r = subprocess.run([str(build / "flatext_test_core"), "no_such_test"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2


def _splitmix_uniform(state, k):
    """k numbers of splitmix64 in [-1, 1), as in examples/cpp/flatness_descent.cpp."""
    M = (1 << 64) - 1
    out = np.empty(k)
    for i in range(k):
        state = (state + 0x9E3779B97F4A7C15) & M
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
        z ^= z >> 31
        out[i] = (z >> 11) * 2.0 ** -53 * 2.0 - 1.0
    return state, out


@needs_toolchain
def test_example_program_lowers_the_trace(builds):
    build, log = builds["example"]
    n, d, m, steps = 60, 5, 16, 6
    r = subprocess.run([str(build / "flatness_descent"), str(n), str(d), str(m), str(steps)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = re.findall(r"^(\S+)\s+loss (\S+) trace (\S+)$", r.stdout, re.M)
    labels = [lab for lab, _, _ in rows]
    assert labels == ["start", "balance"] + [f"step{k}" for k in range(1, steps + 1)], r.stdout
    L = np.array([float(x) for _, x, _ in rows])
    T = np.array([float(x) for _, _, x in rows])
    assert np.all(np.diff(T) < 0), r.stdout  # the trace goes down at every stage
    assert L[1] == pytest.approx(L[0], rel=1e-12)  # balance keeps the function, hence the loss

    # the same data in numpy, and the start/balance values by independent formulas (ReLU, p = 1)
    s = 20260101
    s, X = _splitmix_uniform(s, n * d)
    s, Wt = _splitmix_uniform(s, 3 * d)
    s, at = _splitmix_uniform(s, 3)
    s, W = _splitmix_uniform(s, m * d)
    s, a = _splitmix_uniform(s, m)
    X, Wt, W, a = X.reshape(n, d), Wt.reshape(3, d), W.reshape(m, d), a * (1.0 / m)
    y = ref.forward(Wt, at, X, 1.0, 0.0)
    Z = X @ W.T
    sq = np.sum(X ** 2, axis=1)
    A = np.mean(np.maximum(Z, 0) ** 2, axis=0)  # Hessian diagonal entries of a_i
    B = a ** 2 * np.mean((Z > 0) * sq[:, None], axis=0)  # traces of the w_i blocks (r sigma'' = 0 for ReLU)
    assert L[0] == pytest.approx(ref.loss(W, a, X, y, 1.0, 0.0), rel=1e-12)
    assert T[0] == pytest.approx(np.sum(A + B), rel=1e-12)
    # balanced: each neuron at the minimum of t^2 A_i + t^-2 B_i, i.e. 2 sqrt(A_i B_i)
    assert T[1] == pytest.approx(np.sum(2 * np.sqrt(A * B)), rel=1e-10)


def test_cli_paths(capsys):
    from flatext.cli import main

    assert main(["paths", "--cmakedir"]) == 0
    assert capsys.readouterr().out.strip() == fx.get_cmake_dir()
    assert main(["paths", "--includedir"]) == 0
    assert capsys.readouterr().out.strip() == fx.get_include()
    main(["paths"])
    out = capsys.readouterr().out
    assert fx.get_include() in out and fx.get_cmake_dir() in out


@needs_toolchain
def test_relocated_config_without_python_falls_back_to_eigen(tmp_path):
    # A copy of the installed tree in a prefix no interpreter knows, asked through an
    # interpreter without site-packages: OpenBLAS cannot be found, so the config must
    # fall back to Eigen's GEMM with a warning; Eigen itself only through Eigen3_DIR.
    site = tmp_path / "site-packages"
    shutil.copytree(Path(fx.get_include()), site / "flatext" / "include")
    shutil.copytree(Path(fx.get_cmake_dir()), site / "flatext" / "share" / "cmake" / "flatext")
    nosite = tmp_path / "python-nosite"
    nosite.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    nosite.chmod(0o755)
    src = tmp_path / "probe"
    src.mkdir()
    (src / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.18)\nproject(probe LANGUAGES CXX)\n"
        "find_package(flatext CONFIG REQUIRED)\n"
        'message(STATUS "PROBE backend=${flatext_BLAS_BACKEND} include=${flatext_INCLUDE_DIR}")\n'
    )
    cmd = [CMAKE, "-S", str(src), f"-Dflatext_DIR={site / 'flatext' / 'share' / 'cmake' / 'flatext'}",
           f"-DFLATEXT_PYTHON_EXECUTABLE={nosite}"]
    eigen_dir = subprocess.run(
        [sys.executable, "-c", "import sys, os, glob; print(next(iter(glob.glob(os.path.join(p, 'cmeel.prefix', "
         "'share', 'eigen3', 'cmake')) for p in sys.path if glob.glob(os.path.join(p, 'cmeel.prefix', 'share', "
         "'eigen3', 'cmake'))), [''])[0])"], capture_output=True, text=True).stdout.strip()
    r = subprocess.run(cmd + ["-B", str(tmp_path / "b0")], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:  # no system Eigen either: the message must say what to do
        assert "flatext needs Eigen" in r.stderr and "cmeel-eigen" in r.stderr, r.stderr
    if not eigen_dir:
        pytest.skip("cmeel-eigen not installed: cannot point Eigen3_DIR at it")
    r = subprocess.run(cmd + ["-B", str(tmp_path / "b1"), f"-DEigen3_DIR={eigen_dir}"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"PROBE backend=eigen include={site / 'flatext' / 'include'}" in r.stdout
    assert "OpenBLAS from the scipy-openblas32 wheel not found" in r.stderr
    assert "falling back to Eigen's GEMM" in r.stderr


def test_paths_fall_back_to_sys_path_and_name_what_is_missing(tmp_path, monkeypatch):
    from flatext import paths

    real_inc, real_cm = fx.get_include(), fx.get_cmake_dir()
    # the Python files elsewhere (an editable install): the installed files are found on sys.path
    monkeypatch.setattr(paths, "_HERE", str(tmp_path / "src" / "flatext"))
    monkeypatch.setattr(sys, "path", [str(Path(real_inc).parents[1])])
    assert Path(paths.get_include()) == Path(real_inc)
    assert Path(paths.get_cmake_dir()) == Path(real_cm)
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="flatextConfig.cmake"):
        paths.get_cmake_dir()
    with pytest.raises(FileNotFoundError, match="headers"):
        paths.get_include()
