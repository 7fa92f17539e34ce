"""What a ``model.json`` may hold, checked before any of it is used, and the parameters against it.

:func:`check_meta` raises :class:`Invalid` naming the key (``config.dtype``), what it must be and
what it is; :func:`check_params` checks the arrays read from ``params.safetensors`` against the
model: the parameter tree, each shape (built-in models from their specification, the feature
count and the outputs; user models from the model passed to ``load``), each dtype (floating
parameters in the fit's dtype) and that all are finite. The callers add which model and the fix.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import jax
import numpy as np

__all__ = ["Invalid", "check_meta", "check_params", "leaf_names", "USER_MODELS", "FORMAT", "FORMAT_VERSION"]

FORMAT = "scanfit-model"
FORMAT_VERSION = 2
USER_MODELS = ("function", "module", "equinox")
_MAX_FLOAT = 1.7976931348623157e308
_MAX_INT = 2**63 - 1

Check = Callable[[Any, str], None]


class Invalid(Exception):
    """What is wrong in ``model.json`` (or the parameters), without saying which model."""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(key: str, want: str, got: Any):
    raise Invalid(f"{key or 'the top level'} must be {want}, not {_show(got)}")


def _join(key: str, name: Any) -> str:
    return f"{key}.{name}" if key else str(name)


def is_(want: str, test: Callable[[Any], bool]) -> Check:
    def check(value, key):
        if not test(value):
            _fail(key, want, value)
    return check


def _int_in(lo: int, hi: int = _MAX_INT) -> Check:
    return is_(f"an int in {lo}..{hi}", lambda v: type(v) is int and lo <= v <= hi)


def _number(lo: float = -_MAX_FLOAT, positive: bool = False) -> Check:
    want = "a finite number" + (" > 0" if positive else f" >= {lo:g}" if lo > -_MAX_FLOAT else "")
    return is_(want, lambda v: type(v) in (int, float) and lo <= v <= _MAX_FLOAT and (not positive or v > 0))


def _one_of(*values) -> Check:
    return is_(f"one of {list(values)}", lambda v: type(v) in (str, bool) and v in values)


def _or_none(check: Check) -> Check:
    def or_none(value, key):
        if value is not None:
            check(value, key)
    return or_none


STR, BOOL, NUMBER = is_("a string", lambda v: type(v) is str), _one_of(True, False), _number()
COUNT, POSITIVE = _int_in(0), _int_in(1)
HEX64 = is_("64 lowercase hex digits (a SHA-256)", lambda v: type(v) is str and re.fullmatch("[0-9a-f]{64}", v))
SCALAR = is_("a string, number, true/false or null",
             lambda v: v is None or type(v) in (str, bool) or (type(v) in (int, float) and abs(v) <= _MAX_FLOAT))


def list_of(check: Check, lo: int = 0, hi: int | None = None) -> Check:
    def checked(value, key):
        if not isinstance(value, list) or len(value) < lo or (hi is not None and len(value) > hi):
            count = f"{lo}+" if hi is None else str(lo) if lo == hi else f"{lo}..{hi}"
            _fail(key, f"a list of {count} items", value)
        for i, item in enumerate(value):
            check(item, f"{key}[{i}]")
    return checked


def dict_of(check: Check) -> Check:
    def checked(value, key):
        if not isinstance(value, dict):
            _fail(key, "a JSON object", value)
        for k, item in value.items():
            check(item, _join(key, k))
    return checked


def record(fields: dict[str, Check], optional: tuple[str, ...] = ()) -> Check:
    """A JSON object with exactly these keys (those in ``optional`` may be absent)."""
    def checked(value, key):
        if not isinstance(value, dict):
            _fail(key, "a JSON object", value)
        missing = [k for k in fields if k not in value and k not in optional]
        if missing:
            raise Invalid(f"{key or 'the top level'} lacks the key{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
        unknown = [k for k in value if k not in fields]
        if unknown:
            raise Invalid(f"{key or 'the top level'} has the unexpected key{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(map(repr, unknown[:5]))}")
        for k, check in fields.items():
            if k in value:
                check(value[k], _join(key, k))
    return checked


def by_name(kinds: dict[str, Check]) -> Check:
    """A JSON object whose ``name`` picks its record."""
    def checked(value, key):
        if not isinstance(value, dict):
            _fail(key, "a JSON object", value)
        if value.get("name") not in kinds:
            _fail(_join(key, "name"), f"one of {list(kinds)}", value.get("name"))
        kinds[value["name"]](value, key)
    return checked


def _name(kind: str) -> Check:
    return _one_of(kind)


def _activations() -> tuple[str, ...]:
    from ..models.core import ACTIVATIONS

    return tuple(ACTIVATIONS)


MODEL = by_name({
    "linear": record({"name": _name("linear"), "init_scale": NUMBER, "intercept": BOOL}, optional=("intercept",)),
    "mlp": record({"name": _name("mlp"), "hidden": list_of(_int_in(1, 1 << 20), 1, 64),
                   "activation": lambda v, key: _one_of(*_activations())(v, key), "init_scale": NUMBER}),
    "function": record({"name": _name("function"), "function": STR}),
    "module": record({"name": _name("module"), "class": STR}),
    "equinox": record({"name": _name("equinox"), "vmap": BOOL}),
})
LIKELIHOOD = by_name({
    "gaussian": record({"name": _name("gaussian")}),
    "bernoulli": record({"name": _name("bernoulli"), "link": _one_of("logit", "probit")}, optional=("link",)),
    "poisson": record({"name": _name("poisson")}),
    "negativebinomial": record({"name": _name("negativebinomial")}),
    "categorical": record({"name": _name("categorical"), "n_classes": _int_in(2, 1 << 20)}),
})
CONFIG = record({
    "optimizer": STR, "custom_optimizer": BOOL, "learning_rate": _or_none(_number(positive=True)),
    "steps": POSITIVE, "record_every": POSITIVE, "restarts": POSITIVE, "seed": _int_in(-2**63),
    "dtype": _one_of("float32", "float64"), "tol": _number(positive=True), "standardize": _or_none(BOOL),
    "penalty": _or_none(record({"alpha": _number(0.0), "l1_ratio": _number(0.0)})),
    "early_stopping": _or_none(record({"monitor": STR, "min_delta": _number(0.0), "patience": POSITIVE,
                                       "restore_best": BOOL})),
}, optional=("standardize", "penalty"))
STATUS = record({"code": is_("a non-empty string", lambda v: type(v) is str and v != ""), "steps": COUNT,
                 "message": STR, "step": _or_none(COUNT)})
FRAME = record({"columns": list_of(STR), "dtypes": dict_of(STR), "data": dict_of(list_of(SCALAR))})


def _structure(value: Any, key: str) -> None:
    """A parameter tree: ``{"dict": [[key, node], ...]}``, ``{"list": [...]}``, ``{"tuple": [...]}``
    or ``{"leaf": name}`` (its depth was bounded when the JSON was parsed)."""
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in ("dict", "list", "tuple", "leaf"):
        _fail(key, 'one of {"dict": ...}, {"list": ...}, {"tuple": ...}, {"leaf": name}', value)
    kind, inner = next(iter(value.items()))
    if kind == "leaf":
        STR(inner, f"{key}.leaf")
        return
    list_of(lambda item, k: None)(inner, f"{key}.{kind}")
    if kind != "dict":
        for i, item in enumerate(inner):
            _structure(item, f"{key}.{kind}[{i}]")
        return
    names = []
    for i, pair in enumerate(inner):
        if not (isinstance(pair, list) and len(pair) == 2 and (type(pair[0]) is str or type(pair[0]) is int)):
            _fail(f"{key}.dict[{i}]", "a [key, node] pair with a string or int key", pair)
        names.append(pair[0])
        _structure(pair[1], f"{key}.dict[{i}][1]")
    if len(set(map(repr, names))) != len(names):
        raise Invalid(f"{key}.dict repeats a key")


PARAMS = record({"structure": _structure, "sha256": HEX64, "bytes": _int_in(8, 1 << 40)})
MAX_INFERENCE = 200  # coefficients up to which a streamed fit's information is saved (as JSON numbers)
_SQUARE = list_of(list_of(NUMBER, 1, MAX_INFERENCE), 1, MAX_INFERENCE)
INFERENCE = record({"info": _SQUARE, "meat": _SQUARE, "gradient": list_of(NUMBER, 1, MAX_INFERENCE),
                    "n_obs": _number(0.0), "value": NUMBER, "llnull": _or_none(NUMBER),
                    "family": _or_none(_one_of("gaussian", "bernoulli", "poisson", "categorical"))})


def _check_inference(blob, key: str = "inference") -> None:
    """The pieces of a streamed fit's standard errors: square, of one size, symmetric information."""
    INFERENCE(blob, key)
    p = len(blob["gradient"])
    for name in ("info", "meat"):
        if len(blob[name]) != p or any(len(row) != p for row in blob[name]):
            raise Invalid(f"{key}.{name} must be {p} x {p}, as the gradient")
