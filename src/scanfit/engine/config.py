"""The one frozen, hashable description of a fit that ``fit``, the CLI and the estimators build.

>>> import scanfit as sf
>>> sf.FitConfig(optimizer="rmsprop", steps=4000).validated().learning_rate
0.01
>>> c = sf.FitConfig().validated().resolved(sf.Linear(), sf.Bernoulli())
>>> c.optimizer, c.dtype, c.standardize
('newton', 'float64', True)

The defaults serve the answer on raw data (``resolved``): ``optimizer="auto"`` is Newton for
``Linear`` with a built-in likelihood (the maximum-likelihood estimate, a convex problem) and adam
for networks and user models; ``dtype="auto"`` is float64 for Newton and L-BFGS (exact fits) and
float32 for first-order training; ``standardize=None`` standardizes the features of built-in
models inside the fit (a diagonal preconditioning; every reported number stays on the user's
scale) and leaves user models alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..data import limits
from ..likelihoods.glm import has_mle
from . import optimizers
from .penalty import ElasticNet

__all__ = ["EarlyStopping", "FitConfig", "LOWER_IS_BETTER", "settle"]

LOWER_IS_BETTER = ("mse", "false_pos", "false_neg")


def _bad(name: str, want: str, got: Any) -> ValueError:
    return ValueError(f"The '{name}' parameter of fit must be {want}. Got {got!r} instead.")


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _bad(name, "an int >= 1", value)


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` recorded steps.

    ``monitor`` is a history column such as ``"valid_objective"`` (the default; the train
    objective is used when no validation data is given) or ``"valid_accuracy"``.
    ``restore_best`` returns the parameters of the best recorded step.
    """

    monitor: str = "valid_objective"
    min_delta: float = 0.0
    patience: int = 200
    restore_best: bool = True

    def __post_init__(self):
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1:
            raise ValueError(f"The 'patience' parameter of EarlyStopping must be an int >= 1. Got {self.patience!r} instead.")
        if not self.min_delta >= 0:
            raise ValueError(f"The 'min_delta' parameter of EarlyStopping must be a float >= 0. Got {self.min_delta!r} instead.")
        if not self.monitor.startswith(("train_", "valid_")):
            raise ValueError(f"The 'monitor' parameter of EarlyStopping must name a history column such as "
                             f"'valid_objective' or 'train_accuracy'. Got {self.monitor!r} instead.")

    @property
    def sign(self) -> float:
        """+1 when larger is better, -1 when smaller is better."""
        return -1.0 if self.monitor.split("_", 1)[1] in LOWER_IS_BETTER else 1.0

    def check(self, likelihood: Any) -> None:
        """Refuse a monitor that ``likelihood`` does not record (before the loop compiles around it)."""
        names = tuple(getattr(likelihood, "stat_names", ()))
        if self.monitor.split("_", 1)[1] not in names:
            valid = [f"{part}_{n}" for part in ("valid", "train") for n in names]
            raise ValueError(f"The 'monitor' parameter of EarlyStopping must name a statistic that a "
                             f"{type(likelihood).__name__} fit records, one of {valid}. Got {self.monitor!r} instead.")


