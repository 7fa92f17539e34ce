"""From the compiled loop's final carry to an :class:`~scanfit.engine.outcome.Outcome`.

Per start: the status (honest: ``converged`` only when the stepper's criterion held, see
``outcome.Status``), the history table, the parameters (back on the user's scale when the fit ran
on standardized columns). Then the final statistics at the returned parameters with the
intercept-only model's (``*_null_objective``) and McFadden's pseudo R-squared (``*_pseudo_r2``),
the kept start, a separation check for classifiers whose coefficients run off, and the warnings a
fit owes its user (diverged, a classifier that predicts one class, a fit no better than the null).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any

import jax
import numpy as np
import pandas as pd

from ..data import identification
from ..likelihoods.glm import glm_family, has_mle
from . import optimizers
from .null_model import with_null
from .outcome import FitError, FitWarning, Outcome, Status, choose_start

__all__ = ["Run", "assemble", "column_order"]


@dataclass
class Run:
    """What the loop hands over: the fit's inputs, its compiled ``evaluate``, and the final carry."""

    model: Any
    config: Any
    given: Any  # engine.inputs.Inputs
    data: dict
    evaluate: Any
    carry: dict
    pieces: list
    interrupted: bool
    seconds: float
    final: Any = None  # evaluate's numbers at the returned parameters, when the last chunk computed them

    likelihood = property(lambda self: self.given.likelihood)
    design = property(lambda self: self.given.design)
    xa = property(lambda self: self.given.xa)
    yenc = property(lambda self: self.given.yenc)
    vdata = property(lambda self: self.given.valid)  # (x, y as given, y encoded, weights, offset)


def column_order(likelihood, columns) -> list[str]:
    """train_ then valid_ statistics in the likelihood's order, then parameter summaries."""
    stats = [f"{p}_{n}" for p in ("train", "valid") for n in likelihood.stat_names if f"{p}_{n}" in columns]
    return stats + [c for c in columns if c not in stats]


def _criterion(config) -> str:
    if config.optimizer == "newton":
        return (f"half the squared Newton decrement (the gain a full step predicts) is below max(tol**2, 100 eps) "
                f"relative to the objective (tol={config.tol:g})")
    return f"the gradient norm is below tol={config.tol:g}"


def _status(run: Run, i: int, per_start) -> tuple[Status, Any, int]:
    """(status, parameters in the loop's scale, the last step that belongs to the history)."""
    config, carry, es = run.config, run.carry, run.config.early_stopping
    bad = int(per_start(carry["bad_step"], i))
    stop = int(per_start(carry["stop_step"], i))
    end = int(per_start(carry["end"], i))
    steps = min(stop, int(per_start(carry["step"], i)), config.steps)
    if bad >= 0:
        params = jax.tree.map(lambda a: per_start(a, i), carry["last_good"])
        status = (Status.not_finite_at_start(config, run.model) if bad == 0 else
                  Status.diverged(bad, config.learning_rate, config.optimizer))
        return status, params, bad
    use = carry["best_params"] if (es is not None and es.restore_best) else carry["params"]
    params = jax.tree.map(lambda a: per_start(a, i), use)
    name = optimizers.label(config.optimizer)
    if run.interrupted and steps < config.steps:
        status = Status("interrupted", steps, "Stopped by the user (Ctrl-C); the history holds the steps run so far.")
    elif stop < config.steps and end == 1:
        status = Status("converged", steps, f"Converged at step {steps}: {_criterion(config)}.")
    elif stop < config.steps and end == 2:
        status = Status("stalled", steps, f"Stalled at step {steps}: {name} could not raise the objective further, "
                        f"but the maximum is not reached ({_criterion(config)} does not hold). The maximum may not "
                        f"exist (separated classes, collinear columns); in float32 the precision may be too low: "
                        f"try dtype='float64' or result.refine().")
    elif stop < config.steps:
        status = Status("stopped_early", steps, "Stopped early: the monitored statistic stopped improving.")
    elif es is not None or config.optimizer in optimizers.SECOND_ORDER:
        status = Status("max_steps", config.steps, f"Reached steps={config.steps} before converging; "
                        f"increase steps" + ("." if config.optimizer in optimizers.SECOND_ORDER else " (or learning_rate)."))
    else:
        exact = ("; result.refine() finds the exact maximum" if has_mle(run.model, run.likelihood) else
                 "; compare the history's last steps, or early_stopping=sf.EarlyStopping() stops when the "
                 "objective stops improving")
        status = Status("completed", config.steps, f"Ran all {config.steps} steps of {name} (a first-order method "
                        f"does not test convergence{exact}).")
    if es is not None and es.restore_best:
        best = int(per_start(carry["best_step"], i))
        status = replace(status, message=f"{status.message} The parameters are those of step {best}, "
                                         f"the best recorded {es.monitor}.")
    return status, params, steps


