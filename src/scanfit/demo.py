"""The notebook's six experiments, as data: what ``scanfit demo`` runs.

(a) linear regression; (b) the logit on a 100-dimensional hyperplane; (c) the logit on radial
data (where it must fail); (d) the hill network with plain gradient steps; (e) the same with
rmsprop; (f) the notebook's flax network ported to NNX (two sigmoid units, two logits,
Categorical). The networks run several starts at once (8 for plain gradient steps, of which
about one in five gets stuck; 4 for rmsprop) and keep the best by validation objective, so
the demo succeeds reliably (the notebook says: "run it a couple of times").

>>> from scanfit import demo
>>> [e.key for e in demo.experiments()]
['a', 'b', 'c', 'd', 'e', 'f']
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

__all__ = ["Experiment", "Outcome", "experiments", "run", "table", "write_outputs", "neural_module"]


@dataclass(frozen=True)
class Experiment:
    """One fit of the notebook: a name, how to build data, model and likelihood, and fit options."""

    key: str
    slug: str  # file names
    short: str  # the table's label
    title: str
    data: Callable[[int, bool], Any]
    model: Callable[[], Any]
    likelihood: Callable[[], Any]
    optimizer: str
    learning_rate: float
    steps: int
    restarts: int = 1
    needs: str | None = None  # an optional package (flax)

    def options(self, quick: bool) -> dict:
        """Fit options; ``quick`` keeps the steps (so the answers stay right) but runs at most 2 starts.
        The notebook's settings are explicit: raw columns (``standardize=False``) and float32."""
        return {"optimizer": self.optimizer, "learning_rate": self.learning_rate, "steps": self.steps,
                "restarts": min(self.restarts, 2) if quick else self.restarts,
                "standardize": False, "dtype": "float32"}  # the notebook's raw columns and precision


@dataclass
class Outcome:
    """What one experiment produced (``result`` is None when it was skipped)."""

    experiment: Experiment
    result: Any = None
    dataset: Any = None
    seconds: float = 0.0
    skipped: str = ""
    images: list = field(default_factory=list)


def neural_module(hid: int = 2):
    """The notebook's flax network in NNX: ``hid`` sigmoid units, then 2 logits (for Categorical)."""
    from flax import nnx

    class Neural(nnx.Module):
        def __init__(self, hid: int, rngs: nnx.Rngs):
            self.hidden = nnx.Linear(2, hid, rngs=rngs)
            self.output = nnx.Linear(hid, 2, rngs=rngs)

        def __call__(self, x):
            return self.output(nnx.sigmoid(self.hidden(x)))

    import scanfit as sf

    return sf.Module(lambda rngs: Neural(hid, rngs))


def _sizes(quick: bool, n_train: int, n_valid: int) -> dict:
    return {"n_train": 1000, "n_valid": 300} if quick else {"n_train": n_train, "n_valid": n_valid}


def experiments() -> list[Experiment]:
    """The six experiments with the notebook's settings."""
    import scanfit as sf

    ds = sf.datasets
    hill = lambda seed, quick: ds.hill(**_sizes(quick, 10_000, 1_000), seed=seed)  # noqa: E731
    return [
        Experiment("a", "linear", "linear", "linear regression", lambda s, q: ds.linear(**_sizes(q, 10_000, 1_000), seed=s),
                   sf.Linear, sf.Gaussian, "gd", 0.01, 500),
        Experiment("b", "hyperplane", "hyperplane", "hyperplane logit", lambda s, q: ds.hyperplane(**_sizes(q, 10_000, 10_000), seed=s),
                   sf.Linear, sf.Bernoulli, "gd", 2.0, 5000),
        Experiment("c", "radial", "radial", "radial logit", lambda s, q: ds.radial(**_sizes(q, 10_000, 10_000), seed=s),
                   sf.Linear, sf.Bernoulli, "gd", 2.0, 100),
        Experiment("d", "hill_gd", "hill MLP", "hill network, gd", hill, lambda: sf.MLP(hidden=2), sf.Bernoulli, "gd", 2.0, 2000, 8),
        Experiment("e", "hill_rmsprop", "hill MLP", "hill network, rmsprop", hill, lambda: sf.MLP(hidden=2), sf.Bernoulli,
                   "rmsprop", 0.01, 4000, 4),
        Experiment("f", "hill_nnx", "hill NNX", "hill network, flax NNX (Categorical)", hill, neural_module, sf.Categorical,
                   "rmsprop", 0.01, 4000, 4, needs="flax"),
    ]