@dataclass(frozen=True)
class FitConfig:
    """Everything about a fit except the model, likelihood and data."""

    optimizer: Any = "auto"
    learning_rate: float | None = None
    steps: int = 1000
    record_every: int = 1
    restarts: int = 1
    seed: int = 0
    early_stopping: EarlyStopping | None = None
    dtype: str = "auto"
    tol: float = 1e-8
    standardize: bool | None = None
    penalty: ElasticNet | None = None

    def validated(self) -> "FitConfig":
        """Check every value; fill the default learning rate. Errors name the parameter and the fix."""
        _positive_int("steps", self.steps)
        _positive_int("record_every", self.record_every)
        _positive_int("restarts", self.restarts)
        limits.check("steps", self.steps, "The 'steps' parameter of fit",
                     "Use fewer steps (a first-order fit that has not converged in a million steps wants another "
                     "learning rate)")
        limits.check("restarts", self.restarts, "The 'restarts' parameter of fit", "Use fewer restarts")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not -2**63 <= self.seed < 2**63:
            raise _bad("seed", "an int in -2**63..2**63 - 1", self.seed)
        if self.steps % self.record_every:
            raise ValueError(f"The 'steps' parameter of fit ({self.steps}) must be a multiple of record_every "
                             f"({self.record_every}); try steps={self.steps - self.steps % self.record_every + self.record_every}.")
        if self.dtype not in ("auto", "float32", "float64"):
            raise _bad("dtype", "'auto', 'float32' or 'float64'", self.dtype)
        if self.penalty is not None and not isinstance(self.penalty, ElasticNet):
            raise TypeError(f"The 'penalty' parameter of fit must be sf.ElasticNet(alpha=..., l1_ratio=...) or None. "
                            f"Got {type(self.penalty).__name__}.")
        if self.standardize not in (None, True, False):
            raise _bad("standardize", "True, False or None (automatic)", self.standardize)
        if self.early_stopping is not None and not isinstance(self.early_stopping, EarlyStopping):
            raise TypeError(f"The 'early_stopping' parameter of fit must be sf.EarlyStopping(...) or None. "
                            f"Got {type(self.early_stopping).__name__}.")
        if isinstance(self.optimizer, str) and self.optimizer not in ("auto",) + optimizers.NAMES + optimizers.SECOND_ORDER:
            optimizers.resolve(self.optimizer, 1.0)  # raises the error listing valid names
        if self.learning_rate is not None:
            lr = self.learning_rate
            if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0 or lr != lr or lr == float("inf"):
                raise _bad("learning_rate", "a float > 0", self.learning_rate)
        if not (isinstance(self.tol, (int, float)) and not isinstance(self.tol, bool) and 0 < self.tol < 1):
            raise _bad("tol", "a float in (0, 1)", self.tol)
        if self.optimizer == "auto":
            return self
        return replace(self, learning_rate=float(self.learning_rate if self.learning_rate is not None
                                                 else optimizers.default_learning_rate(self.optimizer)))

    def resolved(self, model: Any, likelihood: Any) -> "FitConfig":
        """The automatic choices made for ``model`` and ``likelihood`` (see the module docstring)."""
        optimizer = self.optimizer
        glm = has_mle(model, likelihood)
        l1 = self.penalty is not None and self.penalty.l1 > 0
        if self.penalty is not None and not getattr(model, "scalable", False):
            raise ValueError(f"The 'penalty' parameter of fit needs a built-in model (sf.Linear(), sf.MLP()), whose "
                             f"slopes it knows; a {type(model).__name__} model has none to penalize.")
        if optimizer == "auto" and l1:
            optimizer = "proximal" if glm else "gd"
        if optimizer == "auto":
            if glm and self.learning_rate is not None:
                raise ValueError(f"The 'learning_rate' parameter of fit ({self.learning_rate!r}) has no use with "
                                 f"optimizer='auto', which fits {type(model).__name__} x {type(likelihood).__name__} "
                                 f"by Newton's method (no learning rate). Drop learning_rate, or choose a first-order "
                                 f"optimizer, e.g. optimizer='gd' (the notebook's gradient step) or 'adam'.")
            optimizer = "newton" if glm else "adam"
        if l1 and optimizer not in ("proximal", "gd", "sgd"):
            raise ValueError(f"The L1 part of the penalty (l1_ratio={self.penalty.l1_ratio}) needs a proximal step: "
                             f"optimizer='proximal' (the default for a Linear model) or 'gd'. Got "
                             f"optimizer={optimizers.label(optimizer)!r}; or use l1_ratio=0 (ridge), which every "
                             f"optimizer takes.")
        scalable = getattr(model, "scalable", False)
        if self.standardize and not scalable:
            raise ValueError(f"The 'standardize' parameter of fit is True, but a {type(model).__name__} model's "
                             f"parameters cannot be mapped back to the original scale; standardize x yourself "
                             f"and pass standardize=False (or None).")
        dtype = self.dtype if self.dtype != "auto" else (
            "float64" if isinstance(optimizer, str) and optimizer in optimizers.SECOND_ORDER else "float32")
        standardize = scalable if self.standardize is None else self.standardize
        lr = self.learning_rate if self.learning_rate is not None else optimizers.default_learning_rate(optimizer)
        return replace(self, optimizer=optimizer, dtype=dtype, standardize=standardize, learning_rate=float(lr))


def settle(model: Any, likelihood: Any, config: "FitConfig | None", **options) -> tuple[Any, "FitConfig"]:
    """``(model, config)`` for a fit: ``config`` when given, else a ``FitConfig`` of ``options``
    (fit's keyword arguments); checked, and resolved for the model and likelihood."""
    from ..likelihoods.base import Likelihood
    from ..models.core import as_model

    config = (config if config is not None else FitConfig(**options)).validated()
    model = as_model(model)
    if not isinstance(likelihood, Likelihood):
        raise TypeError(f"The 'likelihood' parameter must be sf.Gaussian(), sf.Bernoulli(), sf.Categorical(), "
                        f"sf.Poisson() or sf.NegativeBinomial(). Got {type(likelihood).__name__}.")
    return model, config.resolved(model, likelihood)
