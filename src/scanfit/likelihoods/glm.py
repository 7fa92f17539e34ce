"""Which built-in likelihoods have the GLM structure that Newton steps and closed-form inference use."""

from __future__ import annotations

from typing import Any

from ..models.core import Linear
from .bernoulli import Bernoulli
from .categorical import Categorical
from .gaussian import Gaussian

__all__ = ["glm_family"]


def glm_family(model: Any, likelihood: Any) -> str | None:
    """``"gaussian"``, ``"bernoulli"`` or ``"categorical"`` when ``model`` is ``Linear`` and the
    likelihood is exactly one of the built-in ones (a subclass may change the objective)."""
    if not isinstance(model, Linear):
        return None
    return {Gaussian: "gaussian", Bernoulli: "bernoulli", Categorical: "categorical"}.get(type(likelihood))
