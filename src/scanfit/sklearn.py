"""scikit-learn estimators that run :func:`scanfit.fit`: pipelines, cross-validation, grid search.

Each estimator builds one :class:`scanfit.FitConfig` from its keyword arguments, picks a model
and a likelihood, and calls :func:`scanfit.fit`; it computes nothing itself. After ``fit`` the
whole :class:`scanfit.FitResult` is ``result_`` and its learning path is ``history_``.

================  ===========================  ====================================
estimator         model                        likelihood
================  ===========================  ====================================
LinearRegression  ``sf.Linear()``              ``sf.Gaussian()``
LogisticRegression ``sf.Linear()``             ``sf.Bernoulli()`` (2 classes) or
                                               ``sf.Categorical()`` (K > 2, K logits)
MLPClassifier     ``sf.MLP(hidden, activation)`` same as LogisticRegression
MLPRegressor      ``sf.MLP(hidden, activation)`` ``sf.Gaussian()``
================  ===========================  ====================================

The fits are unpenalized maximum likelihood (no ``C`` or ``alpha``), full batch. The columns are
standardized inside the fit (``standardize=None``) and the coefficients reported on the data's
scale, so no ``StandardScaler`` is needed (one in front does no harm).

>>> from sklearn.datasets import load_iris
>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> from scanfit.sklearn import LogisticRegression
>>> X, y = load_iris(return_X_y=True)
>>> clf = make_pipeline(StandardScaler(), LogisticRegression(steps=500)).fit(X, y)
>>> clf.score(X, y) > 0.95
True
"""

from __future__ import annotations


import jax
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .api import fit as sf_fit
from .engine.config import EarlyStopping, FitConfig
from .engine.inputs import pad, padded_rows
from .likelihoods import Bernoulli, Categorical, Gaussian, Poisson
from .models import MLP, Linear

__all__ = ["LinearRegression", "LogisticRegression", "PoissonRegressor", "MLPClassifier", "MLPRegressor",
           "split_valid"]

_LINEAR = Linear()  # one instance, so that predictions reuse one compiled forward pass


