"""Predictions with uncertainty for ``Linear`` models with a built-in likelihood:
``result.predict(x, interval=0.95)``.

Columns: ``mean`` (the response scale), ``std_err`` (of the mean, delta method), ``ci_low``,
``ci_high``: the interval for the mean, computed on the link scale (``eta +- q se(eta)``, ``se(eta)^2
= x' V x``) and transformed by the inverse link, so it stays inside the response's range (as
statsmodels' ``GLMResults.get_prediction().summary_frame()``). Gaussian (identity link) adds
``pi_low``, ``pi_high``: the interval for a new observation, ``mean +- q sqrt(se^2 + sigma^2)`` (OLS's
``obs_ci``). ``q`` is the normal quantile, or Student's t with ``n - k`` degrees of freedom for a
non-robust Gaussian fit (as OLS). Count models add the rows' offset (``log(exposure)``) to ``eta``;
NegativeBinomial's ``alpha`` does not enter the mean.

Categorical: one row per (row, class), the index ``(row, class)``; each class probability's interval
comes from its log-odds ``log(p_k / (1 - p_k))`` (delta method) through the logistic function, the
same link-scale construction for a probability that is not a single linear index. ``std_err`` is the
delta-method standard error of ``p_k`` itself (statsmodels MNLogit's ``get_prediction`` ``se``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .distributions import Normal, StudentT
from .estimates import Estimates

__all__ = ["check_level", "intervals"]


def check_level(interval) -> float:
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0 < interval < 1:
        raise ValueError(f"The 'interval' parameter of predict is the coverage of the intervals, a float in (0, 1) "
                         f"such as 0.95. Got {interval!r} instead.")
    return float(interval)


def _inverse_link(link, eta):
    from scipy import special  # imported when needed: ~0.3 s of a fresh process

    if link == "logit":
        return special.expit(eta), lambda e: special.expit(e) * special.expit(-e)
    if link == "probit":
        return special.ndtr(eta), Normal.pdf
    if link == "log":
        return np.exp(eta), np.exp
    return eta, np.ones_like


def _quad(X, V):
    """``x_i' V x_i`` for every row."""
    return np.einsum("ij,ij->i", X @ V, X)


def intervals(est: Estimates, cov: np.ndarray, X: np.ndarray, offset, level: float, t_df=None,
              index=None) -> pd.DataFrame:
    """The table for the design ``X`` (n, q) (intercept column included when the model has one)."""
    from scipy import special  # imported when needed: ~0.3 s of a fresh process

    rows = est.rows
    n, q = X.shape
    dist = StudentT(t_df) if t_df is not None else Normal()
    z = dist.ppf(0.5 + level / 2)
    index = pd.RangeIndex(n) if index is None else index
    if rows.prob is None:
        beta = est.theta[:q]
        eta = X @ beta + (0.0 if offset is None else offset)
        se_eta = np.sqrt(np.maximum(_quad(X, cov[:q, :q]), 0.0))
        F, dF = _inverse_link(rows.link, eta)
        mean = F
        lo, hi = _inverse_link(rows.link, eta - z * se_eta)[0], _inverse_link(rows.link, eta + z * se_eta)[0]
        out = pd.DataFrame({"mean": mean, "std_err": np.abs(dF(eta)) * se_eta, "ci_low": lo, "ci_high": hi},
                           index=index)
        if rows.link == "identity":
            se_obs = np.sqrt(se_eta ** 2 + est.sigma ** 2)
            out["pi_low"], out["pi_high"] = mean - z * se_obs, mean + z * se_obs
        return out
    others = list(rows.others)
    m, k = len(others), rows.prob.shape[1]
    B = np.zeros((q, k))
    B[:, others] = est.theta.reshape(m, q).T
    eta = X @ B
    P = special.softmax(eta, axis=1)
    Q = np.empty((n, m, m))  # x' V_ab x for the contrasts a, b
    for a in range(m):
        for b in range(a, m):
            Q[:, a, b] = Q[:, b, a] = np.einsum("ij,ij->i", X @ cov[a * q:(a + 1) * q, b * q:(b + 1) * q], X)
    # d p_k / d theta_a = p_k (1[k = a] - p_a) x
    C = P[:, :, None] * ((np.arange(k)[:, None] == np.asarray(others)[None, :])[None] - P[:, None, others])
    var_p = np.maximum(np.einsum("nka,nab,nkb->nk", C, Q, C), 0.0)
    se_p = np.sqrt(var_p)
    with np.errstate(divide="ignore", invalid="ignore"):
        logodds = np.log(P) - np.log1p(-P)
        se_g = se_p / (P * (1.0 - P))
    lo, hi = special.expit(logodds - z * se_g), special.expit(logodds + z * se_g)
    index = pd.MultiIndex.from_product([index, range(k)], names=[index.name or "row", "class"])
    return pd.DataFrame({"mean": P.ravel(), "std_err": se_p.ravel(), "ci_low": lo.ravel(), "ci_high": hi.ravel()},
                        index=index)
