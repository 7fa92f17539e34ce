"""Property-based tests (hypothesis): whatever arrays, frames and tables a user passes, ``sf.fit``,
``predict`` and the CLI's table reader either give an honest answer or refuse with scanfit's own
``ValueError``/``TypeError`` (raised in scanfit's code, worded by scanfit), never a raw NumPy, pandas
or JAX error, a traceback from deep inside a library, or a result with non-finite parameters.

The fits are tiny (a few rows, ``steps=3``, plain gradient steps in float32) and their shapes come
from a small set, so that a handful of compiled programs serves all the cases; over 1,000 cases run
in about a minute on two cores.
"""

from __future__ import annotations

import string
import traceback
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import scanfit as sf
from scanfit import tables

SRC = str(Path(sf.__file__).resolve().parent)
CODES = {"converged", "completed", "stopped_early", "max_steps", "stalled", "separation", "diverged", "interrupted"}
FIT = dict(optimizer="gd", learning_rate=0.1, steps=3, dtype="float32")
SETTINGS = dict(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


def assert_scanfit_error(err: BaseException) -> None:
    """A refusal raised by scanfit itself: a ValueError or TypeError whose last frame is a ``raise``
    statement in scanfit's code (not a NumPy, pandas or JAX function failing on a scanfit line, such
    as NumPy's 'could not convert string to float' from an ``np.asarray`` call)."""
    assert isinstance(err, (ValueError, TypeError)), f"{type(err).__name__}: {err}"
    last = traceback.extract_tb(err.__traceback__)[-1]
    where = f"{last.filename}:{last.lineno}: {type(err).__name__}: {err}"
    assert str(Path(last.filename).resolve()).startswith(SRC), f"raised outside scanfit at {where}"
    assert (last.line or "").lstrip().startswith("raise"), f"not raised by scanfit's own statement at {where}"
    event(f"refused: {Path(last.filename).name}")


def finite(tree) -> bool:
    import jax

    return all(np.isfinite(np.asarray(leaf, np.float64)).all() for leaf in jax.tree.leaves(tree))


# ---------------------------------------------------------------- values

EXTREME = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-300, 1e18, -1e18, 1e30, 1e300, -1e300, np.inf, -np.inf, np.nan, 94.0, 3.0]
FLOAT_DTYPES = [np.float64, np.float32, np.float16]
OTHER_DTYPES = [np.int64, np.int8, np.uint8, np.bool_, np.complex128]


@st.composite
def numbers(draw, shape):
    """An array of ``shape`` in one of many dtypes, mostly ordinary values with some extreme ones."""
    dtype = np.dtype(draw(st.sampled_from(FLOAT_DTYPES + OTHER_DTYPES)))
    if dtype.kind == "f":
        values = st.one_of(st.floats(-3, 3, width=min(64, dtype.itemsize * 8)), st.sampled_from(EXTREME))
        with np.errstate(over="ignore"):
            return draw(hnp.arrays(np.float64, shape, elements=values)).astype(dtype)
    if dtype.kind == "c":
        parts = st.one_of(st.floats(-3, 3), st.just(np.nan))
        return draw(hnp.arrays(dtype, shape, elements=st.builds(complex, parts, parts)))
    return draw(hnp.arrays(dtype, shape))


@st.composite
def targets(draw, n):
    """y for n rows: numbers, 0/1 labels, small class labels, sparse codes, or odd shapes and kinds."""
    kind = draw(st.sampled_from(["numbers", "binary", "classes", "codes", "odd"]))
    if kind == "numbers":
        return draw(numbers((n,)))
    if kind == "binary":
        return draw(hnp.arrays(draw(st.sampled_from([np.int64, np.float64, np.bool_])), (n,),
                               elements=st.sampled_from([0, 1])))
    if kind == "classes":
        return np.array(draw(st.lists(st.sampled_from([0, 1, 2]), min_size=n, max_size=n)))
    if kind == "codes":
        return np.array(draw(st.lists(st.sampled_from([0, 1, 2, 50, 94, -1, 1000]), min_size=n, max_size=n)))
    return draw(st.sampled_from([np.zeros((n, 2)), np.zeros(n + 1), np.array([]), np.array(["a"] * n),
                                 np.array([None] * n, dtype=object), [[1], [2, 3]][:1] * n, 3.0]))


