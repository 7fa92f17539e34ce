"""Whether a streamed fit's maximum exists: separated classes (``Bernoulli``, ``Categorical``).

In memory, every fit is checked with ``identification.check_separation`` over its rows. A streamed
fit keeps no rows; it checks what a pass can sum:

- a class with no rows (its logit goes to minus infinity), from the first pass's class totals;
- the final pass counts the rows whose fitted logit is beyond ``identification.EXTREME_LOGIT``
  (18.4: a probability within 1e-8 of 0 or 1). With none, an unweighted logit has a certificate
  that the maximum exists when its Newton decrement ``g' H^-1 g`` (sums over the rows) is at most
  ``(1 - FACTOR)^2 * TINY``: then every row's correction ``|a_i' u| <= sqrt(decrement / h_i)`` stays
  below ``1 - FACTOR`` (``h_i = q_i (1 - q_i) >= TINY`` outside the tail), which is the in-memory
  certificate of ``identification.maximum_exists`` with no tail. A probit or multinomial fit with no
  such row is accepted when it converged;
- otherwise one more pass finds, per class and column, the range of the class's rows and of the
  others' (``identification.class_ranges``): a column whose ranges do not overlap separates the class
  perfectly, and the status says so, as in memory.

Separation by a combination of columns needs the linear program, so a streamed fit cannot name it:
then the status is left as it is, with a warning that says how many rows have extreme logits and
how to check (the in-memory fit of a sample of the rows runs the program).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..data import identification
from . import distributed
from .outcome import FitWarning, Status

__all__ = ["separation"]

_TAIL = "No optimizer can converge to an estimate that does not exist; the parameters returned are where the fit stopped."


def separation(fit, sums, status: Status) -> Status:
    """``status``, or a ``separation`` status naming a missing class or a separating column."""
    family = fit.family
    if family not in ("bernoulli", "categorical") or status.code in ("diverged", "interrupted"):
        return status
    k = 2 if family == "bernoulli" else fit.lik.n_classes
    if family == "categorical":
        missing = np.flatnonzero(np.asarray(fit.moments.classes) <= 0).tolist()
        if missing:
            return Status("separation", status.steps, f"{identification.missing_classes(missing)} {_TAIL}",
                          status.step)
    extreme = float(sums.get("extreme", 0.0))
    if not extreme > 0 and _certified(fit, sums, status):
        return status
    problem = identification.single_column(ranges(fit.feeder, k), fit.design.names, k)
    if problem is not None:
        return Status("separation", status.steps, f"{problem} {_TAIL}", status.step)
    if extreme > 0:
        warnings.warn(f"{extreme:.0f} rows (by weight) have fitted logits beyond +-{identification.EXTREME_LOGIT:.3g} "
                      f"(probabilities within 1e-8 of 0 or 1): the classes may be separated by a combination of "
                      f"columns, and then no maximum-likelihood estimate exists. A streamed fit cannot run the linear "
                      f"program that checks it; fit a sample of the rows in memory (sf.fit on arrays) to check.",
                      FitWarning, stacklevel=5)
    return status


def _certified(fit, sums, status: Status) -> bool:
    """No row in the tail: the decrement certificate for an unweighted logit, else a converged status."""
    logit = fit.family == "bernoulli" and getattr(fit.lik, "link", "logit") == "logit"
    if not logit or fit.source.weights is not None or "g" not in sums or "h" not in sums:
        return status.code == "converged"
    g, h = np.asarray(sums["g"], np.float64), np.asarray(sums["h"], np.float64)
    try:
        decrement = float(g @ np.linalg.solve(h, g))
    except np.linalg.LinAlgError:
        return False
    return 0 <= decrement <= (1 - identification.FACTOR) ** 2 * identification.TINY * (1 - identification.TINY)


def ranges(feeder, n_classes: int) -> np.ndarray:
    """``identification.class_ranges`` over a source's rows of positive weight (one pass, all processes)."""
    checked = n_classes if n_classes > 2 else 1
    out = None
    for x, y, w, _, rows in feeder:
        n = int(rows)
        x, y = np.asarray(x)[:n], np.asarray(y)[:n]
        if w is not None:
            keep = np.asarray(w)[:n] > 0
            x, y = x[keep], y[keep]
        if out is None:
            out = np.tile(np.array([np.inf, -np.inf, np.inf, -np.inf])[None, :, None], (checked, 1, x.shape[1]))
        labels = (y > 0).astype(int) if n_classes == 2 else y.astype(int)  # Bernoulli's rows are coded -1 / 1
        for c in range(checked):
            for part, rows_of in ((0, labels == c), (2, labels != c)):
                if rows_of.any():
                    out[c, part] = np.minimum(out[c, part], x[rows_of].min(0))
                    out[c, part + 1] = np.maximum(out[c, part + 1], x[rows_of].max(0))
    if distributed.process_count() > 1:
        every = distributed.allgather(out.ravel()).reshape((-1,) + out.shape)
        out = np.stack([every[:, :, 0].min(0), every[:, :, 1].max(0), every[:, :, 2].min(0), every[:, :, 3].max(0)],
                       axis=1)
    return out
