"""Saved models: ``result.save(dir)`` and ``sf.load(dir)``, without pickle.

A saved model is a directory with two files (and scanfit's manifest of them, :data:`run_dir.MARKER`):

- ``params.safetensors``: every parameter array, bit for bit (safetensors never runs code);
- ``model.json``: the format version, the model and likelihood specifications, feature names,
  the fit's settings, status, final statistics, the restarts table, the history, the
  scanfit and JAX versions, the SHA-256 and size of the parameter file, and (format 2) ``digest``,
  the SHA-256 of ``model.json``'s own content, so that an edit of either file is caught.

Loading trusts neither file: both must be regular files of bounded size, ``model.json`` must match
its digest and the schema of :mod:`scanfit.results.model_schema` before any of it is used, and the
parameters must match their checksum and the shapes, dtype and finiteness the model implies
(:mod:`scanfit.results.model_files` reads them). Every problem is a :class:`ModelFileError` that
names the file and the fix. Format-1 files (no digest) still load when they pass the other checks.

Loading rebuilds a built-in model (``Linear``, ``MLP``) from its specification; no code is
read from the files. A user model (``sf.Function``, a flax NNX ``sf.Module``, ``sf.Equinox``)
cannot be rebuilt from data, so its parameters are saved and ``sf.load(dir, model=...)`` takes
the same model again (its parameter structure and shapes are checked against the file).

Writes are atomic: the directory is written under a temporary name beside the target and then
swapped into place in one step (Linux ``renameat2(RENAME_EXCHANGE)``), so the path holds the old
model or the new one at every instant; concurrent saves to one path take turns (a lock file). Only a
new or empty directory, or one that scanfit wrote (its manifest lists every file in it; a model saved
before manifests: its two files), is replaced: a file of the user's, or a directory holding one, is refused.

>>> import scanfit as sf, numpy as np, tempfile
>>> d = sf.datasets.linear(n_train=200, seed=0)
>>> r = sf.fit(sf.Linear(), sf.Gaussian(), d.train.x, d.train.y, optimizer="gd", steps=50)
>>> path = tempfile.mkdtemp() + "/model"
>>> _ = r.save(path)
>>> bool((sf.load(path).predict(d.valid.x) == r.predict(d.valid.x)).all())
True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pandas as pd

from ..data.design import Design
from ..engine import optimizers
from ..engine.config import EarlyStopping, FitConfig
from ..engine.penalty import ElasticNet
from ..engine.outcome import Outcome, Status
from ..likelihoods import Bernoulli, Categorical, Gaussian, NegativeBinomial, Poisson
from ..models.core import MLP, Linear, as_model
from . import model_files as files
from . import run_dir
from .model_files import MAX_META_BYTES, META_FILE, PARAMS_FILE, ModelFileError
from .model_schema import FORMAT, FORMAT_VERSION, MAX_INFERENCE, Invalid, check_meta, check_params, leaf_names

__all__ = ["save", "read", "read_with_info", "info", "ModelFileError", "FORMAT_VERSION", "PARAMS_FILE", "META_FILE"]


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
                                                        "patience": es.patience, "restore_best": es.restore_best},
            "standardize": config.standardize,
            "penalty": None if config.penalty is None else {"alpha": config.penalty.alpha,
                                                             "l1_ratio": config.penalty.l1_ratio}}


def _model_json(model) -> dict:
    spec = _clean(model.spec())
    if model.name == "module":
        from flax import nnx

        spec["class"] = type(nnx.merge(model._graphdef, model._template)).__name__
    if model.name == "function":
        spec["function"] = getattr(model.predict, "__qualname__", repr(model.predict))
    return spec


# ---------------------------------------------------------------- save

def _meta_text(meta: dict) -> str:
    """``model.json``'s text with its ``digest``: the history on one line at the end (it can have many rows)."""
    meta = json.loads(json.dumps(meta, allow_nan=False))  # plain JSON values, as a reader will see them
    meta["digest"] = files.digest(meta)
    history = meta.pop("history")
    return json.dumps(meta, indent=1, allow_nan=False)[:-2] + ',\n "history": ' + \
        json.dumps(history, separators=(",", ":"), allow_nan=False) + "\n}"


