"""A model's parameters and output checked once, abstractly, before the fit compiles its loop.

``jax.eval_shape`` runs ``model.init`` and ``model.index`` on shapes only (no numbers, no
compilation), so a user model whose output does not fit the likelihood, or starting parameters
that do not fit the model, are refused with a message naming the model, the shape received and
the shape needed, instead of a raw JAX error from inside the compiled loop (or a fit that runs
and means something else: two outputs fitted to one ``y``, an integer output with no gradient).

>>> import jax.numpy as jnp, scanfit as sf
>>> model = sf.Function(lambda p, x: x @ p["b"], params={"b": jnp.zeros((2, 2))})
>>> check_model(model, sf.Gaussian(), x_shape=(50, 2))
Traceback (most recent call last):
...
ValueError: The 'model' parameter of fit (sf.Function(predict=<lambda>)) returns an index of shape (50, 2) for x of shape (50, 2), but the Gaussian likelihood needs shape (50,): one number per row. Make predict(params, x) return one value per row of x.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..data import limits

__all__ = ["check_model", "check_size", "describe"]


def describe(model: Any) -> str:
    """How a message names the model: ``sf.Function(predict=my_index)``, ``sf.Linear()``."""
    predict = getattr(model, "predict", None)
    if callable(predict):
        return f"sf.{type(model).__name__}(predict={getattr(predict, '__name__', type(predict).__name__)})"
    return f"sf.{type(model).__name__}()"


def _start_shapes(model, n_features: int, n_outputs: int):
    """The shapes and dtypes of the model's starting parameters (floating leaves in the fit's dtype)."""
    init = functools.partial(model.init, n_features=n_features, n_outputs=n_outputs)
    try:
        shapes = jax.eval_shape(lambda: init(jax.random.key(0)))  # the key made inside: nothing compiles
    except Exception as err:  # a user's init that does not run
        raise ValueError(f"The 'model' parameter of fit ({describe(model)}) could not build its parameters for x "
                         f"with {n_features} features: {type(err).__name__}: {err}") from None
    floating = jnp.result_type(float)
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, floating if jnp.issubdtype(a.dtype, jnp.floating)
                                                       else a.dtype), shapes)


def _label(path) -> str:
    """``['beta0']`` for the key path of a leaf: the index a user writes after ``init_params``."""
    return jax.tree_util.keystr(path)


def _leaf(model, key: str, value: Any, shape: tuple) -> np.ndarray:
    """One starting value, refused unless it is real, finite, within the fit's dtype and of ``shape``."""
    try:
        value = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"The value init_params{key} of fit must be an array of numbers: {err}") from None
    if value.dtype.kind not in "biuf":
        raise TypeError(f"The value init_params{key} of fit must hold real numbers. Got dtype {value.dtype} instead; "
                        f"pass a float array of shape {shape}.")
    if value.shape != shape:
        raise ValueError(f"The value init_params{key} of fit has shape {value.shape}, but {describe(model)} needs {shape} "
                         f"here (for this x and likelihood). Pass an array of shape {shape}.")
    wide = value.astype(np.float64)
    dtype = jnp.result_type(float)
    bad = ~np.isfinite(wide) | (np.abs(wide) > float(jnp.finfo(dtype).max))
    if bad.any():
        raise ValueError(f"The value init_params{key} of fit holds {int(bad.sum())} NaN, infinite or out-of-range "
                         f"values (such as {float(wide[bad][0])!r}, beyond {dtype.name}); starting values must be finite numbers.")
    return value


def _check_start(model, likelihood, init_params, expected):
    """``init_params`` as NumPy arrays in the structure of ``expected`` (plus the likelihood's own
    parameters, such as NegativeBinomial's ``log_alpha``, where given); refused when keys, shapes,
    kinds or values do not fit."""
    own = tuple(getattr(likelihood, "extra_params", ()))
    extra = {}
    if own and isinstance(init_params, dict):
        extra = {k: v for k, v in init_params.items() if k in own}
        init_params = {k: v for k, v in init_params.items() if k not in own}
    want = {_label(p): a.shape for p, a in jax.tree_util.tree_flatten_with_path(expected)[0]}
    leaves, _ = jax.tree_util.tree_flatten_with_path(init_params, is_leaf=lambda a: isinstance(a, list))
    got = {_label(p): a for p, a in leaves}
    missing, unexpected = [k for k in want if k not in got], [k for k in got if k not in want]
    if missing or unexpected:
        def shown(keys):
            return ", ".join(k or f"(a bare {type(init_params).__name__})" for k in keys)

        raise ValueError(f"The 'init_params' parameter of fit does not match the parameters of {describe(model)}: "
                         f"{'missing ' + shown(missing) if missing else ''}{'; ' if missing and unexpected else ''}"
                         f"{'unexpected ' + shown(unexpected) if unexpected else ''}. Pass a pytree with exactly "
                         f"{shown(want)} (e.g. result.params of a fit of the same model and data), or leave it out.")
    start = jax.tree.unflatten(jax.tree.structure(expected), [_leaf(model, k, got[k], s) for k, s in want.items()])
    if extra:
        defaults = likelihood.init_extra()
        start = {**start, **{k: _leaf(model, f"[{k!r}]", v, np.shape(defaults[k])) for k, v in extra.items()}}
    return start


