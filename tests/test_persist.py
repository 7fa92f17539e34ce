"""Saved models: one round trip per model type (bit-identical predictions), and clear errors for
missing, truncated, corrupted and newer-format files; writes are atomic."""

import json
import os

import numpy as np
import pytest

import _io_fits
import scanfit as sf
from scanfit.results import persist


@pytest.fixture(scope="module")
def small():
    return _io_fits.hill()


@pytest.fixture(scope="module")
def linear_fit():
    return _io_fits.linear()


def _same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a, b)  # bit-identical, not merely close


def test_linear_round_trip(tmp_path, linear_fit):
    d, r = linear_fit
    path = r.save(tmp_path / "m")
    loaded = sf.load(path)
    _same(loaded.predict(d.valid.x), r.predict(d.valid.x))
    assert loaded.model == r.model and loaded.likelihood == r.likelihood
    assert loaded.feature_names == r.feature_names
    assert loaded.config.learning_rate == r.config.learning_rate and loaded.config.steps == 60
    assert loaded.status == r.status and loaded.final == pytest.approx(r.final, rel=0, abs=0)
    assert loaded.history.equals(r.history)
    for k in r.params:
        _same(np.asarray(loaded.params[k]), np.asarray(r.params[k]))
    meta = json.loads((path / "model.json").read_text())
    assert meta["format_version"] == persist.FORMAT_VERSION and meta["jax_version"]
    assert meta["n_train"] == 300 and meta["n_valid"] == 50
    if hasattr(r, "summary_text"):  # stored at save time, so `scanfit summary` needs no data
        assert "intercept" in meta["summary_text"]


def test_mlp_round_trip_with_restarts_and_float64(tmp_path, small):
    r = _io_fits.mlp()
    loaded = sf.load(r.save(tmp_path / "mlp"))
    _same(loaded.predict(small.valid.x), r.predict(small.valid.x))
    assert all(np.asarray(v).dtype == np.float64 for v in loaded.params.values())
    assert loaded.model == sf.MLP(hidden=3, activation="tanh")
    assert list(loaded.restarts["chosen"]) == list(r.restarts["chosen"])
    assert loaded.restarts["valid_accuracy"].tolist() == r.restarts["valid_accuracy"].tolist()


def test_function_model_needs_the_function_at_load(tmp_path, small):
    def predict(p, x):
        return p["a"] + x @ p["b"] + p["c"] * x[:, 0] * x[:, 1]

    model = sf.Function(predict, params={"a": 0.0, "b": np.zeros(2, np.float32), "c": 0.0})
    r = sf.fit(model, sf.Bernoulli(), small.train.x, small.train.y, steps=30)
    path = r.save(tmp_path / "fn")
    with pytest.raises(ValueError, match=r"user function \(.*predict\); its code is not saved.*model=sf.Function"):
        sf.load(path)
    loaded = sf.load(path, model=model)
    _same(loaded.predict(small.valid.x), r.predict(small.valid.x))
    wrong = sf.Function(predict, params={"a": 0.0, "b": np.zeros(3, np.float32), "c": 0.0})
    with pytest.raises(ValueError, match="does not match the saved parameters"):
        sf.load(path, model=wrong)
    with pytest.raises(ValueError, match="is a 'linear' model but the file holds a 'function' model"):
        sf.load(path, model=sf.Linear())


def test_nnx_module_round_trip(tmp_path, small):
    pytest.importorskip("flax")
    from scanfit.demo import neural_module

    model = neural_module(2)
    r = sf.fit(model, sf.Categorical(), small.train.x, small.train.y, optimizer="rmsprop", steps=30)
    path = r.save(tmp_path / "nnx")
    meta = persist.info(path)
    assert meta["model"]["class"] == "Neural"
    with pytest.raises(ValueError, match=r"flax NNX module \(Neural\).*sf.load\(path, model=sf.Module\(make\)\)"):
        sf.load(path)
    loaded = sf.load(path, model=neural_module(2))
    assert loaded.likelihood == sf.Categorical(n_classes=2)
    _same(loaded.predict(small.valid.x), r.predict(small.valid.x))
    with pytest.raises(ValueError, match="does not match the saved parameters"):
        sf.load(path, model=neural_module(3))


def test_missing_directory_and_missing_files(tmp_path, linear_fit):
    with pytest.raises(sf.ModelFileError, match="No saved model at .*nope.*does not exist"):
        sf.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(sf.ModelFileError, match="not a saved scanfit model: model.json is missing"):
        sf.load(tmp_path / "empty")
    path = linear_fit[1].save(tmp_path / "m")
    (path / "params.safetensors").unlink()
    with pytest.raises(sf.ModelFileError, match="incomplete: params.safetensors is missing"):
        sf.load(path)


