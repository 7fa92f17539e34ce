"""scanfit.sklearn: the scikit-learn contract, meta-estimators, and answers checked against peers."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from sklearn.linear_model import LinearRegression as SkLinearRegression
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import scanfit as sf
from scanfit.sklearn import (LinearRegression, LogisticRegression, MLPClassifier, MLPRegressor, PoissonRegressor,
                             split_valid)


def expected_failed_checks(estimator) -> dict:
    """Checks that scanfit's estimators deliberately fail, with the reason.

    (scikit-learn itself skips its array-API checks unless SCIPY_ARRAY_API=1 is set; that skip
    is not ours.)"""
    if isinstance(estimator, (PoissonRegressor, LinearRegression, LogisticRegression)):
        return {"check_sample_weight_equivalence_on_dense_data":
                "the check fits 30 features to 15 rows: the unpenalized maximum-likelihood estimate is not unique "
                "or does not exist (scikit-learn's own estimators pass through a penalty or a minimum-norm solution), "
                "so two fits need not agree; tests/test_counts.py checks weights against repeated rows, estimates "
                "and standard errors to 1e-10, where the MLE exists"}
    if isinstance(estimator, (MLPClassifier, MLPRegressor)):
        return {"check_sample_weight_equivalence_on_dense_data":
                "float32 training: the weighted and the repeated fit have the same objective and standardization "
                "and agree to float32 rounding (about 1e-6), not to the check's rtol=1e-7"}
    return {}


# Small, fast instances: every check fits several times on new shapes, and each new shape compiles
# (about 1 s each on a laptop CPU), so the whole suite takes minutes. The API checks run in the unit
# suite for a classifier and a regressor; every check (API + legacy: training quality, dtypes, NaN/inf, pickling, subset invariance,
# string classes, ...) runs in the slow tier, which CI runs. All of them pass.
CHECKED = [LinearRegression(steps=20), LogisticRegression(steps=20), PoissonRegressor(steps=20),
           MLPClassifier(steps=50), MLPRegressor(steps=50)]  # the MLPs with default hidden sizes and options
QUICK = [LogisticRegression(optimizer="adam", learning_rate=0.2, steps=20), CHECKED[3]]


@parametrize_with_checks(QUICK, legacy=False, expected_failed_checks=expected_failed_checks)
def test_sklearn_api_contract(estimator, check):
    check(estimator)


@pytest.mark.slow
@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failed_checks)
def test_sklearn_full_contract(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def binary():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    y = (rng.uniform(size=300) < 1 / (1 + np.exp(-(0.3 + x @ [1.0, -2.0, 0.5])))).astype(int)
    return x, y


@pytest.fixture(scope="module")
def three_classes():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 2))
    logits = x @ np.array([[0.0, 2.0, -1.0], [0.0, -1.0, 2.0]])
    y = np.array([rng.choice(3, p=np.exp(r) / np.exp(r).sum()) for r in logits])
    return x, y


def test_linear_regression_matches_ols():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = 1.0 + x @ [2.0, -1.0, 0.5] + rng.normal(size=200)
    est = LinearRegression(dtype="float64").fit(x, y)
    ref = SkLinearRegression().fit(x, y)
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-8)  # float64 Newton: one exact step
    assert est.intercept_ == pytest.approx(ref.intercept_, rel=1e-8)
    assert est.score(x, y) == pytest.approx(ref.score(x, y), rel=1e-10)
    assert list(est.history_.columns[:3]) == ["step", "train_objective", "train_mse"]


def test_logistic_regression_matches_statsmodels_logit(binary):
    x, y = binary
    est = LogisticRegression(dtype="float64").fit(x, y)
    ref = sm.Logit(y, sm.add_constant(x)).fit(disp=0)
    assert est.coef_.shape == (1, 3) and est.intercept_.shape == (1,)
    np.testing.assert_allclose(np.r_[est.intercept_, est.coef_[0]], ref.params, rtol=1e-6)
    # 1e-6: FitResult.predict applies the link outside the float64 scope (float32 probabilities)
    np.testing.assert_allclose(est.predict_proba(x)[:, 1], ref.predict(sm.add_constant(x)), atol=1e-6)
    assert est.result_.status.code == "converged"


def test_multiclass_logistic_matches_unpenalized_sklearn(three_classes):
    x, y = three_classes
    est = LogisticRegression(dtype="float64").fit(x, y)
    ref = SkLogisticRegression(C=np.inf, tol=1e-10, max_iter=10_000).fit(x, y)
    assert est.coef_.shape == (3, 2) and est.intercept_.shape == (3,)
    # K logits are over-parametrized: the probabilities are identified (agree to 1e-5), not the coefficients
    np.testing.assert_allclose(est.predict_proba(x), ref.predict_proba(x), atol=1e-5)
    np.testing.assert_array_equal(est.predict(x), ref.predict(x))
    assert est.decision_function(x).shape == (300, 3)


def test_string_labels_round_trip(binary, three_classes):
    x, y = three_classes
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    est = LogisticRegression().fit(x, names)
    np.testing.assert_array_equal(est.classes_, ["setosa", "versicolor", "virginica"])
    assert set(est.predict(x)) <= set(est.classes_)
    assert est.score(x, names) == pytest.approx(LogisticRegression().fit(x, y).score(x, y))
    xb, yb = binary
    labels = np.where(yb == 1, "yes", "no")
    clf = LogisticRegression().fit(xb, labels)
    np.testing.assert_array_equal(clf.classes_, ["no", "yes"])
    np.testing.assert_array_equal(clf.predict(xb), np.where(LogisticRegression().fit(xb, yb).predict(xb) == 1, "yes", "no"))


def test_pipeline_cross_val_score_and_grid_search(three_classes):
    x, y = three_classes
    x = 10.0 * x + 5.0  # unscaled inputs: the scaler in the pipeline matters
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden=8, steps=200, learning_rate=0.03, record_every=10))
    scores = cross_val_score(pipe, x, y, cv=2)
    ref = cross_val_score(make_pipeline(StandardScaler(), SkLogisticRegression()), x, y, cv=2)
    assert scores.shape == (2,) and scores.mean() > ref.mean() - 0.05  # as good as sklearn's logit, within 0.05
    # each distinct (learning_rate, hidden) compiles once; the folds share shapes with cross_val_score's
    grid = GridSearchCV(pipe, {"mlpclassifier__learning_rate": [1e-4, 0.03], "mlpclassifier__hidden": [2, 8]},
                        cv=2, refit=False).fit(x, y)
    assert grid.best_params_["mlpclassifier__learning_rate"] == 0.03  # 200 steps at 1e-4 barely move
    assert grid.cv_results_["mean_test_score"].max() > 0.7


def test_mlp_regressor_in_pipeline_fits_a_curve():
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, size=(400, 1))
    y = np.sin(x[:, 0]) * 10 + 50
    est = make_pipeline(StandardScaler(), MLPRegressor(hidden=32, activation="tanh", steps=2000, learning_rate=0.01,
                                                       record_every=10)).fit(x, y)
    assert est.score(x, y) > 0.9  # R^2; a straight line would reach 0.6
    mlp = est[-1]
    assert [w.shape for w in mlp.coefs_] == [(1, 32), (32,)] and mlp.n_iter_ == 2000


def test_dataframe_names_flow_into_history_and_feature_names_in(binary):
    x, y = binary
    frame = pd.DataFrame(x, columns=["age", "dose", "weight"])
    est = LogisticRegression(optimizer="adam", learning_rate=0.05, steps=50).fit(frame, y)
    np.testing.assert_array_equal(est.feature_names_in_, ["age", "dose", "weight"])
    assert {"beta1_age", "beta1_dose", "beta1_weight"} <= set(est.history_.columns)
    assert est.result_.feature_names == ("age", "dose", "weight")
    with pytest.warns(UserWarning, match="X does not have valid feature names"):  # sklearn's own warning
        np.testing.assert_allclose(est.predict_proba(frame), est.predict_proba(x))


def test_valid_fraction_restarts_and_early_stopping(binary):
    x, y = binary
    est = MLPClassifier(hidden=4, steps=300, learning_rate=0.05, restarts=3, valid_fraction=0.2,
                        early_stopping=True).fit(x, y)
    assert {"valid_objective", "valid_accuracy"} <= set(est.history_.columns)
    assert len(est.result_.restarts) == 3
    assert est.result_.valid[0].shape == (60, 3)  # 20% of 300 rows held out
    train, valid = split_valid(300, 0.2, seed=0)
    assert len(np.intersect1d(train, valid)) == 0 and len(train) + len(valid) == 300
    np.testing.assert_array_equal(split_valid(300, 0.2, seed=0)[1], valid)  # same seed, same split
    assert not np.array_equal(split_valid(300, 0.2, seed=1)[1], valid)


def test_errors_name_the_parameter_and_the_fix(binary):
    x, y = binary
    with pytest.raises(ValueError, match=r"'valid_fraction' parameter must be a float in \(0, 1\).*Got 1.5"):
        LogisticRegression(valid_fraction=1.5).fit(x, y)
    with pytest.raises(ValueError, match=r"'learning_rate' parameter of fit must be a float > 0. Got -0.1"):
        MLPClassifier(learning_rate=-0.1).fit(x, y)
    with pytest.raises(ValueError, match=r"'hidden' parameter of MLP must be a positive int"):
        MLPClassifier(hidden=0).fit(x, y)
    with pytest.raises(ValueError, match=r"'activation' parameter of MLP must be one of"):
        MLPRegressor(activation="gelu").fit(x, y.astype(float))
    with pytest.raises(TypeError, match=r"'early_stopping' parameter must be None, True or sf.EarlyStopping"):
        LogisticRegression(early_stopping="yes").fit(x, y)
    with pytest.raises(ValueError, match=r"needs at least two classes in y. Got one class"):
        LogisticRegression().fit(x, np.zeros(len(x)))
    est = LogisticRegression(optimizer="adam", steps=10, early_stopping=sf.EarlyStopping(patience=5)).fit(x, y)
    with pytest.raises(ValueError, match="X has 2 features, but LogisticRegression is expecting 3"):
        est.predict(x[:, :2])
