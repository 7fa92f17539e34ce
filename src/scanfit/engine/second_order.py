"""Full-batch second-order steppers: ``"newton"`` and ``"lbfgs"``, in the engine's stepper interface.

Both maximize the mean log-likelihood and report how they end through ``done``: 1 (converged) when
the criterion holds (the engine keeps that step's update: for Newton one last full step, which
squares the remaining error), 2 (stalled) when no step raises the objective although the
criterion does not hold. Newton's criterion is scale-free: half the squared Newton
decrement (the gain a full step predicts) at most ``max(tol**2, 100 eps)`` times ``max(1, |f|)``
(the gain is quadratic in the parameters' error, so this puts them within about ``tol`` of the
maximum in units of their spread; ``100 eps`` is what the dtype resolves), or a gradient norm
below ``tol``. L-BFGS: the gradient norm below ``tol`` times ``max(1, |f|)``; a step that leaves the
objective unchanged stalls. A stall is never called converged.

``Newton`` has two paths:

- ``Linear`` with ``Gaussian``, ``Bernoulli`` (logit or probit), ``Poisson`` or ``Categorical``: the
  GLM structure (each scalar family's score and weight from ``likelihood.glm_terms``). With the index
  ``eta = [beta0, beta1] @ xt`` the negative Hessian of the mean log-likelihood is ``X~' W X~``
  (``X~`` is x with a column of ones; ``W`` = 2/n, p(1-p)/n, or the softmax blocks), formed from
  Linear's feature-major layout ``xt = X~'`` (the ones row comes with the data), then a Cholesky solve and
  a step-halving (Armijo) line search. For ``Categorical`` the K sets of coefficients are
  over-parametrized (softmax is unchanged when one vector is added to every class), so the step
  holds class 0 fixed and moves the others: the Hessian of that reduced problem is positive
  definite where the model is identified.
- any other model: ``jax.hessian`` on the flattened parameters (``jax.flatten_util.ravel_pytree``);
  where the Hessian is not negative definite (a network) the step uses its eigenvalues' absolute
  values, which always gives an ascent direction.

``LBFGS`` is optax's ``lbfgs`` (memory 10, zoom line search) on the negated objective.

>>> import scanfit as sf
>>> d = sf.datasets.hyperplane(n_train=500, n_valid=10, dim=3, seed=0)
>>> r = sf.fit(sf.Linear(), sf.Bernoulli(), d.train.x, d.train.y, optimizer="newton", steps=50)
>>> r.status.code
'converged'
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree
from jax.scipy.linalg import cho_solve

from ..likelihoods.base import split_target
from ..likelihoods.glm import glm_family, null_intercept

__all__ = ["Newton", "LBFGS", "make", "glm_family", "raw_newton_start"]

ARMIJO = 1e-4
MAX_HALVINGS = 30


def make(optimizer: str, tol: float, model: Any = None, likelihood: Any = None):
    """The stepper for ``optimizer`` in ``("newton", "lbfgs")``."""
    if optimizer == "newton":
        return Newton(tol, glm_family(model, likelihood), likelihood=likelihood)
    if optimizer == "lbfgs":
        return LBFGS(tol)
    raise ValueError(f"The 'optimizer' parameter of second_order.make must be 'newton' or 'lbfgs'. Got {optimizer!r}.")


def _norm(tree):
    return jnp.sqrt(sum(jnp.sum(jnp.square(a)) for a in jax.tree.leaves(tree)))


def gram(xt, w, *, low: bool = False, nonneg: bool = False):
    """``X~' diag(w) X~`` for ``xt = X~'`` of shape ``(1 + d, n)`` (Linear's layout: a row of ones,
    then the features): shape ``(1 + d, 1 + d)``. ``w`` is an array of shape ``(n,)`` or a scalar
    (the same weight for every observation). ``low``: form the products in float32 (twice as fast
    on a CPU); ``nonneg``: ``w >= 0``, so the products can be ``(xt sqrt(w)) (xt sqrt(w))'``."""
    if jnp.ndim(w) == 0:
        return (xt @ xt.T) * w
    if low and nonneg:
        xs = (xt * jnp.sqrt(w)[None, :]).astype(jnp.float32)
        return (xs @ xs.T).astype(xt.dtype)
    if low:
        return ((xt * w[None, :]).astype(jnp.float32) @ xt.astype(jnp.float32).T).astype(xt.dtype)
    return (xt * w[None, :]) @ xt.T


def _rows(lik, index, y, w):
    """The mean's divisor: all rows with weights (normalized to mean 1 over all rows, padding
    included), else the rows that count (``lik.counted``: an unweighted padded logit marks its
    padding with ``y = 0``; its ``xt`` columns are zero there, so they add nothing to the sums)."""
    if w is not None or lik is None or not lik.pads_in_y(None):
        return index.shape[-1]
    return jnp.sum(lik.counted(y), dtype=jnp.int32).astype(index.dtype)


