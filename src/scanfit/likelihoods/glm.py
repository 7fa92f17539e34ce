"""Which built-in likelihoods have the GLM structure that Newton steps and closed-form inference use."""

from __future__ import annotations

from typing import Any

from ..models.core import Linear
from .bernoulli import Bernoulli
from .categorical import Categorical
from .gaussian import Gaussian
from .poisson import NegativeBinomial, Poisson

__all__ = ["glm_family", "has_mle", "null_intercept"]


def glm_family(model: Any, likelihood: Any) -> str | None:
    """``"gaussian"``, ``"bernoulli"`` (logit or probit), ``"poisson"`` or ``"categorical"`` when
    ``model`` is ``Linear`` and the likelihood is exactly one of these built-in ones (a subclass may
    change the objective). Scalar families give Newton and inference their per-observation score and
    weight through ``likelihood.glm_terms``; a new one (Gamma, binomial with trials) joins by
    defining ``glm_terms`` and an entry here. ``NegativeBinomial`` (its dispersion is a parameter
    too) takes the general path: ``jax.hessian`` over all parameters."""
    if not isinstance(model, Linear):
        return None
    return {Gaussian: "gaussian", Bernoulli: "bernoulli", Categorical: "categorical",
            Poisson: "poisson"}.get(type(likelihood))


def has_mle(model: Any, likelihood: Any) -> bool:
    """``Linear`` with a built-in likelihood: a problem whose answer is the maximum-likelihood
    estimate, reached by Newton's method (the GLM path, or the general one for NegativeBinomial)."""
    return glm_family(model, likelihood) is not None or (isinstance(model, Linear)
                                                        and type(likelihood) is NegativeBinomial)


def null_intercept(likelihood: Any, y_mean: float) -> float | None:
    """The intercept-only model's intercept for a scalar GLM family, from the weighted mean of the encoded
    target (Bernoulli: -1/1 coded), or None (no such family, or a mean on the boundary). Newton starts there
    (zero slopes): on raw columns a random start can put the index where the likelihood is flat."""
    import math
    import statistics

    name = getattr(likelihood, "name", None)
    if not (isinstance(y_mean, float) and math.isfinite(y_mean)) or type(likelihood) not in (Gaussian, Poisson,
                                                                                              Bernoulli):
        return None
    if name == "gaussian":
        return y_mean
    if name == "poisson":
        return math.log(y_mean) if y_mean > 0 else None
    p = (1.0 + y_mean) / 2.0  # the share of ones
    if not 0.0 < p < 1.0:
        return None
    # (the standard library's: importing scipy.special took 0.3 s of a fit that needs nothing else of it)
    return math.log(p / (1.0 - p)) if likelihood.link == "logit" else statistics.NormalDist().inv_cdf(p)
