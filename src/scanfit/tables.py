"""Fit and predict on tables (CSV or Parquet): what ``scanfit fit`` and ``scanfit predict`` do.

Reading a table, coding its target and checking its feature columns are ``scanfit.data.table``'s
(:func:`read`, :func:`encode_target`, :func:`features`, :class:`Target`, importable from here too). Here:

- :func:`fit_table` splits off a validation share, fits, and returns the result with what the
  encoding was; :func:`streams` and :func:`streamed_likelihood` do the same choices for a fit that
  reads its Parquet files in chunks;
- :func:`write_outputs` saves the model, ``history.csv``, plots and ``report.html``;
  :func:`final_table` and :func:`rich_table` show the final statistics in the terminal;
- :func:`predict_table` appends predictions (and class probabilities) to a table, and
  :func:`write_predictions` writes it in one piece.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .data.table import (MAX_CLASSES, READERS, Target, check_finite, distinct as _distinct, encode_target, features,
                         read, role_columns)
from .show import csv_cells

__all__ = ["read", "encode_target", "features", "Target", "fit_table", "write_outputs", "predict_table",
           "final_table", "rich_table", "MAX_CLASSES"]


def _fit_formula(frame, formula, *, model, likelihood, link, valid_fraction, seed, roles, **fit_options):
    """``scanfit fit --formula``: the formula names the target and the features; text targets are coded."""
    import scanfit as sf
    from .data.formula import Formula

    lhs = formula.split("~", 1)[0].strip()
    target = encode_target(frame[lhs], likelihood) if lhs in frame.columns else \
        Target(lhs, likelihood or "gaussian", np.zeros(len(frame)), None, f"{likelihood or 'gaussian'} (formula)")
    data = frame.assign(**{lhs: target.codes}) if lhs in frame.columns else frame
    tr, va = _split(len(frame), valid_fraction, seed)
    n_valid = len(va)
    if n_valid:  # every row checked in the table's order first, so that an error names the user's row
        Formula.build(formula, data)
    train = data.iloc[tr].reset_index(drop=True)
    lik = _likelihood(sf, target, link)
    options = {k: v for k, v in roles.items() if k in ("weights", "exposure", "offset") and v is not None}
    valid = None
    if n_valid:
        vframe = data.iloc[va].reset_index(drop=True)
        spec = Formula.build(formula, train)
        vy, vX = spec.design(vframe)
        extra = {k: vframe[v].to_numpy() for k, v in options.items()}
        valid = (pd.DataFrame(vX, columns=list(spec.names)), vy, extra) if extra else (
            pd.DataFrame(vX, columns=list(spec.names)), vy)
    result = sf.fit(model, lik, formula=formula, data=train, valid=valid, seed=seed, **options, **fit_options)
    x = pd.DataFrame(result.design.formula.features(train), columns=list(result.feature_names))
    return result, target, x, np.asarray(train[lhs]) if lhs in train.columns else result.train[1]


def _likelihood(sf, target, link):
    if target.likelihood == "categorical":
        return sf.Categorical(n_classes=len(target.classes))
    if target.likelihood == "bernoulli":
        return sf.Bernoulli(link=link or "logit")
    if link not in (None, "logit"):
        raise ValueError(f"The '--link' option ({link}) applies to a two-class (bernoulli) target; this one is "
                         f"{target.likelihood}.")
    return {"gaussian": sf.Gaussian, "poisson": sf.Poisson, "negativebinomial": sf.NegativeBinomial}[target.likelihood]()


def fit_table(frame: pd.DataFrame, *, target: str | None, features_: list[str] | None = None, model: Any,
              likelihood: str | None = None, valid_fraction: float = 0.2, seed: int = 0, cluster: str | None = None,
              formula: str | None = None, link: str | None = None, weights: str | None = None,
              exposure: str | None = None, offset: str | None = None, **fit_options):
    """Split ``frame`` (rows shuffled with ``seed``), fit, and return ``(result, Target, x_train, y_train)``.
    ``cluster`` names a group column for clustered standard errors: not a feature unless ``features_``
    names it; the result keeps the training rows' groups in ``result.data``. ``weights``,
    ``exposure`` and ``offset`` name columns (never features); ``formula`` replaces ``target`` and
    ``features_`` (and is the way to use text feature columns)."""
    import scanfit as sf

    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"The 'valid_fraction' parameter must be in [0, 1). Got {valid_fraction!r}; try 0.2.")
    if cluster is not None and (cluster not in frame.columns or cluster == target):
        raise ValueError(f"The '--cluster' option names the column {cluster!r}, which "
                         + ("is the target" if cluster == target else f"the table lacks; its columns are "
                            f"{list(map(str, frame.columns))}") + ". Give the column that holds each row's group.")
    roles = {"weights": weights, "exposure": exposure, "offset": offset}
    named = role_columns(frame, roles)
    if formula is not None:
        if target is not None or features_:
            raise ValueError("Give '--formula' or '--target' (with '--features'), not both: the formula names the "
                             "target and the features, e.g. --formula 'y ~ x1 + C(region)'.")
        out = _fit_formula(frame, formula, model=model, likelihood=likelihood, link=link,
                           valid_fraction=valid_fraction, seed=seed, roles=roles, **fit_options)
        if cluster is not None:
            out[0].data = frame[[cluster]].iloc[_split(len(frame), valid_fraction, seed)[0]].reset_index(drop=True)
        return out
    if target is None:
        raise ValueError("Give the column to predict with '--target COLUMN', or a '--formula'.")
    grouped = cluster is not None and not (features_ and cluster in features_)
    dropped = ([cluster] if grouped else []) + [c for c in named if not (features_ and c in features_)]
    x = features(frame.drop(columns=dropped) if dropped else frame, target, features_)
    y = encode_target(frame[target], likelihood)
    check_finite(x)  # before the rows are shuffled: the row named is the table's
    tr, va = _split(len(frame), valid_fraction, seed)
    n_valid = len(va)
    if valid_fraction > 0 and (n_valid < 1 or n_valid >= len(frame)):
        raise ValueError(f"The table has {len(frame)} rows, too few to hold out valid_fraction={valid_fraction}; "
                         f"use --valid-fraction 0 or more rows.")
    lik = _likelihood(sf, y, link)
    xt, yt = x.iloc[tr].reset_index(drop=True), y.codes[tr]
    options = {k: frame[v].to_numpy()[tr] for k, v in roles.items() if v is not None}
    vextra = {k: frame[v].to_numpy()[va] for k, v in roles.items() if v is not None}
    valid = ((x.iloc[va].reset_index(drop=True), y.codes[va]) + ((vextra,) if vextra else ())) if n_valid else None
    result = sf.fit(model, lik, xt, yt, valid=valid, seed=seed, **options, **fit_options)
    if cluster is not None:
        result.data = frame[[cluster]].iloc[tr].reset_index(drop=True)  # summary(groups=cluster) reads it
    return result, y, xt, yt


def _split(n: int, valid_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The training and validation rows: a share ``valid_fraction`` of the rows, shuffled with ``seed``, held
    out; with none held out, every row in the table's order (so that a row named in a message is the table's)."""
    n_valid = int(round(valid_fraction * n))
    if not n_valid:
        return np.arange(n), np.arange(0)
    order = np.random.default_rng(seed).permutation(n)
    return order[n_valid:], order[:n_valid]


