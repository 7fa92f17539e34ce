"""The examples/ scripts on scikit-learn's bundled datasets, run in their quick mode."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_breast_cancer_matches_statsmodels_logit():
    out = _load("breast_cancer").main(quick=True, verbose=False)
    assert out["status"] == "converged"
    assert out["max_coef_diff"] < 1e-6  # float64 Newton against statsmodels' Newton
    assert out["max_se_diff"] < 1e-6  # standard errors from the observed information
    assert out["accuracy"] > 0.9


def test_diabetes_matches_ols():
    out = _load("diabetes").main(quick=True, verbose=False)
    np.testing.assert_allclose(out["coef"], out["ols"], rtol=1e-8, atol=1e-6)
    assert out["r2"] == pytest.approx(out["ols_r2"], abs=1e-10)
    assert out["adam_r2"] == pytest.approx(out["ols_r2"], abs=2e-3)  # 2000 adam steps: R^2 within 0.002


def test_digits_mlp_is_as_accurate_as_sklearns(capsys):
    out = _load("digits").main(quick=True, verbose=True)
    # quick mode: 200 full-batch steps against 40 scikit-learn epochs
    assert out["scanfit_accuracy"] > 0.96
    assert out["scanfit_accuracy"] >= out["sklearn_accuracy"] - 0.01
    assert "held-out accuracy: scanfit" in capsys.readouterr().out


def test_readme_statisticians_section_runs_and_matches_statsmodels(capsys):
    """The README's "For statisticians" code block, run as written, then checked."""
    import re

    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    text = (EXAMPLES.parent / "README.md").read_text()
    section = text[text.index("### For statisticians"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own README
    assert "C(religious)[T.2.0]" in capsys.readouterr().out
    ref = smf.ols("affairs ~ rate_marriage + age + C(religious) + np.log(yrs_married + 1)", scope["fair"]).fit()
    np.testing.assert_allclose(scope["ols"].summary()["std_err"], ref.bse, rtol=1e-8)
    v = scope["visits"]
    glm = smf.glm("mdvis ~ lncoins + idp + lpi + physlm", v, family=sm.families.Poisson(), exposure=v["years"]).fit()
    np.testing.assert_allclose(scope["poisson"].summary()["estimate"], glm.params, rtol=1e-6)
    nb = smf.negativebinomial("mdvis ~ lncoins + idp + lpi + physlm", v).fit(disp=0, method="newton", maxiter=100)
    assert scope["negbin"].summary().loc["alpha", "estimate"] == pytest.approx(nb.params["alpha"], rel=1e-5)
    pr = sm.Probit(scope["spector"].endog, sm.add_constant(scope["spector"].exog)).fit(disp=0)
    np.testing.assert_allclose(scope["probit"].summary()["estimate"], pr.params, rtol=1e-6)
    margins = pr.get_margeff(at="overall").summary_frame()
    np.testing.assert_allclose(scope["probit"].marginal_effects()["estimate"], margins["dy/dx"], rtol=1e-5)
    assert (scope["lasso"].params["beta1"] == 0).any()
