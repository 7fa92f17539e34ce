import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest

import scanfit as sf
from scanfit.engine import loop as engine


def small(n=200, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    index = 0.5 + x @ np.arange(1, d + 1) / d
    bernoulli = (index + rng.logistic(size=n)) > 0
    return x, {"gaussian": index + 0.3 * rng.standard_normal(n), "bernoulli": bernoulli, "probit": bernoulli,
               "categorical": np.digitize(index + rng.logistic(size=n), [0.0, 1.0]),
               "poisson": rng.poisson(np.exp(index)), "negbin": rng.poisson(np.exp(index) * rng.gamma(2.0, 0.5, n))}


LIKELIHOODS = {"gaussian": sf.Gaussian, "bernoulli": sf.Bernoulli, "categorical": sf.Categorical,
               "probit": lambda: sf.Bernoulli(link="probit"), "poisson": sf.Poisson, "negbin": sf.NegativeBinomial}
MODELS = {
    "linear": lambda: sf.Linear(),
    "mlp": lambda: sf.MLP(hidden=(4, 3), activation="tanh"),
    "function": lambda: sf.Function(lambda p, x: x @ p["w"] + p["b"][None, :],
                                    init=lambda key: {"w": 0.1 * jnp.ones((3, 3)), "b": jnp.zeros(3)}),
}


CASES = [(m, lik, "adam") for m in MODELS for lik in LIKELIHOODS if m != "function" or lik == "categorical"]
CASES += [("linear", lik, opt) for lik in ("probit", "poisson", "negbin") for opt in ("gd", "rmsprop", "lbfgs", "newton")]
CASES += [("mlp", "bernoulli", opt) for opt in ("gd", "rmsprop", "sgd", optax.adabelief(0.05))]


@pytest.mark.parametrize("model, lik, optimizer", CASES)
def test_every_model_likelihood_optimizer(model, lik, optimizer):
    x, ys = small()
    r = sf.fit(MODELS[model](), LIKELIHOODS[lik](), x, ys[lik], valid=(x[:50], ys[lik][:50]),
               optimizer=optimizer, learning_rate=0.05, steps=40, record_every=4, seed=0)
    h = r.history
    if optimizer in ("newton", "lbfgs"):  # they stop at the maximum
        assert len(h) >= 2 and list(h["step"]) == list(range(0, 4 * len(h), 4))
    else:
        assert len(h) == 10 and list(h["step"]) == list(range(0, 40, 4))
    assert np.isfinite(h["train_objective"]).all() and np.isfinite(h["valid_objective"]).all()
    assert h["train_objective"].iloc[-1] > h["train_objective"].iloc[0]  # it learns
    assert r.status.code == ("converged" if optimizer in ("newton", "lbfgs") else "completed"), r.status
    pred = r.predict(x[:7])
    assert pred.shape == ((7, 3) if lik == "categorical" else (7,))


def test_same_seed_bit_identical_different_seed_different(hill):
    kw = dict(valid=(hill.valid.x, hill.valid.y), optimizer="rmsprop", learning_rate=0.01, steps=50)
    a = sf.fit(sf.MLP(hidden=2), sf.Bernoulli(), hill.train.x, hill.train.y, seed=3, **kw)
    b = sf.fit(sf.MLP(hidden=2), sf.Bernoulli(), hill.train.x, hill.train.y, seed=3, **kw)
    c = sf.fit(sf.MLP(hidden=2), sf.Bernoulli(), hill.train.x, hill.train.y, seed=4, **kw)
    pd.testing.assert_frame_equal(a.history, b.history, check_exact=True)
    assert not np.array_equal(a.params["W0"], c.params["W0"])


def test_second_fit_does_not_recompile(hill):
    kw = dict(optimizer="adam", learning_rate=0.01, steps=30, seed=0)
    sf.fit(sf.MLP(hidden=3), sf.Bernoulli(), hill.train.x, hill.train.y, **kw)
    before = engine.traces()
    r = sf.fit(sf.MLP(hidden=3), sf.Bernoulli(), hill.train.x[::-1], hill.train.y[::-1], **dict(kw, seed=5))
    assert engine.traces() == before
    assert len(r.history) == 30


def test_a_new_learning_rate_reuses_the_compiled_loop(hill):
    kw = dict(optimizer="rmsprop", steps=30, seed=0)
    a = sf.fit(sf.MLP(hidden=3), sf.Bernoulli(), hill.train.x, hill.train.y, learning_rate=0.01, **kw)
    before = engine.traces()
    b = sf.fit(sf.MLP(hidden=3), sf.Bernoulli(), hill.train.x, hill.train.y, learning_rate=0.2, **kw)
    assert engine.traces() == before
    # and the new rate is the one used: the first step moves further
    step = lambda r: np.abs(r.history_of(0)["train_objective"].diff().iloc[1])  # noqa: E731
    assert step(b) > 5 * step(a)


def test_statistics_match_a_direct_computation(hill):
    r = sf.fit(sf.MLP(hidden=2), sf.Bernoulli(), hill.train.x, hill.train.y, valid=(hill.valid.x, hill.valid.y),
               steps=20, seed=0)
    p = r.predict(hill.valid.x)
    pred, y = p >= 0.5, hill.valid.y
    assert r.final["valid_accuracy"] == pytest.approx(np.mean(pred == y), abs=1e-6)
    assert r.final["valid_false_pos"] == pytest.approx(np.mean(pred & ~y), abs=1e-6)
    assert r.final["valid_false_neg"] == pytest.approx(np.mean(~pred & y), abs=1e-6)
    ll = np.mean(np.where(y, np.log(p), np.log1p(-p)))
    assert r.final["valid_objective"] == pytest.approx(ll, rel=1e-4)


def test_history_row_is_the_state_before_the_update():
    x, ys = small()
    r = sf.fit(sf.Linear(), sf.Gaussian(), x, ys["gaussian"], steps=3, init_params={"beta0": 0.0, "beta1": [0.0] * 3})
    assert r.history["beta0"].iloc[0] == 0.0
    assert r.history["train_mse"].iloc[0] == pytest.approx(np.mean(ys["gaussian"] ** 2), rel=1e-5)


def test_coefficient_summaries_are_the_notebooks_mean_and_std():
    x, ys = small()
    b1 = [0.5, -1.0, 2.25]
    r = sf.fit(sf.Linear(), sf.Gaussian(), x, ys["gaussian"], steps=1, init_params={"beta0": 0.25, "beta1": b1})
    row = r.history.iloc[0]
    assert row["beta0"] == 0.25
    assert row["beta1_mean"] == pytest.approx(np.mean(b1), rel=1e-6)
    assert row["beta1_std"] == pytest.approx(np.std(b1), rel=1e-6)


def test_dataframe_columns_name_the_coefficients():
    x, ys = small()
    frame = pd.DataFrame(x, columns=["age", "income", "score"])
    r = sf.fit(sf.Linear(), sf.Gaussian(), frame, pd.Series(ys["gaussian"]), steps=10)
    assert r.feature_names == ("age", "income", "score")
    assert {"beta1_age", "beta1_income", "beta1_score"} <= set(r.history.columns)
    np.testing.assert_allclose(r.predict(frame[["score", "age", "income"]]), r.predict(x), rtol=1e-6)
    with pytest.raises(ValueError, match=r"lacks the feature columns \['score'\]"):
        r.predict(frame[["age", "income"]])


def test_divergence_is_reported_with_its_step():
    x, ys = small()
    with pytest.warns(sf.FitWarning, match=r"diverged.*at step \d+.*smaller learning_rate"):
        r = sf.fit(sf.Linear(), sf.Gaussian(), x * 100, ys["gaussian"], optimizer="gd", learning_rate=10.0, steps=200,
                   standardize=False)
    assert r.status.code == "diverged" and r.status.step is not None
    assert all(np.isfinite(v).all() for v in r.params.values())
    with pytest.raises(sf.FitError, match="diverged"):
        sf.fit(sf.Linear(), sf.Gaussian(), x * 100, ys["gaussian"], optimizer="gd", learning_rate=10.0, steps=200,
               standardize=False, throw=True)


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=0), "'steps' parameter of fit must be an int >= 1. Got 0"),
    (dict(learning_rate=-0.1), "'learning_rate' parameter of fit must be a float > 0. Got -0.1"),
    (dict(optimizer="adamm"), r"'optimizer' parameter must be one of \['gd', 'sgd', 'adam'.*Got 'adamm'"),
    (dict(steps=10, record_every=3), "multiple of record_every"),
    (dict(dtype="float16"), "'dtype' parameter of fit must be 'auto', 'float32' or 'float64'"),
])
def test_bad_options(kwargs, match):
    x, ys = small()
    with pytest.raises(ValueError, match=match):
        sf.fit(sf.Linear(), sf.Gaussian(), x, ys["gaussian"], **kwargs)


