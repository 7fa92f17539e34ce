"""Constraints on a user's parameters, as maps from an unconstrained vector to the natural scale.

A fit of ``sf.fit_loglik`` optimizes every parameter unconstrained; the user's ``loglik`` sees the
natural values ``forward(constraint, u)``, and the results report them with the delta method (the
exact Jacobian of ``forward`` by automatic differentiation). ``inverse`` maps a starting value in.

- ``"positive"``: ``exp(u)`` (a scale, a variance, a rate);
- ``"increasing"``: a vector ``c[0] = u[0]``, ``c[j] = c[j-1] + exp(u[j])`` (ordered cut points);
- ``"probability"``: ``1 / (1 + exp(-u))``, in (0, 1);
- ``(low, high)``: an interval, ``low + (high - low) * sigmoid(u)``.

>>> import numpy as np
>>> float(forward("positive", inverse("positive", np.float64(2.0), "sigma")))
2.0
"""

from __future__ import annotations

import numpy as np

__all__ = ["NAMES", "check", "forward", "inverse"]

NAMES = ("positive", "increasing", "probability")


def check(constraint, name: str, shape: tuple) -> object:
    """The constraint as the fit keeps it (a name or a ``(low, high)`` pair of floats); refused,
    naming the parameter, when it is unknown or does not fit the parameter's shape."""
    if isinstance(constraint, (tuple, list)) and len(constraint) == 2 and not isinstance(constraint[0], str):
        low, high = (float(v) for v in constraint)
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise ValueError(f"The constraint of parameter {name!r} is the interval {tuple(constraint)!r}; an "
                             f"interval needs finite low < high, e.g. (0.0, 1.0).")
        return (low, high)
    if constraint not in NAMES:
        raise ValueError(f"The constraint of parameter {name!r} must be one of {list(NAMES)} or an interval "
                         f"(low, high). Got {constraint!r} instead.")
    if constraint == "increasing" and len(shape) != 1:
        raise ValueError(f"The constraint 'increasing' of parameter {name!r} orders the entries of a vector, but "
                         f"{name!r} has shape {shape}; give it as a 1-D array of starting values, e.g. cut points "
                         f"[-1.0, 0.0, 1.0].")
    return constraint


def forward(constraint, u):
    """The natural value of the unconstrained ``u`` (a JAX or NumPy array)."""
    import jax
    import jax.numpy as jnp

    if constraint is None:
        return u
    if constraint == "positive":
        return jnp.exp(u)
    if constraint == "increasing":
        return jnp.cumsum(jnp.concatenate([u[:1], jnp.exp(u[1:])]))
    if constraint == "probability":
        return jax.nn.sigmoid(u)
    low, high = constraint
    return low + (high - low) * jax.nn.sigmoid(u)


def inverse(constraint, value: np.ndarray, name: str) -> np.ndarray:
    """The unconstrained ``u`` whose natural value is the starting ``value``; refused, naming the
    parameter, the value and the fix, when ``value`` is outside the constraint's domain."""
    v = np.asarray(value, np.float64)
    if constraint is None:
        return v
    if constraint == "positive":
        _need(np.all(v > 0), name, v, "positive", "start it above 0, e.g. 1.0")
        return np.log(v)
    if constraint == "increasing":
        _need(v.ndim == 1 and np.all(np.diff(v) > 0), name, v, "increasing",
              "start with strictly increasing values, e.g. np.linspace(-1, 1, k)")
        return np.concatenate([v[:1], np.log(np.diff(v))])
    low, high = (0.0, 1.0) if constraint == "probability" else constraint
    _need(np.all((v > low) & (v < high)), name, v, f"inside ({low:g}, {high:g})",
          f"start strictly inside, e.g. {(low + high) / 2:g}")
    p = (v - low) / (high - low)
    return np.log(p) - np.log1p(-p)


def _need(ok, name, value, what, fix):
    if not ok:
        shown = value.tolist() if value.size <= 8 else f"an array of shape {value.shape}"
        raise ValueError(f"The starting value of parameter {name!r} is {shown}, which is not {what} as its "
                         f"constraint requires; {fix}.")
