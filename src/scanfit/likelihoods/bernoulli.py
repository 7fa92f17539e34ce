"""Binary outcomes from one logit, and the one-pass computation behind them.

``bernoulli_pass`` gives the mean log-likelihood, the counts behind accuracy / false_pos /
false_neg / predavg, and (through a custom JVP) the gradient's weights, all from one ``exp(-|s|)``
of the signed logit ``s``. For float32 on the CPU it is one compiled kernel (``native``), with a
pure-JAX twin (``_pass_jax``) elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr, ndtr

from . import native
from .base import Likelihood, np_wmean, np_xlogy, wmean

__all__ = ["Bernoulli", "log_sigmoid", "bernoulli_pass", "sum_log1p"]


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
    log-likelihood is ``min(s, 0) - log1p(e)``. A row with ``y = 0`` (padding) is no observation:
    it adds nothing and ``n`` counts the others (the engine appends padding after the rows, and the
    native kernel stops at the last ``y != 0``: the same rows)."""
    s = y * index
    present = y * y  # 1 for an observation, 0 for a row the engine padded (y = 0): it adds nothing
    e = jnp.exp(-jnp.abs(s)) * present
    n = _observations(y).astype(index.dtype)
    # the counts as one product: pred against the rows [present; y] (a GEMV; for a vmap of starts one
    # (starts, n) x (n, 2) product, the fast orientation; XLA hoists [present; y] out of the loop)
    pred = (index >= 0).astype(index.dtype)
    counts = jax.lax.dot_general(pred, jnp.stack([present, y]), (((pred.ndim - 1,), (1,)), ((), ())))
    value = jnp.sum(jnp.where(s < 0, s, 0.0), axis=-1) - sum_log1p(e)
    return jnp.concatenate([value[..., None], counts], axis=-1) / n[..., None], y * _sigmoid_neg(s, e) / n[..., None]


def _observations(y):
    """How many rows of ``y`` (+-1, or 0 for a padded row) are observations, over the last axis."""
    return jnp.sum(y != 0, axis=-1, dtype=jnp.int32)


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


LINKS = ("logit", "probit")


def _null_of_shares(p: float, q: float) -> float:
    """The mean log-likelihood of rows with a share ``q`` of ones under ``P(y = 1) = p``."""
    return float(np_xlogy(q, p) + np_xlogy(1.0 - q, 1.0 - p))


def _log_cdf(z, link: str):
    """log P(y = 1) for the signed index ``z`` (+index for a 1, -index for a 0)."""
    return log_sigmoid(z) if link == "logit" else log_ndtr(z)


@dataclass(frozen=True)
class Bernoulli(Likelihood):
    """Binary outcomes from one index: ``P(y = 1) = F(index)`` with ``F`` the logistic function
    (``link="logit"``, the default) or the standard normal CDF (``link="probit"``).

    Inside the loop ``y`` is encoded as a sign (+1 for 1, -1 for 0), so the log-likelihood of an
    observation is ``log F(y * index)`` for both links (both ``F`` are symmetric). Unweighted logit
    fits use one pass (``bernoulli_pass``, the native kernel on the CPU).
    """

    link: str = "logit"
    name = "bernoulli"
    stat_names = ("objective", "accuracy", "false_pos", "false_neg", "predavg")

    def __post_init__(self):
        if self.link not in LINKS:
            raise ValueError(f"The 'link' parameter of Bernoulli must be one of {list(LINKS)}. Got {self.link!r} instead.")

    def prepare(self, y, *, name="y"):
        y = np.asarray(y)
        if not ((y == 0) | (y == 1)).all():  # (np.unique sorts: several times slower on every chunk of a pass)
            values = np.unique(y)
            shown = values[:6].tolist()
            raise ValueError(f"The Bernoulli likelihood needs '{name}' in {{0, 1}} (or bool). Got values {shown}"
                             f"{'...' if len(values) > 6 else ''}; recode the classes as 0 and 1, or use Categorical().")
        return self, np.where(y.astype(bool), 1.0, -1.0)

    def _one_pass(self, w) -> bool:
        return w is None and self.link == "logit"

    def pads_in_y(self, w) -> bool:
        return self._one_pass(w)  # the one pass skips rows with y = 0

    def objective(self, index, y, w=None):
        return self.objective_and_sums(index, y, w)[0]

    def objective_and_sums(self, index, y, w=None):
        if self._one_pass(w):
            return bernoulli_pass(index, y)
        value = wmean(_log_cdf(y * index, self.link), w)
        pred = (index > 0).astype(index.dtype)
        return value, jnp.stack([wmean(pred, w), wmean(y * pred, w)], axis=-1)

    def stats(self, index, y, objective=None, sums=None, w=None):
        if sums is None:
            objective, sums = self.objective_and_sums(index, y, w)
        predavg, signed = sums[..., 0], sums[..., 1]
        true_pos = 0.5 * (predavg + signed)
        false_pos = predavg - true_pos
        ones = wmean(y, w) if w is not None else jnp.sum(y, axis=-1) / _observations(y).astype(y.dtype)
        false_neg = 0.5 * (1.0 + ones) - true_pos  # the share of 1s minus the true positives
        return {
            "objective": objective,
            "accuracy": 1.0 - false_pos - false_neg,
            "false_pos": false_pos,
            "false_neg": false_neg,
            "predavg": predavg,
        }

    def mean(self, index):
        return jax.nn.sigmoid(index) if self.link == "logit" else ndtr(index)

    def glm_terms(self, index, y):
        if self.link == "logit":
            p = jax.nn.sigmoid(index)
            return 0.5 * (y + 1.0) - p, p * (1.0 - p)
        z = y * index
        ratio = jnp.exp(-0.5 * z * z - 0.5 * math.log(2 * math.pi) - log_ndtr(z))  # phi(z) / Phi(z), stably
        return y * ratio, ratio * (z + ratio)

    def null_objective(self, y_train, y_eval, w_train=None, w_eval=None, offset_train=None, offset_eval=None):
        return _null_of_shares(np_wmean(y_train > 0, w_train), np_wmean(y_eval > 0, w_eval))

    def null_from_moments(self, train, part):
        return _null_of_shares((1.0 + train.y_mean) / 2.0, (1.0 + part.y_mean) / 2.0)  # y coded -1/1

    def loglik(self, index, y, **kw):
        return _log_cdf(y * index, self.link)
