"""Executors: run cells on this machine (default) or on a Dask cluster, streaming rows back.

Local (default)
    Cells are split by size. Small cells (``n * m * d < LARGE_CELL``) run side
    by side in ``P`` worker processes (``concurrent.futures.ProcessPoolExecutor``,
    ``spawn`` start method), each with ``max(1, cores // P)`` kernel threads, so
    ``P * threads <= cores``: nothing is oversubscribed. Large cells then run
    one at a time in one worker process with all cores as kernel threads.
    Cells go to workers in chunks (tasks) of a few cells, so per-task overhead
    stays small for thousands of tiny cells; each finished chunk comes back and
    is written at once. If a worker process dies (killed, out of memory), the
    chunks not yet finished run again in a fresh pool (``LOCAL_RESTARTS``
    times at most).

Dask
    ``scheduler="tcp://host:port"`` connects a :class:`distributed.Client` to a
    running cluster; ``local_cluster=N`` starts a :class:`distributed.LocalCluster`
    of N single-threaded worker processes. Chunks of cells are tasks, submitted
    with ``retries`` (a task that raises is retried) and run wherever the
    scheduler puts them; a worker that dies has its tasks rescheduled on the
    others (Dask's ``allowed-failures``). Each task sets the kernels' threads to
    ``cores of its host // worker threads on that host``. Results stream back
    with :func:`distributed.as_completed`.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import math
import multiprocessing as mp
import os
import signal
import threading
import uuid
from concurrent.futures.process import BrokenProcessPool
from urllib.parse import urlparse

from .._native import _core
from .cells import run_cells, set_threads

__all__ = ["LARGE_CELL", "LOCAL_RESTARTS", "cell_cost", "cpu_count", "plan_local", "run_local", "run_dask", "chunked"]

# n * m * d above which a cell is "large" (gets all kernel threads, runs alone).
LARGE_CELL = 1 << 22
# A dead worker process breaks its pool: the unfinished chunks run again in a
# fresh pool, at most this many times.
LOCAL_RESTARTS = 2


def _child_env(threads):
    """Environment of worker processes running cells with ``threads`` threads each: numpy's BLAS
    and OpenMP pools get as many as the kernels (flatext.set_num_threads, per worker): one beside
    other workers, every core for a large cell running alone (the cell-sparse method's cone
    solves are numpy BLAS: with one BLAS thread a large cell used one core of two)."""
    t = str(int(threads))
    return {"OPENBLAS_NUM_THREADS": t, "MKL_NUM_THREADS": t, "OMP_NUM_THREADS": t, "OMP_WAIT_POLICY": "PASSIVE"}


def cpu_count():
    """Cores this process may use (affinity mask when available)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def cell_cost(cell):
    """Work estimate of a cell: ``n * m * d`` (the size of one kernel call's GEMM)."""
    return cell["n"] * cell["m"] * cell["d"]


def chunked(cells, size):
    return [cells[i : i + size] for i in range(0, len(cells), size)]


def _auto_chunk(n_cells, workers):
    return int(min(16, max(1, math.ceil(n_cells / (max(1, workers) * 8)))))


