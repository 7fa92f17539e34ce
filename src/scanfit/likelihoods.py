"""Likelihoods: the log-probability of ``y`` given a model's index (its raw output).

Shapes inside the engine put observations last: the index is ``(n,)`` for one output and
``(k, n)`` for ``k`` outputs. Each likelihood

- ``prepare(y)`` checks labels and returns the encoded target used inside the loop,
- ``objective(index, y)`` is the mean log-likelihood per observation (to be maximized),
- ``stats(index, y)`` gives the per-step statistics recorded in the history,
- ``mean(index)`` is the prediction on the response scale.

Everything is computed from logits, never from probabilities through ``log``.

>>> import scanfit as sf, jax.numpy as jnp
>>> float(sf.Bernoulli().objective(jnp.array([1000.0, -1000.0]), jnp.array([1.0, -1.0])))
0.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Likelihood", "Gaussian", "Bernoulli", "Categorical", "log_sigmoid"]


@jax.custom_jvp
def log_sigmoid(s):
    """log(1 / (1 + exp(-s))), stable for any s, with one ``exp`` shared by value and slope."""
    e = jnp.exp(-jnp.abs(s))
    return jnp.minimum(s, 0.0) - jnp.log1p(e)


@log_sigmoid.defjvp
def _log_sigmoid_jvp(primals, tangents):
    (s,), (ds,) = primals, tangents
    e = jnp.exp(-jnp.abs(s))
    value = jnp.minimum(s, 0.0) - jnp.log1p(e)
    slope = jnp.where(s >= 0, e, 1.0) / (1.0 + e)  # = sigmoid(-s)
    return value, slope * ds


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

    def stats(self, index, y, objective=None) -> dict:
        raise NotImplementedError

    def mean(self, index):
        raise NotImplementedError

    def loglik(self, index, y, **kw):
        """Log-likelihood of each observation, shape ``(n,)``."""
        raise NotImplementedError

    def spec(self) -> dict:
        return {"name": self.name, **{k: v for k, v in self.__dict__.items()}}


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

    def stats(self, index, y, objective=None):
        mse = -objective if objective is not None else jnp.mean((y - index) ** 2)
        return {"objective": -0.5 * (jnp.log(2 * math.pi * mse) + 1.0), "mse": mse}

    def mean(self, index):
        return index

    def loglik(self, index, y, *, sigma):
        r = (y - index) / sigma
        return -0.5 * (jnp.log(2 * math.pi) + r**2) - jnp.log(sigma)


@dataclass(frozen=True)
class Bernoulli(Likelihood):
    """Binary outcomes from one logit: log p(y) = log_sigmoid(+-logit), one ``exp`` per observation.

    Inside the loop ``y`` is encoded as a sign (+1 for 1, -1 for 0).
    """

    name = "bernoulli"
    stat_names = ("objective", "accuracy", "false_pos", "false_neg", "predavg")

    def prepare(self, y, *, name="y"):
        values = np.unique(y)
        if not np.isin(values, [0, 1]).all():
            shown = values[:6].tolist()
            raise ValueError(f"The Bernoulli likelihood needs '{name}' in {{0, 1}} (or bool). Got values {shown}"
                             f"{'...' if len(values) > 6 else ''}; recode the classes as 0 and 1, or use Categorical().")
        return self, np.where(y.astype(bool), 1.0, -1.0)

    def objective(self, index, y):
        return jnp.mean(log_sigmoid(y * index))

    def stats(self, index, y, objective=None):
        if objective is None:
            objective = self.objective(index, y)
        # The counts as one product: pred contracted with the rows [1; y] gives n * (share predicted 1,
        # TP - FP), y = +-1. On the CPU each reduction of a boolean mask is a kernel of its own; this is
        # one GEMV for one start and one (starts, n) x (n, 2) product for a vmap of starts (the fast
        # orientation), and XLA hoists the constant [1; y] out of the loop.
        pred = (index >= 0).astype(y.dtype)
        counts = jax.lax.dot_general(pred, jnp.stack([jnp.ones_like(y), y]), (((pred.ndim - 1,), (1,)), ((), ())))
        predavg, signed = counts / y.shape[-1]
        true_pos = 0.5 * (predavg + signed)
        false_pos = predavg - true_pos
        false_neg = 0.5 * (1.0 + jnp.mean(y)) - true_pos  # the share of 1s minus the true positives
        return {
            "objective": objective,
            "accuracy": 1.0 - false_pos - false_neg,
            "false_pos": false_pos,
            "false_neg": false_neg,
            "predavg": predavg,
        }

    def mean(self, index):
        return jax.nn.sigmoid(index)

    def loglik(self, index, y, **kw):
        return log_sigmoid(y * index)


@dataclass(frozen=True)
class Categorical(Likelihood):
    """K classes from K logits (softmax); ``y`` holds integer labels 0..K-1.

    ``n_classes`` is learned from the labels (max + 1) when not given.
    """

    n_classes: int | None = None
    name = "categorical"
    stat_names = ("objective", "accuracy")

    @property
    def n_outputs(self):
        return self.n_classes

    def prepare(self, y, *, name="y"):
        if y.dtype == np.bool_:
            y = y.astype(np.int64)
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError(f"The Categorical likelihood needs integer labels in '{name}'. Got non-integer values "
                             f"such as {y[np.mod(y, 1) != 0][:3].tolist()}; encode classes as 0..K-1.")
        y = y.astype(np.int64)
        k = self.n_classes if self.n_classes is not None else max(int(y.max()) + 1, 2)
        if y.min() < 0 or y.max() >= k:
            raise ValueError(f"The Categorical likelihood with {k} classes needs labels in 0..{k - 1} in '{name}'. "
                             f"Got labels from {int(y.min())} to {int(y.max())}; encode classes as 0..K-1 "
                             f"or pass Categorical(n_classes=...).")
        return replace(self, n_classes=k), y.astype(np.int32)

    def _logp(self, index, y):
        logp = jax.nn.log_softmax(index, axis=0)
        return jnp.take_along_axis(logp, y[None, :], axis=0)[0]

    def objective(self, index, y):
        return jnp.mean(self._logp(index, y))

    def stats(self, index, y, objective=None):
        if objective is None:
            objective = self.objective(index, y)
        return {"objective": objective, "accuracy": jnp.mean(jnp.argmax(index, axis=0) == y)}

    def mean(self, index):
        return jax.nn.softmax(index, axis=0)

    def loglik(self, index, y, **kw):
        return self._logp(index, y)
