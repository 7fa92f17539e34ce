"""Inference for a fit of a user's own log-likelihood (``sf.fit_loglik``), all by automatic
differentiation in float64 at the estimate.

Pieces, on the unconstrained scale the fit optimized (``u``): the total log-likelihood, the
per-row scores ``s_i = d l_i / d u`` (``jax.jacfwd`` of the per-row vector, shape ``(n, p)``), the
information ``A = -d2 sum_i w_i l_i / du2`` (``jax.hessian``) and the Jacobian ``J = d theta / d u``
of the natural parameters (``models.transforms``; the identity for unconstrained ones).

Covariances of ``u`` (``w_i`` frequency weights, ``n = sum w``, ``k`` parameters):

- ``"nonrobust"``: ``A^-1``;
- ``"opg"``: ``(sum_i w_i s_i s_i')^-1``, the outer product of the gradients (BHHH);
- ``"HC0"`` (``"robust"``): ``A^-1 (sum_i w_i s_i s_i') A^-1``; ``"HC1"``: HC0 times ``n / (n - k)``;
- ``"cluster"`` with ``groups``: ``A^-1 (sum_g u_g u_g') A^-1 * G / (G - 1)``, ``u_g = sum_{i in g} w_i
  s_i`` (Cameron, Gelbach and Miller's one-way estimator with their small-sample factor, as Stata's
  maximum-likelihood commands; statsmodels multiplies by ``(n - 1) / (n - k)`` too).

The natural parameters' covariance is the delta method with the exact Jacobian, ``J V J'``; tables
use the normal distribution. ``attrs["small_sample"]`` states the factor used.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data import identification
from ..data.precision import dtype_scope
from ..engine.outcome import FitWarning
from . import hypotheses, margins
from .covariance import bread, covariance, group_codes
from .distributions import Normal
from .estimates import Estimates, refuse

__all__ = ["OWN_COV_TYPES", "Pieces", "pieces", "cov_params", "summary", "wald_test", "row_logliks"]

OWN_COV_TYPES = ("nonrobust", "opg", "HC0", "robust", "HC1", "cluster")
FACTORS = {"nonrobust": "none", "opg": "none", "HC0": "none", "HC1": "n / (n - k)", "cluster": "G / (G - 1)"}


@dataclass(frozen=True)
class Pieces:
    """``est``: the estimate on the unconstrained scale (``Estimates``: theta, info, scores, loglik);
    ``natural`` (p,) the reported estimates; ``jacobian`` (p, p) d natural / d unconstrained."""

    est: Estimates
    natural: np.ndarray
    jacobian: np.ndarray


@functools.lru_cache(maxsize=16)
def _program(model):
    import jax
    import jax.numpy as jnp

    def parts(flat, x, w):
        def rows(th):
            return model.index(model.unravel(th), x)

        def natural(th):
            return model.ravel(model.natural(model.unravel(th)))

        values = rows(flat)
        return (jnp.sum(w * values), values, jax.jacfwd(rows)(flat),
                jax.hessian(lambda th: jnp.sum(w * rows(th)))(flat), natural(flat), jax.jacfwd(natural)(flat))

    return jax.jit(parts)


def row_logliks(model, unconstrained: dict, x: np.ndarray) -> np.ndarray:
    """Each row's log-likelihood at ``unconstrained`` for the packed data ``x`` (float64)."""
    with dtype_scope("float64"):
        flat = np.asarray(model.ravel(unconstrained), np.float64)
        return np.asarray(_program(model)(flat, x, np.ones(len(x)))[1])


def pieces(result, allow_nonidentified: bool = False) -> Pieces:
    """The estimate's pieces (cached on the result); refuses a non-identified estimate, naming the
    parameters, unless ``allow_nonidentified``."""
    cache = result.__dict__.setdefault("_inference_cache", {})
    key = ("own", bool(allow_nonidentified))
    if key in cache:
        return cache[key]
    model, x = result.model, result.train[0]
    w = result.weights
    flat = np.asarray(model.ravel(result.unconstrained), np.float64)
    wj = np.ones(len(x)) if w is None else np.asarray(w, np.float64)
    with dtype_scope("float64"):
        ll, _, scores, hess, natural, jac = (np.asarray(a) for a in _program(model)(flat, np.asarray(x, np.float64), wj))
    labels = list(model.labels)
    info = -hess
    problem = refuse(identification.singular(info, labels), allow_nonidentified)
    n = float(wj.sum())
    gradient = np.max(np.abs(wj @ scores)) / n if scores.size else 0.0
    est = Estimates(pd.Index(labels, name="param"), flat, info, scores, n, float(ll), None, "loglik", "", problem,
                    gradient_norm=float(gradient), weights=w, k_null=0)
    cache[key] = out = Pieces(est, natural, jac)
    return out


