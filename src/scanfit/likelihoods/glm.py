"""Which built-in likelihoods have the GLM structure that Newton steps and closed-form inference use."""

from __future__ import annotations

from typing import Any

from ..models.core import Linear
from .bernoulli import Bernoulli
from .categorical import Categorical
from .gaussian import Gaussian
from .poisson import NegativeBinomial, Poisson

__all__ = ["glm_family", "has_mle"]


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
