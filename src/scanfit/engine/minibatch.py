"""Minibatch training (issue 16, part 3): first-order optimizers on shuffled batches of rows.

``sf.fit(model, likelihood, x, y, batch_size=256, epochs=10)`` for arrays in memory, and
``sf.fit(model, likelihood, sf.Parquet(...), batch_size=..., epochs=...)`` for a source, train any
model (networks included) with ``"gd"``, an optax name or an ``optax.GradientTransformation``
(newton and lbfgs are full-batch methods and refuse ``batch_size``). Arrays are read as a
``data.sources.Arrays`` source, so both paths run the same code.

How an epoch runs
-----------------
- The source is read in chunks of ``batch_rows`` rows rounded down to whole batches (at most the
  rows rounded up to one), so only an epoch's last batch can be partial; the first pass
  (``feeder.Feeder.describe``) learns the moments (standardization, the null model) and keeps the
  chunks in memory when they fit the source's ``cache`` budget.
- Each epoch shuffles from the fit's key (folded with ``_SHUFFLE``, the epoch and the chunk's
  position): chunks in memory in a random order, chunks streamed in a random order of the files;
  within a chunk (the shuffle buffer) a random permutation of the rows. Same seed, same numbers;
  restarts share the batch order.
- One compiled program per chunk scans over its batches (a gather of ``batch_size`` rows, forward,
  backward, the optimizer's update), vmapped over restarts. A partial batch masks its missing rows
  (its objective is the weighted mean over the rows it has); a batch of weight 0 is skipped.
  ``batch_size`` equal to the row count is the full-batch step (``gd``: the in-memory ``gd`` fit).
- A restart whose batch objective or updated parameters are not finite is frozen at its last
  finite parameters (status ``diverged``, the batch named); so is one that early stopping ends.

History (``result.history``, one frame; ``result.history_of(i)`` per restart)
----------------------------------------------------------------------------
- ``step``: the number of updates before the row's parameters (as in memory, a row holds the
  parameters before its step); ``epoch``: ``step`` divided by the batches per epoch (integers at
  the ends of epochs, fractions inside them).
- ``batch_<stat>`` (``batch_objective``, ``batch_accuracy``, ...): the statistics of one batch at the
  parameters before its update, every ``record_every`` batches (``step % record_every == 0``).
- ``train_<stat>``, ``valid_<stat>``: exact statistics of full passes over the training and the
  validation data (``passes``' per-chunk sums, ``likelihoods.streamed``) at the start (epoch 0)
  and at the end of every epoch; and there the model's summaries (``beta0``, ``beta1_*`` for
  ``Linear``). Elsewhere these columns are NaN (and the batch columns on the last row).
``result.final`` holds the full-pass statistics at the returned parameters, with
``*_null_objective`` and ``*_pseudo_r2`` as for streamed exact fits.

Early stopping watches its monitor on the full passes at the ends of epochs (``patience`` counts
epochs; without validation data a ``valid_*`` monitor reads the training pass), and
``restore_best`` returns the parameters of the best epoch (epoch 0 included). The kept restart is
the one with the best final valid (else train) objective (``outcome.choose_start``).
"""

from __future__ import annotations

import functools
import time
import warnings
from collections import namedtuple
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from jax import lax

from ..data import checks as data_checks
from ..data.design import Design
from ..data.precision import dtype_scope
from ..data.sources import Arrays, is_source
from ..likelihoods import streamed as lstats
from ..likelihoods.base import Likelihood
from ..models.checks import check_model, check_size
from ..models.core import as_model, forward
from . import distributed, optimizers, passes
from .assemble import column_order
from .config import FitConfig, _positive_int
from .outcome import FitError, FitWarning, Outcome, Status, choose_start
from .progress import CtrlC, progress_bar
from .null_model import null_objectives, with_null
from .stream import _jits

__all__ = ["fit", "DEFAULT_BATCH_SIZE", "DEFAULT_EPOCHS"]

