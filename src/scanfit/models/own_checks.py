"""A user's ``loglik(params, data)`` checked once at its starting values, before the fit compiles.

Each failure names what is wrong, the value received and the fix: the function raises, returns
another shape than one value per row, returns integers, is NaN or infinite on some rows, or ignores
a parameter. A parameter is ignored when no row's value depends on it near the start: a NaN put in
its tangent does not reach the output's tangent (NaN survives every product, even by zero, so only an
output that does not depend on the parameter, or a ``where`` that never selects it, stays finite).
One forward-mode pass per parameter entry (per named parameter beyond ``PER_ENTRY`` entries): at most
the cost of one Newton step's Hessian.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["check_start", "PER_ENTRY"]

PER_ENTRY = 1000  # up to this many parameters, each entry is checked; beyond, each named parameter


def _shown(model, start: dict) -> str:
    values = model.natural({k: np.asarray(v) for k, v in start.items()})
    parts = []
    for s in model.specs:
        v = np.asarray(values[s.name])
        parts.append(f"{s.name}={float(v):.6g}" if v.shape == () else
                     f"{s.name}={np.array2string(v, precision=4, threshold=6)}")
    return ", ".join(parts)


@functools.lru_cache(maxsize=16)
def _probe(model):
    def run(flat, x, mask):
        def f(th):
            return model.index(model.unravel(th), x)

        def enters(row):
            tangent = jnp.where(row, jnp.nan, 0.0).astype(flat.dtype)
            return jnp.any(jnp.isnan(jax.jvp(f, (flat,), (tangent,))[1]))

        return f(flat), lax.map(enters, mask)

    return jax.jit(run)


def _groups(model) -> tuple[np.ndarray, list[str]]:
    """The entries checked together (a boolean mask per group) and how a message names each group."""
    p = model.size
    if p <= PER_ENTRY:
        return np.eye(p, dtype=bool), list(model.labels)
    mask, names, at = np.zeros((len(model.specs), p), bool), [], 0
    for g, s in enumerate(model.specs):
        mask[g, at:at + s.size] = True
        names.append(s.name)
        at += s.size
    return mask, names


def check_start(model, x: np.ndarray, start: dict) -> None:
    """Refuse a ``loglik`` that does not give one finite log-likelihood per row at ``start`` (the
    unconstrained starting values), or that ignores a parameter. Call in the fit's dtype scope."""
    n = len(x)
    name = getattr(model.fn, "__name__", "loglik")
    flat = model.ravel(start)
    dtype = jnp.result_type(float)
    try:
        out = jax.eval_shape(lambda th, xx: model.index(model.unravel(th), xx),
                             jax.ShapeDtypeStruct(flat.shape, dtype), jax.ShapeDtypeStruct(x.shape, dtype))
    except Exception as err:  # the user's function fails on these shapes
        raise ValueError(f"loglik(params, data) ({name}) fails at the starting values: {type(err).__name__}: "
                         f"{str(err).rstrip('.')}. It receives params as a dict of JAX arrays ({_shown(model, start)}) "
                         f"and data as a dict of columns of {n} rows.") from None
    if not hasattr(out, "shape") or out.shape != (n,):
        got = getattr(out, "shape", type(out).__name__)
        fix = ("return the per-row values, not their sum (drop a final jnp.sum or .mean())" if got == () else
               "squeeze it to one value per row" if got == (n, 1) else "return one log-likelihood per row of data")
        raise ValueError(f"loglik(params, data) ({name}) must return one log-likelihood per row, shape ({n},). It "
                         f"returns shape {got}: {fix}.")
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise TypeError(f"loglik(params, data) ({name}) returns {out.dtype} values; it must return floating-point "
                        f"log-likelihoods (an integer output has no derivative). Remove the rounding or cast.")
    mask, groups = _groups(model)
    values, enters = jax.device_get(_probe(model)(np.asarray(flat, dtype), np.asarray(x, dtype), mask))
    bad = ~np.isfinite(values)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(f"loglik(params, data) ({name}) is NaN or infinite at the starting values for {bad.sum()} "
                         f"of {n} rows (row {rows[0]}: {values[rows[0]]}; rows {rows[:8].tolist()}"
                         f"{' ...' if len(rows) > 8 else ''}). The starting values are {_shown(model, start)}. Start "
                         f"where every row's log-likelihood is finite: a scale positive (constraints={{'sigma': "
                         f"'positive'}}), cut points increasing, probabilities inside (0, 1); check logs and "
                         f"divisions of the data.")
    ignored = [g for g, e in zip(groups, enters) if not e]
    if ignored:
        raise ValueError(f"loglik(params, data) ({name}) does not depend on the parameter"
                         f"{'s' if len(ignored) > 1 else ''} {ignored[:20]}{' ...' if len(ignored) > 20 else ''} near "
                         f"its starting value (for every row its derivative is exactly zero: zero curvature), so the "
                         f"data cannot estimate {'them' if len(ignored) > 1 else 'it'}. Use it in loglik, remove it "
                         f"from params, or start it where it matters.")
