"""The public ``fit``: the engine's record, returned as a :class:`~scanfit.results.result.FitResult`.

The engine (``scanfit.engine``) sits below the results layer and builds a plain ``Outcome``;
this entry point gives it the user's methods (predict, summary, save), so imports only flow down.
"""

from __future__ import annotations

import functools

from .engine import loop
from .results.result import FitResult

__all__ = ["fit"]


@functools.wraps(loop.fit)
def fit(*args, **kwargs) -> FitResult:
    result = FitResult.of(loop.fit(*args, **kwargs))
    if kwargs.get("formula") is not None:
        result.data = kwargs.get("data")  # its columns may name groups for clustered standard errors
    return result
