"""Inference for ``Linear`` models with a built-in likelihood, at ``result.params`` exactly.

Rows are ``intercept`` and the feature names (``(class, term)`` contrasts for Categorical; then
``alpha`` for NegativeBinomial). Frequency weights multiply every row's contribution (a weight of
2 is the row twice); an offset adds to the index. Gaussian follows weighted OLS; Categorical the
multinomial logit against a reference class; the scalar families (Bernoulli with either link,
Poisson) use the likelihood's own score and observed information (``glm_terms``); NegativeBinomial
differentiates its log-likelihood in the coefficients and ``log_alpha`` with JAX and reports
``alpha`` (the delta method, which at the maximum gives statsmodels' numbers).
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pandas as pd

from ..data import identification
from ..engine import programs
from ..engine.outcome import FitWarning
from ..likelihoods.glm import glm_family
from .estimates import Estimates, Rows, refuse

__all__ = ["linear_estimates", "NEAR_MAXIMUM"]

NEAR_MAXIMUM = 1e-10  # half the squared Newton decrement, relative: below it the estimate is the maximum


@functools.lru_cache(maxsize=32)
def _compiled_parts(lik, q: int):
    """One compiled program (per likelihood and design width) for :func:`_jax_parts`'s numbers,
    instead of a small compilation for every eager JAX operation."""
    import jax
    import jax.numpy as jnp

    names = lik.extra_params

    def parts(th, Xj, yj, wj, off):
        def per_row(t):
            kw = {k: t[q + i] for i, k in enumerate(names)}
            return lik.loglik(Xj @ t[:q] + off, yj, **kw)

        eta = Xj @ th[:q] + off
        if not names:  # the closed forms of a scalar GLM
            r, W = lik.glm_terms(eta, yj)
            return jnp.sum(wj * per_row(th)), Xj * r[:, None], (Xj * (wj * W)[:, None]).T @ Xj, W
        ll = jnp.sum(wj * per_row(th))
        scores = jax.jacfwd(per_row)(th)
        info = -jax.hessian(lambda t: jnp.sum(wj * per_row(t)))(th)
        kw = {k: th[q + i] for i, k in enumerate(names)}
        # each row's -d2 loglik / d index2 with the likelihood's own parameters held fixed (the GLM weight)
        W = -jax.grad(lambda e: jnp.sum(jax.grad(lambda u: jnp.sum(lik.loglik(u, yj, **kw)))(e)))(eta)
        return ll, scores, info, W

    return programs.kept(jax.jit(parts), "linear_parts", (lik, q))  # a warm process loads it (engine/programs.py)


def _jax_parts(lik, X, y, theta, w, offset, extra: int):
    """(loglik, per-row scores, information, GLM weights) of a scalar likelihood at ``theta``
    (coefficients, then ``extra`` likelihood parameters), with JAX in float64."""
    import jax

    with jax.enable_x64(True):  # NumPy in, so nothing but the one program compiles (jnp.asarray would)
        f64 = lambda a: np.asarray(a, np.float64)  # noqa: E731
        wj = np.ones(len(y)) if w is None else f64(w)
        off = np.zeros(len(y)) if offset is None else f64(offset)
        ll, scores, info, W = jax.device_get(_compiled_parts(lik, X.shape[1])(f64(theta), f64(X), f64(y), wj, off))
        return float(ll), np.asarray(scores), np.asarray(info), np.asarray(W)


def _parts(lik, family, X, y, theta, others, w, offset):
    """(total log-likelihood, scores (n, p) per row, information (p, p) weighted, and per row the GLM
    weight (scalar families, (n,)) or the class probabilities (Categorical, (n, K)))."""
    n, q = X.shape
    wv = np.ones(n) if w is None else w
    if family == "gaussian":
        e = y - X @ theta
        ssr, total = float(wv @ (e * e)), float(wv.sum())
        s2 = ssr / max(total - q, 1)
        return (-0.5 * total * (math.log(2 * math.pi * ssr / total) + 1), X * (e / s2)[:, None],
                (X * wv[:, None]).T @ X / s2, np.ones(n))
    if family != "categorical":
        return _jax_parts(lik, X, y, theta, w, offset, len(lik.extra_params))
    k1 = len(others)
    full = np.zeros((n, k1 + 1))
    full[:, others] = X @ theta.reshape(k1, q).T
    from scipy.special import logsumexp  # Categorical only (the import takes ~0.3 s)

    logp = full - logsumexp(full, axis=1, keepdims=True)
    ll = float(np.sum(wv * logp[np.arange(n), y]))
    prob = np.exp(logp)
    resid = (y[:, None] == np.asarray(others)[None, :]) - prob[:, others]
    scores = (resid[:, :, None] * X[:, None, :]).reshape(n, k1 * q)
    info = np.empty((k1 * q, k1 * q))
    for i, a in enumerate(others):
        for j, b in enumerate(others[i:], start=i):
            wab = wv * prob[:, a] * (float(a == b) - prob[:, b])
            info[i * q:(i + 1) * q, j * q:(j + 1) * q] = block = (X * wab[:, None]).T @ X
            info[j * q:(j + 1) * q, i * q:(i + 1) * q] = block.T
    return ll, scores, info, prob


def _distance(X, ll, scores, info, w, blocks: int) -> tuple[float, float]:
    """(half the squared Newton decrement per observation, relative to max(1, |mean loglik|); the
    largest gradient component in standardized units): how far ``theta`` is from the maximum."""
    total = X.shape[0] if w is None else float(np.sum(w))
    g = (scores if w is None else scores * w[:, None]).sum(axis=0) / total
    try:
        decrement = float(g @ np.linalg.solve(info / total, g))
    except np.linalg.LinAlgError:
        decrement = float("inf")
    spread = np.std(X, axis=0)
    spread = np.where(spread > 0, spread, 1.0)
    spread = np.concatenate([np.tile(spread, blocks), np.ones(len(g) - blocks * len(spread))])
    return 0.5 * abs(decrement) / max(1.0, abs(ll) / total), float(np.max(np.abs(g * spread)))


def _coefficients(result, lik, family, names, reference):
    b1 = np.asarray(result.params["beta1"], float)
    b0 = np.asarray(result.params["beta0"], float) if "beta0" in result.params else None
    if family != "categorical":
        extra = [float(np.asarray(result.params[k])) for k in lik.extra_params]
        lead = [] if b0 is None else [b0.reshape(1)]
        return np.concatenate(lead + [b1, extra]), pd.Index(list(names) + list(lik.extra_params), name="term"), []
    k = lik.n_classes
    if isinstance(reference, bool) or not isinstance(reference, (int, np.integer)) or not 0 <= reference < k:
        raise ValueError(f"The 'reference' parameter of summary must be a class label in 0..{k - 1}. "
                         f"Got {reference!r} instead.")
    others = [c for c in range(k) if c != reference]
    coef = b1 if b0 is None else np.vstack([b0[None, :], b1])  # ([1 +] d, k)
    theta = np.concatenate([coef[:, c] - coef[:, reference] for c in others])
    index = pd.MultiIndex.from_tuples([(c, t) for c in others for t in names], names=["class", "term"])
    return theta, index, others


def _log_alpha_to_alpha(theta, scores, info, index):
    """Report ``alpha = exp(log_alpha)``: reparametrize the last coordinate (exact at the maximum)."""
    alpha = math.exp(theta[-1])
    jinv = np.ones(len(theta))
    jinv[-1] = 1.0 / alpha  # d log_alpha / d alpha
    theta = theta.copy()
    theta[-1] = alpha
    return theta, scores * jinv, info * np.outer(jinv, jinv), index[:-1].append(pd.Index(["alpha"]))


def linear_estimates(result, reference, allow) -> Estimates:
    xa, ya = result.train
    lik = result.likelihood
    family = glm_family(result.model, lik) or "extra"
    w, offset = getattr(result, "weights", None), getattr(result, "offset", None)
    _, y = lik.prepare(ya)
    n = xa.shape[0]
    intercept = getattr(result.model, "intercept", True)
    names = ("intercept",) * intercept + tuple(result.feature_names)
    X = np.column_stack([np.ones(n), xa]) if intercept else np.asarray(xa, np.float64)
    theta, index, others = _coefficients(result, lik, family, names, reference)
    if family == "categorical":
        y = y.astype(int)
    problem = identification.collinear(xa, tuple(result.feature_names), intercept=intercept)
    note = ""
    ll, scores, info, per_row = _parts(lik, family, X, y, theta, others, w, offset)
    blocks = max(len(others), 1)
    gap, gradient = _distance(X, ll, scores, info, w, blocks) if not problem else (np.nan, np.nan)
    short = not problem and not gap <= NEAR_MAXIMUM
    if short:
        note = (f"result.params is not the maximum-likelihood estimate: the Newton decrement predicts a gain of "
                f"{gap:.1e} (relative) and the largest gradient component is {gradient:.1e} in standardized units "
                f"({result.status.code} after {result.status.steps} steps, {result.config.dtype}); these standard "
                f"errors are approximate. result.refine() returns a new result at the maximum.")
        warnings.warn(note, FitWarning, stacklevel=6)
    binary = lik.name in ("bernoulli", "categorical")
    if not problem and binary:  # whether the MLE exists does not depend on the reference class
        y01 = (y > 0).astype(int) if lik.name == "bernoulli" else y
        problem = identification.check_separation(xa, y01, tuple(result.feature_names), max(len(others) + 1, 2),
                                                  result.params, weights=w, offset=offset,
                                                  link=getattr(lik, "link", "logit"))
    if lik.extra_params:
        theta, scores, info, index = _log_alpha_to_alpha(theta, scores, info, index)
    labels = [" ".join(map(str, t)) if isinstance(t, tuple) else t for t in index]
    problem = problem or identification.singular(info, labels)
    sigma = None
    total = n if w is None else float(np.sum(w))
    if w is not None and not total > len(theta):
        raise ValueError(f"The weights sum to {total:.4g}, not more than the {len(theta)} coefficients. scanfit's "
                         f"weights are frequency weights (a row of weight 2 counts as two observations), so the "
                         f"standard errors take the weights' sum as the number of observations; for relative "
                         f"weights, rescale them to sum to the rows they stand for (weights * n / weights.sum()).")
    if family == "gaussian":
        e = y - X @ theta
        sigma = float(np.sqrt(((1.0 if w is None else w) * e) @ e / max(total - len(theta), 1)))
    cat = family == "categorical"
    link = {"gaussian": "identity", "categorical": "softmax", "bernoulli": getattr(lik, "link", "logit")}.get(family, "log")
    rows = Rows(X, offset, None if cat else per_row, per_row if cat else None,
                np.eye(lik.n_classes)[y] if cat else None, tuple(others), reference if cat else 0, intercept, link,
                len(lik.extra_params))
    k_null = (lik.n_classes - 1) if cat else 1 + len(lik.extra_params)
    return Estimates(index, theta, info, scores, total, ll, sigma, lik.name, note, refuse(problem, allow), gradient,
                     w, rows, k_null)
