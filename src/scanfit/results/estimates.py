"""The pieces every inference table is made of, and the refusal of non-identified estimates."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.identification import NotIdentifiedError
from ..engine.outcome import FitWarning

__all__ = ["Estimates", "Rows", "refuse"]


@dataclass(frozen=True)
class Rows:
    """Per-row pieces of a ``Linear`` model with a built-in likelihood, for leverages (HC2, HC3),
    marginal effects and prediction intervals."""

    X: np.ndarray  # (n, q): the training design, a column of ones first when the model has an intercept
    offset: np.ndarray | None  # (n,) added to the index (count models), None for none
    hat_weight: np.ndarray | None  # (n,) minus d2 loglik / d index2 of each row (scalar families; Gaussian: 1)
    prob: np.ndarray | None  # (n, K) class probabilities (Categorical)
    onehot: np.ndarray | None  # (n, K) the observed class (Categorical)
    others: tuple = ()  # the non-reference classes, in the order of the contrasts (Categorical)
    reference: int = 0
    intercept: bool = True
    link: str = "identity"  # "identity", "logit", "probit", "log" or "softmax"
    n_extra: int = 0  # likelihood parameters after the coefficients (NegativeBinomial: alpha)


@dataclass(frozen=True)
class Estimates:
    """The pieces every table is made of: ``theta`` (p,), ``info`` (minus the Hessian of the total
    log-likelihood, (p, p)), ``scores`` (n, p), and model-level figures."""

    index: pd.Index
    theta: np.ndarray
    info: np.ndarray
    scores: np.ndarray
    n_obs: int
    loglik: float
    sigma: float | None
    family: str
    note: str = ""
    problem: str = ""  # why the estimate is not identified (only with allow_nonidentified=True)
    gradient_norm: float = float("nan")  # the largest gradient component in standardized units (Linear)
    weights: np.ndarray | None = None  # frequency weights of the rows of ``scores`` (None: all 1)
    rows: Rows | None = None  # Linear with a built-in likelihood only
    k_null: int = 1  # parameters of the intercept-only model (its dispersion included; K - 1 for Categorical)
    meat: np.ndarray | None = None  # sum_i w_i s_i s_i' when ``scores`` is None (a streamed fit keeps no rows)


def refuse(problem, allow):
    if problem and not allow:
        raise NotIdentifiedError(problem + " (To compute the numbers anyway, pass allow_nonidentified=True.)")
    if problem:
        warnings.warn(f"Standard errors of a non-identified estimate (pseudo-inverse): {problem}", FitWarning,
                      stacklevel=6)
    return problem or ""
