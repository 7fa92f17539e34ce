"""Optimizer names to optax transformations. The engine maximizes; optax minimizes, so the
engine hands optax the negated gradient and nothing here needs to know.

``"gd"`` is the notebook's plain step ``params + learning_rate * gradient``.

>>> import scanfit as sf
>>> sf.optimizers.resolve("rmsprop", 0.01)  # doctest: +ELLIPSIS
GradientTransformation...
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

if TYPE_CHECKING:  # optax is imported by the fits that use it (see is_transformation)
    import optax

__all__ = ["NAMES", "SECOND_ORDER", "resolve", "default_learning_rate", "label", "is_transformation", "step_unless_stopped"]

# First-order optax optimizers that take a learning rate as their first argument.
_OPTAX = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adabelief", "adamax", "amsgrad",
          "nadam", "radam", "lion", "lamb", "lars", "novograd", "yogi", "sm3", "fromage", "noisy_sgd")
NAMES = ("gd",) + _OPTAX  # all in optax >= 0.2.4 (pyproject.toml); optax is imported when a fit uses one
SECOND_ORDER = ("newton", "lbfgs", "proximal")  # full-batch methods that converge (and stop on tol)


def default_learning_rate(optimizer: Any) -> float:
    """0.1 for plain gradient steps, 0.01 for adaptive optimizers."""
    return 0.1 if optimizer in ("gd", "sgd") else 0.01


def label(optimizer: Any) -> str:
    return optimizer if isinstance(optimizer, str) else type(optimizer).__name__


def is_transformation(optimizer: Any) -> bool:
    """Whether ``optimizer`` is an ``optax.GradientTransformation`` (whoever made one imported optax;
    a Newton fit never imports it: about 0.1 s of a new process)."""
    optax = sys.modules.get("optax")
    return optax is not None and isinstance(optimizer, optax.GradientTransformation)


def resolve(optimizer: Any, learning_rate: float | None) -> optax.GradientTransformation:
    """Return the optax transformation for a name or pass a transformation through.

    With ``learning_rate=None`` a named optimizer is built with ``optax.inject_hyperparams`` so
    that its learning rate lives in the optimizer state: one compiled loop serves every rate.
    """
    if is_transformation(optimizer):
        return optimizer
    if not isinstance(optimizer, str):
        raise TypeError(f"The 'optimizer' parameter must be a name or an optax.GradientTransformation. "
                        f"Got {type(optimizer).__name__}.")
    if optimizer not in NAMES:
        raise ValueError(f"The 'optimizer' parameter must be one of {list(NAMES + SECOND_ORDER)} or an "
                         f"optax.GradientTransformation. Got {optimizer!r} instead.")
    if optimizer == "gd":
        return gradient_step(1.0 if learning_rate is None else learning_rate)
    import optax

    factory = getattr(optax, optimizer)
    if learning_rate is None:
        return optax.inject_hyperparams(factory)(learning_rate=1.0)
    return factory(learning_rate)


class GradientStepState(NamedTuple):
    hyperparams: dict


def gradient_step(learning_rate: float) -> optax.GradientTransformation:
    """The notebook's plain step, ``-learning_rate * updates``, with the rate in the state.

    ``optax.inject_hyperparams(optax.sgd)`` computes the same numbers but also counts steps in its
    state: a kernel of its own in every step of the compiled loop, for a count nothing reads.
    """

    def init(params):
        del params
        return GradientStepState({"learning_rate": jnp.asarray(learning_rate, jnp.result_type(float))})

    def update(updates, state, params=None):
        del params
        rate = state.hyperparams["learning_rate"]
        return jax.tree.map(lambda g: -rate * g, updates), state

    import optax

    return optax.GradientTransformation(init, update)


class FirstOrder:
    """One optax step of the maximization, in the engine's stepper interface.

    A stepper has ``init(params) -> state`` and
    ``step(objective, params, state, x, y) -> (value, aux, new_params, new_state, done)``
    where ``objective(params, x, y) -> (mean log-likelihood, aux)`` and ``aux = (index, sums)``
    (the likelihood's sums over the observations, or None). ``value`` and ``aux`` belong to
    ``params`` (before the step), so the history's statistics come from the same forward pass
    as the gradient. ``done`` is 0 (go on), 1 (converged: the criterion holds at ``params``) or 2
    (stalled: no step raises the objective, but the criterion does not hold). First-order steps
    always return 0.
    """

    def __init__(self, optimizer: Any):
        self.tx = resolve(optimizer, None)
        self.injected = not is_transformation(optimizer)

    def init(self, params, learning_rate=None):
        """The optimizer state; a named optimizer's ``learning_rate`` (a traced value) goes into it."""
        state = self.tx.init(params)
        if self.injected and learning_rate is not None:
            state.hyperparams["learning_rate"] = jnp.asarray(learning_rate, state.hyperparams["learning_rate"].dtype)
        return state

    def step(self, objective, params, state, x, y):
        (value, aux), grads = jax.value_and_grad(objective, has_aux=True)(params, x, y)
        updates, state = self.tx.update(jax.tree.map(jnp.negative, grads), state, params)
        from .second_order import apply_updates

        return value, aux, apply_updates(params, updates), state, jnp.zeros((), jnp.int32)


def stepper(optimizer: Any, tol: float, model=None, likelihood=None, penalty=None, weights_of=None,
            l1_scale: float = 1.0):
    """The stepper for an optimizer name or optax transformation. Second-order steppers may use
    the model and likelihood to exploit structure (the GLM Hessian X^T W X), except under a penalty
    (its L2 part is in the objective: the general Newton path sees it). ``"proximal"`` handles an
    L1 penalty (``l1_scale`` times its weight, in the loop objective's units); ``weights_of(params,
    target)`` gives its per-coordinate factors."""
    if optimizer == "proximal":
        from .penalty import Proximal

        return Proximal(tol, 0.0 if penalty is None else l1_scale * penalty.l1, weights_of)
    if isinstance(optimizer, str) and optimizer in SECOND_ORDER:
        from . import second_order

        return second_order.make(optimizer, tol, model, None if penalty is not None else likelihood)
    return FirstOrder(optimizer)


def step_unless_stopped(stepper, objective, carry, x, y, skip_stopped: bool):
    """``stepper.step`` at the carry's parameters; with ``skip_stopped`` (one start whose loop is masked), a
    start that has stopped skips the step's work (a ``lax.cond``: the rest of a chunk after a Newton fit
    converged cost as much as the steps before) and returns zeros, its parameters and state unchanged
    (the masked loop keeps the carry's anyway)."""
    def run(_):
        return stepper.step(objective, carry["params"], carry["state"], x, y)

    if not skip_stopped:
        return run(None)
    shapes = jax.eval_shape(run, None)

    def skip(_):
        value, aux, _, _, done = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
        return value, aux, carry["params"], carry["state"], done

    return lax.cond(carry["stopped"], skip, run, None)
