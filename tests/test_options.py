"""Solver options (flatext/options.py): defaults equal to the C++ structs', values checked once
naming the option, dict and object forms equal, conflicts, unused and unknown options raise."""

import ast
import dataclasses
import os
import re

import flatext as fx
import numpy as np
import pytest
from flatext import _core
from flatext.options import merge_options
from test_training import problem as _problem

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _cpp_struct_defaults(header, struct):
    """``name -> value`` of the ``double``/``int`` members with a default in a C++ struct (read from the header)."""
    with open(os.path.join(ROOT, "cpp", "include", "flatext", header)) as fh:
        text = fh.read()
    body = re.search(r"struct " + struct + r" \{(.*?)\n\};", text, re.S)
    assert body, struct
    out = {}
    for typ, name, value in re.findall(r"^\s*(double|int)\s+(\w+)\s*=\s*([-+.\deE]+);", body.group(1), re.M):
        out[name] = float(value) if typ == "double" else int(value)
    return out


def _binding_defaults(fn):
    """``name -> default`` of a compiled function's keyword arguments (from pybind11's signature line)."""
    sig = fn.__doc__.splitlines()[0]
    out = {}
    for name, value in re.findall(r"(\w+): [^=,]+ = ([^,)]+)", sig):
        out[name] = value.strip("'")
    return out


def test_interpolation_defaults_equal_the_cpp_struct_and_the_binding():
    cpp = _cpp_struct_defaults("interpolation.hpp", "InterpolationOptions")
    bound = _binding_defaults(_core.find_interpolator)
    compiled = _core.InterpolationOptions()
    py = fx.InterpolationOptions()
    for name in ("max_iter", "cg_rtol", "cg_max_iter"):
        v = getattr(py, name)
        assert v == cpp[name] == getattr(compiled, name) == type(v)(bound[name]) and type(v) is type(cpp[name]), name
    assert py.solver == compiled.solver == bound["solver"] == "auto"
    # the None defaults mean the C++ values: tol (float64) and the first damping
    for name in ("tol", "lambda_init"):
        assert getattr(py, name) is None and cpp[name] == getattr(compiled, name) == float(bound[name]), name
    assert cpp["tol"] == 1e-10 and py.cg_rank is None and compiled.cg_rank == int(bound["cg_rank"]) < 0


_INTERP_BAD = [dict(tol=-1.0), dict(tol=float("nan")), dict(max_iter=-1), dict(lambda_init=0.0), dict(solver="lu"),
               dict(cg_rtol=float("inf")), dict(cg_max_iter=0)]  # fmt: skip
_SEARCH_BAD = [dict(tol=0.0), dict(lambda_rel=-1.0), dict(gtol=-1e-3), dict(gtol=float("nan")), dict(retract_iter=0),
               dict(cg_rtol=0.0), dict(cg_max_iter=0), dict(solver="lu")]  # fmt: skip
_TRAIN_BAD = [dict(lr=0.0), dict(lr=float("inf")), dict(rho=-0.1), dict(rho=0.0), dict(max_iter=-1), dict(tol=-1e-3),
              dict(tol=float("nan")), dict(record_every=0)]  # fmt: skip


@pytest.mark.parametrize(
    "cpp_cls, py_cls, kw",
    [(_core.InterpolationOptions, fx.InterpolationOptions, kw) for kw in _INTERP_BAD]
    + [(_core.TrainOptions, fx.TrainOptions, kw) for kw in _TRAIN_BAD]
    + [(_core.SearchOptions, fx.SearchOptions, kw) for kw in _SEARCH_BAD],
)
def test_values_are_checked_by_the_cpp_struct(cpp_cls, py_cls, kw):
    with pytest.raises(ValueError) as cpp:
        cpp_cls(**kw)
    with pytest.raises(ValueError) as py:
        py_cls(**kw)
    name = next(iter(kw))
    assert name in str(py.value) and name in str(cpp.value)
    if name != "lr":  # lr's message is parse_lr's, which also names the "auto" forms (the same rule for numbers)
        assert str(py.value) == str(cpp.value)


def test_train_method_is_checked_by_the_cpp_struct():
    with pytest.raises(ValueError, match="method"):
        _core.TrainOptions(method="adam")


