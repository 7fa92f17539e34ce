"""Right answers by default on real tables with raw (unscaled) columns.

Default options only: ``sf.fit(model, likelihood, x, y)``. Linear models must end ``converged``
at statsmodels' maximum-likelihood estimate, their summary must describe ``result.params``
exactly, separated classes must be reported at fit time, and networks must train.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from typer.testing import CliRunner

import scanfit as sf
from scanfit.cli import app

BC4 = ["mean radius", "mean texture", "mean smoothness", "mean concave points"]  # examples/breast_cancer.py


def _coef(result) -> np.ndarray:
    return np.r_[np.atleast_1d(result.params["beta0"]), result.params["beta1"]]


def _spector():
    d = sm.datasets.spector.load_pandas()
    return d.exog, d.endog


def _breast_cancer4():
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return x[BC4], y


def _anes96():
    a = sm.datasets.anes96.load_pandas().data
    return a[["logpopul", "selfLR", "age", "educ", "income"]], a["PID"].astype(int)


CASES = {
    "spector": (_spector, sf.Bernoulli, lambda x, y: sm.Logit(y, sm.add_constant(x)).fit(disp=0)),
    "breast_cancer4": (_breast_cancer4, sf.Bernoulli, lambda x, y: sm.Logit(y, sm.add_constant(x)).fit(disp=0)),
    "diabetes": (lambda: load_diabetes(return_X_y=True, as_frame=True), sf.Gaussian,
                 lambda x, y: sm.OLS(y, sm.add_constant(x)).fit()),
    "anes96": (_anes96, sf.Categorical, lambda x, y: sm.MNLogit(y, sm.add_constant(x)).fit(disp=0, method="newton")),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def glm(request):
    load, likelihood, reference = CASES[request.param]
    x, y = load()
    with warnings.catch_warnings():
        warnings.simplefilter("error", sf.FitWarning)  # a right answer comes without warnings
        result = sf.fit(sf.Linear(), likelihood(), x, y)
    return request.param, result, reference(x, y)


def test_defaults_reach_the_maximum_likelihood_estimate(glm):
    name, r, ref = glm
    assert r.status.code == "converged", r.status
    assert r.config.optimizer == "newton" and r.config.dtype == "float64" and r.config.standardize
    if name == "anes96":  # MNLogit reports contrasts against class 0
        coef = np.vstack([r.params["beta0"][None, :], r.params["beta1"]])
        got = (coef - coef[:, :1])[:, 1:]
        want = np.asarray(ref.params)
    else:
        got, want = _coef(r), np.asarray(ref.params)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9 * np.max(np.abs(want)))


def test_summary_describes_result_params_exactly(glm):
    name, r, ref = glm
    with warnings.catch_warnings():
        warnings.simplefilter("error", sf.FitWarning)  # at the maximum: no warning
        table = r.summary()
    if name == "anes96":
        coef = np.vstack([r.params["beta0"][None, :], r.params["beta1"]])
        want = np.concatenate([coef[:, c] - coef[:, 0] for c in range(1, coef.shape[1])])
    else:
        want = _coef(r)
    np.testing.assert_array_equal(table["estimate"].to_numpy(), want)
    np.testing.assert_allclose(table["std_err"].to_numpy(), np.asarray(ref.bse).T.ravel() if name == "anes96"
                               else np.asarray(ref.bse), rtol=1e-5)
    assert table.attrs["gradient_norm"] < 1e-6


def test_null_model_statistics_match_statsmodels(glm):
    name, r, ref = glm
    if name == "diabetes":  # OLS has no llnull; the Gaussian null is the intercept-only profile likelihood
        y = load_diabetes(return_X_y=True)[1]
        want = -0.5 * (np.log(2 * np.pi * np.var(y)) + 1)
        assert r.final["train_null_objective"] == pytest.approx(want, rel=1e-12)
        return
    n = ref.nobs
    assert r.final["train_null_objective"] * n == pytest.approx(ref.llnull, rel=1e-8)
    assert r.final["train_pseudo_r2"] == pytest.approx(ref.prsquared, rel=1e-8)


@pytest.mark.parametrize("load, likelihood", [
    (lambda: load_wine(return_X_y=True, as_frame=True), sf.Categorical),
    (lambda: load_iris(return_X_y=True, as_frame=True), sf.Categorical),
    (lambda: load_breast_cancer(return_X_y=True, as_frame=True), sf.Bernoulli),
], ids=["wine", "iris", "breast_cancer30"])
@pytest.mark.parametrize("dtype", ["auto", "float32"])
def test_separation_is_reported_at_fit_time(load, likelihood, dtype):
    x, y = load()
    with pytest.warns(sf.FitWarning, match="separat"):
        r = sf.fit(sf.Linear(), likelihood(), x, y, dtype=dtype)
    assert r.status.code == "separation" and not r.status.ok
    assert any(repr(c) in r.status.message for c in x.columns), r.status.message  # names the columns


def test_network_on_raw_columns_trains():
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    order = np.random.default_rng(0).permutation(len(y))
    tr, te = order[:450], order[450:]
    r = sf.fit(sf.MLP(hidden=8), sf.Bernoulli(), x.iloc[tr], y.iloc[tr])
    assert r.config.optimizer == "adam" and r.config.standardize and r.design.standardized
    accuracy = np.mean((r.predict(x.iloc[te]) > 0.5) == y.iloc[te].to_numpy())
    assert accuracy >= 0.93
    assert r.final["train_pseudo_r2"] > 0.5


def test_cli_mlp_on_the_raw_table(tmp_path):
    data = load_breast_cancer(as_frame=True).frame
    data.to_csv(tmp_path / "bc.csv", index=False)
    out = tmp_path / "fit"
    res = CliRunner().invoke(app, ["fit", str(tmp_path / "bc.csv"), "--target", "target", "--model", "mlp",
                                   "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "held out for validation" in res.output
    final = json.loads((out / "model" / "model.json").read_text())["final"]
    assert final["valid_accuracy"] >= 0.93
    pred = CliRunner().invoke(app, ["predict", str(out), str(tmp_path / "bc.csv")])
    assert pred.exit_code == 0
    frame = pd.read_csv(__import__("io").StringIO(pred.stdout))
    assert np.mean(frame["predicted"] == data["target"]) >= 0.93  # the saved model reads raw columns


def test_cli_linear_uses_all_rows_like_statsmodels(tmp_path):
    x, y = _spector()
    frame = x.assign(GRADE=y)
    frame.to_csv(tmp_path / "spector.csv", index=False)
    res = CliRunner().invoke(app, ["fit", str(tmp_path / "spector.csv"), "--target", "GRADE", "--out",
                                   str(tmp_path / "o"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "32 gave the estimates" in res.output and "converged" in res.output
    ref = sm.Logit(y, sm.add_constant(x)).fit(disp=0)
    assert f"{ref.bse['GPA']:.4g}" in res.output


def test_one_class_classifier_warns():
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    with pytest.warns(sf.FitWarning, match=r"predicts class \d for every training row.*activation"):
        r = sf.fit(sf.MLP(hidden=8), sf.Bernoulli(), x, y, optimizer="adam", learning_rate=0.01, steps=200,
                   standardize=False)
    assert r.final["train_predavg"] in (0.0, 1.0)


def test_unfinished_fit_summary_warns_and_refine_reaches_the_maximum():
    x, y = _spector()
    r = sf.fit(sf.Linear(), sf.Bernoulli(), x, y, optimizer="gd", learning_rate=0.5, steps=20)
    assert r.status.code == "completed"
    with pytest.warns(sf.FitWarning, match=r"not the maximum-likelihood estimate.*refine\(\)"):
        table = r.summary()
    np.testing.assert_array_equal(table["estimate"].to_numpy(), _coef(r))  # still result.params
    better = r.refine()
    assert better.status.code == "converged" and r.status.code == "completed"  # r is unchanged
    ref = sm.Logit(y, sm.add_constant(x)).fit(disp=0)
    np.testing.assert_allclose(_coef(better), np.asarray(ref.params), rtol=1e-6)
    np.testing.assert_array_equal(better.summary()["estimate"].to_numpy(), _coef(better))


def test_refine_needs_the_training_data(tmp_path):
    x, y = _spector()
    r = sf.fit(sf.Linear(), sf.Bernoulli(), x, y)
    r.save(tmp_path / "m")
    with pytest.raises(ValueError, match="no training data"):
        sf.load(tmp_path / "m").refine()


def test_standardized_first_order_fit_reports_the_user_scale():
    x, y = load_diabetes(return_X_y=True, as_frame=True)
    r = sf.fit(sf.Linear(), sf.Gaussian(), x, y, optimizer="adam", learning_rate=0.5, steps=3000)
    ols = sm.OLS(y, sm.add_constant(x)).fit()
    np.testing.assert_allclose(_coef(r), np.asarray(ols.params), rtol=2e-2, atol=2.0)  # float32, first order
    last = r.history.iloc[-1]
    assert last["beta1_bmi"] == pytest.approx(float(r.params["beta1"][2]), rel=1e-2)  # paths on the user's scale
    np.testing.assert_allclose(r.predict(x), r.params["beta0"] + x.to_numpy() @ r.params["beta1"], rtol=1e-5)


def test_values_outside_the_dtype_are_refused():
    x, y = _spector()
    big = x.assign(TUCE=x["TUCE"] * 1e30)
    with pytest.raises(ValueError, match=r"'TUCE'.*overflow float32.*float64"):
        sf.fit(sf.Linear(), sf.Bernoulli(), big, y, optimizer="adam", standardize=False)
    with pytest.raises(ValueError, match=r"'TUCE'.*beyond float32's range"):
        sf.fit(sf.Linear(), sf.Bernoulli(), x.assign(TUCE=x["TUCE"] * 1e39), y, optimizer="adam")
    r = sf.fit(sf.Linear(), sf.Bernoulli(), big, y)  # standardized, float64: fine
    assert r.status.code == "converged"
    j = list(x.columns).index("TUCE")
    plain = sf.fit(sf.Linear(), sf.Bernoulli(), x, y).params["beta1"][j]
    assert r.params["beta1"][j] == pytest.approx(plain / 1e30, rel=1e-6)


def test_a_start_that_overflows_is_not_blamed_on_the_learning_rate():
    x, y = _spector()
    start = {"beta0": np.float32(0.0), "beta1": np.full(3, 1e19, np.float32)}
    with pytest.warns(sf.FitWarning, match="starting parameters.*learning rate is not the cause"):
        r = sf.fit(sf.Linear(), sf.Gaussian(), x, y, optimizer="gd", learning_rate=1e-30, standardize=False,
                   init_params=start, steps=5)
    assert r.status.code == "diverged" and r.status.step == 0


def test_a_learning_rate_with_auto_newton_is_an_error():
    x, y = _spector()
    with pytest.raises(ValueError, match=r"'learning_rate'.*optimizer='auto'.*Newton.*optimizer='gd'"):
        sf.fit(sf.Linear(), sf.Bernoulli(), x, y, learning_rate=0.1)
