"""The normal, Student t and chi-squared tails that summaries, tests and intervals use.

They are the functions of ``scipy.special`` that ``scipy.stats`` calls for the same numbers
(``norm.sf(x) = ndtr(-x)``, ``t.ppf(q, df) = stdtrit(df, q)``, ``chi2.sf(x, df) = chdtrc(df, x)``),
without importing ``scipy.stats``, which takes about 0.35 s: a summary in a fresh process (``scanfit
fit``) does not pay for it.

>>> round(float(Normal().ppf(0.975)), 6), round(float(chi2_sf(3.841458820694124, 1)), 6)
(1.959964, 0.05)
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

__all__ = ["Normal", "StudentT", "chi2_sf", "f_sf"]


class Normal:
    """The standard normal distribution (``scipy.stats.norm()``'s ``ppf``, ``sf``, ``cdf``, ``pdf``)."""

    def ppf(self, q):
        return special.ndtri(q)

    def sf(self, x):
        return special.ndtr(-np.asarray(x, dtype=float))

    def cdf(self, x):
        return special.ndtr(x)

    @staticmethod
    def pdf(x):
        x = np.asarray(x, dtype=float)
        return np.exp(-x ** 2 / 2.0) / math.sqrt(2 * math.pi)


class StudentT:
    """Student's t with ``df`` degrees of freedom (``scipy.stats.t(df)``'s ``ppf``, ``sf``, ``cdf``)."""

    def __init__(self, df: float):
        self.df = df

    def ppf(self, q):
        return special.stdtrit(self.df, q)

    def sf(self, x):
        return special.stdtr(self.df, -np.asarray(x, dtype=float))

    def cdf(self, x):
        return special.stdtr(self.df, x)


def f_sf(x, dfn, dfd):
    """``P(X > x)`` for an F-distributed ``X`` with ``(dfn, dfd)`` degrees of freedom."""
    return special.fdtrc(dfn, dfd, np.maximum(x, 0.0))


def chi2_sf(x, df):
    """``P(X > x)`` for a chi-squared ``X`` with ``df`` degrees of freedom (1 for ``x <= 0``, as ``scipy.stats``)."""
    return special.chdtrc(df, np.maximum(x, 0.0))