def test_truncated_and_corrupted_files(tmp_path, linear_fit):
    path = linear_fit[1].save(tmp_path / "m")
    params = path / "params.safetensors"
    blob = params.read_bytes()
    params.write_bytes(blob[:-7])
    with pytest.raises(sf.ModelFileError, match="is truncated: params.safetensors has"):
        sf.load(path)
    flipped = bytearray(blob)
    flipped[-1] ^= 0xFF  # one bit pattern in the data region: safetensors alone would not notice
    params.write_bytes(bytes(flipped))
    with pytest.raises(sf.ModelFileError, match="is corrupted: .*checksum does not match"):
        sf.load(path)
    params.write_bytes(blob)
    meta = path / "model.json"
    text = meta.read_text()
    meta.write_text(text[: len(text) // 2])
    with pytest.raises(sf.ModelFileError, match="model.json is not valid JSON .*corrupted or truncated. Save the model again"):
        sf.load(path)


def test_newer_format_is_refused(tmp_path, linear_fit):
    path = linear_fit[1].save(tmp_path / "m")
    meta = json.loads((path / "model.json").read_text())
    meta["format_version"] = persist.FORMAT_VERSION + 1
    (path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(sf.ModelFileError, match=f"format version {persist.FORMAT_VERSION + 1}, newer than this scanfit "
                                                 f"reads .*Upgrade scanfit"):
        sf.load(path)


def test_refuses_to_overwrite_other_directories(tmp_path, linear_fit):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match=r"holds files that scanfit did not write \(keep.txt\)"):
        linear_fit[1].save(tmp_path / "data")
    assert (tmp_path / "data" / "keep.txt").read_text() == "precious"
    path = linear_fit[1].save(tmp_path / "m")
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        linear_fit[1].save(path, overwrite=False)


def test_crash_mid_save_leaves_the_old_model_loadable(tmp_path, monkeypatch, linear_fit, small):
    d, r = linear_fit
    path = r.save(tmp_path / "m")
    other = sf.fit(sf.Linear(), sf.Gaussian(), d.train.x, d.train.y * 2, steps=20)

    def crash(fd):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="simulated"):
        other.save(path)
    monkeypatch.undo()
    _same(sf.load(path).predict(d.valid.x), r.predict(d.valid.x))  # the old model, intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary debris
    with pytest.raises(OSError, match="simulated"):
        monkeypatch.setattr(os, "fsync", crash)
        other.save(tmp_path / "new")
    monkeypatch.undo()
    assert not (tmp_path / "new").exists()  # nothing half-written that could load


def test_no_pickle_in_files(tmp_path, linear_fit):
    path = linear_fit[1].save(tmp_path / "m")
    assert sorted(p.name for p in path.iterdir()) == [".scanfit-fit.json", "model.json", "params.safetensors"]
    assert b"pickle" not in (path / "params.safetensors").read_bytes()[:200]


@pytest.mark.parametrize("case", ["gaussian_weights", "logit_weights", "negbin", "categorical"])
def test_loaded_fit_gives_the_summary_without_its_rows(tmp_path, case):
    """A saved in-memory fit keeps its information, scores' outer products and gradient: the loaded model
    (no rows) gives the nonrobust, HC0 and HC1 tables of the fit itself; leverages refuse clearly."""
    rng = np.random.default_rng(5)
    n = 200
    x = rng.normal(size=(n, 2))
    w = rng.integers(1, 4, n).astype(float)
    lik, y, kw = {
        "gaussian_weights": (sf.Gaussian(), x @ [1.0, -2.0] + rng.normal(size=n), {"weights": w}),
        "logit_weights": (sf.Bernoulli(), (x @ [1.0, -1.0] + rng.logistic(size=n) > 0).astype(float), {"weights": w}),
        "negbin": (sf.NegativeBinomial(), rng.negative_binomial(2, 2 / (2 + np.exp(0.4 * x[:, 0] + 1))), {}),
        "categorical": (sf.Categorical(n_classes=3), np.argmax(x @ rng.normal(size=(2, 3)) + rng.gumbel(size=(n, 3)), 1),
                        {}),
    }[case]
    r = sf.fit(sf.Linear(), lik, x, y, optimizer="newton", **kw)
    loaded = sf.load(r.save(tmp_path / "m"))
    assert loaded.train is None
    for cov in ("nonrobust", "HC0", "HC1"):
        a, b = r.summary(cov_type=cov), loaded.summary(cov_type=cov)
        assert list(a.index) == list(b.index)
        np.testing.assert_allclose(b.to_numpy(float), a.to_numpy(float), rtol=1e-10, atol=1e-300)
        for key in ("loglik", "llnull", "llr", "aic", "bic", "n_obs"):
            assert b.attrs[key] == pytest.approx(a.attrs[key], rel=1e-10), key
        assert b.attrs["distribution"] == a.attrs["distribution"]
    with pytest.raises(ValueError, match="loaded from disk"):
        loaded.summary(cov_type="HC3")


def test_loaded_penalized_fit_still_refuses_a_summary(tmp_path, linear_fit):
    d, _ = linear_fit
    r = sf.fit(sf.Linear(), sf.Gaussian(), d.train.x, d.train.y, optimizer="newton",
               penalty=sf.ElasticNet(alpha=0.1, l1_ratio=0.0))
    loaded = sf.load(r.save(tmp_path / "m"))
    with pytest.raises(ValueError, match="keeps no training rows"):
        loaded.summary()
