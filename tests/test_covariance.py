"""Covariances (issue 13, part 1): HC0-HC3 and one-way clusters for every Linear x built-in likelihood,
against statsmodels in float64 on data that ships with it.

Standard errors agree to 1e-6 relative. statsmodels' own definitions where it has them: OLS
``cov_type`` HC0-HC3 and cluster; the discrete models' HC0 and cluster; HC1 =
``sandwich_covariance.cov_white_simple(use_correction=True)`` (the discrete models and GLM return HC0
for "HC1"-"HC3"); HC2/HC3 of the other scalar families from GLM's leverage
``get_hat_matrix_diag(observed=True)`` and the discrete model's ``score_obs`` and ``cov_params``.
Categorical HC2/HC3 (no statsmodels counterpart) against a direct NumPy computation (1e-8), and
against the Bernoulli logit with two classes (1e-6). Frequency weights against statsmodels on
repeated rows (1e-6).
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.stats.sandwich_covariance as sw
from scipy.special import softmax
from typer.testing import CliRunner

import scanfit as sf
from _sm_data import anes, counts, groups, spector  # noqa: F401

TOL = 1e-6


def rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def se(cov):
    return np.sqrt(np.diag(np.asarray(cov)))


def leverage_cov(ref, h, kind):
    """statsmodels' pieces (scores, bread) with GLM's leverage ``h``: HC2 or HC3."""
    s = ref.model.score_obs(np.asarray(ref.params))
    s = s / np.sqrt(1 - h)[:, None] if kind == "HC2" else s / (1 - h)[:, None]
    bread = np.asarray(ref.cov_params())
    return bread @ s.T @ s @ bread


@pytest.fixture(scope="module")
def grunfeld():
    d = sm.datasets.grunfeld.load_pandas().data
    return d.assign(firm=d["firm"].astype(str))


# ----------------------------------------------------------------------------- Gaussian (OLS)
def test_ols_hc_and_cluster_match_statsmodels_with_a_formula_and_a_group_column(grunfeld):
    r = sf.fit(sf.Linear(), sf.Gaussian(), formula="invest ~ value + capital", data=grunfeld)
    X = sm.add_constant(grunfeld[["value", "capital"]])
    for kind in ("HC0", "HC1", "HC2", "HC3"):
        ref = sm.OLS(grunfeld["invest"], X).fit(cov_type=kind)
        s = r.summary(cov_type=kind)
        assert rel(s["std_err"], ref.bse) < TOL, kind
        assert rel(s["p_value"], ref.pvalues) < 1e-5, kind  # the normal, as statsmodels' robust default
        assert s.attrs["cov_type"] == kind and s.attrs["distribution"] == "normal"
    ref = sm.OLS(grunfeld["invest"], X).fit(cov_type="cluster", cov_kwds={"groups": grunfeld["firm"]})
    s = r.summary(cov_type="cluster", groups="firm")  # a column of the fit's data
    assert rel(s["std_err"], ref.bse) < TOL and s.attrs["n_groups"] == grunfeld["firm"].nunique() == 11
    assert rel(r.bse(cov_type="cluster", groups=grunfeld["firm"].to_numpy()), ref.bse) < TOL  # or the labels
    assert rel(r.conf_int(cov_type="HC3").to_numpy(), sm.OLS(grunfeld["invest"], X).fit(cov_type="HC3").conf_int()) < TOL
    text = r.summary_text(cov_type="cluster", groups="firm")
    assert "cluster" in text and "groups:" in text
    assert rel(r.summary(cov_type="robust")["std_err"], r.summary(cov_type="HC0")["std_err"]) == 0


def test_ols_frequency_weights_equal_repeated_rows(grunfeld):
    w = np.random.default_rng(0).integers(0, 4, len(grunfeld))
    x, y = grunfeld[["value", "capital"]], grunfeld["invest"]
    r = sf.fit(sf.Linear(), sf.Gaussian(), x, y, weights=w)
    rep = grunfeld.loc[grunfeld.index.repeat(w)]
    X = sm.add_constant(rep[["value", "capital"]])
    for kind in ("nonrobust", "HC0", "HC1", "HC2", "HC3"):
        assert rel(r.bse(cov_type=kind), sm.OLS(rep["invest"], X).fit(cov_type=kind).bse) < TOL, kind
    ref = sm.OLS(rep["invest"], X).fit(cov_type="cluster", cov_kwds={"groups": rep["firm"]})
    assert rel(r.bse(cov_type="cluster", groups=grunfeld["firm"]), ref.bse) < TOL


# ----------------------------------------------------------------------------- Bernoulli
@pytest.mark.parametrize("link", ["logit", "probit"])
def test_bernoulli_hc_and_cluster(spector, link):
    x, y = spector
    g = groups(len(y), 4)  # 8 groups of 4 rows
    r = sf.fit(sf.Linear(), sf.Bernoulli(link=link), x, y)
    X = sm.add_constant(x)
    model = sm.Logit if link == "logit" else sm.Probit
    ref = model(y, X).fit(disp=0, method="newton", tol=1e-14, maxiter=100)
    assert rel(r.bse(cov_type="HC0"), model(y, X).fit(disp=0, method="newton", tol=1e-14, cov_type="HC0").bse) < TOL
    assert rel(r.bse(cov_type="HC1"), se(sw.cov_white_simple(ref, use_correction=True))) < TOL
    family = sm.families.Binomial(sm.families.links.Logit() if link == "logit" else sm.families.links.Probit())
    glm = sm.GLM(y, X, family=family).fit(method="newton", tol=1e-14, maxiter=100)
    h = glm.get_hat_matrix_diag(observed=True)
    for kind in ("HC2", "HC3"):
        assert rel(r.bse(cov_type=kind), se(leverage_cov(ref, h, kind))) < TOL, kind
    refc = model(y, X).fit(disp=0, method="newton", tol=1e-14, cov_type="cluster", cov_kwds={"groups": g})
    assert rel(r.bse(cov_type="cluster", groups=g), refc.bse) < TOL


def test_logit_frequency_weights_equal_repeated_rows(spector):
    x, y = spector
    g = groups(len(y), 4)  # 8 groups of 4 rows
    w = np.random.default_rng(0).integers(0, 4, len(y))
    r = sf.fit(sf.Linear(), sf.Bernoulli(), x, y, weights=w)
    X = sm.add_constant(x).loc[x.index.repeat(w)]
    yr, gr = y.loc[y.index.repeat(w)], np.repeat(g, w)
    ref = sm.Logit(yr, X).fit(disp=0, method="newton", tol=1e-14)
    h = sm.GLM(yr, X, family=sm.families.Binomial()).fit(tol=1e-14).get_hat_matrix_diag()
    assert rel(r.bse(cov_type="HC1"), se(sw.cov_white_simple(ref, use_correction=True))) < TOL
    for kind in ("HC2", "HC3"):
        assert rel(r.bse(cov_type=kind), se(leverage_cov(ref, h, kind))) < TOL, kind
    refc = sm.Logit(yr, X).fit(disp=0, method="newton", tol=1e-14, cov_type="cluster", cov_kwds={"groups": gr})
    assert rel(r.bse(cov_type="cluster", groups=g), refc.bse) < TOL


# ----------------------------------------------------------------------------- counts
@pytest.mark.parametrize("family", ["poisson", "negativebinomial"])
def test_count_hc_and_cluster(counts, family):
    x, y = counts
    g = groups(len(y), 25)  # 120 groups of 25 rows
    lik, model = (sf.Poisson(), sm.Poisson) if family == "poisson" else (sf.NegativeBinomial(), sm.NegativeBinomial)
    r = sf.fit(sf.Linear(), lik, x, y)
    X = sm.add_constant(x)
    ref = model(y, X).fit(disp=0, method="newton", tol=1e-14, maxiter=100)
    assert rel(r.bse(cov_type="HC0"), se(sw.cov_white_simple(ref, use_correction=False))) < TOL
    assert rel(r.bse(cov_type="HC1"), se(sw.cov_white_simple(ref, use_correction=True))) < TOL
    # GLM's leverage; NegativeBinomial's at the estimated dispersion
    glm_family = (sm.families.Poisson() if family == "poisson"
                  else sm.families.NegativeBinomial(alpha=float(ref.params["alpha"])))
    h = sm.GLM(y, X, family=glm_family).fit(tol=1e-14).get_hat_matrix_diag(observed=True)
    for kind in ("HC2", "HC3"):
        assert rel(r.bse(cov_type=kind), se(leverage_cov(ref, h, kind))) < TOL, kind
    refc = model(y, X).fit(disp=0, method="newton", tol=1e-14, maxiter=100, cov_type="cluster",
                           cov_kwds={"groups": g})
    assert rel(r.bse(cov_type="cluster", groups=g), refc.bse) < TOL
    assert list(r.cov_params(cov_type="HC3").index)[-1] == ("alpha" if family != "poisson" else "hlthp")


# ----------------------------------------------------------------------------- Categorical
def jackknife_hc(X, y, theta, others, k, bread, kind):
    """HC2/HC3 of the multinomial logit row by row, from the definitions (the module docstring)."""
    n, q = X.shape
    m = len(others)
    B = np.zeros((q, k))
    B[:, others] = theta.reshape(m, q).T
    P = softmax(X @ B, axis=1)
    meat = np.zeros((m * q, m * q))
    for i in range(n):
        p = P[i, others]
        W = np.diag(p) - np.outer(p, p)
        J = np.kron(np.eye(m), X[i][None, :])  # (m, m q)
        r = (y[i] == np.asarray(others)).astype(float) - p
        if kind == "HC3":  # the one-step leave-one-out change (A - J'WJ)^-1 s, times A
            A = np.linalg.inv(bread)
            s = A @ np.linalg.solve(A - J.T @ W @ J, J.T @ r)
        else:
            C = np.linalg.cholesky(W)
            vals, vecs = np.linalg.eigh(np.eye(m) - C.T @ J @ bread @ J.T @ C)
            s = J.T @ C @ (vecs / np.sqrt(vals)) @ vecs.T @ np.linalg.solve(C, r)
        meat += np.outer(s, s)
    return bread @ meat @ bread


def test_categorical_hc_and_cluster(anes):
    x, y = anes
    r = sf.fit(sf.Linear(), sf.Categorical(), x, y)
    X = sm.add_constant(x)
    ref = sm.MNLogit(y, X).fit(disp=0, method="newton", tol=1e-14, maxiter=100)
    assert rel(r.bse(cov_type="HC0"), se(sw.cov_white_simple(ref, use_correction=False))) < TOL
    assert rel(r.bse(cov_type="HC1"), se(sw.cov_white_simple(ref, use_correction=True))) < TOL
    g = np.arange(len(y)) % 37
    refc = sm.MNLogit(y, X).fit(disp=0, method="newton", tol=1e-14, cov_type="cluster", cov_kwds={"groups": g})
    assert rel(r.bse(cov_type="cluster", groups=g), refc.bse.to_numpy().T.ravel()) < TOL
    theta = r.summary()["estimate"].to_numpy()
    bread = r.cov_params().to_numpy()
    for kind in ("HC2", "HC3"):
        direct = jackknife_hc(np.asarray(X, float), y, theta, list(range(1, 7)), 7, bread, kind)
        assert rel(r.cov_params(cov_type=kind).to_numpy(), direct) < 1e-8, kind
    # another reference class: the contrast 1 - 3 is the difference of two contrasts against class 0
    V = r.cov_params(cov_type="HC3")
    a, b = (1, "age"), (3, "age")
    assert r.bse(cov_type="HC3", reference=3).loc[a] ** 2 == pytest.approx(V.loc[a, a] - 2 * V.loc[a, b] + V.loc[b, b],
                                                                           rel=1e-8)


def test_two_class_categorical_equals_the_bernoulli_logit(spector):
    x, y = spector
    g = groups(len(y), 4)  # 8 groups of 4 rows
    cat = sf.fit(sf.Linear(), sf.Categorical(), x, y.astype(int))
    ber = sf.fit(sf.Linear(), sf.Bernoulli(), x, y)
    for kind in ("HC0", "HC1", "HC2", "HC3"):
        assert rel(cat.bse(cov_type=kind), ber.bse(cov_type=kind)) < TOL, kind
    assert rel(cat.bse(cov_type="cluster", groups=g), ber.bse(cov_type="cluster", groups=g)) < TOL


# ----------------------------------------------------------------------------- errors and the CLI
def test_bad_covariance_options_are_refused(spector):
    x, y = spector
    g = groups(len(y), 4)  # 8 groups of 4 rows
    r = sf.fit(sf.Linear(), sf.Bernoulli(), x, y)
    with pytest.raises(ValueError, match=r"'cov_type' parameter must be one of \['nonrobust', 'robust', 'HC0', "
                                         r"'HC1', 'HC2', 'HC3', 'cluster'\].*Got 'HC4'"):
        r.summary(cov_type="HC4")
    with pytest.raises(ValueError, match="cov_type='cluster' needs the 'groups' parameter"):
        r.summary(cov_type="cluster")
    with pytest.raises(ValueError, match="'groups' parameter is used only with cov_type='cluster'"):
        r.cov_params(groups=g)
    with pytest.raises(ValueError, match=r"'groups' parameter must hold one label per training row \(32\)"):
        r.summary(cov_type="cluster", groups=g[:-1])
    with pytest.raises(ValueError, match="names the column 'firm', but this fit has no data frame"):
        r.summary(cov_type="cluster", groups="firm")
    with pytest.raises(ValueError, match="needs at least 2 groups"):
        r.summary(cov_type="cluster", groups=np.zeros(32))
    with pytest.raises(ValueError, match="'groups' parameter holds a missing value at row 3"):
        r.summary(cov_type="cluster", groups=np.where(np.arange(32) == 3, np.nan, g))
    assert r.summary(cov_type="hc1").attrs["cov_type"] == "HC1"  # case does not matter


def test_hc2_needs_a_linear_model():
    d = sf.datasets.linear(n_train=60, seed=0)
    line = sf.Function(lambda p, x: p["a"] + p["b"] * x[:, 0], {"a": 0.0, "b": 0.0})
    r = sf.fit(line, sf.Gaussian(), d.train.x, d.train.y, optimizer="newton", dtype="float64", steps=20)
    with pytest.raises(ValueError, match="cov_type='HC2' needs each row's leverage.*use 'HC0', 'HC1' or 'cluster'"):
        r.summary(cov_type="HC2")
    hc1 = r.summary(cov_type="HC1")["std_err"].to_numpy()
    assert rel(hc1 ** 2, r.summary(cov_type="HC0")["std_err"].to_numpy() ** 2 * 60 / 58) < 1e-12  # n / (n - k)


def test_cli_prints_clustered_standard_errors(grunfeld, tmp_path):
    from scanfit.cli import app

    path = tmp_path / "grunfeld.csv"
    grunfeld[["invest", "value", "capital", "firm"]].to_csv(path, index=False)
    out = CliRunner().invoke(app, ["fit", str(path), "--target", "invest", "--cluster", "firm", "--out",
                                   str(tmp_path / "out"), "--no-progress"])
    assert out.exit_code == 0, out.output
    ref = sm.OLS(grunfeld["invest"], sm.add_constant(grunfeld[["value", "capital"]])).fit(
        cov_type="cluster", cov_kwds={"groups": grunfeld["firm"]})
    assert "covariance:" in out.output and "cluster" in out.output and "groups:" in out.output
    line = next(ln for ln in out.output.splitlines() if ln.startswith("value "))
    assert float(line.split()[2]) == pytest.approx(ref.bse["value"], rel=1e-3)  # printed to 4 digits
    assert not any(ln.startswith("firm ") for ln in out.output.splitlines())  # the group column is no feature
    bad = CliRunner().invoke(app, ["fit", str(path), "--target", "invest", "--cluster", "nope", "--out",
                                   str(tmp_path / "bad"), "--no-progress"])
    assert bad.exit_code == 1 and "--cluster" in bad.output and "nope" in bad.output