def test_train_defaults_equal_the_cpp_struct_and_the_binding():
    cpp = _cpp_struct_defaults("training.hpp", "TrainOptions")
    compiled = _core.TrainOptions()
    assert set(cpp) == {"lr", "rho", "max_iter", "tol", "record_every"}
    for cls in (fx.TrainOptions, fx.LabelNoiseOptions):
        py = cls()
        for name, v in cpp.items():
            if name == "record_every" and cls is fx.LabelNoiseOptions:
                continue  # label-noise SGD records less by default (its docstring says so)
            if name == "rho" and cls is fx.LabelNoiseOptions:
                continue
            assert getattr(py, name) == v == getattr(compiled, name) and type(getattr(py, name)) is type(v), name
    assert compiled.method == "gd"


def test_none_defaults_run_as_the_cpp_values():
    W, a, X, y = _problem()
    base = fx.find_interpolator(W, a, X, y)
    assert base.converged and "best of" not in base.message  # the first run (C++ damping) converged
    cpp = _cpp_struct_defaults("interpolation.hpp", "InterpolationOptions")
    same = fx.find_interpolator(W, a, X, y, options={"tol": cpp["tol"], "lambda_init": cpp["lambda_init"]})
    assert np.array_equal(base.W, same.W) and np.array_equal(base.a, same.a)


def test_train_defaults_are_the_documented_signature_defaults():
    """TrainOptions holds the values train() had as keyword defaults (docs/workflow.md lists them)."""
    with open(os.path.join(ROOT, "docs", "workflow.md")) as fh:
        text = fh.read()
    listed = re.search(r"the default of `flatext.TrainOptions` \(`(.*?)`\)", text, re.S).group(1)
    documented = dict(kv.split("=") for kv in re.sub(r"\s+", "", listed).split(","))
    py = fx.TrainOptions()
    assert set(documented) == {f.name for f in dataclasses.fields(py)}
    for name, value in documented.items():
        v = ast.literal_eval(value)
        assert getattr(py, name) == v and type(getattr(py, name)) is type(v), name


@pytest.mark.parametrize(
    "cls, kw, err, name",
    [
        (fx.InterpolationOptions, dict(tol=-1.0), ValueError, "tol"),
        (fx.InterpolationOptions, dict(tol=float("nan")), ValueError, "tol"),
        (fx.InterpolationOptions, dict(max_iter=-1), ValueError, "max_iter"),
        (fx.InterpolationOptions, dict(max_iter=2.5), TypeError, "max_iter"),
        (fx.InterpolationOptions, dict(lambda_init=0.0), ValueError, "lambda_init"),
        (fx.InterpolationOptions, dict(solver="lu"), ValueError, "solver"),
        (fx.InterpolationOptions, dict(cg_rtol=0.0), ValueError, "cg_rtol"),
        (fx.InterpolationOptions, dict(cg_max_iter=0), ValueError, "cg_max_iter"),
        (fx.InterpolationOptions, dict(cg_rank=-2), ValueError, "cg_rank"),
        (fx.TrainOptions, dict(lr=0.0), ValueError, "lr"),
        (fx.TrainOptions, dict(lr="fast"), ValueError, "lr"),
        (fx.TrainOptions, dict(rho=-0.1), ValueError, "rho"),
        (fx.TrainOptions, dict(tol=-1e-3), ValueError, "tol"),
        (fx.TrainOptions, dict(polish=1), TypeError, "polish"),
        (fx.TrainOptions, dict(polish_factor=0.5), ValueError, "polish_factor"),
        (fx.TrainOptions, dict(polish_tol=0.0), ValueError, "polish_tol"),
        (fx.TrainOptions, dict(noise=-1.0), ValueError, "noise"),
        (fx.TrainOptions, dict(batch=0), ValueError, "batch"),
        (fx.TrainOptions, dict(max_seconds=0), ValueError, "max_seconds"),
        (fx.LabelNoiseOptions, dict(stop_at_tol="yes"), TypeError, "stop_at_tol"),
        (fx.LabelNoiseOptions, dict(record_every=0), ValueError, "record_every"),
    ],
)
def test_bad_values_raise_naming_the_option(cls, kw, err, name):
    with pytest.raises(err, match=name):
        cls(**kw)


@pytest.mark.parametrize(
    "fn, kw, name",
    [
        (fx.find_interpolator, dict(cg_rtol=-1.0), "cg_rtol"),
        (fx.train, dict(rho=0.0, method="sam"), "rho"),
        (fx.label_noise_sgd, dict(noise=-0.1), "noise"),
    ],
)
def test_the_functions_check_keywords_and_dict_options_alike(fn, kw, name):
    W, a, X, y = _problem()
    method = {"method": kw.pop("method")} if "method" in kw else {}
    with pytest.raises(ValueError, match=name):
        fn(W, a, X, y, **method, **kw)
    with pytest.raises(ValueError, match=name):
        fn(W, a, X, y, **method, options=kw)


