"""Statistical inference for a fit: standard errors, z statistics, p-values, confidence intervals,
log-likelihood, AIC and BIC, computed in float64 from the fit's training data.

Covariance (:mod:`scanfit.results.covariance`)
  ``cov_type="nonrobust"`` (default): the inverse observed information, ``(-H)^-1`` with ``H`` the
  Hessian of the total log-likelihood at the estimate. ``"HC0"`` (alias ``"robust"``), ``"HC1"``,
  ``"HC2"``, ``"HC3"``: sandwiches ``(-H)^-1 (S'S) (-H)^-1`` with ``S`` the per-observation scores
  (small-sample factor, leverages); ``"cluster"`` with ``groups=``: one-way clustered (CRV1).
Model tests (:mod:`scanfit.results.hypotheses`)
  ``attrs`` hold ``llnull`` (the intercept-only model), ``llr``, ``llr_df``, ``llr_pvalue`` (the LR
  test against it), ``pseudo_r2`` (McFadden), ``aic``, ``bic``; ``wald_test`` and ``lr_test`` test
  linear restrictions and nested fits. Marginal effects: :mod:`scanfit.results.margins`; prediction
  intervals: :mod:`scanfit.results.prediction`.
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

import functools
import math
import warnings

import numpy as np
import pandas as pd

from ..data import identification
from ..data.identification import NotIdentifiedError
from ..engine.outcome import FitWarning
from ..likelihoods.glm import glm_family, has_mle
from ..models.core import MLP, forward
from . import hypotheses, margins, prediction
from .covariance import COV_TYPES, check_cov_type, covariance, group_codes
from .distributions import Normal, StudentT
from .estimates import Estimates, refuse
from .linear import NEAR_MAXIMUM, linear_estimates
from .streamed import pieces_of, streamed_estimates

__all__ = ["Estimates", "estimates", "cov_params", "summary", "summary_text", "NotIdentifiedError", "COV_TYPES",
           "NEAR_MAXIMUM", "wald_test", "lr_test", "marginal_effects", "predict_interval"]


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


@functools.lru_cache(maxsize=32)
def _generic_program(model, lik, treedef, shapes: tuple):
    """One compiled program per model, likelihood and parameter structure (and, through jit, data
    shape) for :func:`_generic`'s numbers: the weighted log-likelihood, per-row scores and Hessian in
    the flat parameters (and for Gaussian the residual sum of squares and sigma, which the scores and
    Hessian use), instead of a new program per summary and a small one per eager operation."""
    import jax
    import jax.numpy as jnp

    sizes = [math.prod(sh) for sh in shapes]
    cuts = list(np.cumsum(sizes)[:-1])

    def unravel(th):
        pieces = jnp.split(th, cuts) if cuts else [th]
        return jax.tree_util.tree_unflatten(treedef, [p.reshape(sh) for p, sh in zip(pieces, shapes)])

    def parts(th, xl, yj, wj, off):
        def index_of(t):
            return forward(model, unravel(t), xl) + off

        def per_obs(t, sigma):
            extra = {k: unravel(t)[k] for k in lik.extra_params}
            return (lik.loglik(index_of(t), yj, sigma=sigma) if lik.name == "gaussian"
                    else lik.loglik(index_of(t), yj, **extra))

        ssr = jnp.sum(wj * (yj - index_of(th)) ** 2) if lik.name == "gaussian" else jnp.zeros(())
        sigma = jnp.sqrt(ssr / jnp.maximum(jnp.sum(wj) - th.size, 1.0)) if lik.name == "gaussian" else 1.0
        return (jnp.sum(wj * per_obs(th, sigma)), jax.jacfwd(per_obs)(th, sigma),
                jax.hessian(lambda t: jnp.sum(wj * per_obs(t, sigma)))(th), ssr, sigma)

    return jax.jit(parts)


def _generic(result, allow):
    import jax

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
    w, offset = getattr(result, "weights", None), getattr(result, "offset", None)
    leaves, treedef = jax.tree_util.tree_flatten(result.params)
    leaves = [np.asarray(a, np.float64) for a in leaves]
    theta = np.concatenate([a.ravel() for a in leaves]) if leaves else np.zeros(0)  # ravel_pytree's order
    n = float(np.sum(w)) if w is not None else len(y)
    with jax.enable_x64(True):  # NumPy in: only the one program compiles (jnp.asarray compiles per shape)
        x = np.asarray(xa, np.float64)
        xl = np.ascontiguousarray(result.model.columns_of(x)) if result.model.columns else x
        yj = np.asarray(y if y.dtype.kind != "f" else y.astype(np.float64))
        wj = np.ones(len(y)) if w is None else np.asarray(w, np.float64)
        off = np.zeros(len(y)) if offset is None else np.asarray(offset, np.float64)
        program = _generic_program(result.model, lik, treedef, tuple(a.shape for a in leaves))
        ll, scores, hess, ssr, sigma = jax.device_get(program(theta, xl, yj, wj, off))
    sigma = None
    if lik.name == "gaussian":
        sigma = math.sqrt(float(ssr) / max(n - theta.size, 1))
        ll = -0.5 * n * (math.log(2 * math.pi * float(ssr) / n) + 1)
    scores, info = np.asarray(scores), -np.asarray(hess)
    names = _param_names(result.params)
    problem = refuse(identification.singular(info, names), allow)
    k_null = (lik.n_classes - 1 if lik.name == "categorical" else 1) + len(lik.extra_params)
    return Estimates(pd.Index(names, name="param"), theta, info, scores, n, float(ll), sigma, lik.name, "", problem,
                     weights=w, k_null=k_null)


# ----------------------------------------------------------------------------- public functions
def estimates(result, *, reference: int = 0, allow_nonidentified: bool = False) -> Estimates:
    """The estimate and its information for a :class:`~scanfit.FitResult` (cached on the result)."""
    own = getattr(result, "own_estimates", None)
    if own is not None:  # a fit of the user's own log-likelihood (results.own): its pieces by autodiff
        return own(allow_nonidentified)
    if getattr(result, "inference", None) is not None and result.train is None:
        if getattr(result.config, "penalty", None) is None:
            key = ("streamed", reference, bool(allow_nonidentified))
            cache = result.__dict__.setdefault("_inference_cache", {})
            if key not in cache:
                cache[key] = streamed_estimates(result, reference, allow_nonidentified)
            return cache[key]
    if result.train is None:
        raise ValueError("This result keeps no training rows (a fit with batch_size/epochs on sf.Parquet, or a "
                         "model loaded from disk), and inference needs them or a final pass over them. For standard "
                         "errors of the same model, fit it exactly: sf.fit(model, likelihood, source, "
                         "optimizer='newton', init_params=result.params) (streamed on sf.Parquet).")
    if getattr(result.config, "penalty", None) is not None:
        raise ValueError(f"This fit is penalized ({result.config.penalty}): the penalty shrinks the estimates, so "
                         f"classical standard errors, tests and intervals do not apply (statsmodels refuses them "
                         f"too). result.params holds the penalized estimates; for inference fit without penalty=, "
                         f"or bootstrap the penalized fit.")
    key = (reference, bool(allow_nonidentified))
    cache = result.__dict__.setdefault("_inference_cache", {})
    if key not in cache:
        if has_mle(result.model, result.likelihood):
            cache[key] = linear_estimates(result, reference, allow_nonidentified)
        else:
            cache[key] = _generic(result, allow_nonidentified)
    return cache[key]


def saved_pieces(result) -> dict | None:
    """What a saved fit keeps of its inference (the information, the scores' outer products, the gradient,
    as a streamed fit's final pass sums them), so that the loaded model gives ``summary()`` (nonrobust, HC0,
    HC1) without its rows; None where there is no such table (networks, penalized fits, no rows, an estimate
    that is not identified)."""
    if (result.train is None or getattr(result.config, "penalty", None) is not None
            or not has_mle(result.model, result.likelihood)):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = estimates(result)
            llnull = _llnull(result, est)
    except (ValueError, NotIdentifiedError, np.linalg.LinAlgError):
        return None
    if est.problem or est.scores is None:
        return None
    return pieces_of(est, glm_family(result.model, result.likelihood) or "extra", llnull)


def _cov(result, est: Estimates, cov_type: str, groups=None) -> tuple[np.ndarray, str, dict]:
    """(covariance, canonical cov_type, facts such as n_groups)."""
    name = check_cov_type(cov_type, groups)
    if est.scores is None and name not in ("nonrobust", "HC0", "HC1"):
        raise ValueError(f"cov_type={cov_type!r} needs each training row (leverages or group labels), which a "
                         f"streamed fit (sf.Parquet) and a model loaded from disk do not keep; they give "
                         f"'nonrobust', 'HC0' ('robust') and 'HC1'.")
    codes = group_codes(result, groups, len(est.scores)) if name == "cluster" else None
    cov, facts = covariance(est, name, codes)
    return cov, name, facts


def cov_params(result, *, cov_type: str = "nonrobust", groups=None, **kw) -> pd.DataFrame:
    """Covariance of the estimates, a (p, p) DataFrame labelled like ``summary()``'s rows."""
    est = estimates(result, **kw)
    return pd.DataFrame(_cov(result, est, cov_type, groups)[0], index=est.index, columns=est.index)


