"""Is the estimate identified? Checks that run before any standard error is printed.

- :func:`collinear`: columns of ``[1, x]`` that are (nearly) linear combinations of others, named,
  with the relation that ties them (``x2 = 2*x1 + 1*intercept``).
- :func:`separation`: perfect or quasi-perfect separation of classes (the maximum-likelihood
  estimate does not exist), found with a linear program; names a single column that separates
  when there is one, else the columns of a separating rule.
- :func:`singular`: parameters spanned by the near-null eigenvectors of an information matrix.

Each returns ``None`` when all is well, else a message for :class:`NotIdentifiedError`.

>>> import numpy as np
>>> from scanfit import identification
>>> x = np.c_[np.arange(5.0), 2 * np.arange(5.0)]
>>> print(identification.collinear(x, ("x0", "x1")))  # doctest: +ELLIPSIS
The coefficients are not identified: the columns ['x0', 'x1'] are collinear (x1 = 2*x0); ...
"""

from __future__ import annotations

import numpy as np

__all__ = ["NotIdentifiedError", "collinear", "separation", "singular", "single_column", "class_ranges",
           "missing_classes", "EXTREME_LOGIT"]

RCOND = 1e-10  # singular values below RCOND * largest count as zero (columns scaled to unit length)
EXTREME_LOGIT = 30.0  # a fitted logit beyond this (a probability within 1e-13 of 0 or 1) suggests separation


class NotIdentifiedError(ValueError):
    """The estimate is not identified (collinear columns, separated classes, a network's weights),
    so standard errors would be meaningless numbers."""


def _fmt(c: float) -> str:
    return f"{c:.4g}"


def _relation(v: np.ndarray, names: tuple[str, ...]) -> str:
    """Write ``sum_j v_j col_j = 0`` as ``last = sum of the others``."""
    idx = [j for j in np.argsort(-np.abs(v)) if abs(v[j]) > 1e-6 * np.max(np.abs(v))]
    lead = max(idx)  # express the right-most involved column through the others
    terms = [f"{_fmt(-v[j] / v[lead])}*{names[j]}" for j in sorted(idx) if j != lead]
    return f"{names[lead]} = " + " + ".join(terms).replace("+ -", "- ").replace("1*", "") if terms else f"{names[lead]} = 0"


def collinear(x: np.ndarray, names: tuple[str, ...], *, intercept: bool = True) -> str | None:
    """``x`` of shape ``(n, d)``; checks ``[1, x]`` (or ``x`` when ``intercept=False``)."""
    design = np.column_stack([np.ones(len(x)), x]) if intercept else np.asarray(x)
    labels = (("intercept",) if intercept else ()) + tuple(names)
    if design.shape[0] < design.shape[1]:
        return (f"The coefficients are not identified: {design.shape[1]} coefficients but only {design.shape[0]} "
                f"observations; use more observations or fewer columns.")
    norms = np.linalg.norm(design, axis=0)
    zero = [labels[j] for j in np.flatnonzero(norms == 0)]
    if zero:
        return f"The coefficients are not identified: the columns {zero} are all zero; drop them."
    _, s, vt = np.linalg.svd(design / norms, full_matrices=False)
    null = vt[s <= RCOND * s[0]]
    if not len(null):
        return None
    relations, involved = [], []
    for v in null:
        v = v / norms
        relations.append(_relation(v, labels))
        involved += [labels[j] for j in np.flatnonzero(np.abs(v) > 1e-6 * np.max(np.abs(v))) if labels[j] not in involved]
    return (f"The coefficients are not identified: the columns {involved} are collinear ({'; '.join(relations)}); "
            f"drop one column of each relation, or combine them.")


