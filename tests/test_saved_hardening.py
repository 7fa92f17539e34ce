"""Saved models that were tampered with, corrupted or replaced by odd files: every case ends in a
ModelFileError that names the model, the file and the fix, never in a hang, a traceback from
inside JSON/NumPy/JAX, or a model that loads and predicts something else."""

import dataclasses
import hashlib
import json
import os
import re
import threading
import warnings

import _saved
import numpy as np
import pytest
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

import scanfit as sf
from scanfit.results import model_files, persist

FIX = "Save the model again"


@pytest.fixture(scope="module")
def hill():
    return _saved.hill()


@pytest.fixture(scope="module")
def fitted():
    return _saved.fits()[0]


@pytest.fixture
def saved(tmp_path, fitted):
    return fitted.save(tmp_path / "m", extra={"target": "t", "classes": ["no", "yes"]}, summary="")


def _meta(path):
    return json.loads((path / "model.json").read_text())


def _edit(path, change, sign=True):
    """Change model.json; ``sign``: recompute its digest, as a careful forger would."""
    meta = _meta(path)
    change(meta)
    if sign:
        meta["digest"] = model_files.digest(meta)
    (path / "model.json").write_text(json.dumps(meta))


def _set_params(path, arrays):
    """Replace the parameter file and record its checksum and size (and sign model.json)."""
    blob = st_save(arrays)
    (path / "params.safetensors").write_bytes(blob)
    _edit(path, lambda m: m["params"].update(sha256=hashlib.sha256(blob).hexdigest(), bytes=len(blob)))


def _refused(path, message):
    with pytest.raises(sf.ModelFileError, match=re.escape(repr(str(path))) + ".*" + message):
        sf.load(path)


def _in_time(fn, seconds=30):
    """Run fn in a daemon thread and fail (instead of hanging the suite) if it does not return."""
    out = {}

    def run():
        try:
            fn()
        except BaseException as err:  # noqa: BLE001 - handed to the test
            out["err"] = err

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn} hung"
    return out.get("err")


# ---------------------------------------------------------------- what stands in place of a file

@pytest.mark.parametrize("name", ["params.safetensors", "model.json"])
def test_symlink_to_dev_zero_is_refused_unread(saved, name):
    (saved / name).unlink()
    os.symlink("/dev/zero", saved / name)
    err = _in_time(lambda: sf.load(saved))
    assert isinstance(err, sf.ModelFileError)
    assert re.search(rf"{name} is a symbolic link to a character device .*not a regular file.*{FIX}", str(err))
    assert repr(str(saved)) in str(err)


@pytest.mark.parametrize("name", ["params.safetensors", "model.json"])
def test_fifo_is_refused_without_hanging(saved, name):
    (saved / name).unlink()
    os.mkfifo(saved / name)
    err = _in_time(lambda: sf.load(saved))
    assert isinstance(err, sf.ModelFileError)
    assert re.search(rf"{name} is a FIFO \(named pipe\), not a regular file.*{FIX}", str(err))


@pytest.mark.parametrize("name", ["params.safetensors", "model.json"])
def test_directory_in_place_of_a_file(saved, name):
    (saved / name).unlink()
    (saved / name).mkdir()
    _refused(saved, f"{name} is a directory, not a regular file.*{FIX}")


def test_a_symlink_to_a_regular_file_still_loads(saved, hill, fitted, tmp_path):
    """A followed link is checked, not refused (DVC and git-annex keep files as links)."""
    real = tmp_path / "store.bin"
    (saved / "params.safetensors").rename(real)
    os.symlink(real, saved / "params.safetensors")
    np.testing.assert_array_equal(sf.load(saved).predict(hill.valid.x), fitted.predict(hill.valid.x))


def test_oversized_files_are_refused_unread(saved):
    with open(saved / "params.safetensors", "ab") as f:
        f.write(b"\0" * 16)
    _refused(saved, f"params.safetensors has [0-9]+ bytes, more than the [0-9]+ it may have.*{FIX}")
    meta = saved / "model.json"
    meta.unlink()
    with open(meta, "wb") as f:  # sparse: the size is the only thing that would be read
        f.truncate(model_files.MAX_META_BYTES + 1)
    _refused(saved, f"model.json has {model_files.MAX_META_BYTES + 1} bytes, more than the "
                    f"{model_files.MAX_META_BYTES} it may have.*{FIX}")


# ---------------------------------------------------------------- JSON that Python cannot or should not read