def final_table(final: dict) -> pd.DataFrame:
    """``result.final`` as rows (statistic) by columns (train, valid)."""
    rows: dict[str, dict] = {}
    for key, value in final.items():
        split, _, stat = key.partition("_")
        if split in ("train", "valid"):
            rows.setdefault(stat, {"statistic": stat})[split] = value
    return pd.DataFrame(list(rows.values()))


def write_outputs(result, out: str | Path, *, target: Target, x, y, table: str = "",
                  summary: str | None = None, painter=None) -> list[Path]:
    """Save the model (``out/model``), ``history.csv``, the plots and ``report.html``; return the paths.
    ``summary`` is the summary table's text when already computed; ``painter`` a started
    :class:`show.painter.Painter` that draws the plots in a helper process meanwhile."""
    from .show import report
    from .show.painter import Painter

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    painter = painter if painter is not None else Painter()
    painter.submit(result)  # when not yet: the helper draws while the model and history are written
    extra = {"target": target.name, "classes": target.classes, "likelihood_reason": target.reason, "table": table}
    summary = summary if summary is not None else report.summary_or_reason(result)
    model_dir = result.save(out / "model", extra=extra, summary=summary)
    csv_cells.to_csv(result.history, out / "history.csv")
    xs = np.asarray(x, dtype=float)
    images = painter.save_all(result, out, x=xs, y=np.asarray(y), classes=target.classes)
    section = report.result_section("Fit", result, images, text=[
        f"Table: {table or '(in memory)'}; target {target.name!r}; features {list(result.feature_names)}.",
        f"Likelihood: {target.reason}."], summary=summary)
    if target.classes is not None:
        section.tables.insert(0, ("Classes", pd.DataFrame({"code": range(len(target.classes)),
                                                           "class": [str(c) for c in target.classes]})))
    section.tables.insert(1, ("Final statistics (train and valid)", final_table(result.final)))
    rep = report.write(out / "report.html", f"scanfit fit: {target.name}", [section])
    return [model_dir, out / "history.csv", *[p for _, p in images], rep]


