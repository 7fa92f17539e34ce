"""Normal errors around the model's index: the linear model's and the regression network's likelihood."""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from .base import Likelihood, np_wmean, wmean

__all__ = ["Gaussian"]


def _profile(mse: float) -> float:
    """The profile mean log-likelihood (sigma at the root mean square error ``sqrt(mse)``)."""
    return -0.5 * (math.log(2 * math.pi * mse) + 1.0) if mse > 0 else float("inf")


@dataclass(frozen=True)
class Gaussian(Likelihood):
    """Normal errors around the model's index (the mean).

    The reported ``objective`` is the profile mean log-likelihood, sigma set to its
    maximum-likelihood value ``sqrt(mse)``: ``-0.5 * (log(2 pi mse) + 1)``. Gradients are
    taken of ``-mse``, the notebook's objective: a monotone transform with the same
    maximizer, so a learning rate means what it meant in the notebook.
    """

    name = "gaussian"
    stat_names = ("objective", "mse")
    point_stat = "mse"

    def prepare(self, y, *, name="y"):
        if y.dtype == np.bool_:
            y = y.astype(np.float64)
        return self, y.astype(np.float64)

    def objective(self, index, y, w=None):
        return -wmean((y - index) ** 2, w)

    def stats(self, index, y, objective=None, sums=None, w=None):
        mse = -objective if objective is not None else wmean((y - index) ** 2, w)
        return {"objective": -0.5 * (jnp.log(2 * math.pi * mse) + 1.0), "mse": mse}

    def mean(self, index):
        return index

    def glm_terms(self, index, y):
        # of the loop's objective -mse (the profile likelihood's maximizer): d/d index and -d2/d index2
        return 2.0 * (y - index), jnp.full_like(index, 2.0)

    def null_objective(self, y_train, y_eval, w_train=None, w_eval=None, offset_train=None, offset_eval=None):
        # the profile objective (sigma at the root mean square error), as the "objective" statistic
        return _profile(np_wmean((np.asarray(y_eval, np.float64) - np_wmean(y_train, w_train)) ** 2, w_eval))

    def null_from_moments(self, train, part):
        return _profile(part.y_m2 / part.weight + (part.y_mean - train.y_mean) ** 2)

    def loglik(self, index, y, *, sigma):
        r = (y - index) / sigma
        return -0.5 * (jnp.log(2 * math.pi) + r**2) - jnp.log(sigma)
