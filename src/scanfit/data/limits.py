"""Sizes checked before anything is allocated, against documented limits that an environment variable lifts.

A fit whose size is far beyond what a machine holds or finishes (a million hidden units, a billion steps, a
formula of a million columns) is refused with a message naming the parameter, the value, the limit and the
environment variable that raises it, instead of allocating gigabytes and failing deep inside JAX or NumPy.

=================  ===========  ====================================================================
limit              default      environment variable (set it to a larger number to allow more)
=================  ===========  ====================================================================
steps              10,000,000   ``SCANFIT_MAX_STEPS``: optimizer steps of one fit
restarts           10,000       ``SCANFIT_MAX_RESTARTS``: starts run together
hidden             100,000      ``SCANFIT_MAX_HIDDEN``: units in one hidden layer of ``sf.MLP``
parameters         100,000,000  ``SCANFIT_MAX_PARAMETERS``: a model's parameters (one start)
work               10**10       ``SCANFIT_MAX_WORK``: parameters x rows x restarts of an in-memory fit
columns            10,000       ``SCANFIT_MAX_COLUMNS``: design columns a formula builds
cells              10**9        ``SCANFIT_MAX_CELLS``: design columns x rows a formula builds
=================  ===========  ====================================================================

>>> check("steps", 10**9, "The 'steps' parameter of fit")
Traceback (most recent call last):
...
ValueError: The 'steps' parameter of fit is 1,000,000,000, above scanfit's limit of 10,000,000 optimizer steps. Use a smaller value; to allow it, set the environment variable SCANFIT_MAX_STEPS=1000000000.
"""

from __future__ import annotations

import os

__all__ = ["LIMITS", "limit", "check"]

# name -> (default, what is counted)
LIMITS = {
    "steps": (10**7, "optimizer steps"),
    "restarts": (10**4, "starts"),
    "hidden": (10**5, "units in a hidden layer"),
    "parameters": (10**8, "parameters in one start"),
    "work": (10**10, "parameters x rows x restarts"),
    "columns": (10**4, "design columns"),
    "cells": (10**9, "design cells (columns x rows)"),
}


def variable(name: str) -> str:
    return f"SCANFIT_MAX_{name.upper()}"


def limit(name: str) -> int:
    """The limit ``name`` (:data:`LIMITS`), or the environment's override when it is a positive integer."""
    default = LIMITS[name][0]
    text = os.environ.get(variable(name), "").strip().replace("_", "")
    try:
        value = int(float(text)) if text else default
    except (ValueError, OverflowError):
        raise ValueError(f"The environment variable {variable(name)} must be a positive integer (a limit on "
                         f"{LIMITS[name][1]}). Got {text!r}; unset it for the default {default:,}.") from None
    return value if value > 0 else default


def check(name: str, value: int, subject: str, fix: str = "Use a smaller value") -> None:
    """Refuse ``value`` above the limit ``name``; ``subject`` names what holds it (the parameter), ``fix`` the
    change that makes it smaller."""
    most = limit(name)
    if value > most:
        raise ValueError(f"{subject} is {value:,}, above scanfit's limit of {most:,} {LIMITS[name][1]}. {fix}; to "
                         f"allow it, set the environment variable {variable(name)}={value}.")
