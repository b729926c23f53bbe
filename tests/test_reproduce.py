"""`flatext reproduce --quick`: the paper's claims (1)-(3) hold on the computed numbers."""
import csv
import os
import subprocess
import sys

import pytest

from flatext.reproduce import ReproduceConfig, reproduce


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("repro"))
    rows, checks = reproduce(ReproduceConfig.quick_config(), out=out, progress=False, echo=lambda *a: None)
    return out, rows, checks


def test_outputs_written(quick_run):
    out, rows, _ = quick_run
    for f in ("results.csv", "results.md", "claims.md", "claim1_rescaling.png",
              "claim2_flatness_vs_generalization.png", "claim4_noise_and_n.png"):
        assert os.path.getsize(os.path.join(out, f)) > 0, f
    with open(os.path.join(out, "results.csv")) as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)


def test_claim1_rescaling_changes_trace_not_function(quick_run):
    _, rows, _ = quick_run
    c1 = [r for r in rows if r.claim == "1"]
    traces = [r.trace for r in c1]
    assert max(traces) / min(traces) > 1e4
    pops = [r.pop_loss for r in c1]
    assert max(pops) - min(pops) <= 1e-8 * max(pops)
    omins = [r.orbit_min_trace for r in c1]
    assert max(omins) - min(omins) <= 1e-8 * min(omins)
    assert all(r.max_residual <= 1e-8 for r in c1)
    # the balanced point attains the orbit minimum and is the least trace of the orbit
    bal = [r for r in c1 if r.method.startswith("balanced")][0]
    assert bal.trace == pytest.approx(bal.orbit_min_trace, rel=1e-9)
    assert bal.trace <= min(traces) * (1 + 1e-12)


def test_claims_2_and_3_flattest_beats_memorizer_and_others(quick_run):
    _, rows, checks = quick_run
    rep = [r for r in rows if r.claim == "2" and "not representable" not in r.teacher]
    flat = min((r for r in rep if r.method == "flattest"), key=lambda r: r.orbit_min_trace)
    mem = [r for r in rep if r.method == "memorizer"][0]
    assert all(r.max_residual <= 1e-8 for r in rep if r.method in ("flattest", "memorizer"))
    assert flat.orbit_min_trace < min(r.orbit_min_trace for r in rep if r.method != "flattest")
    assert flat.rel_pop_loss < min(r.rel_pop_loss for r in rep if r.method != "flattest")
    assert mem.orbit_min_trace > 1.5 * flat.orbit_min_trace
    assert mem.rel_pop_loss > 0.1 > 10 * flat.rel_pop_loss
    # the non-representable teacher keeps an approximation error for every interpolator
    edge = [r for r in rows if r.claim == "2" and "not representable" in r.teacher]
    assert edge and min(r.rel_pop_loss for r in edge) > 0.05
    assert all(ok for c, _, ok in checks if c in ("1", "2", "3")), checks


def test_claim4_noise_and_sample_size(quick_run):
    _, rows, checks = quick_run
    c4 = [r for r in rows if r.claim == "4"]
    assert all(r.max_residual <= 1e-8 for r in c4)
    clean = sorted((r for r in c4 if r.noise == 0.0), key=lambda r: r.n)
    assert clean[-1].rel_pop_loss < clean[0].rel_pop_loss
    nmax = max(r.n for r in c4)
    noisy = [r for r in c4 if r.n == nmax and r.noise > 0]
    assert min(r.rel_pop_loss for r in noisy) > [r for r in clean if r.n == nmax][0].rel_pop_loss
    assert [c for c, _, _ in checks].count("4") == 2 and all(ok for c, _, ok in checks if c == "4")


def test_rerun_resumes_from_saved_steps(quick_run, tmp_path):
    out, rows, _ = quick_run
    rows2, _ = reproduce(ReproduceConfig.quick_config(), out=out, progress=False, echo=lambda *a: None)
    assert [r.__dict__ for r in rows2] == [r.__dict__ for r in rows]
    # a half-written step file (a killed run) is ignored and recomputed
    step = os.path.join(out, "steps", "claim1.json")
    with open(step, "w") as f:
        f.write('{"fingerprint": ')
    rows3, _ = reproduce(ReproduceConfig.quick_config(), out=out, progress=False, echo=lambda *a: None)
    assert [r.trace for r in rows3 if r.claim == "1"] == [r.trace for r in rows if r.claim == "1"]


def test_cli_help_and_info():
    out = subprocess.run([sys.executable, "-m", "flatext", "reproduce", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--quick" in out.stdout
    out = subprocess.run([sys.executable, "-m", "flatext", "info"], capture_output=True, text=True)
    assert out.returncode == 0 and "openmp: True" in out.stdout
