"""`flatext reproduce`: the run, its outputs, and checks that fail on constructed counter-examples."""

import csv
import dataclasses
import math
import os
import subprocess
import sys

import flatext as fx
import numpy as np
import pytest
from flatext.reproduce import (
    ReproduceConfig,
    check_claim1,
    check_claim2,
    check_claim3,
    check_claim4,
    check_claim5,
    reproduce,
)
from flatext.reproduce.claims import fit_slope
from flatext.reproduce.methods import MEMORIZERS, REFERENCE, SEARCH, START
from flatext.reproduce.problems import Problem, interpolates, measure_row
from flatext.reproduce.runner import exit_status
from flatext.reproduce.studies import n_at_target, sample_complexity
from flatext.teachers import with_approximation_error


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("repro"))
    rows, checks = reproduce(ReproduceConfig.quick_config(), out=out, progress=False, echo=lambda *a: None)
    return out, rows, checks


def _replace(rows, pred, **changes):
    return [dataclasses.replace(r, **changes) if pred(r) else r for r in rows]


def _held(checks, claim, applies=True):
    return [c.holds for c in checks if c.claim == claim and c.holds is not None and c.applies == applies]


# --------------------------------------------------------------------------- the run
def test_outputs_written(quick_run):
    out, rows, _ = quick_run
    for f in (
        "results.parquet",
        "results.csv",
        "results.md",
        "claims.md",
        "claim1_rescaling.png",
        "claim2_flatness_vs_generalization.png",
        "claim4_noise_and_n.png",
        "claim5_regime.png",
    ):
        assert os.path.getsize(os.path.join(out, f)) > 0, f
    with open(os.path.join(out, "results.csv")) as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)
    import pandas as pd

    assert len(pd.read_parquet(os.path.join(out, "results.parquet"))) == len(rows)
    text = open(os.path.join(out, "claims.md")).read()
    for c in ("Claim 1", "Claim 2", "Claim 3", "Claim 4", "Claim 5", "would have failed it", "seeds"):
        assert c in text


def test_every_claim_checked_on_several_seeds(quick_run):
    _, rows, checks = quick_run
    cfg = ReproduceConfig.quick_config()
    for claim in "12345":
        cs = [c for c in checks if c.claim == claim and c.holds is not None]
        assert cs, claim
        assert all(c.seeds >= cfg.seeds for c in cs), [(c.statement, c.seeds) for c in cs]
    assert len({r.seed for r in rows if r.claim == "2"}) == cfg.seeds


def test_methods_labelled_and_search_start_not_a_competitor(quick_run):
    _, rows, _ = quick_run
    meths = {r.method for r in rows if r.claim == "2" and r.representable}
    for m in (
        "gd, small init",
        "gd, small init + GN polish",
        "gd, large init",
        "gd, large init + GN polish",
        "sam",
        "sam + GN polish",
        "label_noise_sgd",
        "label_noise_sgd + GN polish",
        "memorizer",
        REFERENCE,
        START,
        SEARCH,
    ):
        assert m in meths, m
    # the trainers' rows are measured where they stopped, the polish rows on the interpolation set
    for r in rows:
        if r.method.endswith("+ GN polish") and r.stop == "converged":
            assert interpolates(r)
    # a search start made flatter than everything never counts: claim 2 is unchanged
    rep = [r for r in rows if r.claim == "2"]
    tampered = _replace(rep, lambda r: r.method == START, orbit_min_trace=1e-6, rel_pop_loss=0.0)
    assert [c.holds for c in check_claim2(tampered)] == [c.holds for c in check_claim2(rep)]


def test_max_iter_stops_flagged(quick_run):
    _, rows, _ = quick_run
    gd = [r for r in rows if r.method == "gd, large init"]
    # quick GD from a large init cannot reach loss 1e-16 in 3000 steps: flagged, not hidden
    assert gd and all(r.stop in ("max_iter", "converged", "diverged") for r in gd)
    assert any(r.stop == "max_iter" for r in gd)
    # each trainer stopped at its own budget
    cfg = ReproduceConfig.quick_config()
    budget = {
        "gd, small init": cfg.gd_small_max_iter,
        "gd, large init": cfg.gd_max_iter,
        "sam": cfg.gd_max_iter,
        "label_noise_sgd": cfg.lnsgd_steps,
    }
    for r in rows:
        if r.method in budget and r.stop.startswith("max_iter") and r.claim == "2":
            assert f" {budget[r.method]} steps" in r.note, (r.method, r.note)
    assert all(r.stop for r in rows if r.method == SEARCH)


def test_exit_status_matches_claims_md(quick_run):
    out, _, checks = quick_run
    text = open(os.path.join(out, "claims.md")).read()
    assert (exit_status(checks) == 1) == (" FAILED" in text)