def _canonical(cov_type, groups) -> str:
    names = {c.lower(): c for c in OWN_COV_TYPES}
    if not isinstance(cov_type, str) or cov_type.lower() not in names:
        extra = (" HC2 and HC3 need each row's leverage, which a general likelihood does not define."
                 if isinstance(cov_type, str) and cov_type.upper() in ("HC2", "HC3") else "")
        raise ValueError(f"The 'cov_type' parameter must be one of {list(OWN_COV_TYPES)} for a fit of your own "
                         f"log-likelihood ('robust' is 'HC0'). Got {cov_type!r} instead.{extra}")
    name = "HC0" if names[cov_type.lower()] == "robust" else names[cov_type.lower()]
    if name == "cluster" and groups is None:
        raise ValueError("cov_type='cluster' needs the 'groups' parameter: one group label per row of data, or the "
                         "name of a column of data.")
    if name != "cluster" and groups is not None:
        raise ValueError(f"The 'groups' parameter is used only with cov_type='cluster'. Got cov_type={cov_type!r}.")
    return name


def _codes(result, groups, n: int) -> np.ndarray:
    if isinstance(groups, str):
        data = result.data
        keys = list(map(str, data.columns)) if hasattr(data, "columns") else list(data)
        if groups not in keys:
            raise ValueError(f"The 'groups' parameter names the column {groups!r}, which the fit's data lacks; it "
                             f"has {keys}.")
        groups = np.asarray(data[groups])
    return group_codes(result, groups, n)


def _unconstrained_cov(p: Pieces, name: str, codes) -> tuple[np.ndarray, dict]:
    est = p.est
    if name in ("nonrobust", "HC0", "HC1"):
        return covariance(est, name)
    s, w = est.scores, (np.ones(len(est.scores)) if est.weights is None else np.asarray(est.weights, float))
    if name == "opg":
        opg = (s * w[:, None]).T @ s
        inv = np.linalg.pinv(opg, hermitian=True) if est.problem else np.linalg.inv(opg)
        return (inv + inv.T) / 2, {}
    used = np.unique(codes[w > 0])
    g = len(used)
    if g < 2:
        raise ValueError(f"cov_type='cluster' needs at least 2 groups; 'groups' gives {g}.")
    sums = np.zeros((int(codes.max()) + 1, s.shape[1]))
    np.add.at(sums, codes, s * w[:, None])
    inv = bread(est)
    cov = inv @ (sums.T @ sums * (g / (g - 1.0))) @ inv
    return (cov + cov.T) / 2, {"n_groups": g}


def cov_params(result, *, cov_type: str = "nonrobust", groups=None, allow_nonidentified: bool = False,
               _with_facts: bool = False):
    """Covariance of the natural-scale estimates (delta method), a (p, p) DataFrame."""
    name = _canonical(cov_type, groups)
    p = pieces(result, allow_nonidentified)
    codes = _codes(result, groups, len(p.est.scores)) if name == "cluster" else None
    cov_u, facts = _unconstrained_cov(p, name, codes)
    cov = p.jacobian @ cov_u @ p.jacobian.T
    table = pd.DataFrame((cov + cov.T) / 2, index=p.est.index, columns=p.est.index)
    return (table, name, facts) if _with_facts else table


def _warn_if_short(result) -> None:
    if result.status.code != "converged":
        warnings.warn(f"The fit did not converge ({result.status.code}): these standard errors are computed where it "
                      f"stopped, which is not the maximum. {result.status.message}", FitWarning, stacklevel=4)


def summary(result, *, cov_type: str = "nonrobust", alpha: float = 0.05, groups=None,
            allow_nonidentified: bool = False):
    from .inference import Summary, _check_alpha

    _check_alpha(alpha)
    _warn_if_short(result)
    cov, name, facts = cov_params(result, cov_type=cov_type, groups=groups, allow_nonidentified=allow_nonidentified,
                                  _with_facts=True)
    p = pieces(result, allow_nonidentified)
    est = p.est
    k, n = len(est.theta), est.n_obs
    table = Summary(margins.table(p.natural, cov.to_numpy(), est.index, alpha, Normal()))
    constrained = [f"{s.name}: {s.constraint}" for s in result.model.specs if s.constraint is not None]
    note = ("" if not constrained else f"Constrained parameters ({', '.join(constrained)}) were fitted unconstrained "
            f"and are reported on their natural scale (delta method, exact Jacobian).")
    if name in ("HC1", "cluster"):
        note = f"{note} Small-sample factor of the {name} covariance: {FACTORS[name]}.".strip()
    nan = float("nan")
    table.attrs.update(model="loglik", likelihood=getattr(result.model.fn, "__name__", "loglik"), n_obs=n, k=k,
                       df_resid=n - k, loglik=est.loglik, llnull=nan, llr=nan, llr_df=k, llr_pvalue=nan,
                       pseudo_r2=nan, aic=-2 * est.loglik + 2 * k, bic=-2 * est.loglik + k * math.log(n),
                       cov_type=name, small_sample=FACTORS[name], alpha=alpha, distribution="normal", note=note,
                       problem=est.problem, gradient_norm=est.gradient_norm, **facts)
    return table


def wald_test(result, restrictions, *, value=None, cov_type: str = "nonrobust", groups=None,
              allow_nonidentified: bool = False) -> pd.Series:
    """Wald test of linear restrictions on the natural-scale parameters, by label (``"age = educ"``)."""
    cov, _, _ = cov_params(result, cov_type=cov_type, groups=groups, allow_nonidentified=allow_nonidentified,
                           _with_facts=True)
    p = pieces(result, allow_nonidentified)
    R, q = hypotheses.restrictions(restrictions, hypotheses.labels(p.est.index), value)
    return hypotheses.wald(p.natural, cov.to_numpy(), R, q)