def _fell(status: Status, trace, record_every: int, config) -> Status:
    """A fit whose objective ends clearly below where it started diverged, whatever its end."""
    if status.code == "diverged" or trace is None or len(trace) < 2:
        return status
    floor = trace[0] - 1e-3 * (1 + abs(trace[0]))
    if trace[-1] < floor:
        worse = int(np.argmax(trace < floor))
        return Status.diverged(worse * record_every, config.learning_rate, config.optimizer,
                               how="fell below its starting value")
    return status


def _to_user_scale(run: Run, params):
    if not run.design.standardized:
        return params
    raw = run.model.from_standard(jax.tree.map(lambda a: np.asarray(a, np.float64), params),
                                  run.design.center, run.design.scale)
    return jax.tree.map(lambda new, old: np.asarray(new).astype(np.asarray(old).dtype), raw, params)


def _with_null(run: Run, final: dict) -> dict:
    g = run.given
    parts = {"train": (g.yenc, g.weights, g.offset)}
    if g.valid is not None:
        parts["valid"] = g.valid[2:5]
    return with_null(final, {part: run.likelihood.null_objective(g.yenc, y, g.weights, w, g.offset, offset)
                             for part, (y, w, offset) in parts.items()})


def _separation(run: Run, params, status: Status) -> Status:
    """For Linear x Bernoulli/Categorical: name the separating columns when coefficients run off."""
    family = glm_family(run.model, run.likelihood)
    if family not in ("bernoulli", "categorical") or status.code in ("diverged", "interrupted"):
        return status
    if run.config.penalty is not None:  # a penalized objective has its minimum even when the classes separate
        return status
    k = 2 if family == "bernoulli" else run.likelihood.n_classes
    if family == "categorical":  # a class with no rows: its logits go to minus infinity, whatever the fit says
        counts = np.bincount(np.asarray(run.yenc, int)[np.asarray(_positive(run), bool)], minlength=k)
        missing = np.flatnonzero(counts == 0).tolist()
        if missing:
            return Status("separation", status.steps, f"{identification.missing_classes(missing)} No optimizer can "
                          f"converge to an estimate that does not exist; the parameters returned are where the fit "
                          f"stopped.", status.step)
    y = (run.yenc > 0).astype(int) if family == "bernoulli" else run.yenc.astype(int)
    problem = identification.check_separation(run.xa, y, run.design.names, k, params, weights=run.given.weights,
                                              offset=run.given.offset, link=getattr(run.likelihood, "link", "logit"))
    if problem is None:
        return status
    return Status("separation", status.steps, f"{problem} No optimizer can converge to an estimate that does "
                  f"not exist; the parameters returned are where the fit stopped.", status.step)


def _positive(run: Run) -> np.ndarray:
    """The training rows that count (positive weight)."""
    w = run.given.weights
    return np.ones(len(run.yenc), bool) if w is None else np.asarray(w) > 0


def _advice(run: Run) -> str:
    if run.model.name == "mlp":
        return ("Try: standardize=True (the default for sf.MLP), more steps, restarts=8 (several starts, the best "
                "kept), another activation (activation='relu' or 'tanh'), or another learning_rate.")
    if run.model.name == "linear":
        return "Check that the features carry information about the target; try standardize=True or more steps."
    return "Try standardizing x, more steps, restarts=8, or another learning_rate."


