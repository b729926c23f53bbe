"""flatext study: the fits on synthetic rows (a known slope, an inconclusive one, the floor), the sample
size at a target and its exponent in d, config validation, a tiny grid end to end (rows checked against
an independent computation), resume after SIGKILL, and the Dask executor giving the same rows."""

from __future__ import annotations

import glob
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

import flatext  # noqa: E402
from flatext.cli import main as cli_main  # noqa: E402
from flatext.study import load_study, study  # noqa: E402
from flatext.study.costs import MEASURED, estimate, table_from_rows  # noqa: E402
from flatext.study.fit import FLOOR, WIDE, bootstrap_slope, target_table  # noqa: E402
from flatext.sweeps import SweepConfigError  # noqa: E402
from flatext.sweeps.cells import SWEEP_DELAY_ENV, cell_data  # noqa: E402

# A tiny grid: 2 n x 2 noise x 2 seeds = 8 cells of under a second each.
TINY = {
    "study": {"name": "tiny", "seeds": 2, "bootstrap": 200},
    "grid": {"n": [16, 32], "d": [3], "k": [1], "noise": [0.0, 0.3]},
    "model": {"m": "2n"},
    "flattest": {"max_iter": 8, "polish": "off"},
    "trainers": {"gd_max_n": 16, "gd_max_iter": 300, "lnsgd_max_n": 16, "lnsgd_steps": 200, "lnsgd_batch": 8},
}
TINY_TOML = """
[study]
name = "tiny"
seeds = 2
bootstrap = 200
[grid]
n = [16, 32]
d = [3]
k = [1]
noise = [0.0, 0.3]
[model]
m = "2n"
[flattest]
max_iter = 8
polish = "off"
[trainers]
gd_max_n = 16
gd_max_iter = 300
lnsgd_max_n = 16
lnsgd_steps = 200
lnsgd_batch = 8
"""


def _synthetic(slope, log_sd, ns=(250, 500, 1000, 2000, 4000), seeds=3, c=2.0, seed=0):
    rng = np.random.default_rng(seed)
    n = np.repeat(ns, seeds).astype(float)
    return n, c * n**slope * np.exp(log_sd * rng.standard_normal(len(n)))


# ---------------------------------------------------------------------------
# Fits
# ---------------------------------------------------------------------------


def test_known_slope_is_recovered_with_an_interval_that_covers_it():
    n, v = _synthetic(-0.5, 0.05)
    fit = bootstrap_slope(n, v, boot=1000)
    ref = np.polyfit(np.log(n), np.log(v), 1)[0]  # independent least squares
    assert fit["slope"] == pytest.approx(ref, rel=1e-12)
    assert fit["hi"] - fit["lo"] < 0.2 and fit["lo"] <= fit["boot_lo"] and fit["hi"] >= fit["boot_hi"]
    assert fit["verdict"] == "falls"
    assert fit["ns"] == [250, 500, 1000, 2000, 4000] and fit["points"] == 15
    # the 95 % interval covers the true slope on ~95 % of data sets (binomial sd 2.2 % over 100)
    covered = [
        (f["lo"] < -0.5 < f["hi"], f["boot_lo"] < -0.5 < f["boot_hi"])
        for f in (bootstrap_slope(*_synthetic(-0.5, 0.3, seed=s), boot=300, seed=s) for s in range(100))
    ]
    assert 0.88 <= np.mean([c for c, _ in covered]) <= 1.0
    assert np.mean([b for _, b in covered]) < np.mean([c for c, _ in covered])  # the bootstrap alone: too narrow


def test_noisy_rows_give_an_inconclusive_slope():
    n, v = _synthetic(-0.5, 3.0, seed=1)
    fit = bootstrap_slope(n, v, boot=1000)
    assert fit["hi"] - fit["lo"] > WIDE
    assert fit["verdict"].startswith("inconclusive (interval wider than 1")


def test_flat_rising_and_floor_verdicts():
    # the same scatter (-0.1, 0, 0.1 in log) at every n: the least-squares slope is the exact one
    n = np.repeat([250.0, 500, 1000, 2000], 3)
    scatter = np.exp(np.tile([-0.1, 0.0, 0.1], 4))
    for slope, want in ((0.0, "flat"), (0.7, "rises"), (-0.7, "falls")):
        fit = bootstrap_slope(n, 0.5 * n**slope * scatter, boot=500)
        assert fit["slope"] == pytest.approx(slope, abs=1e-12) and fit["verdict"] == want
    # below the floor at every n but the first: nothing to fit
    n, v = _synthetic(-8.0, 0.05, c=1.0)
    v[n == 250] = 1e-3
    fit = bootstrap_slope(n, v, boot=100)
    assert fit["ns"] == [250] and fit["verdict"] == "at the floor"
    assert all(x < FLOOR for x in v[n > 250])


