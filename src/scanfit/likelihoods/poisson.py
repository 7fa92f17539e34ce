"""Counts: the Poisson likelihood (log link) and the negative binomial (NB2) with its dispersion.

Both read an index ``eta`` (the log of the mean, plus any offset such as ``log(exposure)``),
stay finite for log-means of +-50 (every term is in log space), and report the objective (mean
log-likelihood), the mean deviance and the mean absolute error of the mean.

>>> import scanfit as sf, jax.numpy as jnp
>>> round(float(sf.Poisson().objective(jnp.log(jnp.array([2.0, 3.0])), jnp.array([2.0, 3.0]))), 4)
-1.4436
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, xlogy

from .base import Likelihood, np_wmean, wmean

__all__ = ["Poisson", "NegativeBinomial"]


def _check_counts(y: np.ndarray, name: str, who: str) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype == np.bool_:
        y = y.astype(np.float64)
    bad = y < 0
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"The {who} likelihood needs counts (numbers >= 0; non-integer rates are allowed, as in "
                         f"statsmodels' GLM) in '{name}'. Got {y[i]!r} at row {i}; use Gaussian() for other numbers.")
    return y.astype(np.float64)


class _Counts(Likelihood):
    stat_names = ("objective", "deviance", "mae")
    point_stat = "mae"
    takes_offset = True

    def _stats(self, index, y, objective, w, **extra):
        mu = jnp.exp(index)
        return {"objective": objective, "deviance": wmean(self.unit_deviance(y, index, **extra), w),
                "mae": wmean(jnp.abs(y - mu), w)}

    def mean(self, index):
        return jnp.exp(index)

    def null_start(self, train):
        return {**super().null_start(train), "intercept": np.array([np.log(max(train.y_mean, 1e-12))])}


@dataclass(frozen=True)
class Poisson(_Counts):
    """Counts with ``E[y] = Var[y] = exp(index)``."""

    name = "poisson"

    def prepare(self, y, *, name="y"):
        return self, _check_counts(y, name, "Poisson")

    def loglik(self, index, y, **kw):
        return y * index - jnp.exp(index) - gammaln(y + 1.0)

    def stats(self, index, y, objective=None, sums=None, w=None):
        if objective is None:
            objective = self.objective(index, y, w)
        return self._stats(index, y, objective, w)

    def unit_deviance(self, y, index):
        mu = jnp.exp(index)
        return 2.0 * (xlogy(y, y) - y * index - (y - mu))

    def glm_terms(self, index, y):
        mu = jnp.exp(index)
        return y - mu, mu

    def null_objective(self, y_train, y_eval, w_train=None, w_eval=None, offset_train=None, offset_eval=None):
        off_t = np.zeros(len(y_train)) if offset_train is None else offset_train
        off_e = np.zeros(len(y_eval)) if offset_eval is None else offset_eval
        wt = np.ones(len(y_train)) if w_train is None else w_train
        c = np.log(np.sum(wt * y_train) / np.sum(wt * np.exp(off_t)))  # the intercept-only MLE
        eta = c + off_e
        from scipy import special  # here: its import takes ~0.3 s of a process that fits no counts

        return np_wmean(y_eval * eta - np.exp(eta) - special.gammaln(y_eval + 1.0), w_eval)

    def null_from_moments(self, train, part):
        mu = train.y_mean  # the intercept-only mean; lgamma: the weighted sum of lgamma(y + 1)
        return float(part.y_mean * np.log(mu) - mu - part.lgamma / part.weight) if mu > 0 else float("nan")


_STIRLING_FROM = 1e5  # theta = 1/alpha above which log Gamma(y + theta) - log Gamma(theta) uses Stirling's series


def _log_rising(y, theta):
    """``log Gamma(y + theta) - log Gamma(theta)``, accurate also for ``theta >> y`` (alpha near 0), where
    the difference of two log-gammas of ~theta log theta loses all digits: Stirling's series with log1p,
    ``y log t + (t + y - 1/2) log1p(y / t) - y`` plus the series' corrections."""
    t = jnp.maximum(theta, 1.0)
    z = t + y

    def corr(v):
        return 1.0 / (12.0 * v) - 1.0 / (360.0 * v ** 3)

    stirling = y * jnp.log(t) + (z - 0.5) * jnp.log1p(y / t) - y + (corr(z) - corr(t))
    return jnp.where(theta > _STIRLING_FROM, stirling, gammaln(y + theta) - gammaln(theta))


def _nb_loglik(y, eta, log_alpha):
    """NB2 log-likelihood, ``Var = mu + alpha mu^2``, in log space: finite for eta in +-50, and accurate
    as alpha goes to 0 (where it tends to Poisson's)."""
    theta_log = -log_alpha  # log(1 / alpha)
    theta = jnp.exp(theta_log)
    # theta log(theta / (theta + mu)) and y log(mu / (theta + mu)) through softplus: their logs differ by
    # ~mu / theta, which a difference of two logs would round away when alpha is near 0
    return (_log_rising(y, theta) - gammaln(y + 1.0)
            - theta * jax.nn.softplus(eta - theta_log) - y * jax.nn.softplus(theta_log - eta))


@dataclass(frozen=True)
class NegativeBinomial(_Counts):
    """NB2 counts: ``E[y] = mu = exp(index)``, ``Var[y] = mu + alpha mu^2``. The dispersion
    ``alpha`` is estimated with the coefficients (as ``log_alpha`` in ``params``; ``summary()``
    reports ``alpha`` with its standard error, statsmodels' ``NegativeBinomial`` convention)."""

    name = "negativebinomial"
    extra_params = ("log_alpha",)

    def prepare(self, y, *, name="y"):
        return self, _check_counts(y, name, "NegativeBinomial")

    def init_extra(self) -> dict:
        return {"log_alpha": jnp.zeros(())}

    def summaries(self, params) -> dict:
        return {"alpha": jnp.exp(params["log_alpha"])}

    def loglik(self, index, y, log_alpha=0.0, **kw):
        return _nb_loglik(y, index, log_alpha)

    def stats(self, index, y, objective=None, sums=None, w=None, log_alpha=0.0):
        if objective is None:
            objective = self.objective(index, y, w, log_alpha=log_alpha)
        return self._stats(index, y, objective, w, log_alpha=log_alpha)

    def unit_deviance(self, y, index, log_alpha=0.0):
        theta = jnp.exp(-log_alpha)
        return 2.0 * (xlogy(y, y) - y * index - (y + theta) * (jnp.log(y + theta) - jnp.logaddexp(-log_alpha, index)))

    def null_start(self, train):
        return {**super().null_start(train), "log_alpha": _log_alpha_start(train.y_mean, train.y_m2 / train.weight)}


def _log_alpha_start(mean: float, spread: float) -> float:
    """The moment estimate of ``log(alpha)`` from the target's mean and variance (at least log 1e-3)."""
    return float(np.log(max((spread - mean) / max(mean, 1e-12) ** 2, 1e-3)))
