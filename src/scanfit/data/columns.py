"""The table a user's own log-likelihood reads: a DataFrame or a dict of columns, packed once.

``sf.fit_loglik(loglik, params, data)`` hands ``loglik`` the data as a dict of JAX arrays, one per
column, rows first. The engine carries one float matrix ``x`` of shape ``(n, d)`` (its seam for data:
padding, weights, devices), so :func:`pack` lays the columns side by side once, and
:meth:`Columns.unpack` gives them back inside the compiled function: a column of shape ``(n,)`` or
``(n, k)`` (a 2-D array, or a DataFrame given as one entry of the dict, whose column names can name a
coefficient vector) keeps its shape; integer columns (group ids, categories) come back as integers,
boolean ones as booleans. Integers are carried exactly: float64 holds every integer up to 2**53.

>>> import numpy as np
>>> x, table = pack({"y": np.array([1.0, 2.0]), "g": np.array([0, 1])})
>>> x.shape, table.columns[1].kind
((2, 2), 'i')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Column", "Columns", "pack"]

EXACT = {"float64": 2.0**53, "float32": 2.0**24}  # integers a float holds exactly


@dataclass(frozen=True)
class Column:
    """One entry of the table: its name, where it starts in the packed matrix, its per-row shape
    (``()`` or ``(k,)``), its kind (``"f"`` float, ``"i"`` integer, ``"b"`` boolean) and, for a
    2-D entry given as a DataFrame, the names of its columns."""

    name: str
    start: int
    shape: tuple
    kind: str
    parts: tuple = ()

    @property
    def width(self) -> int:
        return int(np.prod(self.shape, dtype=int))


@dataclass(frozen=True)
class Columns:
    """The layout of the packed matrix (hashable: it keys the compiled programs)."""

    columns: tuple

    @property
    def names(self) -> tuple[str, ...]:
        """A name for each column of the packed matrix: ``y``, ``X[0]``, ``X[1]`` (or ``X:age``)."""
        out = []
        for c in self.columns:
            if c.shape == ():
                out.append(c.name)
            else:
                out += [f"{c.name}:{p}" for p in c.parts] if c.parts else [f"{c.name}[{j}]" for j in range(c.width)]
        return tuple(out)

    def get(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def unpack(self, x) -> dict:
        """The dict ``loglik`` reads, from the packed matrix ``x`` (n, d) (a JAX array inside the fit)."""
        import jax.numpy as jnp

        out = {}
        for c in self.columns:
            block = x[:, c.start] if c.shape == () else x[:, c.start:c.start + c.width].reshape((-1,) + c.shape)
            if c.kind == "i":
                block = jnp.round(block).astype(jnp.int32)
            elif c.kind == "b":
                block = block != 0
            out[c.name] = block
        return out


def _entries(data: Any, name: str) -> list[tuple[str, Any, tuple]]:
    """``(key, values, part names)`` for each entry of a DataFrame or a dict of columns."""
    if hasattr(data, "columns") and hasattr(data, "dtypes"):
        from .checks import _frame_names

        names = _frame_names(data, name)
        return [(n, data[c].to_numpy(), ()) for n, c in zip(names, data.columns)]
    if isinstance(data, dict):
        out = []
        for key, value in data.items():
            if not isinstance(key, str):
                raise TypeError(f"The '{name}' parameter's keys must be strings (the names loglik reads as "
                                f"data[name]). Got the key {key!r}.")
            parts = tuple(str(c) for c in value.columns) if hasattr(value, "columns") else ()
            out.append((key, value.to_numpy() if hasattr(value, "to_numpy") else value, parts))
        return out
    raise TypeError(f"The '{name}' parameter must be a pandas DataFrame or a dict of columns (name -> array of "
                    f"one value per row). Got {type(data).__name__}.")


def _as_array(key: str, value: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"The column {key!r} of '{name}' cannot be read as an array: {err}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"The column {key!r} of '{name}' holds {arr.dtype} values; loglik reads numbers: encode "
                        f"it first (labels as integer codes, e.g. pandas.factorize(column)[0]).")
    if arr.ndim not in (1, 2):
        raise ValueError(f"The column {key!r} of '{name}' has shape {arr.shape}; give one value per row (n,) or "
                         f"one row of values per row (n, k).")
    return arr


def pack(data: Any, *, name: str = "data", dtype: str = "float64") -> tuple[np.ndarray, Columns]:
    """``(x, layout)``: the columns side by side as a float64 matrix ``(n, d)`` and how to unpack them.

    Refuses, naming the column: non-numeric values, NaN or infinite values, columns of different
    lengths, and integers that ``dtype`` cannot hold exactly."""
    entries = _entries(data, name)
    if not entries:
        raise ValueError(f"The '{name}' parameter has no columns; pass the data loglik reads, e.g. "
                         f"{{'y': y, 'x': x}} or a DataFrame.")
    arrays, columns, start, n = [], [], 0, None
    for key, value, parts in entries:
        arr = _as_array(key, value, name)
        if n is None:
            n = len(arr)
        if len(arr) != n:
            raise ValueError(f"The column {key!r} of '{name}' has {len(arr)} rows, but {entries[0][0]!r} has {n}; "
                             f"every column needs one entry per row.")
        kind = "b" if arr.dtype.kind == "b" else "i" if arr.dtype.kind in "iu" else "f"
        wide = arr.astype(np.float64).reshape(n, -1)
        bad = ~np.isfinite(wide)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise ValueError(f"The column {key!r} of '{name}' has {int(bad.sum())} NaN or infinite values (the first "
                             f"at row {row}); drop or fill those rows first (e.g. data.dropna()).")
        if kind == "i" and wide.size and np.abs(wide).max() > min(EXACT[dtype], 2.0**31 - 1):
            raise ValueError(f"The column {key!r} of '{name}' holds integers up to {np.abs(wide).max():.0f}, beyond "
                             f"what loglik receives exactly (int32); recode them, e.g. pandas.factorize(column)[0].")
        shape = () if arr.ndim == 1 else (arr.shape[1],)
        if parts and len(parts) != wide.shape[1]:
            parts = ()
        columns.append(Column(key, start, shape, kind, parts))
        arrays.append(wide)
        start += wide.shape[1]
    if n == 0:
        raise ValueError(f"The '{name}' parameter has no rows; pass at least one observation.")
    return np.ascontiguousarray(np.concatenate(arrays, axis=1)), Columns(tuple(columns))