DEFAULT_BATCH_SIZE = 256  # when only epochs is given
DEFAULT_EPOCHS = 10  # when only batch_size is given
_SHUFFLE = 0x5CF1  # folded into the fit's key for the batch order (the starts use the key itself)


def fit(model, likelihood, x=None, y=None, *, batch_size=None, epochs=None, valid=None, optimizer="auto",
        learning_rate=None, steps=None, seed: int = 0, record_every: int = 1, restarts: int = 1,
        early_stopping=None, dtype: str = "auto", tol: float = 1e-8, standardize=None, penalty=None,
        progress: bool = False, throw: bool = False, init_params=None, config: FitConfig | None = None,
        weights=None, offset=None, exposure=None, formula=None, data=None) -> Outcome:
    """Minibatch training (see the module docstring); the other arguments are ``scanfit.fit``'s.

    batch_size : rows per batch (default 256 when only ``epochs`` is given).
    epochs : passes over the training data (default 10 when only ``batch_size`` is given).
    record_every : a ``batch_*`` history row every this many batches.
    """
    batch_size, epochs = (int(v) if isinstance(v, np.integer) else v for v in  # defaults; NumPy ints too
                          (DEFAULT_BATCH_SIZE if batch_size is None else batch_size, DEFAULT_EPOCHS if epochs is None else epochs))
    for name, value in (("batch_size", batch_size), ("epochs", epochs), ("record_every", record_every)):
        _positive_int(name, value)
    if steps is not None:
        raise ValueError(f"The 'steps' parameter of fit ({steps!r}) has no use with batch_size/epochs: the fit runs "
                         f"epochs x (rows / batch_size) steps. Drop steps, or drop batch_size and epochs.")
    if config is None:
        config = FitConfig(optimizer=optimizer, learning_rate=learning_rate, record_every=record_every,
                           restarts=restarts, seed=seed, early_stopping=early_stopping, dtype=dtype, tol=tol,
                           standardize=standardize, penalty=penalty)
    if config.optimizer == "auto":
        config = replace(config, optimizer="adam")
    if isinstance(config.optimizer, str) and config.optimizer in optimizers.SECOND_ORDER:
        raise ValueError(f"The 'optimizer' parameter of fit is {config.optimizer!r}, a full-batch method, which "
                         f"cannot take minibatches (batch_size={batch_size}). Use a first-order optimizer such as "
                         f"'adam', 'sgd' or 'gd', or drop batch_size and epochs for an exact full-batch fit.")
    if config.penalty is not None:
        raise ValueError("The 'penalty' parameter of fit is not available with minibatch training: penalized fits "
                         "run full-batch; drop batch_size and epochs.")
    config = replace(config, steps=config.record_every).validated()  # steps is set from the batches below
    model = as_model(model)
    if not isinstance(likelihood, Likelihood):
        raise TypeError(f"The 'likelihood' parameter must be sf.Gaussian(), sf.Bernoulli(), ... Got "
                        f"{type(likelihood).__name__}.")
    config = config.resolved(model, likelihood)
    if config.early_stopping is not None:
        config.early_stopping.check(likelihood)
    if distributed.process_count() > 1:
        raise ValueError("Minibatch training runs in one process; sf.distributed fits take the exact methods "
                         "(newton, lbfgs, gd one pass per step).")
    with dtype_scope(config.dtype), CtrlC():
        train, vsource, given = _sources(model, likelihood, config, x, y, valid, weights, offset, exposure, formula,
                                         data)
        return _Fit(model, likelihood, train, vsource, given, config, batch_size, epochs, progress, throw,
                    init_params).run()


