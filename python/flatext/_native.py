"""Loads the compiled core: the variant of the extension module that fits this CPU.

The build compiles the whole extension once per instruction-set level and
installs each copy as ``flatext/_isa/<variant>/_core*.so`` (CMakeLists.txt):

========== ======================================================== =============
variant    compiled with                                            CPU needs
========== ======================================================== =============
baseline   no flags (x86-64: SSE2)                                  anything
avx2       ``-march=x86-64-v3`` (AVX2, FMA, BMI2, ...)              x86-64-v3
avx512     ``-march=x86-64-v4`` (v3 + AVX-512 F/BW/CD/DQ/VL)        x86-64-v4
native     ``-march=native`` (``FLATEXT_NATIVE=ON``)                the build host
========== ======================================================== =============

At import the best variant that the CPU (and the operating system: AVX state
saving) supports is loaded as ``flatext._core``; a tiny library
(``_isa/lib_flatext_cpu.so``, libgcc's ``__builtin_cpu_supports``) answers the
question before any variant is touched, since running a variant the CPU cannot
run dies with SIGILL. ``FLATEXT_DISPATCH=baseline|avx2|avx512|native`` forces
a variant (``auto`` or unset: the best); forcing one that is not built or that
the CPU cannot run raises ImportError. ``flatext.info()`` reports the choice.

Before the first variant (and so, usually, the OpenMP runtime libgomp) loads,
``OMP_WAIT_POLICY=PASSIVE`` is set unless the environment already says
``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``: libgomp reads it once, when it
loads, and its threads then sleep after each parallel region instead of
spinning on the cores that numpy's or PyTorch's next call needs
(docs/performance.md, "Good neighbours"). If libgomp is already loaded (e.g.
PyTorch was imported first) the setting comes too late; ``flatext.info()``
says so, and ``flatext.threads`` documents what to do.

OpenBLAS from the ``scipy-openblas32`` wheel does the GEMMs under the kernels'
tiles. The extension finds it through an ``$ORIGIN``-relative rpath; loading
it here first as well keeps editable and unusual installs working.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.machinery
import importlib.util
import os
import sys

#: Variants from best to worst, with the x86-64 level each needs (None: the build host).
VARIANTS = (("native", None), ("avx512", 4), ("avx2", 3), ("baseline", 0))
_HERE = os.path.dirname(os.path.abspath(__file__))
_ISA_DIR = os.path.join(_HERE, "_isa")


def _libgomp_loaded():
    """True if an OpenMP runtime (libgomp) is mapped into this process; None if unknown."""
    try:
        with open("/proc/self/maps") as fh:
            return any("libgomp" in line for line in fh)
    except OSError:  # pragma: no cover - not Linux
        return None


def _set_wait_policy():
    """OMP_WAIT_POLICY=PASSIVE unless the user chose a policy; returns what happened."""
    state = {
        "libgomp_loaded_before_flatext": _libgomp_loaded(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT"),
        "set_by_flatext": False,
    }
    if state["OMP_WAIT_POLICY"] is None and state["GOMP_SPINCOUNT"] is None:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        state["set_by_flatext"] = True
    return state


def _cpu_level():
    """x86-64 micro-architecture level of this CPU + OS (0: not x86-64 or unknown)."""
    for path in glob.glob(os.path.join(_ISA_DIR, "lib_flatext_cpu*.so")):
        try:
            return int(ctypes.CDLL(path).flatext_x86_level())
        except (OSError, AttributeError):  # pragma: no cover - broken install
            pass
    return 0


def _variant_files():
    """Built variants: name -> path of its extension module."""
    out = {}
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    for name, _ in VARIANTS:
        folder = os.path.join(_ISA_DIR, name)
        for suf in suffixes:
            path = os.path.join(folder, "_core" + suf)
            if os.path.isfile(path):
                out[name] = path
                break
    return out


def _runnable(name, level):
    need = dict(VARIANTS)[name]
    return True if need is None else level >= need


def _choose(files, level, forced):
    if forced in ("", "auto"):
        for name, _ in VARIANTS:
            if name in files and _runnable(name, level):
                return name
        raise ImportError(
            f"flatext: no extension variant this CPU can run in {_ISA_DIR} (built: {sorted(files) or 'none'}); "
            "reinstall flatext"
        )
    if forced not in dict(VARIANTS):
        raise ImportError(f"FLATEXT_DISPATCH must be one of auto, {', '.join(n for n, _ in VARIANTS)}; got {forced!r}")
    if forced not in files:
        raise ImportError(f"FLATEXT_DISPATCH={forced}: this build has no such variant (built: {sorted(files)})")
    if not _runnable(forced, level):
        raise ImportError(
            f"FLATEXT_DISPATCH={forced}: this CPU (x86-64 level {level}) cannot run it (needs level "
            f"{dict(VARIANTS)[forced]}); it would die with an illegal instruction"
        )
    return forced


def _load(path):
    """Import the extension at ``path`` as the module ``flatext._core``."""
    name = __package__ + "._core"
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    sys.modules[__package__]._core = mod  # as an ordinary submodule import would
    return mod


def load_variant(name):
    """Import another built variant as ``flatext._isa.<name>._core`` (benchmarks, tests).

    The extension's one Python class (``Activation``) is module-local, so
    several variants can live in one process; each has its own thread setting
    (``set_num_threads``).
    Refuses (ImportError) a variant that is not built or that the CPU cannot run.
    """
    if name not in AVAILABLE:
        raise ImportError(f"variant {name!r} is not built (built: {sorted(AVAILABLE)})")
    if not _runnable(name, CPU_LEVEL):
        raise ImportError(f"variant {name!r} needs x86-64 level {dict(VARIANTS)[name]}; this CPU has {CPU_LEVEL}")
    if name == PATH:
        return _core
    key = f"{__package__}._isa.{name}._core"
    if key in sys.modules:
        return sys.modules[key]
    loader = importlib.machinery.ExtensionFileLoader(key, AVAILABLE[name])
    spec = importlib.util.spec_from_file_location(key, AVAILABLE[name], loader=loader)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[key] = mod
    spec.loader.exec_module(mod)
    return mod


try:  # pragma: no cover - depends on the install layout
    import scipy_openblas32 as _sob

    ctypes.CDLL(os.path.join(_sob.get_lib_dir(), _sob.get_library(True)), mode=ctypes.RTLD_GLOBAL)
except (ImportError, OSError, IndexError):
    pass

WAIT_POLICY = _set_wait_policy()
CPU_LEVEL = _cpu_level()
AVAILABLE = _variant_files()
FORCED = os.environ.get("FLATEXT_DISPATCH", "").strip().lower()
if AVAILABLE:
    PATH = _choose(AVAILABLE, CPU_LEVEL, FORCED)
    _load(AVAILABLE[PATH])
else:  # a single module next to this file (a development copy of an older build layout)
    if FORCED not in ("", "auto"):
        raise ImportError(f"FLATEXT_DISPATCH={FORCED}: this build has no instruction-set variants")
    PATH = "single"
# The chosen variant, already in sys.modules as flatext._core (or the single module, found
# on the path). Type checkers read flatext/_core.pyi, the stub of the bindings, for it.
from . import _core  # noqa: E402

#: Variants this CPU can run, best first.
RUNNABLE = [n for n, _ in VARIANTS if n in AVAILABLE and _runnable(n, CPU_LEVEL)]

__all__ = ["_core"]
