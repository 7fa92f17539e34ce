"""Marginal effects and predictions with intervals (issue 13, parts 2 and 3), against statsmodels in
float64 on data that ships with it.

Marginal effects and their standard errors against ``get_margeff(at=..., method="dydx")`` to 1e-5
relative (statsmodels differentiates numerically; scanfit's Jacobian is exact). Prediction tables
against ``get_prediction().summary_frame()`` (OLS; GLM with the observed information, i.e.
``method="newton"``, which is the discrete models' covariance) to 1e-6; where statsmodels has no
table (NegativeBinomial's link-scale interval, MNLogit), against a direct computation from
statsmodels' estimates and covariance (1e-6).
"""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from scipy.special import expit

import scanfit as sf
from _sm_data import anes, counts, spector  # noqa: F401

MFX = 1e-5
PRED = 1e-6


def rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def same_margins(ours, ref):
    assert list(ours.columns) == ["estimate", "std_err", "z", "p_value", "ci_low", "ci_high"]
    assert rel(ours["estimate"], ref.margeff) < MFX
    assert rel(ours["std_err"], ref.margeff_se) < MFX
    assert rel(ours["ci_low"], ref.conf_int()[:, 0]) < MFX and rel(ours["p_value"], ref.pvalues) < 1e-4


# ----------------------------------------------------------------------------- marginal effects
@pytest.mark.parametrize("link", ["logit", "probit"])
def test_bernoulli_marginal_effects(spector, link):
    x, y = spector
    r = sf.fit(sf.Linear(), sf.Bernoulli(link=link), x, y)
    model = sm.Logit if link == "logit" else sm.Probit
    ref = model(y, sm.add_constant(x)).fit(disp=0, method="newton", tol=1e-14)
    for at in ("overall", "mean"):
        m = r.marginal_effects(at=at)
        assert list(m.index) == ["GPA", "TUCE", "PSI"] and m.attrs["at"] == at
        same_margins(m, ref.get_margeff(at=at, method="dydx"))
    g = np.arange(len(y)) % 8  # the covariance of the chosen cov_type, as statsmodels' results' own
    refc = model(y, sm.add_constant(x)).fit(disp=0, method="newton", tol=1e-14, cov_type="cluster",
                                            cov_kwds={"groups": g})
    same_margins(r.marginal_effects(cov_type="cluster", groups=g), refc.get_margeff())


def test_weighted_marginal_effects_equal_repeated_rows(spector):
    x, y = spector
    w = np.random.default_rng(0).integers(0, 4, len(y))
    r = sf.fit(sf.Linear(), sf.Bernoulli(), x, y, weights=w)
    ref = sm.Logit(y.loc[y.index.repeat(w)], sm.add_constant(x).loc[x.index.repeat(w)]).fit(
        disp=0, method="newton", tol=1e-14)
    for at in ("overall", "mean"):
        same_margins(r.marginal_effects(at=at), ref.get_margeff(at=at))


@pytest.mark.parametrize("family", ["poisson", "negativebinomial"])
def test_count_marginal_effects(counts, family):
    x, y = counts
    lik, model = (sf.Poisson(), sm.Poisson) if family == "poisson" else (sf.NegativeBinomial(), sm.NegativeBinomial)
    r = sf.fit(sf.Linear(), lik, x, y)
    ref = model(y, sm.add_constant(x)).fit(disp=0, method="newton", tol=1e-14, maxiter=100)
    for at in ("overall", "mean"):
        m = r.marginal_effects(at=at)
        assert "alpha" not in m.index and "intercept" not in m.index
        same_margins(m, ref.get_margeff(at=at))


def test_categorical_marginal_effects(anes):
    x, y = anes
    r = sf.fit(sf.Linear(), sf.Categorical(), x, y)
    ref = sm.MNLogit(y, sm.add_constant(x)).fit(disp=0, method="newton", tol=1e-14, maxiter=100)
    for at in ("overall", "mean"):
        m = r.marginal_effects(at=at)
        assert m.index.names == ["class", "term"] and m.index[0] == (0, "logpopul") and len(m) == 7 * 5
        mf = ref.get_margeff(at=at)  # (terms, classes)
        assert rel(m["estimate"].to_numpy().reshape(7, 5).T, mf.margeff) < MFX
        assert rel(m["std_err"].to_numpy().reshape(7, 5).T, mf.margeff_se) < MFX
    # the effects on the K probabilities sum to zero, whichever reference the contrasts use
    assert abs(m["estimate"].groupby(level="term").sum()).max() < 1e-12


