"""What a fit returns: parameters, the learning path, a status, predictions, and ``load``.

Everything downstream (inference, plots, persistence, estimators, CLI) reads a
:class:`FitResult`; nothing here runs the optimizer.

>>> import scanfit as sf
>>> d = sf.datasets.linear(seed=0)
>>> r = sf.fit(sf.Linear(), sf.Gaussian(), d.train.x, d.train.y, steps=500, learning_rate=0.01)
>>> r.status.code, len(r.history)
('completed', 500)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np
import pandas as pd

__all__ = ["FitResult", "load"]


from ..data.checks import as_features
from ..data.design import check_offset
from ..data.precision import dtype_scope
from ..engine import loop
from ..engine.outcome import Outcome
from ..models.core import forward, layout
from . import inference, persist


@dataclass
class FitResult(Outcome):
    """The outcome of :func:`scanfit.fit`.

    Attributes: ``params`` (pytree of NumPy arrays), ``history`` (DataFrame, one row per recorded
    step), ``status``, ``final`` (statistics at the returned parameters), ``restarts`` (one row
    per start), ``feature_names``, ``config``, ``seconds`` (wall time of the loop, compile included),
    ``data`` (the DataFrame of a fit with ``formula=`` and ``data=``, whose columns may name
    ``groups`` for clustered standard errors; None otherwise).
    """

    data: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, outcome: Outcome) -> "FitResult":
        """The engine's record with the user's methods."""
        return cls(**outcome.fields())

    @property
    def converged(self) -> bool:
        return self.status.code == "converged"

    @property
    def restarts(self) -> pd.DataFrame:
        """One row per start: final statistics, steps run, status; ``chosen`` marks the kept one."""
        rows = []
        for i, (f, s) in enumerate(zip(self.start_finals, self.start_statuses)):
            rows.append({"start": i, **f, "steps": s.steps, "status": s.code, "chosen": i == self.best_start})
        return pd.DataFrame(rows)

    def history_of(self, start: int) -> pd.DataFrame:
        """The history of start ``start`` (0-based)."""
        if not 0 <= start < len(self.start_histories):
            raise ValueError(f"The 'start' parameter must be in 0..{len(self.start_histories) - 1}. Got {start!r}.")
        return self.start_histories[start]

    @property
    def histories(self) -> pd.DataFrame:
        """All starts' histories in one long table with a ``restart`` column."""
        return pd.concat([h.assign(restart=i) for i, h in enumerate(self.start_histories)], ignore_index=True)

    def _features(self, x) -> np.ndarray:
        from ..data.sources import is_source

        if is_source(x):
            raise TypeError(f"predict, index and intervals take the rows themselves (an array or a DataFrame with the "
                            f"columns {list(self.feature_names)}), not a {type(x).__name__} source; read the rows to "
                            f"predict, e.g. pandas.read_parquet(path, columns=...), in pieces for a large file.")
        formula = getattr(self.design, "formula", None)
        if formula is not None and hasattr(x, "columns"):
            x = formula.features(x)  # the fit's transformations and category levels, re-applied
        return as_features(x, names=self.feature_names)[0]

    def index(self, x) -> np.ndarray:
        """The model's raw output for ``x`` of shape ``(n, d)``: shape ``(n,)`` or ``(n, k)``.

        Computed in float64 whatever the fit's dtype (the parameters are widened, not changed), so
        a row's prediction does not depend on which other rows are predicted with it."""
        xa = self._features(x)
        with dtype_scope("float64"):
            params = jax.tree.map(_widen, self.params)
            out = np.asarray(_forward_jit(self.model)(params, layout(self.model, xa, "float64")))
        return out if out.ndim == 1 else out.T

    def predict(self, x, *, offset=None, exposure=None, interval: float | None = None, cov_type: str = "nonrobust",
                groups=None):
        """Predictions on the response scale for ``x`` of shape ``(n, d)``: the mean (Gaussian),
        P(y = 1) (Bernoulli, shape ``(n,)``), class probabilities (Categorical, shape ``(n, k)``), or
        the expected count (Poisson, NegativeBinomial: per unit of exposure unless ``exposure`` or
        ``offset`` is given for these rows).

        ``interval=0.95`` (``Linear`` with a built-in likelihood) returns a DataFrame instead: ``mean``,
        ``std_err``, ``ci_low``, ``ci_high`` (the mean's interval, on the link scale and transformed),
        and for Gaussian ``pi_low``, ``pi_high`` (a new observation's); Categorical has one row per
        (row, class). ``cov_type``/``groups`` as in ``summary``. See :mod:`scanfit.results.prediction`.

        >>> import scanfit as sf
        >>> d = sf.datasets.hill(seed=0)
        >>> r = sf.fit(sf.Linear(), sf.Bernoulli(), d.train.x, d.train.y, steps=10)
        >>> r.predict(d.valid.x).shape
        (1000,)
        """
        idx = self.index(x)
        extra = check_offset(offset, exposure, len(idx), self.likelihood)
        if interval is not None:
            rows = x.index if isinstance(x, pd.DataFrame) else None
            return inference.predict_interval(self, self._features(x), extra, interval, cov_type=cov_type,
                                              groups=groups, index=rows)
        if extra is not None:
            idx = idx + extra
        with dtype_scope("float64"):
            mean = np.asarray(jax.device_get(self.likelihood.mean(idx if idx.ndim == 1 else idx.T)))
        return mean if mean.ndim == 1 else mean.T

    def save(self, path, *, extra: dict | None = None, overwrite: bool = True, summary: str | None = None):
        """Save to the directory ``path`` (safetensors + JSON, never pickle); ``sf.load(path)`` reads it.

        See :mod:`scanfit.results.persist`. User models (``sf.Function``, ``sf.Module``) save their
        parameters; ``sf.load(path, model=...)`` then takes the same model again.
        """
        return persist.save(self, path, extra=extra, overwrite=overwrite, summary=summary)

    # --- inference (scanfit.results.inference; see its docstring for the covariance and distribution choices)
    def summary(self, *, cov_type: str = "nonrobust", alpha: float = 0.05, groups=None, reference: int = 0,
                allow_nonidentified: bool = False) -> pd.DataFrame:
        """One row per coefficient ("intercept", then the feature names; ``(class, term)`` for
        Categorical): estimate, std_err, z, p_value, ci_low, ci_high. Model-level figures (n_obs,
        loglik, llnull, llr, llr_pvalue, pseudo_r2, aic, bic, sigma for Gaussian) are in ``.attrs``;
        ``print`` shows a statsmodels-style table.
        ``cov_type``: "nonrobust" (inverse observed information), "HC0" (alias "robust"), "HC1", "HC2",
        "HC3", or "cluster" with ``groups`` (one label per training row, or a column name of the fit's
        ``data``); see :mod:`scanfit.results.covariance`.
        Raises ``sf.NotIdentifiedError`` for collinear columns, separated classes, singular Hessians
        and networks unless ``allow_nonidentified=True``.

        >>> import scanfit as sf
        >>> d = sf.datasets.linear(n_train=200, seed=0)
        >>> r = sf.fit(sf.Linear(), sf.Gaussian(), d.train.x, d.train.y, optimizer="newton", dtype="float64", steps=20)
        >>> list(r.summary().index)
        ['intercept', 'x']
        """
        return inference.summary(self, cov_type=cov_type, alpha=alpha, groups=groups, reference=reference,
                                 allow_nonidentified=allow_nonidentified)

    def summary_text(self, **options) -> str:
        """The statsmodels-style text of ``summary(**options)``."""
        return inference.summary_text(self.summary(**options))

    def cov_params(self, *, cov_type: str = "nonrobust", groups=None, reference: int = 0,
                   allow_nonidentified: bool = False) -> pd.DataFrame:
        """Covariance matrix of the estimates, (p, p), labelled like ``summary()``'s rows."""
        return inference.cov_params(self, cov_type=cov_type, groups=groups, reference=reference,
                                    allow_nonidentified=allow_nonidentified)

    def conf_int(self, *, alpha: float = 0.05, cov_type: str = "nonrobust", **options) -> pd.DataFrame:
        """Confidence intervals: a DataFrame with columns ``lower`` and ``upper``, one row per coefficient."""
        table = self.summary(alpha=alpha, cov_type=cov_type, **options)
        return pd.DataFrame({"lower": table["ci_low"], "upper": table["ci_high"]})

    @property
    def bse(self) -> pd.Series:
        """Standard errors, statsmodels' name: ``result.bse`` (non-robust) or, called with
        ``summary``'s options, ``result.bse(cov_type="HC1")``; ``summary()["std_err"]``."""
        return _Bse(self.summary()["std_err"], name="bse", result=self)

    def marginal_effects(self, *, at: str = "overall", cov_type: str = "nonrobust", groups=None,
                         alpha: float = 0.05, allow_nonidentified: bool = False) -> pd.DataFrame:
        """Marginal effects ``d E[y | x] / d x_j`` with delta-method standard errors, in ``summary()``'s
        columns: ``at="overall"`` averages them over the training rows, ``at="mean"`` takes them at the
        mean of x (statsmodels' ``get_margeff``). See :mod:`scanfit.results.margins`."""
        return inference.marginal_effects(self, at=at, cov_type=cov_type, groups=groups, alpha=alpha,
                                          allow_nonidentified=allow_nonidentified)

    def wald_test(self, restrictions, *, value=None, cov_type: str = "nonrobust", groups=None, reference: int = 0,
                  allow_nonidentified: bool = False) -> pd.Series:
        """Wald test of linear restrictions by name, e.g. ``"x1 = x2, x3 = 0"`` (Categorical:
        ``"1:x1 = 0"``), or a matrix with ``value``: a Series with ``statistic``, ``df``, ``p_value``
        (chi-squared). See :mod:`scanfit.results.hypotheses`."""
        return inference.wald_test(self, restrictions, value=value, cov_type=cov_type, groups=groups,
                                   reference=reference, allow_nonidentified=allow_nonidentified)

    def refine(self, *, optimizer: str = "newton", steps: int = 100, tol: float = 1e-8) -> "FitResult":
        """A new result at the maximum: ``optimizer`` ("newton" or "lbfgs") in float64 from these
        parameters, on the same training (and validation) data. This result is unchanged.

        >>> import scanfit as sf
        >>> d = sf.datasets.hill(seed=0)
        >>> r = sf.fit(sf.Linear(), sf.Bernoulli(), d.train.x, d.train.y, optimizer="gd", steps=10)
        >>> r.refine().status.code
        'converged'
        """
        if optimizer not in ("newton", "lbfgs"):
            raise ValueError(f"The 'optimizer' parameter of refine must be 'newton' or 'lbfgs'. Got {optimizer!r} instead.")
        if self.train is None:
            raise ValueError("This result carries no training data (a loaded model, or result.train is None); "
                             "refine needs it: fit again with init_params=result.params and optimizer='newton'.")
        standardize = None if self.design is None else self.design.standardized
        refined = FitResult.of(loop.fit(self.model, self.likelihood, *self.train, valid=self.valid, optimizer=optimizer,
                                        dtype="float64", steps=steps, tol=tol, init_params=self.params,
                                        standardize=standardize, seed=self.config.seed, weights=self.weights,
                                        offset=self.offset))
        refined.data = self.data
        return refined

    def __repr__(self) -> str:
        return (f"FitResult(model={self.model.spec()}, likelihood={self.likelihood.name!r}, "
                f"status={self.status.code!r}, steps={self.status.steps}, final={ {k: round(v, 4) for k, v in self.final.items()} })")


