"""K classes from K logits (softmax): multinomial logit and classification networks."""

from __future__ import annotations

from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp
import numpy as np

from .base import Likelihood, np_xlogy, wmean

__all__ = ["Categorical"]


def _null_of_shares(p, q) -> float:
    """The mean log-likelihood of rows with class totals ``q`` under the class shares of totals ``p``."""
    p, q = p / max(p.sum(), 1e-300), q / max(q.sum(), 1e-300)
    return float(np.sum(np_xlogy(q, p)))


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

    def objective(self, index, y, w=None):
        return wmean(self._logp(index, y), w)

    def stats(self, index, y, objective=None, sums=None, w=None):
        if objective is None:
            objective = self.objective(index, y, w)
        return {"objective": objective, "accuracy": wmean(jnp.argmax(index, axis=0) == y, w)}

    def mean(self, index):
        return jax.nn.softmax(index, axis=0)

    def null_objective(self, y_train, y_eval, w_train=None, w_eval=None, offset_train=None, offset_eval=None):
        k = self.n_classes
        p = np.bincount(y_train, weights=w_train, minlength=k)
        q = np.bincount(y_eval, weights=w_eval, minlength=k)
        return _null_of_shares(p, q)

    def null_from_moments(self, train, part):
        return _null_of_shares(train.classes, part.classes)

    def loglik(self, index, y, **kw):
        return self._logp(index, y)
