"""The notebook's synthetic data sets, made reproducible with ``seed``.

Each function returns a :class:`Dataset` whose ``train`` and ``valid`` splits hold NumPy
arrays ``x`` of shape ``(n, d)`` and ``y`` of shape ``(n,)``; ``truth`` holds the true
parameters where there are any.

>>> import scanfit as sf
>>> data = sf.datasets.hill(seed=0)
>>> data.train.x.shape, data.valid.y.shape
((10000, 2), (1000,))
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Split", "Dataset", "linear", "hyperplane", "radial", "hill"]


@dataclass(frozen=True)
class Split:
    """One split: ``x`` of shape ``(n, d)`` and ``y`` of shape ``(n,)``."""

    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class Dataset:
    """Training and validation splits, and the true parameters where known."""

    name: str
    train: Split
    valid: Split
    truth: dict = field(default_factory=dict)


def _check(n_train: int, n_valid: int, dim: int = 1) -> None:
    for name, value, low in (("n_train", n_train, 1), ("n_valid", n_valid, 0), ("dim", dim, 1)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"The '{name}' parameter must be an integer >= {low}. Got {value!r} instead.")


def linear(n_train: int = 10_000, n_valid: int = 1_000, *, seed: int = 0,
           intercept: float = 3.0, slope: float = 2.0, sigma: float = 0.5) -> Dataset:
    """y = 3 + 2 x + 0.5 e with x, e standard normal (the notebook's regression)."""
    _check(n_train, n_valid)
    rng = np.random.default_rng(seed)

    def draw(n):
        x = rng.standard_normal((n, 1))
        return Split(x, intercept + slope * x[:, 0] + sigma * rng.standard_normal(n))

    return Dataset("linear", draw(n_train), draw(n_valid),
                   {"beta0": intercept, "beta1": np.array([slope]), "sigma": sigma})


def hyperplane(n_train: int = 10_000, n_valid: int = 10_000, dim: int = 100, *, seed: int = 0) -> Dataset:
    """y = 1[x @ b + e > 0], b = 1 + N(0, 1) per dimension, e logistic, intercept 0."""
    _check(n_train, n_valid, dim)
    rng = np.random.default_rng(seed)
    beta1 = 1.0 + rng.standard_normal(dim)

    def draw(n):
        x = rng.standard_normal((n, dim))
        return Split(x, (x @ beta1 + rng.logistic(size=n)) > 0)

    return Dataset("hyperplane", draw(n_train), draw(n_valid), {"beta0": 0.0, "beta1": beta1})


def radial(n_train: int = 10_000, n_valid: int = 10_000, dim: int = 100, *, seed: int = 0) -> Dataset:
    """y = 1[rms(x) < 1] with x standard normal: no hyperplane separates it."""
    _check(n_train, n_valid, dim)
    rng = np.random.default_rng(seed)

    def draw(n):
        x = rng.standard_normal((n, dim))
        return Split(x, np.sqrt(np.mean(x**2, axis=1)) < 1)

    return Dataset("radial", draw(n_train), draw(n_valid))


def hill(n_train: int = 10_000, n_valid: int = 1_000, *, seed: int = 0) -> Dataset:
    """x uniform on the unit square, y = 1[x1 >= 2.5 x0 (1 - x0)] (the notebook's network data)."""
    _check(n_train, n_valid)
    rng = np.random.default_rng(seed)

    def draw(n):
        x = rng.random((n, 2))
        return Split(x, x[:, 1] >= 2.5 * x[:, 0] * (1 - x[:, 0]))

    return Dataset("hill", draw(n_train), draw(n_valid))
