"""How many design columns a formula builds, counted before formulaic builds any (``scanfit.data.limits``).

- :func:`check_terms`: the terms a side of a formula's text expands to (``(a + b + c)**3``, ``a * b``), an
  upper bound from its syntax tree alone, before formulaic expands it;
- :func:`number`: the value of arithmetic on numbers inside a call (``bs(x, df=100 + 1)``), or None;
- :func:`check_columns`: the right-hand design's columns (a categorical factor counts its levels, ``poly``
  its degree, ``bs`` its degrees of freedom; an interaction the product), checked against the limits on
  columns and on columns x rows.
"""

from __future__ import annotations

import ast
import math
from typing import Callable

from . import limits

__all__ = ["check_terms", "check_columns", "number", "MAX_DEGREE"]

CAP = 1e18  # bounds beyond this are all "too many"
MAX_DEGREE = 100  # poly's degree, bs's df or degree: at most this many


def number(node: ast.AST) -> float | None:
    """``node``'s value when it is arithmetic on numbers (inf when it is huge), else None."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = number(node.operand)
        return None if v is None else (-v if isinstance(node.op, ast.USub) else v)
    if not isinstance(node, ast.BinOp):
        return None
    a, b = number(node.left), number(node.right)
    if a is None or b is None:
        return None
    try:
        if isinstance(node.op, ast.Pow):
            return math.inf if abs(a) > 1 and b * math.log2(abs(a)) > 1000 else float(a ** b)
        ops = {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}
        if type(node.op) in ops:
            return ops[type(node.op)]
        return {ast.Div: a / b, ast.FloorDiv: a // b, ast.Mod: a % b}.get(type(node.op))
    except (ArithmeticError, TypeError, ValueError):
        return math.inf


def _terms(node: ast.AST) -> float:
    """An upper bound on the terms one side expands to."""
    if isinstance(node, ast.UnaryOp):
        return _terms(node.operand)
    if not isinstance(node, ast.BinOp):
        return 1.0
    a = _terms(node.left)
    if isinstance(node.op, (ast.Pow, ast.BitXor)):
        k = min(number(node.right) or 1.0, 64.0)
        return min(2.0 ** min(a, 64.0), (a + 1) ** k, CAP)
    b = _terms(node.right)
    if isinstance(node.op, ast.Sub):
        return a
    if isinstance(node.op, ast.Add):
        return min(a + b, CAP)
    return min(a + b + a * b, CAP)  # a * b and a / b (a bound for each)


def check_terms(side: str, text: str) -> None:
    """Refuse a side (its text, with ``Q()`` aliases) whose terms alone exceed the limit on design columns (each
    term is a column or more). ':' is read as '*' here, which has its precedence among '+' and '**' and at least
    its terms."""
    tree = ast.parse(side.replace(":", "*").strip(), mode="eval").body
    limits.check("columns", int(_terms(tree)), f"The number of terms of the formula "
                 f"{text!r} (at most; each is a design column or more)", "Use fewer terms or lower powers of sums")


def _degree(call: ast.Call, position: int, keyword: str, default: float) -> float:
    node = next((kw.value for kw in call.keywords if kw.arg == keyword), None)
    if node is None and len(call.args) > position:
        node = call.args[position]
    if node is None:
        return default
    if isinstance(node, (ast.List, ast.Tuple)):
        return float(len(node.elts))
    v = number(node)
    return default if v is None else v


def degrees(call: ast.Call) -> list[float]:
    """The counts that set ``poly``'s or ``bs``'s columns (degree, df, knots), evaluated; [] for other calls."""
    name = ast.unparse(call.func)
    if name == "poly":
        return [_degree(call, 1, "degree", 1.0)]
    if name == "bs":
        return [_degree(call, 1, "df", 0.0), _degree(call, 2, "knots", 0.0), _degree(call, 3, "degree", 3.0)]
    return []


def _width(expr: str, levels: Callable[[str, ast.AST], int | None]) -> float:
    """One factor's columns at most: its levels when categorical, else poly's degree, bs's df, or 1."""
    node = ast.parse(expr, mode="eval").body
    count = levels(expr, node)
    if count is not None:
        return float(count)
    if isinstance(node, ast.Call) and ast.unparse(node.func) in ("poly", "bs"):
        d = degrees(node)
        return d[0] if len(d) == 1 else max(d[0], d[1] + d[2]) + 1
    return 1.0


def check_columns(plain: str, rows: int, levels: Callable[[str, ast.AST], int | None], text: str) -> int:
    """The right-hand design's columns at most, for ``plain`` (the text with ``Q()`` aliases); refused above the
    limits. ``levels(expr, node)``: a factor's number of categories, None when it is numerical."""
    import formulaic

    total = 0.0
    for term in formulaic.Formula(plain).rhs:
        total = min(total + math.prod(_width(f.expr, levels) for f in term.factors if f.expr != "1"), CAP)
    columns = int(total)
    fix = "Use fewer terms, lower degrees or columns with fewer categories"
    limits.check("columns", columns, f"The number of design columns of the formula {text!r} (at most)", fix)
    limits.check("cells", columns * rows, f"The number of design cells of the formula {text!r} ({columns:,} columns "
                 f"at most x {rows:,} rows)", f"{fix}, or fewer rows")
    return columns