def separation(x: np.ndarray, y: np.ndarray, names: tuple[str, ...], n_classes: int = 2) -> str | None:
    """Perfect separation for class labels ``y`` (shape ``(n,)``, integers 0..K-1) by a linear rule
    in ``[1, x]``. Solves max sum of margins subject to every margin >= 0 with coefficients in [-1, 1]
    (the MLE does not exist exactly when that maximum is positive)."""
    from scipy.optimize import linprog

    x = np.asarray(x, float)
    y = np.asarray(y).astype(int)
    n, d = x.shape
    present = np.unique(y)
    if len(present) < n_classes:
        return missing_classes(sorted(set(range(n_classes)) - set(present.tolist())))
    single = single_column(class_ranges(x, y, n_classes), names, n_classes)
    if single is not None:  # a single column that separates a class is the clearest message
        return single
    design = np.column_stack([np.ones(n), x])
    k1 = n_classes - 1
    rows = []  # margin of the observed class over each other class: eta_y - eta_k >= 0, eta_0 = 0
    for k in range(n_classes):
        sel = np.flatnonzero(y != k)
        block = np.zeros((len(sel), k1 * (d + 1)))
        for i_cls in range(1, n_classes):  # eta_c = design @ theta_c for c >= 1
            mask = (y[sel] == i_cls).astype(float) - (k == i_cls)
            block[:, (i_cls - 1) * (d + 1):i_cls * (d + 1)] = design[sel] * mask[:, None]
        rows.append(block)
    margins = np.vstack(rows)
    res = linprog(-margins.sum(axis=0), A_ub=-margins, b_ub=np.zeros(len(margins)), bounds=(-1, 1), method="highs")
    if res.status != 0 or -res.fun <= 1e-7 * max(1.0, np.abs(margins).max()):
        return None
    theta = res.x.reshape(k1, d + 1)
    scale = np.abs(margins).max()
    per_obs = np.zeros(n, bool)
    start = 0
    for k in range(n_classes):
        sel = np.flatnonzero(y != k)
        per_obs[sel] |= margins[start:start + len(sel)] @ res.x > 1e-7 * scale
        start += len(sel)
    labels = ("intercept",) + tuple(names)
    cols = [labels[j] for j in range(d + 1) if np.any(np.abs(theta[:, j]) > 1e-7)]
    # complete separation: some rule has every margin > 0 (maximize the smallest margin t <= 1)
    m = len(margins)
    res2 = linprog(np.r_[np.zeros(margins.shape[1]), -1.0], A_ub=np.c_[-margins, np.ones(m)], b_ub=np.zeros(m),
                   bounds=[(-1, 1)] * margins.shape[1] + [(None, 1)], method="highs")
    complete = res2.status == 0 and -res2.fun > 1e-7 * scale
    kind = ("complete separation: every observation is" if complete
            else f"quasi-complete separation: {int(per_obs.sum())} of {n} observations are")
    return (f"The maximum-likelihood estimate does not exist: the classes are perfectly separated ({kind} "
            f"classified without error by a linear rule in {cols}), so some coefficients would be infinite. "
            f"Drop or merge the separating columns, collect more data, or fit with a ridge penalty, "
            f"penalty=sf.ElasticNet(alpha=..., l1_ratio=0) (its estimates are biased towards zero and have no "
            f"classical standard errors).")


def missing_classes(missing) -> str:
    return (f"The maximum-likelihood estimate does not exist: classes {list(missing)} never occur in y, so their "
            f"logits go to minus infinity; drop those classes (encode the observed ones as 0..K-1).")


def class_ranges(x: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Per class k checked (class 0 alone for two classes) and column: the smallest and largest value
    of the rows of class k and of the other rows, shape ``(classes checked, 4, columns)``."""
    out = []
    for k in range(n_classes if n_classes > 2 else 1):
        inside, outside = x[y == k], x[y != k]
        out.append([inside.min(0), inside.max(0), outside.min(0), outside.max(0)])
    return np.asarray(out, float)


def single_column(ranges: np.ndarray, names, n_classes: int) -> str | None:
    """The message for a column that separates a class from the others perfectly, from
    :func:`class_ranges` (which a streamed fit sums over its chunks), or None."""
    for j, name in enumerate(names):
        for k, (lo_in, hi_in, lo_out, hi_out) in enumerate(ranges[:, :, j]):
            if hi_in <= lo_out or lo_in >= hi_out:
                rest = "y=1" if n_classes == 2 else "the other classes"
                return (f"The maximum-likelihood estimate does not exist: the column {name!r} separates y={k} from "
                        f"{rest} perfectly (y={k} has {name} in [{_fmt(lo_in)}, {_fmt(hi_in)}], {rest} in "
                        f"[{_fmt(lo_out)}, {_fmt(hi_out)}]); its coefficient would be infinite. Drop {name!r}, or "
                        f"fit with a ridge penalty, penalty=sf.ElasticNet(alpha=..., l1_ratio=0) (its estimates are "
                        f"biased towards zero and have no classical standard errors).")
    return None


def singular(info: np.ndarray, names: list[str]) -> str | None:
    """Names the parameters in the near-null space of an information matrix (negative Hessian) of
    shape ``(p, p)``, or says that it is not positive definite (not a maximum)."""
    diag = np.diag(info)
    if np.any(~np.isfinite(info)):
        return "The information matrix (minus the Hessian) has NaN or infinite entries; check the fit's status."
    if np.any(diag <= 0):
        bad = [names[j] for j in np.flatnonzero(diag <= 0)]
        return (f"The estimate is not identified: the log-likelihood does not curve in {bad} (zero or negative "
                f"curvature); fix or drop those parameters.")
    scale = 1 / np.sqrt(diag)
    lam, vec = np.linalg.eigh(info * scale[:, None] * scale[None, :])
    small = lam <= RCOND * lam[-1]
    if not small.any():
        return None
    what = "singular" if np.all(lam > -RCOND * lam[-1]) else "not negative definite (the estimate is not a maximum)"
    involved = []
    for v in vec[:, small].T:
        involved += [names[j] for j in np.flatnonzero(np.abs(v) > 0.05 * np.abs(v).max()) if names[j] not in involved]
    return (f"The estimate is not identified: the Hessian of the log-likelihood is {what}; the parameters "
            f"{involved[:20]}{' ...' if len(involved) > 20 else ''} can move together without changing the fit. "
            f"Remove the redundancy (collinear columns, duplicate units, an over-parametrized output).")