def _available(package: str | None) -> bool:
    if package is None:
        return True
    import importlib.util

    return importlib.util.find_spec(package) is not None


def run(*, seed: int = 0, quick: bool = False, progress: bool = False, only: str | None = None,
        on_start: Callable[[Experiment, dict], None] | None = None) -> list[Outcome]:
    """Run the experiments (``only`` = e.g. ``"ad"`` for a subset); ``quick`` uses 1,000 training
    rows (300 validation) and at most 2 starts. Ctrl-C during a fit keeps that fit's history so far
    and skips the experiments after it."""
    import scanfit as sf

    outcomes = []
    for exp in experiments():
        if only is not None and exp.key not in only:
            continue
        if not _available(exp.needs):
            outcomes.append(Outcome(exp, skipped=f"needs {exp.needs}: pip install 'scanfit[{exp.needs}]'"))
            continue
        options = exp.options(quick)
        if on_start is not None:
            on_start(exp, options)
        data = exp.data(seed, quick)
        start = time.perf_counter()
        result = sf.fit(exp.model(), exp.likelihood(), data.train.x, data.train.y,
                        valid=(data.valid.x, data.valid.y), seed=seed, progress=progress, **options)
        outcomes.append(Outcome(exp, result, data, time.perf_counter() - start))
        if result.status.code == "interrupted":
            break
    return outcomes


def table(outcomes: list[Outcome]) -> pd.DataFrame:
    """One row per experiment: optimizer, steps, train/valid accuracy (or MSE), objective, time."""
    rows = []
    for o in outcomes:
        e, r = o.experiment, o.result
        row = {"experiment": f"({e.key}) {e.short}", "optimizer": e.optimizer}
        if r is None:
            rows.append({**row, "status": f"skipped ({o.skipped})"})
            continue
        metric = "mse" if r.likelihood.name == "gaussian" else "accuracy"
        rows.append({**row, "steps": r.config.steps, "metric": metric, "train": r.final.get(f"train_{metric}"),
                     "valid": r.final.get(f"valid_{metric}"),
                     "objective": r.final.get("valid_objective", r.final.get("train_objective")),
                     "seconds": round(o.seconds, 1), "status": r.status.code})
    return pd.DataFrame(rows)


def _hidden_weights(result):
    """(W0, b0, w_out) of the NNX network, for plots.hidden_units."""
    p = result.params
    return p["hidden"]["kernel"], p["hidden"]["bias"], p["output"]["kernel"]


def write_outputs(outcomes: list[Outcome], out: str | Path) -> Path:
    """Write each history as CSV, every picture as PNG, and report.html into ``out``; return the report path."""
    from .show import csv_cells, plots, report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections = [report.Section("Summary", tables=[("", table(outcomes))])]
    for o in outcomes:
        name = f"{o.experiment.key}_{o.experiment.slug}"
        if o.result is None:
            sections.append(report.Section(f"({o.experiment.key}) {o.experiment.title}", text=[f"Skipped: {o.skipped}"]))
            continue
        csv_cells.to_csv(o.result.history, out / f"{name}_history.csv")
        hidden = _hidden_weights(o.result) if o.result.model.name == "module" else None
        o.images = plots.save_all(o.result, out, truth=o.dataset.truth or None, prefix=f"{name}_",
                                  hidden_weights=hidden, x=o.dataset.train.x, y=o.dataset.train.y)
        sections.append(report.result_section(f"({o.experiment.key}) {o.experiment.title}", o.result, o.images,
                                              text=[f"Data: {o.dataset.name}, {len(o.dataset.train.y)} training and "
                                                    f"{len(o.dataset.valid.y)} validation rows; history in "
                                                    f"{name}_history.csv."]))
    return report.write(out / "report.html", "scanfit demo: the notebook's six experiments", sections,
                        intro="Each section shows the fit's settings, its final statistics on training and validation "
                              "data, the learning path, and the pictures that apply to the model.")