def plan_local(cells, cores=None, workers=None, chunk_size=None):
    """How the local executor will run ``cells``.

    Returns
    -------
    list of (cells_phase, processes, threads_per_process, chunk_size)
        At most two phases: the small cells side by side, then the large ones
        one at a time with all cores.
    """
    cores = cores or cpu_count()
    small = [c for c in cells if cell_cost(c) < LARGE_CELL]
    large = [c for c in cells if cell_cost(c) >= LARGE_CELL]
    phases = []
    if small:
        procs = min(workers or cores, len(small))
        threads = max(1, cores // procs)
        phases.append((small, procs, threads, chunk_size or _auto_chunk(len(small), procs)))
    if large:
        phases.append((large, 1, cores, 1))
    return phases


@contextlib.contextmanager
def _env(values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _children_ignore_sigint():
    """Processes started in this block ignore SIGINT (the disposition survives exec).

    Ctrl-C on a terminal signals the whole foreground process group: the
    workers must not die with tracebacks of their own; the parent stops them.
    (Only the main thread may set signal handlers; elsewhere this does nothing.)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _stop_pool(pool):
    """Stop a process pool now: terminate its workers (running chunks are lost), then shut it down."""
    # ProcessPoolExecutor has no public way to stop running workers before Python 3.14
    # (terminate_workers); its process table is _processes.
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for p in procs:
        if p.is_alive():
            p.terminate()
    pool.shutdown(wait=True, cancel_futures=True)
    for p in procs:
        p.join(timeout=5)


def run_local(cells, on_result, *, workers=None, chunk_size=None, cores=None, on_running=None):
    """Run ``cells`` on this machine; call ``on_result(rows)`` in this thread as each chunk finishes.

    ``workers=0`` runs everything in this process (no worker processes).
    ``cores`` caps the cores used (processes x kernel threads); default: all.
    ``on_running(k)`` is told how many cells are being computed, when that changes.
    On ``KeyboardInterrupt`` the worker processes are terminated before it propagates.
    """
    if not cells:
        return
    running = on_running or (lambda k: None)
    if workers == 0:
        before = _core.get_num_threads()
        try:
            for cores_cells, _, threads, chunk in plan_local(cells, cores=cores, workers=1, chunk_size=chunk_size):
                for ch in chunked(cores_cells, chunk):
                    running(len(ch))
                    on_result(run_cells(ch, threads=threads))
        finally:
            set_threads(before)
        return
    ctx = mp.get_context("spawn")
    for phase_cells, procs, threads, chunk in plan_local(cells, cores=cores, workers=workers, chunk_size=chunk_size):
        env = _child_env(threads)
        pending = chunked(phase_cells, chunk)
        for _attempt in range(LOCAL_RESTARTS + 1):
            # spawned children inherit the environment and the ignored SIGINT (they start during the submits)
            with _env(env), _children_ignore_sigint():
                pool = cf.ProcessPoolExecutor(
                    max_workers=procs, mp_context=ctx, initializer=set_threads, initargs=(threads,)
                )
                try:
                    futs = {pool.submit(run_cells, ch): i for i, ch in enumerate(pending)}
                except BaseException:
                    _stop_pool(pool)
                    raise
            done = set()
            left = sum(map(len, pending))
            running(min(left, procs * chunk))
            try:
                for fut in cf.as_completed(futs):
                    try:
                        rows = fut.result()
                    except BrokenProcessPool:
                        continue  # its chunk is run again by a fresh pool below
                    on_result(rows)
                    done.add(futs[fut])
                    left -= len(rows)
                    running(min(left, procs * chunk))
            except BaseException:
                _stop_pool(pool)
                raise
            pool.shutdown(wait=True, cancel_futures=True)
            pending = [ch for i, ch in enumerate(pending) if i not in done]
            if not pending:
                break
        else:
            raise RuntimeError(
                f"sweep worker processes kept dying ({LOCAL_RESTARTS + 1} pools); {sum(map(len, pending))} cells "
                "not run; finished cells are saved: rerun the same command to resume. (If no cell ran at all: "
                "worker processes are spawned, so a script calling flatext.sweep needs "
                '`if __name__ == "__main__":`; or run in this process with workers=0.)'
            )


# ---------------------------------------------------------------------------
# Dask
# ---------------------------------------------------------------------------


def _dask_task(cells, host_threads):
    """Dask task: set kernel threads for this worker's host, run the cells."""
    from distributed import get_worker  # on a Dask worker: distributed is there

    w = get_worker()
    total = host_threads.get(urlparse(w.address).hostname) or w.state.nthreads
    return run_cells(cells, threads=max(1, cpu_count() // max(1, total)))


def _host_threads(client):
    out = {}
    for addr, w in client.scheduler_info().get("workers", {}).items():
        h = urlparse(addr).hostname
        out[h] = out.get(h, 0) + int(w.get("nthreads", 1))
    return out


# Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536 (to hand memory
# back to the OS). Setting it turns off glibc's dynamic mmap threshold: every
# buffer above 128 KiB (the kernels' per-call tile buffers) is then mmap'ed and
# unmapped on each call, with fresh page faults. Measured: flatext.train
# (n=100, d=8, m=200, 3000 steps) 0.15 s CPU without it, 0.8 s with it (0.6 s
# system time); the whole LocalCluster sweep ran about 2.5-5x slower than the
# local pool. The LocalCluster is started without it; for a cluster you start
# yourself, see docs/sweeps.md.
# The workers' statistical profiler (a thread sampling every 10 ms) is off too:
# nobody reads its profiles here.
_DASK_LOCAL_CONFIG = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.worker.profile.enabled": False,
}


def _quiet_dask():
    import dask  # optional dependency, there when run_dask runs

    dask.config.set({"distributed.logging.distributed": "error", "distributed.admin.tick.limit": "1h"})
    for name in (
        "distributed",
        "distributed.nanny",
        "distributed.scheduler",
        "distributed.worker",
        "distributed.core",
        "distributed.comm",
        "tornado",
    ):
        logging.getLogger(name).setLevel(logging.ERROR)


def run_dask(
    cells, on_result, *, scheduler=None, local_cluster=None, chunk_size=None, retries=3, error_row=None, on_running=None
):
    """Run ``cells`` as Dask tasks; call ``on_result(rows)`` as each task completes.

    Exactly one of ``scheduler`` (address of a running scheduler) and
    ``local_cluster`` (number of worker processes of a new LocalCluster).
    A task that still fails after its retries (or whose workers keep dying)
    gives error rows made by ``error_row(cell, message)``, so the sweep goes on
    and a rerun retries those cells. ``on_running(k)``: about ``k`` cells are
    being computed.
    """
    try:  # an optional dependency (flatext[sweep])
        import dask
        from distributed import Client, LocalCluster, as_completed
    except ImportError as e:  # pragma: no cover
        raise ImportError("Dask executors need the 'distributed' package: pip install 'flatext[sweep]'") from e
    if not cells:
        return
    running = on_running or (lambda k: None)
    _quiet_dask()
    cluster = None
    if local_cluster is not None:
        n = int(local_cluster)
        if n < 1:
            raise ValueError(f"local_cluster: expected a number of workers >= 1, got {local_cluster!r}")
        threads = max(1, cpu_count() // n)
        with (
            _env(_child_env(threads)),
            _children_ignore_sigint(),
            dask.config.set(_DASK_LOCAL_CONFIG),
        ):
            # no dashboard; the scheduler's health/metrics HTTP server on a free port (by default it
            # takes 8787 and warns on stderr when another cluster has it)
            cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                scheduler_kwargs={"dashboard_address": ":0"},
                silence_logs=logging.ERROR,
            )
        client = Client(cluster)
    else:
        client = Client(scheduler, timeout="30s")
    try:
        host_threads = _host_threads(client)
        workers = max(1, sum(host_threads.values()))
        chunks = chunked(cells, chunk_size or _auto_chunk(len(cells), workers))
        run_tag = uuid.uuid4().hex[:8]
        attempts = {}

        def submit(ch):
            k = attempts[ch[0]["cell_id"]] = attempts.get(ch[0]["cell_id"], -1) + 1
            f = client.submit(
                _dask_task,
                ch,
                host_threads,
                retries=retries,
                pure=False,
                key=f"flatext-cells-{run_tag}-{ch[0]['cell_id']}-{len(ch)}-{k}",
            )
            futs[f.key] = (f, ch)
            return f

        futs = {}
        left = len(cells)
        ac = as_completed([submit(ch) for ch in chunks])
        running(min(left, workers * len(chunks[0])))
        for fut in ac:
            ch = futs.pop(fut.key)[1]
            try:
                rows = fut.result()
            except Exception as e:
                # the task's own retries are spent, or its result was lost with a
                # worker: resubmit it a few times, then record error rows
                if attempts[ch[0]["cell_id"]] < retries:
                    ac.add(submit(ch))
                    continue
                if error_row is None:
                    raise
                rows = [error_row(c, f"dask task failed: {type(e).__name__}: {e}") for c in ch]
            on_result(rows)
            fut.release()
            left -= len(rows)
            running(min(left, workers * len(chunks[0])))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
