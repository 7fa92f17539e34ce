"""Model tests (issue 13, part 4): the null model, LR and Wald tests, the summary header and the HTML
report, against statsmodels in float64 on data that ships with it.

``llnull``, ``prsquared``, ``aic``, ``bic`` agree to 1e-8 relative; LR and Wald statistics to 1e-6
(Wald against ``wald_test(..., use_f=False, scalar=True)``).
"""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

import scanfit as sf
from _sm_data import anes, counts, fair, spector  # noqa: F401
from scanfit.data import identification
from scanfit.show import report

HEADER = 1e-8
TEST = 1e-6


def rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def same_header(s, ref, llnull=None, prsquared=None):
    a = s.attrs
    assert rel(a["loglik"], ref.llf) < HEADER
    assert rel(a["llnull"], ref.llnull if llnull is None else llnull) < HEADER
    assert rel(a["pseudo_r2"], ref.prsquared if prsquared is None else prsquared) < HEADER
    assert rel(a["aic"], ref.aic) < HEADER and rel(a["bic"], ref.bic) < HEADER
    if llnull is None:
        assert rel(a["llr"], ref.llr) < TEST and a["llr_df"] == ref.df_model
        assert rel(a["llr_pvalue"], ref.llr_pvalue) < 1e-5


@pytest.fixture(scope="module")
def logit(spector):
    x, y = spector
    return sf.fit(sf.Linear(), sf.Bernoulli(), x, y), sm.Logit(y, sm.add_constant(x)).fit(
        disp=0, method="newton", tol=1e-14)


# ----------------------------------------------------------------------------- the header
def test_logit_header_matches_statsmodels(logit):
    r, ref = logit
    s = r.summary()
    same_header(s, ref)
    text = str(s)
    for piece in ("null log-lik.:", "LR chi2(3):", "LR p-value:", "pseudo R-squ.:", f"{s.attrs['llnull']:.6g}",
                  f"{s.attrs['pseudo_r2']:.4g}", "AIC:", "BIC:"):
        assert piece in text, piece


def test_probit_and_count_headers_match_statsmodels(spector, counts):
    x, y = spector
    same_header(sf.fit(sf.Linear(), sf.Bernoulli(link="probit"), x, y).summary(),
                sm.Probit(y, sm.add_constant(x)).fit(disp=0, method="newton", tol=1e-14))
    xc, yc = counts
    exposure = np.random.default_rng(0).uniform(0.5, 2.0, len(yc))
    same_header(sf.fit(sf.Linear(), sf.Poisson(), xc, yc, exposure=exposure).summary(),
                sm.Poisson(yc, sm.add_constant(xc), exposure=exposure).fit(disp=0, method="newton", tol=1e-14))
    same_header(sf.fit(sf.Linear(), sf.NegativeBinomial(), xc, yc).summary(),
                sm.NegativeBinomial(yc, sm.add_constant(xc)).fit(disp=0, method="newton", tol=1e-14, maxiter=100))


def test_categorical_and_gaussian_headers_match_statsmodels(fair, anes):
    x, y = anes
    same_header(sf.fit(sf.Linear(), sf.Categorical(), x, y).summary(),
                sm.MNLogit(y, sm.add_constant(x)).fit(disp=0, method="newton", tol=1e-14, maxiter=100))
    f = "affairs ~ rate_marriage + age + C(religious)"
    r = sf.fit(sf.Linear(), sf.Gaussian(), formula=f, data=fair)
    ref, null = smf.ols(f, fair).fit(), smf.ols("affairs ~ 1", fair).fit()
    same_header(r.summary(), ref, llnull=null.llf, prsquared=1 - ref.llf / null.llf)
    s = r.summary()
    assert rel(s.attrs["llr"], ref.compare_lr_test(null)[0]) < TEST and s.attrs["llr_df"] == ref.df_model