def _check_output(model, params, x_shape, n_outputs: int, what: str) -> None:
    n = x_shape[0]
    need = (n,) if n_outputs == 1 else (n, n_outputs)
    x = jax.ShapeDtypeStruct(tuple(x_shape), jnp.result_type(float))
    try:
        out = jax.eval_shape(model.index, params, x)
    except Exception as err:  # the user's function fails on these shapes
        raise ValueError(f"The 'model' parameter of fit ({describe(model)}) fails on x of shape {tuple(x_shape)} "
                         f"with its starting parameters: {type(err).__name__}: {str(err).rstrip('.')}. Make predict(params, x) work "
                         f"for x of shape (n, d) and return shape {need}.") from None
    if not hasattr(out, "shape") or not hasattr(out, "dtype"):
        raise TypeError(f"The 'model' parameter of fit ({describe(model)}) returns {type(out).__name__}, not an "
                        f"array; {what} needs an array of shape {need}.")
    if out.shape != need:
        per_row = "one number per row" if n_outputs == 1 else f"{n_outputs} numbers per row (one per class)"
        fix = ("Make predict(params, x) return one value per row of x." if n_outputs == 1 else
               f"Make predict(params, x) return {n_outputs} columns, or pass the likelihood the number of classes "
               f"the model has (e.g. Categorical(n_classes=...)).")
        raise ValueError(f"The 'model' parameter of fit ({describe(model)}) returns an index of shape {out.shape} "
                         f"for x of shape {tuple(x_shape)}, but {what} needs shape {need}: {per_row}. {fix}")
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise TypeError(f"The 'model' parameter of fit ({describe(model)}) returns {out.dtype} values; {what} needs "
                        f"floating-point values (an integer output has no gradient, so the fit could not move). "
                        f"Remove the rounding or cast from predict(params, x).")


def check_model(model, likelihood, x_shape: tuple[int, int], init_params: Any = None) -> Any:
    """Check ``init_params`` against the model's own starting parameters and, for user models (which
    read ``x`` as ``(n, d)``), the output of ``model.index`` against what the (prepared) likelihood
    needs: shape ``(n,)`` for one output, ``(n, k)`` for ``k``, floating. Call it in the fit's dtype
    scope. Returns ``init_params`` as NumPy arrays in the model's structure (None when not given)."""
    if init_params is None and model.columns:  # scanfit's own models: nothing to check (no trace of init)
        return None
    n_outputs = likelihood.n_outputs
    classes = getattr(likelihood, "n_classes", None)
    what = f"the {type(likelihood).__name__} likelihood" + (f" with {classes} classes" if classes else "")
    expected = _start_shapes(model, x_shape[1], n_outputs)
    start = None if init_params is None else _check_start(model, likelihood, init_params, expected)
    if not model.columns:  # built-in models (Linear, MLP) build their output from n_outputs themselves
        _check_output(model, expected, x_shape, n_outputs, what)
    return start


def check_size(model, likelihood, config, n_rows: int, n_features: int) -> None:
    """Refuse, before anything is allocated, a fit whose parameters, or parameters x rows x restarts, are above
    :mod:`scanfit.data.limits`. (An exact fit with no more rows than coefficients is refused by the engine,
    ``engine.inputs.check_exact_fit``, which knows whether the fit is exact.)"""
    n_params = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(_start_shapes(model, n_features,
                                                                                  likelihood.n_outputs)))
    limits.check("parameters", n_params, f"The number of parameters of {describe(model)} for {n_features} "
                 f"columns", "Use a smaller model or fewer columns")
    limits.check("work", n_params * max(n_rows, 1) * config.restarts,
                 f"The fit's size ({n_params:,} parameters x {n_rows:,} rows x {config.restarts} restarts)",
                 "Use fewer restarts, a smaller model, or minibatches (batch_size=) or a streamed sf.Parquet source")
