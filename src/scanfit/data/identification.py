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
           "missing_classes", "maximum_exists", "check_separation", "EXTREME_LOGIT"]

RCOND = 1e-10  # singular values below RCOND * largest count as zero (columns scaled to unit length)
TINY = 1e-8  # a row's score weight below this (a fitted probability within ~1e-8 of its bound) goes to the LP
EXTREME_LOGIT = float(-np.log(TINY))  # 18.4: a fitted logit beyond it is in that tail (streamed fits count them)
FACTOR = 1e-3  # the certificate's weights must keep at least this share of the fit's own weights
NEWTON_STEPS = 12  # logistic Newton steps tried from the fit's estimate before the full linear program


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


def _pairs(design: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The margins matrix ``A`` and each of its rows' observation. Two classes: one row per observation,
    ``s_i * design_i`` with ``s_i = +-1`` (its margin ``s_i * eta_i``). K classes (class 0 the reference,
    ``eta_0 = 0``): one row per observation and class ``k`` other than its own, the margin
    ``eta_{y_i} - eta_k``, with the coefficients of classes 1..K-1 as blocks of columns."""
    n, p = design.shape
    if n_classes == 2:
        return design * np.where(y > 0, 1.0, -1.0)[:, None], np.arange(n)
    k1 = n_classes - 1
    blocks, owners = [], []
    for k in range(n_classes):
        sel = np.flatnonzero(y != k)
        block = np.zeros((len(sel), k1 * p))
        for c in range(1, n_classes):
            mask = (y[sel] == c).astype(float) - (k == c)
            block[:, (c - 1) * p:c * p] = design[sel] * mask[:, None]
        blocks.append(block)
        owners.append(sel)
    return np.vstack(blocks), np.concatenate(owners)


def _separating(margins: np.ndarray):
    """The linear program max sum(margins @ b) subject to margins @ b >= 0, b in [-1, 1]: the solution
    when some rule separates (a positive maximum), else None."""
    from scipy.optimize import linprog

    res = linprog(-margins.sum(axis=0), A_ub=-margins, b_ub=np.zeros(len(margins)), bounds=(-1, 1), method="highs")
    if res.status != 0 or -res.fun <= 1e-7 * max(1.0, np.abs(margins).max()):
        return None
    return res


def separation(x: np.ndarray, y: np.ndarray, names: tuple[str, ...], n_classes: int = 2, *,
               intercept: bool = True) -> str | None:
    """Perfect separation for class labels ``y`` (shape ``(n,)``, integers 0..K-1) by a linear rule
    in ``[1, x]`` (``x`` alone when ``intercept=False``). Solves max sum of margins subject to every
    margin >= 0 with coefficients in [-1, 1] (the MLE does not exist exactly when that maximum is
    positive). Over all rows: a fit checks with :func:`check_separation`, which runs this only when
    its estimate gives no certificate that the maximum exists."""
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
    design = np.column_stack([np.ones(n), x]) if intercept else x
    labels = ("intercept",) * intercept + tuple(names)
    width = design.shape[1]
    margins, owner = _pairs(design, y, n_classes)
    res = _separating(margins)
    if res is None:
        return None
    theta = res.x.reshape(n_classes - 1, width)
    scale = np.abs(margins).max()
    per_obs = np.zeros(n, bool)
    per_obs[owner[margins @ res.x > 1e-7 * scale]] = True
    cols = [labels[j] for j in range(width) if np.any(np.abs(theta[:, j]) > 1e-7)]
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


def _terms(m: np.ndarray, owner: np.ndarray, n: int, kind: str):
    """Per margin row: the score weight ``g`` (d loglik / d margin, > 0), a curvature weight ``h`` (> 0),
    and per observation the log-likelihood, for ``kind`` "logit", "probit" or "multinomial"."""
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        if kind == "logit":  # (NumPy only: importing scipy.special costs a logit's summary 0.3 s)
            g = np.exp(-np.logaddexp(0.0, m))
            return g, g * (1 - g), -np.logaddexp(0.0, -m)
        if kind == "probit":
            from scipy.special import log_ndtr

            ll = log_ndtr(m)
            g = np.exp(-0.5 * m * m - 0.5 * np.log(2 * np.pi) - ll)  # phi / Phi, the inverse Mills ratio
            return g, np.maximum(g * (g + m), 1e-12 * g), ll
        top = np.zeros(n)
        np.maximum.at(top, owner, -m)
        e = np.exp(-m - top[owner])
        total = np.exp(-top) + np.bincount(owner, e, minlength=n)
        g = e / total[owner]
        return g, g * (1 - g), -(top + np.log(total))


def _solve(info: np.ndarray, rhs: np.ndarray):
    """``(u, basis)``: ``u`` solves ``info u = rhs`` on the range of the positive semi-definite ``info``
    (Jacobi-scaled; Cholesky when clearly definite, else eigenvalues), ``basis`` spans its null space
    (None when there is none)."""
    from scipy.linalg import cho_factor, cho_solve

    diag = np.diag(info)
    scale = np.where(diag > 0, 1 / np.sqrt(np.where(diag > 0, diag, 1.0)), 1.0)
    scaled = info * scale[:, None] * scale[None, :]
    if np.all(diag > 0):
        try:
            factor = cho_factor(scaled, check_finite=False)
            if np.min(np.abs(np.diag(factor[0]))) ** 2 > 1e-10:
                return scale * cho_solve(factor, scale * rhs, check_finite=False), None
        except np.linalg.LinAlgError:
            pass
    lam, vec = np.linalg.eigh(scaled)
    null = lam <= 1e-12 * max(lam[-1], 0.0)
    inv = np.where(null, 0.0, 1 / np.where(null, 1.0, lam))
    u = scale * (vec @ (inv * (vec.T @ (scale * rhs))))
    return u, (scale[:, None] * vec[:, null] if null.any() else None)


class _Margins:
    """The margins matrix ``A`` of :func:`_pairs` for ``[1, x]`` (``x`` without ``intercept``); for two
    classes it is never formed (rows ``s_i * [1, x_i]``)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, n_classes: int, intercept: bool):
        self.binary, self.intercept = n_classes == 2, intercept and n_classes == 2
        if self.binary:
            self.x, self.sign, self.owner = x, np.where(y > 0, 1.0, -1.0), np.arange(len(y))
        else:
            design = np.column_stack([np.ones(len(x)), x]) if intercept else x
            self.x, self.owner = _pairs(design, y, n_classes)
            self.sign = 1.0
        self.width = self.x.shape[1] + self.intercept

    def dot(self, v: np.ndarray) -> np.ndarray:
        """``A @ v``."""
        out = self.x @ v[1:] + v[0] if self.intercept else self.x @ v
        return self.sign * out

    def rows(self, mask: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
        """``A[mask]``, its rows times ``weight[mask]`` when given (most rows: all rows, the others zeroed)."""
        factor = self.sign * (1.0 if weight is None else weight) * np.ones(len(mask))
        if mask.sum() > len(mask) // 2:
            factor, part = np.where(mask, factor, 0.0), self.x
        else:
            factor, part = factor[mask], self.x[mask]
        out = part * factor[:, None]
        return np.column_stack([factor, out]) if self.intercept else out

    def tdot(self, v: np.ndarray, mask: np.ndarray, absolute: bool = False) -> np.ndarray:
        """``A[mask].T @ v[mask]`` (of ``abs(A)`` when ``absolute``)."""
        v = np.where(mask, v, 0.0)
        if absolute:
            out = np.abs(self.x).T @ v
            return np.r_[v.sum(), out] if self.intercept else out
        v = v * self.sign
        return np.r_[v.sum(), self.x.T @ v] if self.intercept else self.x.T @ v


def _certify(A: _Margins, wg: np.ndarray, wh: np.ndarray, tail: np.ndarray, rows: np.ndarray,
             subset: bool) -> bool | None:
    """True when ``lam = wg`` on the rows outside ``tail``, corrected on ``rows`` (some of them) to
    ``wg * (1 - (wh / wg) * A u)``, is strictly positive and solves ``A' lam = 0`` (and the tail's rows
    cannot separate in the null space of the others), False when the tail separates there, None when
    no certificate came out (``subset``: a null space is undecided too)."""
    rest = ~tail
    if not rows.any():
        return None
    weighted = A.rows(rows, np.sqrt(wh))
    info = weighted.T @ weighted
    u, basis = _solve(info, A.tdot(wg, rest))
    if basis is not None and subset:
        return None
    factor = 1 - (wh[rows] / wg[rows]) * A.dot(u)[rows]
    if not factor.min() >= FACTOR:
        return None
    new = wg.copy()
    new[rows] *= factor
    if not np.all(np.abs(A.tdot(new, rest)) <= 1e-9 * A.tdot(new, rest, absolute=True)):
        return None  # the certificate's equation does not hold to rounding (a near-singular system)
    if basis is None:
        return True  # only b = 0 has A_R b = 0: nothing can separate
    if not tail.any():
        return None  # the rows' columns are collinear: collinear() says so
    return _separating(A.rows(tail) @ basis) is None


def _interior(wh: np.ndarray, tail: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` rows outside ``tail`` with the largest curvature weights (fitted probabilities
    nearest one half), as a mask."""
    keep = np.where(tail, -np.inf, wh)
    out = np.zeros(len(wh), bool)
    out[np.argpartition(-keep, count)[:count]] = True
    return out & ~tail


def maximum_exists(x: np.ndarray, y: np.ndarray, coef: np.ndarray, n_classes: int = 2,
                   weights: np.ndarray | None = None, offset: np.ndarray | None = None,
                   link: str = "logit", intercept: bool = True) -> bool | None:
    """Whether the maximum-likelihood estimate of a logit, probit or multinomial logit exists, decided
    from a fit's estimate ``coef`` (shape ``(p,)`` for two classes, ``(p, K)`` for K, the intercept first
    when ``intercept``) on rows ``x`` of shape ``(n, d)``: True with a certificate, False when
    the classes are separated, None when undecided (then :func:`separation` decides).

    Why it is sound (Stiemke's alternative): with ``A`` the margins matrix of :func:`_pairs`, either some
    ``b`` has ``A b >= 0`` and ``A b != 0`` (separation: no maximum) or some strictly positive ``lam``
    has ``A' lam = 0`` (then the maximum exists), never both. A fit gives nearly such a ``lam``: its
    score is ``A' (w g)`` with every ``g > 0`` (for a logit, the probability of the other class), and
    it is nearly zero. One correction ``lam = w g (1 - (h/g) A u)``, ``u`` solving
    ``(A' W h A) u = A' w g`` (``h > 0`` the curvature weights), makes ``A' lam = 0`` exactly; the
    certificate holds when every factor stays above ``FACTOR`` and the equation holds to rounding (the
    correction is tried first on the rows of most curvature, a few times the number of coefficients).
    Rows whose ``g`` is below ``TINY`` (fitted probabilities at 0 or 1, where separation shows) are left
    out; a certificate on the other rows ``R`` forces any separating ``b`` into the null space of
    ``A_R``, and a linear program over the tail's rows in that null space (none when ``A_R`` has full
    rank) settles it. When no certificate comes out, Newton steps of the logit (or probit) from the
    estimate are tried (whether the maximum exists does not depend on the link), then None."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y).astype(int)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, np.float64)
    keep = w > 0
    if not keep.all():
        x, y, w = x[keep], y[keep], w[keep]
    if len(np.unique(y)) < n_classes:
        return False  # a class with no rows: its logits go to minus infinity
    A = _Margins(x, y, n_classes, intercept)
    owner = A.owner
    coef = np.asarray(coef, np.float64)
    theta = (coef[:, 1:] - coef[:, :1]).T.reshape(-1) if coef.ndim == 2 else coef  # class 0 the reference
    if n_classes == 2:
        kind = "probit" if link == "probit" else "logit"
        shift = 0.0 if offset is None else np.where(y > 0, 1.0, -1.0) * np.asarray(offset, np.float64)[keep]
    else:
        kind, shift = "multinomial", 0.0
    if not np.all(np.isfinite(theta)):
        return None
    wp = w[owner]
    g, h, ll = _terms(A.dot(theta) + shift, owner, len(y), kind)
    for step in range(NEWTON_STEPS + 1):
        if not (np.all(np.isfinite(g)) and np.all(np.isfinite(h))):
            return None
        tail = g < TINY
        wg, wh = wp * g, wp * h
        verdict = None
        if step == 0 and (~tail).sum() > 40 * A.width:
            verdict = _certify(A, wg, wh, tail, _interior(wh, tail, 20 * A.width), subset=True)
        if verdict is None:
            verdict = _certify(A, wg, wh, tail, ~tail, subset=False)
        if verdict is not None or step == NEWTON_STEPS:
            return verdict
        # a Newton step on all rows, halved until the log-likelihood rises
        weighted = A.rows(np.ones(len(wh), bool), np.sqrt(wh))
        direction, _ = _solve(weighted.T @ weighted + 1e-12 * np.eye(A.width), A.tdot(wg, np.ones(len(wg), bool)))
        base = w @ ll
        for _ in range(30):
            g_new, h_new, ll_new = _terms(A.dot(theta + direction) + shift, owner, len(y), kind)
            if w @ ll_new >= base:
                break
            direction = direction / 2
        else:
            return None
        theta, g, h, ll = theta + direction, g_new, h_new, ll_new
    return None


def check_separation(x: np.ndarray, y: np.ndarray, names: tuple[str, ...], n_classes: int, params: dict, *,
                     weights: np.ndarray | None = None, offset: np.ndarray | None = None,
                     link: str = "logit") -> str | None:
    """:func:`separation`'s message, or None, for rows ``x`` (positive weight only) and a ``Linear``
    model's estimate ``params`` (``beta1``, and ``beta0`` when it has an intercept): the linear program
    over all rows runs only when :func:`maximum_exists` gives no certificate (a fit at a maximum that
    exists costs one solve with a few times as many rows as coefficients)."""
    x = np.asarray(x, np.float64)
    with _one_blas_thread():
        return _check_separation(x, y, names, n_classes, params, weights, offset, link)


def _one_blas_thread():
    """BLAS on one thread while the check runs (threadpoolctl, where installed): right after a fit, XLA's
    threads still spin, and a second BLAS thread fighting them made a 0.1 s check take 2 s."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _check_separation(x, y, names, n_classes, params, weights, offset, link):
    intercept = "beta0" in params
    b1 = np.asarray(params["beta1"], np.float64)
    coef = np.concatenate([np.asarray(params["beta0"], np.float64)[None], b1]) if intercept else b1
    if maximum_exists(x, y, coef, n_classes, weights, offset if n_classes == 2 else None, link, intercept):
        return None
    keep = slice(None) if weights is None else np.asarray(weights) > 0
    return separation(x[keep], np.asarray(y)[keep], names, n_classes, intercept=intercept)


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
