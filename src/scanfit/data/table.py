"""A table the CLI reads (CSV or Parquet): the file, its target coded and its feature columns checked.

- :func:`read` reads a table and names the supported formats when it cannot;
- :func:`encode_target` picks the likelihood from the target column when none is given (two
  values: Bernoulli; 3 to 20 integer or text classes: Categorical; otherwise Gaussian) and codes
  the classes as 0..K-1 (sorted), saying what it chose; :func:`distinct` reads a Parquet file's
  target values a batch at a time for the same choice on a streamed fit;
- :func:`features` selects the feature columns; text (categorical) columns are refused with a
  message naming them: scanfit does not one-hot encode behind the user's back;
  :func:`check_finite` refuses missing or infinite feature values, :func:`role_columns` the
  columns of ``--weights``, ``--exposure``, ``--offset`` and ``--cluster`` that the table lacks.

``scanfit.tables`` (the CLI's fits, predictions and outputs) builds on these.

>>> import pandas as pd
>>> from scanfit.data import table
>>> table.encode_target(pd.Series(["no", "yes", "no"], name="buy"), None).reason
"target 'buy' has two values ['no', 'yes']: bernoulli, coding 'no' as 0 and 'yes' as 1"
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["read", "encode_target", "features", "Target", "check_finite", "role_columns", "distinct", "MAX_CLASSES",
           "COUNTS", "READERS"]

MAX_CLASSES = 20
COUNTS = ("poisson", "negativebinomial")
READERS = {".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}


def read(path: str | Path) -> pd.DataFrame:
    """Read a CSV (``.csv``, ``.txt``), TSV or Parquet (``.parquet``, ``.pq``) table."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"The table {str(path)!r} is a directory with no *.parquet files (names starting with '_' "
                         f"or '.' are skipped); give a CSV or Parquet file, or a directory of Parquet files.")
    if path.exists() and not path.is_file():
        raise ValueError(f"The table {str(path)!r} is not a regular file (a FIFO or a device); give the path of a "
                         f"CSV or Parquet file.")
    if not path.is_file():
        raise FileNotFoundError(f"The table {str(path)!r} does not exist; give the path of a CSV or Parquet file.")
    if path.stat().st_size == 0:
        raise ValueError(f"The table {str(path)!r} is an empty file; give a table with a header and rows.")
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"The table {str(path)!r} has suffix {path.suffix!r}; scanfit reads {sorted(READERS)} "
                         f"(CSV, TSV or Parquet). Rename or convert the file.")
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, sep="\t" if kind == "tsv" else ",")
    except ImportError as err:
        raise ValueError(f"Reading Parquet needs pyarrow: pip install pyarrow ({err}).") from None
    except Exception as err:  # pandas' parser errors are many; name the file
        raise ValueError(f"Cannot read the table {str(path)!r} as {kind}: {err}") from None


@dataclass(frozen=True)
class Target:
    """The coded target: ``codes`` of shape ``(n,)``, the likelihood chosen, the original
    ``classes`` (code k is ``classes[k]``; None for Gaussian) and a sentence saying why."""

    name: str
    likelihood: str
    codes: np.ndarray
    classes: list | None
    reason: str