def _t_df(est, cov_type):
    """Student's t degrees of freedom for a non-robust Gaussian table (as OLS), else None (normal)."""
    return est.n_obs - len(est.theta) if est.family == "gaussian" and cov_type == "nonrobust" else None


def _llnull(result, est):
    cache = result.__dict__.setdefault("_inference_cache", {})
    if "llnull" not in cache:
        cache["llnull"] = hypotheses.null_loglik(result, est)
    return cache["llnull"]


def _check_alpha(alpha):
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(f"The 'alpha' parameter must be a float in (0, 1), e.g. 0.05 for 95% intervals. Got {alpha!r} instead.")


def _linear_only(est, what):
    if est.rows is None:
        raise ValueError(f"{what} needs sf.Linear() with a built-in likelihood (Gaussian, Bernoulli, Categorical, "
                         f"Poisson, NegativeBinomial); this model is not one.")


def wald_test(result, restrictions, *, value=None, cov_type: str = "nonrobust", groups=None, **kw) -> pd.Series:
    """Wald test of linear restrictions (see :mod:`scanfit.results.hypotheses` for the syntax): a
    Series with ``statistic``, ``df``, ``p_value`` (chi-squared); for a non-robust Gaussian fit, whose
    summary uses Student's t, the F test (``statistic`` = W / df, ``df_denom`` = n - k), as statsmodels' OLS."""
    est = estimates(result, **kw)
    cov, name, _ = _cov(result, est, cov_type, groups)
    R, q = hypotheses.restrictions(restrictions, hypotheses.labels(est.index), value)
    return hypotheses.wald(est.theta, cov, R, q, _t_df(est, name))