def _rows(fn, ds=(8, 16, 32), ns=(250, 500, 1000, 2000, 4000), seeds=3, sd=0.02):
    rng = np.random.default_rng(3)
    out = []
    for d in ds:
        for n in ns:
            for s in range(seeds):
                out.append(
                    dict(
                        d=d,
                        k=1,
                        noise=0.0,
                        n=n,
                        seed=s,
                        status="ok",
                        interpolates=True,
                        population_loss_rel=fn(n, d) * math.exp(sd * rng.standard_normal()),
                    )
                )
    return pd.DataFrame(out)


def test_n_at_target_and_its_exponent_in_d():
    # loss = d / n: the target 0.01 is reached at n = 100 d, an exponent 1 in d
    t = target_table(_rows(lambda n, d: d / n), 0.01, boot=300)
    by_d = {r["d"]: r for r in t}
    for d in (8, 16, 32):
        assert by_d[d]["n_target"] == pytest.approx(100 * d, rel=0.05)
        assert by_d[d]["lo"] <= 100 * d * 1.05 and by_d[d]["hi"] >= 100 * d * 0.95
    ex = t[0]["d_exponent"]
    assert ex["slope"] == pytest.approx(1.0, abs=0.05) and ex["lo"] < 1.0 < ex["hi"]
    # never reached on the grid: inf, and no exponent
    t = target_table(_rows(lambda n, d: 1.0), 0.01, boot=50)
    assert all(math.isinf(r["n_target"]) for r in t)
    assert t[0]["d_exponent"]["verdict"].startswith("inconclusive")


# ---------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------


def test_default_config_is_the_study_asked_for():
    cfg = load_study()
    g = cfg.raw["grid"]
    assert max(g["n"]) >= 2000 and set(g["d"]) == {8, 16, 32} and {1, 2} <= set(g["k"])
    assert {0.0, 0.3} <= set(g["noise"]) and len(cfg.seeds) >= 3
    assert len(cfg.cells) == len(g["n"]) * len(g["d"]) * len(g["k"]) * len(g["noise"]) * len(cfg.seeds)
    assert len({c["cell_id"] for c in cfg.cells}) == len(cfg.cells)


@pytest.mark.parametrize(
    "over, key",
    [
        ({"grid": {"n": [0, 10]}}, "grid.n"),
        ({"grid": {"k": [4], "d": [3]}}, "grid.k"),
        ({"grid": {"nn": [3]}}, "grid.nn"),
        ({"flattest": {"polish": "yes"}}, "flattest.polish"),
        ({"study": {"seeds": 0}}, "study.seeds"),
        ({"gird": {}}, "gird"),
    ],
)
def test_bad_config_names_the_key(over, key):
    with pytest.raises(SweepConfigError, match=key.replace(".", r"\.")):
        load_study(over)