def test_offset_enters_the_effects_and_gaussian_effects_are_the_slopes(counts):
    x, y = counts
    exposure = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    r = sf.fit(sf.Linear(), sf.Poisson(), x, y, exposure=exposure)
    beta = r.summary()["estimate"].to_numpy()
    X = sm.add_constant(x).to_numpy()
    mu = np.exp(X @ beta + np.log(exposure))
    m = r.marginal_effects()
    assert rel(m["estimate"], mu.mean() * beta[1:]) < 1e-10  # statsmodels' get_margeff leaves the offset out
    V = r.cov_params().to_numpy()
    jac = np.outer(beta[1:], (mu[:, None] * X).mean(0)) + mu.mean() * np.eye(len(beta))[1:]
    assert rel(m["std_err"], np.sqrt(np.diag(jac @ V @ jac.T))) < 1e-10
    g = sf.fit(sf.Linear(), sf.Gaussian(), x, np.log1p(y))
    s, me = g.summary(cov_type="HC1"), g.marginal_effects(cov_type="HC1")
    assert rel(me["estimate"], s["estimate"].iloc[1:]) < 1e-12 and rel(me["std_err"], s["std_err"].iloc[1:]) < 1e-12


@pytest.mark.filterwarnings("ignore::scanfit.engine.outcome.FitWarning")
def test_marginal_effects_errors(spector):
    x, y = spector
    r = sf.fit(sf.Linear(), sf.Bernoulli(), x, y)
    with pytest.raises(ValueError, match=r"'at' parameter of marginal_effects must be one of \['overall', 'mean'\]"
                                         r".*Got 'median'"):
        r.marginal_effects(at="median")
    net = sf.fit(sf.MLP(hidden=2), sf.Bernoulli(), x, y, steps=20)
    with pytest.raises(sf.NotIdentifiedError, match="allow_nonidentified=True"):
        net.marginal_effects()
    with pytest.raises(ValueError, match=r"marginal_effects needs sf.Linear\(\) with a built-in likelihood"):
        net.marginal_effects(allow_nonidentified=True)


# ----------------------------------------------------------------------------- predictions
def test_gaussian_prediction_intervals_match_ols():
    d = sm.datasets.grunfeld.load_pandas().data
    x, y = d[["value", "capital"]], d["invest"]
    r = sf.fit(sf.Linear(), sf.Gaussian(), x, y)
    ols = sm.OLS(y, sm.add_constant(x)).fit()
    new = x.iloc[::20]
    for level in (0.95, 0.8):
        p = r.predict(new, interval=level)
        f = ols.get_prediction(sm.add_constant(new, has_constant="add")).summary_frame(alpha=1 - level)
        assert list(p.columns) == ["mean", "std_err", "ci_low", "ci_high", "pi_low", "pi_high"]
        assert list(p.index) == list(new.index)
        pairs = [("mean", "mean"), ("std_err", "mean_se"), ("ci_low", "mean_ci_lower"), ("ci_high", "mean_ci_upper"),
                 ("pi_low", "obs_ci_lower"), ("pi_high", "obs_ci_upper")]
        for ours, theirs in pairs:
            assert rel(p[ours], f[theirs]) < PRED, ours
    robust = sm.OLS(y, sm.add_constant(x)).fit(cov_type="HC3")
    f = robust.get_prediction(sm.add_constant(new, has_constant="add")).summary_frame()
    p = r.predict(new, interval=0.95, cov_type="HC3")
    assert rel(p["ci_low"], f["mean_ci_lower"]) < PRED and rel(p["pi_high"], f["obs_ci_upper"]) < PRED
    assert isinstance(r.predict(new), np.ndarray)  # without interval: the plain array, as before


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_bernoulli_prediction_intervals_match_glm(spector, link):
    x, y = spector
    r = sf.fit(sf.Linear(), sf.Bernoulli(link=link), x, y)
    fam = sm.families.Binomial(sm.families.links.Logit() if link == "logit" else sm.families.links.Probit())
    glm = sm.GLM(y, sm.add_constant(x), family=fam).fit(method="newton", tol=1e-14, maxiter=100)
    new = x.iloc[::3]
    p = r.predict(new, interval=0.9)
    f = glm.get_prediction(sm.add_constant(new, has_constant="add")).summary_frame(alpha=0.1)
    assert "pi_low" not in p.columns
    for ours, theirs in [("mean", "mean"), ("std_err", "mean_se"), ("ci_low", "mean_ci_lower"),
                         ("ci_high", "mean_ci_upper")]:
        assert rel(p[ours], f[theirs]) < PRED, ours


