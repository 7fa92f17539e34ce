"""Pictures of a fit (matplotlib). Each function returns a ``matplotlib.figure.Figure``.

Figures are built without ``pyplot`` (no global state, no GUI backend needed); save one with
``fig.savefig("file.png")``, or display it in a notebook.

- :func:`history`: one panel per statistic, train and valid on the same axes;
- :func:`coefficients`: the coefficient paths of a linear model;
- :func:`decision_regions`: the predicted class of a 2-feature classifier on a dense grid, data on top;
- :func:`hidden_units`: for a one-hidden-layer network on 2 features, where each unit is active,
  signed by its output weight (the notebook's last picture);
- :func:`restarts`: a final statistic per start;
- :func:`save_all`: every picture that applies to a result, as PNG files.

>>> import scanfit as sf
>>> d = sf.datasets.hill(n_train=500, seed=0)
>>> r = sf.fit(sf.MLP(hidden=2), sf.Bernoulli(), d.train.x, d.train.y, steps=20)
>>> sf.plots.history(r).axes[0].get_title()
'objective (mean log-likelihood)'
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Collection

import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

__all__ = ["history", "coefficients", "decision_regions", "hidden_units", "restarts", "save_all", "pictures",
           "picture_path"]

LABELS = {"objective": "objective (mean log-likelihood)", "accuracy": "accuracy", "mse": "mean squared error",
          "false_pos": "false positives (share)", "false_neg": "false negatives (share)",
          "predavg": "share predicted 1"}
CLASS_COLORS = ["#1f5fbf", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
TRAIN, VALID = "#1f77b4", "#ff7f0e"


def _figure(n_panels: int, ncols: int, panel=(4.0, 2.8), fixed: bool = False) -> tuple[Figure, list]:
    """A grid of panels; ``fixed``: margins set in inches (room for tick labels, a title and an x label per
    panel, the figure's title and legend on top) instead of matplotlib's constrained layout, which
    measures every text and took 40% of the learning path's drawing time (0.15 s a picture)."""
    ncols = max(1, min(ncols, n_panels))
    nrows = math.ceil(n_panels / ncols)
    width, height = panel[0] * ncols, panel[1] * nrows + 0.5
    fig = Figure(figsize=(width, height), layout=None if fixed else "constrained")
    if fixed:
        fig.subplots_adjust(left=0.75 / width, right=1 - 0.2 / width, bottom=0.5 / height, top=1 - 0.75 / height,
                            wspace=0.3, hspace=0.55)
        grid = fig.add_gridspec(nrows, ncols)  # only the panels drawn: each axes costs its ticks
        return fig, [fig.add_subplot(grid[i // ncols, i % ncols]) for i in range(n_panels)]
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _history_of(result: Any) -> pd.DataFrame:
    frame = result if isinstance(result, pd.DataFrame) else result.history
    if "step" not in frame.columns or frame.empty:
        raise ValueError("The 'result' parameter must be a FitResult or a history DataFrame with a 'step' column "
                         "and at least one row.")
    return frame


def history(result: Any, *, stats: list[str] | None = None, ncols: int = 3, title: str | None = None) -> Figure:
    """One panel per statistic (objective, accuracy, ...), train and valid on the same axes.

    ``result`` is a FitResult or its ``history`` DataFrame; ``stats`` picks statistics by
    name (``["objective", "accuracy"]``); by default every train_/valid_ statistic is shown.
    """
    frame = _history_of(result)
    found = []
    for col in frame.columns:
        if col.startswith(("train_", "valid_")) and col.split("_", 1)[1] not in found:
            found.append(col.split("_", 1)[1])
    if stats is not None:
        unknown = [s for s in stats if s not in found]
        if unknown:
            raise ValueError(f"The 'stats' parameter names {unknown}, which are not in the history; it has {found}.")
        found = list(stats)
    if not found:
        raise ValueError("The history has no train_* or valid_* columns to plot.")
    fig, axes = _figure(len(found), ncols, fixed=True)
    for ax, stat in zip(axes, found):
        for split, color, style in (("train", TRAIN, "-"), ("valid", VALID, "--")):
            col = f"{split}_{stat}"
            if col in frame.columns:  # rows without the statistic (a minibatch fit's between epochs) are skipped
                part = frame[["step", col]].dropna()
                ax.plot(part["step"], part[col], color=color, linestyle=style, label=split, linewidth=1.6,
                        marker="o" if len(part) < 30 < len(frame) else None, markersize=3)
        ax.set_title(LABELS.get(stat, stat), fontsize=10, y=1.0, pad=6)  # placed, not measured (no ticks on top)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if stat in ("accuracy", "false_pos", "false_neg", "predavg"):
            ax.set_ylim(-0.02, 1.02)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", ncols=2, frameon=False)
    fig.suptitle(title or "Learning path", fontsize=12, x=0.02, ha="left")
    return fig


def coefficients(result: Any, *, truth: dict | None = None, title: str | None = None) -> Figure:
    """Coefficient paths of a linear model: ``beta0`` and each slope (or the slopes' mean and
    standard deviation when there are more than ten features), with ``truth`` as dotted lines.

    ``truth`` maps ``"beta0"`` to a number and ``"beta1"`` to an array, as in ``sf.datasets.*().truth``.
    """
    model = getattr(result, "model", None)
    if model is not None and getattr(model, "name", None) != "linear":
        raise ValueError(f"Coefficient paths need a Linear model; this result's model is {model.name!r}. "
                         f"Use plots.history for other models.")
    frame = _history_of(result)
    names = [c for c in frame.columns if c.startswith("beta1_") and c not in ("beta1_mean", "beta1_std")]
    series = (["beta0"] if "beta0" in frame.columns else []) + (names or ["beta1_mean"])
    series = [s for s in series if s in frame.columns]
    if not series:
        raise ValueError("The history has no coefficient columns (beta0, beta1_*); fit an sf.Linear() model.")
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    colors = [CLASS_COLORS[i % len(CLASS_COLORS)] for i in range(len(series))]
    for s, color in zip(series, colors):
        label = s.replace("beta1_", "slope: ") if s != "beta1_mean" else "slopes: mean"
        ax.plot(frame["step"], frame[s], color=color, label="intercept" if s == "beta0" else label, linewidth=1.8)
    if not names and "beta1_std" in frame.columns:
        mean, sd = frame["beta1_mean"], frame["beta1_std"]
        ax.fill_between(frame["step"], mean - sd, mean + sd, color=colors[-1], alpha=0.2, label="slopes: mean ± sd")
    if truth:
        if "beta0" in truth and "beta0" in series:
            ax.axhline(float(truth["beta0"]), color=colors[0], linestyle=":", linewidth=1.2)
        b1 = np.atleast_1d(np.asarray(truth.get("beta1", []), dtype=float))
        if names and len(b1) == len(names):
            for value, color in zip(b1, colors[len(series) - len(names):]):
                ax.axhline(value, color=color, linestyle=":", linewidth=1.2)
        elif len(b1):
            ax.axhline(b1.mean(), color=colors[-1], linestyle=":", linewidth=1.2)
        ax.plot([], [], color="gray", linestyle=":", label="true value")
    ax.set_xlabel("step")
    ax.set_ylabel("coefficient")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    ax.set_title(title or "Coefficient paths")
    return fig


def _xy(result: Any, x, y):
    if x is None:
        if getattr(result, "train", None) is None:
            raise ValueError("The 'x' parameter is needed: this result holds no training data (it was loaded).")
        x, y = result.train
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"Decision regions need exactly 2 features; 'x' has shape {x.shape}. "
                         f"Plot a 2-feature model, or use plots.history.")
    return x, (None if y is None else np.asarray(y))


def _grid(x: np.ndarray, resolution: int):
    lo, hi = x.min(axis=0), x.max(axis=0)
    pad = 0.03 * (hi - lo + 1e-12)
    a = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution)
    b = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution)
    ga, gb = np.meshgrid(a, b)
    return ga, gb, np.column_stack([ga.ravel(), gb.ravel()])


def _classes(result: Any, x: np.ndarray) -> tuple[np.ndarray, int]:
    name = result.likelihood.name
    if name == "gaussian":
        raise ValueError("Decision regions need a classifier (Bernoulli or Categorical likelihood); this is Gaussian.")
    p = result.predict(x)
    return ((p >= 0.5).astype(int), 2) if p.ndim == 1 else (np.argmax(p, axis=1), p.shape[1])


def _scatter(ax, x, y, k, max_points, names, seed=0):
    if y is None:
        return []
    keep = np.random.default_rng(seed).permutation(len(x))[:max_points]
    codes = y[keep].astype(int)
    handles = []
    for c in range(k):
        sel = codes == c
        ax.scatter(x[keep][sel, 0], x[keep][sel, 1], s=6, color=CLASS_COLORS[c % 8], edgecolors="white",
                   linewidths=0.2, alpha=0.8)
        handles.append(Line2D([], [], marker="o", linestyle="", color=CLASS_COLORS[c % 8], label=f"observed {names[c]}"))
    return handles


def decision_regions(result: Any, x=None, y=None, *, resolution: int = 200, max_points: int = 1500,
                     feature_names: tuple[str, str] | None = None, classes: list | None = None,
                     title: str | None = None) -> Figure:
    """Predicted class of any 2-feature classifier on a ``resolution`` x ``resolution`` grid, with
    up to ``max_points`` observations on top. ``x`` of shape ``(n, 2)`` and labels ``y`` of shape
    ``(n,)`` (coded 0..K-1) default to the training data the result holds; ``classes`` names the
    codes in the legend."""
    x, y = _xy(result, x, y)
    ga, gb, grid = _grid(x, resolution)
    pred, k = _classes(result, grid)
    fig = Figure(figsize=(6.2, 5.2), layout="constrained")
    ax = fig.subplots()
    cmap = ListedColormap([CLASS_COLORS[c % 8] for c in range(k)])
    ax.contourf(ga, gb, pred.reshape(ga.shape), levels=np.arange(k + 1) - 0.5, cmap=cmap, alpha=0.25)
    ax.contour(ga, gb, pred.reshape(ga.shape), levels=np.arange(k) + 0.5, colors="black", linewidths=1.0)
    labels = [str(c) for c in classes] if classes is not None and len(classes) == k else [str(c) for c in range(k)]
    handles = [Patch(color=CLASS_COLORS[c % 8], alpha=0.35, label=f"predicted {labels[c]}") for c in range(k)]
    handles += _scatter(ax, x, y, k, max_points, labels)
    names = feature_names or tuple(getattr(result, "feature_names", ("x0", "x1")))
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    acc = getattr(result, "final", {}).get("valid_accuracy", getattr(result, "final", {}).get("train_accuracy"))
    ax.set_title(title or ("Decision regions" + (f" (accuracy {acc:.3f})" if acc is not None else "")))
    return fig


def _hidden_weights(result: Any):
    model, p = result.model, result.params
    if getattr(model, "name", None) != "mlp" or len(model.hidden) != 1:
        raise ValueError("Hidden units need an sf.MLP with one hidden layer, or pass weights=(W0, b0, w_out).")
    w_out = np.asarray(p["W1"])
    return np.asarray(p["W0"]), np.asarray(p["b0"]), w_out


def hidden_units(result: Any, x=None, y=None, *, weights: tuple | None = None, resolution: int = 200,
                 ncols: int = 4, title: str | None = None) -> Figure:
    """For each hidden unit of a one-hidden-layer network on 2 features, the half-plane where it
    is active (pre-activation >= 0), coloured by the sign of its output weight: red where the unit
    pushes the prediction towards class 1, blue towards class 0 (the notebook's last picture).

    ``weights`` = ``(W0 (2, h), b0 (h,), w_out)`` for other networks (e.g. a flax module);
    ``w_out`` is ``(h,)`` for one logit or ``(h, 2)`` for two (then ``w[:, 1] - w[:, 0]`` is used).
    """
    W0, b0, w_out = _hidden_weights(result) if weights is None else (np.asarray(w) for w in weights)
    if w_out.ndim == 2:
        if w_out.shape[1] != 2:
            raise ValueError(f"Hidden units need one output logit or two; got output weights of shape {w_out.shape}.")
        w_out = w_out[:, 1] - w_out[:, 0]
    if W0.shape[0] != 2:
        raise ValueError(f"Hidden units are drawn for 2 features; the first layer has {W0.shape[0]} inputs.")
    x, _ = _xy(result, x, y)
    ga, gb, grid = _grid(x, resolution)
    h = W0.shape[1]
    fig, axes = _figure(h, ncols, panel=(3.6, 3.4))
    cmap = ListedColormap([CLASS_COLORS[0], CLASS_COLORS[1]])
    for j, ax in enumerate(axes):
        active = grid @ W0[:, j] + b0[j] >= 0
        towards_one = active ^ (w_out[j] < 0)
        ax.pcolormesh(ga, gb, towards_one.reshape(ga.shape).astype(int), cmap=cmap, vmin=0, vmax=1, alpha=0.45,
                      shading="auto", rasterized=True)
        ax.contour(ga, gb, (grid @ W0[:, j] + b0[j]).reshape(ga.shape), levels=[0.0], colors="black", linewidths=1)
        outside = active.all() or not active.any()
        ax.set_title(f"unit {j}: output weight {w_out[j]:+.2f}" + ("\n(boundary outside the data)" if outside else ""),
                     fontsize=10)
        ax.set_xlabel(getattr(result, "feature_names", ("x0", "x1"))[0])
        ax.set_ylabel(getattr(result, "feature_names", ("x0", "x1"))[1])
        if 2 / 3 < np.ptp(gb) / max(np.ptp(ga), 1e-12) < 1.5:  # equal scales only for comparable features
            ax.set_aspect("equal", adjustable="box")
    handles = [Patch(color=CLASS_COLORS[1], alpha=0.6, label="pushes towards class 1"),
               Patch(color=CLASS_COLORS[0], alpha=0.6, label="pushes towards class 0")]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False)
    fig.suptitle(title or "Hidden units: each unit's half-plane, coloured by the class it favours", fontsize=11)
    return fig


