"""Covariances of the estimates: ``cov_type`` "nonrobust", "HC0" ("robust"), "HC1", "HC2", "HC3" and
"cluster" (one-way), for every model with scores (HC2 and HC3: ``Linear`` with a built-in likelihood).

With ``A`` the information (minus the Hessian of the total log-likelihood), ``s_i`` row i's score
and ``w_i`` its frequency weight (a weight-w row counts w times; ``n = sum w``, ``k`` parameters):

nonrobust
    ``A^-1`` (Gaussian: scaled by ``SSR / (n - k)``, as OLS).
HC0
    ``A^-1 (sum_i w_i s_i s_i') A^-1``, the sandwich of statsmodels' discrete models and GLM.
HC1
    HC0 times ``n / (n - k)`` (MacKinnon and White; statsmodels' OLS ``HC1`` and
    ``sandwich_covariance.cov_white_simple(use_correction=True)``). statsmodels' discrete models and
    GLM accept ``cov_type="HC1"``, ``"HC2"``, ``"HC3"`` but return HC0 for all three; scanfit does not.
HC2, HC3
    the scores divided by ``sqrt(1 - h_i)`` and ``(1 - h_i)``, with ``h_i`` the leverage. Gaussian:
    ``h_i = x_i' (X'WX)^-1 x_i`` (OLS's ``HC2``/``HC3``). The other scalar families use the leverage of
    statsmodels' GLM (``GLMResults.get_hat_matrix_diag(observed=True)``): ``h_i = W_i x_i' (X' diag(w W)
    X)^-1 x_i`` with ``W_i`` minus the second derivative of row i's log-likelihood in its index (the
    observed GLM weight; NegativeBinomial at its estimated ``alpha``, whose score is scaled too).
    Categorical (no statsmodels counterpart): the same idea for a vector index. Row i's residual
    ``r_i`` (indicator minus probability, non-reference classes) has weight matrix ``W_i = diag(p) -
    p p'`` and ``M_i = J_i A^-1 J_i'`` (``J_i`` its index's derivative in the contrasts); HC3 uses
    ``(I - W_i M_i)^-1 r_i``, which makes the sandwich the one-step leave-one-out jackknife
    ``sum_i w_i (A - H_i)^-1 s_i s_i' (A - H_i)^-1`` (``H_i`` the row's information) exactly as
    ``1 / (1 - h_i)`` does for a scalar index; HC2 uses ``C_i (I - H_i)^-1/2 C_i^-1 r_i`` with ``C_i
    C_i' = W_i`` and ``H_i = C_i' M_i C_i`` (with two classes both are the Bernoulli logit's).
cluster
    ``A^-1 (sum_g u_g u_g') A^-1 * G / (G - 1) * (n - 1) / (n - k)`` with ``u_g = sum_{i in g} w_i s_i``
    over the ``G`` groups (statsmodels' ``cov_type="cluster"``, CRV1, ``use_correction=True``).
    ``groups`` is one label per training row, or a column name of the fit's ``data`` (a fit with
    ``formula=`` and ``data=``, or ``scanfit fit --cluster``).

Robust and clustered tables use the normal distribution, as statsmodels does by default.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..engine.outcome import FitWarning
from .estimates import Estimates

__all__ = ["COV_TYPES", "check_cov_type", "group_codes", "covariance", "bread"]

COV_TYPES = ("nonrobust", "robust", "HC0", "HC1", "HC2", "HC3", "cluster")


def check_cov_type(cov_type, groups=None) -> str:
    """The canonical name of ``cov_type`` ("robust" is HC0; case does not matter)."""
    names = {c.lower(): c for c in COV_TYPES}
    if not isinstance(cov_type, str) or cov_type.lower() not in names:
        raise ValueError(f"The 'cov_type' parameter must be one of {list(COV_TYPES)} ('robust' is 'HC0'). "
                         f"Got {cov_type!r} instead.")
    name = names[cov_type.lower()]
    name = "HC0" if name == "robust" else name
    if name == "cluster" and groups is None:
        raise ValueError("cov_type='cluster' needs the 'groups' parameter: one group label per training row, or "
                         "the name of a column of the fit's data (fit with formula= and data=).")
    if name != "cluster" and groups is not None:
        raise ValueError(f"The 'groups' parameter is used only with cov_type='cluster'. Got cov_type={cov_type!r}; "
                         f"pass cov_type='cluster' for clustered standard errors, or leave groups out.")
    return name


def group_codes(result, groups, n_rows: int) -> np.ndarray:
    """Integer codes 0..G-1 of ``groups`` for the training rows."""
    if isinstance(groups, str):
        data = getattr(result, "data", None)
        if data is None or not hasattr(data, "columns"):
            raise ValueError(f"The 'groups' parameter names the column {groups!r}, but this fit has no data frame "
                             f"(only a fit with formula= and data= keeps one): pass the group labels themselves, "
                             f"one per training row.")
        if groups not in data.columns:
            raise ValueError(f"The 'groups' parameter names the column {groups!r}, which the fit's data lacks; "
                             f"it has {list(map(str, data.columns))}.")
        groups = data[groups]
    values = pd.Series(np.asarray(groups).ravel() if not isinstance(groups, pd.Series) else groups.to_numpy())
    if np.ndim(groups) != 1 or len(values) != n_rows:
        raise ValueError(f"The 'groups' parameter must hold one label per training row ({n_rows}). "
                         f"Got shape {np.shape(groups)}.")
    codes, _ = pd.factorize(values)
    if (codes < 0).any():
        raise ValueError(f"The 'groups' parameter holds a missing value at row {int(np.argmax(codes < 0))}; "
                         f"give every training row a group.")
    return codes


def bread(est: Estimates) -> np.ndarray:
    inv = np.linalg.pinv(est.info, hermitian=True) if est.problem else np.linalg.inv(est.info)
    return (inv + inv.T) / 2


def _solve(a, b, problem):
    return np.linalg.pinv(a, hermitian=True) @ b if problem else np.linalg.solve(a, b)


def _scalar_leverage(est: Estimates) -> np.ndarray:
    rows = est.rows
    X, W = rows.X, rows.hat_weight
    w = np.ones(len(X)) if est.weights is None else est.weights
    gram = (X * (w * W)[:, None]).T @ X
    return W * np.einsum("ij,ji->i", X, _solve(gram, X.T, est.problem))


def _sqrt_inv(h: np.ndarray) -> np.ndarray:
    """``(I - h)^-1/2`` for a stack of symmetric matrices ``h`` (n, m, m)."""
    vals, vecs = np.linalg.eigh(np.eye(h.shape[-1]) - h)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (vecs / np.sqrt(vals)[:, None, :]) @ np.swapaxes(vecs, 1, 2)


def _categorical_adjusted(est: Estimates, kind: str) -> np.ndarray:
    rows = est.rows
    X, others = rows.X, list(rows.others)
    n, q = X.shape
    m = len(others)
    ainv = bread(est)
    M = np.empty((n, m, m))
    for a in range(m):
        for b in range(a, m):
            M[:, a, b] = M[:, b, a] = np.einsum("ij,ij->i", X @ ainv[a * q:(a + 1) * q, b * q:(b + 1) * q], X)
    p = rows.prob[:, others]
    W = np.einsum("ia,ab->iab", p, np.eye(m)) - p[:, :, None] * p[:, None, :]
    r = rows.onehot[:, others] - p
    try:
        C = np.linalg.cholesky(W)
    except np.linalg.LinAlgError:
        raise ValueError(f"cov_type={kind!r}: some rows have a class probability of 0 or 1 in float64, so their "
                         f"leverage is not defined; use 'HC0', 'HC1' or 'cluster'.") from None
    H = np.swapaxes(C, 1, 2) @ M @ C
    _check_leverage(np.linalg.eigvalsh(H)[:, -1], est)  # the largest leverage of the row's m directions
    if kind == "HC3":
        adj = np.linalg.solve(np.eye(m) - W @ M, r[:, :, None])[..., 0]
    else:
        adj = (C @ _sqrt_inv(H) @ np.linalg.solve(C, r[:, :, None]))[..., 0]
    return (adj[:, :, None] * X[:, None, :]).reshape(n, m * q)


def _check_leverage(h, est):
    used = h if est.weights is None else h[est.weights > 0]
    if used.size and not np.all(used < 1 - 1e-10):
        i = int(np.argmax(h if est.weights is None else np.where(est.weights > 0, h, -np.inf)))
        warnings.warn(f"Row {i} has leverage {h[i]:.6g} (at least 1: the fit passes through it), so HC2 and HC3 "
                      f"are not defined there and their standard errors come out infinite or nan; use HC0, HC1 or "
                      f"cluster.", FitWarning, stacklevel=5)


def adjusted_scores(est: Estimates, kind: str) -> np.ndarray:
    """The scores, scaled for HC2/HC3 by each row's leverage (see the module docstring)."""
    if kind not in ("HC2", "HC3"):
        return est.scores
    if est.rows is None:
        raise ValueError(f"cov_type={kind!r} needs each row's leverage, which scanfit computes for sf.Linear() with "
                         f"a built-in likelihood; use 'HC0', 'HC1' or 'cluster' for this model.")
    if est.rows.prob is not None:
        return _categorical_adjusted(est, kind)
    h = _scalar_leverage(est)
    _check_leverage(h, est)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = 1.0 / np.sqrt(1.0 - h) if kind == "HC2" else 1.0 / (1.0 - h)
    return est.scores * factor[:, None]


