"""Small fits shared by test_persist, test_plots and test_cli (cached: each compiles once per session)."""

import functools
import warnings

import scanfit as sf


@functools.cache
def hill():
    return sf.datasets.hill(n_train=400, n_valid=100, seed=0)


@functools.cache
def linear():
    d = sf.datasets.linear(n_train=300, n_valid=50, seed=0)
    return d, sf.fit(sf.Linear(), sf.Gaussian(), d.train.x, d.train.y, valid=(d.valid.x, d.valid.y),
                     optimizer="gd", steps=60)


@functools.cache
def mlp():
    """A one-hidden-layer tanh network (3 units) in float64 with 3 starts."""
    d = hill()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sf.fit(sf.MLP(hidden=3, activation="tanh"), sf.Bernoulli(), d.train.x, d.train.y,
                      valid=(d.valid.x, d.valid.y), steps=60, restarts=3, dtype="float64", optimizer="gd",
                      learning_rate=1.0)