def _same_result(r, s):
    assert np.array_equal(r.W, s.W) and np.array_equal(r.a, s.a) and r.iterations == s.iterations


def test_keyword_dict_and_object_forms_give_the_same_result():
    W, a, X, y = _problem()
    kw = dict(tol=1e-8, max_iter=50, solver="cg", cg_rtol=1e-6, cg_rank=5)
    r = fx.find_interpolator(W, a, X, y, **kw)
    _same_result(r, fx.find_interpolator(W, a, X, y, options=kw))
    _same_result(r, fx.find_interpolator(W, a, X, y, options=fx.InterpolationOptions(**kw)))
    # an object's default fields leave room for keywords
    _same_result(r, fx.find_interpolator(W, a, X, y, options=fx.InterpolationOptions(solver="cg"), tol=1e-8,
                                         max_iter=50, cg_rtol=1e-6, cg_rank=5))  # fmt: skip
    # and the options change the run: a different tolerance gives a different result
    assert fx.find_interpolator(W, a, X, y, tol=1e-3, solver="cg").iterations < r.iterations
    tk = dict(lr=0.2, rho=0.01, max_iter=30, tol=0.0, polish=False)
    t = fx.train(W, a, X, y, method="sam", **tk)
    _same_result(t, fx.train(W, a, X, y, method="sam", options=tk))
    _same_result(t, fx.train(W, a, X, y, method="sam", options=fx.TrainOptions(**tk)))
    lk = dict(noise=0.1, batch=4, lr=0.05, max_iter=20, seed=3)
    s = fx.label_noise_sgd(W, a, X, y, **lk)
    _same_result(s, fx.label_noise_sgd(W, a, X, y, options=fx.LabelNoiseOptions(**lk)))
    _same_result(s, fx.train(W, a, X, y, method="label_noise_sgd", options=dict(lk, polish=False, record_every=100)))


@pytest.mark.parametrize(
    "fn, options, kw",
    [
        (fx.find_interpolator, {"tol": 1e-8}, {"tol": 1e-8}),
        (fx.find_interpolator, fx.InterpolationOptions(max_iter=5), {"max_iter": 7}),
        (fx.train, {"lr": 0.1}, {"lr": 0.2}),
        (fx.label_noise_sgd, fx.LabelNoiseOptions(batch=4), {"batch": 4}),
    ],
)
def test_a_keyword_also_in_options_raises(fn, options, kw):
    W, a, X, y = _problem()
    with pytest.raises(TypeError, match=f"'{next(iter(kw))}' given both as a keyword and in options"):
        fn(W, a, X, y, options=options, **kw)


@pytest.mark.parametrize(
    "method, name, value",
    [
        ("gd", "rho", 0.1),
        ("gd", "noise", 0.3),
        ("sam", "batch", 4),
        ("sam", "seed", 1),
        ("label_noise_sgd", "rho", 0.1),
        ("label_noise_sgd", "polish_factor", 10.0),
    ],
)
def test_an_option_the_method_does_not_use_raises(method, name, value):
    W, a, X, y = _problem()
    for how in ({name: value}, {"options": {name: value}}, {"options": fx.TrainOptions(**{name: value})}):
        with pytest.raises(TypeError, match=f"train\\(method='{method}'\\) does not use the option\\(s\\) '{name}'"):
            fx.train(W, a, X, y, method=method, max_iter=1, **how)


def test_options_at_their_defaults_are_not_reported_unused():
    W, a, X, y = _problem()
    r = fx.train(W, a, X, y, method="gd", lr=0.2, max_iter=3, options=fx.TrainOptions(), polish=False)
    assert r.iterations == 3


@pytest.mark.parametrize("fn", [fx.find_interpolator, fx.train, fx.label_noise_sgd])
def test_unknown_option_names_and_option_types_raise(fn):
    W, a, X, y = _problem()
    with pytest.raises(TypeError, match="unknown option\\(s\\) 'max_iters'"):
        fn(W, a, X, y, options={"max_iters": 3})
    with pytest.raises(TypeError, match="options must be a"):
        fn(W, a, X, y, options=[("max_iter", 3)])
    other = fx.TrainOptions() if fn is fx.find_interpolator else fx.InterpolationOptions()
    with pytest.raises(TypeError, match="options must be a"):
        fn(W, a, X, y, options=other)


