"""Wilkinson formulas through formulaic: a frozen, JSON-safe spec that builds a design from a frame and re-applies
the same transformations and category levels to new frames (``Formula``). formulaic evaluates a formula's calls as
Python, so the text must pass a small grammar first (``_check``: names, integers, term operators, allowlisted calls
with arithmetic inside). What formulaic learns from the data is kept as JSON and pinned on every application. Columns
come in patsy's order, as in ``statsmodels.formula.api``. Rows with missing values are refused, never dropped."""

from __future__ import annotations

import ast
import json
import math
import re
import unicodedata
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import formulaic
import numpy as np
import pandas as pd
from formulaic import ModelSpec
from formulaic.errors import DataMismatchWarning, FormulaicError
from formulaic.parser.types import Factor

from . import formula_size

__all__ = ["Formula"]

FORMAT, VERSION = "scanfit.formula", 1
_UFUNCS = frozenset({"log", "log2", "log10", "exp", "sqrt"})  # one argument each (a second would be `out=`)
_CALLS = _UFUNCS | {"C", "I", "center", "scale", "poly", "bs"}
_ATTR_CALLS = {"np": frozenset({"log", "log1p", "log2", "log10", "exp", "expm1", "sqrt", "square", "abs"}),
               "contr": frozenset({"treatment", "sum", "helmert", "diff", "poly"})}
_KEYWORDS = frozenset({"levels", "contrasts", "spans_intercept", "degree", "raw", "df", "knots", "include_intercept",
                       "lower_bound", "upper_bound", "extrapolation", "center", "scale", "ddof", "base", "scores",
                       "reverse", "backward"})
_CONTEXT = {"sqrt": np.sqrt}  # formulaic has no bare sqrt; nothing else joins the data and formulaic's transforms
_TERM_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.BitAnd, ast.Pow, ast.BitXor)  # + - * / : ** ^
_ARITH = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
_COMPARE = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)
_BANNED = "\\`#$&|{};@?"  # escapes, comments, quoting and operators formulaic reads but this grammar has not
_STRING_BODY = re.compile(r"[^'\"()\[\]%]*")  # so that formulaic's tokenizer matches brackets as Python does
_DTYPE, _SCALARS = re.compile(r"[<>|=]?[biuf][1248]"), (str, bool, int, float)
# Q("a column name") as in patsy/statsmodels: the name may hold spaces and most punctuation; it becomes an
# alias (a plain identifier) for the grammar and formulaic, and the design's names show the column's own name
_QUOTED = re.compile(r"""\bQ\(\s*(?:"([^"\\\n`]*)"|'([^'\\\n`]*)')\s*\)""")


def _quoted(text: str) -> tuple[str, dict[str, str]]:
    """``text`` with each ``Q("name")`` replaced by an alias, and ``{alias: name}``."""
    names: dict[str, str] = {}

    def alias(match: re.Match) -> str:
        name = match.group(1) if match.group(1) is not None else match.group(2)
        if not name.strip():
            raise _Refused("Q() names a column: Q(\"my column\")")
        return names.setdefault(name, f"Q__{len(names)}__")

    return _QUOTED.sub(alias, text), {a: n for n, a in names.items()}


def _plain(label: str, aliases: Mapping[str, str]) -> str:
    """A design column's label with the column names in place of their aliases."""
    for alias, name in aliases.items():
        label = label.replace(alias, name)
    return label


class _Refused(ValueError):
    pass


def _number(node: ast.AST) -> float | None:
    node = node.operand if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) else node
    return node.value if isinstance(node, ast.Constant) and type(node.value) in (int, float) else None


def _call(node: ast.Call, cols: set[str]) -> None:
    f, name = node.func, ast.unparse(node.func)
    module = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else None
    if not ((isinstance(f, ast.Name) and f.id in _CALLS) or (module and f.attr in _ATTR_CALLS.get(module, ()))):
        allowed = sorted(_CALLS) + [f"{m}.{a}" for m, attrs in _ATTR_CALLS.items() for a in sorted(attrs)]
        patsy = _PATSY_CONTRASTS.get(name)
        raise _Refused(f"{name}(...) is not an allowed call (allowed: {', '.join(allowed)})"
                       + (f"; patsy's {name} is written {patsy} here" if patsy else ""))
    if (name in _UFUNCS or name.startswith("np.")) and (len(node.args) != 1 or node.keywords):
        raise _Refused(f"{name} takes one argument")
    for kw in node.keywords:
        if kw.arg not in _KEYWORDS:
            raise _Refused(f"the argument {ast.unparse(kw)!r} is not allowed (allowed: {', '.join(sorted(_KEYWORDS))})")
    if any(not d <= formula_size.MAX_DEGREE for d in formula_size.degrees(node)):  # arithmetic evaluated
        raise _Refused(f"{name}: a degree, df or number of knots is at most {formula_size.MAX_DEGREE}")
    for arg in node.args + [kw.value for kw in node.keywords]:
        _walk(arg, cols)