# --------------------------------------------------------------------------- counter-examples
def test_claim1_fails_on_a_rescaling_below_the_orbit_minimum(quick_run):
    _, rows, _ = quick_run
    c1 = [r for r in rows if r.claim == "1"]
    assert all(_held(check_claim1(c1), "1"))
    low = _replace(
        c1, lambda r: r.method.startswith("random") and r.start == 0 and r.seed == 0, trace=0.5 * c1[0].orbit_min_trace
    )
    assert not all(_held(check_claim1(low), "1"))
    moved = _replace(c1, lambda r: r.method.startswith("global") and r.seed == 1, pop_loss=c1[0].pop_loss * 1.01)
    assert not all(_held(check_claim1(moved), "1"))
    omin = _replace(
        c1, lambda r: r.method.startswith("global") and r.seed == 0, orbit_min_trace=c1[0].orbit_min_trace * 1.001
    )
    assert not all(_held(check_claim1(omin), "1"))


def test_claim2_fails_when_the_flattest_row_is_replaced_by_a_sharper_interpolator(quick_run):
    _, rows, _ = quick_run
    c2 = [r for r in rows if r.claim == "2" and r.representable]
    sharper = []
    for r in c2:
        if r.method == SEARCH:
            gd = [g for g in c2 if g.seed == r.seed and g.method == "gd, large init + GN polish"][0]
            r = dataclasses.replace(gd, method=SEARCH, start=r.start)
        sharper.append(r)
    held = [c.holds for c in check_claim2(sharper) if c.applies and c.holds is not None]
    assert held and not held[0]  # no longer the flattest
    # a flattest point that generalizes worse than a competitor fails the second check
    worse = _replace(c2, lambda r: r.method == SEARCH, rel_pop_loss=10.0)
    held = [c.holds for c in check_claim2(worse) if c.applies and c.holds is not None]
    assert not held[1]


def test_claim2_non_representable_teacher_reported_not_counted(quick_run):
    _, rows, checks = quick_run
    edge = [c for c in checks if c.claim == "2" and not c.applies]
    assert len(edge) == 2 and all("not representable" in c.statement for c in edge)
    assert all(c.holds is not None for c in edge)  # computed and shown, whichever way it went


def test_claim3_fails_on_a_flat_or_generalizing_memorizer(quick_run):
    _, rows, _ = quick_run
    assert _held(check_claim3(rows), "3")
    flat = {}
    for r in rows:
        if r.method == SEARCH and r.claim in ("2", "5") and r.eps == 0.0:
            key = (r.claim, r.noise, r.seed)
            flat[key] = min(flat.get(key, math.inf), r.orbit_min_trace)
    tampered = _replace(rows, lambda r: r.method == MEMORIZERS[0], rel_pop_loss=0.0)
    tampered = [
        dataclasses.replace(r, orbit_min_trace=0.5 * flat[(r.claim, r.noise, r.seed)])
        if r.method == MEMORIZERS[0] and (r.claim, r.noise, r.seed) in flat
        else r
        for r in tampered
    ]
    assert not any(_held(check_claim3(tampered), "3")[:2])


def test_claim4_fails_when_the_loss_does_not_fall_or_noise_does_not_raise_it(quick_run):
    _, rows, _ = quick_run
    c4 = [r for r in rows if r.claim == "4"]
    ns = sorted({r.n for r in c4})
    rising = _replace(c4, lambda r: r.noise == 0.0 and r.n == ns[-1], rel_pop_loss=1.0)
    assert not _held(check_claim4(rising), "4")[0]
    quiet = _replace(c4, lambda r: r.noise > 0, rel_pop_loss=0.0)
    assert not _held(check_claim4(quiet), "4")[1]


def test_claim5_fails_below_the_approximation_error_or_without_growth(quick_run):
    _, rows, _ = quick_run
    c5 = [r for r in rows if r.claim == "5"]
    assert all(_held(check_claim5(c5), "5"))
    below = _replace(
        c5, lambda r: r.method == SEARCH and r.eps > 0 and r.seed == 0, pop_loss=0.5 * max(r.approx_error for r in c5)
    )
    assert not _held(check_claim5(below), "5")[0]
    flat = _replace(c5, lambda r: r.method == SEARCH and r.eps > 0 and r.noise == 0.0, rel_pop_loss=0.0)
    assert not _held(check_claim5(flat), "5")[1]


