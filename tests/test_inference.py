"""Inference against statsmodels (float64), on the library's data and on real data shipped with
scikit-learn and statsmodels; identification checks; the summary's table and text.

Tolerances (relative): OLS coefficients, standard errors and sigma 1e-6; Logit coefficients and
standard errors (non-robust and HC0) 1e-5; MNLogit 1e-4. Gaussian p-values and intervals use t(n-k)
like OLS; the others the normal, like statsmodels' discrete models.
"""

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import scanfit as sf
from scanfit.data import identification

sm = pytest.importorskip("statsmodels.api")
datasets = pytest.importorskip("sklearn.datasets")

NEWTON = dict(optimizer="newton", dtype="float64", steps=64)


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def standardized(frame):
    return (frame - frame.mean()) / frame.std()


_FITS = {}


def fitted(key, model, likelihood, x, y, **options):
    """Fits shared by several tests (each compiled program costs seconds on a small machine)."""
    if key not in _FITS:
        _FITS[key] = sf.fit(model, likelihood, x, y, **(options or NEWTON))
    return _FITS[key]


# ----------------------------------------------------------------------------- statsmodels agreement
def ols_cases():
    d = sf.datasets.linear(n_train=300, n_valid=10, seed=0)
    diabetes = datasets.load_diabetes(as_frame=True)
    return {"linear": (d.train.x, d.train.y), "diabetes": (diabetes.data, diabetes.target.to_numpy())}


@pytest.mark.parametrize("case", ["linear", "diabetes"])
def test_ols_matches_statsmodels(case):
    x, y = ols_cases()[case]
    r = fitted(case, sf.Linear(), sf.Gaussian(), x, y)
    ref = sm.OLS(y, sm.add_constant(np.asarray(x))).fit()
    s = r.summary()
    assert rel(s["estimate"], ref.params) < 1e-6
    assert rel(s["std_err"], ref.bse) < 1e-6
    assert rel(s["z"], ref.tvalues) < 1e-6
    assert rel(s["p_value"], ref.pvalues) < 1e-6  # t(n - k), as OLS
    assert rel(s.attrs["sigma"], np.sqrt(ref.scale)) < 1e-6
    assert rel([s.attrs["loglik"], s.attrs["aic"], s.attrs["bic"]], [ref.llf, ref.aic, ref.bic]) < 1e-9
    assert rel(r.conf_int(alpha=0.1).to_numpy(), ref.conf_int(alpha=0.1)) < 1e-6
    robust = sm.OLS(y, sm.add_constant(np.asarray(x))).fit(cov_type="HC0")
    assert rel(r.summary(cov_type="robust")["std_err"], robust.bse) < 1e-6
    assert rel(r.cov_params(cov_type="HC0").to_numpy(), robust.cov_params()) < 1e-6
    assert list(s.index) == ["intercept"] + [str(c) for c in getattr(x, "columns", ["x"])]


def logit_cases():
    d = sf.datasets.hyperplane(n_train=500, n_valid=10, dim=4, seed=0)
    cancer = datasets.load_breast_cancer(as_frame=True)
    cols = ["mean texture", "mean area", "mean smoothness", "mean concave points", "mean symmetry"]
    return {"hyperplane": (d.train.x, d.train.y), "breast_cancer": (standardized(cancer.data[cols]), cancer.target.to_numpy())}


@pytest.mark.parametrize("case", ["hyperplane", "breast_cancer"])
def test_logit_matches_statsmodels(case):
    x, y = logit_cases()[case]
    r = fitted(case, sf.Linear(), sf.Bernoulli(), x, y)
    xc = sm.add_constant(np.asarray(x, float))
    ref = sm.Logit(y.astype(float), xc).fit(disp=0, tol=1e-12, maxiter=100)
    s = r.summary()
    assert rel(s["estimate"], ref.params) < 1e-5
    assert rel(s["std_err"], ref.bse) < 1e-5
    assert rel(s["p_value"], ref.pvalues) < 1e-4
    assert rel(s.attrs["loglik"], ref.llf) < 1e-10 and rel(s.attrs["aic"], ref.aic) < 1e-10
    hc0 = sm.Logit(y.astype(float), xc).fit(disp=0, tol=1e-12, maxiter=100, cov_type="HC0")
    assert rel(r.summary(cov_type="robust")["std_err"], hc0.bse) < 1e-5
    assert s.attrs["note"] == ""  # a converged float64 Newton fit is already the maximum


