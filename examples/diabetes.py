"""Diabetes (scikit-learn's bundled copy): linear regression, checked against OLS.

Fitted twice: with the estimator's default Newton step (exact for least squares), and with plain
adam steps on standardized inputs to show the learning path reaching the same answer.

    python examples/diabetes.py
"""

from __future__ import annotations

import numpy as np
import statsmodels.api as sm
from sklearn.datasets import load_diabetes
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from scanfit.sklearn import LinearRegression


def main(*, quick: bool = False, verbose: bool = True) -> dict:
    x, y = load_diabetes(return_X_y=True, as_frame=True)
    ols = sm.OLS(y.to_numpy(), sm.add_constant(x.to_numpy())).fit()

    exact = LinearRegression(dtype="float64").fit(x, y)
    steps = 2000 if quick else 20000
    path = make_pipeline(StandardScaler(), LinearRegression(optimizer="adam", learning_rate=0.5, steps=steps,
                                                            record_every=100, dtype="float64")).fit(x, y)
    scaler, lin = path
    slopes = lin.coef_ / scaler.scale_  # back to the original units
    out = {"coef": np.r_[exact.intercept_, exact.coef_], "ols": np.asarray(ols.params),
           "adam_slopes": slopes, "r2": exact.score(x, y), "ols_r2": ols.rsquared,
           "adam_r2": path.score(x, y), "history": lin.history_}
    out["max_diff"] = float(np.max(np.abs(out["coef"] - out["ols"])))
    out["max_rel_diff_adam"] = float(np.max(np.abs(slopes - ols.params[1:]) / np.abs(ols.params[1:])))
    if verbose:
        print(exact.result_.summary())
        print(f"\nNewton vs statsmodels OLS: largest coefficient difference {out['max_diff']:.2e}; "
              f"R^2 {out['r2']:.4f} vs {out['ols_r2']:.4f}")
        print(f"{steps} adam steps on standardized x: largest relative slope difference {out['max_rel_diff_adam']:.2e}, "
              f"R^2 {out['adam_r2']:.4f}")
        print(lin.history_[["step", "train_mse"]].iloc[:: max(1, len(lin.history_) // 5)].to_string(index=False))
    return out


if __name__ == "__main__":
    main()