_PATSY_CONTRASTS = {"Treatment": "contr.treatment(base=...)", "Sum": "contr.sum", "Helmert": "contr.helmert",
                    "Diff": "contr.diff", "Poly": "contr.poly"}


def _walk(node: ast.AST, cols: set[str], top: bool = False) -> None:
    """Check one side (``top``: the formula level) or a call's argument; collect the data columns it names."""
    if isinstance(node, ast.Call):
        return _call(node, cols)
    if (not top and isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.attr in _ATTR_CALLS.get(node.value.id, ()) and node.value.id == "contr"):
        return None  # a contrast named without brackets, C(x, contr.sum), as formulaic takes it
    if isinstance(node, ast.Name) and not node.id.startswith("__"):  # a data column
        return cols.add(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _walk(node.operand, cols, top)
    if top and isinstance(node, ast.BinOp) and isinstance(node.op, _TERM_OPS):
        return _walk(node.left, cols, True), _walk(node.right, cols, True)
    if top and isinstance(node, ast.Constant) and type(node.value) is int:
        return None
    if top:
        raise _Refused(f"{ast.unparse(node)!r} is not a term")
    if isinstance(node, ast.Constant) and (node.value is None or type(node.value) in _SCALARS):
        if isinstance(node.value, str) and not _STRING_BODY.fullmatch(node.value):
            raise _Refused(f"the string {node.value!r} holds a quote, bracket or '%'")
        return None
    if isinstance(node, (ast.List, ast.Tuple)) and all(_number(e) is not None or isinstance(e, ast.Constant)
                                                      for e in node.elts):
        parts = node.elts  # numbers, strings and booleans
    elif isinstance(node, ast.BinOp) and isinstance(node.op, _ARITH):
        power = _number(node.right) if isinstance(node.op, ast.Pow) else 0
        if power is None or abs(power) > 64 or any(isinstance(getattr(s, "value", None), str) or isinstance(
                s, (ast.List, ast.Tuple)) for s in (node.left, node.right)):
            raise _Refused(f"{ast.unparse(node)!r}: arithmetic is on numbers, with powers that are numbers up to 64")
        parts = [node.left, node.right]
    elif isinstance(node, ast.Compare) and all(isinstance(op, _COMPARE) for op in node.ops):
        parts = [node.left, *node.comparators]
    else:
        raise _Refused(f"{ast.unparse(node)!r} is not allowed in a formula")
    for part in parts:
        _walk(part, cols)
    return None


def _check(text: Any) -> tuple[str, frozenset[str], frozenset[str]]:
    """Validate a formula's text; returns it (on one line) and the data columns of each side."""
    if not isinstance(text, str):
        raise ValueError(f"a formula is text, got {type(text).__name__}")
    text = re.sub(r"\s*[\t\r\n]\s*", " ", text).strip()
    aliases: dict[str, str] = {}
    try:
        if len(text) > 4000 or not text.isprintable() or unicodedata.normalize("NFKC", text) != text:
            raise _Refused("a formula is printable, NFKC-normalized text of at most 4000 characters")
        plain, aliases = _quoted(text)  # Q("a name"): an alias from here on
        if set(plain) & set(_BANNED) or plain.count("~") != 1:
            raise _Refused(f"a formula has one '~' between the target and the terms (here {plain.count('~')}) and "
                           f"none of {_BANNED} (here {''.join(sorted(set(plain) & set(_BANNED)))!r}); name a "
                           f"column with spaces or signs as Q(\"my column\")")
        sides: list[set[str]] = []
        # ':' (interaction) becomes '&' so that each side parses as Python; inside calls ':' is never allowed
        for side, what in zip(plain.replace(":", "&").split("~"), ("a target before '~'", "terms after '~'")):
            if not side.strip():
                raise _Refused(f"it needs {what}")
            sides.append(set())
            _walk(ast.parse(side.strip(), mode="eval").body, sides[-1], top=True)
            formula_size.check_terms(side.replace("&", ":"), text)  # before formulaic expands (a + b + ...)**k
    except _Refused as e:
        raise ValueError(f"formula {text!r} refused: {e}") from None
    except SyntaxError as e:
        raise ValueError(f"formula {text!r} refused: it does not parse ({e.msg})") from None
    return text, frozenset(aliases.get(c, c) for c in sides[0]), frozenset(aliases.get(c, c) for c in sides[1])


def _encode(v: Any) -> Any:
    """Formulaic's transform state as JSON; non-string keys, arrays and non-finite floats are tagged."""
    if v is None or isinstance(v, (str, bool, int, float, np.bool_, np.integer, np.floating)):
        v = v.item() if isinstance(v, np.generic) else v
        return v if not isinstance(v, float) or math.isfinite(v) else {"float": repr(v)}
    if isinstance(v, np.ndarray) and _DTYPE.fullmatch(v.dtype.str):
        return {"array": _encode(v.tolist()), "dtype": v.dtype.str}
    if isinstance(v, (list, tuple)):
        return [_encode(x) for x in v]
    if isinstance(v, dict):
        return {"dict": [[_encode(k), _encode(x)] for k, x in v.items()]}
    raise ValueError(f"cannot save a formula state value of type {type(v).__name__}")


def _decode(v: Any) -> Any:
    keys = set(v) if isinstance(v, dict) else None
    if v is None or type(v) in _SCALARS:
        return v
    if isinstance(v, list):
        return [_decode(x) for x in v]
    if keys == {"float"} and v["float"] in ("nan", "inf", "-inf"):
        return float(v["float"])
    if keys == {"array", "dtype"} and isinstance(v["dtype"], str) and _DTYPE.fullmatch(v["dtype"]):
        return np.array(_decode(v["array"]), dtype=np.dtype(v["dtype"]))
    if keys == {"dict"} and isinstance(v["dict"], list) and all(
            isinstance(p, list) and len(p) == 2 and type(p[0]) in _SCALARS for p in v["dict"]):
        return {k: _decode(x) for k, x in v["dict"]}
    raise ValueError(f"formula state holds {str(v)[:80]!r}, which is not a saved formula state")


def _save(spec: ModelSpec) -> dict:
    encoders = {str(e): {"kind": k.value, **({"levels": _encode(list(s["categories"]))} if "categories" in s else {})}
                for e, (k, s) in spec.encoder_state.items()}
    return {"transform_state": {str(k): _encode(v) for k, v in spec.transform_state.items()}, "encoder_state": encoders}


def _load(saved: Any) -> tuple[dict, dict]:
    """A side's (transform_state, encoder_state) from its JSON, checked."""
    if not (isinstance(saved, dict) and set(saved) == {"transform_state", "encoder_state"}
            and all(isinstance(x, dict) for x in saved.values())):
        raise ValueError("a saved formula side has 'transform_state' and 'encoder_state' objects")
    encoders = {}
    for expr, entry in saved["encoder_state"].items():
        levels = entry.get("levels", []) if isinstance(entry, dict) else None
        if not (isinstance(levels, list) and all(type(v) in _SCALARS for v in levels) and {"kind"} <= set(entry)
                <= {"kind", "levels"} and entry["kind"] in ("numerical", "categorical", "constant")):
            raise ValueError(f"the saved encoder state of {expr!r} is not valid: {str(entry)[:80]}")
        encoders[expr] = (Factor.Kind(entry["kind"]), {"categories": levels} if "levels" in entry else {})
    return {k: _decode(v) for k, v in saved["transform_state"].items()}, encoders


def _specs(text: str) -> Any:
    try:
        return ModelSpec.from_spec(formulaic.Formula(_quoted(text)[0]), materializer="pandas", output="pandas",
                                   na_action="ignore", cluster_by="numerical_factors")
    except FormulaicError as e:
        raise ValueError(f"formula {text!r}: {e}") from e


def _frame(data: Any, cols: frozenset[str], text: str) -> pd.DataFrame:
    """The used columns, checked (present once each, no missing values), with a fresh index."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"formula {text!r} needs a pandas DataFrame, got {type(data).__name__}")
    counts = {c: int((data.columns == c).sum()) for c in cols}
    missing, repeated = sorted(c for c in cols if not counts[c]), sorted(c for c in cols if counts[c] > 1)
    if missing or repeated:
        raise ValueError(f"formula {text!r}: " + (f"columns not in the data: {missing}" if missing else
                                                  f"columns that appear more than once in the data: {repeated}"))
    frame = data[sorted(cols)]
    for i, j in np.argwhere(frame.isna().to_numpy())[:1]:
        raise ValueError(f"formula {text!r}: column {frame.columns[j]!r} has a missing value at row {i} (index "
                         f"{data.index[i]!r}); formulas do not drop rows: drop or fill the missing values first")
    named = {n: a for a, n in _quoted(text)[1].items()}  # Q("a name")'s columns under their aliases
    return frame.rename(columns=named).reset_index(drop=True) if named else frame.reset_index(drop=True)


def _materialize(spec: ModelSpec, frame: pd.DataFrame, text: str, index: pd.Index) -> tuple[np.ndarray, Any]:
    """Apply one side's spec; refuses unseen levels and values that are not finite."""
    for expr, (_, state) in spec.encoder_state.items():  # levels pinned: check the columns before formulaic codes them
        node = ast.parse(expr, mode="eval").body if "categories" in state else None
        col = getattr(node.args[0] if isinstance(node, ast.Call) and node.args else node, "id", None)  # x, C(x, ...)
        levels = state.get("categories")
        unseen = [v.item() if isinstance(v, np.generic) else v for v in pd.unique(frame[col]) if v not in levels] \
            if col in frame.columns else []
        if unseen:
            raise ValueError(f"formula {text!r}: column {col!r}{'' if col == expr else f' (in {expr})'} has values "
                             f"not seen when the formula was built: {unseen[:20]}; known levels: {levels}")
    with warnings.catch_warnings():  # other unseen levels (e.g. C(x > 0)): formulaic's warning becomes an error
        warnings.simplefilter("error", DataMismatchWarning)
        try:
            mm = spec.get_model_matrix(frame, context=_CONTEXT)
        except (FormulaicError, DataMismatchWarning, ArithmeticError, LookupError, TypeError, ValueError) as e:
            raise ValueError(f"formula {text!r}: {e}") from e
    values = mm.to_numpy(dtype=np.float64)
    for row, col in np.argwhere(~np.isfinite(values))[:1]:
        raise ValueError(f"formula {text!r}: {mm.columns[col]!r} is {values[row, col]} at row {row} "
                         f"(index {index[row]!r}); a design must be finite")
    return values, mm


def _data_levels(frame: pd.DataFrame):
    """A factor's categories at most, from the data (``_frame``'s columns): a text column's distinct values,
    ``C(...)``'s levels (a comparison has two; an expression of columns at most their combinations)."""
    def distinct(node: ast.AST) -> int:
        if isinstance(node, ast.Compare):
            return 2
        names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in frame.columns}
        return min(len(frame), math.prod(int(frame[c].nunique()) for c in names)) if names else 1

    def levels(expr: str, node: ast.AST) -> int | None:
        if isinstance(node, ast.Name) and node.id in frame.columns:
            kind = frame[node.id].dtype
            numeric = pd.api.types.is_numeric_dtype(kind) or pd.api.types.is_bool_dtype(kind)
            return None if numeric else distinct(node)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "C" and node.args:
            given = next((kw.value for kw in node.keywords if kw.arg == "levels"), None)
            return len(given.elts) if isinstance(given, (ast.List, ast.Tuple)) else distinct(node.args[0])
        return None

    return levels


