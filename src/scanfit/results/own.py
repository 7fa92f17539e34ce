"""What ``sf.fit_loglik`` returns: a :class:`~scanfit.FitResult` whose parameters are the user's,
named and on their natural scale, with inference by automatic differentiation
(:mod:`scanfit.results.own_inference`).

``params`` holds the natural values (``sigma``, not its log), keyed as the user's ``params`` dict;
``unconstrained`` the values the engine optimized; ``history`` the learning path (the mean
log-likelihood and, for up to 12 parameters, each one's natural value at every step).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..data.columns import pack
from ..data.precision import dtype_scope
from ..engine import loop
from ..engine.outcome import Outcome
from . import own_inference
from .result import FitResult

__all__ = ["LogLikResult", "of_outcome"]


def _natural(model, unconstrained: dict) -> dict:
    with dtype_scope("float64"):
        values = model.natural({k: np.asarray(v, np.float64) for k, v in unconstrained.items()})
        return {k: np.asarray(v) for k, v in values.items()}


def of_outcome(outcome: Outcome, data: Any) -> "LogLikResult":
    """The engine's record of a ``fit_loglik`` fit as a :class:`LogLikResult` (``data``: the user's table)."""
    fields = outcome.fields()
    model = outcome.model
    fields.update(params=_natural(model, outcome.params),
                  start_params=[_natural(model, p) for p in outcome.start_params])
    return LogLikResult(**fields, data=data, unconstrained=outcome.params)


@dataclass
class LogLikResult(FitResult):
    """A fit of ``loglik(params, data)``; see the module docstring and ``sf.fit_loglik``."""

    unconstrained: Any = field(default=None, repr=False)

    @property
    def names(self) -> list[str]:
        """The row labels of ``summary()``: ``sigma``, ``beta[0]`` or the names given."""
        return list(self.model.labels)

    def summary(self, *, cov_type: str = "nonrobust", alpha: float = 0.05, groups=None,
                allow_nonidentified: bool = False, **_ignored) -> pd.DataFrame:
        """One row per parameter entry, on the natural scale: estimate, std_err, z, p_value, ci_low,
        ci_high; ``attrs`` hold n_obs, loglik, aic, bic, cov_type, small_sample (the factor applied).

        ``cov_type``: "nonrobust" (inverse Hessian), "opg" (outer product of per-row scores), "HC0"
        ("robust"), "HC1", or "cluster" with ``groups`` (labels per row, or a column name of data).
        See :mod:`scanfit.results.own_inference`."""
        return own_inference.summary(self, cov_type=cov_type, alpha=alpha, groups=groups,
                                     allow_nonidentified=allow_nonidentified)

    def cov_params(self, *, cov_type: str = "nonrobust", groups=None, allow_nonidentified: bool = False,
                   **_ignored) -> pd.DataFrame:
        """Covariance of the natural-scale estimates (delta method), labelled like ``summary()``."""
        return own_inference.cov_params(self, cov_type=cov_type, groups=groups,
                                        allow_nonidentified=allow_nonidentified)

    def wald_test(self, restrictions, *, value=None, cov_type: str = "nonrobust", groups=None,
                  allow_nonidentified: bool = False, **_ignored) -> pd.Series:
        """Wald test of linear restrictions by label, e.g. ``"age = educ, sigma = 1"``."""
        return own_inference.wald_test(self, restrictions, value=value, cov_type=cov_type, groups=groups,
                                       allow_nonidentified=allow_nonidentified)

    def own_estimates(self, allow_nonidentified: bool = False):
        """The unconstrained estimate's pieces (``sf.lr_test`` reads its log-likelihood and size)."""
        return own_inference.pieces(self, allow_nonidentified).est

    def loglik(self, data=None) -> np.ndarray:
        """Each row's log-likelihood at the estimate, shape ``(n,)``: of the training data, or of
        ``data`` (a table with the same columns)."""
        if data is None:
            x = self.train[0]
        else:
            x, table = pack(data)
            if table != self.model.table:
                raise ValueError(f"The 'data' parameter of loglik must have the columns of the fit's data, with the "
                                 f"same shapes and kinds: {list(self.model.table.names)}. Got "
                                 f"{list(table.names)}.")
        return own_inference.row_logliks(self.model, self.unconstrained, x)

    def refine(self, *, optimizer: str = "newton", steps: int = 100, tol: float = 1e-8) -> "LogLikResult":
        """A new result from these estimates, by ``optimizer`` in float64 (see ``FitResult.refine``)."""
        if optimizer not in ("newton", "lbfgs"):
            raise ValueError(f"The 'optimizer' parameter of refine must be 'newton' or 'lbfgs'. Got {optimizer!r} instead.")
        out = loop.fit(self.model, self.likelihood, *self.train, optimizer=optimizer, dtype="float64", steps=steps,
                       tol=tol, init_params=self.unconstrained, seed=self.config.seed, weights=self.weights)
        return of_outcome(out, self.data)

    def predict(self, *args, **kwargs):
        self.likelihood.mean(None)  # raises: a user's log-likelihood has no mean to predict

    def index(self, x):
        raise ValueError("A fit of your own log-likelihood has no index for new x; result.loglik(data) gives each "
                         "row's log-likelihood at the estimate.")

    def save(self, *args, **kwargs):
        raise NotImplementedError("Saving a fit of your own log-likelihood is not supported yet (issue 28): keep "
                                  "result.params and result.summary().to_csv(...) meanwhile.")

    def marginal_effects(self, *args, **kwargs):
        raise ValueError("marginal_effects needs a model with a mean function (sf.Linear() with a built-in "
                         "likelihood); a fit of your own log-likelihood has none yet.")