# --------------------------------------------------------------------------- pieces
def test_interpolates_scales_by_the_label_scale():
    cfg = ReproduceConfig.quick_config()
    prob = Problem(cfg, cfg.teacher, 30, seed=0)
    W0, a0 = prob.init(1.0, 0)
    p = fx.find_interpolator(W0, a0, prob.X, prob.y, max_iter=200)
    prob.y = prob.y * 1e9  # the same network with a scaled by 1e9 interpolates the scaled labels
    prob.label_scale = max(1.0, float(np.max(np.abs(prob.y))))
    r = measure_row(prob, "2", "x", p.W, p.a * 1e9)
    assert r.max_residual > 1e-8  # absolute residual large: labels are ~1e9
    assert interpolates(r)  # relative to the label scale it interpolates
    assert r.rel_max_residual == pytest.approx(r.max_residual / prob.label_scale)
    assert not interpolates(dataclasses.replace(r, rel_max_residual=2e-8))


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_approximation_error_teacher_is_orthogonal_to_homogeneous_networks(power):
    """E[(f - f*)^2] = E[(f - f_rep)^2] + eps^2 (2d + p^2) for every network f (exact integrals), and the
    extra part has mean 0 against a network by Monte Carlo."""
    d, eps = 4, 0.3
    links = ["relu2", "relu2"] if power == 2 else ["relu", "abs"]  # p-homogeneous teachers
    base = fx.SumOfSingleIndex.random(d, links, weights=[1.0, 0.5], seed=2)
    te = with_approximation_error(base, eps, power=power)
    assert te.approximation_error == pytest.approx(eps**2 * (2 * d + power**2))
    rng = np.random.default_rng(0)
    for _ in range(3):
        W, a = rng.standard_normal((6, d)), rng.standard_normal(6)
        p_base = fx.population_loss(W, a, base, power=power).value
        p_new = fx.population_loss(W, a, te, power=power).value
        assert p_new == pytest.approx(p_base + te.approximation_error, rel=1e-10)
    # Monte Carlo: g = (f* - f_rep) / eps is uncorrelated with the network and has E g^2 = 2d + p^2
    X = rng.standard_normal((400_000, d))
    g = (te(X) - base(X)) / eps
    f = fx.forward(W, a, X, power=power)
    prod = g * f
    assert abs(prod.mean()) <= 5 * prod.std() / math.sqrt(len(prod))
    assert np.mean(g**2) == pytest.approx(2 * d + power**2, rel=0.03)
    with pytest.raises(ValueError, match="eps"):
        with_approximation_error(base, -1.0)
    with pytest.raises(TypeError, match="teacher"):
        with_approximation_error(fx.MultiIndex.random(d, 1, "relu"), 0.1)


def test_teacher_network_interpolates_noise_free_labels():
    cfg = ReproduceConfig.quick_config()
    prob = Problem(cfg, cfg.teacher, 30, seed=1)
    W, a = prob.teacher_network()
    np.testing.assert_allclose(fx.forward(W, a, prob.X), prob.y, atol=1e-12)
    assert abs(prob.pop(W, a)) <= 1e-12


def test_fit_slope_and_n_at_target_on_exact_power_laws():
    ns = [50, 100, 200, 400] * 3
    slope, se = fit_slope(ns, [3.0 * n**-1.5 for n in ns])
    assert slope == pytest.approx(-1.5) and se < 1e-10
    grid = [100, 200, 400]
    assert n_at_target(grid, [1e-1, 1e-2, 1e-3], 1e-2) == pytest.approx(200)
    assert n_at_target(grid, [1e-1, 1e-2, 1e-3], math.sqrt(1e-1 * 1e-2)) == pytest.approx(math.sqrt(100 * 200))
    assert n_at_target(grid, [1e-1, 1e-1, 1e-1], 1e-2) == math.inf


def test_full_grid_in_miniature(tmp_path):
    """--full on a miniature grid: the sample-complexity table and figure are produced."""
    cfg = ReproduceConfig.quick_config(
        full=True,
        seeds=1,
        full_ds=(6,),  # d > 5: no convex polish, as in the quick and default runs
        full_ks=(1, 2),
        full_ns=(20, 40),
        sample_ns=(30,),
        sample_noise=(0.0,),
        regime_eps=(0.0,),
        regime_noise=(0.0,),
    )
    from flatext.reproduce.steps import full_rows

    rows = full_rows(cfg, 6, 1, 20, 0) + full_rows(cfg, 6, 1, 40, 0)
    sc = sample_complexity(rows, target=1e-2)
    assert list(sc) == [(6, 1)] and sc[(6, 1)]["ns"] == [20, 40]


def test_rerun_resumes_from_the_store(quick_run):
    out, rows, _ = quick_run
    msgs = []
    rows2, _ = reproduce(ReproduceConfig.quick_config(), out=out, progress=False, echo=msgs.append)
    assert [repr(r) for r in rows2] == [repr(r) for r in rows]  # repr: NaN fields compare equal
    assert "steps reused from the store" in msgs[-1]
    parts = os.listdir(os.path.join(out, "results.parquet.parts"))
    n_parts = len(parts)
    reproduce(ReproduceConfig.quick_config(), out=out, progress=False, echo=lambda *a: None)
    assert len(os.listdir(os.path.join(out, "results.parquet.parts"))) == n_parts  # nothing recomputed


def test_cli_help_and_quick_power2_reports_honestly(tmp_path):
    out = subprocess.run([sys.executable, "-m", "flatext", "reproduce", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--quick" in out.stdout and "--full" in out.stdout
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "flatext",
            "reproduce",
            "--quick",
            "--power",
            "2",
            "--no-progress",
            "--out",
            str(tmp_path / "p2"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode in (0, 1), run.stderr[-2000:]
    text = open(tmp_path / "p2" / "claims.md").read()
    assert "p = 2" in text
    assert (run.returncode == 1) == (" FAILED" in text)  # a failure is reported with its numbers, never hidden