def _sources(model, likelihood, config, x, y, valid, weights, offset, exposure, formula, data):
    """The training and validation data as sources; for arrays also the checked inputs."""
    if is_source(x):
        extra = {"y": y, "weights": weights, "offset": offset, "exposure": exposure, "formula": formula, "data": data}
        named = [name for name, value in extra.items() if value is not None]
        if named:
            raise ValueError(f"The '{named[0]}' parameter of fit has no use with a source (sf.Parquet) in place of x: "
                             f"the source names its columns, sf.Parquet(path, target='y', features=[...], "
                             f"weights='w', offset='col' or exposure='col').")
        given, train = None, x
    else:
        from . import inputs

        given = inputs.prepare(model, likelihood, config, x, y, valid=None if is_source(valid) else valid,
                               weights=weights, offset=offset, exposure=exposure, formula=formula, data=data)
        data_checks.check_labels(given.ya, likelihood)
        train = Arrays(given.xa, given.ya, given.weights, given.offset, names=given.design.names)
    vsource = None
    if is_source(valid):
        vsource = valid
        if tuple(valid.features) != tuple(train.features):
            if isinstance(valid, Arrays):
                raise ValueError(f"The validation columns {valid.features} differ from the training columns "
                                 f"{train.features}.")
            vsource = valid.with_features(train.features)
    elif valid is not None:
        if given is None:
            raise TypeError(f"With a source (sf.Parquet) to train on, 'valid' must be a source too, e.g. "
                            f"sf.Parquet(...). Got {type(valid).__name__}.")
        v = given.valid
        vsource = Arrays(v[0], v[1], v[3], v[4], names=train.features)
    return train, vsource, given