def split_valid(n: int, fraction: float | None, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Row indices ``(train, valid)`` from a permutation drawn with ``jax.random.key(seed)``.

    ``fraction`` of the ``n`` rows (rounded, at least one) go to validation; ``None`` or 0 keeps
    all rows for training.

    >>> train, valid = split_valid(10, 0.2, seed=0)
    >>> len(train), len(valid)
    (8, 2)
    """
    if fraction is None or fraction == 0:
        return np.arange(n), None
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"The 'valid_fraction' parameter must be a float in (0, 1) or None. Got {fraction!r} instead; "
                         f"try valid_fraction=0.1.")
    n_valid = max(1, int(round(fraction * n)))
    if n_valid >= n:
        raise ValueError(f"The 'valid_fraction' parameter ({fraction!r}) leaves no training rows out of {n}; "
                         f"use a smaller fraction or more data.")
    order = np.asarray(jax.random.permutation(jax.random.fold_in(jax.random.key(seed), 1), n))
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])


class _ScanfitEstimator(BaseEstimator):
    """Shared ``fit`` plumbing: options -> FitConfig, optional validation split, sf.fit."""

    def _config(self) -> FitConfig:
        es = self.early_stopping
        if es is True:
            es = EarlyStopping()
        elif es is False:
            es = None
        if es is not None and not isinstance(es, EarlyStopping):
            raise TypeError(f"The 'early_stopping' parameter must be None, True or sf.EarlyStopping(...). "
                            f"Got {es!r} instead.")
        return FitConfig(optimizer=self.optimizer, learning_rate=self.learning_rate, steps=self.steps,
                         record_every=self.record_every, restarts=self.restarts, seed=self.seed,
                         early_stopping=es, dtype=self.dtype, tol=self.tol, standardize=self.standardize)

    def _model(self):
        return _LINEAR

    def _run(self, X: np.ndarray, y: np.ndarray, likelihood, sample_weight=None) -> None:
        config = self._config().validated()
        model = self._model()
        x = pd.DataFrame(X, columns=self.feature_names_in_) if hasattr(self, "feature_names_in_") else X
        w = None if sample_weight is None else _check_sample_weight(sample_weight, X, ensure_non_negative=True)
        train, valid = split_valid(X.shape[0], self.valid_fraction, self.seed)
        if valid is None:
            result = sf_fit(model, likelihood, x, y, config=config, weights=w)
        else:
            xt, xv = (x.iloc[train], x.iloc[valid]) if isinstance(x, pd.DataFrame) else (x[train], x[valid])
            vextra = () if w is None else ({"weights": w[valid]},)
            result = sf_fit(model, likelihood, xt, y[train], valid=(xv, y[valid], *vextra), config=config,
                            weights=None if w is None else w[train])
        self.result_ = result
        self.history_ = result.history
        self.n_iter_ = result.status.steps
        self._set_coefs()

    def _set_coefs(self):
        pass

    def _index(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return _padded(self.result_.index, X)

    def _response(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return _padded(self.result_.predict, X)


def _padded(method, X) -> np.ndarray:
    """``method(X)`` computed on ``X`` with zero rows appended up to the fit's padded size (the models
    here compute row by row, so the real rows' numbers do not change): the test folds of a
    cross-validation share one compiled forward pass instead of one per row count."""
    n = X.shape[0]
    out = method(pad(np.asarray(X), padded_rows(n, np.shape(X)[1] if np.ndim(X) > 1 else 1)))
    return np.asarray(out, dtype=np.float64)[:n]


_FIT_DOC = """
    Parameters
    ----------
    optimizer : "gd", an optax name ("adam", "rmsprop", ...), an optax.GradientTransformation,
        or a second-order method where available; as in :func:`scanfit.fit`.
    learning_rate : step size; None takes scanfit's default for the optimizer.
    steps : number of steps (an upper bound with early stopping).
    record_every : record the history every this many steps (steps must be a multiple); larger
        values make the loop faster.
    restarts : independent starts run together; the best by validation (else train) objective wins.
    early_stopping : None, True (``sf.EarlyStopping()``) or an ``sf.EarlyStopping(...)``.
    seed : starting parameters and the validation split come from this seed.
    valid_fraction : hold out this fraction of rows (seeded permutation) as validation data: its
        statistics join ``history_``, and restarts and early stopping use it.
    dtype : "auto" (float64 for newton and lbfgs, float32 otherwise), "float32" or "float64".
    tol : tolerance of second-order methods (see :func:`scanfit.fit`).
    standardize : fit on standardized columns (None: yes; coefficients stay on the data's scale).

    Attributes
    ----------
    result_ : scanfit.FitResult of the fit.
    history_ : pandas.DataFrame, the learning path (``result_.history``).
    n_iter_ : steps run.
    n_features_in_, feature_names_in_ : as in scikit-learn (names only for DataFrames).
"""


class _Classifier(ClassifierMixin, _ScanfitEstimator):
    def fit(self, X, y, sample_weight=None):
        """Fit on ``X`` of shape ``(n, d)`` and labels ``y`` of shape ``(n,)`` (any labels), with optional
        frequency weights ``sample_weight`` of shape ``(n,)``; returns self."""
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        classes, encoded = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"{type(self).__name__} needs at least two classes in y. Got one class, {classes.tolist()}; "
                             f"pass data with observations of two or more classes.")
        self.classes_ = classes
        likelihood = Bernoulli() if len(classes) == 2 else Categorical(n_classes=len(classes))
        self._run(X, encoded.reshape(-1), likelihood, sample_weight)
        return self

    def decision_function(self, X) -> np.ndarray:
        """Logits: shape ``(n,)`` for two classes (positive means ``classes_[1]``), else ``(n, K)``."""
        return self._index(X)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities of shape ``(n, K)``, columns in the order of ``classes_``."""
        p = self._response(X)
        if p.ndim == 1:
            return np.column_stack([1.0 - p, p])
        return p / p.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X) -> np.ndarray:
        return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class for each row of ``X``, as one of ``classes_``."""
        scores = self.decision_function(X)
        best = (scores > 0).astype(int) if scores.ndim == 1 else np.argmax(scores, axis=1)
        return self.classes_[best]


class _Regressor(RegressorMixin, _ScanfitEstimator):
    _likelihood = Gaussian

    def fit(self, X, y, sample_weight=None):
        """Fit on ``X`` of shape ``(n, d)`` and numbers ``y`` of shape ``(n,)``, with optional frequency
        weights ``sample_weight`` of shape ``(n,)``; returns self."""
        X, y = validate_data(self, X, y, y_numeric=True)
        self._run(X, np.asarray(y, dtype=np.float64), self._likelihood(), sample_weight)
        return self

    def predict(self, X) -> np.ndarray:
        """The fitted mean for each row of ``X``: shape ``(n,)``."""
        return self._response(X)


class _LinearCoefs:
    def _set_coefs(self):
        b0, b1 = np.asarray(self.result_.params["beta0"]), np.asarray(self.result_.params["beta1"])
        if isinstance(self, ClassifierMixin):  # scikit-learn's shapes: (1, d) / (K, d) and (1,) / (K,)
            self.coef_, self.intercept_ = np.atleast_2d(b1.T), np.atleast_1d(b0)
        else:
            self.coef_, self.intercept_ = b1, float(b0)


_MLPS: dict = {}


class _MLPCoefs:
    # shared by MLPClassifier and MLPRegressor; scikit-learn reads it as type(self).__init__
    def __init__(self, *, hidden=100, activation="relu", optimizer="adam", learning_rate=0.01, steps=500,
                 record_every=1, restarts=1, early_stopping=None, seed=0, valid_fraction=None, dtype="auto",
                 tol=1e-8, standardize=None):
        self.hidden = hidden
        self.activation = activation
        _init_common(self, optimizer, learning_rate, steps, record_every, restarts, early_stopping, seed,
                     valid_fraction, dtype, tol, standardize)

    def _model(self):
        hidden = int(self.hidden) if isinstance(self.hidden, np.integer) else self.hidden
        model = MLP(hidden=hidden, activation=self.activation)  # checks hidden and activation
        return _MLPS.setdefault(model, model)  # one instance per shape: predictions reuse one compiled pass

    def _set_coefs(self):
        p = self.result_.params
        self.coefs_ = [np.asarray(p[f"W{i}"]) for i in range(len(p) // 2)]
        self.intercepts_ = [np.asarray(p[f"b{i}"]) for i in range(len(p) // 2)]


def _init_common(self, optimizer, learning_rate, steps, record_every, restarts, early_stopping, seed,
                 valid_fraction, dtype, tol, standardize=None):
    self.optimizer = optimizer
    self.learning_rate = learning_rate
    self.steps = steps
    self.record_every = record_every
    self.restarts = restarts
    self.early_stopping = early_stopping
    self.seed = seed
    self.valid_fraction = valid_fraction
    self.dtype = dtype
    self.tol = tol
    self.standardize = standardize


class LinearRegression(_LinearCoefs, _Regressor):
    __doc__ = """Least squares (``sf.Linear()`` with ``sf.Gaussian()``) fitted by :func:`scanfit.fit`.

    ``coef_`` has shape ``(d,)`` and ``intercept_`` is a float.

    >>> import numpy as np
    >>> from scanfit.sklearn import LinearRegression
    >>> X = np.random.default_rng(0).normal(size=(200, 2)); y = 1 + X @ [2.0, -1.0]
    >>> np.round(LinearRegression(steps=1000).fit(X, y).coef_, 2)
    array([ 2., -1.])
    """ + _FIT_DOC

    def __init__(self, *, optimizer="newton", learning_rate=None, steps=100, record_every=1, restarts=1,
                 early_stopping=None, seed=0, valid_fraction=None, dtype="auto", tol=1e-8,
                 standardize=None):
        _init_common(self, optimizer, learning_rate, steps, record_every, restarts, early_stopping, seed,
                     valid_fraction, dtype, tol, standardize)


class PoissonRegressor(_LinearCoefs, _Regressor):
    __doc__ = """Poisson regression (``sf.Linear()`` with ``sf.Poisson()``, log link) by maximum likelihood,
    unpenalized (scikit-learn's ``PoissonRegressor(alpha=0)``). ``predict`` gives the expected count;
    ``score`` is D-squared, the share of the Poisson deviance explained (as scikit-learn's).

    >>> import numpy as np
    >>> from scanfit.sklearn import PoissonRegressor
    >>> X = np.random.default_rng(0).normal(size=(500, 2))
    >>> y = np.random.default_rng(1).poisson(np.exp(0.5 + X @ [0.3, -0.2]))
    >>> np.round(PoissonRegressor().fit(X, y).coef_, 1)
    array([ 0.3, -0.2])
    """ + _FIT_DOC

    _likelihood = Poisson

    def __init__(self, *, optimizer="newton", learning_rate=None, steps=100, record_every=1, restarts=1,
                 early_stopping=None, seed=0, valid_fraction=None, dtype="auto", tol=1e-8,
                 standardize=None):
        _init_common(self, optimizer, learning_rate, steps, record_every, restarts, early_stopping, seed,
                     valid_fraction, dtype, tol, standardize)

    def score(self, X, y, sample_weight=None) -> float:
        """D-squared: 1 - deviance / null deviance (Poisson), optionally weighted."""
        from sklearn.metrics import d2_tweedie_score

        return float(d2_tweedie_score(y, self.predict(X), sample_weight=sample_weight, power=1))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True
        return tags


class LogisticRegression(_LinearCoefs, _Classifier):
    __doc__ = """Unpenalized logistic regression by maximum likelihood: ``sf.Bernoulli()`` for two
    classes (``coef_`` of shape ``(1, d)``), the multinomial logit ``sf.Categorical()`` with one
    logit per class for K > 2 (``coef_`` of shape ``(K, d)``; over-parametrized, which does not
    change the probabilities). Labels may be any values; ``classes_`` holds them sorted.

    >>> from sklearn.datasets import load_iris
    >>> from scanfit.sklearn import LogisticRegression
    >>> X, y = load_iris(return_X_y=True)
    >>> LogisticRegression(steps=500).fit(X, y).coef_.shape
    (3, 4)
    """ + _FIT_DOC

    def __init__(self, *, optimizer="newton", learning_rate=None, steps=100, record_every=1, restarts=1,
                 early_stopping=None, seed=0, valid_fraction=None, dtype="auto", tol=1e-8,
                 standardize=None):
        _init_common(self, optimizer, learning_rate, steps, record_every, restarts, early_stopping, seed,
                     valid_fraction, dtype, tol, standardize)


class MLPClassifier(_MLPCoefs, _Classifier):
    __doc__ = """A feed-forward network classifier (``sf.MLP(hidden, activation)``), one logit with
    ``sf.Bernoulli()`` for two classes, K logits with ``sf.Categorical()`` for K > 2. Full-batch
    training; ``coefs_`` and ``intercepts_`` list the layers as in scikit-learn.

    hidden : units per hidden layer, an int or a tuple (scikit-learn's ``hidden_layer_sizes``).
    activation : "relu", "tanh" or "sigmoid".

    >>> from sklearn.datasets import load_iris
    >>> from scanfit.sklearn import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> MLPClassifier(hidden=16, steps=300).fit(X, y).score(X, y) > 0.9
    True
    """ + _FIT_DOC


class MLPRegressor(_MLPCoefs, _Regressor):
    __doc__ = """A feed-forward network regressor (``sf.MLP(hidden, activation)`` with ``sf.Gaussian()``).

    hidden : units per hidden layer, an int or a tuple.
    activation : "relu", "tanh" or "sigmoid".

    >>> import numpy as np
    >>> from scanfit.sklearn import MLPRegressor
    >>> X = np.random.default_rng(0).uniform(-2, 2, size=(300, 1)); y = np.sin(X[:, 0])
    >>> MLPRegressor(hidden=32, steps=1000).fit(X, y).score(X, y) > 0.95
    True
    """ + _FIT_DOC
