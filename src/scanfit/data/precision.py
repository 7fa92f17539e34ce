"""Per-fit floating-point precision: float64 for one fit without touching the user's JAX setting."""

from __future__ import annotations

import contextlib

import jax

__all__ = ["dtype_scope"]


def dtype_scope(dtype: str):
    """Enable float64 for the enclosed work only, leaving the user's JAX setting alone."""
    return jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()
