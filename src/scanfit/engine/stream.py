"""Fits on a chunked source (``sf.Parquet``): every step is one pass over the data.

``fit`` with a source where ``x`` goes runs the full-batch methods exactly as in memory, with the
data read in chunks (``engine.passes``): ``"newton"`` (the default for ``Linear`` with a built-in
likelihood; its information is ``X'WX`` summed over the chunks), ``"lbfgs"`` (SciPy's L-BFGS-B, one
pass per evaluation), ``"gd"`` and the optax optimizers (one full-batch step per pass). Memory is
bounded by the chunk size (``batch_rows``), not by the row count. The history has one row per pass
at the step's parameters. Newton converges on the decrement as in memory, takes one last full step
and evaluates it in a final pass that also gives the standard errors' pieces (the information and
the scores' outer products, transformed to the user's scale): ``summary()`` needs no data.

Newton's passes for ``Linear`` with a scalar GLM family (``_Fit.newton``): float32 steps on a
sample of the rows (large data, ``warm_start``) or on all of them while far from the maximum; then
float64 "score" passes (no ``X'WX``) with the last float32 information held and updated by BFGS;
the final pass; one exact Newton step from its information (``polish``). docs/scale.md has the why.
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..data.design import Design
from ..data.precision import dtype_scope
from ..data.sources import is_source
from ..likelihoods import streamed as lstats
from ..likelihoods.base import Likelihood
from ..likelihoods.glm import glm_family, has_mle, null_intercept
from ..models.checks import check_size
from . import distributed, inputs, optimizers, stream_checks
from .assemble import column_order
from .config import FitConfig, settle
from .outcome import FitError, FitWarning, Outcome, Status
from .feeder import Feeder, mesh_of
from .native_pass import applies
from .null_model import null_objectives, with_null
from .passes import GLM_KINDS, run_pass
from .progress import CtrlC, progress_bar
from .stream_newton import NewtonSteps
from .second_order import _glm_apply, apply_updates

__all__ = ["fit", "STREAMED"]

STREAMED = ("newton", "lbfgs")  # besides "gd" and the optax names (full-batch first-order steps)


def _relative(source):
    """A source's files relative to its path (another machine may mount the same data elsewhere)."""
    files = getattr(source, "files", None)
    return None if files is None else [os.path.relpath(f, source.path) for f in files]


def _refuse(name, value, why):
    if value is not None:
        raise ValueError(f"The '{name}' parameter of fit is not available with a streamed source (sf.Parquet): "
                         f"{why}")


