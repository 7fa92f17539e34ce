"""What ``fit`` receives, checked and put in the shape the loop reads.

A fit takes arrays or frames (``x``, ``y``) or a formula with a frame (``formula``, ``data``), and
optionally frequency ``weights`` and, for count models, an ``offset`` or ``exposure`` (arrays, or
column names of ``data``). Validation data is ``(x, y)`` or ``(x, y, {"weights": ..., "offset":
..., "exposure": ...})``; with a formula, ``valid`` may also be a frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..data import checks
from ..data.design import Design, check_offset, check_range, check_weights
from ..likelihoods.glm import has_mle

__all__ = ["Inputs", "prepare", "check_exact_fit", "refuse_few_rows", "target", "padded_rows", "pad"]


@dataclass
class Inputs:
    model: Any  # as given, or Linear(intercept=False) for a formula without an intercept
    likelihood: Any
    design: Design
    xa: np.ndarray  # (n, d), float64
    ya: np.ndarray  # (n,), as given
    yenc: np.ndarray  # (n,), as the likelihood reads it
    weights: np.ndarray | None  # raw frequency weights
    offset: np.ndarray | None
    valid: tuple | None  # (x, y as given, y encoded, weights, offset)


def _column(value, data, name: str):
    """A column name of ``data`` (with a formula) or the values themselves."""
    if isinstance(value, str):
        if data is None or not hasattr(data, "columns"):
            raise TypeError(f"The '{name}' parameter of fit is the column name {value!r}, which needs a DataFrame "
                            f"in 'data' (with a formula); otherwise pass the values.")
        if value not in data.columns:
            raise ValueError(f"The '{name}' parameter of fit names the column {value!r}, which 'data' lacks; "
                             f"it has {list(map(str, data.columns))}.")
        return data[value].to_numpy()
    return value


def _from_formula(formula, data, x, y):
    from ..data.formula import Formula

    if x is not None or y is not None:
        raise TypeError("Give fit either x and y, or formula= with data=, not both.")
    if data is None or not hasattr(data, "columns"):
        raise TypeError(f"The 'data' parameter of fit must be a pandas DataFrame when a formula is given. "
                        f"Got {type(data).__name__}.")
    spec = Formula.build(formula, data)
    yv, X = spec.design(data)
    import pandas as pd

    return spec, pd.DataFrame(X, columns=list(spec.names)), yv


def _valid_part(valid, spec, names, likelihood, config, data_names):
    if spec is not None and hasattr(valid, "columns"):
        yv, X = spec.design(valid)
        import pandas as pd

        valid = (pd.DataFrame(X, columns=list(spec.names)), yv)
    if not (isinstance(valid, (tuple, list)) and len(valid) in (2, 3)):
        raise TypeError("The 'valid' parameter of fit must be a pair (x_valid, y_valid), or a triple with a dict of "
                        "'weights', 'offset' or 'exposure' third" + (", or a DataFrame with a formula." if spec else "."))
    extra = valid[2] if len(valid) == 3 else {}
    if not isinstance(extra, dict) or set(extra) - {"weights", "offset", "exposure"}:
        raise TypeError(f"The third element of 'valid' must be a dict with keys among 'weights', 'offset', "
                        f"'exposure'. Got {extra!r}.")
    vx, vy, _ = checks.check_xy(valid[0], valid[1], names=names if hasattr(valid[0], "columns") else None,
                                prefix="valid_")
    if vx.shape[1] != len(data_names):
        raise ValueError(f"'valid_x' has {vx.shape[1]} columns but 'x' has {len(data_names)}; they must match.")
    _, vyenc = likelihood.prepare(vy, name="valid_y")
    check_range(vx, data_names, config.dtype, products=not config.standardize, what="valid_x")
    vw = check_weights(extra.get("weights"), len(vy), "valid_weights")
    voff = check_offset(extra.get("offset"), extra.get("exposure"), len(vy), likelihood, prefix="valid_")
    return vx, vy, vyenc, vw, voff


def prepare(model, likelihood, config, x, y, *, valid=None, weights=None, offset=None, exposure=None,
            formula=None, data=None) -> Inputs:
    """Check everything ``fit`` was given (see the module docstring) for a resolved ``config``."""
    spec = None
    if formula is not None:
        spec, x, y = _from_formula(formula, data, x, y)
        if not spec.intercept and getattr(model, "intercept", None) is True:
            model = replace(model, intercept=False)  # "y ~ x - 1": the formula's columns are the whole design
    elif x is None or y is None:
        raise TypeError("fit needs the data: x and y, or formula= with data=.")
    weights, offset, exposure = (_column(v, data, n) for v, n in
                                 ((weights, "weights"), (offset, "offset"), (exposure, "exposure")))
    xa, ya, names = checks.check_xy(x, y)
    likelihood, yenc = likelihood.prepare(ya)
    w = check_weights(weights, len(ya))
    design = Design.build(xa, names, dtype=config.dtype, standardize=config.standardize,
                          centered=getattr(model, "intercept", True), weights=w)
    if spec is not None:
        design = replace(design, formula=spec)
    if yenc.dtype.kind == "f":
        check_range(yenc, ("y",), config.dtype, products=True, what="y")
    off = check_offset(offset, exposure, len(ya), likelihood)
    vdata = None if valid is None else _valid_part(valid, spec, names, likelihood, config, names)
    return Inputs(model, likelihood, design, xa, ya, yenc, w, off, vdata)


def check_exact_fit(given: Inputs, config) -> None:
    """Refuse, before fitting, an exact fit (Newton or L-BFGS of a model with a maximum-likelihood estimate, no
    penalty) with no more rows (of positive weight) than coefficients: its coefficients are not identified."""
    n_rows, n_features = given.xa.shape
    n_used = n_rows if given.weights is None else int(np.count_nonzero(given.weights > 0))
    if given.likelihood.name in ("bernoulli", "categorical"):
        y = np.asarray(given.yenc)
        if len(np.unique(y if given.weights is None else y[np.asarray(given.weights) > 0])) < 2:
            return  # one class: the check of the classes says so, more plainly
    refuse_few_rows(given.model, given.likelihood, config, n_features, n_used, n_rows)


def refuse_few_rows(model, likelihood, config, n_features: int, n_used: int, n_rows: int | None = None) -> None:
    """:func:`check_exact_fit`'s refusal from the counts alone (a streamed fit knows them after its first pass):
    ``n_used`` rows count (positive weight) of ``n_rows``."""
    coefficients = n_features + bool(getattr(model, "intercept", False))
    if not (has_mle(model, likelihood) and config.penalty is None
            and config.optimizer in ("newton", "lbfgs") and coefficients >= n_used):
        return
    some = n_rows is not None and n_used != n_rows
    raise ValueError(f"The fit has {coefficients:,} coefficients per output "
                     f"({'an intercept and ' if coefficients > n_features else ''}{n_features:,} columns of x) "
                     f"but only {n_used:,} row{'s' if n_used != 1 else ''}{' of positive weight' if some else ''} "
                     f"(n_samples = {n_used:,}): an exact "
                     f"(maximum-likelihood) fit needs more rows than coefficients, else the coefficients are not "
                     f"identified. Use fewer columns or more rows, or a penalized fit "
                     f"(penalty=sf.ElasticNet(alpha=0.1, l1_ratio=0)).")


# Rows padded to a small ladder of sizes (issue 14): fits whose row counts differ a little (the folds of
# a cross-validation, a grid search's candidates) share one compiled program. A padded row counts for
# nothing: zero weight, or for the unweighted logit ``y = 0`` (its one-pass kernel skips such rows).
PADDING = True  # an internal switch: False compiles for the exact row count (tests compare the two)
PAD_MIN = 128  # the smallest padded size: every fit of at most this many rows shares one
PAD_STEPS = 4  # sizes per doubling above it (at most 25% more rows, about 10% on average)
PAD_MAX = 1 << 16  # above this many rows the shapes are used as they are (the fit, not the compile, dominates)
PAD_MAX_CELLS = 1 << 19  # nor above this many rows x columns: padding the notebook's (b), 10,000 x 100, to 11,592
# rows pushed its data out of this machine's cache and made each step 35% slower (a step costs more than a compile)


def padded_rows(n: int, columns: int = 1) -> int:
    """The row count a fit of ``n`` rows of ``columns`` columns runs with: ``n`` rounded up to the ladder
    ``PAD_MIN * 2**(j / PAD_STEPS)`` (multiples of 8), or ``n`` itself when padding is off or ``n``
    exceeds ``PAD_MAX`` or ``n * columns`` exceeds ``PAD_MAX_CELLS``.

    >>> [padded_rows(n) for n in (1, 128, 129, 455, 456, 70_000)]
    [128, 128, 160, 512, 512, 70000]
    >>> padded_rows(10_000, 100)
    10000
    """
    if not PADDING or n > PAD_MAX or n < 1 or n * max(columns, 1) > PAD_MAX_CELLS:
        return n
    j = 0
    while True:
        size = -(-math.ceil(PAD_MIN * 2 ** (j / PAD_STEPS)) // 8) * 8
        if size >= n:
            return size
        j += 1


def pad(a: np.ndarray, rows: int, axis: int = 0, value: float = 0) -> np.ndarray:
    """``a`` with ``value`` appended along ``axis`` up to ``rows`` entries (NumPy)."""
    extra = rows - a.shape[axis]
    if extra <= 0:
        return a
    width = [(0, 0)] * a.ndim
    width[axis] = (0, extra)
    return np.pad(a, width, constant_values=value)


def target(yenc, weights, offset, dtype, pscale=None, *, rows: int | None = None, likelihood=None):
    """The loop's target: ``y`` alone, or a dict with normalized weights, the offset and (penalized fits
    on standardized columns) the columns' scale, which the penalty's factors need. NumPy arrays, put
    on the device without a compiled conversion (``jnp.asarray`` compiles a small program per shape).

    ``rows``: pad to this many rows (``padded_rows``); ``y`` and the offset get zeros, and the padded
    rows count for nothing: the weights get zeros there and the others are scaled by ``rows / n``, so
    the weighted mean over all rows is the mean over the real ones; an unweighted fit whose likelihood
    reads ``y = 0`` as "no row" (``likelihood.pads_in_y``: the one-pass logit) needs no weights."""
    import jax

    n = len(yenc)
    rows = n if rows is None else rows
    ydt = np.dtype(dtype) if yenc.dtype.kind == "f" else yenc.dtype
    y = pad(np.asarray(yenc, ydt), rows)
    if rows > n and weights is None and not (likelihood is not None and likelihood.pads_in_y(None)):
        weights = np.ones(n)
    if weights is None and offset is None and pscale is None:
        return jax.device_put(y)
    out = {"y": y}
    if weights is not None:
        out["w"] = pad(np.asarray(weights / np.mean(weights) * (rows / n) if rows > n else weights / np.mean(weights),
                                  dtype), rows)
    if offset is not None:
        out["offset"] = pad(np.asarray(offset, dtype), rows)
    if pscale is not None:
        out["pscale"] = np.asarray(pscale, dtype)
    return jax.device_put(out)
