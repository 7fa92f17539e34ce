"""The design: what turns the user's checked columns into the numbers the model reads, and back.

Today it holds the feature names and the standardization of built-in models (a center and a scale
per column: the engine fits on ``(x - center) / scale``, a diagonal preconditioning, and maps the
parameters back, so every reported number is on the user's scale). It is the place for a
formula's spec, weights and offsets as they arrive. It is plain data (saved as JSON lists).

>>> import numpy as np
>>> d = Design.build(np.array([[1.0, 10.0], [3.0, 10.0]]), ("a", "b"), dtype="float32", standardize=True)
>>> d.center.tolist(), d.scale.tolist()
([2.0, 0.0], [1.0, 1.0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Design", "check_range"]


def check_range(values: np.ndarray, names: tuple[str, ...], dtype: str, *, products: bool, what: str = "x") -> None:
    """Refuse values that overflow ``dtype`` (or whose squares do, when ``products``), naming the column."""
    if values.size == 0:
        return
    limit = float(np.finfo(dtype).max)
    bound = np.sqrt(limit) if products else limit
    columns = values.reshape(len(values), -1)
    peak = np.max(np.abs(columns), axis=0)
    bad = np.flatnonzero(peak >= bound)
    if bad.size == 0:
        return
    j = int(bad[0])
    name = names[j] if j < len(names) else what
    reason = (f"beyond {dtype}'s range ({limit:.3g})" if peak[j] >= limit else
              f"so large that its squares and products overflow {dtype} (above {bound:.3g})")
    fix = "pass dtype='float64'" if dtype == "float32" else "rescale it"
    raise ValueError(f"The column {name!r} of '{what}' holds values up to {peak[j]:.3g}, {reason}. "
                     f"Rescale the column (e.g. divide by a power of ten), {fix}"
                     f"{'' if not products else ', or let the fit standardize it (standardize=True)'}.")


@dataclass(frozen=True)
class Design:
    """Feature names and the standardization: ``center`` and ``scale`` of shape ``(d,)`` (None when
    the fit runs on the raw columns)."""

    names: tuple[str, ...]
    center: np.ndarray | None = None
    scale: np.ndarray | None = None

    @property
    def standardized(self) -> bool:
        return self.center is not None

    @classmethod
    def build(cls, x: np.ndarray, names: tuple[str, ...], *, dtype: str, standardize: bool) -> "Design":
        """Check ``x`` (n, d) against ``dtype`` and, when ``standardize``, learn each column's mean and
        standard deviation (float64). A constant column keeps center 0 and scale 1: it stays what it
        is (collinear with the intercept, which inference reports), instead of becoming zeros."""
        check_range(x, names, dtype, products=not standardize)
        if not standardize:
            return cls(tuple(names))
        center = np.mean(x, axis=0) if len(x) else np.zeros(x.shape[1])
        scale = np.std(x, axis=0) if len(x) else np.ones(x.shape[1])
        flat = ~(scale > 1e-12 * np.maximum(1.0, np.abs(center)))
        center = np.where(flat, 0.0, center)
        scale = np.where(flat, 1.0, scale)
        return cls(tuple(names), center.astype(np.float64), scale.astype(np.float64))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``x`` (n, d) as the fit reads it (float64)."""
        x = np.asarray(x, np.float64)
        return x if self.center is None else (x - self.center) / self.scale

    def spec(self) -> dict:
        """As JSON-ready data."""
        return {"names": list(self.names),
                "center": None if self.center is None else self.center.tolist(),
                "scale": None if self.scale is None else self.scale.tolist()}