META = record({
    "format": _one_of(FORMAT), "format_version": _int_in(1, FORMAT_VERSION), "scanfit_version": STR,
    "jax_version": STR, "model": MODEL, "likelihood": LIKELIHOOD, "feature_names": list_of(STR, 1),
    "config": CONFIG, "status": STATUS, "final": dict_of(_or_none(NUMBER)), "seconds": _or_none(_number(0.0)),
    "best_start": COUNT, "n_train": _or_none(COUNT), "n_valid": _or_none(COUNT), "restarts": _or_none(FRAME),
    "history": FRAME, "summary_text": _or_none(STR), "params": PARAMS, "extra": dict_of(lambda v, k: None),
    "digest": HEX64,
    "design": _or_none(record({"names": list_of(STR), "center": _or_none(list_of(NUMBER)),
                               "scale": _or_none(list_of(NUMBER)), "formula": _or_none(dict_of(lambda v, k: None))})),
    "inference": _or_none(lambda v, k: _check_inference(v, k)),
}, optional=("digest", "design", "inference"))


def leaf_names(structure: dict) -> list[str]:
    """The leaf names of a checked parameter tree, in order."""
    out, stack = [], [structure]
    while stack:
        node = stack.pop()
        kind, inner = next(iter(node.items()))
        if kind == "leaf":
            out.append(inner)
        else:
            stack.extend(reversed([pair[1] for pair in inner] if kind == "dict" else inner))
    return out


