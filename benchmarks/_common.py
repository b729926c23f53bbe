"""Shared helpers of the benchmark scripts: environment, machine description, timing.

Import this module and call :func:`prepare_env` before numpy, torch or flatext
are imported: it fixes the environment that the BLAS and OpenMP runtimes read
when they load.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time

OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def prepare_env(argv=None):
    """Set the environment for fair timings; may re-execute the script.

    * ``OMP_WAIT_POLICY=PASSIVE`` unless set: idle OpenMP threads of the kernels
      (or of torch) otherwise spin after a parallel region and slow the numpy
      GEMM that follows (docs/design.md section 9, "Neighbours in one process").
    * ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE``: some machines here set them
      (older OpenBLAS builds misbehave without them); they make a current
      OpenBLAS pick slower kernels. Both OpenBLAS copies in the process (numpy's
      and flatext's scipy-openblas32) read them when they load, so they are
      removed together, for this process only, by re-executing the script
      without them, unless ``--keep-openblas-env`` is given. The kernel that
      OpenBLAS then runs is recorded in the machine description (threadpoolctl).
    """
    argv = sys.argv if argv is None else argv
    changed = False
    env = dict(os.environ)
    if "OMP_WAIT_POLICY" not in env:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # read by libgomp when it loads (not yet loaded)
    if "--keep-openblas-env" not in argv and any(v in env for v in OPENBLAS_VARS):
        for v in OPENBLAS_VARS:
            if v in env:
                env["FLATEXT_BENCH_REMOVED_" + v] = env.pop(v)
                changed = True
    if changed and "numpy" not in sys.modules:
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable] + list(argv), env)


def removed_openblas_env():
    """The OpenBLAS variables that prepare_env removed (name -> old value)."""
    pre = "FLATEXT_BENCH_REMOVED_"
    return {k[len(pre) :]: v for k, v in os.environ.items() if k.startswith(pre)}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    fl = set(line.split(":", 1)[1].split())
                    return [f for f in ("avx", "avx2", "fma", "avx512f") if f in fl]
    except OSError:
        pass
    return []


def loadavg():
    try:
        with open("/proc/loadavg") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:
        return "n/a"


def mem_total_gib():
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def blas_info():
    """The BLAS libraries loaded in this process, as threadpoolctl sees them."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["threadpoolctl not installed: BLAS kernel unknown"]
    out = []
    for lib in threadpool_info():
        if lib.get("user_api") not in ("blas", "openmp"):
            continue
        out.append(
            "{} {} ({}), kernel {}, {} threads: {}".format(
                lib.get("internal_api"),
                lib.get("version") or "",
                lib.get("prefix"),
                lib.get("architecture") or "-",
                lib.get("num_threads"),
                os.path.basename(lib.get("filepath", "")),
            )
        )
    return out


def machine_lines(extra=()):
    """Markdown bullet lines describing the machine and the software."""
    import numpy as np

    lines = [
        f"- CPU: {cpu_model()} ({', '.join(cpu_flags()) or 'no AVX'}); "
        f"{os.cpu_count()} logical CPUs, {len(os.sched_getaffinity(0))} usable; "
        f"{mem_total_gib():.0f} GiB RAM",
        f"- OS: {platform.platform()}; Python {platform.python_version()}; numpy {np.__version__}",
    ]
    try:
        import flatext

        inf = flatext.info()
        lines.append(
            f"- flatext {inf['version']}: OpenMP {inf['openmp']}, GEMM backend {inf['blas_backend']}, "
            f"default threads {inf['num_threads']}"
        )
    except Exception as exc:  # pragma: no cover
        lines.append(f"- flatext: not importable ({exc})")
    lines += list(extra)
    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS")}
    lines.append("- environment: " + ", ".join(f"{k}={v}" for k, v in env.items() if v is not None))
    rem = removed_openblas_env()
    if rem:
        lines.append("- removed for this run (prepare_env): " + ", ".join(f"{k}={v}" for k, v in rem.items()))
    for b in blas_info():
        lines.append(f"- loaded: {b}")
    lines.append(f"- load average at the end of the run: {loadavg()}")
    return lines


def median(xs):
    return statistics.median(xs) if xs else float("nan")


STAT = "median"  # statistic of timeit(): "median" or "min" (steadier on a loaded machine)


def timeit(fn, repeats=5, warmup=1, budget=None):
    """Median (or minimum, see STAT) wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs.

    With ``budget`` (seconds), fewer runs are made when one run is slow (at
    least one timed run, and warm-up is skipped if a single run exceeds the
    budget). Returns (median seconds, number of timed runs, last result).
    """
    res = None
    times = []
    for _ in range(warmup):
        t0 = time.perf_counter()
        res = fn()
        t = time.perf_counter() - t0
        if budget is not None and t > budget:
            return t, 1, res  # too slow to repeat: report the one run
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        res = fn()
        times.append(time.perf_counter() - t0)
        if budget is not None and sum(times) > budget:
            break
    return (min(times) if STAT == "min" else median(times)), len(times), res


def fmt_time(t):
    if t != t:
        return "-"
    if t < 1e-3:
        return f"{t * 1e6:.0f} us"
    if t < 1:
        return f"{t * 1e3:.1f} ms"
    return f"{t:.2f} s"


def fmt_ratio(x):
    if x != x:
        return "-"
    if x >= 100:
        return f"{x:.0f}x"
    if x >= 10:
        return f"{x:.1f}x"
    return f"{x:.2f}x"


def fmt_err(e):
    if e is None or e != e:
        return "-"
    if e == 0:
        return "0"
    return f"{e:.1e}"


def generated_by(script, mode, stat, started):
    """The first sentence of a generated report: the command that made it, and when."""
    flags = {"quick": " --quick", "full": " --full", "default": ""}[mode] + ("" if stat == "median" else " --stat min")
    return f"Generated by `python benchmarks/{script}{flags}` on {started}. "


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


def text_table(header, rows):
    cols = [header] + [[str(c) for c in r] for r in rows]
    w = [max(len(r[k]) for r in cols) for k in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w[k]) for k, c in enumerate(r))  # noqa: E731
    return "\n".join([line(header), "  ".join("-" * x for x in w)] + [line(r) for r in cols[1:]])