def lr_test(restricted, full) -> pd.Series:
    """Likelihood-ratio test of a restricted fit against a full fit that nests it: a Series with
    ``statistic`` (2 (loglik_full - loglik_restricted)), ``df`` (the difference in parameters) and
    ``p_value`` (chi-squared)."""
    for name, r in (("restricted", restricted), ("full", full)):
        if not hasattr(r, "train") or not hasattr(r, "likelihood"):
            raise TypeError(f"lr_test(restricted, full) takes two fit results; '{name}' is a {type(r).__name__}.")
    return hypotheses.lr(estimates(restricted), estimates(full))


def marginal_effects(result, *, at: str = "overall", cov_type: str = "nonrobust", groups=None, alpha: float = 0.05,
                     **kw) -> pd.DataFrame:
    """Marginal effects with delta-method standard errors (see :mod:`scanfit.results.margins`)."""
    _check_alpha(alpha)
    est = estimates(result, **kw)
    _linear_only(est, "marginal_effects")
    cov, name, _ = _cov(result, est, cov_type, groups)
    out = margins.marginal_effects(est, cov, at, alpha)
    out.attrs["cov_type"] = name
    return out


def predict_interval(result, X, offset, interval, *, cov_type: str = "nonrobust", groups=None, index=None,
                     **kw) -> pd.DataFrame:
    """Predictions with intervals for the design ``X`` (see :mod:`scanfit.results.prediction`)."""
    level = prediction.check_level(interval)
    est = estimates(result, **kw)
    _linear_only(est, "predict(interval=...)")
    cov, name, _ = _cov(result, est, cov_type, groups)
    if est.rows.intercept:
        X = np.column_stack([np.ones(len(X)), X])
    out = prediction.intervals(est, cov, np.asarray(X, np.float64), offset, level, _t_df(est, name), index)
    out.attrs.update(interval=level, cov_type=name)
    return out


