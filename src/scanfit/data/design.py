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

__all__ = ["Design", "check_range", "check_weights", "check_offset"]


def _vector(values, n: int, name: str) -> np.ndarray:
    if hasattr(values, "to_numpy"):
        values = values.to_numpy()
    try:
        a = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"The '{name}' parameter of fit must be numbers, one per row. Got {type(values).__name__} "
                        f"that cannot be read as numbers.") from None
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"The '{name}' parameter of fit must have one value per row: shape ({n},). "
                         f"Got shape {a.shape} instead.")
    bad = ~np.isfinite(a)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"The '{name}' parameter of fit holds {a[i]} at row {i}; every value must be finite. "
                         f"Drop or fix those rows.")
    return a


def check_weights(weights, n: int, name: str = "weights") -> np.ndarray | None:
    """Frequency weights ``(n,)``: finite, >= 0, not all zero (a weight of 2 counts the row twice)."""
    if weights is None:
        return None
    w = _vector(weights, n, name)
    if (w < 0).any():
        i = int(np.argmax(w < 0))
        raise ValueError(f"The '{name}' parameter of fit must be >= 0 (frequency weights). Got {w[i]} at row {i}; "
                         f"drop the row or fix its weight.")
    if not w.sum() > 0:
        raise ValueError(f"The '{name}' parameter of fit is zero for every row, so no row counts; give positive "
                         f"weights (1 for a plain row).")
    return w


def check_offset(offset, exposure, n: int, likelihood, prefix: str = "") -> np.ndarray | None:
    """The index offset ``(n,)``: ``offset`` as given, or ``log(exposure)``; count models only."""
    if offset is None and exposure is None:
        return None
    if not getattr(likelihood, "takes_offset", False):
        which = "offset" if offset is not None else "exposure"
        raise ValueError(f"The '{prefix}{which}' parameter of fit applies to count models (sf.Poisson(), "
                         f"sf.NegativeBinomial()); the {type(likelihood).__name__} likelihood takes none.")
    if offset is not None and exposure is not None:
        raise ValueError(f"Give '{prefix}offset' or '{prefix}exposure' to fit, not both (exposure e is offset log(e)).")
    if exposure is not None:
        e = _vector(exposure, n, prefix + "exposure")
        if not (e > 0).all():
            i = int(np.argmax(~(e > 0)))
            raise ValueError(f"The '{prefix}exposure' parameter of fit must be > 0. Got {e[i]} at row {i}.")
        return np.log(e)
    return _vector(offset, n, prefix + "offset")


def check_range(values: np.ndarray, names: tuple[str, ...], dtype: str, *, products: bool, what: str = "x") -> None:
    """Refuse values that overflow ``dtype`` (or whose squares do, when ``products``), naming the column. Squares
    that overflow float64 are refused in every case: standardizing a column and its standard errors square it."""
    if values.size == 0:
        return
    limit = float(np.finfo(dtype).max)
    wide = float(np.sqrt(np.finfo(np.float64).max))
    bound = min(np.sqrt(limit) if products else limit, wide)
    columns = values.reshape(len(values), -1)
    peak = np.max(np.abs(columns), axis=0)
    bad = np.flatnonzero(peak >= bound)
    if bad.size == 0:
        return
    j = int(bad[0])
    name, top = names[j] if j < len(names) else what, float(peak[j])
    fixes = [f"divide it by a power of ten (such as {10.0 ** np.floor(np.log10(top)):.0e})"]
    if top >= wide:
        reason = (f"so large that its squares overflow float64 (above {wide:.3g}), which every fit computes "
                  f"(to standardize it, and for standard errors)")
    elif top >= limit:
        reason, fixes = f"beyond {dtype}'s range ({limit:.3g})", fixes + ["pass dtype='float64'"]
    else:
        reason = f"so large that its squares and products overflow {dtype} (above {bound:.3g})"
        fixes += (["pass dtype='float64'"] if dtype == "float32" else []) + ["let the fit standardize it (standardize=True)"]
    raise ValueError(f"The column {name!r} of '{what}' holds values up to {top:.3g}, {reason}. Rescale the column: "
                     f"{', or '.join(fixes)}.")


@dataclass(frozen=True)
class Design:
    """Feature names and the standardization: ``center`` and ``scale`` of shape ``(d,)`` (None when
    the fit runs on the raw columns)."""

    names: tuple[str, ...]
    center: np.ndarray | None = None
    scale: np.ndarray | None = None
    formula: object = None  # a data.formula.Formula when the fit was given one

    @property
    def standardized(self) -> bool:
        return self.center is not None

    @classmethod
    def build(cls, x: np.ndarray, names: tuple[str, ...], *, dtype: str, standardize: bool,
              centered: bool = True, weights: np.ndarray | None = None) -> "Design":
        """Check ``x`` (n, d) against ``dtype`` and, when ``standardize``, learn each column's mean and
        standard deviation (float64). A constant column keeps center 0 and scale 1: it stays what it
        is (collinear with the intercept, which inference reports), instead of becoming zeros.
        ``centered=False`` (a model without an intercept to absorb it): scale only. With frequency
        ``weights`` the mean and spread are weighted (a weight of 2 is the row twice)."""
        check_range(x, names, dtype, products=not standardize)
        if not standardize:
            return cls(tuple(names))
        if not len(x):
            center, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
        else:
            center = np.average(x, axis=0, weights=weights)
            scale = np.sqrt(np.average((x - center) ** 2, axis=0, weights=weights))
        flat = ~(scale > 1e-12 * np.maximum(1.0, np.abs(center)))
        center = np.where(flat | (not centered), 0.0, center)
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
                "scale": None if self.scale is None else self.scale.tolist(),
                "formula": None if self.formula is None else self.formula.to_json()}
