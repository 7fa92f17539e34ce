"""The one frozen, hashable description of a fit that ``fit``, the CLI and the estimators build.

>>> import scanfit as sf
>>> sf.FitConfig(optimizer="rmsprop", steps=4000).validated().learning_rate
0.01
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from . import optimizers

__all__ = ["EarlyStopping", "FitConfig", "LOWER_IS_BETTER"]

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


@dataclass(frozen=True)
class FitConfig:
    """Everything about a fit except the model, likelihood and data."""

    optimizer: Any = "gd"
    learning_rate: float | None = None
    steps: int = 1000
    record_every: int = 1
    restarts: int = 1
    seed: int = 0
    early_stopping: EarlyStopping | None = None
    dtype: str = "float32"
    tol: float = 1e-8

    def validated(self) -> "FitConfig":
        """Check every value; fill the default learning rate. Errors name the parameter and the fix."""
        _positive_int("steps", self.steps)
        _positive_int("record_every", self.record_every)
        _positive_int("restarts", self.restarts)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise _bad("seed", "an int", self.seed)
        if self.steps % self.record_every:
            raise ValueError(f"The 'steps' parameter of fit ({self.steps}) must be a multiple of record_every "
                             f"({self.record_every}); try steps={self.steps - self.steps % self.record_every + self.record_every}.")
        if self.dtype not in ("float32", "float64"):
            raise _bad("dtype", "'float32' or 'float64'", self.dtype)
        if self.early_stopping is not None and not isinstance(self.early_stopping, EarlyStopping):
            raise TypeError(f"The 'early_stopping' parameter of fit must be sf.EarlyStopping(...) or None. "
                            f"Got {type(self.early_stopping).__name__}.")
        if isinstance(self.optimizer, str) and self.optimizer not in optimizers.NAMES + optimizers.SECOND_ORDER:
            optimizers.resolve(self.optimizer, 1.0)  # raises the error listing valid names
        lr = self.learning_rate if self.learning_rate is not None else optimizers.default_learning_rate(self.optimizer)
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0 or lr != lr or lr == float("inf"):
            raise _bad("learning_rate", "a float > 0", self.learning_rate)
        if not (isinstance(self.tol, (int, float)) and self.tol > 0):
            raise _bad("tol", "a float > 0", self.tol)
        return replace(self, learning_rate=float(lr))
