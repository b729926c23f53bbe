"""``flatext info``: what this build of flatext is (version, threads, GEMM backend)."""
from __future__ import annotations


def info():
    """A dict describing the build: version, OpenMP, thread count, GEMM backend."""
    from . import __version__
    from ._native import _core

    return {
        "version": __version__,
        "openmp": bool(_core.openmp_enabled),
        "num_threads": _core.get_num_threads(),
        "blas_backend": _core.blas_backend,
    }


def _run(args):
    for k, v in info().items():
        print(f"{k}: {v}")


def add_parser(sub):
    p = sub.add_parser("info", help="print the build's version, threads and GEMM backend")
    p.set_defaults(func=_run)
