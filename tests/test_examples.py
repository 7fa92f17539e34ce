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
