"""The intercept-only model fitted where a family has no closed form for it: the baseline of McFadden's
pseudo R-squared with an offset, with a likelihood's own parameters (the negative binomial's
dispersion), or for a family that writes only ``loglik``.

The parameters are a flat vector: one intercept per output, then ``extra_params`` (numbers). Newton's
method maximizes the weighted mean of ``loglik(intercept + offset, y, **extra)`` from
``Likelihood.null_start``, with a line search, until its decrement is below 1e-20: in float64 whatever
the fit's dtype. The sums come from ``sums(theta)``: over arrays in memory here (``fitted_null``, the
default ``Likelihood.null_objective``), over a chunked source's passes in ``engine.null_model``, both
from the per-chunk program ``program(lik)``.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np

from ..data.precision import dtype_scope

__all__ = ["fit", "fitted_null", "per_weight", "program", "start_of", "target_moments"]

MAX_SUMS = 100  # evaluations of the sums (passes over a source), line search included
_DECREMENT = 1e-20  # Newton's decrement (per unit of weight) at which the fit is done: the objective's error
_LONGEST = 2.0  # the largest change of one parameter in a step (a far start walks instead of overshooting)


def start_of(lik, moments) -> np.ndarray:
    """``lik.null_start(moments)`` as the flat vector."""
    start = lik.null_start(moments)
    return np.concatenate([np.ravel(np.asarray(start["intercept"], np.float64))]
                          + [np.ravel(np.asarray(start[k], np.float64)) for k in lik.extra_params])


def fit(sums, theta):
    """The maximizer from ``theta`` and its mean log-likelihood; ``sums(theta)`` gives the weighted
    mean log-likelihood, its gradient and its Hessian."""
    value, g, h = sums(theta)
    used = 1
    while used < MAX_SUMS:
        step = _direction(g, h)
        if not g @ step > _DECREMENT:
            break
        step = step / max(1.0, np.max(np.abs(step)) / _LONGEST)
        t = 1.0
        while used < MAX_SUMS:  # halve the step until the objective does not fall
            new = sums(theta + t * step)
            used += 1
            if np.isfinite(new[0]) and new[0] >= value - 1e-15 * abs(value):
                theta, (value, g, h) = theta + t * step, new
                break
            t /= 2
        else:
            break
    return theta, value


def _direction(g, h):
    """Newton's direction ``(-h)^-1 g``, with the curvature's eigenvalues taken as at least a tiny
    share of the largest and positive (an ascent direction where the objective is not concave)."""
    vals, vecs = np.linalg.eigh(-h)
    floor = 1e-12 * max(np.max(np.abs(vals)), 1e-300)
    return vecs @ ((vecs.T @ g) / np.maximum(np.abs(vals), floor))


@functools.lru_cache(maxsize=32)
def program(lik, derivatives: bool = True):
    """``(theta, y, w, offset, rows) -> (weight, value, gradient, Hessian)``: the weighted sums of the
    intercept-only log-likelihood over the first ``rows`` rows of a chunk (jitted; ``w``, ``offset`` or
    None); without ``derivatives`` the gradient and the Hessian are None (a program quicker to compile)."""
    k = lik.n_outputs

    def total(theta, y, w, off, rows):
        n = y.shape[0]
        wt = (jnp.arange(n) < rows).astype(theta.dtype)
        wt = wt if w is None else wt * w.astype(theta.dtype)
        index = jnp.broadcast_to(theta[0] if k == 1 else theta[:k, None], (n,) if k == 1 else (k, n))
        index = index if off is None else index + off.astype(theta.dtype)
        extra = {name: theta[k + i] for i, name in enumerate(lik.extra_params)}
        ll = lik.loglik(index, y.astype(theta.dtype) if k == 1 else y, **extra)  # (labels stay integers)
        return jnp.sum(jnp.where(wt > 0, ll, 0.0) * wt), jnp.sum(wt)

    def sums(theta, y, w, off, rows):
        if not derivatives:
            return total(theta, y, w, off, rows)[::-1] + (None, None)
        (value, weight), g = jax.value_and_grad(total, has_aux=True)(theta, y, w, off, rows)
        return weight, value, g, jax.hessian(lambda th: total(th, y, w, off, rows)[0])(theta)

    return jax.jit(sums)


def target_moments(y, w=None):
    """The target's moments that ``null_start`` reads (as ``engine.feeder.Moments`` holds them)."""
    y = np.asarray(y, np.float64)
    w = np.ones(len(y)) if w is None else np.asarray(w, np.float64)
    weight = float(np.sum(w))
    mean = float(np.sum(w * y) / weight)
    return SimpleNamespace(rows=len(y), weight=weight, y_mean=mean, y_m2=float(np.sum(w * (y - mean) ** 2)))


def fitted_null(lik, y_train, y_eval, w_train=None, w_eval=None, offset_train=None, offset_eval=None) -> float:
    """``Likelihood.null_objective`` by the fit above, on arrays in memory."""
    with dtype_scope("float64"):
        def sums_on(y, w, off, derivatives=True):
            args = [None if a is None else jnp.asarray(a) for a in (y, w, off)]
            run = program(lik, derivatives)
            return lambda theta: per_weight(run(jnp.asarray(theta, jnp.float64), *args, len(y)))

        theta, value = fit(sums_on(y_train, w_train, offset_train), start_of(lik, target_moments(y_train, w_train)))
        return float(value if y_eval is y_train and w_eval is w_train and offset_eval is offset_train
                     else sums_on(y_eval, w_eval, offset_eval, derivatives=False)(theta)[0])


def per_weight(sums):
    """``(value, gradient, Hessian)`` per unit of weight from a program's sums (NumPy float64; None
    for derivatives not taken)."""
    weight, value, g, h = (None if a is None else np.asarray(a, np.float64) for a in jax.device_get(sums))
    return float(value / weight), None if g is None else g / weight, None if h is None else h / weight
