"""The study's configuration: an embedded default, TOML files, validation and the grid of cells.

A study file (TOML; every key optional, the default below fills the rest)::

    [study]
    name = "default"
    seeds = 3                  # a count, or a list of seeds
    target = 0.1               # relative population loss whose sample size is reported
    bootstrap = 2000           # bootstrap resamples of the fits

    [grid]
    n = [250, 500, 1000, 2000] # sample sizes
    d = [8, 16, 32]            # input dimensions
    k = [1, 2]                 # teacher directions: relu, abs, relu with weights 1, 0.5, 0.25
    noise = [0.0, 0.3]         # label noise (standard deviation)

    [model]
    m = "1n"                   # width: an integer, or a multiple of n (below n: random starts of noisy
                               # labels at small d often cannot be projected onto the interpolation set)
    power = 1.0                # ReLU (the cells method and the convex polish are ReLU-only)

    [flattest]
    method = "auto"            # passed to flatext.flattest_interpolator (method=): "auto" | "manifold" | "cells"
    # max_seconds = 300        # optional: flattest_interpolator's time budget per search
    max_iter = 40
    polish = "auto"            # "auto" | "convex" | "off"

    [trainers]                 # GD and label-noise SGD, only where affordable
    gd_max_n = 500             # cells with n above this skip GD (the row says so)
    gd_max_iter = 3000
    lnsgd_max_n = 250
    lnsgd_steps = 3000
    lnsgd_noise = 0.5
    lnsgd_batch = 32
    lnsgd_lr = 0.02

Each cell is one (n, d, k, noise, seed) data set: the teacher's directions, the
inputs, the labels' noise and the search's start all derive from the seed. The
cells are the sweeps' cells (:mod:`flatext.sweeps.cells`) with the method
``"study"`` (:mod:`flatext.study.cell`), so they run on the sweeps' executors and
resumable store.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List

from ..reproduce.config import index_teacher_links
from ..sweeps.config import SweepConfig, SweepConfigError, _pos_int, _resolve_width, _width, cell_id, read_toml

__all__ = ["StudyConfig", "load_study", "DEFAULT", "QUICK", "STUDY_MEASUREMENTS"]

# What the sweeps' measurement step records of the flattest interpolator (the cell's own network).
STUDY_MEASUREMENTS = ["train_loss", "max_residual", "trace", "orbit_min_trace", "population_loss", "time"]

DEFAULT: Dict[str, Dict[str, Any]] = {
    "study": {"name": "default", "seeds": 3, "target": 0.1, "bootstrap": 2000},
    "grid": {"n": [250, 500, 1000, 2000], "d": [8, 16, 32], "k": [1, 2], "noise": [0.0, 0.3]},
    "model": {"m": "1n", "power": 1.0},
    "flattest": {"method": "auto", "max_iter": 40, "polish": "auto"},
    "trainers": {
        "gd_max_n": 500,
        "gd_max_iter": 3000,
        "lnsgd_max_n": 250,
        "lnsgd_steps": 3000,
        "lnsgd_noise": 0.5,
        "lnsgd_batch": 32,
        "lnsgd_lr": 0.02,
    },
}


def _overridden(base, over):
    return {sec: dict(tbl, **over.get(sec, {})) for sec, tbl in base.items()}


# `flatext study --quick`: a tiny grid (minutes), the same code path.
QUICK: Dict[str, Dict[str, Any]] = _overridden(
    DEFAULT,
    {
        "study": {"name": "quick", "bootstrap": 1000},
        "grid": {"n": [40, 80, 160], "d": [4, 8]},
        "model": {"m": "2n"},
        "flattest": {"max_iter": 60, "polish": "off"},
        "trainers": {"gd_max_n": 80, "gd_max_iter": 2000, "lnsgd_max_n": 40, "lnsgd_steps": 2000, "lnsgd_batch": 16},
    },
)


def _num(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return f"expected a number, got {type(v).__name__} {v!r}"
    return None


def _pos(v):
    return _num(v) or (None if v > 0 else f"must be > 0, got {v}")


def _nonneg(v):
    return _num(v) or (None if v >= 0 else f"must be >= 0, got {v}")


def _choice(*opts):
    return lambda v: None if v in opts else f"expected one of {list(opts)}, got {v!r}"


def _str(v):
    return None if isinstance(v, str) else f"expected a string, got {type(v).__name__} {v!r}"


# section -> key -> (checker, list allowed (a grid axis))
_SCHEMA = {
    "study": {"name": (_str, False), "seeds": (None, False), "target": (_pos, False), "bootstrap": (_pos_int, False)},
    "grid": {"n": (_pos_int, True), "d": (_pos_int, True), "k": (_pos_int, True), "noise": (_nonneg, True)},
    "model": {"m": (_width, False), "power": (_choice(1.0, 1), False)},
    "flattest": {
        "method": (_str, False),
        "max_seconds": (lambda v: None if v is None else _pos(v), False),
        "max_iter": (_pos_int, False),
        "polish": (_choice("auto", "convex", "off"), False),
    },
    "trainers": {
        "gd_max_n": (_pos_int, False),
        "gd_max_iter": (_pos_int, False),
        "lnsgd_max_n": (_pos_int, False),
        "lnsgd_steps": (_pos_int, False),
        "lnsgd_noise": (_pos, False),
        "lnsgd_batch": (_pos_int, False),
        "lnsgd_lr": (_pos, False),
    },
}


@dataclass
class StudyConfig:
    """A validated study: ``raw`` (every section filled in) and ``cells`` (the sweeps' cell dicts, in grid order)."""

    source: str
    raw: Dict[str, Dict[str, Any]]
    cells: List[dict] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.raw["study"]["name"]

    def grid(self, key: str) -> List:
        return list(self.raw["grid"][key])

    @property
    def seeds(self) -> List[int]:
        return list(self.raw["study"]["seeds"])

    def sweep_config(self) -> SweepConfig:
        """The cells as a sweep (for :func:`flatext.sweep`)."""
        return SweepConfig(self.source, f"study {self.name}", self.cells, STUDY_MEASUREMENTS, self.raw)


def _merge(base, over, source):
    out = copy.deepcopy(base)
    if not isinstance(over, dict):
        raise SweepConfigError(source, "<root>", "expected a table")
    for sec, tbl in over.items():
        if sec not in _SCHEMA:
            raise SweepConfigError(source, sec, f"unknown section; allowed: {sorted(_SCHEMA)}")
        if not isinstance(tbl, dict):
            raise SweepConfigError(source, sec, f"expected a table, got {type(tbl).__name__}")
        for k, v in tbl.items():
            if k not in _SCHEMA[sec]:
                raise SweepConfigError(source, f"{sec}.{k}", f"unknown key; allowed: {sorted(_SCHEMA[sec])}")
            out[sec][k] = v
    return out


def _check(raw, source):
    for sec, keys in _SCHEMA.items():
        for k, (chk, axis) in keys.items():
            if k not in raw[sec]:  # optional keys without a default (flattest.max_seconds)
                continue
            v = raw[sec][k]
            name = f"{sec}.{k}"
            if axis:
                if not isinstance(v, list) or not v:
                    raise SweepConfigError(source, name, f"expected a non-empty list, got {v!r}")
                if len(set(v)) != len(v):
                    raise SweepConfigError(source, name, f"repeated values in {v!r}")
            for x in v if axis else [v]:
                msg = chk(x) if chk else None
                if msg:
                    raise SweepConfigError(source, name, msg)
    seeds = raw["study"]["seeds"]
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1:
        raw["study"]["seeds"] = list(range(seeds))
    elif not (
        isinstance(seeds, list)
        and seeds
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        and len(set(seeds)) == len(seeds)
    ):
        raise SweepConfigError(
            source, "study.seeds", f"expected a count >= 1 or a list of distinct seeds, got {seeds!r}"
        )
    for k in raw["grid"]["k"]:
        for d in raw["grid"]["d"]:
            if k > d:
                raise SweepConfigError(source, "grid.k", f"{k} orthonormal directions do not fit in d = {d}")
    raw["grid"]["noise"] = [float(v) for v in raw["grid"]["noise"]]
    raw["model"]["power"] = float(raw["model"]["power"])


def load_study(config=None, *, quick: bool = False) -> StudyConfig:
    """The study of a TOML file, a dict, or (None) the embedded default; ``quick`` starts from the quick grid.

    Raises :class:`flatext.sweeps.SweepConfigError` naming the file and the key.
    """
    if isinstance(config, StudyConfig):
        return config
    base = QUICK if quick else DEFAULT
    if config is None:
        source, over = ("<quick>" if quick else "<default>"), {}
    elif isinstance(config, dict):
        source, over = "<dict>", config
    elif isinstance(config, (str, os.PathLike)):
        source = os.fspath(config)
        over = read_toml(source)
    else:
        raise TypeError(f"config: expected a path, a dict or None, got {type(config).__name__}")
    raw = _merge(base, over, source)
    _check(raw, source)
    return StudyConfig(source, raw, _cells(raw))


def _cells(raw) -> List[dict]:
    from .cell import STUDY_KIND, StudyMarker

    g, model = raw["grid"], raw["model"]
    params = dict(raw["flattest"], **raw["trainers"])
    params = {("flattest_" + k if k in raw["flattest"] else k): v for k, v in params.items()}
    cells = []
    for k in g["k"]:
        links, weights = index_teacher_links(k, model["power"])
        for d in g["d"]:
            for n in g["n"]:
                for noise in g["noise"]:
                    for seed in raw["study"]["seeds"]:
                        cell = {
                            "teacher": {
                                "kind": "sum_of_single_index",
                                "links": list(links),
                                "weights": list(weights),
                                "seed": int(seed),  # each seed its own directions
                                "name": f"k={k}",
                            },
                            "n": int(n),
                            "d": int(d),
                            "m": _resolve_width(model["m"], n),
                            "m_spec": str(model["m"]),
                            "noise": float(noise),
                            "inputs": "gaussian",
                            "power": model["power"],
                            "neg": 0.0,
                            "init_scale": 1.0,
                            "dtype": "float64",
                            "method": STUDY_KIND,
                            "method_kind": STUDY_KIND,
                            "method_params": dict(params),
                            "measurements": list(STUDY_MEASUREMENTS),
                            "population": {"method": "exact", "n_samples": 0},
                            "seed": int(seed),
                        }
                        cell["cell_id"] = cell_id(cell)
                        cell["k"] = int(k)
                        cell["study_marker"] = StudyMarker()
                        cells.append(cell)
    return cells
