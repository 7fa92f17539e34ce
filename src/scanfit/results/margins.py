"""Marginal effects of ``Linear`` models with a built-in likelihood: ``d E[y | x] / d x_j``.

``at="overall"``: the average over the training rows of each row's effect (average marginal effects,
statsmodels' ``get_margeff(at="overall", method="dydx")``); ``at="mean"``: the effect at the rows'
mean ``x`` (``at="mean"``). With frequency weights both averages are weighted (a weight-w row counts
w times). Standard errors by the delta method, ``J V J'``, with ``J`` the exact Jacobian of the
effects in the coefficients (closed form; statsmodels differentiates numerically) and ``V`` the
covariance of the chosen ``cov_type``; the normal distribution for p-values and intervals.

Effects per family: Bernoulli ``F'(eta) beta_j`` (logit ``p (1 - p)``, probit the normal density);
Poisson and NegativeBinomial ``exp(eta) beta_j`` (``alpha`` has no effect); Gaussian ``beta_j``;
Categorical, for every class k (the reference included), ``p_k (beta_kj - sum_m p_m beta_mj)``, rows
``(class, term)`` as statsmodels' MNLogit. Every column of the design but the intercept is treated
as continuous (statsmodels' default ``dummy=False, count=False``). A count model's offset (exposure)
enters each row's mean (``at="mean"``: the mean offset); statsmodels' ``get_margeff`` leaves it out
(it evaluates the effects at offset 0), so the two differ when there is an offset.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .distributions import Normal
from .estimates import Estimates

__all__ = ["AT", "marginal_effects", "table"]

AT = ("overall", "mean")


def _derivatives(link, eta):
    """``F'(eta)`` and ``F''(eta)`` of the inverse link ``F``."""
    from scipy import special  # imported when needed: ~0.3 s of a fresh process

    if link == "logit":
        p = special.expit(eta)
        d = p * (1.0 - p)
        return d, d * (1.0 - 2.0 * p)
    if link == "probit":
        d = Normal.pdf(eta)
        return d, -eta * d
    if link == "log":
        d = np.exp(eta)
        return d, d
    return np.ones_like(eta), np.zeros_like(eta)


def _scalar(X, off, w, beta, slopes, link):
    """Average effects ``mean(F'(eta)) beta_j`` and their Jacobian in ``beta``."""
    d1, d2 = _derivatives(link, X @ beta + off)
    a, b = w @ d1, (w * d2) @ X  # mean F'(eta); mean F''(eta) x
    jac = np.outer(beta[slopes], b)
    jac[np.arange(len(slopes)), slopes] += a
    return a * beta[slopes], jac


def _categorical(X, w, theta, slopes, others, k):
    """Average effects ``p_k (B_jk - sum_m p_m B_jm)`` for every class k and slope j (class-major),
    and their Jacobian in the contrasts ``theta`` (``B`` has a zero reference column)."""
    from scipy import special  # imported when needed: ~0.3 s of a fresh process

    n, q = X.shape
    m = len(others)
    B = np.zeros((q, k))
    B[:, others] = theta.reshape(m, q).T
    P = special.softmax(X @ B, axis=1)  # (n, K)
    D = B[None, :, :] - (P @ B.T)[:, :, None]  # (n, q, K): B_jk - bar_nj
    effect = np.einsum("n,nk,njk->jk", w, P, D)
    Pa = P[:, others]  # (n, m)
    delta = (np.arange(k)[:, None] == np.asarray(others)[None, :]).astype(float)  # (K, m)
    # d effect_jk / d theta_al = mean[p_k (1[k=a] - p_a) x_l D_jk - p_k p_a x_l D_ja + p_k 1[j=l] (1[k=a] - p_a)]
    t1 = np.einsum("n,nk,nka,nl,njk->jkal", w, P, delta[None] - Pa[:, None, :], X, D)
    t3 = -np.einsum("n,nk,na,nl,nja->jkal", w, P, Pa, X, D[:, :, others])
    pk = w @ P  # (K,)
    pka = np.einsum("n,nk,na->ka", w, P, Pa)  # (K, m)
    eye = np.eye(q)
    t24 = np.einsum("ka,jl->jkal", delta * pk[:, None] - pka, eye)
    jac = (t1 + t3 + t24)[slopes]  # (s, K, m, q)
    return effect[slopes].T.reshape(-1), np.transpose(jac, (1, 0, 2, 3)).reshape(k * len(slopes), m * q)


def table(estimate, cov, index, alpha: float, dist=None) -> pd.DataFrame:
    """The columns of ``summary()`` for estimates with covariance ``cov``."""
    dist = Normal() if dist is None else dist
    se = np.sqrt(np.maximum(np.diag(cov), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = estimate / se
    q = dist.ppf(1 - alpha / 2)
    return pd.DataFrame({"estimate": estimate, "std_err": se, "z": z, "p_value": 2 * dist.sf(np.abs(z)),
                         "ci_low": estimate - q * se, "ci_high": estimate + q * se}, index=index)


def marginal_effects(est: Estimates, cov: np.ndarray, at: str, alpha: float) -> pd.DataFrame:
    if not isinstance(at, str) or at not in AT:
        raise ValueError(f"The 'at' parameter of marginal_effects must be one of {list(AT)} ('overall': average "
                         f"marginal effects; 'mean': effects at the mean of x). Got {at!r} instead.")
    rows = est.rows
    X, q = rows.X, rows.X.shape[1]
    w = np.ones(len(X)) if est.weights is None else np.asarray(est.weights, float)
    off = np.zeros(len(X)) if rows.offset is None else np.asarray(rows.offset, float)
    if at == "mean":
        X, off, w = (np.average(X, axis=0, weights=w)[None, :], np.array([np.average(off, weights=w)]),
                     np.ones(1))
    slopes = np.arange(int(rows.intercept), q)
    if not len(slopes):
        raise ValueError("marginal_effects needs at least one column besides the intercept; this model has none.")
    categorical = rows.prob is not None
    if categorical:
        terms = list(est.index.get_level_values("term")[:q])
        k = rows.prob.shape[1]
        others = list(rows.others)
        index = pd.MultiIndex.from_tuples([(c, terms[j]) for c in range(k) for j in slopes], names=["class", "term"])
        n_coef = len(others) * q
    else:
        terms = list(est.index[:q])
        index = pd.Index([terms[j] for j in slopes], name="term")
        n_coef = q
    wn = w / w.sum()
    if categorical:
        value, jac = _categorical(X, wn, est.theta[:n_coef], slopes, others, k)
    else:
        value, jac = _scalar(X, off, wn, est.theta[:q], slopes, rows.link)
    V = cov[:n_coef, :n_coef]
    out = table(value, jac @ V @ jac.T, index, alpha)
    out.attrs.update(at=at, method="dydx", alpha=alpha)
    return out