class _Bse(pd.Series):
    """``result.bse``: the non-robust standard errors, and callable with ``summary``'s options."""

    _metadata = ["result"]

    def __init__(self, *args, result=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.result = result

    @property
    def _constructor(self):
        return pd.Series

    def __call__(self, **options) -> pd.Series:
        return pd.Series(self.result.summary(**options)["std_err"], name="bse")


_FORWARD = {}


def _widen(a):
    a = np.asarray(a)
    return a.astype(np.float64) if np.issubdtype(a.dtype, np.floating) else a


def _forward_jit(model):
    fn = _FORWARD.get(id(model))
    if fn is None or fn[0] is not model:
        fn = (model, jax.jit(lambda p, x: forward(model, p, x)))
        _FORWARD[id(model)] = fn
    return fn[1]


def load(path, *, model=None) -> FitResult:
    """Load a model saved with ``result.save(path)`` as a FitResult that predicts bit-identically.

    ``model`` is needed only for user models (``sf.Function``, ``sf.Module``), whose code is not
    saved: pass the same model again. The loaded result holds no training data, and of several
    starts only the kept one's parameters and history (``result.restarts`` lists them all).

    >>> import scanfit as sf
    >>> sf.load("no/such/dir")
    Traceback (most recent call last):
    ...
    scanfit.results.persist.ModelFileError: No saved model at 'no/such/dir': the directory does not exist. ...
    """
    return FitResult.of(persist.read(path, model=model))