def test_dry_run_estimate_follows_the_executor_plan(capsys):
    """Small cells side by side (their sum over the workers), large cells in turn (their sum); a cell
    at a measured (n, d) and m = n costs the measured value, elsewhere its kind's power law; the laws
    reproduce the measured table within a factor 2."""
    from flatext.sweeps.executor import LARGE_CELL

    cfg = load_study()
    table = {(n, d): s for n, d, s in MEASURED}
    assert all((x["n"], x["d"]) in table and x["m"] == x["n"] for x in cfg.cells)  # the default grid was measured
    small = sum(table[x["n"], x["d"]] for x in cfg.cells if x["n"] * x["m"] * x["d"] < LARGE_CELL)
    large = sum(table[x["n"], x["d"]] for x in cfg.cells if x["n"] * x["m"] * x["d"] >= LARGE_CELL)
    assert small > 0 and large > 0
    assert estimate(cfg.cells, 2)["wall"] == pytest.approx(small / 2 + large, rel=1e-12)
    assert estimate(cfg.cells, 1)["wall"] == pytest.approx(small + large, rel=1e-12)
    (cs, as_, bs), (cl, al, bl) = estimate(cfg.cells, 2)["coef"]
    for n, d, s in MEASURED:
        c, a, b = (cl, al, bl) if n * n * d >= LARGE_CELL else (cs, as_, bs)
        assert 0.5 < math.exp(c) * n**a * d**b / s < 2.0, (n, d)
    # off the table (n = 4000; m = 2n at a measured (n, d)): the law of the cell's kind
    off = [dict(cfg.cells[0], n=4000, m=4000, d=16), dict(cfg.cells[0], n=250, m=500, d=8)]
    c2, a2, b2 = (cl, al, bl) if 250 * 500 * 8 >= LARGE_CELL else (cs, as_, bs)
    law = [math.exp(cl) * 4000**al * 16**bl, math.exp(c2) * 250**a2 * 8**b2]
    assert estimate(off, 1)["total"] == pytest.approx(sum(law), rel=1e-12)
    assert cli_main(["study", "--dry-run", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert f"{len(cfg.cells)} cells" in out and "minutes wall with 2 worker(s)" in out


def test_cost_table_from_rows_is_the_mean_per_n_and_d():
    """The mean (the estimate is a sum of cell costs), over the rows that finished."""
    rows = pd.DataFrame(
        {
            "n": [10, 10, 10, 20],
            "d": [2, 2, 2, 2],
            "time_total": [1.0, 3.0, 100.0, 5.0],
            "status": ["ok"] * 3 + ["error"],
        }
    )
    assert table_from_rows(rows) == [(10, 2, 34.7)]


def test_competitor_rows_at_the_rounding_floor_are_not_a_lower_loss():
    """A flattest network whose exact relative loss rounds to -2e-16 (noise-free, teacher recovered):
    the competitor's ratio is huge and positive, and it is not counted as the lower loss."""
    from flatext.study.report import _competitor_section

    rows = pd.DataFrame(
        {
            "status": ["ok", "ok"], "interpolates": [True, True], "noise": [0.0, 0.0],
            "population_loss_rel": [-2.2e-16, 1e-3], "orbit_min_trace": [1.0, 1.0],
            "memorizer_status": ["ok", "ok"], "memorizer_interpolates": [True, True],
            "memorizer_population_loss_rel": [0.5, 5e-4], "memorizer_orbit_min_trace": [100.0, 50.0],
        }
    )  # fmt: skip
    line = next(x for x in _competitor_section(rows) if x.startswith("| memorizer |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2] == "2" and cells[4] == "1"  # two cells; one (the second) with the lower loss
    assert cells[3].startswith("2.5e+14") and "[0.5, 5e+14]" in cells[3]  # median, [min, max]: 0.5 / 1e-15


def test_competitor_skipped_in_every_cell_is_left_out_of_the_report():
    """A grid whose every n is above gd_max_n: no GD measurement column exists; the section lists
    the memorizer only (it raised KeyError 'gd_interpolates' before)."""
    from flatext.study.report import _competitor_section

    rows = pd.DataFrame(
        {
            "status": ["ok"], "interpolates": [True], "noise": [0.0],
            "population_loss_rel": [1e-3], "orbit_min_trace": [1.0],
            "memorizer_status": ["ok"], "memorizer_interpolates": [True],
            "memorizer_population_loss_rel": [0.5], "memorizer_orbit_min_trace": [3.0],
            "gd_status": ["skipped: n = 2000 > gd_max_n = 500 (cost ~ n m d steps)"],
            "lnsgd_status": ["failed: RuntimeError: x"],
        }
    )  # fmt: skip
    lines = _competitor_section(rows)
    assert [x.split("|")[1].strip() for x in lines if x.startswith("| ") and "---" not in x][1:] == ["memorizer"]


def test_rows_from_different_code_are_reported():
    """Rows resumed after the package changed carry two flatext_source digests: study.md says so."""
    from flatext.study.report import _counts

    rows = pd.DataFrame({"status": ["ok"] * 3, "flatext_source": ["aaa", "aaa", "bbb"]})
    lines = _counts(rows)
    assert any("different code" in x and "aaa x2" in x and "bbb x1" in x for x in lines), lines
    assert not any("different code" in x for x in _counts(rows.assign(flatext_source="aaa")))


# ---------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------


def test_tiny_study_end_to_end(tmp_path):
    from flatext.info import source_digest

    df, fits = study(TINY, out=str(tmp_path), workers=0, progress=False)
    assert len(df) == 8 and (df["status"] == "ok").all()
    for name in ("study.md", "rows.parquet", "rows.csv", "loss_vs_n.png", "trace_ratio_vs_n.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert len(pd.read_csv(tmp_path / "rows.csv")) == 8
    md = (tmp_path / "study.md").read_text()
    for s in fits["slopes"]:
        assert f"| {s['d']} | {s['k']} | {s['noise']:g} |" in md
    # rows against an independent computation: the memorizer on the cell's own data
    cfg = load_study(TINY)
    checked = 0
    for cell in cfg.cells:
        row = df[df["cell_id"] == cell["cell_id"]].iloc[0]
        data = cell_data(cell)
        if row["memorizer_status"] != "ok":  # a failure is recorded, and is the function's own
            assert row["memorizer_status"].startswith("failed: ValueError")
            with pytest.raises(ValueError):
                flatext.memorizing_interpolator(data["X"], data["y"])
            continue
        checked += 1
        W, a = flatext.memorizing_interpolator(data["X"], data["y"])
        pl = flatext.population_loss(W, a, data["teacher"], method="exact").value
        null = flatext.population_loss(np.zeros((1, 3)), np.zeros(1), data["teacher"], method="exact").value
        assert row["memorizer_population_loss_rel"] == pytest.approx(pl / null, rel=1e-9)
        assert row["trace_ratio_memorizer"] == pytest.approx(row["memorizer_orbit_min_trace"] / row["orbit_min_trace"])
        gd_run = cell["n"] <= 16
        assert (row["gd_status"] != "ok" or gd_run) and (row["gd_status"].startswith("skipped") != gd_run)
    assert checked >= 4
    assert df["flattest_method"].notna().all() and df["flattest_reason"].notna().all()
    assert df["flatext_source"].eq(source_digest()).all() and "different code" not in md


def _parts(parts):
    files = glob.glob(os.path.join(parts, "part-*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()


def test_resume_after_sigkill_does_not_recompute_finished_cells(tmp_path):
    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(TINY_TOML)
    out = tmp_path / "run"
    parts = str(out / "rows.parquet.parts")
    env = dict(os.environ, OMP_NUM_THREADS="1", **{SWEEP_DELAY_ENV: "0.4"})  # the flatext this test imports
    cmd = [sys.executable, "-m", "flatext", "study", str(cfg_path), "--out", str(out), "--workers", "1"]
    proc = subprocess.Popen(cmd + ["--no-progress"], env=env, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(_parts(parts)) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # the study and its worker process
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    first = _parts(parts)
    assert 2 <= len(first) < 8 and not (out / "study.md").exists()
    df, _ = study(str(cfg_path), out=str(out), workers=0, progress=False)
    assert len(df) == 8 and (df["status"] == "ok").all()
    assert df.attrs["cells_run"] == 8 - len(first)
    # the finished cells' rows are the killed run's (its worker's pid), not recomputed here
    kept = df.set_index("cell_id").loc[first["cell_id"]]
    assert (kept["pid"].to_numpy() == first["pid"].to_numpy()).all()
    assert (kept["pid"] != os.getpid()).all()
    assert (df.set_index("cell_id").drop(index=first["cell_id"])["pid"] == os.getpid()).all()


def test_local_dask_cluster_gives_the_same_rows(tmp_path):
    pytest.importorskip("distributed")
    small = dict(TINY, grid=dict(TINY["grid"], noise=[0.3]))
    a, _ = study(small, out=str(tmp_path / "local"), workers=0, progress=False)
    b, _ = study(small, out=str(tmp_path / "dask"), local_cluster=1, progress=False)
    volatile = {"hostname", "pid", "worker"}
    cols = [c for c in a.columns if c not in volatile and not c.startswith("time_") and not c.endswith("_seconds")]
    pd.testing.assert_frame_equal(
        a[cols].sort_values("cell_id").reset_index(drop=True),
        b[cols].sort_values("cell_id").reset_index(drop=True),
    )
    assert b["worker"].str.startswith("tcp://").all()


def test_method_and_time_budget_are_passed_to_the_search():
    from flatext.study.cell import has_method_keyword
    from flatext.sweeps.cells import run_cell

    if not has_method_keyword():
        pytest.skip("flattest_interpolator has no method keyword in this tree")
    over = dict(TINY, flattest={"method": "manifold", "max_seconds": 1e-9, "max_iter": 50, "polish": "off"})
    cell = load_study(over).cells[0]
    row = run_cell(cell)
    assert row["status"] == "ok", row["error"]
    assert row["flattest_method"] == "manifold" and row["flattest_result_method"] == "manifold"
    assert row["flattest_reason"] == "time_budget" and row["flattest_iterations"] < 50