def test_bad_data():
    x, ys = small()
    y = ys["gaussian"]
    with pytest.raises(ValueError, match="'x' has 200 rows but 'y' has 199"):
        sf.fit(sf.Linear(), sf.Gaussian(), x, y[:-1])
    bad = x.copy()
    bad[17, 2] = np.nan
    with pytest.raises(ValueError, match="first is nan in column 'x2' at row 17"):
        sf.fit(sf.Linear(), sf.Gaussian(), bad, y)
    with pytest.raises(ValueError, match="'x' parameter is empty"):
        sf.fit(sf.Linear(), sf.Gaussian(), np.zeros((0, 2)), [])
    with pytest.raises(ValueError, match=r"needs 'y' in \{0, 1\}"):
        sf.fit(sf.Linear(), sf.Bernoulli(), x, y)
    with pytest.raises(ValueError, match="needs 'valid_y' in"):
        sf.fit(sf.Linear(), sf.Bernoulli(), x, ys["bernoulli"], valid=(x, y))
    with pytest.raises(ValueError, match="labels in 0..1"):
        sf.fit(sf.Linear(), sf.Categorical(n_classes=2), x, ys["categorical"])
    with pytest.raises(TypeError, match="non-numeric columns \\['city'\\]"):
        sf.fit(sf.Linear(), sf.Gaussian(), pd.DataFrame({"a": x[:, 0], "city": ["x"] * 200}), y)
    with pytest.raises(TypeError, match="wrap it as sf.Function"):
        sf.fit(lambda p, x: x, sf.Gaussian(), x, y)


def test_float64_leaves_the_global_setting_alone():
    import jax

    x, ys = small()
    r = sf.fit(sf.Linear(), sf.Gaussian(), x, ys["gaussian"], steps=5, dtype="float64")
    assert r.params["beta1"].dtype == np.float64
    assert not jax.config.jax_enable_x64
    assert jnp.zeros(1).dtype == jnp.float32
