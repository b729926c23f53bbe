"""Sweeps: config validation, grid expansion, rows against numpy, executors agree,
crash safety (SIGKILL + resume), a Dask worker killed mid-sweep, plots."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

import flatext  # noqa: E402
from flatext.sweeps import SweepConfigError, load_config  # noqa: E402
from flatext.sweeps.cells import SWEEP_DELAY_ENV, cell_data  # noqa: E402
from flatext.sweeps.config import MEASUREMENTS  # noqa: E402

# Columns that legitimately differ between runs of the same cell.
VOLATILE = {"hostname", "pid", "worker"}  # and every time_* column


def tiny(**over):
    """A tiny sweep as a dict: n=16, d=3, m=8; random and gd; 2 noises x 2 seeds = 8 cells."""
    cfg = {
        "sweep": {
            "name": "tiny",
            "seeds": 2,
            "measurements": list(MEASUREMENTS),  # every one, and time
        },
        "teacher": {"kind": "sum_of_single_index", "links": ["relu", "abs"], "weights": [1.0, 0.5]},
        "data": {"n": 16, "d": 3, "noise": [0.0, 0.1]},
        "model": {"m": 8, "init_scale": 1.0},
        "methods": {"random": {}, "gd": {"lr": 0.2, "max_iter": 50}},
        "population": {"method": "mc", "n_samples": 2000},
    }
    for k, v in over.items():
        cfg[k] = v
    return cfg


def write_toml(path, text):
    path.write_text(text)
    return str(path)


def stable(df):
    cols = [c for c in df.columns if c not in VOLATILE and not c.startswith("time_")]
    return df[cols].sort_values("cell_id").reset_index(drop=True)


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------

GOOD = """
[sweep]
seeds = 2
[data]
n = 16
d = 3
[model]
m = 8
[methods.random]
"""

BAD = [
    ("[data]\nnn = 3\n", "data.nn", "unknown key"),
    ('[data]\nn = "16"\n', "data.n", "expected an integer"),
    ("[data]\nn = 0\n", "data.n", ">= 1"),
    ("[data]\nnoise = -0.1\n", "data.noise", ">= 0"),
    ("[data]\nn = []\n", "data.n", "empty"),
    ("[data]\nd = [3, 3]\n", "data.d", "repeated"),
    ("[model]\npower = 0.5\n", "model.power", ">= 1"),
    ('[model]\nm = "two n"\n', "model.m", "multiple of n"),
    ("[model]\ninit_scale = 0\n", "model.init_scale", "> 0"),
    ('[model]\ndtype = "float16"\n', "model.dtype", "unknown value"),
    ("[methods.foo]\n", "methods.foo", "unknown method"),
    ("[methods.gd]\nlr = -1\n", "methods.gd.lr", "> 0"),
    ("[methods.gd]\nmomentum = 0.9\n", "methods.gd.momentum", "unknown key"),
    ("[methods.memorize]\ninit_scale = 1.0\n", "methods.memorize.init_scale", "unknown key"),
    ('[sweep]\nmeasurements = ["trace", "sharpness"]\n', "sweep.measurements", "unknown measurement"),
    ("[sweep]\nseeds = 0\n", "sweep.seeds", ">= 1"),
    ('[teacher]\nlinks = ["relu", "sigmoid"]\n', "teacher.links", "unknown value"),
    ('[teacher]\nlinks = ["relu", "abs", "relu2", "tanh"]\n', "teacher", "do not fit in d=3"),
    ('[teacher]\nkind = "mystery"\n', "teacher.kind", "unknown teacher kind"),
    ('[teacher]\nlinks = ["relu"]\nweights = [1.0, 2.0]\n', "teacher.weights", "one per link"),
    ('[population]\nmethod = "guess"\n', "population.method", "unknown value"),
    ("[extra]\nx = 1\n", "extra", "unknown section"),
]


def _merge(base, extra):
    """Text of GOOD with the tables of `extra` replacing/merging its own (TOML allows one header each)."""
    from flatext.sweeps.config import _toml

    raw = _toml().loads(base)
    for k, v in _toml().loads(extra).items():
        if isinstance(v, dict) and isinstance(raw.get(k), dict) and k != "methods":
            raw[k].update(v)
        else:
            raw[k] = v
    return raw


def _dump(raw):
    lines = []

    def val(v):
        if isinstance(v, str):
            return '"' + v + '"'
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return repr(v)

    for sec, tbl in raw.items():
        if sec == "methods":
            for name, params in tbl.items():
                lines.append(f"[methods.{name}]")
                lines += [f"{k} = {val(v)}" for k, v in params.items()]
        else:
            lines.append(f"[{sec}]")
            lines += [f"{k} = {val(v)}" for k, v in tbl.items()]
    return "\n".join(lines) + "\n"


def test_good_file_loads(tmp_path):
    cfg = load_config(write_toml(tmp_path / "good.toml", GOOD))
    assert len(cfg) == 2 and cfg.name == "good"


@pytest.mark.parametrize("extra,key,words", BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_bad_sweep_file_names_key_and_file(tmp_path, extra, key, words):
    path = write_toml(tmp_path / "bad_sweep.toml", _dump(_merge(GOOD, extra)))
    out = tmp_path / "never.parquet"
    with pytest.raises(SweepConfigError) as ei:
        flatext.sweep(path, out=out, progress=False)
    msg = str(ei.value)
    assert path in msg, msg
    assert f"key '{key}'" in msg, msg
    assert words in msg, msg
    assert ei.value.key == key
    assert not os.path.exists(str(out) + ".parts") and not out.exists()  # no work started


def test_bad_toml_syntax_and_dict_source(tmp_path):
    path = write_toml(tmp_path / "broken.toml", "[data\nn = 3\n")
    with pytest.raises(SweepConfigError, match="broken.toml"):
        load_config(path)
    with pytest.raises(SweepConfigError, match=r"<dict>: key 'data.n'"):
        load_config(tiny(data={"n": True, "d": 3}))
    with pytest.raises(SweepConfigError, match=r"key 'methods'"):
        load_config({k: v for k, v in tiny().items() if k != "methods"})


# ---------------------------------------------------------------------------
# Grid expansion
# ---------------------------------------------------------------------------


def test_grid_is_cartesian_product_with_stable_ids():
    raw = tiny(
        data={"n": [10, 20], "d": [3, 4], "noise": [0.0, 0.1, 0.2]},
        model={"m": "2n", "init_scale": [0.5, 1.0]},
        methods={"gd": {"lr": [0.1, 0.2]}, "memorize": {}, "g2": {"method": "gd", "init_scale": 0.01}},
    )
    cfg = load_config(raw)
    base = 2 * 2 * 3 * 2  # n, d, noise, seeds
    # gd: 2 init scales x 2 lr; memorize: init-free (deduplicated over init scales); g2: own init scale
    assert len(cfg) == base * (2 * 2 + 1 + 1)
    ids = [c["cell_id"] for c in cfg.cells]
    assert len(set(ids)) == len(ids)
    assert ids == [c["cell_id"] for c in load_config(raw).cells]  # stable
    for c in cfg.cells:
        assert c["m"] == 2 * c["n"]
        if c["method"] == "memorize":
            assert c["init_scale"] is None
        if c["method"] == "g2":
            assert c["init_scale"] == 0.01 and c["method_kind"] == "gd"
    # a changed parameter changes the id, the seed too
    c0 = dict(cfg.cells[0])
    from flatext.sweeps.config import cell_id

    assert cell_id(c0) == c0["cell_id"]
    assert cell_id(dict(c0, seed=99)) != c0["cell_id"]
    assert cell_id(dict(c0, noise=0.5)) != c0["cell_id"]


# ---------------------------------------------------------------------------
# Rows against numpy
# ---------------------------------------------------------------------------


def _np_relu_net(W, a, X):
    Z = X @ W.T
    return np.maximum(Z, 0.0) @ a, Z


def test_source_digest_tells_code_apart(tmp_path):
    # rows record which code computed them: the digest follows the files' bytes and nothing else
    from flatext.info import file_digest, source_digest

    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x = 1\n")
    b.write_text("y = 2\n")
    d0 = file_digest([a, b])
    assert file_digest([a, b]) == d0 and len(d0) == 12
    a.write_text("x = 2\n")
    assert file_digest([a, b]) != d0
    a.write_text("x = 1\n")
    assert file_digest([a, b]) == d0
    assert source_digest() == source_digest() and len(source_digest()) == 12


def test_rows_match_independent_numpy(tmp_path):
    from flatext.info import source_digest

    cfg = load_config(tiny())
    df = flatext.sweep(tiny(), out=tmp_path / "r.parquet", workers=0, progress=False)
    assert len(df) == len(cfg) == 8
    assert df["error"].isna().all(), df["error"].tolist()
    # random promises nothing more than a network; 50 GD steps reach neither tol nor the polish
    assert (df.loc[df.method == "random", "status"] == "ok").all()
    gd = df[df.method == "gd"]
    assert (gd["reason"] == "max_iter").all() and (gd["polish"] == "skipped").all()
    assert (gd["status"] == "not_interpolating").all() and (gd["max_residual"] > 1e-3).all()
    assert df["flatext_version"].eq(flatext.__version__).all()
    assert df["flatext_source"].eq(source_digest()).all()
    by_id = df.set_index("cell_id")
    for cell in cfg.cells:
        row = by_id.loc[cell["cell_id"]]
        data = cell_data(cell)
        X, y = data["X"], data["y"]
        assert X.shape == (16, 3) and data["W0"].shape == (8, 3)
        if cell["method"] == "random":  # the row measures the initialization itself
            W, a = data["W0"], data["a0"]
            f, Z = _np_relu_net(W, a, X)
            r = f - y
            s = np.sum(X * X, axis=1)
            act = (Z > 0).astype(float)
            trace = (np.sum(np.maximum(Z, 0) ** 2) + np.sum((a[None, :] ** 2) * act * s[:, None])) / 16
            assert row["train_loss"] == pytest.approx(0.5 * np.mean(r**2), rel=1e-12)
            assert row["max_residual"] == pytest.approx(np.max(np.abs(r)), rel=1e-12)
            assert row["trace"] == pytest.approx(trace, rel=1e-12)
            # ReLU orbit minimum: 2 sum_i sqrt(A_i B_i), A_i = mean relu^2, B_i = a_i^2 mean 1{z>0} s
            A = np.mean(np.maximum(Z, 0) ** 2, axis=0)
            B = a**2 * np.mean(act * s[:, None], axis=0)
            assert row["orbit_min_trace"] == pytest.approx(2 * np.sum(np.sqrt(A * B)), rel=1e-10)
            assert row["top_eigenvalue"] <= row["trace"] + 1e-12
        else:  # gd lowers the loss from the same (paired) initialization
            rnd = df[(df.method == "random") & (df.seed == cell["seed"]) & (df.noise == cell["noise"])]
            assert row["train_loss"] < 0.5 * float(rnd["train_loss"].iloc[0])
        # population loss: compare with our own Monte Carlo on fresh Gaussian inputs
        Xs = np.random.default_rng(123).standard_normal((200_000, 3))
        t = data["teacher"](Xs)
        # W, a of gd are not in the row: check the relative loss is consistent with its parts
        assert row["population_loss_rel"] == pytest.approx(row["population_loss"] / row["null_loss"], rel=1e-12)
        assert row["null_loss"] == pytest.approx(np.mean(t * t), rel=0.1)
        if cell["method"] == "random":
            f, _ = _np_relu_net(data["W0"], data["a0"], Xs)
            assert row["population_loss"] == pytest.approx(np.mean((f - t) ** 2), rel=0.1)
    # data are shared (paired) across methods of a seed; different across seeds
    c_r = [c for c in cfg.cells if c["method"] == "random" and c["noise"] == 0.0]
    c_g = [c for c in cfg.cells if c["method"] == "gd" and c["noise"] == 0.0]
    np.testing.assert_array_equal(cell_data(c_r[0])["X"], cell_data(c_g[0])["X"])
    assert not np.array_equal(cell_data(c_r[0])["X"], cell_data(c_r[1])["X"])


# ---------------------------------------------------------------------------
# Executors agree
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quiet_dask():
    pytest.importorskip("distributed")
    import logging

    import dask

    with dask.config.set({"distributed.logging.distributed": "error"}):
        logging.getLogger("distributed").setLevel(logging.ERROR)
        yield


def test_default_executor_and_local_cluster_give_same_rows(tmp_path, quiet_dask):
    local = flatext.sweep(tiny(), out=tmp_path / "local.parquet", progress=False)  # spawn pool, all cores
    dsk = flatext.sweep(tiny(), out=tmp_path / "dask.parquet", local_cluster=2, progress=False)
    inline = flatext.sweep(tiny(), out=tmp_path / "inline.parquet", workers=0, progress=False)
    assert len(local) == len(dsk) == 8
    assert local.status.tolist() == dsk.status.tolist() and local.error.isna().all() and dsk.error.isna().all()
    assert dsk["worker"].str.startswith("tcp://").all()
    assert local["worker"].str.startswith("local:").all()
    pd.testing.assert_frame_equal(stable(local), stable(dsk))  # same numbers, bit for bit
    pd.testing.assert_frame_equal(stable(local), stable(inline))
    # the consolidated file is what was returned
    pd.testing.assert_frame_equal(stable(pd.read_parquet(tmp_path / "dask.parquet")), stable(dsk))


# ---------------------------------------------------------------------------
# Crash safety
# ---------------------------------------------------------------------------

KILL_TOML = """
[sweep]
name = "killme"
seeds = 12
measurements = ["train_loss", "trace", "orbit_min_trace", "time"]
[data]
n = 16
d = 3
noise = [0.0, 0.1]
[model]
m = 8
[methods.random]
"""


def _part_rows(parts_dir):
    import pyarrow.parquet as pq

    frames = [pq.read_table(f).to_pandas() for f in sorted(glob.glob(os.path.join(parts_dir, "part-*.parquet")))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _sweep_cmd(cfg_path, out):
    """`flatext sweep` in a subprocess: two workers, one cell per task, no progress bar."""
    return [sys.executable, "-m", "flatext", "sweep", cfg_path, "--out", str(out), "--workers", "2",
            "--chunk-size", "1", "--no-progress"]  # fmt: skip


def test_sigkill_then_resume_loses_nothing_and_duplicates_nothing(tmp_path):
    cfg_path = write_toml(tmp_path / "kill.toml", KILL_TOML)
    out = tmp_path / "res.parquet"
    parts = str(out) + ".parts"
    env = dict(os.environ, **{SWEEP_DELAY_ENV: "0.1"})
    cmd = _sweep_cmd(cfg_path, out)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(glob.glob(os.path.join(parts, "part-*.parquet"))) < 4:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker processes, mid-write or not
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    first = _part_rows(parts)
    n_total = 24
    assert 4 <= len(first) < n_total, len(first)  # killed part way
    assert not out.exists()  # the consolidated file is written only at the end
    assert first["cell_id"].is_unique
    assert first["trace"].notna().all()  # every row on disk is whole

    df = flatext.sweep(cfg_path, out=out, workers=0, progress=False)
    assert len(df) == n_total and df["cell_id"].is_unique
    assert set(df["cell_id"]) == {c["cell_id"] for c in load_config(cfg_path).cells}
    assert df.attrs["cells_run"] == n_total - len(first)
    assert (df.status == "ok").all()
    # the first run's rows are there unchanged (same timing and pid: they were not recomputed)
    again = df.set_index("cell_id").loc[first["cell_id"], first.columns.drop("cell_id")].reset_index()
    pd.testing.assert_frame_equal(again[first.columns], first, check_dtype=False)
    # a third run has nothing to do; --no-resume starts over
    df3 = flatext.sweep(cfg_path, out=out, workers=0, progress=False)
    assert df3.attrs["cells_run"] == 0 and len(df3) == n_total
    df4 = flatext.sweep(cfg_path, out=out, workers=0, progress=False, resume=False)
    assert df4.attrs["cells_run"] == n_total and len(df4) == n_total
    pd.testing.assert_frame_equal(stable(df4), stable(df))


def _group_alive(pgid):
    """Processes of a process group that are still running (zombies excluded)."""
    alive = []
    for d in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(d) as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(d)
    return alive


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_stops_cleanly_with_one_line_and_resumes(tmp_path):
    cfg_path = write_toml(tmp_path / "kill.toml", KILL_TOML)
    out = tmp_path / "res.parquet"
    parts = str(out) + ".parts"
    # 1 s per cell (24 cells, 2 workers: ~12 s): the Ctrl-C lands long before the sweep could end
    env = dict(os.environ, **{SWEEP_DELAY_ENV: "1.0"})
    cmd = _sweep_cmd(cfg_path, out)
    # a terminal's foreground job has SIGINT at its default; a test run started in the
    # background (`cmd &` in a script) inherits it ignored, and so would the sweep. A caught
    # signal is reset to its default by exec, so SIGINT is caught here while the child starts
    # (not a preexec_fn: that forks a process JAX's threads may share, which JAX warns about)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
    finally:
        signal.signal(signal.SIGINT, old)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(glob.glob(os.path.join(parts, "part-*.parquet"))) < 2:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C on a terminal does: the whole foreground group
        t0 = time.time()
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert time.time() - t0 < 10  # the workers are stopped, not waited for
    assert proc.returncode == 130
    assert "Traceback" not in stderr and stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    import re

    mt = re.fullmatch(r"flatext sweep: interrupted: (\d+)/24 cells saved; rerun the same command to resume", lines[0])
    assert mt, lines[0]
    first = _part_rows(parts)
    assert int(mt.group(1)) == int((first["status"] == "ok").sum()) >= 2
    deadline = time.time() + 10
    while _group_alive(proc.pid) and time.time() < deadline:  # no orphan worker keeps running
        time.sleep(0.1)
    assert not _group_alive(proc.pid)
    # rerunning the same command resumes: the saved rows are kept, the rest run
    df = flatext.sweep(cfg_path, out=out, workers=0, progress=False)
    assert len(df) == 24 and df["cell_id"].is_unique and (df.status == "ok").all()
    assert df.attrs["cells_run"] == 24 - int(mt.group(1))


def test_progress_bar_appears_on_a_pseudo_terminal(tmp_path):
    pty = pytest.importorskip("pty")
    cfg_path = write_toml(tmp_path / "kill.toml", KILL_TOML)
    master, slave = pty.openpty()  # a fresh pty reports a 0 x 0 window: the case that used to draw nothing
    env = dict(os.environ, **{SWEEP_DELAY_ENV: "0.02"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "flatext", "sweep", cfg_path, "--out", str(tmp_path / "r.parquet"), "--workers", "2"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    buf = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        buf += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 0
    text = buf.decode(errors="replace")
    assert "sweep killme" in text and "24/24" in text  # done / total
    assert "running" in text and "failed 0" in text and "cell/s" in text  # running, failed, rate
    assert "<" in text  # tqdm's [elapsed<remaining] ETA


def test_local_worker_killed_mid_sweep_still_completes(tmp_path, monkeypatch):
    monkeypatch.setenv(SWEEP_DELAY_ENV, "0.1")
    cfg_path = write_toml(tmp_path / "kill.toml", KILL_TOML)
    out = tmp_path / "res.parquet"
    parts = str(out) + ".parts"
    killed = []

    def killer():
        deadline = time.time() + 60
        while time.time() < deadline:
            rows = _part_rows(parts)
            if len(rows) >= 2:
                victim = int(rows["pid"].iloc[-1])
                assert victim != os.getpid()
                os.kill(victim, signal.SIGKILL)
                killed.append((victim, len(rows)))
                return
            time.sleep(0.02)

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    df = flatext.sweep(cfg_path, out=out, workers=2, chunk_size=1, progress=False)
    th.join(timeout=5)
    assert killed and killed[0][1] < 24
    assert len(df) == 24 and df["cell_id"].is_unique and (df.status == "ok").all()
    assert killed[0][0] in set(df["pid"])  # it had finished cells before it died
    assert len(set(df["pid"])) >= 3  # a fresh pool finished the rest


def test_dask_worker_killed_mid_sweep_still_completes(tmp_path, monkeypatch, quiet_dask):
    from distributed import Client, LocalCluster

    monkeypatch.setenv(SWEEP_DELAY_ENV, "0.1")  # inherited by the worker processes
    cfg_path = write_toml(tmp_path / "kill.toml", KILL_TOML)
    out = tmp_path / "res.parquet"
    parts = str(out) + ".parts"
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
    ) as cluster:
        with Client(cluster) as client:  # closed before the sweep opens its own client
            pids = list(client.run(os.getpid).values())
        assert len(pids) == 2 and os.getpid() not in pids
        killed = []

        def killer():
            # kill a worker once it has finished cells (so it is busy with the next one)
            deadline = time.time() + 60
            while time.time() < deadline:
                rows = _part_rows(parts)
                busy = [p for p in (rows["pid"].unique() if len(rows) else []) if p in pids]
                if busy and len(rows) >= 2:
                    os.kill(int(busy[0]), signal.SIGKILL)
                    killed.append((int(busy[0]), len(rows)))
                    return
                time.sleep(0.02)

        th = threading.Thread(target=killer, daemon=True)
        th.start()
        df = flatext.sweep(cfg_path, out=out, scheduler=cluster.scheduler_address, progress=False, chunk_size=1)
        th.join(timeout=5)
    assert killed, "the worker was not killed during the sweep"
    victim, done_before = killed[0]
    assert done_before < 24
    assert len(df) == 24 and df["cell_id"].is_unique
    assert set(df["cell_id"]) == {c["cell_id"] for c in load_config(cfg_path).cells}
    assert (df.status == "ok").all(), df["error"].dropna().tolist()
    assert victim in set(df["pid"])  # the killed worker had done cells before it died
    # and the cells were computed correctly: same rows as an in-process run
    ref = flatext.sweep(cfg_path, out=tmp_path / "ref.parquet", workers=0, progress=False)
    pd.testing.assert_frame_equal(stable(df), stable(ref))


# ---------------------------------------------------------------------------
# CLI and plots
# ---------------------------------------------------------------------------


def test_cli_sweep_and_plot(tmp_path, capsys):
    from flatext.cli import main

    cfg = write_toml(
        tmp_path / "c.toml", GOOD.replace("[methods.random]", "[methods.random]\n[methods.gd]\nlr = 0.2\nmax_iter = 20")
    )
    out = tmp_path / "r.parquet"
    assert main(["sweep", cfg, "--out", str(out), "--dry-run"]) == 0
    assert "4 cells (random: 2, gd: 2)" in capsys.readouterr().out and not out.exists()
    assert main(["sweep", cfg, "--out", str(out), "--workers", "0", "--no-progress"]) == 0
    assert "4 cells" in capsys.readouterr().out
    for args in (
        ["--x", "seed", "--y", "train_loss", "--hue", "method"],
        ["--x", "trace", "--y", "train_loss", "--hue", "method", "--logx", "--logy", "--kind", "scatter"],
        ["--x", "method", "--y", "trace", "--band", "std"],
    ):
        fig = tmp_path / "f.png"
        assert main(["plot", str(out), *args, "--out", str(fig)]) == 0
        assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        fig.unlink()
    assert main(["plot", str(out), "--x", "nope", "--y", "trace", "--out", str(tmp_path / "g.png")]) == 2
    assert "no column 'nope'" in capsys.readouterr().err
    assert main(["sweep", write_toml(tmp_path / "bad.toml", "[data]\nn = -1\n"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "data.n" in err


def test_example_sweep_files_validate():
    root = os.path.join(os.path.dirname(__file__), "..", "examples", "sweeps")
    files = sorted(glob.glob(os.path.join(root, "*.toml")))
    assert any(f.endswith("reproduce.toml") for f in files)
    for f in files:
        cfg = load_config(f)
        assert len(cfg) > 0
    rep = load_config(os.path.join(root, "reproduce.toml"))
    assert {c["n"] for c in rep.cells} == {100, 300} and {c["d"] for c in rep.cells} == {8}
    assert all(c["m"] == 2 * c["n"] for c in rep.cells)
    assert {c["method_kind"] for c in rep.cells} >= {"gd", "memorize", "flattest"}


def test_local_plan_never_oversubscribes():
    from flatext.sweeps.executor import LARGE_CELL, cell_cost, plan_local

    small = [{"n": 16, "m": 8, "d": 3, "cell_id": str(i)} for i in range(40)]
    big = [{"n": 4096, "m": 1024, "d": 64, "cell_id": "b"}]
    assert cell_cost(big[0]) >= LARGE_CELL > cell_cost(small[0])
    for cores in (1, 2, 3, 8, 64):
        for workers in (None, 1, 2, 5):
            phases = plan_local(small + big, cores=cores, workers=workers)
            assert [len(p[0]) for p in phases] == [40, 1]
            (_, procs, threads, chunk), (_, procs_big, threads_big, _) = phases
            assert procs * threads <= max(cores, procs) and procs <= (workers or cores)
            assert threads == max(1, cores // procs) and 1 <= chunk <= 16
            assert (procs_big, threads_big) == (1, cores)  # a large cell gets all threads
    phases = plan_local(small[:3], cores=8)
    assert phases[0][1:3] == (3, 2)  # 3 cells: 3 processes with 2 threads each


def _blas_threads():
    from threadpoolctl import threadpool_info

    pools = [i for i in threadpool_info() if i["user_api"] == "blas"]
    return sorted(i["num_threads"] for i in pools if "scipy_openblas32" not in i["filepath"])


def test_worker_processes_give_numpy_blas_the_threads_of_their_cells():
    """A worker of a phase with t threads per cell runs numpy's BLAS with t threads (a large cell
    alone: every core), not one (the cell-sparse method's cone solves are numpy BLAS)."""
    import concurrent.futures as cf
    import multiprocessing as mp

    pytest.importorskip("threadpoolctl")
    from flatext.sweeps.executor import _child_env, _env, cpu_count

    for threads in (1, 2) if cpu_count() >= 2 else (1,):  # OpenBLAS caps its pool at the cores
        with _env(_child_env(threads)):
            with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
                got = pool.submit(_blas_threads).result()
        assert got and set(got) == {threads}, (threads, got)


def test_progress_bar_on_a_terminal_only(tmp_path, monkeypatch):
    import io

    class Tty(io.StringIO):
        def isatty(self):
            return True

    fast = tiny(sweep={"name": "tiny", "seeds": 2, "measurements": ["train_loss"]})
    fake = Tty()
    monkeypatch.setattr(sys, "stderr", fake)
    flatext.sweep(fast, out=tmp_path / "a.parquet", workers=0)
    text = fake.getvalue()
    assert "sweep tiny" in text and "8/8" in text and "cell/s" in text  # done / total, rate
    quiet = io.StringIO()  # not a terminal: nothing
    monkeypatch.setattr(sys, "stderr", quiet)
    flatext.sweep(fast, out=tmp_path / "b.parquet", workers=0)
    assert quiet.getvalue() == ""
    # a Jupyter kernel's stderr is no terminal either, but the bar is shown there
    import types

    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    kernel = io.StringIO()
    monkeypatch.setattr(sys, "stderr", kernel)
    flatext.sweep(fast, out=tmp_path / "c.parquet", workers=0)
    assert "8/8" in kernel.getvalue() and "running" in kernel.getvalue()


# ---------------------------------------------------------------------------
# Rows say why each method stopped; one list of links and input laws
# ---------------------------------------------------------------------------


def test_rows_record_stop_reasons_and_agree_with_measure(tmp_path):
    raw = tiny(
        methods={
            "gd": {"lr": 0.2, "max_iter": 30},
            "project": {},
            "flattest": {"max_iter": 3},
            "gdp": {"method": "gd", "lr": 0.2, "max_iter": 30, "polish_factor": 1e12, "polish_max_iter": 50},
        },
        sweep={"name": "why", "seeds": 1, "measurements": ["train_loss", "trace", "population_loss"]},
        data={"n": 8, "d": 3, "noise": 0.0},
        model={"m": 8},
    )
    df = flatext.sweep(raw, out=tmp_path / "r.parquet", workers=0, progress=False).set_index("method")
    assert df["error"].isna().all(), df["error"].tolist()
    # 30 GD steps without a polish do not interpolate: measured, but not ok
    assert df["status"].to_dict() == {"gd": "not_interpolating", "project": "ok", "flattest": "ok", "gdp": "ok"}
    assert df.loc["gd", "reason"] == "max_iter" and df.loc["gd", "iterations"] == 30
    assert df.loc["gd", "polish"] == "skipped"  # the loss after 30 steps is far above 100 tol
    assert df.loc["gdp", "polish"] == "converged" and bool(df.loc["gdp", "polished"])  # passed through
    assert df.loc["project", "reason"] == "tol" and bool(df.loc["project", "converged"])
    assert df.loc["flattest", "reason"] in ("gtol", "ftol", "max_iter", "line search failed")
    assert 0 <= df.loc["flattest", "grad_ratio"] <= 1
    # a script calling flatext.measure on the same network gets the row's numbers, bit for bit
    cell = [c for c in load_config(raw).cells if c["method"] == "gd"][0]
    data = cell_data(cell)
    res = flatext.train(data["W0"], data["a0"], data["X"], data["y"], lr=0.2, max_iter=30)
    m = flatext.measure(
        res.W,
        res.a,
        data["X"],
        data["y"],
        data["teacher"],
        which=["train_loss", "trace", "population_loss"],
        population="mc",
        n_samples=2000,
        seed=int(np.random.SeedSequence([cell["seed"], 3]).generate_state(1)[0]),
    )
    for k in ("train_loss", "trace", "population_loss", "null_loss", "population_loss_rel"):
        assert df.loc["gd", k] == getattr(m, k), k


def test_links_and_inputs_come_from_the_teachers_module(tmp_path):
    from flatext import teachers
    from flatext.sweeps import config

    assert set(config.LINKS) == set(teachers.LINKS) and set(config.INPUTS) == set(teachers.INPUTS)
    base = {
        "sweep": {"seeds": 1, "measurements": ["train_loss", "population_loss"]},
        "teacher": {"links": ["linear"]},
        "data": {"n": 8, "d": 2, "inputs": ["gaussian", "anisotropic"], "spectrum": [1.0, 0.25]},
        "model": {"m": 8},
        "methods": {"random": {}},
    }
    cfg = load_config(base)
    pops = {c["inputs"]: c["population"]["method"] for c in cfg.cells}
    assert pops == {"gaussian": "exact", "anisotropic": "mc"}  # exact needs Gaussian inputs
    assert "spectrum" not in [c for c in cfg.cells if c["inputs"] == "gaussian"][0]
    df = flatext.sweep(base, out=tmp_path / "r.parquet", workers=0, progress=False)
    assert (df["status"] == "ok").all(), df["error"].tolist()
    assert list(df["population_method"]) == ["exact", "mc"]
    X = cell_data([c for c in cfg.cells if c["inputs"] == "anisotropic"][0])["X"]
    assert X.shape == (8, 2)
    for extra, key, words in [
        ({"spectrum": [1.0]}, "data.spectrum", "d = 2"),
        ({"inputs": "anisotropic", "spectrum": None}, "data.spectrum", "missing"),
        ({"inputs": "gaussian"}, "data.spectrum", "only used"),
    ]:
        raw = {**base, "data": {k: v for k, v in {**base["data"], **extra}.items() if v is not None}}
        with pytest.raises(SweepConfigError, match=words) as e:
            load_config(raw)
        assert e.value.key == key
    with pytest.raises(SweepConfigError, match='needs inputs = "gaussian"'):
        load_config({**base, "population": {"method": "exact"}})


def test_dry_run_lists_the_cells(tmp_path, capsys):
    from flatext.cli import main

    cfg = write_toml(
        tmp_path / "c.toml", GOOD.replace("[methods.random]", "[methods.random]\n[methods.gd]\nlr = [0.1, 0.2]")
    )
    assert main(["sweep", cfg, "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:4] == ["#", "cell_id", "method", "method_kind"]
    assert len(lines) == 1 + 6 + 1 and "6 cells (random: 2, gd: 4)" in lines[-1]
    assert sum("lr=0.2" in ln for ln in lines) == 2
    assert main(["sweep", cfg, "--dry-run", "--format", "csv"]) == 0
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    ids = [c["cell_id"] for c in load_config(cfg).cells]
    assert [r["cell_id"] for r in rows] == ids and rows[0]["n"] == "16"
    assert main(["sweep", cfg]) == 2 and "--out is required" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------


def _plot_frame():
    rng = np.random.default_rng(0)
    rows = []
    for d in (16, 8, 32):
        for k in (1, 2):
            for n in (50, 100, 200):
                for seed in range(5):
                    rows.append(
                        {
                            "d": d,
                            "k": k,
                            "n": n,
                            "seed": seed,
                            "status": "ok",
                            "method": "flattest",
                            "loss": float(np.exp(rng.standard_normal()) * d / n),
                        }
                    )
    return pd.DataFrame(rows)


def test_plot_facets_order_stats_and_bands(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = _plot_frame()
    fig = flatext.plot(df, x="n", y="loss", hue="d", col="k", logx=True, logy=True)
    axes = fig.axes
    assert len(axes) == 2 and [ax.get_title() for ax in axes] == ["k = 1", "k = 2"]
    leg = fig.legends[0]
    assert [t.get_text() for t in leg.get_texts()] == ["8", "16", "32"]  # numeric order, not text order
    # the lines are the medians over seeds; points are every row; the band is the 25-75% quantiles
    ax = axes[0]
    line = ax.get_lines()[0]  # d = 8 (first in hue order)
    g = df[(df.k == 1) & (df.d == 8)]
    np.testing.assert_allclose(line.get_xdata(), [50, 100, 200])
    np.testing.assert_allclose(line.get_ydata(), g.groupby("n")["loss"].median().to_numpy())
    pts = [c for c in ax.collections if c.get_offsets().shape[0] == len(g)]
    assert pts, "per-seed points missing"
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    q = g.groupby("n")["loss"].quantile([0.25, 0.75]).to_numpy()
    assert np.min(band) == pytest.approx(np.min(q)) and np.max(band) == pytest.approx(np.max(q))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["50", "100", "200"]  # readable grid ticks
    plt.close(fig)
    # geometric mean and a log-space std band (which stays positive on a log axis)
    fig = flatext.plot(df, x="n", y="loss", hue="d", row="k", stat="gmean", band="std", points=False, logy=True)
    ax = fig.axes[0]
    g = df[(df.k == 1) & (df.d == 8)]
    gm = np.exp(g.groupby("n")["loss"].apply(lambda v: np.mean(np.log(v)))).to_numpy()
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), gm)
    assert (ax.collections[0].get_paths()[0].vertices[:, 1] > 0).all()
    plt.close(fig)
    # files: one or several Parquet files, and the CLI with facets
    p1, p2 = tmp_path / "a.parquet", tmp_path / "b.parquet"
    df[df.k == 1].to_parquet(p1)
    df[df.k == 2].to_parquet(p2)
    fig = flatext.plot([p1, p2], x="n", y="loss", col="k", out=tmp_path / "f.png")
    assert len(fig.axes) == 2 and (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    plt.close(fig)
    from flatext.cli import main

    out = tmp_path / "g.png"
    assert (
        main(
            [
                "plot",
                str(p1),
                str(p2),
                "--x",
                "n",
                "--y",
                "loss",
                "--hue",
                "d",
                "--col",
                "k",
                "--logy",
                "--stat",
                "gmean",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="stat"):
        flatext.plot(df, x="n", y="loss", stat="mode")
    with pytest.raises(ValueError, match="col: no column"):
        flatext.plot(df, x="n", y="loss", col="nope")


# ---------------------------------------------------------------------------
# Status: a diverged or non-interpolating row is never "ok", nor plotted by default
# ---------------------------------------------------------------------------


def _lr_grid(lr):
    """GD from a unit-scale init at n = 16, 32 (m = 2n): lambda_max at the init is 7 to 14."""
    return {
        "sweep": {"name": "lr", "seeds": 2, "measurements": ["train_loss", "max_residual", "population_loss"]},
        "teacher": {"kind": "sum_of_single_index", "links": ["relu", "abs"], "weights": [1.0, 0.5]},
        "data": {"n": [16, 32], "d": 4, "noise": 0.0},
        "model": {"m": "2n", "init_scale": 1.0},
        "methods": {"gd": {"lr": lr, "max_iter": 10000, "polish_factor": 1e4}},
        "population": {"method": "exact"},
    }


def _points(fig):
    """Rows drawn as points (the scatter collections, not the bands)."""
    from matplotlib.collections import PathCollection

    return sum(len(c.get_offsets()) for c in fig.axes[0].collections if isinstance(c, PathCollection))


def test_diverged_rows_are_not_ok_and_left_out_of_the_plot_and_auto_converges(tmp_path, capsys):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from flatext.cli import main

    out = tmp_path / "fixed.parquet"
    fixed = flatext.sweep(_lr_grid(0.5), out=out, workers=0, progress=False)
    div = fixed[fixed["reason"] == "diverged"]
    assert len(div) >= 3  # lr = 0.5 is above 2 / lambda_max in these cells
    assert (div["status"] == "diverged").all() and (div["train_loss"] > 1e10).all()
    assert fixed["lambda_max"].isna().all() and (fixed["lr"] == 0.5).all() and (fixed["method_lr"] == "0.5").all()
    for _, r in fixed[fixed["reason"] != "diverged"].iterrows():  # the rest: ok iff it interpolates
        assert r["status"] == ("ok" if r["max_residual"] <= 1e-8 else "not_interpolating")
    n_bad = int((fixed["status"] != "ok").sum())
    # the default plot leaves them out and says how many; the switch draws them
    fig = flatext.plot(fixed, x="n", y="train_loss", logy=True)
    assert fig.left_out == fixed.loc[fixed["status"] != "ok", "status"].value_counts().to_dict()
    assert f"left out: {n_bad} row" in fig._suptitle.get_text() and "diverged" in fig._suptitle.get_text()
    assert _points(fig) == len(fixed) - n_bad
    plt.close(fig)
    fig = flatext.plot(fixed, x="n", y="train_loss", include_not_ok=True)
    assert fig.left_out == {} and _points(fig) == len(fixed)
    plt.close(fig)
    assert main(["plot", str(out), "--x", "n", "--y", "train_loss", "--logy", "--out", str(tmp_path / "f.png")]) == 0
    assert f"left out: {n_bad} row" in capsys.readouterr().err
    # a rerun keeps the diverged rows (final: the same cell diverges again) and runs nothing
    again = flatext.sweep(_lr_grid(0.5), out=out, workers=0, progress=False)
    assert again.attrs["cells_run"] == 0 and again["status"].tolist() == fixed["status"].tolist()
    # the same grid with lr = "auto": 0.9 / lambda_max at each init, every cell interpolates
    auto = flatext.sweep(_lr_grid("auto"), out=tmp_path / "auto.parquet", workers=0, progress=False)
    assert (auto["status"] == "ok").all(), auto[["n", "seed", "reason", "polish"]]
    assert (auto["max_residual"] <= 1e-8).all() and (auto["method_lr"] == "auto").all()
    np.testing.assert_allclose(auto["lr"], 0.9 / auto["lambda_max"], rtol=1e-12)
    assert (2 / auto["lambda_max"] < 0.5).sum() >= 3  # the fixed step was above the stable one there


def test_statuses_of_the_methods_follow_their_promises(tmp_path):
    # a sweep file says lr = "0.5/lambda_max"; label_noise_sgd with a time budget stops early: not interpolating
    raw = tiny(
        methods={
            "half": {"method": "gd", "lr": "0.5/lambda_max", "max_iter": 20},
            "lnsgd": {"method": "label_noise_sgd", "lr": "auto", "noise": 0.1, "batch": 8, "max_iter": 10**9,
                      "max_seconds": 0.3},
            "memorize": {},
        },
        sweep={"name": "st", "seeds": 1, "measurements": ["train_loss", "max_residual"]},
        data={"n": 16, "d": 3, "noise": 0.0},
        model={"m": 16},
    )  # fmt: skip
    df = flatext.sweep(raw, out=tmp_path / "s.parquet", workers=0, progress=False).set_index("method")
    assert df.loc["half", "lr"] == pytest.approx(0.5 / df.loc["half", "lambda_max"], rel=1e-12)
    assert df.loc["half", "status"] == "not_interpolating" and df.loc["half", "reason"] == "max_iter"
    assert df.loc["lnsgd", "reason"] == "time_budget" and df.loc["lnsgd", "status"] == "not_interpolating"
    assert df.loc["memorize", "status"] == "ok" and df.loc["memorize", "max_residual"] <= 1e-8
    with pytest.raises(SweepConfigError, match="lambda_max"):
        load_config(tiny(methods={"gd": {"lr": "fast"}}))