NAMES = st.one_of(st.text(alphabet=string.printable + "éß中", max_size=6), st.integers(-3, 3),
                  st.sampled_from(["[/x]", "[bold]a", "", " ", "0", "nan", "a,b", "prob_1", "predicted"]))


@st.composite
def features(draw, n):
    """x for n rows: an array (1-D, 2-D, sometimes 3-D or a list) or a DataFrame with odd names."""
    d = draw(st.sampled_from([1, 2]))
    kind = draw(st.sampled_from(["array", "array", "vector", "frame", "list", "odd"]))
    if kind == "vector":
        return draw(numbers((n,)))
    values = draw(numbers((n, d)))
    if kind == "array":
        return values
    if kind == "list":
        return values.tolist()
    if kind == "frame":
        names = draw(st.lists(NAMES, min_size=d, max_size=d))
        if draw(st.booleans()) and d == 2:
            return pd.DataFrame(values, columns=pd.MultiIndex.from_tuples([("a", names[0]), ("b", names[1])]))
        return pd.DataFrame(values, columns=names)
    return draw(st.sampled_from([np.zeros((n, 2, 2)), np.zeros((0, 2)), np.zeros((n, 0)), "x", None,
                                 np.array([["1", "a"]] * n), [[1.0], [2.0, 3.0]]]))


LIKELIHOODS = [sf.Gaussian(), sf.Bernoulli(), sf.Categorical(), sf.Categorical(n_classes=3)]


# ---------------------------------------------------------------- sf.fit

@settings(max_examples=450, **SETTINGS)
@given(data=st.data())
def test_fit_gives_an_honest_result_or_a_clear_error(data):
    n = data.draw(st.sampled_from([3, 5]), label="rows")
    x = data.draw(features(n), label="x")
    y = data.draw(targets(n), label="y")
    likelihood = data.draw(st.sampled_from(LIKELIHOODS), label="likelihood")
    valid = (x, y) if data.draw(st.booleans(), label="valid") else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sf.FitWarning)
            warnings.simplefilter("error", np.exceptions.ComplexWarning)  # no imaginary part dropped silently
            r = sf.fit(sf.Linear(), likelihood, x, y, valid=valid, **FIT)
    except Exception as err:
        assert_scanfit_error(err)
        return
    event(f"status: {r.status.code}")
    assert r.status.code in CODES, r.status
    assert finite(r.params), (r.status, r.params)
    assert len(r.history) <= FIT["steps"]


def bad_index(kind):
    import jax.numpy as jnp

    outputs = {"rows-1": lambda p, x: x[1:] @ p["b"], "scalar": lambda p, x: jnp.sum(x @ p["b"]),
               "two": lambda p, x: jnp.stack([x @ p["b"], x @ p["b"]], axis=1),
               "int": lambda p, x: (x @ p["b"]).astype(jnp.int32), "good": lambda p, x: x @ p["b"]}
    return outputs[kind]


@settings(max_examples=60, **SETTINGS)
@given(kind=st.sampled_from(["rows-1", "scalar", "two", "int", "good", "good"]), width=st.sampled_from([1, 1, 2, 3]),
       start=st.sampled_from([None, None, {"b": [0.0, 0.0]}, {"b": [np.nan, 0.0]}, {"c": 0.0}, {"b": 0.0}]),
       likelihood=st.sampled_from(LIKELIHOODS))
def test_user_models_and_starts_are_checked(kind, width, start, likelihood):
    import jax.numpy as jnp

    x = np.linspace(-1, 1, 10).reshape(5, 2)
    y = np.array([0, 1, 0, 1, 2]) if likelihood.name == "categorical" else np.array([0, 1, 0, 1, 1])
    model = sf.Function(bad_index(kind), params={"b": jnp.zeros(2) if width == 1 else jnp.zeros((2, width))})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sf.FitWarning)
            r = sf.fit(model, likelihood, x, y, init_params=start, **FIT)
    except Exception as err:
        assert_scanfit_error(err)
        return
    event(f"status: {r.status.code}")
    assert r.status.code in CODES and finite(r.params)


# ---------------------------------------------------------------- predict

@pytest.fixture(scope="module")
def fitted():
    x = pd.DataFrame({"a": np.linspace(-1, 1, 20), "b": np.cos(np.arange(20.0))})
    return sf.fit(sf.Linear(), sf.Gaussian(), x, 1 + 2 * x.a - x.b, **FIT)