def predict_table(result, frame: pd.DataFrame, classes: list | None, skip_missing: bool = False) -> pd.DataFrame:
    """``frame`` with prediction columns appended: ``predicted`` (the mean, or the most likely class)
    and, for classifiers, ``prob_<class>`` for each class (Bernoulli: the probability of class 1).
    Rows with a missing or infinite feature value are refused, naming them; with ``skip_missing``
    their predictions are left empty and a ``skipped`` column says why."""
    names = list(result.feature_names)
    if getattr(result.design, "formula", None) is not None:
        x, finite, names = _formula_features(result.design.formula, frame)
    else:
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise ValueError(f"The table lacks the feature columns {missing} that the model was fitted on; "
                             f"it has {list(map(str, frame.columns))}.")
        x = features(frame.assign(__target__=0), "__target__", names).to_numpy(dtype=float, na_value=np.nan)
        finite = np.isfinite(x)
    bad = ~finite.all(axis=1)
    out = {}  # the prediction columns, appended below (never over an input column)
    if bad.any() or skip_missing:
        out["skipped"] = _skipped(finite, bad, names, skip_missing)
    p_kept = result.predict(x[~bad])
    p = np.full((len(x), *p_kept.shape[1:]), np.nan)
    p[~bad] = p_kept
    kind = result.likelihood.name
    if kind in ("gaussian", "poisson", "negativebinomial"):  # the mean (counts: per unit of exposure)
        out = {"predicted": p, **out}
        return _append(frame, out)
    labels = classes if classes is not None else list(range(2 if p.ndim == 1 else p.shape[1]))
    if p.ndim == 1:
        probs = {f"prob_{labels[1]}": p}
        predicted = np.where(p >= 0.5, labels[1], labels[0])
    else:
        probs = {f"prob_{label}": p[:, k] for k, label in enumerate(labels)}
        predicted = np.asarray(labels, dtype=object)[np.argmax(np.nan_to_num(p, nan=0.0), axis=1)]
    if bad.any():
        predicted = predicted.astype(object)
        predicted[bad] = None
    return _append(frame, {**probs, "predicted": predicted, **out})


def _formula_features(formula, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list]:
    """A formula model's features of ``frame`` (its transformations and levels, re-applied), computed for the rows
    whose input columns are all there (the others: NaN); which input values are there (not missing, and finite
    where numeric); the input columns' names. The rows are named or skipped as for other models, instead of the
    formula refusing the table at its first missing value."""
    cols = formula.inputs()
    if any(int((frame.columns == c).sum()) != 1 for c in cols):
        formula.features(frame)  # says which columns are absent or repeated
    there = np.column_stack([frame[c].notna().to_numpy() & (np.isfinite(frame[c].to_numpy(float, na_value=np.nan))
                                                            if pd.api.types.is_numeric_dtype(frame[c]) else True)
                             for c in cols]) if cols else np.ones((len(frame), 0), bool)
    ok = there.all(axis=1)
    x = np.full((len(frame), len(formula.names)), np.nan)
    if ok.any():
        x[ok] = formula.features(frame[ok])
    return x, there, cols