def test_options_are_frozen_and_replace_rechecks():
    o = fx.InterpolationOptions(tol=1e-8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.tol = 1e-9  # type: ignore[misc]
    assert dataclasses.replace(o, max_iter=5) == fx.InterpolationOptions(tol=1e-8, max_iter=5)
    with pytest.raises(ValueError, match="max_iter"):
        dataclasses.replace(o, max_iter=-5)


def test_merge_options_rule_on_a_small_class():
    @dataclasses.dataclass(frozen=True)
    class Opt:
        x: int = 1
        y: float = 2.0

    assert merge_options(Opt, None, {"x": None}, where="f") == Opt()
    assert merge_options(Opt, {"y": 3.0}, {"x": 5}, where="f") == Opt(5, 3.0)
    assert merge_options(Opt, Opt(x=4), {"y": 1.0}, where="f") == Opt(4, 1.0)
    with pytest.raises(TypeError, match="f does not use the option\\(s\\) 'y'"):
        merge_options(Opt, {"y": 3.0}, {}, where="f", ignored=("y",))
    assert merge_options(Opt, Opt(), {}, where="f", ignored=("y",)) == Opt()


# flattest_interpolator: SearchOptions


def test_search_defaults_equal_the_cpp_struct():
    cpp = _cpp_struct_defaults("search.hpp", "SearchOptions")
    o = fx.SearchOptions()
    compiled = _core.SearchOptions()
    assert o.gtol == cpp["gtol"] == compiled.gtol
    for name in ("lambda_rel", "retract_iter", "cg_rtol", "cg_max_iter", "tol"):
        assert getattr(compiled, name) == cpp[name], name
    assert o.balance is compiled.balance is True and o.a_correction is None and compiled.a_correction is False
    # None stands for the struct's value, stated in the docstring
    stated = {float(v) for v in re.findall(r"None: (?:the C\+\+ )?([-+.\deE]+)[);]", fx.SearchOptions.__doc__)}
    for name in ("lambda_rel", "retract_iter", "cg_rtol", "cg_max_iter"):
        assert float(cpp[name]) in stated, name


@pytest.mark.parametrize(
    "name, value, exc",
    [
        ("max_iter", -1, ValueError),
        ("max_iter", 2.0, TypeError),
        ("gtol", -1e-3, ValueError),
        ("ftol", float("nan"), ValueError),
        ("patience", 0, ValueError),
        ("balance", 1, TypeError),
        ("solver", "lu", ValueError),
        ("cg_rank", -1, ValueError),
        ("polish", "always", ValueError),
        ("polish_rounds", 0, ValueError),
        ("method", "newton", ValueError),
        ("max_seconds", 0.0, ValueError),
        ("cells_width", 0, ValueError),
    ],
)
def test_search_bad_values_name_the_option(name, value, exc):
    with pytest.raises(exc, match=name):
        fx.SearchOptions(**{name: value})
    W, a, X, y = _search_problem()
    with pytest.raises(exc, match=name):
        fx.flattest_interpolator(W, a, X, y, **{name: value})


def _search_problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 3))
    y = np.maximum(X @ np.array([1.0, -0.5, 0.2]), 0.0)
    return rng.standard_normal((16, 3)) / np.sqrt(3), rng.standard_normal(16) / 4, X, y


def test_search_keyword_dict_and_object_give_the_same_bits():
    W, a, X, y = _search_problem()
    kw = dict(max_iter=5, gtol=1e-3, polish=None, method="manifold")
    r1 = fx.flattest_interpolator(W, a, X, y, **kw)
    r2 = fx.flattest_interpolator(W, a, X, y, options=kw)
    r3 = fx.flattest_interpolator(W, a, X, y, options=fx.SearchOptions(**kw))
    r4 = fx.flattest_interpolator(W, a, X, y, options=fx.SearchOptions(max_iter=5, gtol=1e-3), polish=None)
    for r in (r2, r3, r4):
        assert np.array_equal(r.W, r1.W) and np.array_equal(r.a, r1.a)
        assert r.iterations == r1.iterations and r.reason == r1.reason and r.polish == r1.polish
    assert r1.iterations <= 5 and r1.polish == "off"


