"""Thread pools in one process: what flatext sets, what it reports, what users can do.

A Python process that uses flatext usually holds several thread pools: flatext's
OpenMP team (libgomp), numpy's OpenBLAS workers, and PyTorch's OpenMP team
(the same libgomp: PyTorch ships a ``libgomp.so.1`` and only one copy loads).
Their idle threads do not sleep at once:

* libgomp threads spin after a parallel region (about 300,000 iterations by
  default) unless ``OMP_WAIT_POLICY=PASSIVE`` (or a small ``GOMP_SPINCOUNT``);
* numpy's OpenBLAS workers spin for up to ~0.1 s after each BLAS call unless
  ``OPENBLAS_THREAD_TIMEOUT`` is small (4 is the minimum: 2^4 cycles).

Both are read once, when the library loads. A spinning pool takes the cores
that the next call of another pool needs: on 2 cores a flatext kernel right
after a numpy GEMM ran 1.4-1.6x slower, and up to 3.6x in a PyTorch process
(docs/performance.md, "Good neighbours").

What flatext does by itself: when its extension loads before any libgomp,
``flatext._native`` sets ``OMP_WAIT_POLICY=PASSIVE`` (unless you set
``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``), so its own threads never spin after
a call. It cannot change numpy's OpenBLAS after numpy has loaded, nor libgomp
after PyTorch loaded it: for those, set the environment before the process
starts, or at the very top of the script, before numpy, PyTorch or flatext
is imported (``import flatext.threads`` would already load them)::

    import os
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    import numpy, torch, flatext

(:data:`PROCESS_ENV` holds these two; :func:`set_process_env` applies them,
e.g. to the environment of child processes.) A neighbourly context manager
cannot do this part: the spinning is decided when the libraries load.
:func:`thread_limits` limits all pools for a block of code.

``flatext``'s own command line, sweeps and reproduction do this for their
processes. :func:`report` (part of :func:`flatext.info`) says which pools are
loaded and how they wait.
"""

from __future__ import annotations

import contextlib
import os

#: The environment that keeps the pools from spinning after a call (setdefault).
PROCESS_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}


def set_process_env(environ=None):
    """Put :data:`PROCESS_ENV` into the environment where not already set.

    Call it before numpy, PyTorch and flatext are imported (the runtimes read
    these variables once, when they load); later it only affects child
    processes.

    Parameters
    ----------
    environ : mutable mapping, optional
        Defaults to ``os.environ``.

    Returns
    -------
    dict
        The variables this call set (name -> value).
    """
    env = os.environ if environ is None else environ
    done = {}
    for k, v in PROCESS_ENV.items():
        if k == "OMP_WAIT_POLICY" and "GOMP_SPINCOUNT" in env:
            continue  # the user chose a spin count: respect it
        if k not in env:
            env[k] = v
            done[k] = v
    return done


_REEXEC_MARK = "FLATEXT_PROCESS_ENV_SET"


def reexec_with_process_env():
    """Restart this command with :data:`PROCESS_ENV` in its environment, if missing.

    For flatext's own command line (``flatext ...``, ``python -m flatext ...``),
    whose process has loaded numpy (and its OpenBLAS) before ``main`` runs: the
    variables only take effect in a fresh process, so the command re-executes
    itself once (``os.execv``; POSIX, Python >= 3.10 for ``sys.orig_argv``).
    Does nothing when everything is set already, after one re-execution, or
    where it cannot re-execute. Never returns when it re-executes.
    """
    import sys

    env = dict(os.environ)
    if not set_process_env(env) or os.environ.get(_REEXEC_MARK) or os.name != "posix":
        return
    argv = getattr(sys, "orig_argv", None)
    if not argv:
        return
    env[_REEXEC_MARK] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable] + list(argv[1:]), env)


def _wait_note(lib, native_state):
    api = lib.get("internal_api")
    if api == "openmp" and "gomp" in (lib.get("prefix") or ""):
        pol = native_state.get("OMP_WAIT_POLICY")
        spin = native_state.get("GOMP_SPINCOUNT")
        if native_state.get("libgomp_loaded_before_flatext"):
            return (
                "loaded before flatext: waits as the environment said then "
                f"(OMP_WAIT_POLICY={pol}, GOMP_SPINCOUNT={spin} when flatext loaded); "
                "spins after each region unless PASSIVE"
            )
        if native_state.get("set_by_flatext"):
            return "passive (OMP_WAIT_POLICY=PASSIVE set by flatext before libgomp loaded)"
        if spin is not None:
            return f"spins GOMP_SPINCOUNT={spin} iterations, then sleeps (user setting)"
        return f"OMP_WAIT_POLICY={pol} (user setting)"
    if api == "openblas":
        if "scipy_openblas32" in (lib.get("filepath") or "") or "libscipy_openblas." in (lib.get("filepath") or ""):
            return "flatext's GEMMs: single-threaded inside the kernels' tiles (no workers)"
        t = os.environ.get("OPENBLAS_THREAD_TIMEOUT")
        if t is None:
            return "workers spin up to ~0.1 s after each BLAS call (OPENBLAS_THREAD_TIMEOUT unset)"
        return f"workers spin 2^{t} cycles after each call if OPENBLAS_THREAD_TIMEOUT={t} was set before it loaded"
    return "-"


def report():
    """The thread pools loaded in this process and how their idle threads wait.

    Returns
    -------
    list of dict
        One dict per pool (from ``threadpoolctl``; empty if it is not
        installed): ``api`` (openmp, openblas, mkl, ...), ``library`` (file
        name), ``num_threads`` and ``waits`` (a sentence).
    """
    from . import _native

    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - optional
        return []
    out = []
    for lib in threadpool_info():
        out.append(
            {
                "api": lib.get("internal_api"),
                "library": os.path.basename(lib.get("filepath") or ""),
                "num_threads": lib.get("num_threads"),
                "waits": _wait_note(lib, _native.WAIT_POLICY),
            }
        )
    return out


@contextlib.contextmanager
def thread_limits(n):
    """Limit every pool in the process (numpy's BLAS, OpenMP, flatext) to ``n`` threads.

    A thin wrapper of ``threadpoolctl.threadpool_limits`` that also sets
    :func:`flatext.set_num_threads`; both are restored on exit. flatext's own
    OpenBLAS stays single-threaded (the kernels run it inside their tiles).

    Parameters
    ----------
    n : int
        Threads per pool, >= 1.

    Yields
    ------
    None
    """
    import flatext

    from .curvature import _int_arg

    n = _int_arg(n, "n")
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    from threadpoolctl import ThreadpoolController

    ctl = ThreadpoolController()
    # never let threadpoolctl start flatext's own OpenBLAS (it must stay at 1 thread)
    ctl = ctl.select(user_api=["blas", "openmp"])
    libs = [
        c
        for c in ctl.lib_controllers
        if "scipy_openblas32" not in c.filepath and not os.path.basename(c.filepath).startswith("libscipy_openblas.")
    ]
    old = [c.num_threads for c in libs]
    old_fx = flatext.get_num_threads()
    try:
        for c in libs:
            c.set_num_threads(n)
        flatext.set_num_threads(n)
        yield
    finally:
        for c, k in zip(libs, old):
            c.set_num_threads(k)
        flatext.set_num_threads(old_fx)
