"""The normal, Student t and chi-squared tails that summaries, tests and intervals use.

They are the functions of ``scipy.special`` that ``scipy.stats`` calls for the same numbers
(``norm.sf(x) = ndtr(-x)``, ``t.ppf(q, df) = stdtrit(df, q)``, ``chi2.sf(x, df) = chdtrc(df, x)``),
without importing ``scipy.stats``, which takes about 0.35 s: a summary in a fresh process (``scanfit
fit``) does not pay for it. The normal distribution (z statistics: logit, probit, counts) needs no
``scipy.special`` either (another ~0.3 s): its tails are ``math.erfc`` and its quantiles the
standard library's ``statistics.NormalDist`` (Wichura's AS241, as accurate as ``ndtri``).

>>> round(float(Normal().ppf(0.975)), 6), round(float(chi2_sf(3.841458820694124, 1)), 6)
(1.959964, 0.05)
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

__all__ = ["Normal", "StudentT", "chi2_sf", "f_sf"]

_ERFC = np.frompyfunc(math.erfc, 1, 1)


def _quantile(q: float) -> float:
    if not q > 0.0:
        return -math.inf if q == 0.0 else math.nan
    if not q < 1.0:
        return math.inf if q == 1.0 else math.nan
    return NormalDist().inv_cdf(q)


_QUANTILE = np.frompyfunc(_quantile, 1, 1)


def _ndtr(x):
    """``P(Z <= x)``: ``erfc(-x / sqrt 2) / 2`` (accurate in both tails, as ``scipy.special.ndtr``)."""
    with np.errstate(invalid="ignore"):
        out = 0.5 * np.asarray(_ERFC(-np.asarray(x, dtype=float) / math.sqrt(2.0)), dtype=float)
    return out if out.ndim else float(out)


class Normal:
    """The standard normal distribution (``scipy.stats.norm()``'s ``ppf``, ``sf``, ``cdf``, ``pdf``)."""

    def ppf(self, q):
        with np.errstate(invalid="ignore"):
            out = np.asarray(_QUANTILE(np.asarray(q, dtype=float)), dtype=float)
        return out if out.ndim else float(out)

    def sf(self, x):
        return _ndtr(-np.asarray(x, dtype=float))

    def cdf(self, x):
        return _ndtr(x)

    @staticmethod
    def pdf(x):
        x = np.asarray(x, dtype=float)
        return np.exp(-x ** 2 / 2.0) / math.sqrt(2 * math.pi)


class StudentT:
    """Student's t with ``df`` degrees of freedom (``scipy.stats.t(df)``'s ``ppf``, ``sf``, ``cdf``)."""

    def __init__(self, df: float):
        self.df = df

    def ppf(self, q):
        from scipy import special  # the t, F and chi-squared tails: scipy.special, imported when first needed

        return special.stdtrit(self.df, q)

    def sf(self, x):
        from scipy import special

        return special.stdtr(self.df, -np.asarray(x, dtype=float))

    def cdf(self, x):
        from scipy import special

        return special.stdtr(self.df, x)


def f_sf(x, dfn, dfd):
    """``P(X > x)`` for an F-distributed ``X`` with ``(dfn, dfd)`` degrees of freedom."""
    from scipy import special

    return special.fdtrc(dfn, dfd, np.maximum(x, 0.0))


def _chi2_sf_whole(x: float, k: float) -> float:
    """``P(X > x)`` for whole ``k`` degrees of freedom: the closed form of the regularized upper incomplete
    gamma ``Q(k/2, x/2)`` (a Poisson tail for even ``k``, ``erfc`` plus a series for odd ``k``), summed
    with ``math.fsum`` from terms formed in logs, so none overflows."""
    if math.isnan(x) or math.isnan(k):
        return math.nan
    if x <= 0.0:
        return 1.0
    if math.isinf(x):
        return 0.0
    h = x / 2.0
    if k % 2 == 0:
        terms = [math.exp(-h + i * math.log(h) - math.lgamma(i + 1.0)) for i in range(int(k) // 2)]
    else:
        terms = [math.erfc(math.sqrt(h))] + [math.exp(-h + (i - 0.5) * math.log(h) - math.lgamma(i + 0.5))
                                             for i in range(1, (int(k) + 1) // 2)]
    return min(math.fsum(terms), 1.0)


_CHI2_WHOLE = np.frompyfunc(_chi2_sf_whole, 2, 1)


def chi2_sf(x, df):
    """``P(X > x)`` for a chi-squared ``X`` with ``df`` degrees of freedom (1 for ``x <= 0``, as ``scipy.stats``).
    Whole ``df`` up to 1,000 (a summary's model test, Wald tests) need no ``scipy.special``."""
    dfa = np.asarray(df, dtype=float)
    if np.all((dfa >= 1) & (dfa <= 1000) & (dfa == np.round(dfa))):
        out = np.asarray(_CHI2_WHOLE(np.asarray(x, dtype=float), dfa), dtype=float)
        return out if out.ndim else float(out)
    from scipy import special

    return special.chdtrc(df, np.maximum(x, 0.0))
