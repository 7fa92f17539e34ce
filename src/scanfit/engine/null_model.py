"""The intercept-only model of a chunked source: the baseline of ``*_null_objective`` and
``*_pseudo_r2`` (McFadden's) for streamed and minibatch fits, equal to ``Likelihood.null_objective``
of the same rows in memory.

Where no rows carry an offset, a family may give it in closed form from the first pass's moments
(``Likelihood.null_from_moments``). Otherwise (an offset or exposure, the negative binomial's
dispersion, a family without a closed form) it is fitted as in memory (``likelihoods.null_fit``:
Newton's method on the intercepts and the likelihood's own parameters), each step one pass summing
the log-likelihood, its gradient and its Hessian (a few numbers) over the rows' target, weights and
offset only (the kept chunks, or the files without their feature columns); then one pass over the
validation rows at the fitted parameters.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..data.precision import dtype_scope
from ..likelihoods import null_fit

__all__ = ["null_objectives", "with_null", "pseudo_r2"]


def pseudo_r2(objective: float, null: float) -> float:
    """McFadden's pseudo R-squared, ``1 - objective / null`` (NaN without a finite, nonzero null)."""
    return 1.0 - objective / null if np.isfinite(null) and null != 0 else np.nan


def with_null(final: dict, nulls: dict) -> dict:
    """``final`` with ``{part}_null_objective`` and ``{part}_pseudo_r2`` for each part of ``nulls``."""
    out = dict(final)
    for part, null in nulls.items():
        out[f"{part}_null_objective"] = null
        out[f"{part}_pseudo_r2"] = pseudo_r2(out.get(f"{part}_objective", np.nan), null)
    return out


def null_objectives(lik, train, valid=None) -> dict:
    """``{"train": ..., "valid": ...}``: the mean log-likelihood on each part of the intercept-only
    model fitted to the training rows; ``train`` and ``valid`` are ``(feeder, moments)`` pairs
    (``valid`` None: no validation rows)."""
    parts = {"train": train} if valid is None else {"train": train, "valid": valid}
    out, fitted = {}, None
    for part, (feeder, moments) in parts.items():
        null = None if train[1].offset or moments.offset else lik.null_from_moments(train[1], moments)
        if null is None:
            if fitted is None:
                fitted = null_fit.fit(functools.partial(_pass, lik, train[0]), null_fit.start_of(lik, train[1]))
            theta, value = fitted
            null = value if part == "train" else _pass(lik, feeder, theta, derivatives=False)[0]
        out[part] = float(null)
    return out


def _pass(lik, feeder, theta, derivatives=True):
    """The weighted mean log-likelihood of the intercept-only model at ``theta``, its gradient and its
    Hessian (with ``derivatives``), over the chunks of ``feeder`` and over the processes."""
    from . import distributed
    from .feeder import Feeder  # (here: an in-memory fit, which takes with_null only, reads no chunks)

    chunks = feeder.kept if feeder.kept is not None else Feeder(
        feeder.source.without_features(), feeder.likelihood, feeder.dtype, mesh=feeder.mesh, part=feeder.part)
    run = null_fit.program(lik, derivatives)
    acc = None
    with dtype_scope("float64"):
        theta = jnp.asarray(theta, jnp.float64)
        for _, y, w, off, rows in chunks:
            sums = jax.device_get(run(theta, y, w, off, rows))
            acc = sums if acc is None else jax.tree.map(np.add, acc, sums)
    return null_fit.per_weight(distributed.allreduce(acc))
