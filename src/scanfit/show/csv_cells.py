"""CSV that a spreadsheet opens as data, never as formulas (OWASP's CSV-injection rule).

A text cell (or column name) that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
is written with a single quote in front, so that ``=HYPERLINK(...)`` or ``@SUM(1+1)`` shows as text
instead of running. Numbers stay numbers: numeric columns are not touched, and a text cell that
reads as a plain number (``-1.5``, ``+2e3``) is left as it is.

>>> import pandas as pd
>>> print(to_csv(pd.DataFrame({"label": ["=1+1", "-1.5", "ok"], "x": [-1.5, 2.0, 3.0]})), end="")
label,x
'=1+1,-1.5
-1.5,2.0
ok,3.0
"""

from __future__ import annotations

import re

import pandas as pd

__all__ = ["cell", "neutralize", "to_csv"]

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def cell(value):
    """``value`` with a quote in front when it is text a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def neutralize(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its text cells and column names made safe (a copy; numeric and date columns as they are)."""
    out = frame.copy()
    out.columns = [cell(c) for c in frame.columns]
    for k in range(out.shape[1]):
        column = out.iloc[:, k]
        text = column.dtype == object or pd.api.types.is_string_dtype(column)
        if text or isinstance(column.dtype, pd.CategoricalDtype):
            out.isetitem(k, column.astype(object).map(cell))
    return out


def to_csv(frame: pd.DataFrame, path=None, sep: str = ","):
    """``frame`` as CSV without its index, made safe; to ``path``, or returned as text when it is None."""
    return neutralize(frame).to_csv(path, index=False, sep=sep)
