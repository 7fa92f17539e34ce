"""Newton's steps on a chunked source (``engine.stream``'s ``_Fit`` inherits them).

For ``Linear`` with a scalar GLM family and a float64 fit: float32 steps on a sample of the rows
(large data, ``warm_start``) or on all of them while far from the maximum ("rough" passes); then
float64 "score" passes (the objective and the gradient, no ``X'WX``) with the last float32
information held and updated by BFGS (``_secant``); when the predicted gain is below the stopping
level, a last step and the final pass (the information and the scores' outer products); one exact
Newton step from that information (``polish``). Other models: float64 Newton passes throughout.
docs/scale.md explains the choices and what they cost.
"""

from __future__ import annotations

import numpy as np

from . import distributed
from .outcome import Status
from .passes import SCALAR_FAMILIES, run_pass
from .second_order import ARMIJO, MAX_HALVINGS

__all__ = ["NewtonSteps", "ROUGH_UNTIL", "SAMPLE_ROWS"]

ROUGH_UNTIL = 1e-6  # Newton's float32 passes end when the gain a step predicts is below this (relative)
SAMPLE_ROWS = 1_000_000  # Newton's first float32 steps run on a sample of about this many rows (from this many: a quarter)


class NewtonSteps:
    """Newton's method over passes; the host class gives ``evaluate``, ``record``, ``apply``,
    ``_converged``, ``feeder``, ``moments``, ``config`` and the model's pieces."""

    def newton(self, params, rows, bar):
        cfg, W = self.config, self.moments.weight
        # far from the maximum, float32 passes ("rough") find the direction, on a sample of the rows
        # first when the data are large; float64 passes finish, with the last float32 information held
        # ("score" passes: the objective and the gradient, no X'WX) while it keeps the steps full
        rough = (self.family in SCALAR_FAMILIES and self.model.name == "linear" and cfg.dtype == "float64")
        held = None
        if rough and self.init_params is None:
            params, held = self.warm_start(params)
            rough = held is None
        sums = self.evaluate(params, "score" if held is not None else "rough" if rough else "newton")
        gain = None  # the last gain predicted with the held information
        for step in range(cfg.steps):
            self.record(rows, step, params, sums, bar)
            value, g = sums["terms"][0] / W, sums["g"] / W
            if held is not None and "h" in sums:  # a fresh float32 information replaces the held one
                held = sums["h"] / W
            h = held if held is not None else sums["h"] / W
            if rough and not (np.isfinite(value) and np.all(np.isfinite(h))):  # float32 overflowed: go on in float64
                rough, sums = False, self.evaluate(params, "newton")
                value, g, h = sums["terms"][0] / W, sums["g"] / W, sums["h"] / W
            if not np.isfinite(value):
                return params, sums, Status.not_finite_at_start(cfg, self.model) if step == 0 else \
                    Status("diverged", step, f"The objective became NaN or infinite at step {step}.", step)
            direction = distributed.broadcast(_solve_pd(h, g))  # one direction for every process
            slope = float(g @ direction)
            # at the maximum (a small gradient too: its last full step is taken, as in memory)
            near = not rough and (0.5 * slope <= self.near_gain(value) or np.linalg.norm(g) < cfg.tol)
            switch = rough and 0.5 * slope <= ROUGH_UNTIL * max(1.0, abs(value))  # close: the rest in float64
            if switch:
                held = h  # close to the maximum the information changes little: the float64 steps keep it
            rough = rough and not switch
            kind = "rough" if rough else "newton"
            if held is not None:
                # the held information shrinks the error by about the ratio of successive gains: when the
                # next pass is predicted to be the last, it forms a fresh float32 X'WX too, so that the last
                # step lands within ~1e-12 of the maximum, where the final pass's information is taken
                ahead = 0.5 * slope * (min(1.0, 0.5 * slope / gain) if gain else 1.0)
                kind = "newton" if ahead <= self.near_gain(value) else "score"
                gain = 0.5 * slope
            t, halvings, redo = 1.0, 0, False
            while True:
                cand = self.apply(params, t, direction)
                cs = self.evaluate(cand, "final" if near and self.mle else kind)
                if near or switch or cs["terms"][0] / W >= value + ARMIJO * t * slope:
                    break
                halvings += 1
                if (rough and halvings > 8) or (held is not None and halvings > 1):
                    # float32 cannot tell the values apart, or the held information no longer gives full
                    # steps: go on from here in float64 with the information at each step
                    rough, held, redo = False, None, True
                    break
                if halvings > MAX_HALVINGS or not slope > 0:
                    return params, sums, Status(
                        "stalled", step, f"Stalled at step {step}: newton could not raise the objective further, "
                        f"but the maximum is not reached. The maximum may not exist (separated classes, collinear "
                        f"columns).", step)
                t *= 0.5
            if redo:
                sums = self.evaluate(params, "newton")
                continue
            if held is not None and not switch and not near and "h" not in cs:  # it learns from the step (BFGS)
                held = _secant(held, t * direction, g - cs["g"] / W)
            params, sums = cand, cs
            if near:
                polished = params
                if held is not None and "meat" in sums:
                    # that step used the held information (it shrinks the error ~1000-fold, where Newton's
                    # own squares it): one exact Newton step from the final pass's information finishes
                    polished = self.polish(params, sums)
                    if polished is None:  # not close after all: go on with the information at each step
                        held = None
                        continue
                if step + 1 < cfg.steps:
                    self.record(rows, step + 1, params, sums, bar)
                return polished, sums, self._converged(step + 1)
        return params, sums, Status("max_steps", cfg.steps, f"Reached steps={cfg.steps} before converging; "
                                    f"increase steps.")

    def near_gain(self, value):
        """Newton's stopping level for the gain a step predicts (as in memory)."""
        return max(self.config.tol ** 2, 100 * np.finfo(np.float64).eps) * max(1.0, abs(value))

    def polish(self, params, sums):
        """One exact Newton step from a final pass's information and gradient, or None when the gain
        it predicts is above the stopping level. The standard errors keep the final pass's
        information, at ``params``: the step moves the estimates by about 1e-12 (relative) or less,
        as the step before it used a fresh float32 information."""
        W = sums["weight"]
        g, h = sums["g"] / W, sums["h"] / W
        direction = distributed.broadcast(_solve_pd(h, g))
        if not 0.5 * float(g @ direction) <= self.near_gain(sums["terms"][0] / W):
            return None
        return self.apply(params, 1.0, direction)

    @staticmethod
    def sample_every(model, family, config, init_params, rows: int) -> int:
        """k when Newton will start on every k-th chunk (``warm_start``: at least ``SAMPLE_ROWS`` rows,
        ``Linear`` with a scalar GLM family, float64, no ``init_params``), else 1. The first pass
        then takes the columns' moments (the standardization, a preconditioning: the answer does not
        depend on it) from those chunks only."""
        newton = (config.optimizer == "newton" and family in SCALAR_FAMILIES and model.name == "linear"
                  and config.dtype == "float64" and init_params is None)
        return _sample_every(rows) if newton else 1

    def warm_start(self, params):
        """Newton's float32 steps on about ``SAMPLE_ROWS`` rows spread over the data (every k-th
        chunk or row group), from ``params`` until the predicted gain is below ``ROUGH_UNTIL``: the
        full data's maximum is then about ``1/sqrt(rows of the sample)`` away, where float64 steps with
        the sample's information (held) shrink the error ~1000-fold each. Returns the parameters and
        that information, or ``(params, None)`` when the data are small or the sample does not settle
        (the fit then runs its float32 steps on all the rows)."""
        every = _sample_every(self.moments.rows)
        if every == 1:
            return params, None
        feeder = self.feeder.sampled(every)
        start = params

        def sample_pass(p):
            self.sample_passes += 1
            return run_pass(feeder, self.model, self.lik, "rough", self.family, p, self.center, self.scale,
                            self.config.dtype)

        sums = sample_pass(params)
        for _ in range(50):
            W = sums["weight"]
            value, g, h = sums["terms"][0] / W, sums["g"] / W, sums["h"] / W
            if not (np.isfinite(value) and np.all(np.isfinite(h)) and np.all(np.isfinite(g))):
                return start, None
            direction = distributed.broadcast(_solve_pd(h, g))
            slope = float(g @ direction)
            if 0.5 * slope <= ROUGH_UNTIL * max(1.0, abs(value)):
                return params, h
            t = 1.0
            for _ in range(8):
                cand = self.apply(params, t, direction)
                cs = sample_pass(cand)
                if cs["terms"][0] / cs["weight"] >= value + ARMIJO * t * slope:
                    break
                t *= 0.5
            else:
                return start, None
            params, sums = cand, cs
        return start, None