class Summary(pd.DataFrame):
    """A DataFrame whose ``print`` shows the statsmodels-style text (``summary_text``)."""

    @property
    def _constructor(self):
        return pd.DataFrame

    def __str__(self):
        return summary_text(self)

    __repr__ = __str__


def summary(result, *, cov_type: str = "nonrobust", alpha: float = 0.05, groups=None, **kw) -> Summary:
    """One row per coefficient: estimate, std_err, z, p_value, ci_low, ci_high; model-level figures
    (n_obs, loglik, llnull, llr, llr_pvalue, pseudo_r2, aic, bic, sigma for Gaussian, ...) in ``attrs``."""
    _check_alpha(alpha)
    est = estimates(result, **kw)
    cov, name, facts = _cov(result, est, cov_type, groups)
    k, n = len(est.theta), est.n_obs
    df_resid = n - k
    t_df = _t_df(est, name)
    dist = StudentT(t_df) if t_df is not None else Normal()
    table = Summary(margins.table(est.theta, cov, est.index, alpha, dist))
    table.attrs.update(model=result.model.name, likelihood=result.likelihood.name, n_obs=n, k=k, df_resid=df_resid,
                       loglik=est.loglik, **hypotheses.model_tests(est, _llnull(result, est)),
                       aic=-2 * est.loglik + 2 * k, bic=-2 * est.loglik + k * math.log(n),
                       cov_type=name, alpha=alpha, distribution=f"t({df_resid:g})" if t_df is not None else "normal",
                       note=est.note, problem=est.problem, gradient_norm=est.gradient_norm, **facts)
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
    left = [("likelihood", a["likelihood"]), ("model", a["model"]), ("observations", f"{a['n_obs']:g}"),
            ("coefficients", a["k"]), ("covariance", a["cov_type"])]
    if "n_groups" in a:
        left.append(("groups", a["n_groups"]))
    left.append(("distribution", a["distribution"]))
    right = [("log-likelihood", f"{a['loglik']:.6g}"), ("null log-lik.", f"{a['llnull']:.6g}"),
             (f"LR chi2({a['llr_df']})", f"{a['llr']:.6g}"), ("LR p-value", f"{a['llr_pvalue']:.4g}"),
             ("pseudo R-squ.", f"{a['pseudo_r2']:.4g}"), ("AIC", f"{a['aic']:.6g}"), ("BIC", f"{a['bic']:.6g}")]
    if a.get("model") == "loglik" and not math.isfinite(a["llnull"]):  # a user's likelihood: no null model
        right = [right[0]] + right[5:]
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