def test_search_conflicts_unused_and_unknown_options_raise():
    W, a, X, y = _search_problem()
    with pytest.raises(TypeError, match="'gtol' given both"):
        fx.flattest_interpolator(W, a, X, y, gtol=1e-3, options={"gtol": 1e-2})
    with pytest.raises(TypeError, match="'polish' given both"):
        fx.flattest_interpolator(W, a, X, y, polish=None, options={"polish": "convex"})
    with pytest.raises(TypeError, match="does not use the option.*cells_width"):
        fx.flattest_interpolator(W, a, X, y, method="manifold", cells_width=50)
    with pytest.raises(TypeError, match="does not use the option.*cells_width"):
        fx.flattest_interpolator(W, a, X, y, options=fx.SearchOptions(method="manifold", cells_width=50))
    with pytest.raises(TypeError, match="unknown option.*'rho'"):
        fx.flattest_interpolator(W, a, X, y, options={"rho": 0.1})
    with pytest.raises(TypeError, match="SearchOptions or a dict"):
        fx.flattest_interpolator(W, a, X, y, options=fx.InterpolationOptions())


def test_convex_options_keyword_dict_and_object_give_the_same_optimum():
    X, y = _convex_problem()
    kw = dict(patterns="sampled", n_patterns=30, seed=3, pricing_rounds=1)
    by_kw = fx.certified_flattest(X, y, **kw)
    by_obj = fx.certified_flattest(X, y, options=fx.ConvexOptions(**kw))
    by_dict = fx.certified_flattest(X, y, options=kw)
    for r in (by_obj, by_dict):
        np.testing.assert_array_equal(r.W, by_kw.W)
        np.testing.assert_array_equal(r.a, by_kw.a)
        assert r.n_patterns == by_kw.n_patterns


def _convex_problem():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((10, 2))
    return X, np.maximum(X @ np.array([1.0, -0.5]), 0) + 0.3 * np.abs(X[:, 1])


@pytest.mark.parametrize(
    "kw, err, name",
    [
        (dict(patterns="all"), ValueError, "patterns"),
        (dict(solver="gurobi"), ValueError, "solver"),
        (dict(tol=0.5), ValueError, "tol"),
        (dict(tol=True), ValueError, "tol"),
        (dict(max_exact=0), ValueError, "max_exact"),
        (dict(n_patterns=-1), ValueError, "n_patterns"),
        (dict(n_patterns=2.0), TypeError, "n_patterns"),
        (dict(pricing_rounds=-1), ValueError, "pricing_rounds"),
        (dict(pricing_max_add=0), ValueError, "pricing_max_add"),
        (dict(verbose=1), TypeError, "verbose"),
        (dict(max_seconds=0), ValueError, "max_seconds"),
        (dict(solver="scs", pricing_rounds=2), ValueError, "pricing_rounds"),
    ],
)
def test_convex_options_bad_values_name_the_option(kw, err, name):
    with pytest.raises(err, match=name):
        fx.ConvexOptions(**kw)
    X, y = _convex_problem()
    with pytest.raises(err, match=name):
        fx.certified_flattest(X, y, **kw)
    with pytest.raises(err, match=name):
        fx.certified_flattest(X, y, options=kw)


@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(patterns="exact", n_patterns=10), "n_patterns"),
        (dict(patterns="exact", pricing_max_add=3), "pricing_max_add"),
        (dict(patterns="exact", max_exact=10), "max_exact"),
        (dict(patterns="sampled", max_exact=10), "max_exact"),
    ],
)
def test_convex_option_the_patterns_mode_does_not_use_raises(kw, name):
    X, y = _convex_problem()
    with pytest.raises(TypeError, match=f"does not use the option.*{name}"):
        fx.certified_flattest(X, y, **kw)
    with pytest.raises(TypeError, match=f"does not use the option.*{name}"):
        fx.certified_flattest(X, y, options=fx.ConvexOptions(**kw))


def test_convex_options_conflicts_and_unknown_names_raise():
    X, y = _convex_problem()
    with pytest.raises(TypeError, match="'tol' given both"):
        fx.certified_flattest(X, y, tol=1e-9, options={"tol": 1e-9})
    with pytest.raises(TypeError, match="unknown option"):
        fx.certified_flattest(X, y, options={"rounds": 2})
    with pytest.raises(TypeError, match="ConvexOptions or a dict"):
        fx.certified_flattest(X, y, options=fx.SearchOptions())


def test_train_max_iter_beyond_a_c_int_runs_in_segments():
    W, a, X, y = _problem()
    assert fx.TrainOptions(max_iter=10**12).max_iter == 10**12
    res = fx.train(W, a, X, y, max_iter=10**12, max_seconds=0.2, polish=False)
    assert res.reason in ("time_budget", "tol") and 0 < res.iterations < 10**12