def test_an_unfinished_float32_fit_warns_and_refine_reaches_the_maximum():
    x, y = logit_cases()["hyperplane"]
    r = sf.fit(sf.Linear(), sf.Bernoulli(), x, y, optimizer="newton", dtype="float32", steps=64)
    # an unfinished float32 fit (the program is test_second_order's float32 Newton: no new compilation)
    r = dataclasses.replace(r, params={"beta0": r.params["beta0"] + np.float32(0.05),
                                       "beta1": r.params["beta1"] * np.float32(0.9)})
    ref = sm.Logit(y.astype(float), sm.add_constant(x)).fit(disp=0, tol=1e-12)
    with pytest.warns(sf.FitWarning, match=r"not the maximum-likelihood estimate.*refine\(\)"):
        s = r.summary()
    assert "not the maximum" in s.attrs["note"] and "not the maximum" in r.summary_text()
    np.testing.assert_array_equal(s["estimate"].iloc[1:], r.params["beta1"])  # one set of parameters
    assert s.attrs["gradient_norm"] > 1e-3
    better = r.refine()
    assert better.config.dtype == "float64" and better.status.code == "converged"
    s2 = better.summary()
    assert rel(s2["estimate"], ref.params) < 1e-6 and rel(s2["std_err"], ref.bse) < 1e-5


def mnlogit_cases():
    x, _ = logit_cases()["hyperplane"]
    rng = np.random.default_rng(1)
    eta = x[:, :2] @ np.array([[0.5, -1.0], [1.0, 0.5]]) + rng.gumbel(size=(len(x), 2))
    y = np.where(eta.max(axis=1) > rng.gumbel(size=len(x)), 1 + eta.argmax(axis=1), 0)
    anes = sm.datasets.anes96.load_pandas().data
    xa = standardized(anes[["logpopul", "selfLR", "age", "educ", "income"]])
    return {"synthetic": (x, y), "anes96": (xa, anes["PID"].to_numpy().astype(int))}


@pytest.mark.parametrize("case", ["synthetic", "anes96"])
def test_multinomial_contrasts_match_mnlogit(case):
    x, y = mnlogit_cases()[case]
    r = fitted(case, sf.Linear(), sf.Categorical(), x, y)
    ref = sm.MNLogit(y, sm.add_constant(np.asarray(x, float))).fit(disp=0, method="newton", tol=1e-12, maxiter=100)
    s = r.summary()  # reference class 0, as MNLogit: rows (class k, term) hold beta_k - beta_0
    k = len(np.unique(y))
    assert s.index.names == ["class", "term"] and list(s.index.get_level_values("class").unique()) == list(range(1, k))
    assert rel(s["estimate"], np.asarray(ref.params).T.ravel()) < 1e-4
    assert rel(s["std_err"], np.asarray(ref.bse).T.ravel()) < 1e-4
    assert rel(s.attrs["loglik"], ref.llf) < 1e-10 and rel(s.attrs["bic"], ref.bic) < 1e-10
    # another reference class: beta_k - beta_1 = (beta_k - beta_0) - (beta_1 - beta_0), same likelihood
    s1 = r.summary(reference=1)
    for term in s.loc[1].index:
        np.testing.assert_allclose(s1.loc[(2, term), "estimate"],
                                   s.loc[(2, term), "estimate"] - s.loc[(1, term), "estimate"], rtol=1e-8)
        np.testing.assert_allclose(s1.loc[(0, term), "std_err"], s.loc[(1, term), "std_err"], rtol=1e-8)
    assert s1.attrs["loglik"] == pytest.approx(s.attrs["loglik"], rel=1e-12)


# ----------------------------------------------------------------------------- the generic path
def test_function_model_uses_autodiff_and_agrees_with_closed_form():
    x, y = logit_cases()["hyperplane"]
    model = sf.Function(lambda p, x: p["b"] + x @ p["w"], init=lambda key: {"b": jnp.zeros(()), "w": jnp.zeros(4)})
    generic = sf.fit(model, sf.Bernoulli(), x, y, **NEWTON).summary()
    closed = fitted("hyperplane", sf.Linear(), sf.Bernoulli(), x, y).summary()
    assert list(generic.index) == ["b", "w[0]", "w[1]", "w[2]", "w[3]"]
    assert not jax.config.jax_enable_x64  # float64 fits and inference leave the global setting alone
    np.testing.assert_allclose(generic["std_err"], closed["std_err"], rtol=1e-7)
    np.testing.assert_allclose(generic["z"], closed["z"], rtol=1e-7)


def test_network_refuses_unless_asked():
    x, y = logit_cases()["hyperplane"]
    r = sf.fit(sf.MLP(hidden=2, activation="tanh"), sf.Bernoulli(), x[:200], y[:200], **NEWTON)
    with pytest.raises(sf.NotIdentifiedError, match="network's weights are not meaningful.*allow_nonidentified=True"):
        r.summary()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sf.FitWarning)  # a network's Hessian may well be singular
        s = r.summary(allow_nonidentified=True)
    assert list(s.index[:3]) == ["W0[0,0]", "W0[0,1]", "W0[1,0]"]
    assert len(s) == 4 * 2 + 2 + 2 + 1 and np.isfinite(s["estimate"]).all()
    assert s["estimate"].iloc[0] == r.params["W0"][0, 0]  # no refinement for networks


