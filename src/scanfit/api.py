"""The public ``fit``: the engine's record, returned as a :class:`~scanfit.results.result.FitResult`.

The engine (``scanfit.engine``) sits below the results layer and builds a plain ``Outcome``;
this entry point gives it the user's methods (predict, summary, save), so imports only flow down.
"""

from __future__ import annotations

import functools

from .data.sources import is_source
from .engine import loop
from .results.result import FitResult

__all__ = ["fit"]


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
