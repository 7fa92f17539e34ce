"""Likelihood layer: one module per family, each a small frozen dataclass (see ``base.Likelihood``)."""

from .base import Likelihood
from .bernoulli import Bernoulli
from .categorical import Categorical
from .gaussian import Gaussian
from .poisson import NegativeBinomial, Poisson

__all__ = ["Likelihood", "Gaussian", "Bernoulli", "Categorical", "Poisson", "NegativeBinomial"]
