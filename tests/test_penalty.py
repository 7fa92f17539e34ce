"""Penalized fits (sf.ElasticNet) against scikit-learn on the same objective."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import ElasticNet, LogisticRegression

import scanfit as sf


@pytest.fixture(scope="module")
def cancer():
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return x.iloc[:, :10], y  # raw columns: the fit standardizes, the penalty is on the user's scale


@pytest.fixture(scope="module")
def diabetes():
    return load_diabetes(return_X_y=True, as_frame=True)


@pytest.mark.parametrize("C", [0.05, 1.0])
def test_ridge_logit_matches_sklearn(cancer, C):
    x, y = cancer
    r = sf.fit(sf.Linear(), sf.Bernoulli(), x, y, penalty=sf.ElasticNet(alpha=1 / (C * len(y)), l1_ratio=0))
    ref = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(x, y)
    assert r.status.code == "converged" and r.config.optimizer == "newton"
    np.testing.assert_allclose(r.params["beta1"], ref.coef_[0], rtol=1e-5, atol=1e-7 * np.abs(ref.coef_).max())
    assert float(r.params["beta0"]) == pytest.approx(ref.intercept_[0], rel=1e-5)
    assert "penalty" in r.history.columns and r.final["penalty"] > 0


@pytest.mark.parametrize("l1_ratio", [0.0, 0.5, 1.0])
def test_elastic_net_matches_sklearn(diabetes, l1_ratio):
    x, y = diabetes
    r = sf.fit(sf.Linear(), sf.Gaussian(), x, y, penalty=sf.ElasticNet(alpha=0.5, l1_ratio=l1_ratio), steps=5000)
    ref = ElasticNet(alpha=0.5, l1_ratio=l1_ratio, tol=1e-14, max_iter=1_000_000).fit(x, y)
    assert r.status.code == "converged", r.status
    assert r.config.optimizer == ("newton" if l1_ratio == 0 else "proximal")
    np.testing.assert_allclose(r.params["beta1"], ref.coef_, rtol=1e-5, atol=1e-5 * np.abs(ref.coef_).max())
    assert float(r.params["beta0"]) == pytest.approx(ref.intercept_, rel=1e-5)
    np.testing.assert_array_equal(r.params["beta1"] == 0, ref.coef_ == 0)  # the same coefficients are exactly zero


def test_lasso_path_sets_coefficients_exactly_to_zero(diabetes):
    x, y = diabetes
    zeros = []
    for alpha in (0.01, 0.3, 1.0, 3.0, 100.0):
        r = sf.fit(sf.Linear(), sf.Gaussian(), x, y, penalty=sf.ElasticNet(alpha=alpha, l1_ratio=1.0), steps=5000)
        assert r.status.code == "converged"
        zeros.append(int(np.sum(r.params["beta1"] == 0.0)))
    assert zeros == sorted(zeros) and zeros[0] < 10 and zeros[-1] == 10  # more zeros as alpha grows, then all


def test_l1_with_plain_gradient_steps_and_a_network(cancer):
    x, y = cancer
    r = sf.fit(sf.Linear(), sf.Bernoulli(), x, y, optimizer="gd", learning_rate=2.0, steps=20000, record_every=100,
               penalty=sf.ElasticNet(alpha=0.02, l1_ratio=1.0))
    exact = sf.fit(sf.Linear(), sf.Bernoulli(), x, y, penalty=sf.ElasticNet(alpha=0.02, l1_ratio=1.0), steps=5000)
    np.testing.assert_array_equal(r.params["beta1"] == 0, exact.params["beta1"] == 0)
    # proximal gradient descent is slow on these collinear columns: close in the penalized objective
    gap = (exact.final["train_objective"] - exact.final["penalty"]) - (r.final["train_objective"] - r.final["penalty"])
    assert 0 <= gap < 1e-6
    net = sf.fit(sf.MLP(hidden=4), sf.Bernoulli(), x, y, penalty=sf.ElasticNet(alpha=0.01, l1_ratio=1.0),
                 learning_rate=0.5, steps=500)
    assert net.config.optimizer == "gd" and np.sum(net.params["W0"] == 0) > 0


def test_penalized_fits_refuse_classical_inference_and_bad_options(cancer):
    x, y = cancer
    r = sf.fit(sf.Linear(), sf.Bernoulli(), x, y, penalty=sf.ElasticNet(alpha=0.01))
    with pytest.raises(ValueError, match="penalized.*classical standard errors"):
        r.summary()
    with pytest.raises(ValueError, match=r"L1 part of the penalty.*optimizer='proximal'.*Got optimizer='adam'"):
        sf.fit(sf.Linear(), sf.Bernoulli(), x, y, optimizer="adam", penalty=sf.ElasticNet(alpha=0.01, l1_ratio=1))
    with pytest.raises(ValueError, match="'alpha' parameter of ElasticNet must be a float >= 0. Got -1"):
        sf.ElasticNet(alpha=-1)
    with pytest.raises(ValueError, match=r"'l1_ratio' parameter of ElasticNet must be a float in \[0, 1\]"):
        sf.ElasticNet(alpha=1, l1_ratio=2)


def test_penalized_model_saves_and_loads(diabetes, tmp_path):
    x, y = diabetes
    r = sf.fit(sf.Linear(), sf.Gaussian(), x, y, penalty=sf.ElasticNet(alpha=0.5, l1_ratio=0.5), steps=3000)
    r.save(tmp_path / "m")
    back = sf.load(tmp_path / "m")
    assert back.config.penalty == sf.ElasticNet(alpha=0.5, l1_ratio=0.5)
    np.testing.assert_array_equal(back.predict(x.iloc[:20]), r.predict(x.iloc[:20]))
