"""Inputs that used to reach JAX unchecked (issue 15): each is refused before compiling, by scanfit,
with a message that names the parameter, what was received and the fix."""

import warnings

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import scanfit as sf
from scanfit.data import checks
from scanfit.engine import loop

RNG = np.random.default_rng(0)
X = RNG.normal(size=(50, 2))
Y = X @ np.array([1.0, -1.0]) + RNG.normal(size=50)
YB = (Y > 0).astype(int)
GD = dict(optimizer="gd", steps=5)


@pytest.mark.parametrize("seed", [2**63, -2**63 - 1, 2**70, 1.5, True])
def test_seed_out_of_range(seed):
    with pytest.raises(ValueError, match=r"The 'seed' parameter of fit must be an int in -2\*\*63\.\.2\*\*63 - 1\. "
                                         rf"Got {seed!r} instead"):
        sf.fit(sf.Linear(), sf.Gaussian(), X, Y, seed=seed, **GD)


def test_seed_at_the_limits_runs():
    for seed in (2**63 - 1, -2**63):
        assert sf.fit(sf.Linear(), sf.Gaussian(), X, Y, seed=seed, **GD).status.code == "completed"


def model_of(predict, params):
    def my_index(p, x):
        return predict(p, x)

    return sf.Function(my_index, params=params)


@pytest.mark.parametrize("predict, params, likelihood, y, got, need", [
    (lambda p, x: x[1:] @ p["b"], {"b": jnp.zeros(2)}, sf.Gaussian(), Y, r"\(49,\)", r"\(50,\)"),
    (lambda p, x: jnp.sum(x @ p["b"]), {"b": jnp.zeros(2)}, sf.Gaussian(), Y, r"\(\)", r"\(50,\)"),
    (lambda p, x: x @ p["b"], {"b": jnp.zeros((2, 2))}, sf.Gaussian(), Y, r"\(50, 2\)", r"\(50,\)"),
    (lambda p, x: x @ p["b"], {"b": jnp.zeros((2, 2))}, sf.Bernoulli(), YB, r"\(50, 2\)", r"\(50,\)"),
    (lambda p, x: x @ p["b"], {"b": jnp.zeros((2, 3))}, sf.Categorical(), YB, r"\(50, 3\)",
     r"the Categorical likelihood with 2 classes needs shape \(50, 2\)"),
    (lambda p, x: (x @ p["b"])[:, None] * (x @ p["b"])[None, :], {"b": jnp.zeros(2)}, sf.Gaussian(), Y,
     r"\(50, 50\)", r"\(50,\)"),
])
def test_function_output_shape_is_checked_before_compiling(predict, params, likelihood, y, got, need):
    before = loop.traces()
    with pytest.raises(ValueError, match=rf"The 'model' parameter of fit \(sf\.Function\(predict=my_index\)\) "
                                         rf"returns an index of shape {got} for x of shape \(50, 2\).*{need}"):
        sf.fit(model_of(predict, params), likelihood, X, y, **GD)
    assert loop.traces() == before  # refused before compiling


def test_function_integer_output_is_refused():
    model = model_of(lambda p, x: jnp.round(x @ p["b"]).astype(jnp.int32), {"b": jnp.ones(2)})
    with pytest.raises(TypeError, match=r"returns int32 values; the Gaussian likelihood needs floating-point values "
                                        r"\(an integer output has no gradient"):
        sf.fit(model, sf.Gaussian(), X, Y, **GD)


def test_function_that_fails_on_the_data_names_the_model():
    model = model_of(lambda p, x: x @ p["b"], {"b": jnp.ones(3)})
    with pytest.raises(ValueError, match=r"\(sf\.Function\(predict=my_index\)\) fails on x of shape \(50, 2\) with "
                                         r"its starting parameters: TypeError: .*Make predict\(params, x\) work"):
        sf.fit(model, sf.Gaussian(), X, Y, **GD)


def test_function_with_the_right_shapes_still_fits():
    two = model_of(lambda p, x: x @ p["b"], {"b": jnp.zeros((2, 2))})
    assert sf.fit(two, sf.Categorical(), X, YB, **GD).status.code == "completed"
    column = model_of(lambda p, x: x @ p["b"], {"b": jnp.zeros((2, 1))})  # (n, 1) is one output
    assert sf.fit(column, sf.Gaussian(), X, Y, **GD).status.code == "completed"


@pytest.mark.parametrize("start, error, message", [
    ({"b0": 0.0, "beta1": np.zeros(2)}, ValueError,
     r"The 'init_params' parameter of fit does not match the parameters of sf\.Linear\(\): missing \['beta0'\]; "
     r"unexpected \['b0'\]\. Pass a pytree with exactly \['beta0'\], \['beta1'\]"),
    (3.0, ValueError, r"missing \['beta0'\], \['beta1'\]; unexpected \(a bare float\)"),
    ({"beta0": 0.0, "beta1": np.zeros(3)}, ValueError,
     r"The value init_params\['beta1'\] of fit has shape \(3,\), but sf\.Linear\(\) needs \(2,\) here"),
    ({"beta0": np.nan, "beta1": np.zeros(2)}, ValueError,
     r"The value init_params\['beta0'\] of fit holds 1 NaN, infinite or out-of-range values \(such as nan, beyond "
     r"float32\); starting values must be finite numbers"),
    ({"beta0": 0.0, "beta1": [np.inf, 0.0]}, ValueError, r"init_params\['beta1'\] of fit holds 1 NaN, infinite"),
    ({"beta0": 1e300, "beta1": np.zeros(2)}, ValueError, r"such as 1e\+300, beyond float32"),
    ({"beta0": "zero", "beta1": np.zeros(2)}, TypeError, r"init_params\['beta0'\] of fit must hold real numbers"),
    ({"beta0": 1j, "beta1": np.zeros(2)}, TypeError, r"must hold real numbers\. Got dtype complex128"),
])
def test_init_params_are_checked_against_the_model(start, error, message):
    with pytest.raises(error, match=message):
        sf.fit(sf.Linear(), sf.Gaussian(), X, Y, init_params=start, **GD)