def _plain(values) -> list:
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def encode_target(column: pd.Series, likelihood: str | None) -> Target:
    """Choose (or check) the likelihood for ``column`` and code it; ``likelihood`` None means choose."""
    name = str(column.name)
    if len(column) == 0:
        raise ValueError(f"The table has no rows (only a header), so the target column {name!r} is empty; "
                         f"give a table with rows to fit.")
    missing = column.isna().to_numpy()
    if missing.any():
        raise ValueError(f"The target column {name!r} has {int(missing.sum())} missing (NaN) values, the first at row "
                         f"{int(np.argmax(missing))}; drop or impute those rows before fitting.")
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    values = column.to_numpy()
    classes = _plain(np.unique(values))
    if len(classes) == 1:
        rows = f"all {len(values)} rows" if len(values) > 1 else "the table's only row"
        raise ValueError(f"The target column {name!r} holds one value, {classes[0]!r}, in {rows}; there is nothing "
                         f"to learn. A fit needs at least two distinct values (two classes): add rows with other "
                         f"values or choose another target column.")
    with np.errstate(invalid="ignore"):  # inf is not an integer (np.mod warns); as_target names it later
        integer = numeric and bool(np.all(np.mod(values.astype(float), 1) == 0))
    if likelihood is None:
        if len(classes) == 2:
            likelihood = "bernoulli"
        elif (integer or not numeric) and 3 <= len(classes) <= MAX_CLASSES:
            likelihood = "categorical"
        elif numeric:
            likelihood = "gaussian"
        else:
            raise ValueError(f"The target column {name!r} holds text with {len(classes)} distinct values; scanfit "
                             f"fits at most {MAX_CLASSES} classes. Choose another target column.")
        chosen = True
    else:
        chosen = False
    if likelihood in COUNTS:  # only when asked: integer targets are never taken for counts by guessing
        if not numeric or (values.astype(float) < 0).any():
            raise ValueError(f"The {likelihood} likelihood needs counts (numbers >= 0) in the target; column {name!r} "
                             f"holds values such as {classes[:3]}. Use --likelihood gaussian or categorical.")
        return Target(name, likelihood, values.astype(float), None, f"{likelihood} (as asked)")
    if likelihood == "gaussian":
        if not numeric:
            raise ValueError(f"The Gaussian likelihood needs a numeric target; column {name!r} holds {column.dtype} "
                             f"values such as {classes[:3]}. Use --likelihood categorical or bernoulli.")
        why = f"target {name!r} has {len(classes)} distinct numeric values: gaussian" if chosen else "gaussian (as asked)"
        return Target(name, "gaussian", values.astype(float), None, why)
    if likelihood == "bernoulli" and len(classes) != 2:
        raise ValueError(f"The Bernoulli likelihood needs a target with two values; column {name!r} has "
                         f"{len(classes)}: {classes[:6]}. Use --likelihood categorical (or gaussian).")
    if likelihood == "categorical" and len(classes) > MAX_CLASSES:
        raise ValueError(f"The target column {name!r} has {len(classes)} classes, more than {MAX_CLASSES}; "
                         f"is it really categorical? Use --likelihood gaussian for a number.")
    codes = np.searchsorted(np.asarray(classes), values).astype(np.int64)
    shown = ", ".join(f"{c!r} as {k}" for k, c in enumerate(classes[:6])) + (", ..." if len(classes) > 6 else "")
    if chosen:
        what = "two values" if len(classes) == 2 else f"{len(classes)} classes"
        why = f"target {name!r} has {what} {classes[:6]}: {likelihood}, coding {shown.replace(', ', ' and ', 1) if len(classes) == 2 else shown}"
    else:
        why = f"{likelihood} (as asked), coding {shown}"
    return Target(name, likelihood, codes, classes, why)


def features(frame: pd.DataFrame, target: str, wanted: list[str] | None) -> pd.DataFrame:
    """The feature columns: ``wanted`` (checked to exist) or every column but the target."""
    if target not in frame.columns:
        raise ValueError(f"The target column {target!r} is not in the table; its columns are {list(map(str, frame.columns))}.")
    if wanted:
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise ValueError(f"The feature columns {missing} are not in the table; its columns are "
                             f"{list(map(str, frame.columns))}.")
        if target in wanted:
            raise ValueError(f"The target column {target!r} cannot also be a feature; remove it from --features.")
    x = frame[wanted] if wanted else frame.drop(columns=[target])
    if x.shape[1] == 0:
        raise ValueError("There are no feature columns: the table holds only the target.")
    other = [c for c, t in x.dtypes.items() if not (pd.api.types.is_numeric_dtype(t) or pd.api.types.is_bool_dtype(t))]
    kinds = {c: _kind(x[c]) for c in other}
    text = [str(c) for c in other if kinds[c] == "text"]
    if text:
        raise ValueError(f"The feature columns {text} hold text (categories); scanfit does not encode them behind "
                         f"your back. Name them in a formula, e.g. --formula '{target} ~ {' + '.join(f'C({c})' for c in text[:2])}"
                         f" + ...' (C(column) codes the categories), or leave them out with --features.")
    if other:
        shown = ", ".join(f"{str(c)!r} ({kinds[c]})" for c in other)
        raise ValueError(f"The feature columns {shown} do not hold numbers; scanfit fits numeric columns. "
                         f"{' '.join(dict.fromkeys(_FIXES[k.split(',')[0]] for k in kinds.values()))} Or leave them "
                         f"out with --features.")
    return x.astype(float)


