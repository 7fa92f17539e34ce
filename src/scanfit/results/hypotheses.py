"""Model tests: the null model, likelihood-ratio and Wald tests (the numbers; ``inference`` and
``FitResult`` call them).

Null model
    the intercept-only model fitted to the training rows (with their weights and offset; a
    NegativeBinomial null estimates its own ``alpha``; a Categorical null the class shares), as
    statsmodels' ``llnull``. ``llr = 2 (loglik - llnull)`` on ``k - k_null`` degrees of freedom
    (statsmodels' ``df_model``: the coefficients besides the intercept); McFadden's pseudo R-squared
    ``1 - loglik / llnull`` (``prsquared``). Gaussian uses the maximum-likelihood sigma in both, as
    OLS's ``llf``.
Likelihood ratio
    ``lr_test(restricted, full)``: ``2 (loglik_full - loglik_restricted)``, chi-squared with the
    difference in parameter counts.
Wald
    ``wald_test("x1 = x2, x3 = 0")``: ``(R theta - q)' (R V R')^-1 (R theta - q)``, chi-squared with one
    degree of freedom per restriction (statsmodels' ``wald_test(..., use_f=False)``), ``V`` from the
    chosen ``cov_type``. Restrictions are linear in the names of ``summary()``'s index, separated by
    commas: ``"x1 = 0"``, ``"2*x1 - x2 = 1"``, ``"intercept = 0"``, ``"x1"`` (meaning ``x1 = 0``).
    Categorical rows ``(class, term)`` are written ``class:term``: ``"1:x1 = 2:x1"``. Names are
    matched whole, longest first, so formula names such as ``C(region)[T.b]`` or ``np.log(z)`` are
    written as they appear in the index. A matrix ``R`` (rows of length p) with ``value=q`` works too.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..data.precision import dtype_scope
from .distributions import chi2_sf, f_sf
from .estimates import Estimates

__all__ = ["labels", "null_loglik", "model_tests", "restrictions", "wald", "lr"]

_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_NAME_CHARS = re.compile(r"[A-Za-z0-9_.]")


def labels(index: pd.Index) -> list[str]:
    """The names restrictions use: the index's labels, ``class:term`` for Categorical rows."""
    return [":".join(map(str, t)) if isinstance(t, tuple) else str(t) for t in index]


def null_loglik(result, est: Estimates) -> float:
    """The total log-likelihood of the intercept-only model on the training rows (nan when the
    likelihood has no null model)."""
    lik = result.likelihood
    if result.train is None and getattr(result, "inference", None) is not None:  # a streamed fit
        return float(result.inference["llnull"])
    _, y = lik.prepare(result.train[1])
    w, offset = getattr(result, "weights", None), getattr(result, "offset", None)
    try:
        with dtype_scope("float64"):  # a likelihood may evaluate its null model with JAX (NegativeBinomial)
            mean = lik.null_objective(y, y, w, w, offset, offset)
    except NotImplementedError:
        return float("nan")
    return float(mean) * est.n_obs


def model_tests(est: Estimates, llnull: float) -> dict:
    """llnull, the LR test against the null model, McFadden's pseudo R-squared."""
    df = len(est.theta) - est.k_null
    llr = 2.0 * (est.loglik - llnull)
    return {"llnull": llnull, "llr": llr, "llr_df": df,
            "llr_pvalue": float(chi2_sf(llr, df)) if df > 0 else float("nan"),
            "pseudo_r2": 1.0 - est.loglik / llnull if llnull else float("nan")}


def _tokens(text: str, names: list[str]):
    by_length = sorted(set(names), key=len, reverse=True)
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
            continue
        hit = next((nm for nm in by_length if text.startswith(nm, i)
                    and not (i + len(nm) < len(text) and _NAME_CHARS.match(text[i + len(nm)])
                             and _NAME_CHARS.match(nm[-1]))), None)
        if hit is not None:
            yield "name", hit, i
            i += len(hit)
            continue
        m = _NUMBER.match(text, i)
        if m:
            yield "number", float(m.group(0)), i
            i = m.end()
            continue
        if c in "+-*=,":
            yield c, c, i
            i += 1
            continue
        word = re.match(r"[^\s+\-*=,]+", text[i:]).group(0)
        raise ValueError(f"The restriction {text!r} names {word!r} (at character {i}), which is not a coefficient. "
                         f"The names are {names}" + (" (Categorical rows are written class:term, e.g. "
                                                     f"{names[0]!r})" if ":" in names[0] else "") + ".")


def _side(tokens, text, names, p):
    """Coefficients (p,) and constant of one side: ``[+-] term (+- term)*``, a term being ``number``,
    ``name``, ``number * name`` or ``number name``."""
    coef, const, sign, need_op, i = np.zeros(p), 0.0, 1.0, False, 0
    if not tokens:
        raise ValueError(f"The restriction {text!r} has an empty side; write e.g. 'x1 = 0'.")
    while i < len(tokens):
        kind, value, at = tokens[i]
        if kind in ("+", "-"):
            sign, need_op, i = sign * (-1.0 if kind == "-" else 1.0), False, i + 1
            continue
        if need_op:
            raise ValueError(f"The restriction {text!r} has two terms without '+' or '-' between them "
                             f"(at character {at}); write e.g. '2*x1 + x2 = 0'.")
        factor = 1.0
        if kind == "number":
            factor, i = value, i + 1
            if i < len(tokens) and tokens[i][0] == "*":
                i += 1
            if i >= len(tokens) or tokens[i][0] != "name":
                if tokens[i - 1][0] == "*":
                    raise ValueError(f"The restriction {text!r} has '*' without a coefficient name after it.")
                const += sign * factor
                sign, need_op = 1.0, True
                continue
            kind, value, at = tokens[i]
        if kind != "name":
            raise ValueError(f"The restriction {text!r} has {value!r} where a coefficient name or a number belongs "
                             f"(at character {at}).")
        coef[names.index(value)] += sign * factor
        sign, need_op, i = 1.0, True, i + 1
    if not need_op:
        raise ValueError(f"The restriction {text!r} ends with an operator; write e.g. 'x1 - x2 = 0'.")
    return coef, const


