"""One table of the public array API, shared by the hardening tests.

Each entry says which arrays a function takes (with their shapes in terms of
the dimensions n, m, d), which keyword arguments, and how to call it. The
generic tests in ``test_inputs.py``, ``test_properties.py`` and
``test_threads.py`` walk this table, so covering a new function (an
interpolator, a population loss, ...) is one more ``Api(...)`` entry here,
plus, for the property test, a float64 reference in ``REFERENCES`` there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Tuple

import flatext as fx
import numpy as np

# shapes of the arrays, in terms of the problem dimensions
SHAPES = {
    "W": ("m", "d"),
    "a": ("m",),
    "X": ("n", "d"),
    "y": ("n",),
    "VW": ("m", "d"),
    "va": ("m",),
    "t": ("m",),
}


def _normal(rng, shape):
    return rng.standard_normal(shape)


def _positive(rng, shape):
    return rng.uniform(0.5, 2.0, shape)


@dataclass
class Api:
    name: str
    fn: Callable
    arrays: Tuple[str, ...]
    # keyword arguments the call always gets (besides the arrays)
    kwargs: Dict[str, object] = field(default_factory=dict)
    # takes power= and neg= (the activation)
    activation: bool = True
    # takes power= only
    power_only: bool = False
    # generators for arrays that are not plain normal (e.g. t > 0)
    gen: Dict[str, Callable] = field(default_factory=dict)
    # heavy calls (Lanczos) get smaller sizes in loops
    heavy: bool = False

    def shape(self, arg, dims):
        return tuple(dims[k] for k in SHAPES[arg])

    def make(self, dims, dtype=np.float64, seed=0):
        """Valid inputs as a dict name -> array."""
        rng = np.random.default_rng(seed)
        return {k: self.gen.get(k, _normal)(rng, self.shape(k, dims)).astype(dtype) for k in self.arrays}

    def act_kwargs(self, power=1.0, neg=0.0):
        if self.power_only:
            return {"power": power}
        if self.activation:
            return {"power": power, "neg": neg}
        return {}

    def __call__(self, arrays, **kw):
        args = [arrays[k] for k in self.arrays]
        return self.fn(*args, **{**self.kwargs, **kw})


NET = ("W", "a", "X")
NETY = ("W", "a", "X", "y")

API = [
    Api("forward", fx.forward, NET),
    Api("loss", fx.loss, NETY),
    Api("loss_grad", fx.loss_grad, NETY),
    Api("hessian_trace", fx.hessian_trace, NETY),
    Api("hessian_trace_parts", fx.hessian_trace_parts, NETY),
    Api("hessian_trace_grad", fx.hessian_trace_grad, NETY),
    Api("hvp", fx.hvp, NETY + ("VW", "va")),
    Api("hessian_top_eigenvalues", fx.hessian_top_eigenvalues, NETY, kwargs={"k": 1, "max_iter": 40}, heavy=True),
    Api("rescale", fx.rescale, ("W", "a", "t"), activation=False, power_only=True, gen={"t": _positive}),
    Api("balance", fx.balance, NETY),
    Api("orbit_min_trace", fx.orbit_min_trace, NETY),
]
BY_NAME = {api.name: api for api in API}


def results(out):
    """Flattens a call's result into a list of numpy arrays (for comparisons)."""
    if isinstance(out, fx.TraceParts):
        out = (out.total, out.gauss_newton, out.residual, out.per_neuron, out.per_neuron_a, out.per_neuron_w, out.loss)
    if not isinstance(out, tuple):
        out = (out,)
    return [np.asarray(v) for v in out]


def assert_all_finite(out, name):
    for v in results(out):
        assert np.all(np.isfinite(v)), f"{name} returned a non-finite value without raising: {v}"
