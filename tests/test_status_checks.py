"""What a fit's status and warnings claim, on data where a check used to misfire: a penalized fit
of separated classes (its optimum exists), Categorical labels 1..K (class 0 never occurs), a fit
without an intercept (no intercept-only model to compare with), weights that stand for fewer
observations than coefficients."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import scanfit as sf


def separated(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    return x, (x[:, 0] > 0).astype(float)


def fit_quietly(*args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = sf.fit(*args, **kwargs)
    return r, [str(w.message) for w in caught]


def test_separated_classes_without_a_penalty_are_separation_with_one_converged():
    x, y = separated()
    r, _ = fit_quietly(sf.Linear(), sf.Bernoulli(), x, y)
    assert r.status.code == "separation"
    for penalty in (sf.ElasticNet(alpha=0.01, l1_ratio=0), sf.ElasticNet(alpha=0.01, l1_ratio=0.5)):
        rp, caught = fit_quietly(sf.Linear(), sf.Bernoulli(), x, y, penalty=penalty)
        assert rp.status.code == "converged" and not any("separat" in m for m in caught), (penalty, rp.status)
        assert np.all(np.isfinite(rp.params["beta1"])) and abs(rp.params["beta1"][0]) < 50


def test_categorical_labels_from_one_say_class_zero_never_occurs():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 2))
    labels = 1 + (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)  # 1..3
    labels = np.where(rng.random(300) < 0.2, rng.integers(1, 4, 300), labels)
    r, caught = fit_quietly(sf.Linear(), sf.Categorical(), x, labels)
    assert r.status.code == "separation" and "classes [0] never occur in y" in r.status.message
    assert any("classes [0] never occur" in m for m in caught)
    ok, _ = fit_quietly(sf.Linear(), sf.Categorical(), x, labels - 1)
    assert ok.status.code == "converged"


def test_no_intercept_fit_is_not_compared_with_the_intercept_only_model():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 2)) + 3.0
    y = 5.0 + 0.01 * x[:, 0] + rng.normal(size=400)  # almost all of y is the constant the fit leaves out
    r, caught = fit_quietly(sf.Linear(intercept=False), sf.Gaussian(), x, y)
    assert r.status.code == "converged" and not any("intercept-only" in m for m in caught)
    noise = 5.0 + rng.normal(size=400)
    z = rng.normal(size=400)
    z -= z.mean() + (noise - noise.mean()) * ((z - z.mean()) @ (noise - noise.mean())) / np.sum((noise - noise.mean()) ** 2)
    constant_fit, caught = fit_quietly(sf.Linear(), sf.Gaussian(), z[:, None], noise)  # z explains none of y
    assert any("no better than the intercept-only model" in m for m in caught)


def test_weights_that_sum_to_fewer_observations_than_coefficients_are_refused():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(100, 3))
    y = x @ [1.0, -1.0, 0.5] + rng.normal(size=100)
    w = rng.uniform(0.5, 1.5, 100) / 1000  # relative weights summing to about 0.1
    r, _ = fit_quietly(sf.Linear(), sf.Gaussian(), x, y, weights=w)
    with pytest.raises(ValueError, match=r"weights sum to 0\.\d+, not more than the 4 coefficients.*frequency"):
        r.summary()
    scaled, _ = fit_quietly(sf.Linear(), sf.Gaussian(), x, y, weights=w * 100 / w.sum())
    assert np.isfinite(scaled.summary()["std_err"]).all()
