"""Binary outcomes from one logit, and the one-pass computation behind them.

``bernoulli_pass`` gives the mean log-likelihood, the counts behind accuracy / false_pos /
false_neg / predavg, and (through a custom JVP) the gradient's weights, all from one ``exp(-|s|)``
of the signed logit ``s``. For float32 on the CPU it is one compiled kernel (``native``), with a
pure-JAX twin (``_pass_jax``) elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import xlogy

from . import native
from .base import Likelihood

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

    def null_objective(self, y_train, y_eval):
        p, q = float(np.mean(y_train > 0)), float(np.mean(y_eval > 0))
        return float(xlogy(q, p) + xlogy(1.0 - q, 1.0 - p))

    def loglik(self, index, y, **kw):
        return log_sigmoid(y * index)
