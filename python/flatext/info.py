"""``flatext info``: what this build of flatext is and how it runs here.

Version, OpenMP, thread count, GEMM backend, the instruction-set variant of
the extension that was loaded (run-time CPU dispatch, ``flatext._native``)
and the thread pools in the process (``flatext.threads.report``).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path


def info():
    """Describe the build and the process.

    Returns
    -------
    dict
        ``version``, ``source`` (:func:`source_digest`), ``openmp`` (bool), ``num_threads``, ``blas_backend``;
        ``dispatch``: the extension variant in use (``baseline``, ``avx2``,
        ``avx512`` or ``native``; ``single`` for a development copy without
        variants); ``dispatch_available``: the variants this build holds;
        ``dispatch_runnable``: those this CPU can run, best first;
        ``dispatch_forced``: the value of ``FLATEXT_DISPATCH`` (None if unset);
        ``cpu_level``: the x86-64 micro-architecture level of this CPU (0: not
        x86-64); ``omp_wait_policy``: how flatext's OpenMP threads wait
        (``flatext.threads``); ``thread_pools``: the pools loaded in the
        process and how their idle threads wait (needs ``threadpoolctl``).
    """
    from . import __version__, _native
    from ._native import _core
    from .threads import report

    w = _native.WAIT_POLICY
    if w["libgomp_loaded_before_flatext"]:
        env = f"OMP_WAIT_POLICY={w['OMP_WAIT_POLICY']}, GOMP_SPINCOUNT={w['GOMP_SPINCOUNT']}"
        spins = str(w["OMP_WAIT_POLICY"]).upper() != "PASSIVE" and w["GOMP_SPINCOUNT"] in (None, "")
        wait = f"libgomp was loaded before flatext ({env} then, if unchanged): " + (
            "its threads spin after each region (see flatext.threads)" if spins else "as set"
        )
    elif w["set_by_flatext"]:
        wait = "PASSIVE (set by flatext)"
    else:
        wait = f"OMP_WAIT_POLICY={w['OMP_WAIT_POLICY']}, GOMP_SPINCOUNT={w['GOMP_SPINCOUNT']} (user)"
    return {
        "version": __version__,
        "source": source_digest(),
        "openmp": bool(_core.openmp_enabled),
        "num_threads": _core.get_num_threads(),
        "blas_backend": _core.blas_backend,
        "dispatch": _native.PATH,
        "dispatch_available": sorted(_native.AVAILABLE),
        "dispatch_runnable": list(_native.RUNNABLE),
        "dispatch_forced": _native.FORCED or None,
        "cpu_level": _native.CPU_LEVEL,
        "omp_wait_policy": wait,
        "thread_pools": report(),
    }


def file_digest(paths):
    """A short SHA-256 over the given files' names (as given) and bytes, in the given order."""
    h = hashlib.sha256()
    for p in paths:
        h.update(str(p).encode() + b"\0")
        h.update(Path(p).read_bytes() if Path(p).is_file() else b"")
    return h.hexdigest()[:12]


@functools.lru_cache(maxsize=1)
def source_digest():
    """What code this process runs: a short digest of the package's Python files and the loaded
    extension (:func:`file_digest`). Two processes with the same digest run the same flatext; the
    version alone does not say so for a source tree being edited (rows of a sweep or study record it,
    ``flatext_source``, so that a run resumed after the code changed can be told apart)."""
    from ._native import _core

    root = Path(__file__).resolve().parent
    files = sorted(p.relative_to(root) for p in root.rglob("*.py"))
    return file_digest([root / f for f in files] + [Path(_core.__file__).resolve()])


def _run(args):
    for k, v in info().items():
        if k == "thread_pools":
            print("thread_pools:")
            for p in v:
                print(f"  {p['api']} {p['library']} ({p['num_threads']} threads): {p['waits']}")
        else:
            print(f"{k}: {v}")


def add_parser(sub):
    p = sub.add_parser("info", help="print the build, the CPU dispatch variant in use and the thread pools")
    p.set_defaults(func=_run)
