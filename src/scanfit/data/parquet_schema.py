"""What ``sf.Parquet`` learns from the files' footers before reading any rows: which files, their
row counts, and one schema for the columns a fit reads.

- Files: a file, a directory (its ``*.parquet`` files, recursively) or a glob, each file once (by its real
  path); neither follows a symbolic link to a directory below it. As Spark and
  pyarrow.dataset do, paths below a directory or a glob's fixed part whose name starts with ``_`` or
  ``.`` are skipped (``_temporary/`` of an unfinished Spark job, ``.hidden`` copies, ``_SUCCESS``).
- Every file's footer is read: a file that cannot be read is named, and so is a file that lacks a
  column or holds another kind of values in it.
- One schema (:func:`unified`): features as float32 when every file stores every feature in a type
  that float32 holds exactly (float32, float16, small integers, booleans), else float64; the target,
  weights and offset columns in their own type where every file agrees, else float64. A file whose
  types differ is cast to it as it is read, so files of float32 and float64 columns neither fail to
  join nor lose digits.
"""

from __future__ import annotations

import glob as globbing
import os
from pathlib import Path

__all__ = ["files_of", "footers", "numeric", "unified", "folder_keys", "SMALL_TYPES"]

SMALL_TYPES = ("float", "halffloat", "int8", "int16", "uint8", "uint16", "bool")  # exact in float32


def _hidden(parts) -> bool:
    return any(part.startswith(("_", ".")) for part in parts)


def _linked(path: str, base: str) -> bool:
    """Whether ``path`` lies below a symbolic link to a directory under ``base``: a glob follows such links (a
    link to a parent, ``loop/sub/up -> ..``, matches one file again and again); the directory form does not."""
    parts = Path(os.path.relpath(path, base)).parts[:-1]
    return any(os.path.islink(os.path.join(base, *parts[:k + 1])) for k in range(len(parts)))


def files_of(path) -> tuple[str, ...]:
    """The Parquet files of ``path``: a file, a directory (every ``*.parquet`` below it) or a glob."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"The 'path' parameter of sf.Parquet must be a file, a directory or a glob pattern "
                        f"(a string or pathlib.Path). Got {type(path).__name__}.")
    text = os.fspath(path)
    p = Path(text)
    if p.is_dir():
        found = sorted(str(f) for f in p.rglob("*.parquet")
                       if f.is_file() and not _hidden(f.relative_to(p).parts))
        what = f"the directory {text!r} holds no *.parquet files (names starting with '_' or '.' are skipped)"
    elif p.is_file():
        found = [text]
        what = ""
    else:
        base = os.path.dirname(text[:min((text.find(c) for c in "*?[" if c in text), default=len(text))]) or "."
        found = sorted(f for f in globbing.glob(text, recursive=True) if Path(f).is_file()
                       and not _hidden(Path(os.path.relpath(f, base)).parts) and not _linked(f, base))
        what = f"{text!r} is not a file or directory, and as a glob pattern it matches no files"
    seen: set[str] = set()  # each file once, by its real path (two links to one file are one file)
    found = [f for f in found if not (os.path.realpath(f) in seen or seen.add(os.path.realpath(f)))]
    if not found:
        raise FileNotFoundError(f"The 'path' parameter of sf.Parquet: {what}. Give a .parquet file, a directory "
                                f"of them, or a glob such as 'data/*.parquet'.")
    return tuple(found)


def folder_keys(files, names) -> str:
    """A hint for columns ``names`` that are missing from the files but name folders ``key=value``
    (Hive partitioning, as Spark writes it); "" when none does."""
    keys = {part.split("=", 1)[0] for f in files for part in Path(f).parent.parts if "=" in part}
    named = [n for n in names if n in keys]
    if not named:
        return ""
    return (f" ({named} name folders key=value, Hive partitioning: sf.Parquet reads the files' own columns only, "
            f"so write those values into the files as columns)")


def footers(pq, files) -> tuple[list, int]:
    """Every file's Arrow schema and the total row count; a file that cannot be read is named."""
    schemas, rows = [], 0
    for f in files:
        try:
            meta = pq.ParquetFile(f).metadata
            schemas.append(meta.schema.to_arrow_schema())
            rows += meta.num_rows
        except Exception as err:
            raise ValueError(f"sf.Parquet could not read the Parquet footer of {f!r}: {err}") from None
    return schemas, rows


def numeric(t) -> bool:
    import pyarrow.types as pt

    return pt.is_integer(t) or pt.is_floating(t) or pt.is_boolean(t) or pt.is_decimal(t)


def unified(files, schemas, features, others):
    """The schema the chunks are read in (see the module docstring) and the features' dtype; checks
    that every file has every column (``features`` then ``others``, the target first) as numbers."""
    import pyarrow as pa

    first = schemas[0]
    for f, schema in zip(files, schemas):
        missing = [c for c in (*features, *others) if c not in schema.names]
        if missing:
            raise ValueError(f"The file {f!r} lacks the columns {missing} (it has {schema.names}); every file of an "
                             f"sf.Parquet source must hold the same columns.")
        text = [c for c in (*features, *others) if not numeric(schema.field(c).type)]
        if text:
            kinds = [str(schema.field(c).type) for c in text]
            raise ValueError(f"The columns {text} of {f!r} hold {kinds}, not numbers"
                             + ("" if schema is first else f" (in {files[0]!r} they hold "
                                f"{[str(first.field(c).type) for c in text]})")
                             + "; encode them as numbers (classes as 0..K-1) in every file.")
    small = all(str(s.field(c).type) in SMALL_TYPES for s in schemas for c in features)
    x_type = pa.float32() if small else pa.float64()
    fields = [pa.field(c, x_type) for c in features]
    for c in others:
        kinds = {s.field(c).type for s in schemas}
        one = kinds.pop() if len(kinds) == 1 else None
        fields.append(pa.field(c, one if one is not None and not pa.types.is_decimal(one) else pa.float64()))
    return pa.schema(fields), "float32" if small else "float64"