def _sample_every(rows: int) -> int:
    """Every k-th chunk or row group makes a sample of about ``SAMPLE_ROWS`` rows, or a quarter of the rows
    from ``SAMPLE_ROWS`` to four times as many (a quarter of 1e6 rows: 5 passes over all the rows instead of
    7, 1.4-1.6 s against 1.6-2.1 s, the same estimates and standard errors to 4e-16); 1 (no sample) below."""
    return max(4, int(rows) // SAMPLE_ROWS) if rows >= SAMPLE_ROWS else 1


def _secant(h, step, change):
    """The BFGS update of the information ``h`` from a step and the gradient's change along it
    (``change = g_before - g_after``, which is about ``h @ step``); ``h`` unchanged when the pair
    does not curve the right way."""
    hs = h @ step
    curve, shs = float(step @ change), float(step @ hs)
    if not (curve > 0 and shs > 0):
        return h
    return h + np.outer(change, change) / curve - np.outer(hs, hs) / shs


def _solve_pd(h, g):
    h = (h + h.T) / 2
    try:
        return np.linalg.solve(np.linalg.cholesky(h).T, np.linalg.solve(np.linalg.cholesky(h), g))
    except np.linalg.LinAlgError:
        lam, vec = np.linalg.eigh(h)
        big = np.max(np.abs(lam))
        lam = np.maximum(np.abs(lam), max(big, 1.0) * np.finfo(float).eps * 1e3)
        return vec @ ((vec.T @ g) / lam)
