"""A user's own log-likelihood as a model: ``loglik(params, data) -> (n,)`` (``sf.fit_loglik``).

The model's index is the per-row log-likelihood itself (the likelihood ``likelihoods.own.PerRow``
averages it), so the engine's compiled loop, its Newton step with the exact Hessian, its history and
restarts serve it unchanged. The parameters the engine moves are unconstrained vectors, one per name
of the user's ``params`` dict; :meth:`LogLik.natural` maps them to the values ``loglik`` reads
(``models.transforms``), and :meth:`LogLik.index` unpacks the data matrix into the user's columns
(``data.columns``).

>>> import numpy as np, jax.numpy as jnp
>>> from scanfit.data.columns import pack
>>> x, table = pack({"y": np.array([0.5, 1.5])})
>>> specs, start = build_params({"mu": 0.0, "sigma": 1.0}, constraints={"sigma": "positive"})
>>> m = LogLik(lambda p, d: -0.5 * ((d["y"] - p["mu"]) / p["sigma"]) ** 2 - jnp.log(p["sigma"]), specs, table)
>>> m.index(start, x).shape
(2,)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import transforms
from .core import Model

__all__ = ["Param", "LogLik", "build_params", "HISTORY_PARAMS"]

HISTORY_PARAMS = 12  # up to this many parameters, each one's natural value is a column of the history


@dataclass(frozen=True)
class Param:
    """One named parameter: its shape, its constraint (None, a name or an interval) and a label for
    each of its entries (row names of the summary)."""

    name: str
    shape: tuple
    constraint: Any
    labels: tuple

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=int))


def _start_value(key: str, value: Any) -> np.ndarray:
    try:
        v = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"The starting value of parameter {key!r} must be a number or an array of numbers: {err}") from None
    if v.dtype.kind not in "biuf":
        raise TypeError(f"The starting value of parameter {key!r} must be numeric. Got {v.dtype} ({value!r}).")
    v = v.astype(np.float64)
    if v.size == 0:
        raise ValueError(f"The starting value of parameter {key!r} is empty (shape {v.shape}); give one value per "
                         f"entry, or leave the parameter out.")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"The starting value of parameter {key!r} holds NaN or infinite values "
                         f"({v.tolist() if v.size <= 8 else 'shape ' + str(v.shape)}); start from finite numbers.")
    return v


def _labels(key: str, shape: tuple, given: Any, table: Any) -> tuple:
    size = int(np.prod(shape, dtype=int))
    if given is None:
        return (key,) if shape == () else tuple(f"{key}[{','.join(map(str, ix))}]" for ix in np.ndindex(shape))
    if isinstance(given, str):  # the name of a 2-D data entry whose columns have names
        column = None if table is None else table.get(given)
        if column is None or not column.parts:
            raise ValueError(f"names[{key!r}] is {given!r}, which must name an entry of 'data' given as a DataFrame "
                             f"(its column names label {key!r}); or pass the labels themselves, a list of {size} "
                             f"strings.")
        given = column.parts
    labels = tuple(str(g) for g in given) if not isinstance(given, (bytes,)) else ()
    if len(labels) != size or shape == ():
        raise ValueError(f"names[{key!r}] gives {len(labels)} labels, but parameter {key!r} has shape {shape} "
                         f"({size} entries); pass one label per entry of a vector parameter (a scalar is named "
                         f"by its key).")
    return labels


def build_params(params: Any, *, names: Any = None, constraints: Any = None,
                 table: Any = None) -> tuple[tuple, dict]:
    """``(specs, start)``: one :class:`Param` per key of ``params`` (in the user's order) and the
    unconstrained starting values (a dict of float64 arrays)."""
    if not isinstance(params, dict) or not params:
        raise TypeError(f"The 'params' parameter of fit_loglik must be a non-empty dict of named starting values, "
                        f"e.g. {{'beta': np.zeros(3), 'sigma': 1.0}}. Got {type(params).__name__}.")
    for option, given in (("names", names), ("constraints", constraints)):
        if given is None:
            continue
        if not isinstance(given, dict):
            raise TypeError(f"The '{option}' parameter of fit_loglik must be a dict keyed by parameter name. "
                            f"Got {type(given).__name__}.")
        unknown = [k for k in given if k not in params]
        if unknown:
            raise ValueError(f"The '{option}' parameter of fit_loglik names {unknown}, which 'params' lacks; it has "
                             f"{list(params)}.")
    names, constraints = names or {}, constraints or {}
    specs, start = [], {}
    for key, value in params.items():
        if not isinstance(key, str):
            raise TypeError(f"The keys of 'params' must be strings (the names loglik reads). Got {key!r}.")
        v = _start_value(key, value)
        constraint = transforms.check(constraints[key], key, v.shape) if constraints.get(key) is not None else None
        start[key] = transforms.inverse(constraint, v, key)
        specs.append(Param(key, v.shape, constraint, _labels(key, v.shape, names.get(key), table)))
    labels = [lab for s in specs for lab in s.labels]
    repeated = {lab for lab in labels if labels.count(lab) > 1}
    if repeated:  # two vectors named by the same columns: qualify both with their parameter's name
        specs = [Param(s.name, s.shape, s.constraint, tuple(f"{s.name}:{lab}" if set(s.labels) & repeated and
                                                            s.shape != () else lab for lab in s.labels)) for s in specs]
        labels = [lab for s in specs for lab in s.labels]
        if len(set(labels)) < len(labels):
            raise ValueError(f"The parameters' labels repeat ({sorted({x for x in labels if labels.count(x) > 1})}); "
                             f"give each parameter and label a name of its own.")
    return tuple(specs), start


@dataclass(frozen=True)
class LogLik(Model):
    """``loglik(params, data) -> (n,)`` with named, constrained parameters (see the module docstring).

    ``start`` (the unconstrained start, flat) and ``spread`` serve restarts: start ``i`` begins at
    ``start + spread * (1 + |start|) * N(0, 1)``, except the start whose key is ``first_key``, which
    begins at ``start`` itself (so the best of several starts is never worse than the user's)."""

    fn: Callable
    specs: tuple
    table: Any
    start: tuple | None = None
    spread: float = 0.0
    first_key: tuple | None = None
    name = "loglik"

    @property
    def size(self) -> int:
        return sum(s.size for s in self.specs)

    @property
    def labels(self) -> tuple:
        return tuple(lab for s in self.specs for lab in s.labels)

    def ravel(self, params):
        """The parameters as one vector, in the user's order (NumPy in, NumPy out; JAX likewise)."""
        import jax.numpy as jnp

        xp = np if all(isinstance(params[s.name], (np.ndarray, np.generic, float)) for s in self.specs) else jnp
        return xp.concatenate([xp.reshape(xp.asarray(params[s.name]), (-1,)) for s in self.specs])

    def unravel(self, flat) -> dict:
        out, at = {}, 0
        for s in self.specs:
            out[s.name] = flat[at:at + s.size].reshape(s.shape)
            at += s.size
        return out

    def init(self, key, n_features=None, n_outputs=None):
        import jax
        import jax.numpy as jnp

        if self.start is None:  # the start comes as init_params; these are its shapes
            return {s.name: jnp.zeros(s.shape) for s in self.specs}
        u = jnp.asarray(self.start, jnp.result_type(float))
        if self.spread:
            noise = self.spread * (1.0 + jnp.abs(u)) * jax.random.normal(key, u.shape, u.dtype)
            if self.first_key is not None:
                first = jnp.all(jax.random.key_data(key) == jnp.asarray(self.first_key, jnp.uint32))
                noise = jnp.where(first, jnp.zeros_like(noise), noise)
            u = u + noise
        return self.unravel(u)

    def natural(self, params) -> dict:
        """The values ``loglik`` reads: each constraint applied to its unconstrained vector."""
        return {s.name: transforms.forward(s.constraint, params[s.name]) for s in self.specs}

    def index(self, params, x):
        return self.fn(self.natural(params), self.table.unpack(x))

    def summaries(self, params, names) -> dict:
        if self.size > HISTORY_PARAMS:
            return {}
        flat = self.ravel(self.natural(params))
        return {label: flat[j] for j, label in enumerate(self.labels)
                if label != "step" and not label.startswith(("train_", "valid_"))}  # not a history column's name

    def spec(self) -> dict:
        return {"name": self.name, "loglik": getattr(self.fn, "__name__", type(self.fn).__name__),
                "params": {s.name: {"shape": list(s.shape), "constraint": s.constraint} for s in self.specs}}
