"""The notebook's six experiments, at the notebook's settings, in float32 with fixed seeds."""

import numpy as np
import pytest

import scanfit as sf

SEED = 0  # data seed for every experiment; model seeds are given per test


def test_a_linear_regression_matches_ols():
    d = sf.datasets.linear(seed=SEED)
    r = sf.fit(sf.Linear(), sf.Gaussian(), d.train.x, d.train.y, optimizer="gd", learning_rate=0.01, steps=500, seed=0)
    X = np.c_[np.ones(len(d.train.x)), d.train.x]
    ols = np.linalg.lstsq(X, d.train.y, rcond=None)[0]
    got = np.r_[r.params["beta0"], r.params["beta1"]]
    np.testing.assert_allclose(got, ols, atol=1e-3)
    assert len(r.history) == 500 and r.status.code == "completed"
    # sigma backed out from the residuals
    assert np.sqrt(r.final["train_mse"]) == pytest.approx(0.5, abs=0.01)


def test_b_hyperplane_logit_reaches_the_mle():
    sm = pytest.importorskip("statsmodels.api")
    d = sf.datasets.hyperplane(seed=SEED)
    r = sf.fit(sf.Linear(), sf.Bernoulli(), d.train.x, d.train.y, valid=(d.valid.x, d.valid.y),
               optimizer="gd", learning_rate=2.0, steps=5000, seed=0)
    assert r.final["train_accuracy"] >= 0.95 and r.final["valid_accuracy"] >= 0.95
    mle = sm.Logit(d.train.y.astype(float), sm.add_constant(d.train.x)).fit(disp=0, method="newton", tol=1e-12)
    assert r.final["train_objective"] == pytest.approx(mle.llf / len(d.train.y), abs=1e-4)
    hist = r.history
    assert {"beta0", "beta1_mean", "beta1_std", "train_false_pos", "valid_predavg"} <= set(hist.columns)
    assert "beta1_x0" not in hist.columns  # more than 10 coefficients: summaries only


def test_c_radial_logit_fails_as_it_should():
    d = sf.datasets.radial(seed=SEED)
    r = sf.fit(sf.Linear(), sf.Bernoulli(), d.train.x, d.train.y, valid=(d.valid.x, d.valid.y),
               optimizer="gd", learning_rate=2.0, steps=100, seed=0)
    assert r.final["valid_accuracy"] <= 0.6


def test_d_network_with_gradient_steps(hill):
    r = sf.fit(sf.MLP(hidden=2, activation="sigmoid"), sf.Bernoulli(), hill.train.x, hill.train.y,
               valid=(hill.valid.x, hill.valid.y), optimizer="gd", learning_rate=2.0, steps=2000, seed=1)
    assert r.final["valid_accuracy"] >= 0.95
    assert list(r.history.columns[:4]) == ["step", "train_objective", "train_accuracy", "train_false_pos"]


def test_e_network_with_rmsprop(hill):
    r = sf.fit(sf.MLP(hidden=2), sf.Bernoulli(), hill.train.x, hill.train.y, valid=(hill.valid.x, hill.valid.y),
               optimizer="rmsprop", learning_rate=0.01, steps=4000, seed=0)
    assert r.final["valid_accuracy"] >= 0.95


def test_f_flax_nnx_module_with_two_logits(hill):
    nnx = pytest.importorskip("flax.nnx")

    class Neural(nnx.Module):
        def __init__(self, hid, rngs):
            self.hidden = nnx.Linear(2, hid, rngs=rngs)
            self.output = nnx.Linear(hid, 2, rngs=rngs)

        def __call__(self, x):
            return self.output(nnx.sigmoid(self.hidden(x)))

    r = sf.fit(sf.Module(lambda rngs: Neural(2, rngs)), sf.Categorical(), hill.train.x, hill.train.y.astype(int),
               valid=(hill.valid.x, hill.valid.y.astype(int)), optimizer="rmsprop", learning_rate=0.01,
               steps=4000, seed=0)
    assert r.final["valid_accuracy"] >= 0.95
    probs = r.predict(hill.valid.x[:5])
    assert probs.shape == (5, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