def test_count_prediction_intervals(counts):
    x, y = counts
    exposure = np.random.default_rng(1).uniform(0.5, 2.0, len(y))
    r = sf.fit(sf.Linear(), sf.Poisson(), x, y, exposure=exposure)
    glm = sm.GLM(y, sm.add_constant(x), family=sm.families.Poisson(), exposure=exposure).fit(tol=1e-14)
    new, e_new = x.iloc[:40], exposure[:40]
    p = r.predict(new, exposure=e_new, interval=0.95)
    f = glm.get_prediction(sm.add_constant(new, has_constant="add"), exposure=e_new).summary_frame()
    for ours, theirs in [("mean", "mean"), ("std_err", "mean_se"), ("ci_low", "mean_ci_lower"),
                         ("ci_high", "mean_ci_upper")]:
        assert rel(p[ours], f[theirs]) < PRED, ours
    nb = sf.fit(sf.Linear(), sf.NegativeBinomial(), x, y)
    ref = sm.NegativeBinomial(y, sm.add_constant(x)).fit(disp=0, method="newton", tol=1e-14, maxiter=100)
    X = sm.add_constant(new, has_constant="add").to_numpy()
    beta, V = ref.params.to_numpy()[:-1], ref.cov_params().to_numpy()[:-1, :-1]  # alpha does not enter the mean
    eta, se_eta = X @ beta, np.sqrt(np.einsum("ij,jk,ik->i", X, V, X))
    p = nb.predict(new, interval=0.95)
    z = stats.norm.ppf(0.975)
    assert rel(p["mean"], np.exp(eta)) < PRED and rel(p["std_err"], np.exp(eta) * se_eta) < PRED
    assert rel(p["ci_low"], np.exp(eta - z * se_eta)) < PRED and rel(p["ci_high"], np.exp(eta + z * se_eta)) < PRED


def test_categorical_prediction_intervals(anes):
    x, y = anes
    r = sf.fit(sf.Linear(), sf.Categorical(), x, y)
    ref = sm.MNLogit(y, sm.add_constant(x)).fit(disp=0, method="newton", tol=1e-14, maxiter=100)
    new = x.iloc[:5]
    X = sm.add_constant(new, has_constant="add").to_numpy()
    params, V = ref.params.to_numpy(), ref.cov_params().to_numpy()  # params (q, K-1); V class-major

    def probs(theta):
        B = np.column_stack([np.zeros(X.shape[1]), theta.reshape(6, -1).T])
        e = np.exp(X @ B)
        return e / e.sum(1, keepdims=True)

    theta = params.T.ravel()
    P = probs(theta)
    step = 1e-6
    J = np.stack([(probs(theta + step * ei) - probs(theta - step * ei)) / (2 * step) for ei in np.eye(len(theta))], -1)
    se_p = np.sqrt(np.einsum("nkp,pq,nkq->nk", J, V, J))
    g, se_g, z = np.log(P / (1 - P)), se_p / (P * (1 - P)), stats.norm.ppf(0.975)
    p = r.predict(new, interval=0.95)
    assert p.index.names == ["row", "class"] and len(p) == 5 * 7
    assert rel(p["mean"], P.ravel()) < PRED and rel(p["std_err"], se_p.ravel()) < PRED
    assert rel(p["ci_low"], expit(g - z * se_g).ravel()) < PRED and rel(p["ci_high"], expit(g + z * se_g).ravel()) < PRED
    assert np.allclose(p["mean"].groupby(level="row").sum(), 1.0, rtol=1e-12)


def test_prediction_interval_errors(spector):
    x, y = spector
    r = sf.fit(sf.Linear(), sf.Bernoulli(), x, y)
    for bad in (95, 0.0, True, "0.95"):
        with pytest.raises(ValueError, match=r"'interval' parameter of predict is the coverage.*float in \(0, 1\)"):
            r.predict(x, interval=bad)
    with pytest.raises(ValueError, match="cov_type='cluster' needs the 'groups' parameter"):
        r.predict(x, interval=0.95, cov_type="cluster")
    frame = r.predict(x.to_numpy()[:3], interval=0.95)
    assert list(frame.index) == [0, 1, 2]