def _skipped(finite: np.ndarray, bad: np.ndarray, names: list, skip: bool) -> np.ndarray:
    """The ``skipped`` column (why each row has no prediction); refused with the first rows named unless ``skip``."""
    rows = np.flatnonzero(bad)
    if not skip:
        first = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
        lines = ", ".join(str(r + 2) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
        raise ValueError(f"{len(rows)} row(s) of the table have a missing or infinite feature value: rows {first} "
                         f"(lines {lines} of a CSV with a header). Drop or impute them, or pass --skip-missing to "
                         f"predict the other rows (the skipped ones get an empty prediction and a 'skipped' note).")
    if len(rows) == len(bad):
        raise ValueError(f"All {len(rows)} rows of the table have a missing or infinite feature value; there is "
                         f"nothing to predict. Impute them first.")
    why = np.full(len(bad), "", dtype=object)
    for r in rows:
        why[r] = "missing or infinite value in " + ", ".join(str(names[j]) for j in np.flatnonzero(~finite[r]))
    return why


def _append(frame: pd.DataFrame, columns: dict) -> pd.DataFrame:
    """``frame`` with ``columns`` appended; refused when the table already has one of those names."""
    taken = set(map(str, frame.columns))
    clash = [c for c in columns if c in taken]
    if clash:
        raise ValueError(f"The table already has the columns {clash}, which predict writes ({list(columns)}); "
                         f"rename or drop them in the table first, so that no input column is overwritten.")
    out = frame.copy()
    for name, values in columns.items():
        out[name] = values
    return out


def streams(table: Path, batch_rows, distributed: bool) -> bool:
    """Whether ``scanfit fit`` streams ``table`` through ``sf.Parquet``: a directory of Parquet files, a
    glob, or a Parquet file with ``--batch-rows`` or ``--distributed`` (a CSV never streams)."""
    if table.is_dir():
        return next(table.rglob("*.parquet"), None) is not None  # else: "a directory; give a file"
    if not table.exists() and any(c in str(table) for c in "*?["):
        return True
    return READERS.get(table.suffix.lower()) == "parquet" and (batch_rows is not None or distributed)


def streamed_likelihood(sf, source, likelihood, link):
    """The likelihood (and the classes to save) for a streamed fit: as asked, or chosen from the
    target column of the first file, which must already hold codes (0/1, or 0..K-1)."""
    import pyarrow.parquet as pq

    name = source.target
    if likelihood is None:
        column = _distinct(pq, source.files[0], name)
        try:
            chosen = encode_target(column, None)
        except ValueError as err:
            raise ValueError(f"{err} (read from the first file, {source.files[0]!r}); name the likelihood with "
                             f"--likelihood.") from None
        if len(column) > MAX_CLASSES:
            chosen = Target(name, chosen.likelihood, column.to_numpy(), None, f"target {name!r} has more than "
                            f"{MAX_CLASSES} distinct numeric values: {chosen.likelihood}")
        likelihood = chosen.likelihood
        coded = chosen.classes is None or all(float(c) == k for k, c in enumerate(chosen.classes))
        if not coded and likelihood in ("bernoulli", "categorical"):
            raise ValueError(f"A streamed fit reads the target {name!r} as codes, 0/1 for two classes or 0..K-1; the "
                             f"first file holds {chosen.classes[:6]}. Code the classes in the files, or give "
                             f"--likelihood gaussian.")
        reason = f"{chosen.reason.split(', coding')[0]} (from the first file)"
        classes = chosen.classes if likelihood == "bernoulli" else None
    else:
        reason, classes = f"{likelihood} (as asked)", [0, 1] if likelihood == "bernoulli" else None
    if link not in (None, "logit") and likelihood != "bernoulli":
        raise ValueError(f"The '--link' option ({link}) applies to a two-class (bernoulli) target; this one is "
                         f"{likelihood}.")
    lik = {"gaussian": sf.Gaussian, "poisson": sf.Poisson, "negativebinomial": sf.NegativeBinomial,
           "categorical": sf.Categorical}.get(likelihood)
    return (lik() if lik else sf.Bernoulli(link=link or "logit")), classes, reason


def rich_table(frame: pd.DataFrame, title: str = ""):
    """``frame`` as a rich Table for the terminal (numbers to 4 significant digits, right-aligned)."""
    from rich.table import Table
    from rich.text import Text

    from .show.terminal import printable

    table = Table(title=Text(printable(title)) if title else None, title_justify="left", box=None, padding=(0, 1),
                  header_style="bold")
    for col in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[col])
        table.add_column(Text(printable(col)), justify="right" if numeric else "left", overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(*(Text(printable(_fmt(v))) for v in row))
    return table


def _fmt(v) -> str:
    if isinstance(v, float):
        return "" if v != v else f"{v:.4g}"
    return str(v)


def check_output_file(out: Path) -> None:
    """``predict --out``: a file path with a table's suffix, in a folder that exists."""
    if out.is_dir():
        raise ValueError(f"The '--out' option names the directory {str(out)!r}; give a file path such as "
                         f"{str(out / 'predictions.csv')!r}.")
    if out.suffix.lower() not in READERS:
        raise ValueError(f"The '--out' option must end in one of {sorted(READERS)} (the table's format). "
                         f"Got {str(out)!r} instead; for example {str(out.with_suffix('.csv'))!r}.")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"The folder {str(out.parent)!r} of '--out' does not exist; create it first "
                                f"(mkdir -p {str(out.parent)!r}) or choose another path.")


def write_predictions(pred: pd.DataFrame, out: Path) -> None:
    """``predict --out``: the table written next to ``out`` and renamed into place (a crash or a full disk never
    leaves half a file where ``out`` was); Parquet for ``.parquet``/``.pq``, else CSV (tab-separated ``.tsv``)."""
    import os
    import secrets

    tmp = out.parent / f".{out.name}.{secrets.token_hex(6)}.tmp"  # created new ("x"), with the usual permissions
    try:
        with open(tmp, "xb") as f:
            if out.suffix.lower() in (".parquet", ".pq"):
                pred.to_parquet(f, index=False)
            else:
                f.write(csv_cells.to_csv(pred, sep="\t" if out.suffix.lower() == ".tsv" else ",").encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