def fit(model: Any, likelihood: Likelihood, source, y=None, *, valid=None, optimizer="auto", learning_rate=None,
        steps: int = 1000, seed: int = 0, record_every: int = 1, restarts: int = 1, early_stopping=None,
        dtype: str = "auto", tol: float = 1e-8, standardize=None, penalty=None, progress: bool = False,
        throw: bool = False, init_params=None, config: FitConfig | None = None, weights=None, offset=None,
        exposure=None, formula=None, data=None, devices=None) -> Outcome:
    """``scanfit.fit`` for a source (see the module docstring); the other arguments are fit's."""
    if y is not None:
        raise TypeError("With sf.Parquet(...) in place of x, y is a column of the files: give its name as "
                        "sf.Parquet(path, target='y') and leave fit's y out.")
    for name, value, why in (("weights", weights, "name the column in sf.Parquet(..., weights='w')."),
                             ("offset", offset, "name the column in sf.Parquet(..., offset='col')."),
                             ("exposure", exposure, "name the column in sf.Parquet(..., exposure='col')."),
                             ("formula", formula, "give sf.Parquet the feature columns (features=[...])."),
                             ("data", data, "the source is the data.")):
        _refuse(name, value, why)
    model, config = settle(model, likelihood, config, optimizer=optimizer, learning_rate=learning_rate, steps=steps,
                           record_every=record_every, restarts=restarts, seed=seed, early_stopping=early_stopping,
                           dtype=dtype, tol=tol, standardize=standardize, penalty=penalty)
    _refuse("penalty", config.penalty, "penalized fits read the data in memory; pass arrays.")
    for part in (source, valid):  # as fit's own offset= and exposure= (data.design.check_offset)
        which = next((k for k in ("offset", "exposure") if getattr(part, k, None) is not None), None)
        if is_source(part) and which and not getattr(likelihood, "takes_offset", False):
            raise ValueError(f"sf.Parquet(..., {which}={getattr(part, which)!r}) applies to count models (sf.Poisson(), "
                             f"sf.NegativeBinomial()); the {type(likelihood).__name__} likelihood takes none.")
    if config.early_stopping is not None:
        raise ValueError("The 'early_stopping' parameter of fit is not available with a streamed exact fit: newton "
                         "and lbfgs stop at the maximum.")
    if config.restarts > 1:
        raise ValueError(f"The 'restarts' parameter of fit ({config.restarts}) is not available with a streamed "
                         f"full-batch fit; use restarts=1.")
    if config.optimizer == "proximal":
        raise ValueError("optimizer='proximal' is not available with a streamed source; use 'newton' or 'lbfgs'.")
    if not (config.optimizer in STREAMED or config.optimizer in optimizers.NAMES
            or not isinstance(config.optimizer, str)):
        raise ValueError(f"The 'optimizer' parameter of fit: {config.optimizer!r} does not stream.")
    proc, count = distributed.process_index(), distributed.process_count()
    if count > 1:  # the same fit in every process, before any other collective
        parts = [source, valid]
        distributed.same_everywhere(repr([(_relative(s), getattr(s, "features", None), getattr(s, "target", None),
                                           getattr(s, "weights", None), getattr(s, "offset", None),
                                           getattr(s, "exposure", None), getattr(s, "batch_rows", None)) for s in parts]
                                         + [repr(model), repr(likelihood), optimizers.label(config.optimizer),
                                            config.steps, config.tol, config.dtype, config.standardize, config.seed]),
                                    "data or fit options")
    source = source.shard(proc, count).aligned()  # chunks cut along the files' row groups
    files = getattr(valid, "files", None)
    if is_source(valid) and (files is None or len(files) >= count):  # else every process reads all of valid
        valid = valid.shard(proc, count)
    valid = valid.aligned() if is_source(valid) else valid
    mesh = mesh_of(devices) if devices is not None or len(jax.local_devices()) > 1 else None
    with dtype_scope(config.dtype), CtrlC():
        return _Fit(model, likelihood, source, valid, config, mesh, progress, throw, init_params).run()


