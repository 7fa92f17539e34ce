"""Statistical inference for a fit: standard errors, z statistics, p-values, confidence intervals,
log-likelihood, AIC and BIC, computed in float64 from the fit's training data.

Covariance
  ``cov_type="nonrobust"`` (default): the inverse observed information, ``(-H)^-1`` with ``H`` the
  Hessian of the total log-likelihood at the estimate. ``cov_type="robust"`` (alias ``"HC0"``): the
  sandwich ``(-H)^-1 (S'S) (-H)^-1`` with ``S`` the per-observation scores.
Gaussian
  as statsmodels OLS: ``sigma = sqrt(SSR / (n - k))`` scales the covariance, the non-robust
  p-values and intervals use Student's t with ``n - k`` degrees of freedom (the ``z`` column then
  holds the t statistic; ``attrs["distribution"]`` says which), the robust ones the normal. The
  log-likelihood uses the maximum-likelihood sigma ``sqrt(SSR / n)``; AIC and BIC count the k
  coefficients, not sigma (statsmodels' convention).
Bernoulli and Categorical
  normal distribution. ``Categorical`` with ``Linear`` reports contrasts against a reference class
  (``reference=0``, as statsmodels ``MNLogit``): rows ``(k, term)`` hold ``beta_k - beta_reference``
  for every other class k. The K raw coefficient sets are not identified (softmax does not change
  when one vector is added to all of them); the contrasts are.
Estimates
  are ``result.params``, exactly: ``summary``, ``predict``, ``conf_int`` and ``save`` describe one set
  of parameters. For ``Linear`` models the summary measures, in float64, how far they are from the
  maximum (the Newton decrement, and the gradient in standardized units, ``attrs["gradient_norm"]``);
  when the fit stopped short (a first-order method, float32, too few steps) it warns, says how far,
  and points to ``result.refine()``, which returns a new result at the maximum.
Identification (:mod:`scanfit.data.identification`)
  collinear columns, separated classes, singular Hessians and networks raise
  :class:`NotIdentifiedError` with the reason, unless ``allow_nonidentified=True``, which computes
  the numbers anyway (pseudo-inverse) and warns.

>>> import scanfit as sf
>>> d = sf.datasets.linear(n_train=200, seed=0)
>>> r = sf.fit(sf.Linear(), sf.Gaussian(), d.train.x, d.train.y, optimizer="newton", dtype="float64", steps=20)
>>> round(float(r.summary().loc["x", "estimate"]), 1)
2.0
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit, log_expit, logsumexp

from ..data import identification
from ..data.identification import NotIdentifiedError
from ..data.precision import dtype_scope
from ..engine.outcome import FitWarning
from ..likelihoods.glm import glm_family
from ..models.core import MLP, forward, layout

__all__ = ["Estimates", "estimates", "cov_params", "summary", "summary_text", "NotIdentifiedError", "COV_TYPES"]

COV_TYPES = ("nonrobust", "robust", "HC0")
NEAR_MAXIMUM = 1e-10  # half the squared Newton decrement, relative: below it the estimate is the maximum


@dataclass(frozen=True)
class Estimates:
    """The pieces every table is made of: ``theta`` (p,), ``info`` (minus the Hessian of the total
    log-likelihood, (p, p)), ``scores`` (n, p), and model-level figures."""

    index: pd.Index
    theta: np.ndarray
    info: np.ndarray
    scores: np.ndarray
    n_obs: int
    loglik: float
    sigma: float | None
    family: str
    note: str = ""
    problem: str = ""  # why the estimate is not identified (only with allow_nonidentified=True)
    gradient_norm: float = float("nan")  # the largest gradient component in standardized units (Linear)


# ----------------------------------------------------------------------------- Linear, closed form
def _glm_parts(family, X, y, theta, others):
    """(total log-likelihood, scores (n, p), information (p, p)) of a GLM at ``theta``."""
    n, q = X.shape
    if family == "gaussian":
        e = y - X @ theta
        ssr = float(e @ e)
        s2 = ssr / max(n - q, 1)
        return -0.5 * n * (math.log(2 * math.pi * ssr / n) + 1), X * (e / s2)[:, None], X.T @ X / s2
    if family == "bernoulli":
        eta = X @ theta
        p = expit(eta)
        ll = float(np.sum(np.where(y > 0, log_expit(eta), log_expit(-eta))))
        return ll, X * (y - p)[:, None], (X * (p * (1 - p))[:, None]).T @ X
    k1 = len(others)
    full = np.zeros((n, k1 + 1))
    full[:, others] = X @ theta.reshape(k1, q).T
    logp = full - logsumexp(full, axis=1, keepdims=True)
    ll = float(np.sum(logp[np.arange(n), y]))
    prob = np.exp(logp)
    resid = (y[:, None] == np.asarray(others)[None, :]) - prob[:, others]
    scores = (resid[:, :, None] * X[:, None, :]).reshape(n, k1 * q)
    info = np.empty((k1 * q, k1 * q))
    for i, a in enumerate(others):
        for j, b in enumerate(others[i:], start=i):
            w = prob[:, a] * (float(a == b) - prob[:, b])
            info[i * q:(i + 1) * q, j * q:(j + 1) * q] = block = (X * w[:, None]).T @ X
            info[j * q:(j + 1) * q, i * q:(i + 1) * q] = block.T
    return ll, scores, info


def _weakest_weight(info, X):
    """The smallest lambda with ``info v = lambda (I kron X'X) v``: the observations' weight p(1 - p)
    (at most 1/4) in the least informed direction. Separation sends it to zero; a slow check (a
    linear program) runs only then."""
    gram = X.T @ X
    k1 = info.shape[0] // gram.shape[0]
    try:
        chol = np.linalg.cholesky(np.kron(np.eye(k1), gram))
    except np.linalg.LinAlgError:
        return 0.0
    inv = np.linalg.inv(chol)
    return float(np.linalg.eigvalsh(inv @ info @ inv.T)[0])


def _distance(family, X, y, theta, others, ll, scores, info) -> tuple[float, float]:
    """(half the squared Newton decrement per observation, relative to max(1, |mean loglik|); the
    largest gradient component in standardized units): how far ``theta`` is from the maximum."""
    n = X.shape[0]
    g = scores.sum(axis=0) / n
    try:
        decrement = float(g @ np.linalg.solve(info / n, g))
    except np.linalg.LinAlgError:
        decrement = float("inf")
    spread = np.std(X, axis=0)
    spread = np.where(spread > 0, spread, 1.0)
    if family == "categorical":
        spread = np.tile(spread, len(others))
    return 0.5 * abs(decrement) / max(1.0, abs(ll) / n), float(np.max(np.abs(g * spread)))


def _linear(result, reference, allow):
    xa, ya = result.train
    lik, family = result.likelihood, glm_family(result.model, result.likelihood)
    _, y = lik.prepare(ya)
    n, d = xa.shape
    names = ("intercept",) + tuple(result.feature_names)
    X = np.column_stack([np.ones(n), xa])
    b0, b1 = np.asarray(result.params["beta0"], float), np.asarray(result.params["beta1"], float)
    others = []
    if family == "categorical":
        k = lik.n_classes
        if isinstance(reference, bool) or not isinstance(reference, (int, np.integer)) or not 0 <= reference < k:
            raise ValueError(f"The 'reference' parameter of summary must be a class label in 0..{k - 1}. "
                             f"Got {reference!r} instead.")
        others = [c for c in range(k) if c != reference]
        coef = np.vstack([b0[None, :], b1])  # (d + 1, k)
        theta = np.concatenate([coef[:, c] - coef[:, reference] for c in others])
        index = pd.MultiIndex.from_tuples([(c, t) for c in others for t in names], names=["class", "term"])
        y = y.astype(int)
    else:
        theta = np.concatenate([b0.reshape(1), b1])
        index = pd.Index(names, name="term")
        if family == "bernoulli":
            y = (y > 0).astype(float)
    problem = identification.collinear(xa, tuple(result.feature_names))
    note = ""
    ll, scores, info = _glm_parts(family, X, y, theta, others)
    gap, gradient = _distance(family, X, y, theta, others, ll, scores, info) if not problem else (np.nan, np.nan)
    short = not problem and not gap <= NEAR_MAXIMUM
    if short:
        note = (f"result.params is not the maximum-likelihood estimate: the Newton decrement predicts a gain of "
                f"{gap:.1e} (relative) and the largest gradient component is {gradient:.1e} in standardized units "
                f"({result.status.code} after {result.status.steps} steps, {result.config.dtype}); these standard "
                f"errors are approximate. result.refine() returns a new result at the maximum.")
        warnings.warn(note, FitWarning, stacklevel=5)
    if not problem and family != "gaussian" and (short or _weakest_weight(info, X) < 1e-6):
        # separation drives some weights p(1 - p) to zero; whether the MLE exists does not depend on the reference
        problem = identification.separation(xa, y, tuple(result.feature_names), max(len(others) + 1, 2))
    labels = [" ".join(map(str, t)) if isinstance(t, tuple) else t for t in index]
    problem = problem or identification.singular(info, labels)
    sigma = None
    if family == "gaussian":
        e = y - X @ theta
        sigma = float(np.sqrt(e @ e / max(n - len(theta), 1)))
    return Estimates(index, theta, info, scores, n, ll, sigma, family, note, _refuse(problem, allow), gradient)


def _refuse(problem, allow):
    if problem and not allow:
        raise NotIdentifiedError(problem + " (To compute the numbers anyway, pass allow_nonidentified=True.)")
    if problem:
        warnings.warn(f"Standard errors of a non-identified estimate (pseudo-inverse): {problem}", FitWarning,
                      stacklevel=6)
    return problem or ""


# ----------------------------------------------------------------------------- any model, with JAX
def _param_names(params):
    import jax

    names = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        base = "".join(str(getattr(k, "key", getattr(k, "idx", k))) if i == 0 else f".{getattr(k, 'key', getattr(k, 'idx', k))}"
                       for i, k in enumerate(path)) or "param"
        shape = np.shape(leaf)
        names += [base] if shape == () else [f"{base}[{','.join(map(str, ix))}]" for ix in np.ndindex(shape)]
    return names


def _generic(result, allow):
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree


    if isinstance(result.model, MLP) and not allow:
        raise NotIdentifiedError(
            "Standard errors of a network's weights are not meaningful by default: hidden units can be permuted "
            "or switched off without changing the fit, so the weights are not identified and the normal "
            "approximation behind standard errors does not hold. Pass allow_nonidentified=True to compute "
            "them anyway from the local Hessian, or use sf.Linear() for coefficients with standard errors.")
    if result.config.dtype == "float32":
        warnings.warn("The fit ran in float32, so its estimate is approximate and so are these standard errors; "
                      "refit with dtype='float64' (for example optimizer='newton', init_params=result.params).",
                      FitWarning, stacklevel=5)
    xa, ya = result.train
    lik = result.likelihood
    _, y = lik.prepare(ya)
    with jax.enable_x64(True):
        theta, unravel = ravel_pytree(jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), result.params))
        xl = layout(result.model, xa, "float64")
        yj = jnp.asarray(y if y.dtype.kind != "f" else y.astype(np.float64))
        n, sigma, ssr = len(y), None, 0.0

        def per_obs(th, sigma):
            index = forward(result.model, unravel(th), xl)
            return lik.loglik(index, yj, sigma=sigma) if lik.name == "gaussian" else lik.loglik(index, yj)

        @jax.jit  # one compilation for all the derivatives
        def parts(th, sigma):
            return (jnp.sum(per_obs(th, sigma)), jax.jacfwd(per_obs)(th, sigma),
                    jax.hessian(lambda t: jnp.sum(per_obs(t, sigma)))(th))

        if lik.name == "gaussian":
            index = jax.jit(lambda th: forward(result.model, unravel(th), xl))(theta)
            ssr = float(jnp.sum((yj - index) ** 2))
            sigma = math.sqrt(ssr / max(n - theta.size, 1))
        ll, scores, hess = jax.device_get(parts(theta, 1.0 if sigma is None else sigma))
        ll = -0.5 * n * (math.log(2 * math.pi * ssr / n) + 1) if sigma is not None else float(ll)
        theta, scores, info = np.asarray(theta), np.asarray(scores), -np.asarray(hess)
    names = _param_names(result.params)
    problem = _refuse(identification.singular(info, names), allow)
    return Estimates(pd.Index(names, name="param"), theta, info, scores, n, ll, sigma, lik.name, "", problem)


# ----------------------------------------------------------------------------- public functions
def estimates(result, *, reference: int = 0, allow_nonidentified: bool = False) -> Estimates:
    """The estimate and its information for a :class:`~scanfit.FitResult` (cached on the result)."""
    if result.train is None:
        raise ValueError("This result carries no training data (result.train is None); inference needs it.")
    key = (reference, bool(allow_nonidentified))
    cache = result.__dict__.setdefault("_inference_cache", {})
    if key not in cache:
        if glm_family(result.model, result.likelihood) is not None:
            cache[key] = _linear(result, reference, allow_nonidentified)
        else:
            cache[key] = _generic(result, allow_nonidentified)
    return cache[key]


def _cov(est: Estimates, cov_type: str) -> np.ndarray:
    if cov_type not in COV_TYPES:
        raise ValueError(f"The 'cov_type' parameter must be 'nonrobust' or 'robust' (alias 'HC0'). Got {cov_type!r} instead.")
    inv = np.linalg.pinv(est.info, hermitian=True) if est.problem else np.linalg.inv(est.info)
    inv = (inv + inv.T) / 2
    if cov_type == "nonrobust":
        return inv
    return inv @ (est.scores.T @ est.scores) @ inv


def cov_params(result, *, cov_type: str = "nonrobust", **kw) -> pd.DataFrame:
    """Covariance of the estimates, a (p, p) DataFrame labelled like ``summary()``'s rows."""
    est = estimates(result, **kw)
    return pd.DataFrame(_cov(est, cov_type), index=est.index, columns=est.index)


class Summary(pd.DataFrame):
    """A DataFrame whose ``print`` shows the statsmodels-style text (``summary_text``)."""

    @property
    def _constructor(self):
        return pd.DataFrame

    def __str__(self):
        return summary_text(self)

    __repr__ = __str__


def summary(result, *, cov_type: str = "nonrobust", alpha: float = 0.05, **kw) -> Summary:
    """One row per coefficient: estimate, std_err, z, p_value, ci_low, ci_high; model-level figures
    (n_obs, loglik, aic, bic, sigma for Gaussian, ...) in ``attrs``."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(f"The 'alpha' parameter must be a float in (0, 1), e.g. 0.05 for 95% intervals. Got {alpha!r} instead.")
    est = estimates(result, **kw)
    cov = _cov(est, cov_type)
    se = np.sqrt(np.maximum(np.diag(cov), 0))
    k, n = len(est.theta), est.n_obs
    df_resid = n - k
    dist = stats.t(df_resid) if est.family == "gaussian" and cov_type == "nonrobust" else stats.norm()
    with np.errstate(divide="ignore", invalid="ignore"):
        z = est.theta / se
    q = dist.ppf(1 - alpha / 2)
    table = Summary({"estimate": est.theta, "std_err": se, "z": z, "p_value": 2 * dist.sf(np.abs(z)),
                     "ci_low": est.theta - q * se, "ci_high": est.theta + q * se}, index=est.index)
    table.attrs.update(model=result.model.name, likelihood=result.likelihood.name, n_obs=n, k=k, df_resid=df_resid,
                       loglik=est.loglik, aic=-2 * est.loglik + 2 * k, bic=-2 * est.loglik + k * math.log(n),
                       cov_type="robust (HC0)" if cov_type != "nonrobust" else "nonrobust", alpha=alpha,
                       distribution=f"t({df_resid})" if dist.dist.name == "t" else "normal",
                       note=est.note, problem=est.problem, gradient_norm=est.gradient_norm)
    if est.sigma is not None:
        table.attrs["sigma"] = est.sigma
    if est.family == "categorical":
        table.attrs["reference"] = kw.get("reference", 0)
    return table


def summary_text(table: pd.DataFrame) -> str:
    """The statsmodels-style text of a ``summary()`` table."""
    a = table.attrs
    width = 78
    stat = "t" if a["distribution"].startswith("t") else "z"
    left = [("likelihood", a["likelihood"]), ("model", a["model"]), ("observations", a["n_obs"]),
            ("coefficients", a["k"]), ("covariance", a["cov_type"])]
    right = [("log-likelihood", f"{a['loglik']:.6g}"), ("AIC", f"{a['aic']:.6g}"), ("BIC", f"{a['bic']:.6g}"),
             ("distribution", a["distribution"])]
    if "sigma" in a:
        right.append(("sigma", f"{a['sigma']:.6g}"))
    if "reference" in a:
        right.append(("reference class", a["reference"]))
    lines = ["scanfit results".center(width), "=" * width]
    for i in range(max(len(left), len(right))):
        lt = f"{left[i][0] + ':':<16}{left[i][1]!s:>20}" if i < len(left) else " " * 36
        rt = f"{right[i][0] + ':':<18}{right[i][1]!s:>20}" if i < len(right) else ""
        lines.append(f"{lt}    {rt}".rstrip())
    lines.append("=" * width)
    lo, hi = a["alpha"] / 2, 1 - a["alpha"] / 2
    shown = pd.DataFrame(table).rename(columns={"z": stat, "p_value": f"P>|{stat}|", "ci_low": f"[{lo:g}",
                                                "ci_high": f"{hi:g}]"})
    lines.append(shown.to_string(float_format=lambda v: f"{v:.4g}"))
    lines.append("=" * width)
    for key in ("note", "problem"):
        if a.get(key):
            lines.append(f"{'Note' if key == 'note' else 'Not identified'}: {a[key]}")
    return "\n".join(lines)