def test_good_init_params_start_the_fit_there():
    start = {"beta0": 0.5, "beta1": [1.0, -1.0]}  # a list is a leaf, as before
    r = sf.fit(sf.Linear(), sf.Gaussian(), X, Y, init_params=start, optimizer="gd", steps=1, standardize=False)
    assert r.history["beta0"].iloc[0] == pytest.approx(0.5)


def test_early_stopping_monitor_is_checked_against_the_likelihood():
    with pytest.raises(ValueError, match=r"The 'monitor' parameter of EarlyStopping must name a statistic that a "
                                         r"Gaussian fit records, one of \['valid_objective', 'valid_mse', "
                                         r"'train_objective', 'train_mse'\]\. Got 'valid_nonsense' instead"):
        sf.fit(sf.Linear(), sf.Gaussian(), X, Y, early_stopping=sf.EarlyStopping(monitor="valid_nonsense"), **GD)
    with pytest.raises(ValueError, match=r"a Gaussian fit records.*Got 'train_accuracy' instead"):
        sf.fit(sf.Linear(), sf.Gaussian(), X, Y, early_stopping=sf.EarlyStopping(monitor="train_accuracy"), **GD)
    r = sf.fit(sf.Linear(), sf.Bernoulli(), X, YB, early_stopping=sf.EarlyStopping(monitor="valid_accuracy"), **GD)
    assert r.status.code in ("max_steps", "stopped_early")


def test_integer_column_names_round_trip_to_predict():
    frame = pd.DataFrame(X)  # columns 0 and 1
    r = sf.fit(sf.Linear(), sf.Gaussian(), frame, Y, **GD)
    assert r.feature_names == ("0", "1")
    np.testing.assert_array_equal(r.predict(frame), r.predict(X))
    np.testing.assert_array_equal(r.predict(frame[[1, 0]]), r.predict(X))  # found by name, not by position
    np.testing.assert_array_equal(r.predict(frame.rename(columns=str)), r.predict(X))


def test_multiindex_and_repeated_column_names_are_refused():
    multi = pd.DataFrame(X, columns=pd.MultiIndex.from_tuples([("a", 1), ("a", 2)]))
    with pytest.raises(ValueError, match=r"The 'x' table has MultiIndex columns \(levels 2\), such as \('a', '1'\); "
                                         r"give each column one name first"):
        sf.fit(sf.Linear(), sf.Gaussian(), multi, Y, **GD)
    for columns in (["a", "a"], [1, "1"]):
        with pytest.raises(ValueError, match=r"The 'x' table has repeated column names \['(a|1)'\] \(as text\)"):
            sf.fit(sf.Linear(), sf.Gaussian(), pd.DataFrame(X, columns=columns), Y, **GD)


@pytest.mark.parametrize("x, y, name, where", [
    (X + 1j, Y, "x", ""),
    ([[complex(a, 1), b] for a, b in X], Y, "x", ""),
    (pd.DataFrame({"a": X[:, 0] + 0j, "b": X[:, 1]}), Y, "x", r" \(columns \['a'\]\)"),
    (X, Y + 1j, "y", ""),
    (X, np.where(np.arange(50) == 3, np.nan + 1j, Y + 0j), "y", ""),
])
def test_complex_values_are_refused(x, y, name, where):
    with pytest.raises(TypeError, match=rf"The '{name}' parameter holds complex numbers{where}; scanfit fits real "
                                        rf"numbers: pass the real part \(np\.real\)"):
        sf.fit(sf.Linear(), sf.Gaussian(), x, y, **GD)


def test_complex_labels_for_categorical_and_dates_are_refused():
    with pytest.raises(TypeError, match=r"The 'y' parameter holds complex numbers"):
        sf.fit(sf.Linear(), sf.Categorical(), X, YB + 0j, **GD)
    dates = np.datetime64("2020-01-01") + np.arange(50)
    with pytest.raises(TypeError, match=r"The 'x' parameter holds dates or durations; .*days since a start date"):
        sf.fit(sf.Linear(), sf.Gaussian(), dates, Y, **GD)


def test_sparse_labels_are_refused_unless_the_class_count_is_given():
    with pytest.raises(ValueError, match=r"The labels in 'y' look like codes, not classes 0\.\.K-1: 1 distinct value "
                                         r"\(94\) with the largest 94, so Categorical\(\) would fit 95 classes\. Encode "
                                         r"the labels as 0\.\.K-1 .*Categorical\(n_classes=\.\.\.\)"):
        sf.fit(sf.Linear(), sf.Categorical(), X[:1], np.array([94]))
    with pytest.raises(ValueError, match=r"3 distinct values \(0, 7, 1000\) with the largest 1000"):
        sf.fit(sf.Linear(), sf.Categorical(), X[:3], np.array([0, 7, 1000]), **GD)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sf.FitWarning)  # classes that never occur: no maximum, as it says
        r = sf.fit(sf.Linear(), sf.Categorical(n_classes=25), X[:3], np.array([0, 3, 24]), **GD)
    assert r.likelihood.n_classes == 25
    # dense labels, few labels below the threshold, and labels the likelihood names itself pass this check
    checks.check_labels(np.arange(40), sf.Categorical())
    checks.check_labels(np.array([0, 20]), sf.Categorical())
    checks.check_labels(np.array([-1, 50]), sf.Categorical())
    checks.check_labels(np.array([0, 50]), sf.Bernoulli())
