"""The command line with the statistician's models: formulas, counts with exposure and weights, probit."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf
from typer.testing import CliRunner

from scanfit.cli import app

runner = CliRunner()


def _final_summary(out):
    return json.loads((out / "model" / "model.json").read_text())


def test_cli_poisson_with_exposure_and_weights(tmp_path):
    d = sm.datasets.randhie.load_pandas().data.iloc[:3000]
    d = d.assign(years=np.random.default_rng(0).uniform(0.5, 2, len(d)), w=np.random.default_rng(1).integers(1, 3, len(d)))
    d.to_csv(tmp_path / "rh.csv", index=False)
    res = runner.invoke(app, ["fit", str(tmp_path / "rh.csv"), "--target", "mdvis", "--likelihood", "poisson",
                              "--exposure", "years", "--weights", "w", "--out", str(tmp_path / "o"), "--no-progress"])
    assert res.exit_code == 0, res.output
    x = d.drop(columns=["mdvis", "years", "w"])
    ref = sm.GLM(d["mdvis"], sm.add_constant(x), family=sm.families.Poisson(), exposure=d["years"],
                 freq_weights=d["w"]).fit(tol=1e-12)
    assert f"{ref.params['idp']:.4g}" in res.output and f"{ref.bse['idp']:.4g}" in res.output
    meta = _final_summary(tmp_path / "o")
    assert meta["likelihood"]["name"] == "poisson" and meta["feature_names"] == list(x.columns)  # years, w not features
    pred = runner.invoke(app, ["predict", str(tmp_path / "o"), str(tmp_path / "rh.csv")])
    frame = pd.read_csv(io.StringIO(pred.stdout))
    np.testing.assert_allclose(frame["predicted"], ref.predict(sm.add_constant(x)), rtol=1e-6)  # per unit exposure


def test_cli_formula_and_predict(tmp_path):
    fair = sm.datasets.fair.load_pandas().data
    fair.to_csv(tmp_path / "fair.csv", index=False)
    f = "affairs ~ rate_marriage + C(religious) + np.log(age)"
    res = runner.invoke(app, ["fit", str(tmp_path / "fair.csv"), "--formula", f, "--out", str(tmp_path / "o"),
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    ref = smf.ols(f, fair).fit()
    assert "C(religious)[T.2.0]" in res.output and f"{ref.bse['np.log(age)']:.4g}" in res.output
    pred = runner.invoke(app, ["predict", str(tmp_path / "o"), str(tmp_path / "fair.csv")])
    assert pred.exit_code == 0, pred.output
    frame = pd.read_csv(io.StringIO(pred.stdout))
    np.testing.assert_allclose(frame["predicted"], ref.fittedvalues, rtol=1e-8)
    both = runner.invoke(app, ["fit", str(tmp_path / "fair.csv"), "--formula", f, "--target", "affairs",
                               "--out", str(tmp_path / "o2"), "--no-progress"])
    assert both.exit_code == 1 and "not both" in both.output


def test_cli_probit(tmp_path):
    d = sm.datasets.spector.load_pandas()
    d.exog.assign(GRADE=d.endog).to_csv(tmp_path / "spector.csv", index=False)
    res = runner.invoke(app, ["fit", str(tmp_path / "spector.csv"), "--target", "GRADE", "--link", "probit",
                              "--out", str(tmp_path / "o"), "--no-progress"])
    assert res.exit_code == 0, res.output
    ref = sm.Probit(d.endog, sm.add_constant(d.exog)).fit(disp=0)
    assert f"{ref.params['GPA']:.4g}" in res.output