def _state_levels(encoders: Mapping):
    """A factor's categories from a saved encoder state (its pinned levels), None for a numerical one."""
    def levels(expr: str, node: ast.AST) -> int | None:
        kind, state = encoders.get(expr, (None, {}))
        return len(state.get("categories", ())) if kind == Factor.Kind.CATEGORICAL else None

    return levels


@dataclass(frozen=True)
class Formula:
    """A formula and what it learned from its data. ``names``: the right-hand columns without ``Intercept`` (scanfit
    adds its own); ``state``: JSON text of formulaic's learned state (levels, transform state), pinned when applied."""

    text: str
    target: str
    names: tuple[str, ...]
    intercept: bool
    state: str = field(repr=False)

    @classmethod
    def build(cls, formula: str, data: pd.DataFrame) -> Formula:
        """Check the text, learn levels and transform state from ``data``."""
        text, lhs_cols, rhs_cols = _check(formula)
        frame = _frame(data, lhs_cols | rhs_cols, text)
        formula_size.check_columns(_quoted(text)[0], len(frame), _data_levels(frame), text)  # before formulaic builds
        specs = _specs(text)
        lhs, rhs = (_materialize(spec, frame, text, data.index)[1] for spec in (specs.lhs, specs.rhs))
        if lhs.shape[1] != 1:
            raise ValueError(f"formula {text!r}: the target must be one numeric column, it gives {list(lhs.columns)}")
        aliases = _quoted(text)[1]
        cols = [_plain(str(c), aliases) for c in rhs.columns]
        state = json.dumps({"lhs": _save(lhs.model_spec), "rhs": _save(rhs.model_spec)}, sort_keys=True)
        out = cls(text, _plain(str(lhs.columns[0]), aliases), tuple(c for c in cols if c != "Intercept"),
                  "Intercept" in cols, state)
        out.design(data)  # the pinned state must give the same columns back
        return out

    def _apply(self, side: str, data: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
        transforms, encoders = _load(json.loads(self.state)[side])
        frame = _frame(data, _check(self.text)[2 if side == "rhs" else 1], self.text)
        if side == "rhs":  # the columns counted from the pinned levels before formulaic builds them
            formula_size.check_columns(_quoted(self.text)[0], len(frame), _state_levels(encoders), self.text)
        spec = getattr(_specs(self.text), side).update(transform_state=transforms, encoder_state=encoders)
        values, mm = _materialize(spec, frame, self.text, data.index)
        aliases = _quoted(self.text)[1]
        return values, [_plain(str(c), aliases) for c in mm.columns]

    def inputs(self) -> list[str]:
        """The data columns that the right-hand side uses (``x`` for ``C(x)`` or ``log(x)``)."""
        return sorted(_check(self.text)[2])

    def features(self, data: pd.DataFrame) -> np.ndarray:
        """The right-hand design of ``data``: float64 ``(n, len(names))``, without the intercept column."""
        values, cols = self._apply("rhs", data)
        if [c for c in cols if c != "Intercept"] != list(self.names) or ("Intercept" in cols) != self.intercept:
            raise ValueError(f"formula {self.text!r} gives the columns {cols} on this data; it was built with "
                             f"{(['Intercept'] if self.intercept else []) + list(self.names)}")
        return values[:, [j for j, c in enumerate(cols) if c != "Intercept"]]

    def design(self, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(y, X)``: the target as float64 ``(n,)`` and :meth:`features`."""
        y, cols = self._apply("lhs", data)
        if cols != [self.target]:
            raise ValueError(f"formula {self.text!r}: the target gives the columns {cols}, not [{self.target!r}]")
        return y[:, 0], self.features(data)

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "formula": self.text, "target": self.target,
                "names": list(self.names), "intercept": self.intercept, "state": json.loads(self.state),
                "formulaic": formulaic.__version__}

    @classmethod
    def from_json(cls, d: Mapping) -> Formula:
        """Rebuild a saved formula; its text is checked against the grammar before formulaic parses it."""
        keys = {"format", "version", "formula", "target", "names", "intercept", "state", "formulaic"}
        try:
            text, names, state = _check(d["formula"])[0], d["names"], d["state"]
            ok = isinstance(d, Mapping) and set(d) == keys and (d["format"], d["version"]) == (FORMAT, VERSION) \
                and text == d["formula"] and isinstance(d["target"], str) and type(d["intercept"]) is bool \
                and isinstance(names, list) and all(isinstance(n, str) for n in names) and isinstance(state, dict) \
                and set(state) == {"lhs", "rhs"} and all(_load(side) for side in state.values())
        except (LookupError, TypeError, ValueError, OverflowError) as e:
            raise ValueError(f"not a valid saved formula: {e}") from None
        if not ok:
            raise ValueError(f"not a saved formula (format {FORMAT!r} version {VERSION}, keys {sorted(keys)})")
        try:  # the names checked against what the text and its pinned levels can build, before any data
            most = formula_size.check_columns(_quoted(text)[0], 0, _state_levels(_load(state["rhs"])[1]), text)
        except ValueError as e:
            raise ValueError(f"not a valid saved formula: {e}") from None
        if len(names) > most or len(set(names)) != len(names):
            raise ValueError(f"not a valid saved formula: its {len(names)} names {names[:5]}... are not the distinct "
                             f"columns of {text!r}, which builds at most {most}")
        return cls(text, d["target"], tuple(names), d["intercept"], json.dumps(state, sort_keys=True))