def restarts(result: Any, *, stat: str | None = None, title: str | None = None) -> Figure:
    """A bar per start: its final ``stat`` (default valid accuracy, else valid objective, else the
    train statistic); the kept start is highlighted and diverged starts are hatched."""
    table = result.restarts
    if len(table) < 2:
        raise ValueError("The restarts plot needs several starts; fit with restarts=8 (for example).")
    options = [stat] if stat else ["valid_accuracy", "valid_objective", "train_accuracy", "train_objective", "train_mse"]
    col = next((c for c in options if c in table.columns), None)
    if col is None:
        raise ValueError(f"The 'stat' parameter {stat!r} is not a column of result.restarts; it has {list(table.columns)}.")
    fig = Figure(figsize=(max(5.0, 0.45 * len(table) + 2.5), 3.8), layout="constrained")
    ax = fig.subplots()
    values = table[col].to_numpy(dtype=float)
    shown = np.where(np.isfinite(values), values, 0.0)
    colors = ["#d62728" if c else "#9ecae1" for c in table["chosen"]]
    bars = ax.bar(table["start"], shown, color=colors, edgecolor="black", linewidth=0.5)
    for bar, status in zip(bars, table["status"]):
        if status == "diverged":
            bar.set_hatch("//")
    ax.set_xticks(table["start"])
    ax.set_xlabel("start")
    ax.set_ylabel(col.replace("_", " "))
    if col.endswith("accuracy"):
        ax.set_ylim(min(0.4, float(np.nanmin(values)) - 0.05), 1.0)
    ax.grid(axis="y", alpha=0.3)
    handles = [Patch(color="#d62728", label="kept"), Patch(color="#9ecae1", label="other starts")]
    if (table["status"] == "diverged").any():
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", label="diverged"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    ax.set_title(title or f"Restarts: final {col.replace('_', ' ')} by start")
    return fig


