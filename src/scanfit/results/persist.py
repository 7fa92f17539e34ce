"""Saved models: ``result.save(dir)`` and ``sf.load(dir)``, without pickle.

A saved model is a directory with two files:

- ``params.safetensors``: every parameter array, bit for bit (safetensors never runs code);
- ``model.json``: the format version, the model and likelihood specifications, feature names,
  the fit's settings, status, final statistics, the restarts table, the history, the
  scanfit and JAX versions, and the SHA-256 of the parameter file (so corruption is caught).

Loading rebuilds a built-in model (``Linear``, ``MLP``) from its specification; no code is
read from the files. A user model (``sf.Function`` or a flax NNX ``sf.Module``) cannot be
rebuilt from data, so its parameters are saved and ``sf.load(dir, model=...)`` takes the same
model again (its parameter structure and shapes are checked against the file).

Writes are atomic: the directory is written under a temporary name and renamed into place,
so a crash mid-save never leaves a half-written model that loads.

>>> import scanfit as sf, numpy as np, tempfile
>>> d = sf.datasets.linear(n_train=200, seed=0)
>>> r = sf.fit(sf.Linear(), sf.Gaussian(), d.train.x, d.train.y, steps=50)
>>> path = tempfile.mkdtemp() + "/model"
>>> _ = r.save(path)
>>> bool((sf.load(path).predict(d.valid.x) == r.predict(d.valid.x)).all())
True
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pandas as pd

from ..engine import optimizers
from ..engine.config import EarlyStopping, FitConfig
from ..engine.outcome import Outcome, Status
from ..likelihoods import Bernoulli, Categorical, Gaussian
from ..models.core import MLP, Linear, as_model

__all__ = ["save", "read", "info", "ModelFileError", "FORMAT_VERSION", "PARAMS_FILE", "META_FILE"]

FORMAT = "scanfit-model"
FORMAT_VERSION = 1
PARAMS_FILE = "params.safetensors"
META_FILE = "model.json"


class ModelFileError(ValueError):
    """A saved model is missing, truncated, corrupted, or from a newer format version."""


# ---------------------------------------------------------------- parameter trees <-> flat arrays

def _flatten(tree: Any, prefix: str, out: dict) -> Any:
    """Nested dicts/lists/tuples of arrays -> a JSON structure, filling ``out`` with arrays."""
    if isinstance(tree, dict):
        items = []
        for k, v in tree.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"Cannot save parameters: dict key {k!r} is a {type(k).__name__}; keys must be str or int.")
            items.append([k, _flatten(v, f"{prefix}{k}/", out)])
        return {"dict": items}
    if isinstance(tree, (list, tuple)):
        kind = "list" if isinstance(tree, list) else "tuple"
        return {kind: [_flatten(v, f"{prefix}{i}/", out) for i, v in enumerate(tree)]}
    arr = np.asarray(tree)
    if not arr.flags.c_contiguous:
        arr = arr.copy(order="C")  # (np.ascontiguousarray would turn a 0-d array into shape (1,))
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"Cannot save parameter {prefix.rstrip('/')!r}: dtype {arr.dtype} is not numeric.")
    name = prefix.rstrip("/") or "value"
    out[name] = arr
    return {"leaf": name}


def _unflatten(structure: Any, arrays: dict) -> Any:
    if "dict" in structure:
        return {k: _unflatten(v, arrays) for k, v in structure["dict"]}
    if "list" in structure:
        return [_unflatten(v, arrays) for v in structure["list"]]
    if "tuple" in structure:
        return tuple(_unflatten(v, arrays) for v in structure["tuple"])
    return arrays[structure["leaf"]]


def _shapes(tree: Any) -> Any:
    import jax

    return jax.tree.map(lambda a: list(np.shape(a)), tree)


# ---------------------------------------------------------------- JSON helpers

def _clean(value: Any) -> Any:
    """NumPy scalars and NaN/inf to plain JSON values (NaN and inf become null)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _frame_to_json(frame: pd.DataFrame) -> dict:
    return {"columns": [str(c) for c in frame.columns],
            "dtypes": {str(c): str(t) for c, t in frame.dtypes.items()},
            "data": {str(c): _clean(frame[c].tolist()) for c in frame.columns}}


def _frame_from_json(blob: dict) -> pd.DataFrame:
    """The frame back with its dtypes (float32 values survive JSON exactly as float64 text)."""
    frame = pd.DataFrame({c: [np.nan if v is None else v for v in blob["data"][c]] for c in blob["columns"]},
                         columns=blob["columns"])
    for c, t in (blob.get("dtypes") or {}).items():
        if t in ("float32", "float64", "int32", "int64", "bool") and c in frame.columns:
            frame[c] = frame[c].astype(t)
    return frame


def _config_json(config) -> dict:
    es = config.early_stopping
    return {"optimizer": optimizers.label(config.optimizer), "custom_optimizer": not isinstance(config.optimizer, str),
            "learning_rate": config.learning_rate, "steps": config.steps, "record_every": config.record_every,
            "restarts": config.restarts, "seed": config.seed, "dtype": config.dtype, "tol": config.tol,
            "early_stopping": None if es is None else {"monitor": es.monitor, "min_delta": es.min_delta,
                                                        "patience": es.patience, "restore_best": es.restore_best}}