def _self_check(path: Path, text: str, params: Any, model, likelihood, dtype: str, rows: int) -> None:
    """Refuse to write what ``load`` would refuse (an ``extra`` that contradicts the model, NaN parameters)."""
    if len(text) > MAX_META_BYTES:
        raise ValueError(f"Cannot save to {str(path)!r}: {META_FILE} would have {len(text)} bytes, more than the "
                         f"{MAX_META_BYTES} that load reads (the history has {rows} rows); fit with a larger "
                         f"record_every.")
    try:
        meta = check_meta(files.parse_json(text.encode(), Invalid))
        check_params(params, model, len(meta["feature_names"]), likelihood.n_outputs, dtype, likelihood)
    except Invalid as err:
        raise ValueError(f"Cannot save to {str(path)!r}: {err}.") from None


def _write(directory: Path, name: str, data: bytes) -> None:
    with open(directory / name, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _inference_json(pieces) -> dict | None:
    """A streamed fit's information, scores' outer products and gradient (its standard errors without
    the rows), as JSON numbers; None for other fits or past ``MAX_INFERENCE`` coefficients."""
    if pieces is None or len(pieces["gradient"]) > MAX_INFERENCE or not all(
            np.all(np.isfinite(pieces[k])) for k in ("info", "meat", "gradient", "n_obs", "value")):
        return None
    return _clean({"info": np.asarray(pieces["info"], float).tolist(), "meat": np.asarray(pieces["meat"], float).tolist(),
                   "gradient": np.asarray(pieces["gradient"], float).tolist(), "n_obs": float(pieces["n_obs"]),
                   "value": float(pieces["value"]), "llnull": float(pieces["llnull"]), "family": pieces["family"]})


def _inference_of(blob: dict | None) -> dict | None:
    if blob is None:
        return None
    out = {k: (np.asarray(v, np.float64) if k in ("info", "meat", "gradient") else v) for k, v in blob.items()}
    out["llnull"] = np.nan if out["llnull"] is None else out["llnull"]
    return out


def save(result, path: str | os.PathLike, *, extra: dict | None = None, overwrite: bool = True,
         summary: str | None = None) -> Path:
    """Write ``result`` (a FitResult) to the directory ``path``; return the path.

    ``extra`` is a JSON-serializable dict stored as ``metadata["extra"]`` (the CLI keeps the
    target column, its classes and the data's origin there). ``summary`` is the summary table's
    text; by default it is computed here for models with interpretable coefficients (not for
    networks, whose weights are not identified) when the result holds its training data, so that
    ``scanfit summary`` can show it without the data. A directory that scanfit wrote at ``path`` is
    replaced atomically; a file, or a directory holding files that scanfit did not write, is refused.
    """
    from importlib.metadata import version

    from safetensors.numpy import save as st_save

    path = Path(path)
    arrays: dict = {}
    params = jax.device_get(result.params)
    structure = _flatten(params, "", arrays)
    blob = st_save(arrays, metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
    network = getattr(result.model, "name", None) in ("mlp", "module", "equinox")
    pieces = getattr(result, "inference", None)
    if pieces is None and result.train is not None:  # an in-memory fit: its loaded model keeps a summary too
        from .inference import saved_pieces

        pieces = saved_pieces(result)
    streamed = _inference_json(pieces)
    if summary is None and hasattr(result, "summary_text") and not network and (
            result.train is not None or getattr(result, "inference", None) is not None):
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
        "scanfit_version": version("scanfit"), "jax_version": jax.__version__,
        "model": _model_json(result.model), "likelihood": _clean(result.likelihood.spec()),
        "feature_names": list(result.feature_names), "config": _clean(_config_json(result.config)),
        "status": {"code": result.status.code, "steps": result.status.steps, "message": result.status.message,
                   "step": result.status.step},
        "final": _clean(result.final), "seconds": result.seconds, "best_start": result.best_start,
        "n_train": n_train, "n_valid": n_valid,
        "restarts": _frame_to_json(result.restarts) if result.start_finals else None,
        "summary_text": summary, "params": {"structure": structure,
                                            "sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)},
        "extra": _clean(extra or {}), "history": _frame_to_json(result.history),
        "design": None if getattr(result, "design", None) is None else _clean(result.design.spec()),
        "inference": streamed,
    }
    text = _meta_text(meta)
    _self_check(path, text, params, result.model, result.likelihood, result.config.dtype, len(result.history))
    given, path = path, Path(os.path.realpath(path))  # through a symbolic link: the directory it names
    path.parent.mkdir(parents=True, exist_ok=True)
    with files.locked(path):
        files.remove_debris(path)
        ours = _check_target(given, path)
        if not overwrite and ours:
            raise FileExistsError(f"A saved model already exists at {str(given)!r}; pass overwrite=True to replace it.")
        tmp = None
        try:
            tmp = files.new_dir(path)
            _write(tmp, PARAMS_FILE, blob)
            _write(tmp, META_FILE, text.encode())
            run_dir.write_manifest(tmp, [PARAMS_FILE, META_FILE], by="result.save")
            files.fsync_dir(tmp)
            files.replace_dir(tmp, path)  # afterwards tmp holds the previous model, if there was one
        except OSError as err:
            if err.errno is None:  # scanfit's own refusals say what to do already
                raise
            fix = "free some space on that disk" if err.errno in (28, 122) else "check that you may write there"
            raise run_dir.OutputError(f"Cannot save the model to {str(given)!r}: {err.strerror or err}. The model "
                                      f"saved there before, if any, is unchanged; {fix}, or save to another "
                                      f"directory.") from None
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
    return Path(given)


def _legacy(path: Path) -> set[str]:
    """The files of a model saved before saves wrote a manifest: its two files, when ``model.json`` is
    scanfit's (it starts by naming the format); else none."""
    try:
        with open(path / META_FILE, "rb", opener=lambda p, flags: os.open(p, flags | os.O_NOFOLLOW)) as f:
            head = f.read(200)
    except OSError:
        return set()
    return {META_FILE, PARAMS_FILE} if head.startswith(f'{{\n "format": "{FORMAT}"'.encode()) else set()


def _check_target(given, path: Path) -> bool:
    """Refuse to save at ``path`` (the real path of ``given``) when that would remove something scanfit did not
    write: a file, or a directory holding such files. True when a saved model of scanfit's is there."""
    if os.path.lexists(path) and not path.is_dir():
        raise FileExistsError(f"Cannot save to {str(given)!r}: it is a file, and scanfit never replaces a file it did "
                              f"not write. Give the path of a directory: a new one, or one that result.save wrote.")
    if not path.is_dir():
        return False
    listed = run_dir.manifest(path)
    listed = _legacy(path) if listed is None else listed
    theirs = run_dir.foreign(path, listed)
    if theirs:
        raise FileExistsError(f"Cannot save to {str(given)!r}: the directory holds files that scanfit did not write "
                              f"({run_dir.listing(theirs)}), and saving replaces the whole directory. Move them "
                              f"elsewhere, or save to a new directory.")
    return bool(listed)


# ---------------------------------------------------------------- load

def _meta(d: files.ModelDir) -> dict:
    """The checked ``model.json`` of the opened directory ``d``."""
    blob = d.read(META_FILE, MAX_META_BYTES, f"{d.where!r} is not a saved scanfit model: {META_FILE} is missing. "
                                              f"Give the directory that result.save() wrote.")
    meta = files.parse_json(blob, d.fail)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{str(d.path / META_FILE)!r} is not a scanfit model file (format "
                             f"{_short(meta.get('format') if isinstance(meta, dict) else None)}, expected {FORMAT!r}).")
    version = meta.get("format_version")
    if type(version) is int and version > FORMAT_VERSION:
        raise ModelFileError(f"The saved model at {d.where!r} has format version {version!r}, newer than this "
                             f"scanfit reads (version {FORMAT_VERSION}); it was written by scanfit "
                             f"{str(meta.get('scanfit_version'))[:40]}. Upgrade scanfit (pip install -U scanfit) to load it.")
    if type(version) is not int or version < 1:
        raise d.fail(f"{META_FILE} has format version {_short(version)}, which no scanfit writes (versions are "
                     f"1..{FORMAT_VERSION}); the file was edited or corrupted")
    if version >= 2 and meta.get("digest") != files.digest(meta):
        raise d.fail(f"{META_FILE} was modified after saving: its content does not match the SHA-256 recorded in "
                     f"it when it was saved (\"digest\"), so its feature names, classes or settings cannot be trusted")
    try:
        return check_meta(meta)
    except Invalid as err:
        raise d.fail(f"in {META_FILE}, {err}") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def info(path: str | os.PathLike) -> dict:
    """The checked metadata (``model.json``) of a saved model, without loading its parameters."""
    with files.ModelDir(path) as d:
        return _meta(d)


def _read_files(path: Path) -> tuple[dict, bytes]:
    """``model.json`` (checked) and the parameter file's bytes, both from one directory: a save that
    replaces the directory while they are read makes this read again (the new model)."""
    for attempt in range(3):
        with files.ModelDir(path) as d:
            try:
                meta = _meta(d)
                blob = d.read(PARAMS_FILE, meta["params"]["bytes"], f"The saved model at {d.where!r} is incomplete: "
                                                                    f"{PARAMS_FILE} is missing. Save it again.")
            except files.Missing:
                if attempt < 2 and d.replaced():
                    continue
                raise
            want = meta["params"]
            if len(blob) != want["bytes"] or hashlib.sha256(blob).hexdigest() != want["sha256"]:
                what = "truncated" if len(blob) < want["bytes"] else "corrupted"
                raise ModelFileError(f"The saved model at {d.where!r} is {what}: {PARAMS_FILE} has {len(blob)} bytes "
                                     f"whose checksum does not match the one recorded at save time ({want['bytes']} "
                                     f"bytes). Save the model again.")
            return meta, blob
    raise AssertionError("unreachable")  # pragma: no cover


def _read_params(where: str, meta: dict, blob: bytes) -> Any:
    from safetensors.numpy import load as st_load

    try:
        arrays = st_load(blob)
    except Exception as err:
        raise ModelFileError(f"The saved model at {where!r} is corrupted: cannot read {PARAMS_FILE} ({err}). "
                             f"Save the model again.") from None
    names = sorted(leaf_names(meta["params"]["structure"]))
    if sorted(arrays) != names:
        raise ModelFileError(f"The saved model at {where!r} is corrupted: {PARAMS_FILE} holds the arrays "
                             f"{_short(sorted(arrays))} but {META_FILE} names {_short(names)}. Save the model again.")
    return _unflatten(meta["params"]["structure"], arrays)


def _rebuild_model(spec: dict, model: Any):
    name = spec["name"]
    if model is not None:
        model = as_model(model)
        if model.name != name:
            raise ValueError(f"The 'model' parameter of load is a {model.name!r} model but the file holds a {name!r} model.")
        return model
    if name == "linear":
        return Linear(init_scale=spec["init_scale"], intercept=spec.get("intercept", True))
    if name == "mlp":
        return MLP(hidden=tuple(spec["hidden"]), activation=spec["activation"], init_scale=spec["init_scale"])
    if name == "function":
        raise ValueError(f"This saved model is a user function ({spec['function']}); its code is not saved. "
                         f"Pass the same function: sf.load(path, model=sf.Function(predict, params=...)).")
    if name == "module":
        raise ValueError(f"This saved model is a flax NNX module ({spec['class']}); its code is not saved. "
                         f"Pass the same module: sf.load(path, model=sf.Module(make)).")
    raise ValueError("This saved model is an equinox module; its code is not saved. "
                     "Pass the same module: sf.load(path, model=sf.Equinox(make)).")


def _design(spec: dict | None, where: str):
    """The fit's design (standardization, and the formula re-applied by ``predict``) from its JSON."""
    if spec is None:
        return None
    formula = None
    if spec.get("formula") is not None:
        from ..data.formula import Formula

        try:
            formula = Formula.from_json(spec["formula"])  # validated grammar only; nothing is executed
        except (ValueError, TypeError) as err:
            raise ModelFileError(f"The saved model at {where!r} holds a formula that cannot be used: {err}. "
                                 f"{files.SAVE_AGAIN}") from None
    arr = lambda v: None if v is None else np.asarray(v, np.float64)  # noqa: E731
    return Design(tuple(spec["names"]), arr(spec.get("center")), arr(spec.get("scale")), formula)


def _rebuild_likelihood(spec: dict):
    kinds = {"gaussian": Gaussian, "bernoulli": Bernoulli, "categorical": Categorical, "poisson": Poisson,
             "negativebinomial": NegativeBinomial}
    return kinds[spec["name"]](**{k: v for k, v in spec.items() if k != "name"})


def _config(c: dict) -> FitConfig:
    known = {f.name for f in dataclasses.fields(FitConfig)}
    es, pen = c["early_stopping"], c.get("penalty")
    return FitConfig(**{k: v for k, v in c.items() if k in known and k not in ("early_stopping", "penalty")},
                     early_stopping=None if es is None else EarlyStopping(**es),
                     penalty=None if pen is None else ElasticNet(**pen))


def read(path: str | os.PathLike, *, model: Any = None) -> Outcome:
    """Read a model saved with ``result.save(path)``: the record that ``sf.load`` turns into a FitResult.

    ``model`` is needed only for user models (``sf.Function``, ``sf.Module``, ``sf.Equinox``),
    whose code is not saved: pass the same model again. The loaded result holds no training data,
    and of several starts only the kept one's parameters and history (``result.restarts`` lists
    them all).
    """
    return read_with_info(path, model=model)[0]


def read_with_info(path: str | os.PathLike, *, model: Any = None) -> tuple[Outcome, dict]:
    """:func:`read` and :func:`info` of one and the same saved model (``info`` then ``read`` could
    see two models if a save replaced the directory between them: the classes of one, the
    parameters of the other)."""
    where = str(path)
    meta, blob = _read_files(Path(path))
    params = _read_params(where, meta, blob)
    fitted_model = _rebuild_model(meta["model"], model)
    likelihood = _rebuild_likelihood(meta["likelihood"])
    try:
        check_params(params, fitted_model, len(meta["feature_names"]), likelihood.n_outputs, meta["config"]["dtype"],
                     likelihood)
    except Invalid as err:
        raise ModelFileError(f"The saved model at {where!r} is not usable: {err}. {files.SAVE_AGAIN}") from None
    try:
        config = _config(meta["config"])
        history = _frame_from_json(meta["history"])
        table = None if meta["restarts"] is None else _frame_from_json(meta["restarts"])
        stat_cols = [] if table is None else [c for c in table.columns if c not in ("start", "steps", "status", "chosen")]
        restart_finals = [] if table is None else [{k: float(row[k]) for k in stat_cols} for _, row in table.iterrows()]
    except (ValueError, TypeError, OverflowError) as err:
        raise ModelFileError(f"The saved model at {where!r} is not usable: {META_FILE} holds a value that cannot be "
                             f"used ({err}). {files.SAVE_AGAIN}") from None
    st = meta["status"]
    status = Status(st["code"], st["steps"], st["message"], st["step"])
    final = {k: (np.nan if v is None else v) for k, v in meta["final"].items()}
    starts, finals = [status], [final]
    if table is not None:
        finals = restart_finals
        starts = [status if bool(row["chosen"]) else Status(row["status"], int(row["steps"]), "(from a saved model)")
                  for _, row in table.iterrows()]
    best = meta["best_start"]
    design = _design(meta.get("design"), where)
    return Outcome(model=fitted_model, likelihood=likelihood, config=config, params=params, history=history,
                   status=status, feature_names=tuple(meta["feature_names"]), final=final,
                   seconds=float(meta["seconds"] or 0.0), best_start=best,
                   start_histories=[history if i == best else None for i in range(len(starts))],
                   start_params=[params if i == best else None for i in range(len(starts))],
                   start_statuses=starts, start_finals=finals, train=None, valid=None, design=design,
                   inference=_inference_of(meta.get("inference"))), meta
