"""The compiled fit: ``jit`` + ``lax.scan`` over recorded steps, ``vmap`` over restarts.

One call of the compiled ``chunk`` runs ``chunk_records * record_every`` steps for every
start; the Python loop around it only moves a progress bar, checks early stopping and
catches Ctrl-C: a fit runs in about 50 chunks (one compiled program serves them all) with or
without a bar, so Ctrl-C keeps the work done so far; only a small fit without a bar is one chunk.
The carry holds, per start: params, optimizer state, key, step counter, the last finite
params (for divergence), and early-stopping bookkeeping.

>>> import scanfit as sf
>>> data = sf.datasets.linear(seed=0)
>>> r = sf.fit(sf.Linear(), sf.Gaussian(), data.train.x, data.train.y, steps=500, learning_rate=0.01)
>>> round(float(r.params["beta1"][0]), 2)
2.0
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..data import checks as data_mod
from ..data.precision import dtype_scope
from ..likelihoods.base import Likelihood, split_target
from ..models.core import forward, layout  # noqa: F401  (layout: engine.layout for tests)
from ..models.checks import check_model, check_size
from . import inputs, optimizers, programs
from .penalty import l1_value, l2_value, penalty_weights, prox_l1
from .second_order import raw_newton_start
from .config import EarlyStopping, FitConfig, settle
from .assemble import Run, assemble
from .outcome import Outcome
from .progress import CtrlC, progress_bar as _progress_bar

__all__ = ["fit", "traces"]

_TRACES = [0]


def traces() -> int:
    """How many times a fit loop has been traced (compiled); tests use it to prove caching."""
    return _TRACES[0]


def _where(cond, new, old):
    return jax.tree.map(lambda a, b: jnp.where(cond, a, b), new, old)


def _monitor(es: EarlyStopping | None, has_valid: bool) -> str | None:
    """The column early stopping watches: the train version of a valid_ column without valid data."""
    if es is None:
        return None
    return es.monitor if has_valid or not es.monitor.startswith("valid_") else "train_" + es.monitor[6:]


@functools.lru_cache(maxsize=64)
def _parts(model, likelihood, optimizer, tol, record_every, chunk_records,
           steps, es, masked, has_valid, names, multi, source, scaled=False, penalty=None):
    """The loop's functions for one static configuration, neither vmapped nor compiled:
    ``(init, chunk, evaluate, columns)``; ``_programs`` and ``_fused`` compile them."""
    # the loop's Gaussian objective is -mse, twice the unit-variance log-likelihood: its penalty counts twice
    factor = 2.0 if likelihood.name == "gaussian" else 1.0
    first = getattr(model, "w_name", None)

    def weights_of(params, target=None):  # the penalty's per-coordinate factors (1 / scale on the first layer)
        scale = target.get("pscale") if isinstance(target, dict) else None
        return penalty_weights(params, first, scale)

    stepper = optimizers.stepper(optimizer, tol, model, likelihood, penalty, weights_of, factor)
    monitor = _monitor(es, has_valid)

    def extra(params):  # the likelihood's own parameters (NegativeBinomial's log_alpha), if any
        return {k: params[k] for k in likelihood.extra_params}

    def index_of(params, x, offset):
        index = forward(model, params, x, multi)
        return index if offset is None else index + offset

    def objective(params, x, target):
        y, w, offset = split_target(target)
        index = index_of(params, x, offset)
        value, sums = likelihood.objective_and_sums(index, y, w, **extra(params))
        raw = value
        if penalty is not None and penalty.l2 > 0:  # the smooth part of the penalty joins the objective
            value = value - factor * penalty.l2 * l2_value(params, weights_of(params, target))
        return value, (index, sums, raw)

    def statistics(params, aux, value, data):
        index, sums = aux[0], aux[1]
        value = aux[2] if len(aux) > 2 else value  # the log-likelihood's own, without the penalty
        y, w, _ = split_target(data["y"])
        out = {f"train_{k}": v for k, v in likelihood.stats(index, y, value, sums, w, **extra(params)).items()}
        if has_valid:
            vy, vw, voffset = split_target(data["vy"])
            vindex = index_of(params, data["vx"], voffset)
            out.update({f"valid_{k}": v for k, v in likelihood.stats(vindex, vy, w=vw, **extra(params)).items()})
        # coefficient paths on the user's scale: the loop's parameters belong to the standardized x
        raw = model.from_standard(params, data["center"], data["scale"]) if scaled else params
        out.update(model.summaries(raw, names))
        out.update(likelihood.summaries(params))
        if penalty is not None:  # in log-likelihood units: the train objective minus this is what is maximized
            c = weights_of(params, data["y"])
            out["penalty"] = penalty.l1 * l1_value(params, c) + penalty.l2 * l2_value(params, c)
        return out

    def init(key, start, learning_rate, n_features, n_outputs):
        params = model.init(key, n_features, n_outputs) if start is None else start
        if likelihood.extra_params:  # joined to the model's dict; a start without them gets the defaults
            params = {**likelihood.init_extra(), **params}
        # floating leaves take the fit's dtype (a user's float32 start in a float64 fit, and back)
        params = jax.tree.map(lambda a: a.astype(jnp.result_type(float)) if jnp.issubdtype(a.dtype, jnp.floating)
                              else a, jax.tree.map(jnp.asarray, params))
        state = stepper.init(params, learning_rate)
        carry = {"params": params, "state": state, "key": key,
                 "step": jnp.zeros((), jnp.int32), "stopped": jnp.zeros((), bool),
                 "stop_step": jnp.full((), steps, jnp.int32), "bad_step": jnp.full((), -1, jnp.int32),
                 "end": jnp.zeros((), jnp.int32), "last_good": params}
        if es is not None:
            carry.update(best=jnp.full((), -jnp.inf, jnp.result_type(float)), since=jnp.zeros((), jnp.int32),
                         best_step=jnp.zeros((), jnp.int32), best_params=params)
        return carry

    def one_step(carry, data, record):
        step = carry["step"]
        x, y = source.batch(data, step)
        value, aux, params, state, done = optimizers.step_unless_stopped(stepper, objective, carry, x, y,
                                                                         masked and not multi)
        done = jnp.asarray(done, jnp.int32)  # 0 running, 1 converged, 2 stalled (see optimizers.FirstOrder)
        if penalty is not None and penalty.l1 > 0 and optimizer in ("gd", "sgd"):  # proximal gradient descent
            rate = state.hyperparams["learning_rate"]
            params = prox_l1(params, weights_of(params, y), rate * factor * penalty.l1)
        finite = jnp.isfinite(value)
        new = dict(carry, step=step + 1)
        new["bad_step"] = jnp.where((carry["bad_step"] < 0) & ~finite, step, carry["bad_step"])
        new["last_good"] = _where(finite & (carry["bad_step"] < 0), carry["params"], carry["last_good"])
        stats = statistics(carry["params"], aux, value, data) if record else None
        halt = ~finite | (done > 0)
        active = ~carry["stopped"] & (step < steps) if masked else True
        if es is not None and record:
            m = es.sign * stats[monitor]
            better = (m > carry["best"] + es.min_delta) & active
            new["best"] = jnp.where(better, m, carry["best"])
            new["best_step"] = jnp.where(better, step, carry["best_step"])
            new["best_params"] = _where(better, carry["params"], carry["best_params"])
            new["since"] = jnp.where(better, 0, carry["since"] + 1)
            halt = halt | (new["since"] >= es.patience)
        if masked:
            halt = halt & active
            new["stopped"] = carry["stopped"] | halt | (step + 1 >= steps)
            new["stop_step"] = jnp.where(halt, step, carry["stop_step"])
            new["end"] = jnp.where(halt & (done > 0), done, carry["end"])
            go = active & (~halt | (finite & (done == 1)))  # a converging step's update is kept (Newton's last)
            params, state = _where(go, params, carry["params"]), _where(go, state, carry["state"])
        else:  # a divergence is in bad_step; only a stepper's own end (done) needs stop_step here
            first = (done > 0) & (carry["stop_step"] == steps)
            new["stop_step"] = jnp.where(first, step, carry["stop_step"])
            new["end"] = jnp.where(first, done, carry["end"])
        new["params"], new["state"] = params, state
        return new, stats

    columns = []  # the statistics' names, in the order of the stacked vector (filled at trace time)

    def record_body(data, carry, _):
        carry, stats = one_step(carry, data, True)
        if record_every > 1:
            carry = lax.fori_loop(0, record_every - 1, lambda i, c: one_step(c, data, False)[0], carry)
        # one vector per step: one write into the scan's output instead of one per statistic
        columns[:] = list(stats)
        return carry, jnp.stack([jnp.asarray(v, jnp.result_type(float)) for v in stats.values()])

    def chunk(carry, data):
        _TRACES[0] += 1
        return lax.scan(functools.partial(record_body, data), carry, None, length=chunk_records)

    def evaluate(params, data):
        """Statistics at ``params``, the gradient norm of the loop's objective there, and for
        classifiers how many of the rows that count each class is predicted for."""
        (value, aux), grads = jax.value_and_grad(objective, has_aux=True)(params, data["x"], data["y"])
        norm = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(grads)))
        index = aux[0]
        classes = jnp.zeros((0,), jnp.int32)
        if likelihood.name in ("bernoulli", "categorical"):
            y, w, _ = split_target(data["y"])
            pred = (index >= 0).astype(jnp.int32) if index.ndim == 1 else jnp.argmax(index, axis=0)
            k = index.shape[0] if index.ndim > 1 else 2
            classes = jnp.bincount(pred, weights=likelihood.counted(y, w).astype(jnp.int32), length=k)
        return statistics(params, (index, None, aux[2]), None, data), norm, classes

    if multi:
        init = jax.vmap(init, in_axes=(0, None, None, None, None))
        chunk = jax.vmap(chunk, in_axes=(0, None))
        evaluate = jax.vmap(evaluate, in_axes=(0, None))
    return init, chunk, evaluate, columns


@functools.lru_cache(maxsize=64)
def _programs(*config):
    """Build (init, chunk, evaluate, columns) for one static configuration (the arguments of
    ``_parts``); jit caches by shapes. The fit itself runs ``_fused``'s programs; these serve a fit
    interrupted before its first chunk or mid-way, and tests."""
    init, chunk, evaluate, columns = _parts(*config)
    # init and evaluate are kept on disk (programs.py): a warm process does not trace them
    return (programs.kept(jax.jit(init, static_argnums=(3, 4)), "init", config, 2), jax.jit(chunk),
            programs.kept(jax.jit(evaluate), "evaluate", config), columns)


def _chosen(carry, es):
    """The parameters ``assemble`` returns for each start: the last finite ones after a divergence,
    the best recorded ones with ``restore_best``, else the current ones (as ``assemble._status``)."""
    use = carry["best_params"] if (es is not None and es.restore_best) else carry["params"]
    bad = carry["bad_step"] >= 0
    return jax.tree.map(lambda a, b: jnp.where(bad.reshape(bad.shape + (1,) * (a.ndim - bad.ndim)), a, b),
                        carry["last_good"], use)


@functools.lru_cache(maxsize=64)
def _fused(*config):
    """The programs a fit runs (issue 14: fewer programs to trace, lower and compile per fit):

    - ``more(carry, data, last) -> (carry, stats, final, stop)``: one chunk; ``stop`` says the fit is
      over (``last`` chunk, or every start stopped when masked) and then ``final`` holds ``evaluate``'s
      numbers at the returned parameters (a ``lax.cond``: other chunks skip it);
    - ``first(seed, start, learning_rate, data, last, n_features, n_outputs, restarts)``: the start
      (keys from the seed, ``init``) and the first chunk in one program, for fits that end within a
      chunk (a small fit, second-order methods): one program per fit instead of three."""
    init, chunk, evaluate, _ = _parts(*config)
    es, masked, multi = config[7], config[8], config[11]

    def finish(carry, data, last):
        stop = last | jnp.all(carry["stopped"]) if masked else last
        params = _chosen(carry, es)
        shapes = []  # evaluate's output, seen while lax.cond traces the true branch (it traces that one first)

        def run():
            out = evaluate(params, data)
            shapes.append(jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), out))
            return out

        def skip():  # zeros of evaluate's shapes, without tracing it a second time
            like = shapes[0] if shapes else jax.eval_shape(evaluate, params, data)
            return jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), like)

        return lax.cond(stop, run, skip), stop

    def more(carry, data, last):
        new, stats = chunk(carry, data)
        return (new, stats) + finish(new, data, last)

    def begin(seed, start, learning_rate, n_features, n_outputs, restarts):
        key = jax.random.key(seed)
        keys = jax.random.split(key, restarts) if multi else key
        return init(keys, start, learning_rate, n_features, n_outputs)

    def first(seed, start, learning_rate, data, last, n_features, n_outputs, restarts):
        # the barrier keeps XLA from fusing the start into the first steps, so the numbers are those of
        # a separate start program bit for bit (a chunked fit starts with one: tests/test_progress.py)
        return more(lax.optimization_barrier(begin(seed, start, learning_rate, n_features, n_outputs, restarts)),
                    data, last)

    # kept on disk (programs.py): a warm process loads them instead of tracing; the statistics' names
    # (filled while ``chunk`` is traced) are kept with them
    columns = _parts(*config)[3]
    return (programs.kept(jax.jit(first, static_argnums=(5, 6, 7)), "first", config, 3, columns),
            programs.kept(jax.jit(more), "more", config, 0, columns),
            programs.kept(jax.jit(begin, static_argnums=(3, 4, 5)), "begin", config, 3))


CHUNKS = 50  # a fit runs in about this many chunks: the bar moves and Ctrl-C is caught between them
SMALL_WORK = 1e7  # steps x rows x features x starts below which a fit without a bar is one chunk
MAX_CHUNK_STEPS = 10_000  # and at most this many steps per chunk: a long fit still answers Ctrl-C soon


def _chunk_records(n_records: int, progress: bool, es: EarlyStopping | None, second_order: bool = False,
                   work: float = math.inf, record_every: int = 1) -> int:
    """About ``CHUNKS`` chunks of at most ``MAX_CHUNK_STEPS`` steps, so that a progress bar moves and
    Ctrl-C (caught between chunks) keeps the work done so far with or without a bar; one chunk for a
    small fit without a bar (``work`` below ``SMALL_WORK``: it ends before a Ctrl-C would matter). A
    length that divides the records where one is near, so that the loop needs no masking. At most
    ``max(patience, 50)`` records per chunk, so an early stop ends the loop soon after it happens."""
    if second_order and es is None and not progress:
        return min(n_records, 16)  # second-order fits end in few steps: look for the end between short chunks
    if not progress and work < SMALL_WORK:
        chunk = n_records
    else:
        most = max(1, MAX_CHUNK_STEPS // record_every)
        chunk = _near_divisor(n_records, min(math.ceil(n_records / CHUNKS), most), most)
    if es is not None:
        chunk = min(chunk, max(es.patience, 50))
    return max(1, chunk)


def _near_divisor(n: int, want: int, most: int) -> int:
    """The smallest divisor of ``n`` in ``want..min(2 want, most)``, else ``want`` (the last chunk is then masked)."""
    return next((c for c in range(want, min(n, 2 * want, most) + 1) if n % c == 0), want)


def fit(model: Any, likelihood: Likelihood, x: Any = None, y: Any = None, *, valid: Any = None,
        optimizer: Any = "auto", learning_rate: float | None = None, steps: int = 1000, seed: int = 0,
        record_every: int = 1, restarts: int = 1, early_stopping: EarlyStopping | None = None,
        dtype: str = "auto", tol: float = 1e-8, standardize: bool | None = None, penalty: Any = None,
        progress: bool = False,
        throw: bool = False, init_params: Any = None, config: FitConfig | None = None, weights: Any = None,
        offset: Any = None, exposure: Any = None, formula: str | None = None, data: Any = None) -> Outcome:
    """Maximize the mean log-likelihood of ``y`` given ``model(params, x)`` with a compiled loop.

    Parameters
    ----------
    model : sf.Linear(), sf.MLP(...), sf.Function(...), sf.Module(...) or a flax NNX module.
    likelihood : sf.Gaussian(), sf.Bernoulli() or sf.Categorical().
    x : array of shape (n, d) or (n,), or a pandas DataFrame (its columns name the coefficients).
    y : array of shape (n,): numbers (Gaussian), 0/1 or bool (Bernoulli), labels 0..K-1 (Categorical),
        counts (Poisson, NegativeBinomial).
    formula, data : instead of x and y, a Wilkinson formula such as "y ~ x1 + C(region) + np.log(z)"
        (formulaic) and the DataFrame it reads; ``predict`` re-applies it to new frames.
    weights : frequency weights, shape (n,) (or a column name of ``data``): a weight of 2 counts the
        row twice, for the estimates and their standard errors.
    offset, exposure : count models: added to the index (``offset``), or ``log(exposure)``.
    valid : optional (x_valid, y_valid) with the same columns, or (x_valid, y_valid, {"weights": ...,
        "offset": ..., "exposure": ...}), or with a formula a DataFrame; its statistics join the history.
    optimizer : "auto" (default: "newton" for sf.Linear() with a built-in likelihood, the exact
        maximum-likelihood estimate; "adam" otherwise), "gd" (params + learning_rate * gradient, the
        notebook's step), an optax name such as "rmsprop", an optax.GradientTransformation, or
        "newton" / "lbfgs" (full batch; converged when the Newton decrement or gradient is below ``tol``).
    learning_rate : step size of a first-order optimizer; default 0.1 for "gd"/"sgd", 0.01 otherwise.
    steps : number of steps (the upper bound with early stopping or second-order methods).
    seed : starting parameters come from jax.random.key(seed); same seed, same numbers.
    record_every : record statistics every this many steps (steps must be a multiple).
    restarts : independent starts run together (vmap); the best by valid (else train) objective is kept.
    early_stopping : sf.EarlyStopping(...) to stop inside the loop when the monitor stalls.
    dtype : "auto" (default: "float64" for newton and lbfgs, "float32" for first-order training),
        "float32" or "float64" (enabled for this fit only).
    standardize : fit built-in models (Linear, MLP) on standardized columns ``(x - mean) / std``, a
        diagonal preconditioning; parameters, coefficient paths, summaries, predictions and saved
        models stay on the original scale. None (default): on for built-in models, off for user
        models; False reproduces a fit on the raw columns (the notebook's settings).
    penalty : sf.ElasticNet(alpha, l1_ratio): maximize the mean log-likelihood minus
        ``alpha * (l1_ratio * |b|_1 + (1 - l1_ratio) / 2 * |b|^2)`` over the slopes (user's scale; no
        intercepts, no biases). Ridge (l1_ratio=0) takes every optimizer ("auto": Newton); an L1 part
        takes "proximal" (the default for Linear) or "gd". Penalized fits have no classical standard errors.
    progress : show a progress bar (the loop then runs in chunks; the numbers do not change).
    throw : raise FitError instead of warning when the fit diverges.
    init_params : start from these parameters (a pytree like ``result.params``) instead of
        drawing them from ``seed``; every restart then starts there.
    config : a ready FitConfig; when given it replaces the keyword options above.

    Data beyond memory and minibatches (``docs/scale.md``): ``x=sf.Parquet(path, target="y", ...)`` reads a
    Parquet file, directory or glob in chunks (newton, lbfgs, gd and optax optimizers, one pass over the data
    a step; ``valid=sf.Parquet(...)``); ``batch_size=`` and ``epochs=`` train any model on minibatches of
    arrays or a Parquet source with a first-order optimizer (``steps`` is then set by them); with several
    devices or ``sf.distributed.initialize(...)`` the chunks are spread over devices and processes.

    Example
    -------
    >>> import scanfit as sf
    >>> d = sf.datasets.hill(seed=0)
    >>> r = sf.fit(sf.MLP(hidden=2), sf.Bernoulli(), d.train.x, d.train.y, valid=(d.valid.x, d.valid.y),
    ...            optimizer="rmsprop", learning_rate=0.01, steps=4000, seed=0)
    >>> r.history["valid_accuracy"].iloc[-1] > 0.95
    True
    """
    model, config = settle(model, likelihood, config, optimizer=optimizer, learning_rate=learning_rate, steps=steps,
                           record_every=record_every, restarts=restarts, seed=seed, early_stopping=early_stopping,
                           dtype=dtype, tol=tol, standardize=standardize, penalty=penalty)
    given = inputs.prepare(model, likelihood, config, x, y, valid=valid, weights=weights, offset=offset,
                           exposure=exposure, formula=formula, data=data)
    if config.early_stopping is not None:
        config.early_stopping.check(likelihood)
    data_mod.check_labels(given.ya, likelihood)  # before a Categorical() compiles for classes it inferred
    check_size(given.model, given.likelihood, config, *given.xa.shape)
    inputs.check_exact_fit(given, config)
    with dtype_scope(config.dtype), CtrlC():  # Ctrl-C stops the loop between chunks, never JAX mid-compile
        init_params = check_model(model, given.likelihood, given.xa.shape, init_params)
        return _run(given.model, config, given, progress, throw, init_params)


def _columns(model, x, dtype, rows: int):
    """``x`` (n, d) as the model reads it, in NumPy (``layout``'s ``jnp.asarray`` compiles a small
    program per shape): ``model.columns_of(x)`` for built-in models, padded with zero columns up to
    ``rows`` (the row of ones too, so a padded row's index is 0 for ``Linear``)."""
    x = np.asarray(x, dtype=dtype)
    if not model.columns:
        return x
    return inputs.pad(np.ascontiguousarray(model.columns_of(x)), rows, axis=1)


def _seed(seed: int):
    """The seed as the array ``jax.random.key`` would make of it (int64 under float64, else int32), or
    None when it does not fit (the keys are then made outside the program, as before)."""
    dt = np.int64 if jax.config.jax_enable_x64 else np.int32
    return np.asarray(seed, dt) if np.iinfo(dt).min <= seed <= np.iinfo(dt).max else None


def _run(model, config, given, progress, throw, init_params=None):
    es = config.early_stopping
    likelihood, design, xa, vdata = given.likelihood, given.design, given.xa, given.valid
    names = design.names
    n_records = config.steps // config.record_every
    second_order = config.optimizer in optimizers.SECOND_ORDER
    chunk_records = _chunk_records(n_records, progress, es, second_order,
                                   work=float(config.steps) * xa.size * config.restarts,
                                   record_every=config.record_every)
    n_chunks = math.ceil(n_records / chunk_records)
    masked = (n_chunks * chunk_records != n_records or es is not None or second_order)
    multi = config.restarts > 1
    pscale = design.scale if (config.penalty is not None and design.standardized) else None
    # rows padded to a shared size (built-in models: their index is row by row), so that fits of nearby
    # sizes reuse one compiled program; padded rows count for nothing (see inputs.target)
    rows = inputs.padded_rows(len(xa), xa.shape[1]) if model.columns else len(xa)
    data = {"x": _columns(model, design.apply(xa), config.dtype, rows),
            "y": inputs.target(given.yenc, given.weights, given.offset, config.dtype, pscale, rows=rows,
                               likelihood=likelihood)}
    if vdata is not None:
        vrows = inputs.padded_rows(len(vdata[0]), xa.shape[1]) if model.columns else len(vdata[0])
        data.update(vx=_columns(model, design.apply(vdata[0]), config.dtype, vrows),
                    vy=inputs.target(vdata[2], vdata[3], vdata[4], config.dtype, rows=vrows, likelihood=likelihood))
    if design.standardized:
        data.update(center=np.asarray(design.center, config.dtype), scale=np.asarray(design.scale, config.dtype))
    data = jax.device_put(data)
    static = (model, likelihood, config.optimizer, config.tol, config.record_every, chunk_records, config.steps, es,
              masked, vdata is not None, names, multi, data_mod.FullBatch(), design.standardized, config.penalty)
    init, chunk, evaluate, columns = _programs(*static)
    first, more, begin = _fused(*static)
    seed = _seed(config.seed)
    # a fit that likely ends within its first chunk starts inside that chunk's program
    fused_start = (n_chunks == 1 or second_order) and seed is not None
    n_features, n_outputs = xa.shape[1], likelihood.n_outputs
    start = time.perf_counter()
    try:
        start_params = None if init_params is None else jax.tree.map(lambda a: np.asarray(a, np.float64), init_params,
                                                                      is_leaf=lambda a: isinstance(a, list))
        if start_params is not None and design.standardized:
            start_params = model.to_standard(start_params, design.center, design.scale)
        if start_params is None and config.optimizer == "newton":
            start_params = raw_newton_start(model, likelihood, given, design, config, n_features)
        if start_params is not None:
            start_params = jax.tree.map(lambda a: np.asarray(a, config.dtype), start_params)
        if fused_start:  # the start is built inside the first chunk's program
            if not model.columns:  # a user model's: check it builds (shapes only; scanfit's own always do)
                jax.eval_shape(lambda s, p, r: _parts(*static)[0](
                    jax.random.split(jax.random.key(s), config.restarts) if multi else jax.random.key(s),
                    p, r, n_features, n_outputs), seed, start_params, config.learning_rate)
            carry = None
        elif seed is not None:  # the keys made inside the start's program (no eager key programs)
            carry = begin(seed, start_params, config.learning_rate, n_features, n_outputs, config.restarts)
        else:
            key = jax.random.key(config.seed)
            keys = jax.random.split(key, config.restarts) if multi else key
            carry = init(keys, start_params, config.learning_rate, n_features, n_outputs)
    except Exception as err:  # a user model whose init does not fit the data
        raise ValueError(f"The model could not build its parameters for x with {n_features} features: {err}") from err
    pieces, interrupted = [], False
    bar = _progress_bar(progress, config.steps)
    # the carry, how many pieces belong to it and the final statistics when it ended the fit: one
    # assignment, so a Ctrl-C keeps a consistent triple
    done = (carry, 0, None)
    try:
        with bar:
            for c in range(n_chunks):
                if CtrlC.pressed:  # the first Ctrl-C (see fit): stop here, with the chunks done so far
                    break
                last = np.asarray(c == n_chunks - 1)
                if done[0] is None:
                    new, stats, final, stop = first(seed, start_params, config.learning_rate, data, last,
                                                    n_features, n_outputs, config.restarts)
                else:
                    new, stats, final, stop = more(done[0], data, last)
                stop = bool(stop)  # waits for the chunk (one at a time, not all queued): Ctrl-C is seen soon
                pieces.append(stats)
                done = (new, len(pieces), final if stop else None)
                bar.advance(min(config.steps, (c + 1) * chunk_records * config.record_every))
                if stop:
                    break
    except KeyboardInterrupt:
        interrupted = True
    interrupted = interrupted or CtrlC.pressed  # a press during the last chunk leaves a finished fit
    carry, kept, final = done
    if carry is None:  # interrupted before the first chunk: the start alone
        key = jax.random.key(config.seed)
        carry = init(jax.random.split(key, config.restarts) if multi else key, start_params, config.learning_rate,
                     n_features, n_outputs)
    del pieces[kept:]
    carry = jax.device_get(carry)
    pieces = [{k: p[..., j] for j, k in enumerate(columns)} for p in jax.device_get(pieces)]
    seconds = time.perf_counter() - start
    run = Run(model, config, given, data, evaluate, carry, pieces, interrupted, seconds,
              None if final is None else jax.device_get(final))
    return assemble(run, throw)