def _frame(blob: dict, key: str, needs: tuple[str, ...]) -> int:
    """Cross-checks of a checked frame; its number of rows."""
    columns, data = blob["columns"], blob["data"]
    if len(set(columns)) != len(columns) or set(data) != set(columns) or not set(blob["dtypes"]) <= set(columns):
        raise Invalid(f"{key}: columns, data and dtypes do not name the same columns")
    missing = [c for c in needs if c not in columns]
    if missing:
        raise Invalid(f"{key} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
    lengths = {len(v) for v in data.values()}
    if len(lengths) > 1:
        raise Invalid(f"{key} has columns of different lengths {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def check_meta(meta: Any) -> dict:
    """``meta`` if it is a well-formed ``model.json`` of a version this scanfit reads; else :class:`Invalid`."""
    META(meta, "")
    if meta["format_version"] >= 2 and "digest" not in meta:
        raise Invalid("the top level lacks the key 'digest'")
    config, lik = meta["config"], meta["likelihood"]
    if config["steps"] % config["record_every"]:
        raise Invalid(f"config.steps ({config['steps']}) is not a multiple of config.record_every")
    names = leaf_names(meta["params"]["structure"])
    if len(set(names)) != len(names):
        raise Invalid("params.structure names one parameter twice")
    _frame(meta["history"], "history", ("step",))
    if meta["restarts"] is not None:
        rows = _frame(meta["restarts"], "restarts", ("start", "steps", "status", "chosen"))
        chosen = meta["restarts"]["data"]["chosen"]
        if rows < 1 or any(type(c) is not bool for c in chosen) or chosen.count(True) != 1:
            raise Invalid("restarts.chosen must mark exactly one start with true")
        if chosen.index(True) != meta["best_start"]:
            raise Invalid(f"best_start ({meta['best_start']}) is not the start that restarts.chosen marks")
        list_of(COUNT)(meta["restarts"]["data"]["steps"], "restarts.steps")
        list_of(STR)(meta["restarts"]["data"]["status"], "restarts.status")
    elif meta["best_start"] != 0:
        raise Invalid(f"best_start ({meta['best_start']}) must be 0 without a restarts table")
    classes = meta["extra"].get("classes")
    want = {"bernoulli": 2, "categorical": lik.get("n_classes")}.get(lik["name"])
    if classes is not None:
        list_of(SCALAR, want or 0, want or 0)(classes, "extra.classes")
        if len(set(map(repr, classes))) != len(classes):
            raise Invalid(f"extra.classes repeats a class: {_show(classes)}")
    _or_none(STR)(meta["extra"].get("target"), "extra.target")
    return meta


# ---------------------------------------------------------------- parameters

def _expected(model, n_features: int, n_outputs: int, likelihood=None) -> Any:
    """The parameter tree (shapes and dtypes) that ``model`` builds (with the likelihood's own
    parameters, such as NegativeBinomial's ``log_alpha``), without computing it."""
    def build(key):
        params = model.init(key, n_features, n_outputs)
        extra = likelihood.init_extra() if likelihood is not None else {}
        return {**extra, **params} if extra else params

    try:
        return jax.eval_shape(lambda: build(jax.random.key(0)))  # the key traced too: no program runs
    except Exception:  # a user model whose init cannot be traced: build it
        return build(jax.random.key(0))


def _shapes(tree: Any) -> Any:
    return jax.tree.map(lambda a: list(np.shape(a)), tree)


def check_params(params: Any, model, n_features: int, n_outputs: int, dtype: str, likelihood=None) -> None:
    """Raise :class:`Invalid` (built-in models) or ``ValueError`` (a user model that does not match)
    unless ``params`` has the tree, shapes and dtypes that ``model`` (and ``likelihood``) builds, all finite."""
    expected = _expected(model, n_features, n_outputs, likelihood)
    got_shapes, want_shapes = _shapes(params), jax.tree.map(lambda a: list(a.shape), expected)
    if got_shapes != want_shapes:
        if model.name in USER_MODELS:
            raise ValueError(f"The 'model' parameter of load does not match the saved parameters: the file holds "
                             f"{got_shapes} but the model builds {want_shapes}. Pass the model that was fitted.")
        raise Invalid(f"params.safetensors holds parameters of shapes {_show(got_shapes)}, but a {model.name} model "
                      f"with {n_features} features and {n_outputs} output(s) has {_show(want_shapes)}")
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    for name, got, want in zip(paths, jax.tree.leaves(params), jax.tree.leaves(expected)):
        got = np.asarray(got)
        floating = np.issubdtype(np.dtype(want.dtype), np.floating)
        ok = got.dtype == np.dtype(dtype) if floating else got.dtype.kind == np.dtype(want.dtype).kind
        if not ok:
            raise Invalid(f"parameter {name} in params.safetensors is {got.dtype}, but the fit's dtype (config.dtype) "
                          f"is {dtype}" if floating else f"parameter {name} is {got.dtype}, not {want.dtype}")
        if floating and not np.isfinite(got).all():
            raise Invalid(f"parameter {name} in params.safetensors holds NaN or infinite values")