@pytest.mark.parametrize("text, message", [
    ("[" * 100_000 + "]" * 100_000, "model.json nests JSON arrays or objects too deeply to read"),
    ('{"format": "scanfit-model", "format_version": 2, "seed": 1' + "0" * 5000 + "}",
     "model.json holds a number that cannot be read .*4300"),
    ('{"format": "scanfit-model", "format_version": 2, "x": NaN}', "model.json holds NaN, which JSON does not allow"),
    ('{"format": "scanfit-model", "format_version": 2, "x": 1e999}', "model.json holds a number too large for a float"),
    ('{"format": "scanfit-model", "format": "scanfit-model"}', "model.json repeats the key 'format'"),
    (b"\xff\xfe{}", "model.json is not UTF-8 text"),
])
def test_json_python_cannot_read(saved, text, message):
    (saved / "model.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    _refused(saved, f"{message}.*{FIX}")


def test_json_nested_deeper_than_a_model_needs(saved):
    deep = {}
    node = deep
    for _ in range(model_files.MAX_DEPTH + 5):
        node["x"] = {}
        node = node["x"]
    _edit(saved, lambda m: m["extra"].update(deep=deep))
    _refused(saved, f"model.json nests JSON arrays or objects deeper than {model_files.MAX_DEPTH} levels.*{FIX}")


@pytest.mark.parametrize("version", [0, -7, True, "2", None, 1.5])
def test_format_versions_no_scanfit_writes(saved, version):
    _edit(saved, lambda m: m.update(format_version=version))
    _refused(saved, f"model.json has format version {re.escape(repr(version))}, which no scanfit writes.*{FIX}")


# ---------------------------------------------------------------- the schema, with a valid digest

@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(extra=["t"]), r"in model.json, extra must be a JSON object, not \['t'\]"),
    (lambda m: m["extra"].update(classes=["yes"]), r"extra.classes must be a list of 2 items, not \['yes'\]"),
    (lambda m: m["extra"].update(classes=["a", "a"]), "extra.classes repeats a class"),
    (lambda m: m["model"].pop("init_scale"), "model lacks the key 'init_scale'"),
    (lambda m: m.pop("config"), "the top level lacks the key 'config'"),
    (lambda m: m["likelihood"].update(weights=[1, 2]), "likelihood has the unexpected key 'weights'"),
    (lambda m: m.update(comment="hi"), "the top level has the unexpected key 'comment'"),
    (lambda m: m["model"].update(name="forest"), r"model.name must be one of \['linear', 'mlp'"),
    (lambda m: m["config"].update(dtype="float16"), r"config.dtype must be one of \['float32', 'float64'\], not 'float16'"),
    (lambda m: m["config"].update(steps=0), "config.steps must be an int in 1..9223372036854775807, not 0"),
    (lambda m: m["config"].update(learning_rate=-1), "config.learning_rate must be a finite number > 0, not -1"),
    (lambda m: m.update(feature_names=["x0", 1]), r"feature_names\[1\] must be a string, not 1"),
    (lambda m: m.update(best_start=3), r"best_start \(3\) is not the start that restarts.chosen marks"),
    (lambda m: m["history"]["data"]["step"].pop(), "history has columns of different lengths"),
    (lambda m: m["params"].update(sha256="XYZ"), "params.sha256 must be 64 lowercase hex digits"),
    (lambda m: m["params"].update(structure={"dict": [["beta0", {"leaf": "beta0"}], ["beta1", {"leaf": "beta0"}]]}),
     "params.structure names one parameter twice"),
    (lambda m: m["params"].update(structure={"set": []}), 'params.structure must be one of {"dict": ...}'),
])
def test_schema_violations_are_named(saved, change, message):
    _edit(saved, change)
    _refused(saved, f"is not usable: .*{message}.*{FIX}")


@pytest.mark.parametrize("change", [
    lambda m: m["history"]["data"]["step"].__setitem__(0, "zero"),  # an int64 column
    lambda m: m["config"].update(early_stopping={"monitor": "loss", "min_delta": 0, "patience": 5, "restore_best": True}),
])
def test_values_that_pass_the_types_but_cannot_be_used(saved, change):
    _edit(saved, change)
    _refused(saved, f"is not usable: model.json holds a value that cannot be used .*{FIX}")


def test_info_checks_the_schema_too(saved):
    _edit(saved, lambda m: m["config"].update(dtype="float16"))
    with pytest.raises(sf.ModelFileError, match="config.dtype must be one of"):
        persist.info(saved)


def test_parameters_of_a_wrong_shape_under_a_valid_checksum(saved):
    _set_params(saved, {"beta0": np.zeros((), np.float32), "beta1": np.zeros(3, np.float32)})
    _refused(saved, rf"params.safetensors holds parameters of shapes .*\[3\].* but a linear model with 2 features "
                    rf"and 1 output\(s\) has .*\[2\].*{FIX}")
    _set_params(saved, {"beta0": np.zeros((), np.float32), "beta1": np.zeros(2, np.float32),
                        "gamma": np.zeros(2, np.float32)})
    _refused(saved, f"params.safetensors holds the arrays .*'gamma'.* but model.json names.*{FIX}")