# ----------------------------------------------------------------------------- LR tests
def test_lr_test_of_nested_fits(fair, logit, spector):
    full = sf.fit(sf.Linear(), sf.Gaussian(), formula="affairs ~ rate_marriage + age + C(religious)", data=fair)
    small = sf.fit(sf.Linear(), sf.Gaussian(), formula="affairs ~ rate_marriage", data=fair)
    ref = smf.ols("affairs ~ rate_marriage + age + C(religious)", fair).fit()
    stat, p, df = ref.compare_lr_test(smf.ols("affairs ~ rate_marriage", fair).fit())
    out = sf.lr_test(small, full)
    assert isinstance(out, pd.Series) and list(out.index) == ["statistic", "df", "p_value"]
    assert rel(out["statistic"], stat) < TEST and out["df"] == df and rel(out["p_value"], p) < 1e-5
    r, refl = logit
    x, y = spector
    gpa = sf.fit(sf.Linear(), sf.Bernoulli(), x[["GPA"]], y)
    refg = sm.Logit(y, sm.add_constant(x[["GPA"]])).fit(disp=0, method="newton", tol=1e-14)
    assert rel(sf.lr_test(gpa, r)["statistic"], 2 * (refl.llf - refg.llf)) < TEST
    with pytest.raises(ValueError, match="needs the full model to have more parameters.*Pass the smaller model first"):
        sf.lr_test(r, gpa)
    with pytest.raises(ValueError, match="same likelihood. Got 'gaussian' \\(restricted\\) and 'bernoulli'"):
        sf.lr_test(small, r)
    with pytest.raises(ValueError, match="same rows. Got 6366 observations \\(restricted\\) and 32"):
        sf.lr_test(small, sf.fit(sf.Linear(), sf.Gaussian(), x, y))
    with pytest.raises(TypeError, match="lr_test\\(restricted, full\\) takes two fit results; 'full' is a str"):
        sf.lr_test(gpa, "r")


# ----------------------------------------------------------------------------- Wald tests
def test_wald_tests_match_statsmodels(logit, fair):
    r, ref = logit
    for text in ("GPA = TUCE, PSI = 0", "GPA - 2*TUCE = 1", "intercept + 3 PSI = -2, GPA"):
        ours = r.wald_test(text)
        theirs = ref.wald_test(text.replace("intercept", "const").replace("3 PSI", "3*PSI")
                               .replace(", GPA", ", GPA = 0"), use_f=False, scalar=True)
        assert list(ours.index) == ["statistic", "df", "p_value"]
        assert rel(ours["statistic"], theirs.statistic) < TEST and ours["df"] == theirs.df_denom
        assert rel(ours["p_value"], theirs.pvalue) < 1e-5
    g = np.arange(32) % 8
    refc = sm.Logit(ref.model.endog, ref.model.exog).fit(disp=0, method="newton", tol=1e-14, cov_type="cluster",
                                                         cov_kwds={"groups": g})
    R = np.array([[0, 1, -1, 0], [0, 0, 0, 1.0]])
    theirs = refc.wald_test(R, use_f=False, scalar=True)
    assert rel(r.wald_test("GPA = TUCE, PSI = 0", cov_type="cluster", groups=g)["statistic"], theirs.statistic) < TEST
    assert rel(r.wald_test(R, cov_type="cluster", groups=g)["statistic"], theirs.statistic) < TEST  # a matrix works
    f = "affairs ~ rate_marriage + C(religious) + np.log(age)"  # formula names, brackets and dots included
    rf = sf.fit(sf.Linear(), sf.Gaussian(), formula=f, data=fair)
    ols = smf.ols(f, fair).fit(cov_type="HC1")
    test = "C(religious)[T.2.0] = C(religious)[T.3.0], np.log(age) = 0"
    assert rel(rf.wald_test(test, cov_type="HC1")["statistic"], ols.wald_test(test, use_f=False, scalar=True)
               .statistic) < TEST


