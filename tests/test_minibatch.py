"""Minibatch training (issue 16, part 3): batch_size/epochs on arrays and on sf.Parquet sources."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import scanfit as sf  # noqa: E402
from scanfit.data.sources import Arrays  # noqa: E402

NET = dict(batch_size=128, epochs=10, learning_rate=0.05, record_every=10)  # one compiled program for the net tests


def write(folder, x, y, files):
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, len(y), files + 1).astype(int)
    for i in range(files):
        part = pd.DataFrame(x[bounds[i]:bounds[i + 1]], columns=["x0", "x1"])
        part["y"] = y[bounds[i]:bounds[i + 1]].astype(np.float64)
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False), folder / f"part-{i}.parquet",
                       row_group_size=1000)
    return folder


@pytest.fixture(scope="module")
def hill_files(tmp_path_factory):
    d = sf.datasets.hill(n_train=10_000, n_valid=1_000, seed=0)
    root = tmp_path_factory.mktemp("hill")
    return d, write(root / "train", d.train.x, d.train.y, 4), write(root / "valid", d.valid.x, d.valid.y, 1)


def net_fit(*data, **kw):
    return sf.fit(sf.MLP(hidden=2, activation="sigmoid"), sf.Bernoulli(), *data, **{**NET, **kw})


def flat(params):
    return np.concatenate([np.ravel(v) for _, v in sorted(params.items())])


def test_parquet_network_reaches_the_issue_accuracy_and_records_its_history(hill_files):
    d, train, valid = hill_files
    r = net_fit(sf.Parquet(train, target="y"), valid=sf.Parquet(valid, target="y"))
    assert r.status.code == "completed", r.status
    assert r.final["valid_accuracy"] >= 0.95
    assert r.final["valid_pseudo_r2"] > 0.8 and np.isfinite(r.final["train_null_objective"])
    h = r.history
    per_epoch = -(-10_000 // 128)
    ends = h[h["train_objective"].notna()]
    # full passes at the start and at each epoch's end; batch rows every record_every batches
    assert ends["epoch"].tolist() == list(range(11)) and ends["step"].tolist() == [e * per_epoch for e in range(11)]
    batches = h[h["batch_objective"].notna()]
    assert (batches["step"] % 10 == 0).all() and len(batches) == len(range(0, 10 * per_epoch, 10))
    assert {"batch_accuracy", "valid_objective", "valid_accuracy"} <= set(h.columns)
    assert np.isclose(ends["valid_accuracy"].iloc[-1], r.final["valid_accuracy"])
    assert ends["train_objective"].iloc[-1] > ends["train_objective"].iloc[0] + 0.5
    # the same seed gives the same numbers; another seed other numbers
    again = net_fit(sf.Parquet(train, target="y"), valid=sf.Parquet(valid, target="y"))
    np.testing.assert_array_equal(flat(again.params), flat(r.params))
    pd.testing.assert_frame_equal(again.history, r.history)
    other = net_fit(sf.Parquet(train, target="y"), valid=sf.Parquet(valid, target="y"), seed=1)
    assert not np.allclose(flat(other.params), flat(r.params))


def test_arrays_and_parquet_of_the_same_rows_give_the_same_numbers(hill_files):
    d, train, valid = hill_files
    a = net_fit(d.train.x, d.train.y, epochs=2)
    p = net_fit(sf.Parquet(train, target="y"), epochs=2)
    np.testing.assert_array_equal(flat(a.params), flat(p.params))
    assert a.final == p.final
    # chunks in memory are visited in a shuffled order per epoch: the same for both sources
    a = net_fit(Arrays(d.train.x, d.train.y, batch_rows=1024), epochs=2)
    p = net_fit(sf.Parquet(train, target="y", batch_rows=1024), epochs=2)
    np.testing.assert_array_equal(flat(a.params), flat(p.params))
    # chunks streamed from the files (cache=0): the files in a shuffled order per epoch, still seeded
    s1, s2 = (net_fit(sf.Parquet(train, target="y", batch_rows=1024, cache=0), epochs=2) for _ in range(2))
    np.testing.assert_array_equal(flat(s1.params), flat(s2.params))
    assert s1.status.code == "completed" and s1.final["train_accuracy"] > 0.8
    assert a.train is None and net_fit(d.train.x, d.train.y, epochs=1).train[0].shape == (10_000, 2)


def gaussian_data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)) * np.array([1.0, 5.0, 0.2]) + np.array([2.0, -1.0, 0.5])
    y = 1.5 + x @ np.array([0.4, -0.2, 3.0]) + rng.normal(size=n)
    return x, y


def test_one_batch_of_all_rows_is_full_batch_gradient_descent():
    x, y = gaussian_data()
    n, k, rate = len(y), 25, 0.1
    start = {"beta0": np.array(0.3), "beta1": np.array([0.1, -0.2, 0.0])}
    common = dict(optimizer="gd", learning_rate=rate, dtype="float64", init_params=start)
    r = sf.fit(sf.Linear(), sf.Gaussian(), x, y, batch_size=n, epochs=k, **common)
    m = sf.fit(sf.Linear(), sf.Gaussian(), x, y, steps=k, **common)
    assert r.status.code == "completed" and r.config.steps == k
    np.testing.assert_allclose(flat(r.params), flat(m.params), rtol=1e-10, atol=1e-12)
    # the closed form: theta <- theta + rate * (2 / n) X'(y - X theta) on the standardized columns
    c, s = x.mean(axis=0), x.std(axis=0)
    X = np.column_stack([np.ones(n), (x - c) / s])
    theta = np.r_[start["beta0"] + c @ start["beta1"], s * start["beta1"]]
    for _ in range(k):
        theta = theta + rate * 2 / n * X.T @ (y - X @ theta)
    np.testing.assert_allclose(r.params["beta1"], theta[1:] / s, rtol=1e-10)
    np.testing.assert_allclose(r.params["beta0"], theta[0] - c @ (theta[1:] / s), rtol=1e-10)
    assert np.isclose(r.final["train_objective"], m.final["train_objective"], rtol=1e-10)
    with pytest.warns(sf.FitWarning, match="not the maximum"):  # train=(x, y) is kept for a Linear model's inference
        assert "std_err" in r.summary().columns
    # a rate that blows up: diverged, the batch named, the last finite parameters returned
    with pytest.warns(sf.FitWarning, match="diverged"):
        bad = sf.fit(sf.Linear(), sf.Gaussian(), x, y * 1e30, batch_size=n, epochs=k, **{**common,
                                                                                         "learning_rate": 1e3})
    assert bad.status.code == "diverged" and "batch" in bad.status.message
    assert np.all(np.isfinite(flat(bad.params)))


def test_restarts_keep_the_best_and_early_stopping_restores_it(hill_files):
    d, train, valid = hill_files
    r = net_fit(d.train.x, d.train.y, valid=(d.valid.x, d.valid.y), epochs=2, restarts=3)
    table = r.restarts
    assert len(table) == 3 and table["chosen"].sum() == 1
    assert r.best_start == int(np.argmax(table["valid_objective"]))
    assert len({tuple(np.round(flat(p), 6)) for p in r.start_params}) == 3
    np.testing.assert_array_equal(flat(r.params), flat(r.start_params[r.best_start]))
    # nothing improves by 10 nats: stopped after patience=2 epochs, the start's parameters returned
    es = sf.EarlyStopping(patience=2, min_delta=10.0)
    s = net_fit(d.train.x, d.train.y, valid=(d.valid.x, d.valid.y), epochs=10, early_stopping=es, restarts=3)
    assert s.status.code == "stopped_early" and "epoch 0" in s.status.message, s.status
    h = s.history
    assert h["epoch"].max() == 2
    start = h.iloc[0]
    assert np.isclose(s.final["valid_objective"], start["valid_objective"])
    # without early stopping the epochs gain: the fit moves away from its start
    gains = r.history["valid_objective"].dropna()
    assert gains.iloc[-1] > gains.iloc[0] + 0.05


@pytest.mark.parametrize("kw, match", [
    (dict(batch_size=0), "'batch_size' parameter of fit must be an int >= 1"),
    (dict(batch_size=2.5), "'batch_size'"),
    (dict(epochs=0), "'epochs' parameter of fit must be an int >= 1"),
    (dict(batch_size=32, optimizer="newton"), "'optimizer' parameter of fit is 'newton', a full-batch method"),
    (dict(epochs=2, optimizer="lbfgs"), "'optimizer'.*'lbfgs'"),
    (dict(batch_size=32, steps=100), "'steps' parameter of fit"),
    (dict(batch_size=32, penalty=sf.ElasticNet(alpha=0.1)), "'penalty'"),
])
def test_bad_inputs_name_the_parameter(kw, match):
    x, y = gaussian_data(50)
    with pytest.raises(ValueError, match=match):
        sf.fit(sf.Linear(), sf.Gaussian(), x, y, **kw)
