"""Count models, the probit link, frequency weights and offsets, against statsmodels in float64."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import statsmodels.api as sm

import scanfit as sf


def rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


@pytest.fixture(scope="module")
def randhie():
    d = sm.datasets.randhie.load_pandas()
    return d.exog, d.endog  # mdvis on the other columns


@pytest.fixture(scope="module")
def spector():
    d = sm.datasets.spector.load_pandas()
    return d.exog, d.endog


def test_poisson_matches_statsmodels(randhie):
    x, y = randhie
    r = sf.fit(sf.Linear(), sf.Poisson(), x, y)
    ref = sm.Poisson(y, sm.add_constant(x)).fit(disp=0, tol=1e-12, maxiter=100)
    assert r.status.code == "converged" and r.config.optimizer == "newton"
    s = r.summary()
    assert rel(s["estimate"], ref.params) < 1e-6 and rel(s["std_err"], ref.bse) < 1e-5
    assert s.attrs["loglik"] == pytest.approx(ref.llf, rel=1e-10)
    assert r.final["train_pseudo_r2"] == pytest.approx(ref.prsquared, rel=1e-8)
    assert {"train_deviance", "train_mae"} <= set(r.history.columns)
    mu = ref.predict()
    assert r.final["train_mae"] == pytest.approx(np.mean(np.abs(y - mu)), rel=1e-8)
    glm = sm.GLM(y, sm.add_constant(x), family=sm.families.Poisson()).fit(tol=1e-12)
    assert r.final["train_deviance"] == pytest.approx(glm.deviance / len(y), rel=1e-8)
    np.testing.assert_allclose(r.predict(x), mu, rtol=1e-8)


def test_negative_binomial_matches_statsmodels(randhie):
    x, y = randhie
    r = sf.fit(sf.Linear(), sf.NegativeBinomial(), x, y)
    ref = sm.NegativeBinomial(y, sm.add_constant(x)).fit(disp=0, method="newton", maxiter=100, tol=1e-12)
    assert r.status.code == "converged"
    s = r.summary()
    assert list(s.index)[-1] == "alpha"
    assert rel(s["estimate"], ref.params) < 1e-6 and rel(s["std_err"], ref.bse) < 1e-5
    assert abs(s.loc["alpha", "estimate"] / ref.params["alpha"] - 1) < 1e-5
    assert abs(s.loc["alpha", "std_err"] / ref.bse["alpha"] - 1) < 1e-5
    assert "alpha" in r.history.columns  # the dispersion's path is recorded
    assert r.final["train_pseudo_r2"] == pytest.approx(ref.prsquared, rel=1e-6)


@pytest.mark.parametrize("alpha", [6.4e-10, 1e-3, 0.5, 20.0])
def test_negative_binomial_loglik_is_accurate_as_alpha_goes_to_zero(alpha):
    """log Gamma(y + 1/alpha) - log Gamma(1/alpha) and theta log(theta / (theta + mu)) lose every digit as
    differences of huge numbers when alpha is near 0 (a fit at alpha = 6.4e-10 reported a log-likelihood
    above Poisson's supremum); against the exact sum for integer counts."""
    import math

    from scanfit.likelihoods import poisson

    y = np.array([0.0, 1.0, 3.0, 17.0, 250.0])
    eta = np.array([0.3, -1.0, 1.2, 2.8, 5.5])
    th = 1.0 / alpha
    exact = np.array([math.fsum(math.log(th + j) for j in range(int(k))) - math.lgamma(k + 1.0)
                      - th * math.log1p(math.exp(e) / th) - k * math.log1p(th / math.exp(e)) for k, e in zip(y, eta)])
    with jax.enable_x64(True):
        ours = np.asarray(poisson._nb_loglik(jnp.asarray(y), jnp.asarray(eta), jnp.log(alpha)))
    np.testing.assert_allclose(ours, exact, rtol=0, atol=1e-11)
    if alpha < 1e-6:  # NB tends to Poisson
        pois = y * eta - np.exp(eta) - np.array([math.lgamma(k + 1.0) for k in y])
        np.testing.assert_allclose(ours, pois, atol=1e-6)


def test_probit_matches_statsmodels(spector):
    x, y = spector
    r = sf.fit(sf.Linear(), sf.Bernoulli(link="probit"), x, y)
    ref = sm.Probit(y, sm.add_constant(x)).fit(disp=0, tol=1e-12)
    assert r.status.code == "converged"
    s = r.summary()
    assert rel(s["estimate"], ref.params) < 1e-6 and rel(s["std_err"], ref.bse) < 1e-5
    np.testing.assert_allclose(r.predict(x), ref.predict(), rtol=1e-7)
    with pytest.raises(ValueError, match=r"'link' parameter of Bernoulli must be one of \['logit', 'probit'\]"):
        sf.Bernoulli(link="cloglog")


def test_frequency_weights_equal_repeated_rows(spector, randhie):
    x, y = spector
    w = np.random.default_rng(0).integers(0, 4, len(y))
    weighted = sf.fit(sf.Linear(), sf.Bernoulli(), x, y, weights=w)
    repeated = sf.fit(sf.Linear(), sf.Bernoulli(), x.loc[x.index.repeat(w)], y.loc[y.index.repeat(w)])
    for cov in ("nonrobust", "robust"):
        a, b = weighted.summary(cov_type=cov), repeated.summary(cov_type=cov)
        np.testing.assert_allclose(a["estimate"], b["estimate"], rtol=1e-10)
        np.testing.assert_allclose(a["std_err"], b["std_err"], rtol=1e-10)
    assert weighted.summary().attrs["n_obs"] == w.sum()
    assert weighted.final["train_objective"] == pytest.approx(repeated.final["train_objective"], rel=1e-10)
    xr, yr = randhie
    wr = np.random.default_rng(1).integers(1, 3, len(yr))
    a = sf.fit(sf.Linear(), sf.Gaussian(), xr, yr, weights=wr).summary()
    b = sf.fit(sf.Linear(), sf.Gaussian(), xr.loc[xr.index.repeat(wr)], yr.loc[yr.index.repeat(wr)]).summary()
    np.testing.assert_allclose(a["std_err"], b["std_err"], rtol=1e-10)


@pytest.mark.parametrize("bad, match", [
    (lambda n: -np.ones(n), r"'weights' parameter of fit must be >= 0.*Got -1.0 at row 0"),
    (lambda n: np.r_[np.nan, np.ones(n - 1)], r"'weights' parameter of fit holds nan at row 0"),
    (lambda n: np.zeros(n), r"'weights' parameter of fit is zero for every row"),
    (lambda n: np.ones(n - 1), r"'weights' parameter of fit must have one value per row"),
])
def test_bad_weights_are_refused(spector, bad, match):
    x, y = spector
    with pytest.raises(ValueError, match=match):
        sf.fit(sf.Linear(), sf.Bernoulli(), x, y, weights=bad(len(y)))


def test_exposure_and_offset_match_statsmodels_glm(randhie):
    x, y = randhie
    exposure = np.random.default_rng(2).uniform(0.5, 2.0, len(y))
    r = sf.fit(sf.Linear(), sf.Poisson(), x, y, exposure=exposure)
    ref = sm.GLM(y, sm.add_constant(x), family=sm.families.Poisson(), exposure=exposure).fit(tol=1e-12)
    s = r.summary()
    assert rel(s["estimate"], ref.params) < 1e-6 and rel(s["std_err"], ref.bse) < 1e-5
    same = sf.fit(sf.Linear(), sf.Poisson(), x, y, offset=np.log(exposure))
    np.testing.assert_allclose(_coef(same), _coef(r), rtol=1e-12)
    np.testing.assert_allclose(r.predict(x, exposure=exposure), ref.predict(), rtol=1e-8)
    with pytest.raises(ValueError, match="'exposure' parameter of fit must be > 0"):
        sf.fit(sf.Linear(), sf.Poisson(), x, y, exposure=np.r_[0.0, exposure[1:]])
    with pytest.raises(ValueError, match=r"'offset' parameter of fit applies to count models"):
        sf.fit(sf.Linear(), sf.Gaussian(), x, y, offset=np.zeros(len(y)))


def _coef(r):
    return np.r_[np.atleast_1d(r.params["beta0"]), r.params["beta1"]]


@pytest.mark.parametrize("likelihood", [sf.Poisson(), sf.NegativeBinomial(), sf.Bernoulli(link="probit")],
                         ids=["poisson", "negbin", "probit"])
def test_gradients_match_finite_differences_and_stay_finite(likelihood):
    with jax.enable_x64(True):
        rng = np.random.default_rng(3)
        y = rng.integers(0, 6, 40).astype(float)
        if likelihood.name == "bernoulli":
            y = np.where(y > 2, 1.0, -1.0)
        index = jnp.asarray(rng.normal(0, 1, 40))
        extra = {"log_alpha": jnp.asarray(-0.7)} if likelihood.extra_params else {}

        def f(i):
            return likelihood.objective(i, jnp.asarray(y), None, **extra)

        grad = jax.grad(f)(index)
        h = 1e-6
        for j in (0, 7, 39):
            e = jnp.zeros(40).at[j].set(h)
            assert float(grad[j]) == pytest.approx(float((f(index + e) - f(index - e)) / (2 * h)), rel=1e-6, abs=1e-10)
        if likelihood.glm_terms(index, jnp.asarray(y)) is not None:
            score, weight = likelihood.glm_terms(index, jnp.asarray(y))
            np.testing.assert_allclose(score / 40, grad, rtol=1e-10, atol=1e-14)
            hess = jax.hessian(f)(index)
            np.testing.assert_allclose(-np.diag(hess) * 40, weight, rtol=1e-8)
        for eta in (-50.0, 50.0):
            big = jnp.full(40, eta)
            assert np.isfinite(float(f(big))) and np.isfinite(np.asarray(jax.grad(f)(big))).all()


@pytest.mark.parametrize("likelihood", [sf.Poisson(), sf.NegativeBinomial()], ids=["poisson", "negbin"])
@pytest.mark.parametrize("optimizer", ["newton", "lbfgs", "adam", "gd"])
def test_count_models_with_every_optimizer(randhie, likelihood, optimizer):
    x, y = randhie
    x, y = x.iloc[:2000], y.iloc[:2000]
    opts = {"learning_rate": 0.05, "steps": 300} if optimizer in ("adam", "gd") else {}
    r = sf.fit(sf.Linear(), likelihood, x, y, optimizer=optimizer, **opts)
    assert r.status.ok, r.status
    assert np.isfinite(r.final["train_objective"]) and r.final["train_objective"] > r.final["train_null_objective"]


def test_count_models_save_and_load(randhie, tmp_path):
    x, y = randhie
    w = np.random.default_rng(4).integers(1, 3, len(y))
    for likelihood in (sf.Poisson(), sf.NegativeBinomial(), sf.Bernoulli(link="probit")):
        yy = (y > 0).astype(int) if likelihood.name == "bernoulli" else y
        r = sf.fit(sf.Linear(), likelihood, x, yy, weights=w)
        path = tmp_path / likelihood.name
        r.save(path)
        back = sf.load(path)
        assert back.likelihood == likelihood
        np.testing.assert_array_equal(back.predict(x.iloc[:50]), r.predict(x.iloc[:50]))


def test_sklearn_sample_weight_and_poisson_regressor(spector, randhie):
    from scanfit.sklearn import LogisticRegression, PoissonRegressor

    x, y = spector
    w = np.random.default_rng(5).integers(0, 3, len(y))
    a = LogisticRegression().fit(x, y, sample_weight=w)
    b = LogisticRegression().fit(x.loc[x.index.repeat(w)], y.loc[y.index.repeat(w)])
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-9)
    assert a.score(x, y, sample_weight=w) == pytest.approx(b.score(x.loc[x.index.repeat(w)], y.loc[y.index.repeat(w)]))
    xr, yr = randhie
    est = PoissonRegressor().fit(xr, yr)
    ref = sm.Poisson(yr, sm.add_constant(xr)).fit(disp=0, tol=1e-12, maxiter=100)
    np.testing.assert_allclose(np.r_[est.intercept_, est.coef_], ref.params, rtol=1e-6)
    from sklearn.metrics import d2_tweedie_score

    assert est.score(xr, yr) == pytest.approx(d2_tweedie_score(yr, ref.predict(), power=1), rel=1e-8)
