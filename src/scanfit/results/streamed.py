"""Inference for a streamed fit (``sf.Parquet``): from the pieces its final pass summed over the data.
A saved in-memory fit keeps the same pieces (:func:`pieces_of`), so a loaded model gives its summary too.

A streamed fit keeps no rows. Its last pass, at ``result.params``, summed the information, the
scores' outer products and the gradient (``result.inference``, on the user's scale, in
``summary()``'s order); the table follows :mod:`scanfit.results.linear` with these sums in place of
the per-row arrays: nonrobust, HC0 and HC1 covariances (leverages and clusters need the rows).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from ..data import identification
from ..engine.outcome import FitWarning
from .estimates import Estimates, refuse
from .linear import NEAR_MAXIMUM, _coefficients

__all__ = ["streamed_estimates", "pieces_of"]


def streamed_estimates(result, reference, allow) -> Estimates:
    pieces, lik = result.inference, result.likelihood
    family = pieces["family"] or "extra"
    if family == "categorical" and reference != 0:
        raise ValueError(f"A streamed Categorical fit reports contrasts against class 0; reference={reference!r} "
                         f"needs the rows. Use reference=0.")
    intercept = getattr(result.model, "intercept", True)
    names = ("intercept",) * intercept + tuple(result.feature_names)
    theta, index, others = _coefficients(result, lik, family, names, reference)
    info, meat, g = (np.asarray(pieces[k], np.float64) for k in ("info", "meat", "gradient"))
    if info.shape != (len(theta), len(theta)) or meat.shape != info.shape or g.shape != theta.shape:
        raise ValueError(f"This streamed fit's information is {info.shape[0]} x {info.shape[-1]}, but the model has "
                         f"{len(theta)} coefficients; refit it.")
    total = float(pieces["n_obs"])
    ll, sigma = float(pieces["value"]), None
    if family == "gaussian":  # the loop's objective is -SSR: OLS's information and scores at sigma^2
        ssr = -ll
        if not (ssr > 0 and total > len(theta)):
            raise ValueError(f"This streamed Gaussian fit has {total:g} observations (by weight) for {len(theta)} "
                             f"coefficients and a residual sum of squares of {ssr:.3g}: the residual variance, and so "
                             f"the standard errors, do not exist. Fit more rows than coefficients (y not an exact "
                             f"linear function of the features).")
        s2 = ssr / max(total - len(theta), 1)
        info, meat, g = info / (2 * s2), meat / (4 * s2 * s2), g / (2 * s2)
        ll = -0.5 * total * (math.log(2 * math.pi * ssr / total) + 1)
        sigma = math.sqrt(s2)
    try:
        gap = 0.5 * float(g @ np.linalg.solve(info, g)) / total / max(1.0, abs(ll) / total)
    except np.linalg.LinAlgError:
        gap = float("nan")  # a singular information: the identification check below names the columns
    note = ""
    if result.status.code != "separation" and np.isfinite(gap) and abs(gap) > NEAR_MAXIMUM:  # (not finite: singular)
        again = ("fit again with more steps" if result.config.optimizer == "newton"
                 else "fit with optimizer='newton' for the maximum")
        note = (f"result.params is not the maximum-likelihood estimate: the Newton decrement predicts a gain of "
                f"{gap:.1e} (relative) ({result.status.code} after {result.status.steps} steps); these standard "
                f"errors are approximate; {again}.")
        warnings.warn(note, FitWarning, stacklevel=6)
    if lik.extra_params:  # report alpha = exp(log_alpha): the last coordinate, by the delta method
        alpha = math.exp(theta[-1])
        jinv = np.ones(len(theta))
        jinv[-1] = 1.0 / alpha
        theta = theta.copy()
        theta[-1] = alpha
        info, meat = info * np.outer(jinv, jinv), meat * np.outer(jinv, jinv)
        g = g * jinv
        index = index[:-1].append(pd.Index(["alpha"]))
    labels = [" ".join(map(str, t)) if isinstance(t, tuple) else t for t in index]
    separated = result.status.message if result.status.code == "separation" else None
    problem = refuse(separated or identification.singular(info, labels), allow)
    k_null = (lik.n_classes - 1) if family == "categorical" else 1 + len(lik.extra_params)
    return Estimates(index, theta, info, None, total, ll, sigma, lik.name, note, problem,
                     float(np.max(np.abs(g))) / total if len(g) else float("nan"), None, None, k_null, meat)


def pieces_of(est: Estimates, family: str, llnull: float) -> dict:
    """The pieces :func:`streamed_estimates` reads, from an in-memory fit's estimates (``reference=0``): the
    inverse of its Gaussian scaling and of the delta method to ``alpha``, so that a saved fit, loaded without
    its rows, reports the same nonrobust, HC0 and HC1 tables."""
    w = np.ones(len(est.scores)) if est.weights is None else np.asarray(est.weights, np.float64)
    info = np.asarray(est.info, np.float64)
    meat = (est.scores * w[:, None]).T @ est.scores
    g = est.scores.T @ w
    value = float(est.loglik)
    if family == "gaussian":  # back to the loop's objective, -SSR, and its derivatives
        s2 = est.sigma ** 2
        value = -s2 * max(est.n_obs - len(est.theta), 1)
        info, meat, g = info * (2 * s2), meat * (4 * s2 * s2), g * (2 * s2)
    if est.index[-1] == "alpha":  # NegativeBinomial: the last coordinate back to log_alpha
        j = np.ones(len(est.theta))
        j[-1] = est.theta[-1]  # d alpha / d log_alpha
        info, meat, g = info * np.outer(j, j), meat * np.outer(j, j), g * j
    return {"info": (info + info.T) / 2, "meat": (meat + meat.T) / 2, "gradient": g, "n_obs": float(est.n_obs),
            "value": value, "llnull": float(llnull), "family": None if family == "extra" else family}
