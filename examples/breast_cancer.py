"""Breast cancer (scikit-learn's bundled copy): logistic regression with standard errors, checked
against statsmodels' Logit.

Four well-known predictors, standardized, keep the maximum-likelihood problem identified (all 30
columns separate the classes perfectly, and then no finite MLE exists in any package).

    python examples/breast_cancer.py
"""

from __future__ import annotations

import numpy as np
import statsmodels.api as sm
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from scanfit.sklearn import LogisticRegression

FEATURES = ["mean radius", "mean texture", "mean smoothness", "mean concave points"]


def main(*, quick: bool = False, verbose: bool = True) -> dict:
    data = load_breast_cancer(as_frame=True)
    x = data.data[FEATURES]
    x = x.__class__(StandardScaler().fit_transform(x), columns=FEATURES)
    y = data.target  # 1 = benign

    clf = LogisticRegression(dtype="float64").fit(x, y)  # Newton steps in float64
    table = clf.result_.summary()
    ref = sm.Logit(y.to_numpy(), sm.add_constant(x.to_numpy())).fit(disp=0)

    coef = np.r_[clf.intercept_, clf.coef_[0]]
    out = {"coef": coef, "se": table["std_err"].to_numpy(), "sm_coef": np.asarray(ref.params),
           "sm_se": np.asarray(ref.bse), "accuracy": clf.score(x, y), "status": clf.result_.status.code}
    out["max_coef_diff"] = float(np.max(np.abs(out["coef"] - out["sm_coef"])))
    out["max_se_diff"] = float(np.max(np.abs(out["se"] - out["sm_se"])))
    if verbose:
        print(table)
        print(f"\nstatsmodels Logit: coefficients {np.round(out['sm_coef'], 4)}, standard errors {np.round(out['sm_se'], 4)}")
        print(f"largest difference: coefficients {out['max_coef_diff']:.2e}, standard errors {out['max_se_diff']:.2e}")
        print(f"training accuracy {out['accuracy']:.3f}; status {out['status']}")
    return out


if __name__ == "__main__":
    main()