# ----------------------------------------------------------------------------- identification
def test_collinear_columns_are_named():
    x, y = ols_cases()["diabetes"]
    x = x.assign(s6=2 * x["age"] - x["sex"])  # same shape as the diabetes fit: no new compilation
    r = sf.fit(sf.Linear(), sf.Gaussian(), x, y, **NEWTON)
    with pytest.raises(sf.NotIdentifiedError, match=r"columns \['age', 'sex', 's6'\] are collinear "
                                                    r"\(s6 = 2\*age - sex\)"):
        r.summary()
    with pytest.warns(sf.FitWarning, match="non-identified"):
        assert len(r.summary(allow_nonidentified=True)) == 11
    const = identification.collinear(np.c_[np.arange(5.0), np.full(5, 3.0)], ("a", "b"))
    assert "b = 3*intercept" in const


def separated(kind):
    x, y = logit_cases()["hyperplane"]  # its shape: the fits below reuse the hyperplane fit's program
    if kind == "one column":
        return x, x[:, 1] > 0.1
    return x, x[:, 0] + x[:, 1] > 0


@pytest.mark.parametrize("kind,message", [
    ("one column", r"the column 'x1' separates y=0 from y=1 perfectly \(y=0 has x1 in \[-\S+, 0.0\S*\], y=1 in"),
    ("complete", r"complete separation: every observation is classified without error by a linear rule in .*'x0', 'x1'"),
])
def test_perfect_separation_is_detected(kind, message):
    x, y = separated(kind)
    r = sf.fit(sf.Linear(), sf.Bernoulli(), x, y, **NEWTON)
    with pytest.raises(sf.NotIdentifiedError, match="maximum-likelihood estimate does not exist: "):
        r.summary()
    with pytest.raises(sf.NotIdentifiedError, match=message):
        r.cov_params()


def test_quasi_separation_and_overlap():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((100, 2))
    y = x[:, 0] + x[:, 1] > 0
    xq = np.r_[x, np.zeros((4, 2))]
    yq = np.r_[y, [True, False, True, False]]
    msg = identification.separation(xq, yq.astype(int), ("x0", "x1"))
    assert "quasi-complete separation: 100 of 104 observations are classified without error" in msg
    assert identification.separation(x, (y | (rng.random(100) < 0.3)).astype(int), ("x0", "x1")) is None


def test_iris_setosa_is_separated():
    iris = datasets.load_iris(as_frame=True)
    msg = identification.separation(iris.data.to_numpy(), iris.target.to_numpy(), tuple(iris.data.columns), 3)
    assert "the column 'petal length (cm)' separates y=0 from the other classes perfectly" in msg


def test_singular_information_names_parameters():
    info = np.array([[2.0, 2.0, 0.0], [2.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    msg = identification.singular(info, ["a", "b", "c"])
    assert "singular" in msg and "['a', 'b']" in msg
    assert identification.singular(np.diag([1.0, -1.0]), ["a", "b"]).startswith("The estimate is not identified")
    assert identification.singular(np.eye(2), ["a", "b"]) is None


# ----------------------------------------------------------------------------- the table and errors
def test_summary_table_text_and_errors():
    x, y = ols_cases()["linear"]
    r = fitted("linear", sf.Linear(), sf.Gaussian(), x, y)
    s = r.summary(alpha=0.1)
    assert list(s.columns) == ["estimate", "std_err", "z", "p_value", "ci_low", "ci_high"]
    assert {"n_obs", "loglik", "aic", "bic", "sigma", "cov_type", "distribution"} <= set(s.attrs)
    assert s.attrs["n_obs"] == 300 and s.attrs["distribution"] == "t(298)"
    text = str(s)
    assert text == r.summary_text(alpha=0.1)
    assert "log-likelihood:" in text and "sigma:" in text and "P>|t|" in text and "[0.05" in text
    assert f"{s.attrs['aic']:.6g}" in text
    np.testing.assert_allclose(r.bse, s["std_err"], rtol=1e-12)
    assert r.summary() is not r.summary()  # tables are fresh; the estimate underneath is cached
    with pytest.raises(ValueError, match="'cov_type' parameter must be one of .*'HC3', 'cluster'.*Got 'HC4'"):
        r.summary(cov_type="HC4")
    with pytest.raises(ValueError, match=r"'alpha' parameter must be a float in \(0, 1\).*Got 5"):
        r.conf_int(alpha=5)
    xc, yc = mnlogit_cases()["synthetic"]
    rc = fitted("synthetic", sf.Linear(), sf.Categorical(), xc, yc)
    with pytest.raises(ValueError, match=r"'reference' parameter of summary must be a class label in 0..2. Got 3"):
        rc.summary(reference=3)
