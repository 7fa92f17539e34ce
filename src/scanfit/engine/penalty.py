"""Penalized fits: ``sf.ElasticNet(alpha, l1_ratio)`` and the proximal-gradient stepper.

The penalized objective is the mean log-likelihood minus
``alpha * (l1_ratio * |b|_1 + (1 - l1_ratio) / 2 * |b|_2^2)`` over the slopes ``b`` on the user's
scale (``beta1`` of ``Linear``, the weights ``W*`` of ``MLP``; intercepts and biases are not
penalized), as scikit-learn's ``ElasticNet`` and glum. For ``Gaussian`` the loop's objective is
``-mse``, twice the mean log-likelihood with unit variance, so its penalty counts twice (the same
maximizer as scikit-learn's ``0.5 mse + penalty``). When the fit runs on standardized columns, a
first-layer weight ``b_std`` is ``b_std / scale`` on the user's scale, so its penalty carries the
factor ``1 / scale``.

The L2 part is smooth and joins the objective (every optimizer, Newton included). The L1 part is
not: ``"proximal"`` (FISTA with a backtracking step, float64 by default) and ``"gd"`` take a
gradient step on the smooth part and then the L1 proximal map (soft thresholding), so coefficients
become exactly zero; other optimizers refuse an L1 part.

>>> import scanfit as sf
>>> sf.ElasticNet(alpha=0.1, l1_ratio=0.5)
ElasticNet(alpha=0.1, l1_ratio=0.5)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["ElasticNet", "Proximal", "penalty_weights", "l2_value", "l1_value", "prox_l1"]


@dataclass(frozen=True)
class ElasticNet:
    """``alpha * (l1_ratio * |b|_1 + (1 - l1_ratio) / 2 * |b|_2^2)`` over the slopes; ``l1_ratio=0`` is
    ridge, ``1`` the lasso."""

    alpha: float
    l1_ratio: float = 0.0

    def __post_init__(self):
        a, r = self.alpha, self.l1_ratio
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not a >= 0 or a == float("inf"):
            raise ValueError(f"The 'alpha' parameter of ElasticNet must be a float >= 0. Got {a!r} instead.")
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r <= 1:
            raise ValueError(f"The 'l1_ratio' parameter of ElasticNet must be a float in [0, 1] (0: ridge, 1: lasso). "
                             f"Got {r!r} instead.")
        object.__setattr__(self, "alpha", float(a))
        object.__setattr__(self, "l1_ratio", float(r))

    @property
    def l1(self) -> float:
        return self.alpha * self.l1_ratio

    @property
    def l2(self) -> float:
        return self.alpha * (1.0 - self.l1_ratio)


def _penalized(name: str) -> bool:
    return name == "beta1" or (name.startswith("W") and name[1:].isdigit())


def penalty_weights(params: dict, first_layer: str | None, scale) -> dict:
    """Per-coordinate factors ``c`` (the penalty is on ``c * b``): 0 for unpenalized leaves, ``1 / scale``
    along the first layer's input axis when the fit runs on standardized columns, else 1."""
    out = {}
    for name, leaf in params.items():
        if not _penalized(name):
            out[name] = jnp.zeros_like(leaf)
        elif name == first_layer and scale is not None:
            out[name] = jnp.ones_like(leaf) / jnp.reshape(scale, (-1,) + (1,) * (jnp.ndim(leaf) - 1)).astype(leaf.dtype)
        else:
            out[name] = jnp.ones_like(leaf)
    return out


def l2_value(params: dict, c: dict):
    return 0.5 * sum(jnp.sum(jnp.square(c[k] * params[k])) for k in params)


def l1_value(params: dict, c: dict):
    return sum(jnp.sum(jnp.abs(c[k] * params[k])) for k in params)


def prox_l1(params: dict, c: dict, threshold):
    """Soft thresholding: the proximal map of ``threshold * |c * b|_1``."""
    return {k: jnp.sign(v) * jnp.maximum(jnp.abs(v) - threshold * c[k], 0.0) for k, v in params.items()}


class ProximalState(NamedTuple):
    momentum: dict  # FISTA's extrapolated point
    t: jax.Array  # FISTA's momentum scalar
    step: jax.Array  # the current step size (backtracking shrinks it; each step tries twice it first)


class Proximal:
    """FISTA on ``objective`` (smooth: the log-likelihood and the L2 part) plus ``l1 * |c b|_1``:
    a backtracking step from the extrapolated point, then soft thresholding. Converged (``done=1``)
    when the gradient mapping's norm is below ``tol`` times ``max(1, |f|)``; the momentum restarts
    whenever the objective would fall."""

    def __init__(self, tol: float, l1: float, weights_of, max_halvings: int = 40):
        self.tol, self.l1, self.weights_of, self.max_halvings = tol, l1, weights_of, max_halvings

    def init(self, params, learning_rate=None):
        dtype = jnp.result_type(*jax.tree.leaves(params))
        return ProximalState(params, jnp.ones((), dtype), jnp.asarray(1.0 if learning_rate is None else learning_rate,
                                                                      dtype))

    def step(self, objective, params, state, x, y):
        c = self.weights_of(params, y)  # the penalty's factors (1 / scale on standardized columns)
        (value, aux) = objective(params, x, y)
        f_mom, g_mom = jax.value_and_grad(lambda p: objective(p, x, y)[0])(state.momentum)

        def candidate(eta):
            ascent = jax.tree.map(lambda p, g: p + eta * g, state.momentum, g_mom)
            return prox_l1(ascent, c, eta * self.l1)

        def enough(eta, z):
            diff = jax.tree.map(jnp.subtract, z, state.momentum)
            model = f_mom + sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(g_mom), jax.tree.leaves(diff))) \
                - 0.5 / eta * sum(jnp.sum(jnp.square(d)) for d in jax.tree.leaves(diff))
            return objective(z, x, y)[0] >= model

        def body(carry):
            eta, _, k = carry
            eta = 0.5 * eta
            return eta, candidate(eta), k + 1

        eta0 = 2.0 * state.step
        eta, z, _ = lax.while_loop(lambda cr: ~enough(cr[0], cr[1]) & (cr[2] < self.max_halvings), body,
                                   (eta0, candidate(eta0), 0))
        mapping = jnp.sqrt(sum(jnp.sum(jnp.square(a - b)) for a, b in
                               zip(jax.tree.leaves(z), jax.tree.leaves(state.momentum)))) / eta
        f_new = objective(z, x, y)[0] - self.l1 * l1_value(z, c)
        f_old = value - self.l1 * l1_value(params, c)
        worse = f_new < f_old  # restart the momentum from the current point
        t_next = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * state.t ** 2))
        beta = (state.t - 1.0) / t_next
        z = jax.tree.map(lambda a, b: jnp.where(worse, b, a), z, params)
        momentum = jax.tree.map(lambda a, b: jnp.where(worse, a, a + beta * (a - b)), z, params)
        new_state = ProximalState(momentum, jnp.where(worse, jnp.ones_like(state.t), t_next), eta)
        converged = (mapping < self.tol * jnp.maximum(1.0, jnp.abs(value))) & ~worse
        return value, aux, z, new_state, converged.astype(jnp.int32)
