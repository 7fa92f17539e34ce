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
runs as one compiled CPU kernel for float32 (``scanfit.native``) with a pure-JAX twin elsewhere.

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

from . import native

__all__ = ["Likelihood", "Gaussian", "Bernoulli", "Categorical", "log_sigmoid", "bernoulli_pass", "sum_log1p"]


def _block(n: int) -> int:
    """Observations per ``log`` in the Bernoulli objective: a divisor of ``n`` in 32..100 when
    there is one (then no remainder needs ``log1p``), else 64. A product of ``b`` factors in
    ``(1, 2]`` stays below ``2^100``, far from float32's overflow at ``2^128``, and its ``b - 1``
    roundings (at most 6e-6 relative, 6e-6 absolute after the ``log``) move the mean over
    ``n / b`` blocks by about 1e-7, what a float32 sum of the same terms loses anyway."""
    return next((b for b in range(100, 31, -1) if n % b == 0), 64)


def sum_log1p(e):
    """``sum(log1p(e))`` over the last axis for ``e`` in ``[0, 1]``, with one ``log`` per block.

    The first ``b * (n // b)`` values are laid out as ``b`` contiguous rows and multiplied
    elementwise as ``1 + e``, so one ``log`` serves ``b`` observations and the per-observation work
    is a multiply: on the CPU the elementwise ``log1p`` was the costliest kernel of a logit step
    after the two matrix products. A remainder of ``n % b`` values takes ``log1p`` directly.
    """
    n = e.shape[-1]
    b = _block(n)
    m = (n // b) * b
    total = jnp.sum(jnp.log(jnp.prod((1.0 + e[..., :m]).reshape(e.shape[:-1] + (b, m // b)), axis=-2)), axis=-1)
    return total + jnp.sum(jnp.log1p(e[..., m:]), axis=-1) if m < n else total


def _sigmoid_neg(s, e):
    """``sigmoid(-s)`` from ``e = exp(-|s|)``: value and slope of a Bernoulli step share one ``exp``."""
    return jnp.where(s >= 0, e, 1.0) / (1.0 + e)


@jax.custom_jvp
def log_sigmoid(s):
    """log(1 / (1 + exp(-s))), stable for any s, with one ``exp`` shared by value and slope."""
    e = jnp.exp(-jnp.abs(s))
    return jnp.minimum(s, 0.0) - jnp.log1p(e)


@log_sigmoid.defjvp
def _log_sigmoid_jvp(primals, tangents):
    (s,), (ds,) = primals, tangents
    e = jnp.exp(-jnp.abs(s))
    return jnp.minimum(s, 0.0) - jnp.log1p(e), _sigmoid_neg(s, e) * ds


def _pass_jax(index, y):
    """The Bernoulli pass in JAX: ``(sums, g)`` with ``sums = [mean log-likelihood, share predicted
    1, share (TP - FP)]`` over the last axis and ``g = y sigmoid(-s) / n``, the derivative of the
    mean log-likelihood in ``index``. ``s = y * index`` (``y`` = +-1), ``e = exp(-|s|)``, and the
    log-likelihood is ``min(s, 0) - log1p(e)``."""
    s = y * index
    e = jnp.exp(-jnp.abs(s))
    n = s.shape[-1]
    # the counts as one product: pred against the rows [1; y] (a GEMV; for a vmap of starts one
    # (starts, n) x (n, 2) product, the fast orientation; XLA hoists [1; y] out of the loop)
    pred = (index >= 0).astype(index.dtype)
    counts = jax.lax.dot_general(pred, jnp.stack([jnp.ones_like(y), y]), (((pred.ndim - 1,), (1,)), ((), ())))
    value = jnp.sum(jnp.where(s < 0, s, 0.0), axis=-1) - sum_log1p(e)
    return jnp.concatenate([value[..., None], counts], axis=-1) / n, y * _sigmoid_neg(s, e) / n


@jax.custom_jvp
def _pass_native(index, y):
    """The same pass as one compiled CPU kernel (scanfit/native/bernoulli.cc); its derivatives
    (needed only beyond the gradient, e.g. for Hessians) are those of the JAX twin."""
    out = (jax.ShapeDtypeStruct(index.shape[:-1] + (3,), index.dtype), jax.ShapeDtypeStruct(index.shape, index.dtype))
    return jax.ffi.ffi_call(native.TARGET, out, vmap_method="expand_dims")(index, y)


_pass_native.defjvp(lambda primals, tangents: jax.jvp(_pass_jax, primals, tangents))


def _pass(index, y):
    """The native kernel on the CPU for float32 (when it could be built), else the JAX twin."""
    if index.dtype == jnp.float32 and y.dtype == jnp.float32 and native.bernoulli_target():
        return jax.lax.platform_dependent(index, y, cpu=_pass_native, default=_pass_jax)
    return _pass_jax(index, y)


@jax.custom_jvp
def bernoulli_pass(index, y):
    """``(objective, [share predicted 1, share (TP - FP)])`` over the last axis; ``y`` is +-1.

    Differentiable in ``index`` only (``y`` is data); value, counts and slope come from one pass."""
    sums, _ = _pass(index, y)
    return sums[..., 0], sums[..., 1:]


@bernoulli_pass.defjvp
def _bernoulli_pass_jvp(primals, tangents):
    (index, y), (dindex, _) = primals, tangents
    sums, g = _pass(index, y)
    return (sums[..., 0], sums[..., 1:]), (jnp.sum(g * dindex, axis=-1), jnp.zeros_like(sums[..., 1:]))


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

    def stats(self, index, y, objective=None, sums=None):
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
        return bernoulli_pass(index, y)[0]

    def objective_and_sums(self, index, y):
        return bernoulli_pass(index, y)

    def stats(self, index, y, objective=None, sums=None):
        if sums is None:
            objective, sums = bernoulli_pass(index, y)
        predavg, signed = sums[..., 0], sums[..., 1]
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

    def stats(self, index, y, objective=None, sums=None):
        if objective is None:
            objective = self.objective(index, y)
        return {"objective": objective, "accuracy": jnp.mean(jnp.argmax(index, axis=0) == y)}

    def mean(self, index):
        return jax.nn.softmax(index, axis=0)

    def loglik(self, index, y, **kw):
        return self._logp(index, y)
