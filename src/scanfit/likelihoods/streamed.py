"""The history's statistics as sums over chunks, for fits that read their data in pieces.

``stats`` of a likelihood (``base.Likelihood.stats``) works on all the rows at once. A streamed
pass instead adds up, chunk by chunk, the weighted per-row terms that each statistic is a function
of (``terms``), and turns the totals into the same statistics at the end (``from_means``): the
numbers equal those of the in-memory fit. A likelihood without an entry here reports its objective
only; a new likelihood that wants more adds a pair of functions to ``_TABLE``.
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["terms", "from_means_jax"]


def _bernoulli_terms(lik, index, y, loglik):
    pred = (index > 0).astype(index.dtype)
    return [loglik, pred, y * pred, y]


def _bernoulli_stats(lik, m):
    # one pseudo-row holding the mean of y (+-1 coded), weighted so that stats reads it as that mean
    return lik.stats(None, m[3][None], m[0], jnp.stack([m[1], m[2]]), w=jnp.ones(1, m[3].dtype))


def _categorical_terms(lik, index, y, loglik):
    return [loglik, (jnp.argmax(index, axis=0) == y).astype(loglik.dtype)]


def _counts_terms(lik, index, y, loglik, **extra):
    return [loglik, lik.unit_deviance(y, index, **extra), jnp.abs(y - jnp.exp(index))]


_TABLE = {
    "gaussian": (lambda lik, index, y, loglik: [loglik], lambda lik, m: lik.stats(None, None, m[0])),
    "bernoulli": (_bernoulli_terms, _bernoulli_stats),
    "categorical": (_categorical_terms, lambda lik, m: {"objective": m[0], "accuracy": m[1]}),
    "poisson": (_counts_terms, lambda lik, m: {"objective": m[0], "deviance": m[1], "mae": m[2]}),
    "negativebinomial": (_counts_terms, lambda lik, m: {"objective": m[0], "deviance": m[1], "mae": m[2]}),
}


def terms(lik, index, y, **extra):
    """(m, n): per-row terms whose weighted means give the statistics; the first is the row's
    contribution to the objective (Gaussian: minus the squared error, as the loop's objective)."""
    if lik.name == "gaussian":
        loglik = -jnp.square(y - index)
    else:
        loglik = lik.loglik(index, y, **extra)
    make = _TABLE.get(lik.name, (lambda lik, index, y, loglik, **e: [loglik], None))[0]
    out = make(lik, index, y, loglik, **extra) if lik.name in ("poisson", "negativebinomial") else \
        make(lik, index, y, loglik)
    return jnp.stack([jnp.broadcast_to(t, loglik.shape).astype(loglik.dtype) for t in out])


def from_means_jax(lik, means) -> dict:
    """The statistics from the weighted means of :func:`terms` (a JAX vector; jit-able)."""
    m = [means[i] for i in range(means.shape[0])]
    if lik.name not in _TABLE:
        return {"objective": m[0]}
    return dict(_TABLE[lik.name][1](lik, m))