@settings(max_examples=300, **SETTINGS)
@given(data=st.data())
def test_predict_gives_one_finite_value_per_row_or_a_clear_error(fitted, data):
    n = data.draw(st.sampled_from([1, 2, 3]), label="rows")
    x = data.draw(features(n), label="x")
    if data.draw(st.booleans(), label="named"):  # the model's columns, in any order, some missing, one extra
        names = data.draw(st.permutations(["a", "b", "extra"]), label="names")[: data.draw(st.sampled_from([1, 2, 3]))]
        x = pd.DataFrame(data.draw(numbers((n, len(names))), label="values"), columns=names)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", np.exceptions.ComplexWarning)
            p = fitted.predict(x)
    except Exception as err:
        assert_scanfit_error(err)
        return
    event("predicted")
    assert p.shape == (n,)
    values = np.asarray(fitted.index(x))
    if np.all(np.abs(np.asarray(pd.DataFrame(x).to_numpy(), dtype=np.float64)) < 1e100):
        assert np.isfinite(p).all() and np.isfinite(values).all()


# ---------------------------------------------------------------- the CLI's table reader

CELLS = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers(-10**20, 10**20).map(str),
                  st.sampled_from(["", "nan", "inf", "-inf", "yes", "no", "a", '"x,y"', "1e400", "0x10", "True",
                                   "[bold]", "NA"]))


NUMBER_CELLS = st.one_of(st.floats(-1e6, 1e6).map(repr), st.integers(-5, 5).map(str))


@st.composite
def csv_text(draw):
    """CSV or TSV text: odd column names; either anything in the cells, or (half the time) a plausible
    table: numbers in the feature columns and a target (the last column) with a few values."""
    columns = draw(st.lists(st.one_of(NAMES.map(str), st.just("y")), min_size=1, max_size=4))
    if draw(st.booleans()):
        columns = columns + ["target"] if len(columns) < 2 else columns
        target = st.sampled_from(draw(st.sampled_from([["0", "1"], ["yes", "no"], ["a", "b", "c"], ["1.5", "-2", "7"]])))
        row = st.tuples(*([NUMBER_CELLS] * (len(columns) - 1) + [target])).map(list)
        rows = draw(st.lists(row, min_size=3, max_size=6))
    else:
        rows = draw(st.lists(st.lists(CELLS, min_size=len(columns), max_size=len(columns)), max_size=6))
    sep = draw(st.sampled_from([",", ",", "\t"]))
    header = sep.join(c.replace(sep, " ").replace("\n", " ").replace("\r", " ") for c in columns)
    return columns, "\n".join([header] + [sep.join(r) for r in rows]) + draw(st.sampled_from(["", "\n"])), sep


@settings(max_examples=400, **SETTINGS)
@given(table=csv_text(), suffix=st.sampled_from([".csv", ".tsv", ".txt", ".json"]),
       likelihood=st.sampled_from([None, "gaussian", "bernoulli", "categorical"]))
def test_table_reader_reads_or_says_why(tmp_path, table, suffix, likelihood):
    columns, text, _ = table
    path = tmp_path / f"t{suffix}"
    path.write_text(text, encoding="utf-8")
    try:
        frame = tables.read(path)
        target = str(frame.columns[-1])
        encoded = tables.encode_target(frame[frame.columns[-1]], likelihood)
        x = tables.features(frame, target, None) if target in frame.columns else None
    except Exception as err:
        assert_scanfit_error(err)
        return
    event(f"read: {encoded.likelihood}")
    assert len(encoded.codes) == len(frame) > 0
    assert encoded.likelihood in ("gaussian", "bernoulli", "categorical")
    if encoded.classes is not None:
        assert encoded.codes.min() >= 0 and encoded.codes.max() < len(encoded.classes)
    if x is not None:
        assert x.shape == (len(frame), frame.shape[1] - 1)


@settings(max_examples=60, **SETTINGS)
@given(table=csv_text())
def test_fit_table_fits_or_says_why(tmp_path, table):
    _, text, sep = table
    path = tmp_path / ("t.csv" if sep == "," else "t.tsv")
    path.write_text(text, encoding="utf-8")
    try:
        frame = tables.read(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sf.FitWarning)
            result, *_ = tables.fit_table(frame, target=str(frame.columns[-1]), model=sf.Linear(),
                                          valid_fraction=0.0, **FIT)
    except Exception as err:
        assert_scanfit_error(err)
        return
    event(f"status: {result.status.code}")
    assert result.status.code in CODES and finite(result.params)
