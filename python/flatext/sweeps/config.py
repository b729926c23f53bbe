"""Sweep files: parse, validate and expand a TOML grid into cells.

A sweep file names a grid (see ``docs/sweeps.md`` for the full schema)::

    [sweep]
    name = "demo"
    seeds = 3                         # or a list of ints
    measurements = ["train_loss", "trace", "orbit_min_trace", "population_loss", "time"]

    [teacher]                         # or [[teacher]] tables: one grid axis over teachers
    kind = "sum_of_single_index"      # | "multi_index" | "planted"
    links = ["relu", "abs"]
    weights = [1.0, 0.5]
    seed = 0                          # directions; list = grid axis

    [data]
    n = [16, 32]                      # a list is a grid axis
    d = 3
    noise = 0.0
    inputs = "gaussian"

    [model]
    m = "2n"                          # int, or "<k>n" (k times n)
    power = 1.0
    neg = 0.0
    init_scale = [0.1, 1.0]
    dtype = "float64"

    [methods.gd_small]                # a method variant: its table name labels it
    method = "gd"                     # the algorithm (defaults to the table name)
    init_scale = 0.01                 # overrides model.init_scale for this variant
    lr = "auto"                       # 0.9 / lambda_max at the init; or "F/lambda_max", or a number

    [population]
    method = "exact"                  # | "mc"
    n_samples = 100000

The grid is the cartesian product of every list-valued key (per method
variant, its own list-valued parameters). Everything is checked before any
work: an unknown key, a wrong type or an impossible value raises
:class:`SweepConfigError` naming the key and the file.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import re

from ..measure import MEASUREMENTS as _MEASURE_NAMES
from ..stepsize import parse_lr
from ..teachers import INPUTS
from ..teachers import LINKS as _LINKS


def _toml():
    """tomllib (Python >= 3.11) or tomli, imported only when a file is read."""
    try:
        import tomllib

        return tomllib
    except ModuleNotFoundError:  # pragma: no cover - py < 3.11
        try:
            import tomli

            return tomli
        except ModuleNotFoundError:
            raise ImportError(
                "reading sweep files on Python < 3.11 needs tomli: pip install 'flatext[sweep]'"
            ) from None


__all__ = [
    "SweepConfigError",
    "SweepConfig",
    "load_config",
    "METHODS",
    "MEASUREMENTS",
    "cell_id",
]


class SweepConfigError(ValueError):
    """A sweep file is invalid; the message names the file and the key."""

    def __init__(self, source, key, message):
        self.source = source
        self.key = key
        super().__init__(f"{source}: key '{key}': {message}")


# ---------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------

# One list each: the teachers module's named links and input laws, flatext.measure's measurements.
LINKS = tuple(_LINKS)
MEASUREMENTS = (*_MEASURE_NAMES, "time")
DEFAULT_MEASUREMENTS = ["train_loss", "max_residual", "trace", "orbit_min_trace", "population_loss", "time"]


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return (isinstance(v, (int, float))) and not isinstance(v, bool)


# A checker returns None when fine, else a message. Types: "int", "num", "bool", "str".
def _pos_int(v):
    if not _is_int(v):
        return f"expected an integer, got {type(v).__name__} {v!r}"
    if v < 1:
        return f"must be >= 1, got {v}"
    return None


def _nonneg_int(v):
    if not _is_int(v):
        return f"expected an integer, got {type(v).__name__} {v!r}"
    if v < 0:
        return f"must be >= 0, got {v}"
    return None


def _pos_num(v):
    if not _is_num(v):
        return f"expected a number, got {type(v).__name__} {v!r}"
    if not v > 0 or v != v or v == float("inf"):
        return f"must be a finite number > 0, got {v}"
    return None


def _nonneg_num(v):
    if not _is_num(v):
        return f"expected a number, got {type(v).__name__} {v!r}"
    if not v >= 0 or v == float("inf"):
        return f"must be a finite number >= 0, got {v}"
    return None


def _finite_num(v):
    if not _is_num(v):
        return f"expected a number, got {type(v).__name__} {v!r}"
    if v != v or abs(v) == float("inf"):
        return f"must be finite, got {v}"
    return None


def _power(v):
    if not _is_num(v):
        return f"expected a number, got {type(v).__name__} {v!r}"
    if not v >= 1 or v == float("inf"):
        return f"the activation degree must be >= 1, got {v}"
    return None


def _bool(v):
    return None if isinstance(v, bool) else f"expected true or false, got {type(v).__name__} {v!r}"


def _choice(options):
    def check(v):
        if not isinstance(v, str):
            return f"expected a string, one of {list(options)}, got {type(v).__name__} {v!r}"
        if v not in options:
            return f"unknown value {v!r}; expected one of {list(options)}"
        return None

    return check


def _str(v):
    return None if isinstance(v, str) else f"expected a string, got {type(v).__name__} {v!r}"


_M_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)?\s*\*?\s*n\s*$")


def _width(v):
    if _is_int(v):
        return _pos_int(v)
    if isinstance(v, str):
        if _M_RE.match(v):
            return None
        return f'expected an integer or a multiple of n such as "2n", got {v!r}'
    return f'expected an integer or a string such as "2n", got {type(v).__name__} {v!r}'


def _lr(v):
    if isinstance(v, str):
        try:
            parse_lr(v)
        except ValueError:
            return f'expected a number > 0, "auto" or "F/lambda_max" (e.g. "0.5/lambda_max"), got {v!r}'
        return None
    return _pos_num(v)


# Method algorithms: parameter -> (checker, default). A None default is not
# passed on: the flatext function's own default applies.
_STEPS = {"max_iter": (_pos_int, None), "tol": (_nonneg_num, None)}  # the trainers' shared parameters
_POLISH = {"polish_factor": (_pos_num, None), "polish_max_iter": (_pos_int, None), "max_seconds": (_pos_num, None)}
METHODS = {
    "random": {},
    "gd": {"lr": (_lr, None), **_STEPS, **_POLISH},
    "sam": {"lr": (_lr, None), "rho": (_pos_num, None), **_STEPS, **_POLISH},
    "label_noise_sgd": {
        "lr": (_lr, None),
        "noise": (_nonneg_num, None),
        "batch": (_pos_int, None),
        **_STEPS,
        **{k: v for k, v in _POLISH.items() if k != "polish_factor"},  # its polish runs whenever polish is on
    },
    "project": {"tol": (_pos_num, None), "max_iter": (_pos_int, None)},
    "flattest": {
        "max_iter": (_pos_int, None),
        "tol": (_pos_num, None),
        "balance": (_bool, None),
    },
    "memorize": {"kappa": (_pos_num, None), "pad": (_bool, False)},
}
# Methods whose result does not depend on the random initialization.
NO_INIT = {"memorize"}

_SECTIONS = {"sweep", "teacher", "data", "model", "methods", "population"}

_SWEEP_KEYS = {
    "name": (_str, False),
    "seeds": (None, False),
    "measurements": (None, False),
}
# key -> (checker, may be a list = grid axis)
_DATA_KEYS = {
    "n": (_pos_int, True),
    "d": (_pos_int, True),
    "noise": (_nonneg_num, True),
    "inputs": (_choice(INPUTS), True),
    "spectrum": (None, False),  # a list of d variances (inputs = "anisotropic"), not a grid axis
}
_MODEL_KEYS = {
    "m": (_width, True),
    "power": (_power, True),
    "neg": (_finite_num, True),
    "init_scale": (_pos_num, True),
    "dtype": (_choice(("float64", "float32")), False),
}
_POP_KEYS = {
    "method": (_choice(("exact", "mc")), False),
    "n_samples": (_pos_int, False),
}
_TEACHER_KINDS = {
    # kind -> {key: (checker, grid?)}; "links"/"weights" are list values, not axes
    "sum_of_single_index": {"links": None, "weights": None, "seed": (_nonneg_int, True), "name": (_str, False)},
    "multi_index": {"r": (_pos_int, False), "link": (_str, False), "seed": (_nonneg_int, True), "name": (_str, False)},
    "planted": {
        "width": (_pos_int, False),
        "power": (_power, False),
        "neg": (_finite_num, False),
        "seed": (_nonneg_int, True),
        "name": (_str, False),
    },
}


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------


class SweepConfig:
    """A validated sweep: ``cells`` is the expanded grid (list of dicts, in order).

    Attributes
    ----------
    source : str
        The file it came from (or ``"<dict>"``).
    name : str
    cells : list of dict
        One dict per cell: JSON-able parameters and ``cell_id``.
    measurements : list of str
    raw : dict
        The parsed (not expanded) sweep.
    """

    def __init__(self, source, name, cells, measurements, raw):
        self.source = source
        self.name = name
        self.cells = cells
        self.measurements = measurements
        self.raw = raw

    def __len__(self):
        return len(self.cells)

    def __repr__(self):
        return f"SweepConfig(name={self.name!r}, source={self.source!r}, cells={len(self.cells)})"


def _canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def cell_id(params):
    """Stable id of a cell: the first 16 hex digits of the SHA-256 of its canonical JSON."""
    p = {k: v for k, v in params.items() if k != "cell_id"}
    return hashlib.sha256(_canonical(p).encode()).hexdigest()[:16]


def load_config(config):
    """Parse and validate a sweep (a path to a TOML file, or a dict) and expand its grid.

    Raises
    ------
    SweepConfigError
        Naming the file and the key, for an unknown key, a wrong type or an impossible value.
    FileNotFoundError
        If the path does not exist.
    """
    if isinstance(config, SweepConfig):
        return config
    if isinstance(config, dict):
        source = "<dict>"
        raw = copy.deepcopy(config)
    elif isinstance(config, (str, os.PathLike)):
        source = os.fspath(config)
        raw = read_toml(source)
    else:
        raise TypeError(f"config: expected a path or a dict, got {type(config).__name__}")
    return _Validator(source).build(raw)


def read_toml(source):
    """The TOML file ``source`` as a dict; :class:`SweepConfigError` if it is not valid TOML."""
    toml = _toml()
    with open(source, "rb") as fh:
        try:
            return toml.load(fh)
        except toml.TOMLDecodeError as e:
            raise SweepConfigError(source, "<toml>", f"not valid TOML: {e}") from None


class _Validator:
    def __init__(self, source):
        self.source = source

    def err(self, key, msg):
        raise SweepConfigError(self.source, key, msg)

    def table(self, raw, key):
        v = raw.get(key, {})
        if not isinstance(v, dict):
            self.err(key, f"expected a table, got {type(v).__name__}")
        return v

    def check_keys(self, tbl, allowed, prefix):
        for k in tbl:
            if k not in allowed:
                self.err(f"{prefix}{k}", f"unknown key; allowed keys: {sorted(allowed)}")

    def axis(self, tbl, key, checker, grid, prefix, default):
        full = f"{prefix}{key}"
        if key not in tbl:
            if default is _REQUIRED:
                self.err(full, "missing (required)")
            return [default]
        v = tbl[key]
        if isinstance(v, list):
            if not grid:
                self.err(full, f"expected a single value, not a list, got {v!r}")
            if not v:
                self.err(full, "an empty list gives an empty grid")
            values = v
        else:
            values = [v]
        for x in values:
            msg = checker(x)
            if msg:
                self.err(full, msg)
        if len(set(map(_canonical, values))) != len(values):
            self.err(full, f"repeated values in {values!r}")
        return values

    # -- sections ----------------------------------------------------------
    def build(self, raw):
        """The :class:`SweepConfig` of the parsed sweep ``raw``: each section checked in turn (the first
        problem raises), then the grid expanded into cells."""
        if not isinstance(raw, dict):
            self.err("<root>", "expected a table")
        for k in raw:
            if k not in _SECTIONS:
                self.err(k, f"unknown section; allowed: {sorted(_SECTIONS)}")
        name, seeds, meas = self.sweep_section(self.table(raw, "sweep"))
        data, spectrum = self.data_section(self.table(raw, "data"))
        model, dtype = self.model_section(self.table(raw, "model"))
        pop = self.population_section(self.table(raw, "population"))
        teachers = self.teachers(raw.get("teacher", None))
        variants = self.methods(raw.get("methods", None))
        self.check_directions(teachers, data["d"])
        axes = {"teacher": teachers, **data, **model, "variant": variants, "seed": seeds}
        fixed = {"dtype": dtype, "measurements": meas, "population": pop, "spectrum": spectrum}
        return SweepConfig(self.source, name, self.expand(axes, fixed), meas, raw)

    def sweep_section(self, sw):
        """[sweep]: the name (the file's by default), the seeds and the measurements (in canonical order)."""
        self.check_keys(sw, _SWEEP_KEYS, "sweep.")
        name = sw.get("name", os.path.splitext(os.path.basename(self.source))[0])
        if not isinstance(name, str):
            self.err("sweep.name", f"expected a string, got {type(name).__name__}")
        seeds = sw.get("seeds", 1)
        if _is_int(seeds):
            if seeds < 1:
                self.err("sweep.seeds", f"must be >= 1 (a count) or a list of seeds, got {seeds}")
            seeds = list(range(seeds))
        elif isinstance(seeds, list) and seeds:
            for s in seeds:
                if not _is_int(s) or s < 0:
                    self.err("sweep.seeds", f"seeds must be integers >= 0, got {s!r}")
            if len(set(seeds)) != len(seeds):
                self.err("sweep.seeds", f"repeated seeds in {seeds!r}")
        else:
            self.err("sweep.seeds", f"expected a count >= 1 or a non-empty list of integers, got {seeds!r}")
        meas = sw.get("measurements", DEFAULT_MEASUREMENTS)
        if not isinstance(meas, list) or not meas:
            self.err("sweep.measurements", f"expected a non-empty list of names, got {meas!r}")
        for mname in meas:
            if mname not in MEASUREMENTS:
                self.err("sweep.measurements", f"unknown measurement {mname!r}; expected some of {list(MEASUREMENTS)}")
        return name, seeds, [m for m in MEASUREMENTS if m in meas]  # canonical order, no repeats

    def data_section(self, data):
        """[data]: its grid axes n, d, noise, inputs, and the anisotropic inputs' spectrum."""
        self.check_keys(data, _DATA_KEYS, "data.")
        axes = {
            "n": self.axis(data, "n", _pos_int, True, "data.", _REQUIRED),
            "d": self.axis(data, "d", _pos_int, True, "data.", _REQUIRED),
            "noise": self.axis(data, "noise", _nonneg_num, True, "data.", 0.0),
            "inputs": self.axis(data, "inputs", _choice(INPUTS), True, "data.", "gaussian"),
        }
        return axes, self.spectrum(data.get("spectrum"), axes["inputs"], axes["d"])

    def model_section(self, model):
        """[model]: its grid axes m (as written), power, neg, init_scale, and the dtype."""
        self.check_keys(model, _MODEL_KEYS, "model.")
        axes = {
            "m": self.axis(model, "m", _width, True, "model.", _REQUIRED),
            "power": self.axis(model, "power", _power, True, "model.", 1.0),
            "neg": self.axis(model, "neg", _finite_num, True, "model.", 0.0),
            "init_scale": self.axis(model, "init_scale", _pos_num, True, "model.", 1.0),
        }
        return axes, self.axis(model, "dtype", _choice(("float64", "float32")), False, "model.", "float64")[0]

    def population_section(self, pop):
        """[population]: the method, whether the file names it, and the Monte Carlo sample count."""
        self.check_keys(pop, _POP_KEYS, "population.")
        return {
            "method": self.axis(pop, "method", _POP_KEYS["method"][0], False, "population.", "exact")[0],
            "given": "method" in pop,
            "n_samples": self.axis(pop, "n_samples", _pos_int, False, "population.", 100000)[0],
        }

    def check_directions(self, teachers, ds):
        """A teacher's orthonormal directions must fit in every input dimension d."""
        for t in teachers:
            k = t.get("_k")
            if k is not None:
                for d in ds:
                    if k > d:
                        self.err("teacher", f"{k} orthonormal directions do not fit in d={d}")

    def expand(self, axes, fixed):
        """The cells of the cartesian product of the ``axes`` (name -> values, in ``_GRID_AXES`` order), each
        with its id; a cell equal to an earlier one (e.g. memorize over init scales) is dropped."""
        cells = []
        seen = set()
        for values in itertools.product(*(axes[a] for a in _GRID_AXES)):
            cell = self.cell(dict(zip(_GRID_AXES, values)), fixed)
            cid = cell_id(cell)
            if cid in seen:
                continue
            seen.add(cid)
            cell["cell_id"] = cid
            cells.append(cell)
        return cells

    def cell(self, p, fixed):
        """One cell (without its id) from one value ``p`` of each grid axis and the ``fixed`` settings."""
        n, m_spec, inp = p["n"], p["m"], p["inputs"]
        m = _resolve_width(m_spec, n)
        vname, vkind, vparams = p["variant"]
        vparams = dict(vparams)
        init = vparams.pop("init_scale", None)
        init_scale = None if vkind in NO_INIT else float(init if init is not None else p["init_scale"])
        pop = fixed["population"]
        cell = {
            "teacher": {k: v for k, v in p["teacher"].items() if not k.startswith("_")},
            "n": int(n),
            "d": int(p["d"]),
            "m": int(m),
            "m_spec": str(m_spec),
            "noise": float(p["noise"]),
            "inputs": inp,
            "power": float(p["power"]),
            "neg": float(p["neg"]),
            "init_scale": init_scale,
            "dtype": fixed["dtype"],
            "method": vname,
            "method_kind": vkind,
            "method_params": vparams,
            "measurements": list(fixed["measurements"]),
            "population": {"method": self.population_method(inp, pop), "n_samples": int(pop["n_samples"])},
            "seed": int(p["seed"]),
        }
        if inp == "anisotropic":  # only there, so that other cells' ids do not change
            cell["spectrum"] = fixed["spectrum"]
        if m < 1:
            self.err("model.m", f"{m_spec!r} gives m={m} < 1 for n={n}")
        return cell

    def population_method(self, inp, pop):
        """The population loss's method for inputs ``inp``: the exact one needs Gaussian inputs."""
        if inp == "gaussian":
            return pop["method"]
        if pop["given"] and pop["method"] == "exact":
            self.err(
                "population.method",
                f'"exact" needs inputs = "gaussian"; got inputs = "{inp}" (leave it out: other input laws use "mc")',
            )
        return "mc"

    def spectrum(self, spec, inputs, ds):
        """The covariance diagonal of ``inputs = "anisotropic"`` (d variances), checked against every d."""
        if spec is None:
            if "anisotropic" in inputs:
                self.err("data.spectrum", 'missing (required with inputs = "anisotropic"): a list of d variances')
            return None
        if "anisotropic" not in inputs:
            self.err("data.spectrum", 'only used with inputs = "anisotropic"')
        if not isinstance(spec, list) or not spec:
            self.err("data.spectrum", f"expected a non-empty list of variances, got {spec!r}")
        for v in spec:
            msg = _nonneg_num(v)
            if msg:
                self.err("data.spectrum", msg)
        for d in ds:
            if len(spec) != d:
                self.err("data.spectrum", f"expected d = {d} variances (one per input dimension), got {len(spec)}")
        return [float(v) for v in spec]

    def teachers(self, spec):
        if spec is None:
            spec = {"kind": "sum_of_single_index", "links": ["relu"]}
        if isinstance(spec, dict):
            specs = [("teacher", spec)]
        elif isinstance(spec, list) and spec and all(isinstance(s, dict) for s in spec):
            specs = [(f"teacher[{i}]", s) for i, s in enumerate(spec)]
        else:
            self.err("teacher", "expected a table [teacher] or a non-empty array of tables [[teacher]]")
        out = []
        for key, s in specs:
            kind = s.get("kind", "sum_of_single_index")
            if kind not in _TEACHER_KINDS:
                self.err(f"{key}.kind", f"unknown teacher kind {kind!r}; expected one of {list(_TEACHER_KINDS)}")
            allowed = dict(_TEACHER_KINDS[kind])
            allowed["kind"] = None
            self.check_keys(s, allowed, f"{key}.")
            base = {"kind": kind}
            if kind == "sum_of_single_index":
                links = s.get("links", ["relu"])
                if isinstance(links, str):
                    links = [links]
                if not isinstance(links, list) or not links:
                    self.err(f"{key}.links", f"expected a non-empty list of link names, got {links!r}")
                for ln in links:
                    msg = _choice(LINKS)(ln)
                    if msg:
                        self.err(f"{key}.links", msg)
                weights = s.get("weights", None)
                if weights is not None:
                    if not isinstance(weights, list) or len(weights) != len(links):
                        self.err(
                            f"{key}.weights", f"expected a list of {len(links)} numbers (one per link), got {weights!r}"
                        )
                    for w in weights:
                        msg = _finite_num(w)
                        if msg:
                            self.err(f"{key}.weights", msg)
                    weights = [float(w) for w in weights]
                base.update(links=list(links), weights=weights, _k=len(links))
            elif kind == "multi_index":
                r = s.get("r", 2)
                msg = _pos_int(r)
                if msg:
                    self.err(f"{key}.r", msg)
                link = s.get("link", None)
                if link is None:
                    self.err(f"{key}.link", f"missing (required): one of {list(LINKS)}")
                msg = _choice(LINKS)(link)
                if msg:
                    self.err(f"{key}.link", msg)
                base.update(r=int(r), link=link, _k=int(r))
            else:  # planted
                width = s.get("width", 2)
                for kk, chk, dflt in (("width", _pos_int, 2), ("power", _power, 1.0), ("neg", _finite_num, 0.0)):
                    v = s.get(kk, dflt)
                    msg = chk(v)
                    if msg:
                        self.err(f"{key}.{kk}", msg)
                    base[kk] = v
                base["power"] = float(base["power"])
                base["neg"] = float(base["neg"])
                base["width"] = int(width)
            if "name" in s:
                msg = _str(s["name"])
                if msg:
                    self.err(f"{key}.name", msg)
                base["name"] = s["name"]
            seeds = self.axis(s, "seed", _nonneg_int, True, f"{key}.", 0)
            for sd in seeds:
                t = dict(base)
                t["seed"] = int(sd)
                out.append(t)
        return out

    def methods(self, spec):
        if spec is None:
            self.err("methods", "missing (required): at least one [methods.NAME] table")
        if not isinstance(spec, dict) or not spec:
            self.err("methods", "expected [methods.NAME] tables, e.g. [methods.gd] lr = 0.1")
        out = []
        for vname, params in spec.items():
            key = f"methods.{vname}"
            if not isinstance(params, dict):
                self.err(key, f"expected a table of parameters, got {type(params).__name__} {params!r}")
            kind = params.get("method", vname)
            if not isinstance(kind, str) or kind not in METHODS:
                self.err(
                    f"{key}.method" if "method" in params else key,
                    f"unknown method {kind!r}; expected one of {list(METHODS)}",
                )
            allowed = dict(METHODS[kind])
            if kind not in NO_INIT:
                allowed["init_scale"] = (_pos_num, None)
            allowed_keys = set(allowed) | {"method"}
            self.check_keys(params, allowed_keys, f"{key}.")
            axes = []
            for pname, (chk, dflt) in allowed.items():
                if pname in params:
                    vals = self.axis(params, pname, chk, True, f"{key}.", None)
                elif dflt is None:
                    continue
                else:
                    vals = [dflt]
                if chk in _FLOAT_CHECKERS or chk is _lr:
                    vals = [v if isinstance(v, str) else float(v) for v in vals]
                axes.append([(pname, v) for v in vals])
            for combo in itertools.product(*axes):
                out.append((vname, kind, dict(combo)))
        return out


_FLOAT_CHECKERS = (_pos_num, _nonneg_num, _finite_num, _power)
# The grid's axes, in the order of its cartesian product (the cells' order).
_GRID_AXES = ("teacher", "n", "d", "noise", "inputs", "m", "power", "neg", "init_scale", "variant", "seed")


class _Required:
    def __repr__(self):
        return "<required>"


_REQUIRED = _Required()


def _resolve_width(spec, n):
    if _is_int(spec):
        return spec
    mt = _M_RE.match(spec)
    k = float(mt.group(1)) if mt.group(1) else 1.0
    return int(round(k * n))
