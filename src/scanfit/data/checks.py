"""Turn user input (NumPy, pandas, lists) into checked arrays, and feed them to the engine.

Validation lives here so that every entry point (``fit``, ``predict``, the CLI, the
estimators) gives the same clear error for the same bad input. :class:`FullBatch` is the
engine's one seam for reading data: the compiled loop asks it for the step's ``(x, y)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["as_features", "as_target", "check_xy", "FullBatch"]


def _names_of(x: Any, d: int) -> tuple[str, ...]:
    columns = getattr(x, "columns", None)
    if columns is not None:
        return tuple(str(c) for c in columns)
    return ("x",) if d == 1 else tuple(f"x{j}" for j in range(d))


def as_features(x: Any, *, name: str = "x", names: tuple[str, ...] | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Check ``x`` and return it as a float64 array of shape ``(n, d)`` with feature names.

    ``x`` may be a NumPy array of shape ``(n,)`` or ``(n, d)``, a list, or a pandas
    DataFrame (whose columns become the feature names). When ``names`` is given (a fitted
    model's features), a DataFrame must hold those columns and an array that many columns.
    """
    if hasattr(x, "columns") and names is not None:
        missing = [c for c in names if c not in x.columns]
        if missing:
            raise ValueError(f"The '{name}' table lacks the feature columns {missing} that the model was fitted on; "
                             f"it has {list(map(str, x.columns))}.")
        x = x[list(names)]
    if hasattr(x, "dtypes") and hasattr(x, "columns"):
        from pandas.api.types import is_bool_dtype, is_numeric_dtype

        bad = [str(c) for c, t in zip(x.columns, x.dtypes) if not (is_numeric_dtype(t) or is_bool_dtype(t))]
        if bad:
            raise TypeError(f"The '{name}' table has non-numeric columns {bad}; encode them as numbers "
                            f"(for example with pandas.get_dummies) before fitting.")
    raw = x
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"The '{name}' parameter must be numeric (an array or a DataFrame of numbers). "
                        f"Got {type(x).__name__} that NumPy cannot read as numbers: {err}") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"The '{name}' parameter must have shape (n,) or (n, d). Got shape {arr.shape} instead.")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"The '{name}' parameter is empty (shape {arr.shape}); pass at least one row and one column.")
    _check_finite(arr, name, _names_of(raw, arr.shape[1]))
    if names is not None and arr.shape[1] != len(names):
        raise ValueError(f"The '{name}' parameter has {arr.shape[1]} columns but the model was fitted on "
                         f"{len(names)} features {list(names)}.")
    return arr, (names if names is not None else _names_of(raw, arr.shape[1]))


def as_target(y: Any, *, name: str = "y") -> np.ndarray:
    """Check ``y`` and return it as an array of shape ``(n,)`` (bool, integer or float)."""
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"The '{name}' parameter must have shape (n,). Got shape {arr.shape} instead.")
    if arr.shape[0] == 0:
        raise ValueError(f"The '{name}' parameter is empty; pass at least one observation.")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"The '{name}' parameter must be numeric or boolean. Got dtype {arr.dtype}; "
                        f"encode labels as 0..K-1 (or use scanfit.sklearn, which maps labels for you).")
    if np.issubdtype(arr.dtype, np.floating):
        _check_finite(arr[:, None], name, (name,))
    return arr


def _check_finite(arr: np.ndarray, name: str, columns: tuple[str, ...]) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"The '{name}' parameter has {int(bad.sum())} NaN or infinite values; the first is "
                         f"{arr[row, col]} in column {columns[col]!r} at row {row}. Drop or impute them before fitting.")


def check_xy(x: Any, y: Any, *, names: tuple[str, ...] | None = None, prefix: str = "") -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Check a pair ``x`` of shape ``(n, d)`` and ``y`` of shape ``(n,)`` together."""
    xa, feature_names = as_features(x, name=prefix + "x", names=names)
    ya = as_target(y, name=prefix + "y")
    if xa.shape[0] != ya.shape[0]:
        raise ValueError(f"'{prefix}x' has {xa.shape[0]} rows but '{prefix}y' has {ya.shape[0]}; "
                         f"they must describe the same observations.")
    return xa, ya, feature_names


@dataclass(frozen=True)
class FullBatch:
    """Every step sees all of the data: the notebook's full-batch gradient.

    The engine calls ``batch(data, step)`` once per step inside the compiled loop; a
    minibatch or streamed source replaces this class without touching the engine.
    """

    def batch(self, data: dict, step):
        return data["x"], data["y"]