def _warn_if_trivial(run: Run, classes, final: dict, status: Status) -> None:
    """A classifier that predicts one class for every row, or a fit no better than a constant.
    ``classes``: how many of the training rows (padding aside) each class is predicted for."""
    if not status.ok:
        return
    lik = run.likelihood
    one_class = None
    if lik.name in ("bernoulli", "categorical") and len(np.unique(run.yenc)) > 1:
        labels = np.flatnonzero(np.asarray(classes))
        one_class = int(labels[0]) if len(labels) == 1 else None
    if one_class is not None:
        warnings.warn(f"The fit predicts class {one_class} for every training row (train accuracy "
                      f"{final.get('train_accuracy', float('nan')):.3f}): the model has learned only the share of "
                      f"the classes. {_advice(run)}", FitWarning, stacklevel=6)
        return
    r2 = final.get("train_pseudo_r2", np.nan)
    if np.isfinite(r2) and r2 <= 1e-4 and getattr(run.model, "intercept", True):  # (without an intercept the
        # intercept-only model is not nested in the fit: a pseudo R-squared against it says nothing)
        warnings.warn(f"The fit is no better than the intercept-only model (train pseudo R-squared {r2:.2g}; "
                      f"objective {final['train_objective']:.6g} against {final['train_null_objective']:.6g}). "
                      f"{_advice(run)}", FitWarning, stacklevel=6)


def assemble(run: Run, throw: bool) -> Outcome:
    config, likelihood = run.config, run.likelihood
    multi = config.restarts > 1
    table = {k: np.concatenate([p[k] for p in run.pieces], axis=-1) for k in run.pieces[0]} if run.pieces else {}
    table = {k: table[k] for k in column_order(likelihood, table)}
    width = next(iter(table.values())).shape[-1] if table else 0
    steps_axis = np.arange(width) * config.record_every

    def per_start(a, i):
        return a[i] if multi else a

    statuses, histories, loop_params = [], [], []
    for i in range(config.restarts):
        status, params, last = _status(run, i, per_start)
        trace = table.get("train_objective")
        status = _fell(status, None if trace is None else per_start(trace, i), config.record_every, config)
        ended = status.code in ("converged", "stalled", "stopped_early", "diverged")
        keep = steps_axis <= last if ended else steps_axis < last
        frame = {"step": steps_axis[keep]}
        frame.update({k: per_start(v, i)[keep] for k, v in table.items()})
        histories.append(pd.DataFrame(frame))
        loop_params.append(params)
        statuses.append(status)
    stacked = jax.tree.map(lambda *a: np.stack(a), *loop_params) if multi else loop_params[0]
    final, gnorm, classes = run.final if run.final is not None else jax.device_get(run.evaluate(stacked, run.data))
    finals = [_with_null(run, {k: float(per_start(final[k], i)) for k in column_order(likelihood, final)})
              for i in range(config.restarts)]
    best = choose_start(finals, statuses, has_valid=run.vdata is not None)
    params_all = [_to_user_scale(run, p) for p in loop_params]
    statuses[best] = _separation(run, params_all[best], statuses[best])
    status = statuses[best]
    if status.code == "converged":
        statuses[best] = status = replace(status, message=f"{status.message} Gradient norm at the estimate: "
                                          f"{float(per_start(gnorm, best)):.2g}"
                                          f"{' (standardized columns)' if run.design.standardized else ''}.")
    outcome = Outcome(model=run.model, likelihood=likelihood, config=config, params=params_all[best],
                      history=histories[best], status=status, feature_names=run.design.names,
                      final=finals[best], seconds=run.seconds, best_start=best,
                      start_histories=histories, start_params=params_all, start_statuses=statuses,
                      start_finals=finals, train=(run.xa, run.given.ya),
                      valid=None if run.vdata is None else run.vdata[:2], design=run.design,
                      weights=run.given.weights, offset=run.given.offset)
    if status.code in ("diverged", "separation", "stalled"):
        if throw:
            raise FitError(status.message)
        warnings.warn(status.message, FitWarning, stacklevel=5)
    else:
        _warn_if_trivial(run, per_start(classes, best), finals[best], status)
    return outcome