def _model_json(model) -> dict:
    spec = _clean(model.spec())
    if model.name == "module":
        from flax import nnx

        spec["class"] = type(nnx.merge(model._graphdef, model._template)).__name__
    if model.name == "function":
        spec["function"] = getattr(model.predict, "__qualname__", repr(model.predict))
    return spec


# ---------------------------------------------------------------- save

def save(result, path: str | os.PathLike, *, extra: dict | None = None, overwrite: bool = True,
         summary: str | None = None) -> Path:
    """Write ``result`` (a FitResult) to the directory ``path``; return the path.

    ``extra`` is a JSON-serializable dict stored as ``metadata["extra"]`` (the CLI keeps the
    target column, its classes and the data's origin there). ``summary`` is the summary table's
    text; by default it is computed here for models with interpretable coefficients (not for
    networks, whose weights are not identified) when the result holds its training data, so that
    ``scanfit summary`` can show it without the data. An existing saved model at ``path`` is
    replaced atomically; any other existing, non-empty directory is refused.
    """
    import jax

    from importlib.metadata import version

    __version__ = version("scanfit")

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"Cannot save to {str(path)!r}: it is a file; give a directory path.")
    if path.is_dir() and any(path.iterdir()) and not (path / META_FILE).exists():
        raise FileExistsError(f"Cannot save to {str(path)!r}: it is a non-empty directory that is not a saved "
                              f"scanfit model; choose a new or empty directory.")
    if not overwrite and (path / META_FILE).exists():
        raise FileExistsError(f"A saved model already exists at {str(path)!r}; pass overwrite=True to replace it.")
    from safetensors.numpy import save as st_save

    arrays: dict = {}
    structure = _flatten(jax.device_get(result.params), "", arrays)
    blob = st_save(arrays, metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
    network = getattr(result.model, "name", None) in ("mlp", "module")
    if summary is None and hasattr(result, "summary_text") and result.train is not None and not network:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                summary = result.summary_text()
        except Exception as err:  # summaries are optional; say why there is none
            summary = f"(no summary table: {err})"
    n_train = None if result.train is None else int(np.shape(result.train[0])[0])
    n_valid = None if result.valid is None else int(np.shape(result.valid[0])[0])
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "scanfit_version": __version__, "jax_version": jax.__version__,
        "model": _model_json(result.model), "likelihood": _clean(result.likelihood.spec()),
        "feature_names": list(result.feature_names), "config": _clean(_config_json(result.config)),
        "status": {"code": result.status.code, "steps": result.status.steps, "message": result.status.message,
                   "step": result.status.step},
        "final": _clean(result.final), "seconds": result.seconds, "best_start": result.best_start,
        "n_train": n_train, "n_valid": n_valid,
        "restarts": _frame_to_json(result.restarts) if result.start_finals else None,
        "history": _frame_to_json(result.history),
        "summary_text": summary, "params": {"structure": structure,
                                            "sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)},
        "extra": _clean(extra or {}),
    }
    history = meta.pop("history")  # compact: one line for the history, which can have many rows
    text = json.dumps(meta, indent=1, allow_nan=False)[:-2] + ',\n "history": ' + \
        json.dumps(history, separators=(",", ":"), allow_nan=False) + "\n}"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private (0700); a saved model is an ordinary directory
        for name, data in ((PARAMS_FILE, blob), (META_FILE, text.encode())):
            with open(tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "model")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


# ---------------------------------------------------------------- load

def info(path: str | os.PathLike) -> dict:
    """The checked metadata (``model.json``) of a saved model, without loading its parameters."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"No saved model at {str(path)!r}: the directory does not exist. "
                             f"Save one with result.save({str(path)!r}) or `scanfit fit ... --out DIR`.")
    meta_file = path / META_FILE
    if not path.is_dir() or not meta_file.exists():
        raise ModelFileError(f"{str(path)!r} is not a saved scanfit model: {META_FILE} is missing. "
                             f"Give the directory that result.save() wrote.")
    try:
        meta = json.loads(meta_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"The saved model at {str(path)!r} is corrupted or truncated: {META_FILE} is not "
                             f"valid JSON ({err}). Save the model again.") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{str(meta_file)!r} is not a scanfit model file (format "
                             f"{meta.get('format') if isinstance(meta, dict) else None!r}, expected {FORMAT!r}).")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(f"The saved model at {str(path)!r} has format version {version!r}, newer than this "
                             f"scanfit reads (version {FORMAT_VERSION}); it was written by scanfit "
                             f"{meta.get('scanfit_version')}. Upgrade scanfit (pip install -U scanfit) to load it.")
    missing = [k for k in ("model", "likelihood", "feature_names", "config", "params", "history", "status") if k not in meta]
    if missing:
        raise ModelFileError(f"The saved model at {str(path)!r} is corrupted: {META_FILE} lacks {missing}. Save it again.")
    return meta


def _read_params(path: Path, meta: dict) -> Any:
    from safetensors.numpy import load as st_load

    file = path / PARAMS_FILE
    if not file.exists():
        raise ModelFileError(f"The saved model at {str(path)!r} is incomplete: {PARAMS_FILE} is missing. Save it again.")
    blob = file.read_bytes()
    want = meta["params"]
    if len(blob) != want.get("bytes") or hashlib.sha256(blob).hexdigest() != want.get("sha256"):
        what = "truncated" if len(blob) < (want.get("bytes") or 0) else "corrupted"
        raise ModelFileError(f"The saved model at {str(path)!r} is {what}: {PARAMS_FILE} has {len(blob)} bytes whose "
                             f"checksum does not match the one recorded at save time ({want.get('bytes')} bytes). "
                             f"Save the model again.")
    try:
        arrays = st_load(blob)
        return _unflatten(want["structure"], arrays)
    except Exception as err:
        raise ModelFileError(f"The saved model at {str(path)!r} is corrupted: cannot read {PARAMS_FILE} ({err}).") from None


def _rebuild_model(spec: dict, model: Any):
    name = spec.get("name")
    if model is not None:
        model = as_model(model)
        if model.name != name:
            raise ValueError(f"The 'model' parameter of load is a {model.name!r} model but the file holds a {name!r} model.")
        return model
    if name == "linear":
        return Linear(init_scale=spec["init_scale"])
    if name == "mlp":
        return MLP(hidden=tuple(spec["hidden"]), activation=spec["activation"], init_scale=spec["init_scale"])
    if name == "function":
        raise ValueError(f"This saved model is a user function ({spec.get('function', '?')}); its code is not saved. "
                         f"Pass the same function: sf.load(path, model=sf.Function(predict, params=...)).")
    if name == "module":
        raise ValueError(f"This saved model is a flax NNX module ({spec.get('class', '?')}); its code is not saved. "
                         f"Pass the same module: sf.load(path, model=sf.Module(make)).")
    raise ModelFileError(f"Unknown model {name!r} in the saved file; it was written by another scanfit version.")


def _rebuild_likelihood(spec: dict):
    kinds = {"gaussian": Gaussian, "bernoulli": Bernoulli, "categorical": Categorical}
    if spec.get("name") not in kinds:
        raise ModelFileError(f"Unknown likelihood {spec.get('name')!r} in the saved file.")
    return kinds[spec["name"]](**{k: v for k, v in spec.items() if k != "name"})


def read(path: str | os.PathLike, *, model: Any = None) -> Outcome:
    """Read a model saved with ``result.save(path)``: the record that ``sf.load`` turns into a FitResult.

    ``model`` is needed only for user models (``sf.Function``, ``sf.Module``), whose code is not
    saved: pass the same model again. The loaded result holds no training data, and of several
    starts only the kept one's parameters and history (``result.restarts`` lists them all).
    """
    path = Path(path)
    meta = info(path)
    params = _read_params(path, meta)
    fitted_model = _rebuild_model(meta["model"], model)
    likelihood = _rebuild_likelihood(meta["likelihood"])
    if meta["model"]["name"] in ("function", "module"):
        names = meta["feature_names"]
        expected = _shapes(fitted_model.init(jax.random.key(0), len(names), likelihood.n_outputs))
        if _shapes(params) != expected:
            raise ValueError(f"The 'model' parameter of load does not match the saved parameters: the file holds "
                             f"{_shapes(params)} but the model builds {expected}. Pass the model that was fitted.")
    c = dict(meta["config"])
    es = c.pop("early_stopping")
    c.pop("custom_optimizer", None)
    config = FitConfig(**c, early_stopping=None if es is None else EarlyStopping(**es))
    st = meta["status"]
    status = Status(st["code"], st["steps"], st["message"], st.get("step"))
    final = {k: (np.nan if v is None else v) for k, v in (meta.get("final") or {}).items()}
    starts, finals = [status], [final]
    if meta.get("restarts"):
        table = _frame_from_json(meta["restarts"])
        stat_cols = [col for col in table.columns if col not in ("start", "steps", "status", "chosen")]
        finals = [{k: float(row[k]) for k in stat_cols} for _, row in table.iterrows()]
        starts = [status if bool(row["chosen"]) else Status(row["status"], int(row["steps"]), "(from a saved model)")
                  for _, row in table.iterrows()]
    history = _frame_from_json(meta["history"])
    best = int(meta.get("best_start", 0))
    return Outcome(model=fitted_model, likelihood=likelihood, config=config, params=params, history=history,
                     status=status, feature_names=tuple(meta["feature_names"]), final=final,
                     seconds=float(meta.get("seconds") or 0.0), best_start=best,
                     start_histories=[history if i == best else None for i in range(len(starts))],
                     start_params=[params if i == best else None for i in range(len(starts))],
                     start_statuses=starts, start_finals=finals, train=None, valid=None)