def test_gaussian_wald_test_is_statsmodels_ols_f_test(fair):
    """A non-robust Gaussian fit's summary uses Student's t, so its Wald test is OLS's F test: one
    restriction's p-value is the summary's."""
    f = "affairs ~ rate_marriage + age + yrs_married"
    r = sf.fit(sf.Linear(), sf.Gaussian(), formula=f, data=fair)
    ols = smf.ols(f, fair).fit()
    for test in ("age = 0", "rate_marriage = age, yrs_married = 0.1"):
        ours, theirs = r.wald_test(test), ols.wald_test(test, use_f=True, scalar=True)
        assert ours.name == "F" and list(ours.index) == ["statistic", "df", "df_denom", "p_value"]
        assert rel(ours["statistic"], theirs.statistic) < TEST and ours["df_denom"] == theirs.df_denom
        assert rel(ours["p_value"], theirs.pvalue) < 1e-8
    assert rel(r.wald_test("age = 0")["p_value"], r.summary().loc["age", "p_value"]) < 1e-10
    assert r.wald_test("age = 0", cov_type="HC1").name == "wald"  # robust: chi-squared, as the summary's normal


def test_categorical_wald_test_uses_class_colon_term(anes):
    x, y = anes[0][["logpopul", "selfLR", "age"]], anes[1]
    r = sf.fit(sf.Linear(), sf.Categorical(), x, y)
    ref = sm.MNLogit(y, sm.add_constant(x)).fit(disp=0, method="newton", tol=1e-14, maxiter=100)
    ours = r.wald_test("1:age = 0, 2:age = 1:age, 6:intercept = 2")
    R = np.zeros((3, 24))
    R[0, 3], R[1, 4 + 3], R[1, 3], R[2, 5 * 4] = 1, 1, -1, 1  # class-major contrasts, q = 4 terms each
    theirs = ref.wald_test((R, [0, 0, 2]), use_f=False, scalar=True)
    assert rel(ours["statistic"], theirs.statistic) < TEST and ours["df"] == 3
    with pytest.raises(ValueError, match=r"names 'age'.*Categorical rows are written class:term, e.g. '1:intercept'"):
        r.wald_test("age = 0")


@pytest.mark.parametrize("text, match", [
    ("x4 = 0", r"The restriction 'x4 = 0' names 'x4' \(at character 0\), which is not a coefficient. "
               r"The names are \['intercept', 'GPA', 'TUCE', 'PSI'\]"),
    ("GPA = 0,, PSI = 0", "hold an empty restriction"),
    ("GPA = TUCE = PSI", "has 2 '=' signs"),
    ("GPA - = 0", "ends with an operator"),
    ("GPA TUCE = 0", "two terms without '\\+' or '-' between them"),
    ("GPA - GPA = 1", "holds no coefficient"),
    ("GPA = 0, 2*GPA = 0", "restrictions are not independent"),
    ("= 1", "has an empty side"),
])
def test_bad_restrictions_are_refused(logit, text, match):
    r, _ = logit
    with pytest.raises(ValueError, match=match):
        r.wald_test(text)


# ----------------------------------------------------------------------------- report and messages
def test_html_report_shows_the_header_statistics(logit, tmp_path):
    r, ref = logit
    page = report.write(tmp_path / "report.html", "fit", [report.result_section("Fit", r)]).read_text()
    assert "Model statistics" in page and "pseudo R-squared (McFadden)" in page and "null log-likelihood" in page
    assert f"{ref.llnull:.4g}" in page and f"{ref.aic:.4g}" in page and "LR chi-squared against the null (3 df)" in page
    table = report.header_statistics(r).set_index("statistic")["value"]
    assert rel(table["BIC"], ref.bic) < HEADER


def test_separation_points_to_a_ridge_penalty():
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    message = identification.separation(x, np.array([0, 0, 1, 1]), ("x",))
    assert "penalty=sf.ElasticNet(alpha=..., l1_ratio=0)" in message
    # no single column separates, a + b > 2.5 does (the linear program's message)
    x2 = np.array([[0, 0], [3, 0], [0, 3], [1, 1], [2, 1.5], [1.5, 0], [0, 1.5]])
    message = identification.separation(x2, np.array([0, 1, 1, 0, 1, 0, 0]), ("a", "b"))
    assert "linear rule" in message and "penalty=sf.ElasticNet(alpha=..., l1_ratio=0)" in message
