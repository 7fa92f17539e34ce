"""Normal errors around the model's index: the linear model's and the regression network's likelihood."""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from .base import Likelihood

__all__ = ["Gaussian"]


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

    def objective(self, index, y):
        return -jnp.mean((y - index) ** 2)

    def stats(self, index, y, objective=None, sums=None):
        mse = -objective if objective is not None else jnp.mean((y - index) ** 2)
        return {"objective": -0.5 * (jnp.log(2 * math.pi * mse) + 1.0), "mse": mse}

    def mean(self, index):
        return index

    def null_objective(self, y_train, y_eval):
        # the profile objective (sigma at the root mean square error), as the "objective" statistic
        mse = float(np.mean((np.asarray(y_eval, np.float64) - np.mean(y_train)) ** 2))
        return -0.5 * (math.log(2 * math.pi * mse) + 1.0) if mse > 0 else float("inf")

    def loglik(self, index, y, *, sigma):
        r = (y - index) / sigma
        return -0.5 * (jnp.log(2 * math.pi) + r**2) - jnp.log(sigma)