_FIXES = {"timestamps": "Turn timestamps into numbers first, e.g. days since a date or the year.",
          "decimals": "Cast decimals to floating point first (pyarrow: pc.cast(column, pa.float64())).",
          "lists": "Spread lists into one column per element first.",
          "structs": "Flatten structs into one column per field first (pyarrow: table.flatten()).",
          "values": "Convert them to numbers first."}


def _kind(column: pd.Series) -> str:
    """What a non-numeric column holds, named for a message: text, timestamps, decimals, lists, structs."""
    import datetime
    import decimal

    if pd.api.types.is_datetime64_any_dtype(column) or pd.api.types.is_timedelta64_dtype(column):
        return f"timestamps, {column.dtype}"
    arrow = getattr(column.dtype, "pyarrow_dtype", None)
    if arrow is not None and not (str(arrow).startswith(("string", "large_string", "dictionary"))):
        import pyarrow as pa

        kind = ("timestamps" if pa.types.is_temporal(arrow) else "decimals" if pa.types.is_decimal(arrow) else
                "lists" if pa.types.is_list(arrow) or pa.types.is_large_list(arrow) else
                "structs" if pa.types.is_struct(arrow) else "values")
        return f"{kind}, {arrow}"
    sample = next((v for v in column if v is not None and not (isinstance(v, float) and v != v)), None) \
        if column.dtype == object else ""
    for kind, types in (("decimals", decimal.Decimal), ("timestamps", (datetime.date, datetime.time)),
                        ("lists", (list, tuple, np.ndarray)), ("structs", dict)):
        if isinstance(sample, types):
            return f"{kind}, e.g. {str(sample)[:40]}"
    return "text"


def role_columns(frame: pd.DataFrame, roles: dict) -> list[str]:
    """The columns named by --weights, --exposure, --offset, --cluster (checked), which are not features."""
    named = []
    for option, column in roles.items():
        if column is None:
            continue
        if column not in frame.columns:
            raise ValueError(f"The '--{option}' option names the column {column!r}, which the table lacks; its "
                             f"columns are {list(map(str, frame.columns))}.")
        named.append(column)
    return named


def check_finite(x: pd.DataFrame) -> None:
    """Refuse missing or infinite feature values, naming the column and the table's row."""
    values = x.to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"The feature column {str(x.columns[col])!r} has {int(bad[:, col].sum())} missing or infinite "
                         f"values; the first is at row {row} of the table (line {row + 2} of a CSV with a header). "
                         f"Drop or impute them before fitting.")


def distinct(pq, path: str, name: str, batch_rows: int = 1 << 20) -> pd.Series:
    """The distinct values of the column ``name`` of one Parquet file, read a batch at a time (memory for one
    batch, not the column) and only until more than ``MAX_CLASSES`` are seen: enough to choose the likelihood.
    Missing values are refused here, naming the first one's row."""
    seen, row = None, 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=[name]):
        values = batch.column(0).to_numpy(zero_copy_only=False)
        missing = pd.isna(values)
        if missing.any():
            raise ValueError(f"The target column {name!r} has missing values, the first at row "
                             f"{row + int(np.argmax(missing))} of {path!r}; drop or fill them before the fit.")
        seen = np.unique(values if seen is None else np.concatenate([seen, np.unique(values)]))
        row += len(values)
        if len(seen) > MAX_CLASSES:
            break
    if seen is not None and len(seen) == 1:
        raise ValueError(f"The target column {name!r} holds one value, {_plain(seen)[0]!r}, in all {row} rows; there "
                         f"is nothing to learn. Choose another target column.")
    return pd.Series(seen if seen is not None else [], name=name)
