"""Loads the compiled core.

OpenBLAS from the ``scipy-openblas32`` wheel does the GEMMs under the kernels'
tiles. The extension finds it through an ``$ORIGIN``-relative rpath; loading
it here first as well keeps editable and unusual installs working.
"""
import ctypes
import os

try:  # pragma: no cover - depends on the install layout
    import scipy_openblas32 as _sob

    ctypes.CDLL(os.path.join(_sob.get_lib_dir(), _sob.get_library(True)), mode=ctypes.RTLD_GLOBAL)
except (ImportError, OSError, IndexError):
    pass

from . import _core  # noqa: E402

__all__ = ["_core"]
