"""What the engine hands back: the record of a fit (``Outcome``), its ``Status``, and the errors.

``scanfit.results.FitResult`` extends ``Outcome`` with the methods a user calls (predict,
summary, save); the engine, below the results layer, builds the plain record.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Outcome", "Status", "FitError", "FitWarning", "choose_start"]


class FitError(RuntimeError):
    """A fit failed (for example it diverged) and ``throw=True`` asked for an exception."""


class FitWarning(UserWarning):
    """A fit finished but something went wrong (for example it diverged)."""


@dataclass(frozen=True)
class Status:
    """How a fit ended. ``code``:

    - ``converged``: a second-order method met its criterion at the returned parameters (the Newton
      decrement, or the gradient norm, below ``tol`` relative to the objective);
    - ``completed``: a first-order method ran all its steps (nothing is claimed about the maximum);
    - ``stopped_early``: early stopping ended the fit (the monitored statistic stopped improving);
    - ``max_steps``: a method that can finish did not within ``steps``;
    - ``stalled``: the method could not raise the objective further, but its criterion does not hold;
    - ``separation``: the maximum does not exist (classes separated by the named columns);
    - ``diverged``: the objective became NaN or infinite, or fell below its start (at ``step``);
    - ``interrupted``: stopped by Ctrl-C.
    """

    code: str
    steps: int
    message: str
    step: int | None = None

    @property
    def ok(self) -> bool:
        return self.code in ("completed", "converged", "stopped_early")

    @classmethod
    def diverged(cls, step: int, learning_rate: float, optimizer: Any, how: str = "") -> "Status":
        what = how or "became NaN or infinite"
        kept = "" if how else " The parameters returned are the last finite ones."
        return cls("diverged", step,
                   f"The fit diverged: the objective {what} at step {step} "
                   f"(optimizer={optimizer!r}, learning_rate={learning_rate:g}).{kept} Try a smaller learning_rate, e.g. {learning_rate / 10:g}, or an adaptive optimizer "
                   f"such as 'rmsprop'; standardizing x also helps.", step)

    @classmethod
    def not_finite_at_start(cls, config: Any, model: Any = None) -> "Status":
        """Step 0's objective is NaN or infinite: no step was taken, so the learning rate is not the cause;
        the fixes offered are those that apply to this fit (its dtype, whether it standardizes)."""
        fixes = ["check the starting values (init_params, or the model's init) and that y suits the likelihood"]
        if config.dtype == "float32":
            fixes.insert(0, "pass dtype='float64'")
        if getattr(model, "scalable", False) and not config.standardize:
            fixes.insert(0, "let the fit standardize the columns (standardize=True)")
        elif not getattr(model, "scalable", True):
            fixes.insert(0, "rescale the columns of x")
        return cls("diverged", 0,
                   f"The fit could not start: the objective is not finite (NaN or infinite) at the starting "
                   f"parameters, step 0, before any step was taken, so the learning rate is not the cause. The "
                   f"model's index or the log-likelihood overflows {config.dtype} there (large values in x or in the "
                   f"starting parameters) or is undefined. Fixes: {'; '.join(fixes)}.", 0)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def choose_start(finals: list[dict], statuses: list[Status], *, has_valid: bool) -> int:
    """The start with the best final valid (else train) objective; diverged starts lose."""
    key = "valid_objective" if has_valid else "train_objective"
    scores = [(-np.inf if s.code == "diverged" or not np.isfinite(f[key]) else f[key]) for f, s in zip(finals, statuses)]
    return int(np.argmax(scores))


@dataclass
class Outcome:
    """The record of one fit (what :func:`scanfit.fit` returns, as a ``FitResult``).

    Attributes: ``params`` (pytree of NumPy arrays), ``history`` (DataFrame, one row per recorded
    step), ``status``, ``final`` (statistics at the returned parameters), ``restarts`` (one row
    per start), ``feature_names``, ``config``, ``seconds`` (wall time of the loop, compile included).
    """

    model: Any
    likelihood: Any
    config: Any
    params: Any
    history: pd.DataFrame
    status: Status
    feature_names: tuple[str, ...]
    final: dict
    seconds: float = 0.0
    best_start: int = 0
    start_histories: list = field(default_factory=list, repr=False)
    start_params: list = field(default_factory=list, repr=False)
    start_statuses: list = field(default_factory=list, repr=False)
    start_finals: list = field(default_factory=list, repr=False)
    train: tuple | None = field(default=None, repr=False)
    valid: tuple | None = field(default=None, repr=False)
    design: Any = field(default=None, repr=False)
    weights: Any = field(default=None, repr=False)  # the training rows' frequency weights (None: all 1)
    offset: Any = field(default=None, repr=False)  # the training rows' index offset (count models)
    # a streamed fit (sf.Parquet) keeps no rows: its final pass's information, scores' outer products
    # and gradient on the user's scale (engine.stream._Fit.inference), which inference reads instead
    inference: Any = field(default=None, repr=False)

    def fields(self) -> dict:
        """The record's fields as a dict (to build a ``FitResult`` from an ``Outcome``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
