"""The likelihood of a user's own ``loglik(params, data)``: the model's index *is* each row's
log-likelihood (``models.own.LogLik``), so the objective is its (weighted) mean.

The engine needs a target ``y``; this likelihood reads none (``sf.fit_loglik`` passes zeros). It
has no mean to predict and no intercept-only model (``null_objective`` is NaN: the summary says so).

>>> import jax.numpy as jnp
>>> float(PerRow().objective(jnp.array([-1.0, -3.0]), jnp.zeros(2)))
-2.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Likelihood, wmean

__all__ = ["PerRow"]


@dataclass(frozen=True)
class PerRow(Likelihood):
    """Each row's log-likelihood given as the index; the objective is their mean."""

    name = "loglik"
    stat_names = ("objective",)
    point_stat = "objective"

    def prepare(self, y, *, name="y"):
        return self, np.zeros(len(y), np.float64)

    def loglik(self, index, y=None, **kw):
        return index

    def objective(self, index, y, w=None, **extra):
        return wmean(index, w)

    def stats(self, index, y, objective=None, sums=None, w=None, **extra) -> dict:
        return {"objective": wmean(index, w) if objective is None else objective}

    def mean(self, index):
        raise ValueError("A fit of your own log-likelihood (sf.fit_loglik) has no mean to predict: loglik(params, "
                         "data) gives each row's log-likelihood, not a prediction. Use result.loglik(data) for the "
                         "rows' log-likelihoods at the estimate, or compute the prediction from result.params.")

    def null_objective(self, y_train, y_eval, w_train=None, w_eval=None, offset_train=None, offset_eval=None):
        return float("nan")  # no intercept-only special case is known for a user's function
