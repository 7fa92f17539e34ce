"""Strict JAX for the tests: accidental broadcasting of (n,) against (n, 1) fails loudly."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="session")
def hill():
    import scanfit as sf

    return sf.datasets.hill(seed=0)