def covariance(est: Estimates, cov_type: str, codes: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """``(covariance (p, p), facts)`` for a canonical ``cov_type``; ``facts`` holds ``n_groups`` for
    cluster."""
    inv = bread(est)
    if cov_type == "nonrobust":
        return inv, {}
    n, k = est.n_obs, len(est.theta)
    facts = {}
    if est.scores is None:  # a streamed fit: the scores' outer products were summed over the chunks
        meat = est.meat * (n / (n - k) if cov_type == "HC1" else 1.0)
        cov = inv @ meat @ inv
        return (cov + cov.T) / 2, facts
    s = adjusted_scores(est, cov_type)
    w = np.ones(len(s)) if est.weights is None else est.weights
    if cov_type == "cluster":
        from scipy import sparse

        if len(codes) != len(s):
            raise ValueError(f"The 'groups' parameter must hold one label per training row ({len(s)}). "
                             f"Got {len(codes)}.")
        used = np.unique(codes[w > 0])  # a group whose rows all weigh 0 is not in the data
        g = len(used)
        if g < 2:
            raise ValueError(f"cov_type='cluster' needs at least 2 groups; 'groups' gives {g}.")
        onehot = sparse.csr_matrix((w, (codes, np.arange(len(s)))), shape=(int(codes.max()) + 1, len(s)))
        u = onehot @ s
        meat = u.T @ u * (g / (g - 1.0)) * ((n - 1.0) / (n - k))
        facts["n_groups"] = g
    else:
        meat = (s * w[:, None]).T @ s
        if cov_type == "HC1":
            meat = meat * (n / (n - k))
    cov = inv @ meat @ inv
    return (cov + cov.T) / 2, facts