def _glm_gradient(lik, family, index, y, xt, w=None):
    """Gradient of the (weighted) mean log-likelihood in the coefficients ``[beta0, beta1]`` (for
    Categorical: classes 1..K-1 stacked, class 0 held fixed). ``w``: weights normalized to mean 1."""
    n = _rows(lik, index, y, w)
    scale = (1.0 / n) if w is None else w / n
    if family == "categorical":
        k = index.shape[0]
        r = (jax.nn.one_hot(y, k, axis=0, dtype=index.dtype) - jax.nn.softmax(index, axis=0)) * jnp.reshape(scale, (1, -1))
        return (xt @ r.T).T[1:].reshape(-1)
    return xt @ (lik.glm_terms(index, y)[0] * scale)


def _glm_information(lik, family, index, y, xt, w=None, low: bool = False):
    """Negative Hessian of the mean log-likelihood in the same coefficients as ``_glm_gradient``
    (observed information: for the probit it depends on ``y``). ``low``: products in float32 (a
    float64 fit's Newton direction needs only a few digits; its gradient, line search and stopping
    rule stay float64, so the maximum it reaches is exact)."""
    n = _rows(lik, index, y, w)
    scale = (1.0 / n) if w is None else w / n
    if family == "gaussian" and w is None:
        return gram(xt, jnp.asarray(2.0 / n, index.dtype))
    if family != "categorical":
        return gram(xt, lik.glm_terms(index, y)[1] * scale, low=low and family != "gaussian", nonneg=True)
    k = index.shape[0]
    prob = jax.nn.softmax(index, axis=0)
    blocks = [[None] * (k - 1) for _ in range(k - 1)]
    for a in range(1, k):
        for b in range(a, k):
            wab = prob[a] * ((1.0 if a == b else 0.0) - prob[b]) * scale
            blocks[a - 1][b - 1] = gram(xt, wab, low=low, nonneg=a == b)
            blocks[b - 1][a - 1] = blocks[a - 1][b - 1]
    return jnp.block(blocks)


def _glm_apply(family, params, t, direction):
    lead = 1 if "beta0" in params else 0  # the intercept's coordinate comes first, when there is one
    if family != "categorical":
        new = {"beta1": params["beta1"] + t * direction[lead:]}
        return {"beta0": params["beta0"] + t * direction[0], **new} if lead else new
    step = t * direction.reshape(-1, params["beta1"].shape[0] + lead)  # (k - 1, [1 +] d)
    new = {"beta1": params["beta1"].at[:, 1:].add(step[:, lead:].T)}
    return {"beta0": params["beta0"].at[1:].add(step[:, 0]), **new} if lead else new


def _solve_pd(a, g):
    """Solve ``a @ d = g`` for a symmetric ``a`` that should be positive definite: Cholesky; on
    failure (singular or indefinite) fall back to ``|a|`` with small eigenvalues raised."""
    chol = jnp.linalg.cholesky(a)

    def modified(_):
        lam, vec = jnp.linalg.eigh(a)
        big = jnp.max(jnp.abs(lam))
        lam = jnp.maximum(jnp.abs(lam), jnp.maximum(big, 1.0) * jnp.finfo(a.dtype).eps * 1e3)
        return vec @ ((vec.T @ g) / lam)

    return lax.cond(jnp.all(jnp.isfinite(chol)), lambda _: cho_solve((chol, True), g), modified, None)


def _line_search(value_at, value, slope):
    """Step-halving from ``t = 1`` until ``f(t) >= value + ARMIJO * t * slope``; ``t = 0`` when no
    step of the ``MAX_HALVINGS`` tried raises the objective."""

    def ok(t, f):
        return f >= value + ARMIJO * t * slope

    def body(carry):
        t, _, k = carry
        t = t * 0.5
        return t, value_at(t), k + 1

    one = jnp.ones((), value.dtype)
    t, f, _ = lax.while_loop(lambda c: ~ok(c[0], c[1]) & (c[2] < MAX_HALVINGS), body, (one, value_at(one), 0))
    return jnp.where(ok(t, f) & (slope > 0), t, jnp.zeros_like(t))