class _Fit(NewtonSteps):
    def __init__(self, model, likelihood, source, valid, config, mesh, progress, throw, init_params):
        self.model, self.config, self.progress, self.throw = model, config, progress, throw
        self.source, self.init_params = source, init_params
        self.feeder = Feeder(source, likelihood, config.dtype, mesh=mesh)
        every = self.sample_every(model, glm_family(model, likelihood), config, init_params, source.n_rows)
        self.moments = self.feeder.describe(moments_every=every)
        self.lik = self.feeder.likelihood
        self.family = glm_family(model, self.lik)
        self.mle = has_mle(model, self.lik)
        check_size(model, self.lik, config, 1, len(source.features))  # its parameters (the rows are streamed)
        inputs.refuse_few_rows(model, self.lik, config, len(source.features), int(self.moments.rows))
        centered = getattr(model, "intercept", True)
        if config.standardize:
            center, scale = self.moments.center_scale(centered)
            self.design = Design(source.features, center, scale)
            self.center, self.scale = jnp.asarray(center, config.dtype), jnp.asarray(scale, config.dtype)
        else:
            self.design, self.center, self.scale = Design(source.features), None, None
        self.valid = None
        if valid is not None:
            if not is_source(valid):
                raise TypeError(f"With a streamed source, 'valid' must be sf.Parquet(...) too. Got "
                                f"{type(valid).__name__}.")
            if tuple(valid.features) != tuple(source.features):
                valid = valid.with_features(source.features)
            self.valid = Feeder(valid, self.lik, config.dtype, mesh=mesh, part="valid")
            self.valid_moments = self.valid.describe()
        self.passes = self.sample_passes = 0
        self.jits = _jits(model, self.lik, self.family, self.design.names, self.center is not None, config.dtype)
        # Newton's passes in native code (engine.native_pass): the parameters stay NumPy arrays
        self.host = config.optimizer == "newton" and applies(self.feeder, model, self.lik, self.family, config.dtype)

    # ----------------------------------------------------------------- passes
    def evaluate(self, params, kind):
        self.passes += 1
        family = self.family if kind in GLM_KINDS else None
        return run_pass(self.feeder, self.model, self.lik, kind, family, params, self.center, self.scale,
                        self.config.dtype)

    def row(self, step, params, sums) -> dict:
        out = {"step": step}
        out.update({f"train_{k}": v for k, v in self.stats(sums).items()})
        if self.valid is not None:
            vs = run_pass(self.valid, self.model, self.lik, "value", None, params, self.center, self.scale,
                          self.config.dtype)
            out.update({f"valid_{k}": v for k, v in self.stats(vs).items()})
        _, summaries = self.jits.user(params, self.center, self.scale)
        out.update({k: float(v) for k, v in jax.device_get(summaries).items()})
        return out

    def stats(self, sums) -> dict:
        means = jnp.asarray(sums["terms"] / sums["weight"], self.config.dtype)
        return {k: float(v) for k, v in jax.device_get(self.jits.stats(means)).items()}

    def to_user(self, params):
        return self.jits.user(params, self.center, self.scale)[0]

    def start(self):
        d, k = len(self.source.features), self.lik.n_outputs
        if self.init_params is not None:
            params = jax.tree.map(lambda a: jnp.asarray(a, self.config.dtype), self.init_params)
            if self.center is not None:
                params = self.model.to_standard(params, self.center, self.scale)
            if self.lik.extra_params:
                params = {**self.lik.init_extra(), **params}
            return jax.tree.map(lambda a: jnp.asarray(a, self.config.dtype), params)
        null = self._null_intercept()
        if null is not None and self.host:  # NumPy parameters for the native passes: no program to load
            return {"beta0": np.asarray(null, np.float64), "beta1": np.zeros(d)}
        params = self.jits.init(jax.random.key(self.config.seed), d, k)
        if null is not None:  # Newton from the intercept-only model: a step closer than a random start
            params = {"beta0": jnp.asarray(null, self.config.dtype), "beta1": jnp.zeros_like(params["beta1"])}
        return params

    def _null_intercept(self):
        """The intercept-only model's intercept (a Newton start for a GLM with an intercept), or None."""
        m, name = self.moments, self.lik.name
        if (self.config.optimizer != "newton" or self.family is None or not getattr(self.model, "intercept", False)
                or self.source.offset is not None or self.source.exposure is not None):
            return None
        if name in ("gaussian", "poisson", "bernoulli"):
            return null_intercept(self.lik, float(m.y_mean))
        shares = m.classes / m.weight
        return np.log(np.maximum(shares, 1e-300)) if np.all(shares > 0) else None

    # ----------------------------------------------------------------- methods
    def run(self) -> Outcome:
        t0 = time.perf_counter()
        params = self.start()
        rows, interrupted = [], False
        bar = progress_bar(self.progress, self.config.steps)
        try:
            with bar:
                if self.config.optimizer == "newton":
                    params, sums, status = self.newton(params, rows, bar)
                elif self.config.optimizer == "lbfgs":
                    params, sums, status = self.lbfgs(params, rows, bar)
                else:
                    params, sums, status = self.first_order(params, rows, bar)
        except KeyboardInterrupt:
            interrupted = True
        if interrupted or CtrlC.pressed:
            if not hasattr(self, "last"):
                raise KeyboardInterrupt
            params, sums = self.last
            status = Status("interrupted", len(rows), "Stopped by the user (Ctrl-C); the history holds the passes "
                            "run so far.")
        if self.mle and "meat" not in sums:  # the pieces of the standard errors, at the returned parameters
            sums = self.evaluate(params, "final")
        if not interrupted:
            status = stream_checks.separation(self, sums, status)  # does the maximum exist?
        return self.outcome(params, sums, rows, status, time.perf_counter() - t0)

    def record(self, rows, step, params, sums, bar):
        self.last = (params, sums)
        if step % self.config.record_every == 0:
            rows.append(self.row(step, params, sums))
        bar.advance(min(step + 1, self.config.steps))
        if CtrlC.pressed:
            raise KeyboardInterrupt

    def _converged(self, step):
        crit = ("the Newton decrement" if self.config.optimizer == "newton" else "the gradient norm")
        warm = (f", after {self.sample_passes} float32 steps on a sample of the rows"
                if self.sample_passes else "")
        return Status("converged", step, f"Converged at step {step}: {crit} is below tol={self.config.tol:g} "
                      f"({self.passes} passes over the data{warm}).")

    def apply(self, params, t, direction):
        if self.host:  # NumPy in, NumPy out (a scalar GLM family's step is two additions)
            return _glm_apply(self.family, params, float(t), np.asarray(direction, np.float64))
        return self.jits.apply(params, jnp.asarray(t, self.config.dtype), jnp.asarray(direction, self.config.dtype))

    def lbfgs(self, params, rows, bar):
        from jax.flatten_util import ravel_pytree
        from scipy import optimize

        cfg, W = self.config, self.moments.weight
        theta0, unravel = ravel_pytree(params)
        cache = {}
        counter = [0]

        def fun(th):
            p = unravel(jnp.asarray(th, theta0.dtype))
            sums = self.evaluate(p, "grad")
            cache["last"] = (p, sums)
            g, _ = ravel_pytree(sums["grad"])
            value = sums["terms"][0] / W
            self.record(rows, counter[0], p, sums, bar)
            counter[0] += 1
            return -value, -np.asarray(g, np.float64) / W

        res = optimize.minimize(fun, np.asarray(theta0, np.float64), jac=True, method="L-BFGS-B",
                                options={"maxiter": cfg.steps, "maxfun": cfg.steps + 20, "gtol": cfg.tol,
                                         "ftol": 0.0})
        p = unravel(jnp.asarray(res.x, theta0.dtype))
        sums = self.evaluate(p, "grad")
        g, _ = ravel_pytree(sums["grad"])
        gnorm = float(np.linalg.norm(np.asarray(g) / W))
        if gnorm < cfg.tol * max(1.0, abs(sums["terms"][0] / W)):
            status = self._converged(counter[0])
        elif res.nit >= cfg.steps or counter[0] >= cfg.steps:
            status = Status("max_steps", cfg.steps, f"Reached steps={cfg.steps} before converging; increase steps.")
        else:
            status = Status("stalled", counter[0], f"Stalled after {counter[0]} passes: L-BFGS could not raise the "
                            f"objective further ({res.message}); the gradient norm {gnorm:.2g} is above tol.")
        return p, sums, status

    def first_order(self, params, rows, bar):
        cfg, W = self.config, self.moments.weight
        tx = optimizers.resolve(cfg.optimizer, cfg.learning_rate)
        state = tx.init(params)
        update = jax.jit(lambda g, s, p: tx.update(g, s, p))
        sums = None
        for step in range(cfg.steps):
            sums = self.evaluate(params, "grad")
            self.record(rows, step, params, sums, bar)
            if not np.isfinite(sums["terms"][0]):
                return params, sums, (Status.not_finite_at_start(cfg, self.model) if step == 0 else
                                      Status.diverged(step, cfg.learning_rate, cfg.optimizer))
            neg = jax.tree.map(lambda g: -jnp.asarray(g, cfg.dtype) / W, sums["grad"])
            updates, state = update(neg, state, params)
            params = apply_updates(params, updates)
        sums = self.evaluate(params, "value")
        return params, sums, Status("completed", cfg.steps, f"Ran all {cfg.steps} steps of "
                                    f"{optimizers.label(cfg.optimizer)} (one pass over the data per step).")

    # ----------------------------------------------------------------- the record
    def outcome(self, params, sums, rows, status, seconds) -> Outcome:
        cfg, lik = self.config, self.lik
        final = {f"train_{k}": v for k, v in self.stats(sums).items()}
        if self.valid is not None:
            vs = run_pass(self.valid, self.model, lik, "value", None, params, self.center, self.scale, cfg.dtype)
            final.update({f"valid_{k}": v for k, v in self.stats(vs).items()})
        valid = None if self.valid is None else (self.valid, self.valid_moments)
        final = with_null(final, null_objectives(lik, (self.feeder, self.moments), valid))
        final = {k: final[k] for k in column_order(lik, final)}
        user = jax.tree.map(lambda a: np.asarray(a), self.to_user(params))
        history = pd.DataFrame(rows)
        if len(history):
            history = history[["step"] + column_order(lik, [c for c in history.columns if c != "step"])]
        inference = self.inference(sums, final) if self.mle and "meat" in sums else None
        outcome = Outcome(model=self.model, likelihood=lik, config=cfg, params=user, history=history, status=status,
                          feature_names=self.design.names, final=final, seconds=seconds, start_histories=[history],
                          start_params=[user], start_statuses=[status], start_finals=[final], train=None,
                          valid=None, design=self.design, inference=inference)
        if status.code in ("diverged", "separation", "stalled"):
            if self.throw:
                raise FitError(status.message)
            warnings.warn(status.message, FitWarning, stacklevel=4)
        return outcome

    def inference(self, sums, final) -> dict:
        """The final pass's information, scores' outer products and gradient, on the user's scale
        (coefficients in Newton's GLM order, then the likelihood's own parameters)."""
        info, meat, g = sums["h"], sums["meat"], sums["g"]
        if self.center is not None:
            a_inv = self._to_user_map(len(g))
            info, meat, g = a_inv.T @ info @ a_inv, a_inv.T @ meat @ a_inv, a_inv.T @ g
        W = sums["weight"]
        value = sums["terms"][0]
        return {"info": info, "meat": meat, "gradient": g, "n_obs": W, "value": value,
                "llnull": final.get("train_null_objective", np.nan) * W, "family": self.family}

    def _to_user_map(self, p):
        """``A^-1`` with ``theta_std = A^-1 theta_user``: information on the user's scale is
        ``A^-T info A^-1`` (``x_std = (x - c) / s``)."""
        c, s = np.asarray(self.center, np.float64), np.asarray(self.scale, np.float64)
        intercept = getattr(self.model, "intercept", True)
        q = len(c) + intercept
        block = np.zeros((q, q))
        if intercept:
            block[0, 0] = 1.0
            block[0, 1:] = c  # b0_std = b0 + c . b1
        block[intercept:, intercept:] = np.diag(s)  # b1_std = s * b1
        k = self.lik.n_classes - 1 if self.family == "categorical" else 1
        out = np.eye(p)
        out[:k * q, :k * q] = np.kron(np.eye(k), block)
        return out


class _Jits(NamedTuple):
    init: Any
    user: Any
    stats: Any
    apply: Any


@functools.lru_cache(maxsize=32)
def _jits(model, lik, family, names, standardized, dtype) -> _Jits:
    """The small programs around the passes, compiled once per model, likelihood and columns (as
    eager JAX operations they would compile one small program each)."""
    from jax.flatten_util import ravel_pytree

    def init(key, d, k):
        params = model.init(key, d, k)
        if lik.extra_params:
            params = {**lik.init_extra(), **params}
        return jax.tree.map(lambda a: jnp.asarray(a, dtype), params)

    def user(params, center, scale):
        raw = model.from_standard(params, center, scale) if standardized else params
        return raw, {**model.summaries(raw, names), **lik.summaries(raw)}

    def stats(means):
        return lstats.from_means_jax(lik, means)

    def apply(params, t, direction):
        if family is not None:
            return _glm_apply(family, params, t, direction)
        theta, unravel = ravel_pytree(params)
        return unravel(theta + t * direction)

    return _Jits(jax.jit(init, static_argnums=(1, 2)), jax.jit(user), jax.jit(stats), jax.jit(apply))
