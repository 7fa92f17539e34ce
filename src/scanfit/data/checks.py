"""Turn user input (NumPy, pandas, lists) into checked arrays, and feed them to the engine.

Validation lives here so that every entry point (``fit``, ``predict``, the CLI, the
estimators) gives the same clear error for the same bad input. :class:`FullBatch` is the
engine's one seam for reading data: the compiled loop asks it for the step's ``(x, y)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["as_features", "as_target", "check_xy", "check_labels", "FullBatch"]


def _names_of(x: Any, d: int) -> tuple[str, ...]:
    columns = getattr(x, "columns", None)
    if columns is not None:
        return tuple(str(c) for c in columns)
    return ("x",) if d == 1 else tuple(f"x{j}" for j in range(d))


def _frame_names(x: Any, name: str) -> tuple[str, ...]:
    """A table's column names as the strings a fitted model keeps (``0`` becomes ``'0'``): one per
    column, so that the same table (or its CSV) finds them again at prediction time."""
    if getattr(x.columns, "nlevels", 1) > 1:
        raise ValueError(f"The '{name}' table has MultiIndex columns (levels {x.columns.nlevels}), such as "
                         f"{tuple(map(str, x.columns[0]))}; give each column one name first, e.g. "
                         f"{name}.columns = ['_'.join(map(str, c)) for c in {name}.columns].")
    names = tuple(str(c) for c in x.columns)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"The '{name}' table has repeated column names {repeated} (as text); a coefficient needs "
                         f"a name of its own. Rename the columns so that each name appears once.")
    return names


def _refuse_kinds(x: Any, name: str) -> None:
    """Complex numbers, dates and durations are not data that scanfit fits (NumPy would drop an
    imaginary part with only a warning, or read dates as day counts)."""
    dtypes = getattr(x, "dtypes", None)
    if dtypes is not None and hasattr(x, "columns"):
        pairs = list(zip(map(str, x.columns), (getattr(t, "kind", "O") for t in dtypes)))
    else:
        pairs = [(name, getattr(getattr(x, "dtype", None), "kind", "O"))]
    for kind, what, fix in (("c", "complex numbers", "pass the real part (np.real) or split real and imaginary "
                                                      "parts into two columns"),
                            ("mM", "dates or durations", "convert them to numbers first (e.g. days since a start "
                                                         "date)")):
        bad = [col for col, k in pairs if k in kind]
        if bad:
            where = f" (columns {bad})" if bad != [name] else ""
            raise TypeError(f"The '{name}' parameter holds {what}{where}; scanfit fits real numbers: {fix}.")


def as_features(x: Any, *, name: str = "x", names: tuple[str, ...] | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Check ``x`` and return it as a float64 array of shape ``(n, d)`` with feature names.

    ``x`` may be a NumPy array of shape ``(n,)`` or ``(n, d)``, a list, or a pandas
    DataFrame (whose columns become the feature names). When ``names`` is given (a fitted
    model's features), a DataFrame must hold those columns and an array that many columns.
    """
    if hasattr(x, "columns"):
        given = _frame_names(x, name)
        if names is not None:
            missing = [c for c in names if c not in given]
            if missing:
                raise ValueError(f"The '{name}' table lacks the feature columns {missing} that the model was fitted "
                                 f"on; it has {list(given)}.")
            x = x[[x.columns[given.index(c)] for c in names]]
    elif not hasattr(x, "dtype"):  # a list: let NumPy say what it holds
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as err:
            raise TypeError(f"The '{name}' parameter must be numeric (an array or a DataFrame of numbers). "
                            f"Got {type(x).__name__} that NumPy cannot read as an array: {err}") from None
    _refuse_kinds(x, name)
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
    try:
        arr = np.asarray(y)
    except (TypeError, ValueError) as err:
        raise TypeError(f"The '{name}' parameter must be a 1-D array of numbers. Got {type(y).__name__} that NumPy "
                        f"cannot read as an array: {err}") from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"The '{name}' parameter must have shape (n,). Got shape {arr.shape} instead.")
    if arr.shape[0] == 0:
        raise ValueError(f"The '{name}' parameter is empty; pass at least one observation.")
    _refuse_kinds(arr, name)
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


# Categorical() infers K = max + 1 classes from the labels; a few distinct labels with a maximum above
# SPARSE_LABELS and above twice their count are more likely codes (94, 1000) than classes 0..K-1
SPARSE_LABELS = 20


def check_labels(y: np.ndarray, likelihood: Any, *, name: str = "y") -> None:
    """Refuse sparse class labels before a Categorical likelihood without ``n_classes`` infers a class
    (one output, one set of coefficients) for every integer up to their maximum."""
    if getattr(likelihood, "name", None) != "categorical" or getattr(likelihood, "n_classes", 0) is not None:
        return
    values = np.unique(y)
    if values.dtype.kind not in "iuf" or values[0] < 0 or not np.all(np.mod(values, 1) == 0):
        return  # booleans are two classes; the likelihood's own check names non-integer and negative labels
    top = values[-1].item()
    if top > SPARSE_LABELS and top > 2 * len(values):
        shown = ", ".join(f"{v:g}" for v in values[:6].tolist()) + (", ..." if len(values) > 6 else "")
        raise ValueError(f"The labels in '{name}' look like codes, not classes 0..K-1: {len(values)} distinct "
                         f"value{'s' if len(values) > 1 else ''} "
                         f"({shown}) with the largest {top:g}, so Categorical() would fit {top + 1:g} classes. "
                         f"Encode the labels as 0..K-1 (e.g. np.unique({name}, return_inverse=True)[1]), or, if "
                         f"there really are that many classes, say so with Categorical(n_classes=...).")


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
