"""Formulas through sf.fit: the design, names, predict on new frames and saved models, against
statsmodels.formula.api on data that ships with statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

import scanfit as sf

FAIR = "affairs ~ rate_marriage + age + C(religious) + np.log(yrs_married + 1)"


@pytest.fixture(scope="module")
def fair():
    return sm.datasets.fair.load_pandas().data


def test_formula_fit_matches_statsmodels(fair):
    r = sf.fit(sf.Linear(), sf.Gaussian(), formula=FAIR, data=fair)
    ref = smf.ols(FAIR, fair).fit()
    s = r.summary()
    assert list(s.index) == ["intercept"] + ref.model.exog_names[1:]
    np.testing.assert_allclose(s["estimate"], ref.params, rtol=1e-8)
    np.testing.assert_allclose(s["std_err"], ref.bse, rtol=1e-8)
    new = fair.sample(40, random_state=1)  # rows in another order; the levels re-applied
    np.testing.assert_allclose(r.predict(new), ref.predict(new), rtol=1e-10)


def test_formula_logit_with_categories_and_weights(fair):
    data = fair.assign(any=(fair["affairs"] > 0).astype(int), w=np.random.default_rng(0).integers(1, 3, len(fair)))
    f = "any ~ rate_marriage + C(religious) + np.log(age)"
    r = sf.fit(sf.Linear(), sf.Bernoulli(), formula=f, data=data, weights="w")
    ref = smf.glm(f, data, family=sm.families.Binomial(), freq_weights=data["w"]).fit(tol=1e-12)
    np.testing.assert_allclose(r.summary()["estimate"], ref.params, rtol=1e-7)
    np.testing.assert_allclose(r.summary()["std_err"], ref.bse, rtol=1e-6)


def test_formula_poisson_with_an_exposure_column():
    d = sm.datasets.randhie.load_pandas().data.iloc[:3000]
    d = d.assign(exposure=np.random.default_rng(1).uniform(0.5, 2, len(d)))
    f = "mdvis ~ lncoins + idp + C(hlthp) + np.sqrt(lpi)"
    r = sf.fit(sf.Linear(), sf.Poisson(), formula=f, data=d, exposure="exposure")
    ref = smf.glm(f, d, family=sm.families.Poisson(), exposure=d["exposure"]).fit(tol=1e-12)
    np.testing.assert_allclose(r.summary()["estimate"], ref.params, rtol=1e-7)
    np.testing.assert_allclose(r.predict(d.iloc[:10], exposure=d["exposure"].iloc[:10]), ref.fittedvalues.iloc[:10],
                               rtol=1e-8)


def test_formula_without_an_intercept(fair):
    f = "affairs ~ C(religious) + age - 1"
    r = sf.fit(sf.Linear(), sf.Gaussian(), formula=f, data=fair)
    ref = smf.ols(f, fair).fit()
    assert "beta0" not in r.params and r.model.intercept is False
    assert list(r.summary().index) == ref.model.exog_names
    np.testing.assert_allclose(r.summary()["estimate"], ref.params, rtol=1e-8)
    np.testing.assert_allclose(r.summary()["std_err"], ref.bse, rtol=1e-8)
    np.testing.assert_allclose(r.predict(fair.iloc[:5]), ref.predict(fair.iloc[:5]), rtol=1e-10)


def test_formula_models_save_load_and_refuse_unseen_levels(fair, tmp_path):
    r = sf.fit(sf.Linear(), sf.Gaussian(), formula=FAIR, data=fair)
    r.save(tmp_path / "m")
    back = sf.load(tmp_path / "m")
    np.testing.assert_array_equal(back.predict(fair.iloc[:30]), r.predict(fair.iloc[:30]))
    unseen = fair.iloc[:3].assign(religious=9.0)
    with pytest.raises(ValueError, match=r"'religious'.*not seen.*\[9.0\].*known levels"):
        back.predict(unseen)


def test_formula_network_and_bad_calls(fair):
    r = sf.fit(sf.MLP(hidden=4), sf.Gaussian(), formula=FAIR, data=fair, steps=200)
    assert r.feature_names[0] == "C(religious)[T.2.0]" and r.predict(fair.iloc[:4]).shape == (4,)
    with pytest.raises(TypeError, match="either x and y, or formula= with data="):
        sf.fit(sf.Linear(), sf.Gaussian(), fair[["age"]], fair["affairs"], formula=FAIR, data=fair)
    with pytest.raises(ValueError, match="'weights' parameter of fit names the column 'nope'"):
        sf.fit(sf.Linear(), sf.Gaussian(), formula=FAIR, data=fair, weights="nope")
