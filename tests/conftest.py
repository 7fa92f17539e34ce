"""Strict JAX for the tests: accidental broadcasting of (n,) against (n, 1) fails loudly."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
# The suite neither reads nor fills the user's persistent compilation cache (tests of the cache run
# their own processes with their own $SCANFIT_CACHE); set before scanfit's engine is imported.
os.environ.setdefault("SCANFIT_COMPILATION_CACHE", "0")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="session")
def hill():
    import scanfit as sf

    return sf.datasets.hill(seed=0)
