"""Small Bernoulli fits shared by the saved-model hardening tests (cached: each compiles once)."""

import functools
import warnings

import scanfit as sf


@functools.cache
def hill():
    return sf.datasets.hill(n_train=200, n_valid=50, seed=0)


@functools.cache
def fits():
    """Two different Linear x Bernoulli models of one shape: the labels, then the labels flipped."""
    d = hill()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lambda y: sf.fit(sf.Linear(), sf.Bernoulli(), d.train.x, y,  # noqa: E731
                               optimizer="gd", learning_rate=0.1, steps=5)
        return fit(d.train.y), fit(1 - d.train.y)
