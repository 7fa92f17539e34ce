"""The public ``fit``: the engine's record, returned as a :class:`~scanfit.results.result.FitResult`.

The engine (``scanfit.engine``) sits below the results layer and builds a plain ``Outcome``;
this entry point gives it the user's methods (predict, summary, save), so imports only flow down.
"""

from __future__ import annotations

import functools

from .data.sources import is_source
from .engine import loop
from .results.result import FitResult

__all__ = ["fit", "fit_loglik"]


@functools.wraps(loop.fit)
def fit(*args, **kwargs) -> FitResult:
    x = args[2] if len(args) > 2 else kwargs.get("x")
    if kwargs.get("batch_size") is not None or kwargs.get("epochs") is not None:  # minibatch training
        from .engine import minibatch

        return FitResult.of(minibatch.fit(*args, **kwargs))
    if is_source(x):  # sf.Parquet(...): read in chunks, one pass per step
        from .engine import stream

        return FitResult.of(stream.fit(*args, **kwargs))
    result = FitResult.of(loop.fit(*args, **kwargs))
    if kwargs.get("formula") is not None:
        result.data = kwargs.get("data")  # its columns may name groups for clustered standard errors
    return result


NEWTON_UP_TO = 1000  # parameters up to which fit_loglik's default is Newton's method (exact Hessian), L-BFGS beyond


def fit_loglik(loglik, params, data, *, names=None, constraints=None, weights=None, optimizer: str = "auto",
               steps: int | None = None, tol: float = 1e-8, restarts: int = 1, seed: int = 0, dtype: str = "auto",
               learning_rate: float | None = None, restart_spread: float = 0.1, progress: bool = False,
               throw: bool = False):
    """Maximize your own log-likelihood ``loglik(params, data) -> (n,)``, written in JAX.

    Parameters
    ----------
    loglik : function of ``params`` (a dict of JAX arrays, the natural values) and ``data`` (a dict
        of JAX arrays, one per column, rows first) returning each row's log-likelihood, shape (n,).
    params : dict of named starting values, scalars or arrays; a scalar is reported by its key, a
        vector by ``key[0]``, ``key[1]``, ... or by ``names``.
    data : a pandas DataFrame or a dict of columns (arrays of n rows, or (n, k); a DataFrame as one
        entry gives its column names to ``names``). Integer columns (group ids) stay integers.
    names : {"beta": ["age", "educ"]} (one label per entry) or {"beta": "X"} (the column names of
        the DataFrame entry ``data["X"]``).
    constraints : {"sigma": "positive", "cuts": "increasing", "p": "probability", "rho": (-1, 1)}:
        fitted unconstrained, reported on the natural scale (delta method, exact Jacobian).
    weights : frequency weights, shape (n,), or the name of a column of ``data``.
    optimizer : "auto" (default): "newton" (the exact Hessian by automatic differentiation, a
        step-halving line search) up to 1000 parameters, "lbfgs" beyond; or any optimizer of ``sf.fit``.
    steps : the most steps (default 100 for Newton, 1000 otherwise); tol: the convergence criterion
        (``sf.fit``'s: for Newton, half the squared Newton decrement below tol**2 relative to the objective).
    restarts : starts run together; start 0 is ``params``, the others ``params`` moved by ``restart_spread
        * (1 + |u|) * N(0, 1)`` on the unconstrained scale ``u``; the best final objective is kept.
    dtype : "auto" (float64, for every optimizer) or "float32".

    Returns a :class:`~scanfit.results.own.LogLikResult`: ``params`` (natural scale, your keys),
    ``history``, ``status`` (``converged`` only when the criterion holds), ``summary(cov_type=...)``
    ("nonrobust", "opg", "HC0", "HC1", "cluster" with ``groups``), ``loglik(data)``.

    Example
    -------
    >>> import numpy as np, jax.numpy as jnp, scanfit as sf
    >>> rng = np.random.default_rng(0)
    >>> d = {"x": rng.normal(size=200)}
    >>> d["y"] = 1.0 + 2.0 * d["x"] + rng.normal(size=200)
    >>> def normal(p, d):
    ...     r = (d["y"] - p["a"] - p["b"] * d["x"]) / p["sigma"]
    ...     return -0.5 * r**2 - jnp.log(p["sigma"]) - 0.5 * jnp.log(2 * jnp.pi)
    >>> r = sf.fit_loglik(normal, {"a": 0.0, "b": 0.0, "sigma": 1.0}, d, constraints={"sigma": "positive"})
    >>> r.status.code, list(r.summary().index)
    ('converged', ['a', 'b', 'sigma'])
    """
    import numpy as np
    import pandas as pd

    from .data.columns import pack
    from .data.precision import dtype_scope
    from .likelihoods.own import PerRow
    from .models.own import LogLik, build_params
    from .models.own_checks import check_start
    from .results.own import of_outcome

    if not callable(loglik):
        raise TypeError(f"The 'loglik' parameter of fit_loglik must be a function loglik(params, data) returning each "
                        f"row's log-likelihood. Got {type(loglik).__name__}.")
    resolved = "float64" if dtype == "auto" else dtype  # exact by default, whatever the optimizer
    x, table = pack(data, dtype=resolved if resolved == "float32" else "float64")
    specs, start = build_params(params, names=names, constraints=constraints, table=table)
    if optimizer == "auto":
        optimizer = "newton" if sum(s.size for s in specs) <= NEWTON_UP_TO else "lbfgs"
    if isinstance(weights, str):
        if table.get(weights) is None:
            raise ValueError(f"The 'weights' parameter of fit_loglik names the column {weights!r}, which 'data' "
                             f"lacks; it has {[c.name for c in table.columns]}.")
        weights = np.asarray(data[weights])
    if not (isinstance(restart_spread, (int, float)) and restart_spread >= 0):
        raise ValueError(f"The 'restart_spread' parameter of fit_loglik must be a float >= 0. Got {restart_spread!r}.")
    model = LogLik(loglik, specs, table)
    with dtype_scope(resolved):
        check_start(model, x, start)
        if isinstance(restarts, int) and restarts > 1:
            import jax

            seed_array = np.asarray(seed, np.int64 if jax.config.jax_enable_x64 else np.int32)
            first = jax.random.key_data(jax.random.split(jax.random.key(seed_array), restarts)[0])
            model = LogLik(loglik, specs, table, tuple(float(v) for v in model.ravel(start)), float(restart_spread),
                           tuple(int(v) for v in np.asarray(first).ravel()))
    one = not (isinstance(restarts, int) and restarts > 1)
    out = loop.fit(model, PerRow(), pd.DataFrame(x, columns=list(table.names)), np.zeros(len(x)), optimizer=optimizer,
                   steps=steps if steps is not None else (100 if optimizer == "newton" else 1000), tol=tol,
                   restarts=restarts, seed=seed, dtype=resolved, learning_rate=learning_rate, progress=progress,
                   throw=throw, init_params=start if one else None, weights=weights)
    return of_outcome(out, data)