def restrictions(spec, names: list[str], value=None) -> tuple[np.ndarray, np.ndarray]:
    """``(R, q)`` from a string such as ``"x1 = x2, x3 = 0"`` or a matrix ``R`` with ``value``."""
    p = len(names)
    if not isinstance(spec, str):
        R = np.atleast_2d(np.asarray(spec, dtype=float))
        if R.ndim != 2 or R.shape[1] != p:
            raise ValueError(f"The restrictions must be a string such as 'x1 = 0' or a matrix with one column per "
                             f"coefficient ({p}: {names}). Got shape {np.shape(spec)}.")
        q = np.zeros(len(R)) if value is None else np.broadcast_to(np.asarray(value, float), (len(R),)).copy()
        return R, q
    if value is not None:
        raise ValueError("The 'value' parameter goes with a matrix of restrictions; in a string write it after "
                         "'=', e.g. 'x1 = 2'.")
    tokens = list(_tokens(spec, names))
    pieces, cur = [], []
    for t in tokens:
        if t[0] == ",":
            pieces.append(cur)
            cur = []
        else:
            cur.append(t)
    pieces.append(cur)
    rows, qs = [], []
    for piece in pieces:
        if not piece:
            raise ValueError(f"The restrictions {spec!r} hold an empty restriction; separate them with single "
                             f"commas, e.g. 'x1 = 0, x2 = 0'.")
        eq = [j for j, t in enumerate(piece) if t[0] == "="]
        if len(eq) > 1:
            raise ValueError(f"A restriction in {spec!r} has {len(eq)} '=' signs; write one per restriction and "
                             f"separate restrictions with commas, e.g. 'x1 = x2, x2 = x3'.")
        left, right = (piece[:eq[0]], piece[eq[0] + 1:]) if eq else (piece, [("number", 0.0, -1)])
        a, ca = _side(left, spec, names, p)
        b, cb = _side(right, spec, names, p)
        if not np.any(a - b):
            raise ValueError(f"A restriction in {spec!r} holds no coefficient (or they cancel); write e.g. 'x1 = 0'.")
        rows.append(a - b)
        qs.append(cb - ca)
    return np.array(rows), np.array(qs)


def wald(theta: np.ndarray, cov: np.ndarray, R: np.ndarray, q: np.ndarray, df_denom: float | None = None) -> pd.Series:
    """The Wald statistic of ``R theta = q`` against chi-squared(rows of R); with ``df_denom`` (a
    non-robust Gaussian fit, whose summary uses Student's t) the F statistic, W / rows, against
    F(rows, df_denom), as statsmodels' OLS: one restriction's p-value is then the summary's."""
    diff = R @ theta - q
    middle = R @ cov @ R.T
    if np.linalg.matrix_rank(middle) < len(R):
        raise ValueError(f"The {len(R)} restrictions are not independent (or their covariance is singular): drop "
                         f"the restrictions that follow from the others.")
    stat = float(diff @ np.linalg.solve(middle, diff))
    if df_denom is not None:
        f = stat / len(R)
        return pd.Series({"statistic": f, "df": len(R), "df_denom": float(df_denom),
                          "p_value": float(f_sf(f, len(R), df_denom))}, name="F")
    return pd.Series({"statistic": stat, "df": len(R), "p_value": float(chi2_sf(stat, len(R)))}, name="wald")


def lr(restricted: Estimates, full: Estimates) -> pd.Series:
    if restricted.family != full.family:
        raise ValueError(f"lr_test compares two fits of the same likelihood. Got {restricted.family!r} (restricted) "
                         f"and {full.family!r} (full).")
    if not np.isclose(restricted.n_obs, full.n_obs, rtol=1e-12):
        raise ValueError(f"lr_test compares two fits on the same rows. Got {restricted.n_obs:g} observations "
                         f"(restricted) and {full.n_obs:g} (full).")
    df = len(full.theta) - len(restricted.theta)
    if df <= 0:
        raise ValueError(f"lr_test(restricted, full) needs the full model to have more parameters: the restricted "
                         f"fit has {len(restricted.theta)}, the full {len(full.theta)}. Pass the smaller model first.")
    stat = 2.0 * (full.loglik - restricted.loglik)
    if stat < -1e-6 * max(1.0, abs(full.loglik)):
        raise ValueError(f"lr_test: the full model's log-likelihood ({full.loglik:.6g}) is below the restricted "
                         f"one's ({restricted.loglik:.6g}), so the models are not nested or a fit stopped short "
                         f"of its maximum (result.refine()).")
    return pd.Series({"statistic": stat, "df": df, "p_value": float(chi2_sf(stat, df))}, name="lr")