def _chunked(source, batch_size: int, multiple: bool):
    """``source`` with chunks of ``batch_rows`` rounded to whole batches (``multiple``) and no longer
    than its rows need (a short source is one chunk, not one padded to ``batch_rows``)."""
    b, n = int(source.batch_rows), max(int(source.n_rows), 1)
    if multiple:
        rows = min(max(batch_size, b // batch_size * batch_size), -(-n // batch_size) * batch_size)
    else:
        rows = min(b, n)
    if rows == b:
        return source
    if isinstance(source, Arrays):
        return Arrays(source.x, source.y, source.w, source.off, names=source.features, batch_rows=rows)
    return replace(source, batch_rows=rows)


class _Fit:
    def __init__(self, model, likelihood, train, valid, given, config, batch_size, epochs, progress, throw,
                 init_params):
        self.model, self.config, self.bs, self.epochs = model, config, batch_size, epochs
        self.progress, self.throw, self.given = progress, throw, given
        self.source = _chunked(train, batch_size, multiple=True)
        dt = config.dtype
        self.feeder = passes.Feeder(self.source, likelihood, dt)
        self.moments = self.feeder.describe()
        self.lik = self.feeder.likelihood
        names = tuple(self.source.features)
        formula = None if given is None else given.design.formula
        if config.standardize:
            center, scale = self.moments.center_scale(getattr(model, "intercept", True))
            self.design = Design(names, center, scale, formula=formula)
            self.center, self.scale = jnp.asarray(center, dt), jnp.asarray(scale, dt)
        else:
            self.design, self.center, self.scale = Design(names, formula=formula), None, None
        self.valid = self.valid_moments = None
        if valid is not None:
            self.valid = passes.Feeder(_chunked(valid, batch_size, multiple=False), self.lik, dt, part="valid")
            self.valid_moments = self.valid.describe()
        self.per_epoch = -(-self.moments.rows // batch_size)  # batches per epoch (only the last may be partial)
        self.R = config.restarts
        self.jits = _jits(model, self.lik, None, names, config.standardize, dt)
        self.programs = _programs(model, self.lik, _stepper(config.optimizer), batch_size, config.standardize, dt)
        es = config.early_stopping
        self.monitor = None if es is None else (
            es.monitor if valid is not None or not es.monitor.startswith("valid_") else "train_" + es.monitor[6:])
        self.init_params = check_model(model, self.lik, (self.moments.rows, len(names)), init_params)
        check_size(model, self.lik, config, 1, len(names))  # its parameters (the batches are bounded)

    # ----------------------------------------------------------------- pieces
    def start(self):
        cfg, d, k = self.config, len(self.source.features), self.lik.n_outputs
        key = jax.random.key(cfg.seed)
        if self.init_params is not None:
            params = self.init_params
            if self.center is not None:
                params = self.model.to_standard(params, np.asarray(self.center, np.float64),
                                                np.asarray(self.scale, np.float64))
            if self.lik.extra_params:
                params = {**self.lik.init_extra(), **params}
            params = jax.tree.map(lambda a: jnp.broadcast_to(jnp.asarray(a, cfg.dtype), (self.R,) + np.shape(a)),
                                  params)
        elif self.R > 1:
            params = jax.vmap(lambda kk: self.jits.init(kk, d, k))(jax.random.split(key, self.R))
        else:
            params = jax.tree.map(lambda a: a[None], self.jits.init(key, d, k))
        stepper = _stepper(cfg.optimizer)
        state = jax.vmap(lambda p: stepper.init(p, cfg.learning_rate))(params)
        return {"params": params, "state": state, "frozen": jnp.zeros(self.R, bool),
                "bad": jnp.full(self.R, -1, jnp.int32)}

    def full_pass(self, feeder, params) -> list[dict]:
        """Exact statistics of one pass over ``feeder`` at each restart's parameters."""
        acc = None
        for x, y, w, off, rows in feeder:
            out = self.programs.value(params, self.center, self.scale, x, y, w, off, rows)
            out = jax.tree.map(lambda a: np.asarray(a, np.float64), jax.device_get(out))
            acc = out if acc is None else jax.tree.map(np.add, acc, out)
        means = acc["terms"] / acc["weight"][:, None]
        stats = jax.device_get(self.programs.stats(jnp.asarray(means, self.config.dtype)))
        return [{k: float(v[r]) for k, v in stats.items()} for r in range(self.R)]

    def epoch_order(self, epoch: int):
        """This epoch's chunks, in its shuffled order, with their row counts."""
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(self.config.seed), _SHUFFLE), epoch)
        kept, files = self.feeder.kept, getattr(self.source, "files", ())
        order = np.asarray(jax.random.permutation(jax.random.fold_in(key, 0), len(files if kept is None else kept)))
        if kept is not None:
            chunks = (kept[i] for i in order)
        else:  # streamed: the files in a random order, cut into chunks again
            src = replace(self.source, files=tuple(files[i] for i in order), n_rows=self.source.n_rows)
            chunks = iter(passes.Feeder(src, self.lik, self.config.dtype))
        for i, chunk in enumerate(chunks):
            yield jax.random.fold_in(key, i + 1), chunk

    # ----------------------------------------------------------------- the fit
    def run(self) -> Outcome:
        t0, R, es = time.perf_counter(), self.R, self.config.early_stopping
        carry = self.start()
        rows = [dict() for _ in range(R)]  # per restart: step -> history row
        ended, early = np.zeros(R, bool), np.zeros(R, int)  # no more history; the epoch early stopping ended
        best, waits = [None] * R, np.zeros(R, int)  # best: (value, epoch, params, final statistics) per restart
        step, interrupted = 0, False
        finals = self.epoch_end(carry["params"], 0, rows, ended)
        start_objective = [f["train_objective"] for f in finals]
        self.track(finals, carry, 0, best, waits, early, ended)
        with progress_bar(self.progress, self.epochs * self.per_epoch) as bar:
            for epoch in range(self.epochs):
                if ended.all():
                    break
                outs = []
                for key, (x, y, w, off, n) in self.epoch_order(epoch):
                    carry, out = self.programs.train(carry, x, y, w, off, n, key, jnp.asarray(step, jnp.int32),
                                                     self.center, self.scale)
                    if self.feeder.kept is None:  # streamed: one chunk in flight (memory: a few chunks, not the rows)
                        jax.block_until_ready(carry)
                    active = -(-int(n) // self.bs)
                    outs.append((step, active, out))
                    step += active
                    bar.advance(step)
                    if (interrupted := CtrlC.pressed):
                        break
                bad = np.asarray(jax.device_get(carry["bad"]))
                self.batch_rows(outs, rows, ended, bad)
                finals = self.epoch_end(carry["params"], step, rows, ended)
                ended |= bad >= 0
                if es is not None:
                    carry = self.track(finals, carry, epoch + 1, best, waits, early, ended)
                if interrupted:
                    break
        return self.outcome(carry, finals, best, early, start_objective, rows, step, interrupted,
                            time.perf_counter() - t0)

    def batch_rows(self, outs, rows, ended, bad):
        k = self.config.record_every
        for step0, active, out in outs:
            out = jax.device_get(out)
            for i in range(active):
                g = step0 + i
                for r in range(self.R if g % k == 0 else 0):
                    if ended[r] or (bad[r] >= 0 and g > bad[r]):
                        continue
                    row = rows[r].setdefault(g, {"step": g, "epoch": g / self.per_epoch})
                    row.update({f"batch_{s}": float(v[i, r]) for s, v in out.items()})

    def epoch_end(self, params, step, rows, ended) -> list[dict]:
        """Full passes at the end of an epoch (step 0: the start); history rows for live restarts."""
        finals = [{f"train_{k}": v for k, v in f.items()} for f in self.full_pass(self.feeder, params)]
        if self.valid is not None:
            for f, v in zip(finals, self.full_pass(self.valid, params)):
                f.update({f"valid_{k}": x for k, x in v.items()})
        summaries = jax.device_get(_over_starts(self.jits.user)(params, self.center, self.scale)[1])
        for r in range(self.R):
            if not ended[r]:
                row = rows[r].setdefault(step, {"step": step, "epoch": step / self.per_epoch})
                row.update({**finals[r], **{k: float(np.asarray(v)[r]) for k, v in summaries.items()}})
        return finals

    def track(self, finals, carry, epoch, best, waits, early, ended):
        """Early stopping at an epoch's end: the best so far per restart; freeze the stalled ones."""
        es = self.config.early_stopping
        if es is None:
            return carry
        params = None
        for r in range(self.R):
            if early[r] or (ended[r] and best[r] is not None):
                continue
            value = es.sign * finals[r].get(self.monitor, np.nan)
            if best[r] is None or (np.isfinite(value) and value > best[r][0] + es.min_delta):
                if params is None:
                    params = jax.device_get(carry["params"])
                best[r] = (value if np.isfinite(value) else -np.inf, epoch,
                           jax.tree.map(lambda a: np.array(a[r]), params), finals[r])
                waits[r] = 0
            else:
                waits[r] += 1
                if waits[r] >= es.patience:
                    early[r], ended[r] = epoch, True
        if early.any():
            carry = dict(carry, frozen=jnp.asarray(np.asarray(jax.device_get(carry["frozen"])) | (early > 0)))
        return carry

    # ----------------------------------------------------------------- the record
    def outcome(self, carry, finals, best, early, start_objective, rows, step, interrupted, seconds) -> Outcome:
        cfg, es, lik = self.config, self.config.early_stopping, self.lik
        params = jax.device_get(carry["params"])
        bad = np.asarray(jax.device_get(carry["bad"]))
        users, statuses, fins, histories = [], [], [], []
        for r in range(self.R):
            p_r, final = jax.tree.map(lambda a: a[r], params), dict(finals[r])
            kept_epoch = None
            if es is not None and es.restore_best and bad[r] < 0 and best[r] is not None:
                _, kept_epoch, p_r, final = best[r]
                final = dict(final)
            final = self.null_stats(final)
            user = jax.tree.map(np.asarray, self.jits.user(p_r, self.center, self.scale)[0])
            statuses.append(self.status(r, bad[r], early[r], kept_epoch, final, start_objective[r], step,
                                        interrupted))
            users.append(user)
            fins.append(final)
            frame = pd.DataFrame([rows[r][s] for s in sorted(rows[r])])
            lead = ["step", "epoch"] + [c for c in frame.columns if c.startswith("batch_")]
            rest = [c for c in frame.columns if c not in lead]
            histories.append(frame[lead + column_order(lik, rest)])
        chosen = choose_start(fins, statuses, has_valid=self.valid is not None)
        status = statuses[chosen]
        config = replace(cfg, steps=self.epochs * self.per_epoch)
        given = self.given
        train = valid = w = off = None
        if given is not None:
            train, w, off = (given.xa, given.ya), given.weights, given.offset
            valid = None if given.valid is None else tuple(given.valid[:2])
        outcome = Outcome(model=self.model, likelihood=lik, config=config, params=users[chosen],
                          history=histories[chosen], status=status, feature_names=self.design.names,
                          final=fins[chosen], seconds=seconds, best_start=chosen, start_histories=histories,
                          start_params=users, start_statuses=statuses, start_finals=fins, train=train, valid=valid,
                          design=self.design, weights=w, offset=off)
        if status.code == "diverged":
            if self.throw:
                raise FitError(status.message)
            warnings.warn(status.message, FitWarning, stacklevel=4)
        return outcome

    def null_stats(self, final: dict) -> dict:
        if not hasattr(self, "nulls"):  # the intercept-only model's, once for every restart
            valid = None if self.valid is None else (self.valid, self.valid_moments)
            self.nulls = null_objectives(self.lik, (self.feeder, self.moments), valid)
        final = with_null(final, self.nulls)
        return {k: final[k] for k in column_order(self.lik, final)}

    def status(self, r, bad, early, kept_epoch, final, start, step, interrupted) -> Status:
        cfg, es, bs = self.config, self.config.early_stopping, self.bs
        how = (f"(optimizer={optimizers.label(cfg.optimizer)!r}, learning_rate={cfg.learning_rate:g}, batch_size={bs}"
               f"). Try a smaller learning_rate, e.g. {cfg.learning_rate / 10:g}, or a larger batch_size.")
        if not np.isfinite(start):
            return Status.not_finite_at_start(cfg, self.model)
        if bad >= 0:
            return Status("diverged", int(bad), f"The fit diverged: at batch {bad} (epoch {bad // self.per_epoch + 1} "
                          f"of {self.epochs}) the batch objective or the updated parameters became NaN or infinite "
                          f"(the parameters returned are the last finite ones, before that update) {how}", int(bad))
        objective = final.get("train_objective", np.nan)
        if not np.isfinite(objective) or objective < start:
            return Status("diverged", step, f"The fit diverged: the full-data train objective at the returned "
                          f"parameters ({objective:.6g}) is below its value at the start ({start:.6g}) {how}", step)
        if interrupted:
            return Status("interrupted", step, f"Stopped by the user (Ctrl-C) after {step} batches; the history "
                          f"holds the epochs run so far.")
        if early:
            kept = (f"returned the parameters of epoch {kept_epoch} (restore_best)" if kept_epoch is not None
                    else "returned the last parameters")
            return Status("stopped_early", int(early) * self.per_epoch, f"Stopped early after epoch {early}: "
                          f"{self.monitor} did not improve by more than {es.min_delta:g} for {es.patience} epoch(s); "
                          f"{kept}.")
        kept = "" if kept_epoch is None else f"; returned the parameters of the best epoch, {kept_epoch} (restore_best)"
        return Status("completed", step, f"Ran all {self.epochs} epochs of minibatch "
                      f"{optimizers.label(cfg.optimizer)} ({self.per_epoch} batches of up to {bs} rows per epoch, "
                      f"{step} steps){kept}; nothing is claimed about the maximum.")


@functools.lru_cache(maxsize=32)
def _stepper(optimizer):
    """One ``FirstOrder`` per optimizer (its optax transformation is part of the programs' cache key)."""
    return optimizers.FirstOrder(optimizer)


_Programs = namedtuple("_Programs", "train value stats")


@functools.lru_cache(maxsize=32)
def _over_starts(user):
    """``stream._jits(...).user`` vmapped over restarts (the summaries of each start's parameters)."""
    return jax.jit(jax.vmap(user, in_axes=(0, None, None)))


@functools.lru_cache(maxsize=32)
def _programs(model, lik, stepper, batch_size: int, standardized: bool, dtype: str) -> _Programs:
    """The compiled programs of a minibatch fit: ``train`` (one chunk's batches, vmapped over
    restarts), ``value`` (a full pass's sums for one chunk, vmapped), ``stats`` and ``user``."""
    tx, extra = stepper.tx, lik.extra_params
    dt = jnp.dtype(dtype)

    def objective(params, xb, yb, wt, offb, center, scale):
        xs = xb.astype(dt)
        if standardized:
            xs = (xs - center[None, :]) / scale[None, :]
        index = forward(model, params, model.columns_of(xs) if model.columns else xs)
        if offb is not None:
            index = index + offb
        sums = lstats.terms(lik, index, yb, **{k: params[k] for k in extra}) @ wt
        return sums[0] / jnp.sum(wt), sums

    def update(carry, xb, yb, wt, offb, center, scale, step):
        params, state, frozen = carry["params"], carry["state"], carry["frozen"]
        (value, sums), grads = jax.value_and_grad(objective, has_aux=True)(params, xb, yb, wt, offb, center, scale)
        updates, new_state = tx.update(jax.tree.map(jnp.negative, grads), state, params)
        new_params = optax.apply_updates(params, updates)
        finite = jnp.isfinite(value)
        for leaf in jax.tree.leaves(new_params):
            finite &= jnp.all(jnp.isfinite(leaf))
        keep = frozen | ~finite

        def pick(new, old):
            return jnp.where(keep, old, new)

        out = {"params": jax.tree.map(pick, new_params, params), "state": jax.tree.map(pick, new_state, state),
               "frozen": keep, "bad": jnp.where(frozen | finite, carry["bad"], step)}
        return out, lstats.from_means_jax(lik, sums / jnp.sum(wt))

    per_start = jax.vmap(update, in_axes=(0, None, None, None, None, None, None, None))

    def train(carry, x, y, w, off, rows, key, step0, center, scale):
        b = x.shape[0]
        perm = jax.random.permutation(key, b)
        order = perm[jnp.argsort(perm >= rows, stable=True)]  # the chunk's rows in a random order, padding last

        def body(c, i):
            idx = lax.dynamic_slice_in_dim(order, i * batch_size, batch_size)
            mask = jnp.arange(batch_size) < rows - i * batch_size
            wt = mask.astype(dt) if w is None else jnp.where(mask, w[idx], 0).astype(dt)
            yb = y[idx] if lik.name == "categorical" else y[idx].astype(dt)
            args = (x[idx], yb, wt, None if off is None else off[idx].astype(dt), center, scale, step0 + i)

            def skip(c):
                shapes = jax.eval_shape(per_start, c, *args)[1]
                return c, jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), shapes)

            return lax.cond(jnp.sum(wt) > 0, lambda c: per_start(c, *args), skip, c)

        return lax.scan(body, carry, jnp.arange(b // batch_size, dtype=jnp.int32))

    body, _ = passes._program(model, lik, "value", None, standardized, dtype)
    value = jax.vmap(body, in_axes=(0,) + (None,) * 7)
    stats = jax.vmap(lambda m: lstats.from_means_jax(lik, m))
    return _Programs(jax.jit(train, donate_argnums=0), jax.jit(value), jax.jit(stats))