def test_network_shapes_follow_the_hidden_sizes_and_features(tmp_path, hill):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = sf.fit(sf.MLP(hidden=(3, 2)), sf.Bernoulli(), hill.train.x, hill.train.y, optimizer="gd", steps=5)
    path = r.save(tmp_path / "mlp")
    np.testing.assert_array_equal(sf.load(path).predict(hill.valid.x), r.predict(hill.valid.x))
    _edit(path, lambda m: m["model"].update(hidden=[4, 2]))
    _refused(path, rf"holds parameters of shapes .* but a mlp model with 2 features and 1 output\(s\) has .*\[2, 4\].*{FIX}")
    _edit(path, lambda m: m["model"].update(hidden=[3, 2], activation="gelu"))
    _refused(path, rf"model.activation must be one of \['sigmoid', 'tanh', 'relu'\], not 'gelu'.*{FIX}")


@pytest.mark.parametrize("beta1, message", [
    (np.array([np.nan, 1.0], np.float32), r"parameter \['beta1'\] in params.safetensors holds NaN or infinite values"),
    (np.array([np.inf, 1.0], np.float32), r"parameter \['beta1'\] in params.safetensors holds NaN or infinite values"),
    (np.array([1, 2], np.int64), r"parameter \['beta1'\] in params.safetensors is int64, but the fit's dtype \(config.dtype\) is float32"),
    (np.array([1, 2], np.float16), r"parameter \['beta1'\] in params.safetensors is float16, but the fit's dtype"),
    (np.array([1, 2], np.float64), r"parameter \['beta1'\] in params.safetensors is float64, but the fit's dtype"),
])
def test_bad_parameter_values_under_a_valid_checksum(saved, beta1, message):
    arrays = st_load((saved / "params.safetensors").read_bytes())
    _set_params(saved, {**arrays, "beta1": beta1})
    _refused(saved, f"{message}.*{FIX}")


def test_a_safetensors_file_that_is_not_one(saved):
    blob = b"\xff" * 64
    (saved / "params.safetensors").write_bytes(blob)
    _edit(saved, lambda m: m["params"].update(sha256=hashlib.sha256(blob).hexdigest(), bytes=64))
    _refused(saved, f"is corrupted: cannot read params.safetensors .*{FIX}")


# ---------------------------------------------------------------- integrity of model.json itself

@pytest.mark.parametrize("change", [
    lambda m: m.update(feature_names=m["feature_names"][::-1]),
    lambda m: m["extra"].update(classes=m["extra"]["classes"][::-1]),  # labels inverted
    lambda m: m.update(likelihood={"name": "gaussian"}),
    lambda m: m["config"].update(learning_rate=0.2),
    lambda m: m.pop("digest"),
])
def test_edits_of_model_json_are_caught(saved, change):
    _edit(saved, change, sign=False)
    _refused(saved, f"model.json was modified after saving: its content does not match the SHA-256 recorded in it.*{FIX}")
    with pytest.raises(sf.ModelFileError, match="was modified after saving"):
        persist.info(saved)  # the CLI reads classes through info: they are checked there too


def test_the_digest_covers_the_canonical_content_only(saved, hill, fitted):
    """Reformatting model.json (indentation, key order) keeps it valid; the digest is of the content."""
    meta = _meta(saved)
    (saved / "model.json").write_text(json.dumps(dict(reversed(list(meta.items()))), indent=4))
    np.testing.assert_array_equal(sf.load(saved).predict(hill.valid.x), fitted.predict(hill.valid.x))
    assert meta["digest"] == model_files.digest(meta)


def test_format_version_1_files_still_load_when_they_pass_the_checks(saved, hill, fitted):
    def as_v1(m):
        m.update(format_version=1)
        m.pop("digest")
    _edit(saved, as_v1, sign=False)
    loaded = sf.load(saved)
    np.testing.assert_array_equal(loaded.predict(hill.valid.x), fitted.predict(hill.valid.x))
    _edit(saved, lambda m: m["config"].update(dtype="float16"), sign=False)
    _refused(saved, f"config.dtype must be one of.*{FIX}")


# ---------------------------------------------------------------- save refuses what load would refuse

def test_save_refuses_what_load_would_refuse(tmp_path, fitted):
    with pytest.raises(ValueError, match=r"Cannot save to .*: extra.classes must be a list of 2 items"):
        fitted.save(tmp_path / "m", extra={"classes": [1, 2, 3]}, summary="")
    assert not (tmp_path / "m").exists()
    bad = dataclasses.replace(fitted, params={**fitted.params, "beta1": np.array([np.nan, 1.0], np.float32)})
    with pytest.raises(ValueError, match=r"Cannot save to .*: parameter \['beta1'\] .* holds NaN"):
        bad.save(tmp_path / "n", summary="")
    assert not (tmp_path / "n").exists()


def test_read_with_info_gives_the_parameters_and_metadata_of_one_model(saved, fitted):
    outcome, meta = persist.read_with_info(saved)
    assert meta == persist.info(saved) and meta["extra"]["classes"] == ["no", "yes"]
    np.testing.assert_array_equal(outcome.params["beta1"], fitted.params["beta1"])
