"""What a fit returns: parameters, the learning path, a status, and predictions.

Everything downstream (inference, plots, persistence, estimators, CLI) reads a
:class:`FitResult`; nothing here runs the optimizer.

>>> import scanfit as sf
>>> d = sf.datasets.linear(seed=0)
>>> r = sf.fit(sf.Linear(), sf.Gaussian(), d.train.x, d.train.y, steps=500, learning_rate=0.01)
>>> r.status.code, len(r.history)
('completed', 500)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np
import pandas as pd

__all__ = ["FitResult", "Status", "FitError", "FitWarning", "choose_start"]


class FitError(RuntimeError):
    """A fit failed (for example it diverged) and ``throw=True`` asked for an exception."""


class FitWarning(UserWarning):
    """A fit finished but something went wrong (for example it diverged)."""


@dataclass(frozen=True)
class Status:
    """How a fit ended: ``code`` is one of completed, converged, max_steps, diverged, interrupted."""

    code: str
    steps: int
    message: str
    step: int | None = None

    @property
    def ok(self) -> bool:
        return self.code in ("completed", "converged")

    @classmethod
    def diverged(cls, step: int, learning_rate: float, optimizer: Any, how: str = "") -> "Status":
        what = how or "became NaN or infinite"
        kept = "" if how else " The parameters returned are the last finite ones."
        return cls("diverged", step,
                   f"The fit diverged: the objective {what} at step {step} "
                   f"(optimizer={optimizer!r}, learning_rate={learning_rate:g}).{kept} Try a smaller learning_rate, e.g. {learning_rate / 10:g}, or an adaptive optimizer "
                   f"such as 'rmsprop'; standardizing x also helps.", step)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def choose_start(finals: list[dict], statuses: list[Status], *, has_valid: bool) -> int:
    """The start with the best final valid (else train) objective; diverged starts lose."""
    key = "valid_objective" if has_valid else "train_objective"
    scores = [(-np.inf if s.code == "diverged" or not np.isfinite(f[key]) else f[key]) for f, s in zip(finals, statuses)]
    return int(np.argmax(scores))


@dataclass
class FitResult:
    """The outcome of :func:`scanfit.fit`.

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

    @property
    def converged(self) -> bool:
        return self.status.code == "converged"

    @property
    def restarts(self) -> pd.DataFrame:
        """One row per start: final statistics, steps run, status; ``chosen`` marks the kept one."""
        rows = []
        for i, (f, s) in enumerate(zip(self.start_finals, self.start_statuses)):
            rows.append({"start": i, **f, "steps": s.steps, "status": s.code, "chosen": i == self.best_start})
        return pd.DataFrame(rows)

    def history_of(self, start: int) -> pd.DataFrame:
        """The history of start ``start`` (0-based)."""
        if not 0 <= start < len(self.start_histories):
            raise ValueError(f"The 'start' parameter must be in 0..{len(self.start_histories) - 1}. Got {start!r}.")
        return self.start_histories[start]

    @property
    def histories(self) -> pd.DataFrame:
        """All starts' histories in one long table with a ``restart`` column."""
        return pd.concat([h.assign(restart=i) for i, h in enumerate(self.start_histories)], ignore_index=True)

    def index(self, x) -> np.ndarray:
        """The model's raw output for ``x`` of shape ``(n, d)``: shape ``(n,)`` or ``(n, k)``."""
        from .data import as_features
        from .engine import dtype_scope, layout
        from .models import forward

        xa, _ = as_features(x, names=self.feature_names)
        with dtype_scope(self.config.dtype):
            out = np.asarray(_forward_jit(self.model)(self.params, layout(self.model, xa, self.config.dtype)))
        return out if out.ndim == 1 else out.T

    def predict(self, x) -> np.ndarray:
        """Predictions on the response scale for ``x`` of shape ``(n, d)``: the mean (Gaussian),
        P(y = 1) (Bernoulli, shape ``(n,)``), or class probabilities (Categorical, shape ``(n, k)``).

        >>> import scanfit as sf
        >>> d = sf.datasets.hill(seed=0)
        >>> r = sf.fit(sf.Linear(), sf.Bernoulli(), d.train.x, d.train.y, steps=10)
        >>> r.predict(d.valid.x).shape
        (1000,)
        """
        from .engine import dtype_scope

        idx = self.index(x)
        with dtype_scope(self.config.dtype):
            mean = np.asarray(jax.device_get(self.likelihood.mean(idx if idx.ndim == 1 else idx.T)))
        return mean if mean.ndim == 1 else mean.T

    def save(self, path, *, extra: dict | None = None, overwrite: bool = True, summary: str | None = None):
        """Save to the directory ``path`` (safetensors + JSON, never pickle); ``sf.load(path)`` reads it.

        See :mod:`scanfit.persist`. User models (``sf.Function``, ``sf.Module``) save their
        parameters; ``sf.load(path, model=...)`` then takes the same model again.
        """
        from .persist import save

        return save(self, path, extra=extra, overwrite=overwrite, summary=summary)

    # --- inference (scanfit.inference; see its docstring for the covariance and distribution choices)
    def summary(self, *, cov_type: str = "nonrobust", alpha: float = 0.05, reference: int = 0, refine: bool = True,
                allow_nonidentified: bool = False) -> pd.DataFrame:
        """One row per coefficient ("intercept", then the feature names; ``(class, term)`` for
        Categorical): estimate, std_err, z, p_value, ci_low, ci_high. Model-level figures (n_obs,
        loglik, aic, bic, sigma for Gaussian) are in ``.attrs``; ``print`` shows a statsmodels-style table.
        ``cov_type``: "nonrobust" (inverse observed information) or "robust" (HC0 sandwich).
        Raises ``sf.NotIdentifiedError`` for collinear columns, separated classes, singular Hessians
        and networks unless ``allow_nonidentified=True``.

        >>> import scanfit as sf
        >>> d = sf.datasets.linear(n_train=200, seed=0)
        >>> r = sf.fit(sf.Linear(), sf.Gaussian(), d.train.x, d.train.y, optimizer="newton", dtype="float64", steps=20)
        >>> list(r.summary().index)
        ['intercept', 'x']
        """
        from .inference import summary

        return summary(self, cov_type=cov_type, alpha=alpha, reference=reference, refine=refine,
                       allow_nonidentified=allow_nonidentified)

    def summary_text(self, **options) -> str:
        """The statsmodels-style text of ``summary(**options)``."""
        from .inference import summary_text

        return summary_text(self.summary(**options))

    def cov_params(self, *, cov_type: str = "nonrobust", reference: int = 0, refine: bool = True,
                   allow_nonidentified: bool = False) -> pd.DataFrame:
        """Covariance matrix of the estimates, (p, p), labelled like ``summary()``'s rows."""
        from .inference import cov_params

        return cov_params(self, cov_type=cov_type, reference=reference, refine=refine,
                          allow_nonidentified=allow_nonidentified)

    def conf_int(self, *, alpha: float = 0.05, cov_type: str = "nonrobust", **options) -> pd.DataFrame:
        """Confidence intervals: a DataFrame with columns ``lower`` and ``upper``, one row per coefficient."""
        table = self.summary(alpha=alpha, cov_type=cov_type, **options)
        return pd.DataFrame({"lower": table["ci_low"], "upper": table["ci_high"]})

    @property
    def bse(self) -> pd.Series:
        """Standard errors (non-robust), statsmodels' name; ``summary()["std_err"]``."""
        return pd.Series(self.summary()["std_err"], name="bse")

    def __repr__(self) -> str:
        return (f"FitResult(model={self.model.spec()}, likelihood={self.likelihood.name!r}, "
                f"status={self.status.code!r}, steps={self.status.steps}, final={ {k: round(v, 4) for k, v in self.final.items()} })")


_FORWARD = {}


def _forward_jit(model):
    from .models import forward

    fn = _FORWARD.get(id(model))
    if fn is None or fn[0] is not model:
        fn = (model, jax.jit(lambda p, x: forward(model, p, x)))
        _FORWARD[id(model)] = fn
    return fn[1]
