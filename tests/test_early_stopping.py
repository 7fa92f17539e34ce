import numpy as np
import pytest

import scanfit as sf

HILL_GD = dict(optimizer="gd", learning_rate=2.0, steps=4000, seed=0, record_every=10, standardize=False)  # the notebook


def test_short_patience_stops_on_the_plateau_default_does_not(hill):
    """gd on the hill data sits near 84% accuracy for hundreds of steps, then climbs to 98%."""
    kw = dict(valid=(hill.valid.x, hill.valid.y), **HILL_GD)
    short = sf.fit(sf.MLP(hidden=2), sf.Bernoulli(), hill.train.x, hill.train.y,
                   early_stopping=sf.EarlyStopping(min_delta=5e-4, patience=5), **kw)
    default = sf.fit(sf.MLP(hidden=2), sf.Bernoulli(), hill.train.x, hill.train.y,
                     early_stopping=sf.EarlyStopping(min_delta=5e-4), **kw)
    assert short.status.code == "stopped_early" and short.status.steps < 1000
    assert short.final["valid_accuracy"] < 0.9
    assert default.final["valid_accuracy"] >= 0.95
    # the history holds only the steps that ran
    assert short.history["step"].iloc[-1] == short.status.steps
    assert len(short.history) == short.status.steps // 10 + 1


def test_restore_best_returns_the_best_recorded_step(hill):
    r = sf.fit(sf.MLP(hidden=2), sf.Bernoulli(), hill.train.x, hill.train.y, valid=(hill.valid.x, hill.valid.y),
               optimizer="adam", learning_rate=0.05, steps=600, seed=2, record_every=5,
               early_stopping=sf.EarlyStopping(monitor="valid_objective", patience=20, restore_best=True))
    best_row = r.history["valid_objective"].idxmax()
    assert r.final["valid_objective"] == pytest.approx(r.history["valid_objective"].max(), abs=1e-6)
    assert r.history["step"].iloc[-1] - r.history["step"].iloc[best_row] >= 20 * 5 or r.status.code == "max_steps"


def test_linear_workload_stops_early_at_the_ols_solution():
    d = sf.datasets.linear(seed=0)
    r = sf.fit(sf.Linear(), sf.Gaussian(), d.train.x, d.train.y, optimizer="gd", learning_rate=0.01, steps=100_000,
               early_stopping=sf.EarlyStopping(monitor="train_objective", min_delta=1e-9))
    assert r.status.code == "stopped_early" and r.status.steps < 1000
    X = np.c_[np.ones(len(d.train.x)), d.train.x]
    ols = np.linalg.lstsq(X, d.train.y, rcond=None)[0]
    np.testing.assert_allclose(np.r_[r.params["beta0"], r.params["beta1"]], ols, atol=1e-3)


def test_train_objective_is_monitored_without_valid(hill):
    r = sf.fit(sf.Linear(), sf.Bernoulli(), hill.train.x, hill.train.y, optimizer="gd", learning_rate=1.0,
               steps=5000, early_stopping=sf.EarlyStopping(patience=10, min_delta=1e-5))
    assert r.status.code == "stopped_early" and r.status.steps < 5000


def test_each_restart_stops_on_its_own(hill):
    r = sf.fit(sf.MLP(hidden=2), sf.Bernoulli(), hill.train.x, hill.train.y, valid=(hill.valid.x, hill.valid.y),
               restarts=4, early_stopping=sf.EarlyStopping(min_delta=5e-4, patience=5), **HILL_GD)
    steps = r.restarts["steps"].tolist()
    assert len(set(steps)) > 1 and max(steps) <= 4000
    for i, s in enumerate(steps):
        assert r.history_of(i)["step"].iloc[-1] <= s


def test_bad_early_stopping():
    with pytest.raises(ValueError, match="'patience' parameter of EarlyStopping must be an int >= 1. Got 0"):
        sf.EarlyStopping(patience=0)
    with pytest.raises(ValueError, match="'monitor' parameter of EarlyStopping must name a history column"):
        sf.EarlyStopping(monitor="loss")
