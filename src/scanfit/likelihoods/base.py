"""Likelihoods: the log-probability of ``y`` given a model's index (its raw output).

Shapes inside the engine put observations last: the index is ``(n,)`` for one output and
``(k, n)`` for ``k`` outputs. Each likelihood

- ``prepare(y)`` checks labels and returns the encoded target used inside the loop,
- ``objective(index, y)`` is the mean log-likelihood per observation (to be maximized),
- ``objective_and_sums(index, y)`` is the objective plus the sums over observations that
  ``stats`` reuses (the engine differentiates it, so statistics share the gradient's pass),
- ``stats(index, y, objective, sums)`` gives the per-step statistics recorded in the history,
- ``mean(index)`` is the prediction on the response scale.

Everything is computed from logits, never from probabilities through ``log``. Bernoulli's pass
runs as one compiled CPU kernel for float32 (``scanfit.likelihoods.native``) with a pure-JAX twin elsewhere.

>>> import scanfit as sf, jax.numpy as jnp
>>> float(sf.Bernoulli().objective(jnp.array([1000.0, -1000.0]), jnp.array([1.0, -1.0])))
0.0
"""

from __future__ import annotations

import numpy as np

__all__ = ["Likelihood"]


class Likelihood:
    """Base class; subclasses are frozen dataclasses (hashable, so they key compiled loops)."""

    name = "likelihood"
    stat_names: tuple[str, ...] = ("objective",)
    n_outputs = 1
    point_stat = "accuracy"

    def prepare(self, y: np.ndarray, *, name: str = "y"):
        """Return ``(likelihood, encoded_y)``; the likelihood may learn e.g. its class count."""
        raise NotImplementedError

    def objective(self, index, y):
        raise NotImplementedError

    def objective_and_sums(self, index, y):
        """``(objective, sums)``: the objective and any sums over the observations that ``stats``
        reuses, so the history's statistics come from the gradient's own forward pass."""
        return self.objective(index, y), None

    def stats(self, index, y, objective=None, sums=None) -> dict:
        raise NotImplementedError

    def mean(self, index):
        raise NotImplementedError

    def loglik(self, index, y, **kw):
        """Log-likelihood of each observation, shape ``(n,)``."""
        raise NotImplementedError

    def null_objective(self, y_train: np.ndarray, y_eval: np.ndarray) -> float:
        """The mean log-likelihood on ``y_eval`` of the intercept-only model fitted to ``y_train``
        (both encoded as ``prepare`` returns them): the baseline of McFadden's pseudo R-squared."""
        raise NotImplementedError

    def spec(self) -> dict:
        return {"name": self.name, **{k: v for k, v in self.__dict__.items()}}
