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

import jax.numpy as jnp
import numpy as np

__all__ = ["Likelihood", "wmean", "np_wmean", "np_xlogy", "split_target"]


def split_target(target):
    """``(y, w, offset)`` from the loop's target: the encoded ``y`` alone, or a dict with ``"y"`` and
    optionally ``"w"`` (weights normalized to mean 1) and ``"offset"`` (added to the index)."""
    if isinstance(target, dict):
        return target["y"], target.get("w"), target.get("offset")
    return target, None, None


def wmean(a, w=None):
    """The mean over the last axis, weighted by ``w`` when given: ``sum(w a) / sum(w)`` (the engine
    normalizes ``w`` to mean 1, so this is ``mean(w a)``; dividing by the same rounded sum keeps a
    share of all rows at exactly 1 where the rows carry padding's zero weights)."""
    return jnp.mean(a, axis=-1) if w is None else jnp.sum(w * a, axis=-1) / jnp.sum(w, axis=-1)


def np_wmean(a, w=None) -> float:
    """NumPy twin of :func:`wmean` for raw (unnormalized) weights."""
    a = np.asarray(a, np.float64)
    return float(np.mean(a)) if w is None else float(np.sum(w * a) / np.sum(w))


def np_xlogy(x, y):
    """``x * log(y)``, 0 where ``x`` is 0 (``scipy.special.xlogy``, whose import takes about 0.3 s of a
    fresh process: ``scanfit fit`` on a logit imports no ``scipy.special``)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x == 0, 0.0, x * np.log(np.where(x == 0, 1.0, y)))


class Likelihood:
    """Base class; subclasses are frozen dataclasses (hashable, so they key compiled loops)."""

    name = "likelihood"
    stat_names: tuple[str, ...] = ("objective",)
    n_outputs = 1
    point_stat = "accuracy"
    extra_params: tuple[str, ...] = ()  # the likelihood's own parameters (e.g. NB's log_alpha), fitted with the model's
    takes_offset = False  # count models: an offset (log exposure) adds to the index

    def pads_in_y(self, w) -> bool:
        """Whether a padded row (the engine pads rows to shared sizes, see ``engine.inputs.padded_rows``)
        is marked by ``y = 0`` alone, with these weights (None: unweighted); otherwise the engine
        gives padded rows zero weight. Bernoulli's unweighted logit says yes (its one pass skips them)."""
        return False

    def counted(self, y, w=None):
        """Which rows count, a boolean ``(n,)``: those of positive weight, or (``pads_in_y``) ``y != 0``."""
        if w is not None:
            return w > 0
        return y != 0 if self.pads_in_y(None) else jnp.ones(y.shape[-1], bool)

    def init_extra(self) -> dict:
        """Starting values of ``extra_params`` (joined to the model's parameter dict)."""
        return {}

    def summaries(self, params) -> dict:
        """Scalar summaries of the likelihood's own parameters for the history (e.g. ``alpha``)."""
        return {}

    def glm_terms(self, index, y, **extra):
        """``(score, weight)`` per observation: the first derivative of the log-likelihood in the
        index and minus the second (observed information), for Newton's GLM step and inference;
        None where the likelihood has no scalar-index GLM structure."""
        return None

    def prepare(self, y: np.ndarray, *, name: str = "y"):
        """Return ``(likelihood, encoded_y)``; the likelihood may learn e.g. its class count."""
        raise NotImplementedError

    def objective(self, index, y, w=None, **extra):
        """The mean log-likelihood (weighted by ``w``, normalized to mean 1, when given)."""
        return wmean(self.loglik(index, y, **extra), w)

    def objective_and_sums(self, index, y, w=None, **extra):
        """``(objective, sums)``: the objective and any sums over the observations that ``stats``
        reuses, so the history's statistics come from the gradient's own forward pass."""
        return self.objective(index, y, w, **extra), None

    def stats(self, index, y, objective=None, sums=None, w=None, **extra) -> dict:
        raise NotImplementedError

    def mean(self, index):
        raise NotImplementedError

    def loglik(self, index, y, **kw):
        """Log-likelihood of each observation, shape ``(n,)``."""
        raise NotImplementedError

    def null_objective(self, y_train: np.ndarray, y_eval: np.ndarray, w_train=None, w_eval=None,
                       offset_train=None, offset_eval=None) -> float:
        """The mean log-likelihood on ``y_eval`` of the intercept-only model fitted to ``y_train``
        (both encoded as ``prepare`` returns them; weights raw, offsets for count models): the
        baseline of McFadden's pseudo R-squared. By default fitted (``likelihoods.null_fit``)."""
        from .null_fit import fitted_null

        return fitted_null(self, y_train, y_eval, w_train, w_eval, offset_train, offset_eval)

    def null_from_moments(self, train, part) -> float | None:
        """:meth:`null_objective` for a chunked source, from the first pass's moments of its training
        rows and of the rows ``part`` (``engine.feeder.Moments``: weight, the target's weighted mean
        and squared deviations, class totals; rows without an offset), or None where the family has
        no closed form: the engine then fits the intercept-only model (see :meth:`null_start`)."""
        return None

    def null_start(self, train) -> dict:
        """Where the engine's fit of the intercept-only model starts, from the training rows' moments:
        ``{"intercept": one per output, **{p: a number for each of extra_params}}``. It maximizes
        the weighted sum of ``loglik(intercept + offset, y, **extra)`` by Newton's method."""
        return {"intercept": np.zeros(self.n_outputs), **{k: float(v) for k, v in self.init_extra().items()}}

    def spec(self) -> dict:
        return {"name": self.name, **{k: v for k, v in self.__dict__.items()}}