def pictures(result: Any, *, x=None, y=None, truth: dict | None = None, hidden_weights: tuple | None = None,
             classes: list | None = None) -> list[tuple[str, Callable[[], Figure]]]:
    """The pictures that apply to ``result``, in :func:`save_all`'s order: (caption, function that draws it)."""
    made: list[tuple[str, Callable[[], Figure]]] = [("Learning path", lambda: history(result))]
    if getattr(result.model, "name", None) == "linear":
        made.append(("Coefficient paths", lambda: coefficients(result, truth=truth)))
    xs = x if x is not None else (result.train[0] if getattr(result, "train", None) is not None else None)
    ys = y if x is not None else (result.train[1] if getattr(result, "train", None) is not None else None)
    two = xs is not None and np.ndim(xs) == 2 and np.shape(xs)[1] == 2
    if two and result.likelihood.name != "gaussian":
        made.append(("Decision regions", lambda: decision_regions(result, xs, ys, classes=classes)))
    mlp1 = getattr(result.model, "name", None) == "mlp" and len(result.model.hidden) == 1
    if two and (mlp1 or hidden_weights is not None):
        made.append(("Hidden units", lambda: hidden_units(result, xs, weights=hidden_weights)))
    if len(result.start_finals) > 1:
        made.append(("Restarts", lambda: restarts(result)))
    return made


def picture_path(out: str | Path, caption: str, prefix: str = "") -> Path:
    """Where :func:`save_all` writes the picture ``caption``."""
    return Path(out) / f"{prefix}{caption.lower().replace(' ', '_')}.png"


def save_all(result: Any, out: str | Path, *, x=None, y=None, truth: dict | None = None, prefix: str = "",
             hidden_weights: tuple | None = None, classes: list | None = None,
             dpi: int = 110, only: Collection[str] | None = None) -> list[tuple[str, Path]]:
    """Write every picture that applies to ``result`` into ``out`` as PNG; return (caption, path) pairs.
    ``only`` names the captions to draw (``"Learning path"``, ...), of those that apply; None: all."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for caption, make in pictures(result, x=x, y=y, truth=truth, hidden_weights=hidden_weights, classes=classes):
        if only is not None and caption not in only:
            continue
        path = picture_path(out, caption, prefix)
        make().savefig(path, dpi=dpi)
        written.append((caption, path))
    return written