class Newton:
    """Newton's method with a step-halving line search; see the module docstring."""

    def __init__(self, tol: float, family: str | None = None, low_precision_hessian: bool = True, likelihood=None):
        self.tol, self.family, self.low_precision_hessian = tol, family, low_precision_hessian
        self.likelihood = likelihood

    def init(self, params, learning_rate=None):  # second-order steps take no learning rate
        return ()

    def step(self, objective, params, state, x, y):
        if self.family is not None:
            value, aux = objective(params, x, y)
            index = aux[0]  # with the offset, if any
            yy, w, _ = split_target(y)
            g = _glm_gradient(self.likelihood, self.family, index, yy, x, w)
            apply = lambda t, direction: _glm_apply(self.family, params, t, direction)  # noqa: E731
        else:
            theta, unravel = ravel_pytree(params)
            f = lambda th: objective(unravel(th), x, y)  # noqa: E731
            (value, aux), g = jax.value_and_grad(f, has_aux=True)(theta)
            apply = lambda t, direction: unravel(theta + t * direction)  # noqa: E731
        gnorm = jnp.linalg.norm(g)
        converged = gnorm < self.tol
        # the gain is quadratic in the parameters' error, so tol on their scale is tol**2 on the objective's
        rel = jnp.maximum(self.tol**2, 100 * jnp.finfo(value.dtype).eps) * jnp.maximum(1.0, jnp.abs(value))

        def newton(_):
            if self.family is not None:
                low = self.low_precision_hessian and value.dtype == jnp.float64
                hess = _glm_information(self.likelihood, self.family, index, yy, x, w, low=low)
                direction = _solve_pd(hess, g)
                if low:  # close to the maximum the direction must be exact too: float32 products there leave
                    # the last steps of an ill-conditioned design short by ~1e-7 (ROUGH_UNTIL in engine.stream)
                    close = 0.5 * (g @ direction) <= 1e-6 * jnp.maximum(1.0, jnp.abs(value))
                    direction = lax.cond(close, lambda _: _solve_pd(_glm_information(
                        self.likelihood, self.family, index, yy, x, w, low=False), g), lambda _: direction, None)
            else:
                hess = -jax.hessian(lambda th: f(th)[0])(theta)
                direction = _solve_pd(hess, g)
            slope = g @ direction  # the squared Newton decrement: twice the predicted gain
            # at the maximum, to the criterion's precision (a small gradient alone is not enough: on an
            # ill-conditioned design a gradient of 1e-8 can leave the estimates 1e-7 short; the last full
            # step, which the engine keeps, closes that gap)
            near = (0.5 * slope <= rel) | converged
            t = _line_search(lambda t: objective(apply(t, direction), x, y)[0], value, slope)
            t = jnp.where(near, jnp.ones_like(t), t)  # at the maximum: one last full step, kept by the engine
            code = jnp.where(near, 1, jnp.where(t == 0, 2, 0)).astype(jnp.int32)
            return apply(t, direction), code

        def newton_cast(_):  # keep each leaf's dtype (a user's float32 params in a float64 fit)
            new, code = newton(_)
            return jax.tree.map(lambda a, b: a.astype(b.dtype), new, params), code

        new, code = newton_cast(None)
        return value, aux, new, state, code


def apply_updates(params, updates):
    """``optax.apply_updates``: ``params + updates`` leaf by leaf, in each parameter's dtype (optax is
    imported only by fits that use it: a Newton fit's process never pays its ~0.1 s import)."""
    import optax

    return optax.apply_updates(params, updates)


class LBFGSState(NamedTuple):
    inner: Any
    last: Any  # the objective at the previous step's params (-inf before the first step)


class LBFGS:
    """optax L-BFGS (zoom line search) on ``-objective``; see the module docstring."""

    def __init__(self, tol: float, memory_size: int = 10):
        self.tol = tol
        import optax

        self.tx = optax.lbfgs(memory_size=memory_size)

    def init(self, params, learning_rate=None):  # second-order steps take no learning rate
        dtype = jnp.result_type(*jax.tree.leaves(params))
        return LBFGSState(self.tx.init(params), jnp.full((), -jnp.inf, dtype))

    def step(self, objective, params, state, x, y):
        (value, aux), grads = jax.value_and_grad(objective, has_aux=True)(params, x, y)
        converged = _norm(grads) < self.tol * jnp.maximum(1.0, jnp.abs(value))
        stalled = value == state.last
        neg = jax.tree.map(jnp.negative, grads)

        def update(_):
            updates, inner = self.tx.update(neg, state.inner, params, value=-value, grad=neg,
                                            value_fn=lambda p: -objective(p, x, y)[0])
            return apply_updates(params, updates), LBFGSState(inner, value)

        new, new_state = lax.cond(converged | stalled, lambda _: (params, state), update, None)
        return value, aux, new, new_state, jnp.where(converged, 1, jnp.where(stalled, 2, 0)).astype(jnp.int32)


def raw_newton_start(model, likelihood, given, design, config, n_features):
    """Newton on raw columns (``standardize=False``, one start, a scalar GLM family with an intercept, no
    offset): the intercept-only model, as the streamed fit starts. A random start there can put the index
    where the likelihood is flat (a column of values near 5,000: the first step stalled where statsmodels
    converged). None otherwise: standardized columns keep the seeded random start."""
    if (design.standardized or config.restarts != 1 or given.offset is not None or not getattr(model, "intercept", False)
            or glm_family(model, likelihood) not in ("gaussian", "bernoulli", "poisson")):
        return None
    w = given.weights
    y = np.asarray(given.yenc, np.float64)
    beta0 = null_intercept(likelihood, float(np.average(y, weights=w) if w is not None and np.sum(w) > 0 else y.mean()))
    return None if beta0 is None else {"beta0": np.float64(beta0), "beta1": np.zeros(n_features)}
