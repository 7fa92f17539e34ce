"""Models map parameters and data to an index (the likelihood's input); they know no likelihood.

Built-in models (:class:`Linear`, :class:`MLP`) read the data feature-major, ``xt`` of
shape ``(d, n)``, so that the long observation axis is the minor one: on a CPU a hidden
layer stored as ``(n, 2)`` vectorizes poorly, stored as ``(2, n)`` it runs about 3x faster.
User models (:class:`Function`, :class:`Module`) read ``x`` of shape ``(n, d)`` as usual.

Every model offers
- ``init(key, n_features, n_outputs)``: initial parameters (a plain pytree) from a JAX key,
- ``index(params, x)``: ``x`` of shape ``(n, d)`` to ``(n,)`` or ``(n, k)``,
- ``columns``: whether the engine should hand it ``xt = columns_of(x)`` (feature-major, with a row
  of ones that carries the intercept or first bias) through ``index_t``.

>>> import scanfit as sf, jax, numpy as np
>>> m = sf.MLP(hidden=3)
>>> p = m.init(jax.random.key(0), 2, 1)
>>> m.index(p, np.zeros((5, 2))).shape
(5,)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..data import limits

__all__ = ["Model", "Linear", "MLP", "Function", "Module", "as_model", "forward", "layout"]

ACTIVATIONS = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "relu": jax.nn.relu}


class Model:
    columns = False
    scalable = False  # from_standard / to_standard exist: the engine may standardize x for this model
    name = "model"

    def init(self, key, n_features: int, n_outputs: int):
        raise NotImplementedError

    def index(self, params, x):
        out = self.index_t(params, self.columns_of(jnp.asarray(x)))
        return out if out.ndim == 1 else out.T

    def columns_of(self, x):
        """``x`` of shape ``(n, d)`` in the layout ``index_t`` reads: ``(d, n)``."""
        return x.T

    def summaries(self, params, names: tuple[str, ...]) -> dict:
        """Scalar summaries of the parameters recorded in the history (none by default)."""
        return {}

    def spec(self) -> dict:
        return {"name": self.name}


def _unscale(w, b, center, scale):
    """First-layer weights ``w`` (d, ...) and bias ``b`` fitted on ``(x - center) / scale``, as the
    same function of the raw ``x``: ``w / scale`` and ``b - (center / scale) @ w``."""
    xp = jnp if isinstance(w, jax.Array) else np
    ratio = (center / scale).astype(w.dtype)
    s = scale.astype(w.dtype).reshape((-1,) + (1,) * (w.ndim - 1))
    return w / s, b - xp.tensordot(ratio, w, axes=1)


def _scale(w, b, center, scale):
    """The inverse of :func:`_unscale`: raw-scale ``(w, b)`` as weights on the standardized ``x``."""
    xp = jnp if isinstance(w, jax.Array) else np
    s = scale.astype(w.dtype).reshape((-1,) + (1,) * (w.ndim - 1))
    return w * s, b + xp.tensordot(center.astype(w.dtype), w, axes=1)


class _FirstLayer:
    """Models whose inputs enter through one affine layer ``x @ W + b`` (named ``w_name``, ``b_name``):
    standardizing x is then a reparametrization with an exact inverse."""

    scalable = True
    w_name, b_name = "beta1", "beta0"

    def from_standard(self, params, center, scale):
        """Parameters fitted on ``(x - center) / scale`` as parameters on the raw ``x`` (without a
        bias the center must be zero: only the scale is undone)."""
        if self.b_name not in params:
            w = params[self.w_name]
            return {**params, self.w_name: w / scale.astype(w.dtype).reshape((-1,) + (1,) * (w.ndim - 1))}
        w, b = _unscale(params[self.w_name], params[self.b_name], center, scale)
        return {**params, self.w_name: w, self.b_name: b}

    def to_standard(self, params, center, scale):
        """Raw-scale parameters as parameters on ``(x - center) / scale``."""
        if self.b_name not in params:
            w = params[self.w_name]
            return {**params, self.w_name: w * scale.astype(w.dtype).reshape((-1,) + (1,) * (w.ndim - 1))}
        w, b = _scale(params[self.w_name], params[self.b_name], center, scale)
        return {**params, self.w_name: w, self.b_name: b}


def _with_ones(x, first: bool):
    """``x.T`` of shape ``(d, n)`` with a row of ones before (``first``) or after it."""
    xp = jnp if isinstance(x, jax.Array) else np
    ones = xp.ones((1, x.shape[0]), x.dtype)
    return xp.concatenate([ones, x.T] if first else [x.T, ones])


@dataclass(frozen=True)
class Linear(_FirstLayer, Model):
    """Intercept ``beta0`` plus slopes ``beta1`` (shape ``(d,)``, or ``(d, k)`` for k outputs).

    With ``Gaussian`` this is linear regression, with ``Bernoulli`` the logit, with
    ``Categorical`` the multinomial logit, with ``Poisson`` the log-linear model. Starts at
    ``init_scale * N(0, 1)``. ``intercept=False`` drops ``beta0`` (a formula with ``- 1``).
    """

    init_scale: float = 0.1
    intercept: bool = True
    columns = True
    name = "linear"

    def init(self, key, n_features, n_outputs):
        k0, k1 = jax.random.split(key)
        shape0 = () if n_outputs == 1 else (n_outputs,)
        slopes = {"beta1": self.init_scale * jax.random.normal(k1, (n_features,) + shape0)}
        return {"beta0": self.init_scale * jax.random.normal(k0, shape0), **slopes} if self.intercept else slopes

    def columns_of(self, x):
        """``(1 + d, n)``: a row of ones, then the features. The intercept then joins the product,
        and its gradient comes out of the same product as the slopes' (no separate sum over the
        observations, no separate add of ``beta0``); ``[beta0, beta1]`` is the coefficient order
        of the GLM Newton step, which forms ``X~' W X~`` straight from this layout."""
        return _with_ones(x, first=True) if self.intercept else x.T

    def index_t(self, params, xt, batched: bool = False):
        b1 = params["beta1"]
        if self.intercept:
            b0 = params["beta0"]
            b1 = jnp.concatenate([b0[None], b1]) if b1.ndim == 1 else jnp.concatenate([b0[None, :], b1])
        return b1 @ xt if b1.ndim == 1 else b1.T @ xt

    def summaries(self, params, names):
        b1 = params["beta1"]
        # the notebook's mean and std from one stacked reduction (one kernel per step, not four)
        mean, square = jnp.mean(jnp.stack([b1, b1 * b1]), axis=tuple(range(1, b1.ndim + 1)))
        out = {"beta1_mean": mean, "beta1_std": jnp.sqrt(jnp.maximum(square - mean * mean, 0.0))}
        if b1.ndim == 1:
            out = {"beta0": params["beta0"], **out} if self.intercept else out
            if b1.shape[0] <= 10:
                out.update({f"beta1_{n}": b1[j] for j, n in enumerate(names)})
        return out

    def spec(self):
        return {"name": self.name, "init_scale": self.init_scale, "intercept": self.intercept}


@dataclass(frozen=True)
class MLP(_FirstLayer, Model):
    """A feed-forward network: ``hidden`` units per layer (an int or a tuple), then a linear output.

    Parameters are ``W0, b0, W1, b1, ...`` with ``W0`` of shape ``(d, h0)``; the last layer's
    ``W`` is ``(h, )`` for one output (as in the notebook) or ``(h, k)``. Weights start at
    ``init_scale / sqrt(fan_in) * N(0, 1)`` and biases at ``init_scale * N(0, 1)`` (LeCun normal;
    on the hill data it makes 83% of plain-gradient starts succeed, against 55% for the
    notebook's ``2 * N(0, 1)``).
    """

    hidden: int | tuple[int, ...] = 2
    activation: str = "sigmoid"
    init_scale: float = 1.0
    columns = True
    name = "mlp"
    w_name, b_name = "W0", "b0"

    def __post_init__(self):
        hidden = (self.hidden,) if isinstance(self.hidden, int) else tuple(self.hidden)
        if not hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
            raise ValueError(f"The 'hidden' parameter of MLP must be a positive int or a tuple of them. Got {self.hidden!r}.")
        limits.check("hidden", max(hidden), f"The 'hidden' parameter of MLP ({self.hidden!r}): a layer's units",
                     "Use fewer units per layer")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"The 'activation' parameter of MLP must be one of {sorted(ACTIVATIONS)}. "
                             f"Got {self.activation!r} instead.")
        object.__setattr__(self, "hidden", hidden)

    def init(self, key, n_features, n_outputs):
        sizes = (n_features,) + self.hidden
        params = {}
        keys = jax.random.split(key, 2 * len(sizes))
        for layer in range(len(sizes)):
            fan_in = sizes[layer]
            fan_out = sizes[layer + 1] if layer + 1 < len(sizes) else n_outputs
            wshape = (fan_in, fan_out) if (layer + 1 < len(sizes) or n_outputs > 1) else (fan_in,)
            bshape = wshape[1:]
            params[f"W{layer}"] = self.init_scale / fan_in**0.5 * jax.random.normal(keys[2 * layer], wshape)
            params[f"b{layer}"] = self.init_scale * jax.random.normal(keys[2 * layer + 1], bshape)
        return params

    def columns_of(self, x):
        """``(d + 1, n)``: the features, then a row of ones that carries the first layer's bias.

        The bias then joins the first matrix product, and its gradient comes out of the same
        product as the weights' (one kernel over the observations instead of a product and a
        separate sum, the most expensive step of a small network's backward pass on the CPU).
        """
        return _with_ones(x, first=False)

    def hidden_t(self, params, xt, layer: int = 0):
        """Activations of hidden layer ``layer`` for ``xt = columns_of(x)``: shape ``(h, n)``."""
        act = ACTIVATIONS[self.activation]
        h = act(jnp.concatenate([params["W0"], params["b0"][None, :]]).T @ xt)
        for i in range(1, layer + 1):
            h = act(params[f"W{i}"].T @ h + params[f"b{i}"][:, None])
        return h

    def index_t(self, params, xt, batched: bool = False):
        """The output index ``(n,)`` or ``(k, n)``. ``batched``: the call runs under the engine's vmap
        over starts; one output is then ``h.T @ w``, whose gradient XLA builds without writing the
        ``(starts, n)`` cotangent twice (a 16-start fit about 10% faster); for one start ``w @ h``
        is the fast form (``h.T @ w`` was 40% slower)."""
        last = len(self.hidden)
        h = self.hidden_t(params, xt, last - 1)
        w, b = params[f"W{last}"], params[f"b{last}"]
        if w.ndim == 1:
            return (h.T @ w if batched else w @ h) + b
        return w.T @ h + b[:, None]

    def spec(self):
        return {"name": self.name, "hidden": list(self.hidden), "activation": self.activation,
                "init_scale": self.init_scale}


@dataclass(frozen=True, eq=False)
class Function(Model):
    """Any JAX function ``predict(params, x) -> index`` with ``x`` of shape ``(n, d)``.

    Give starting ``params`` (a pytree), or ``init(key) -> params`` so that restarts draw
    different starts. The index is ``(n,)`` for one output or ``(n, k)``.

    >>> import scanfit as sf, jax.numpy as jnp
    >>> model = sf.Function(lambda p, x: p["a"] + x @ p["b"], params={"a": 0.0, "b": jnp.zeros(2)})
    """

    predict: Callable[[Any, Any], Any]
    params: Any = None
    init_fn: Callable[[Any], Any] | None = None
    name = "function"

    def __init__(self, predict, params=None, init=None):
        if not callable(predict):
            raise TypeError(f"The 'predict' parameter of Function must be a function predict(params, x). Got {predict!r}.")
        if (params is None) == (init is None):
            raise ValueError("Function needs exactly one of 'params' (a starting pytree) or 'init' (a function key -> params).")
        object.__setattr__(self, "predict", predict)
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "init_fn", init)

    def init(self, key, n_features, n_outputs):
        if self.init_fn is not None:
            return self.init_fn(key)
        return jax.tree.map(jnp.asarray, self.params)

    def index(self, params, x):
        out = self.predict(params, x)
        return out[:, 0] if out.ndim == 2 and out.shape[1] == 1 else out


@dataclass(frozen=True, eq=False)
class Module(Model):
    """A flax NNX module, given as an instance or as ``make(rngs) -> module`` (then restarts
    draw fresh starts). Its parameters travel as a plain nested dict.

    >>> from flax import nnx
    >>> import scanfit as sf
    >>> model = sf.Module(lambda rngs: nnx.Linear(2, 1, rngs=rngs))
    """

    make: Any
    name = "module"

    def __post_init__(self):
        from flax import nnx

        template = self.make if isinstance(self.make, nnx.Module) else self.make(nnx.Rngs(0))
        graphdef, state = nnx.split(template)
        object.__setattr__(self, "_graphdef", graphdef)
        object.__setattr__(self, "_template", state)

    def init(self, key, n_features, n_outputs):
        from flax import nnx

        if isinstance(self.make, nnx.Module):
            return nnx.to_pure_dict(self._template)
        _, state = nnx.split(self.make(nnx.Rngs(params=key)))
        return nnx.to_pure_dict(state)

    def index(self, params, x):
        from flax import nnx

        state = jax.tree.map(lambda a: a, self._template)
        nnx.replace_by_pure_dict(state, params)
        out = nnx.merge(self._graphdef, state)(x)
        return out[:, 0] if out.ndim == 2 and out.shape[1] == 1 else out


def as_model(model: Any) -> Model:
    """Accept a scanfit model or a flax NNX module; refuse anything else clearly."""
    if isinstance(model, Model):
        return model
    try:
        from flax import nnx

        if isinstance(model, nnx.Module):
            return Module(model)
    except ImportError:
        pass
    if callable(model):
        raise TypeError("The 'model' parameter got a bare function; wrap it as "
                        "sf.Function(predict, params=initial_params) or sf.Function(predict, init=key_to_params).")
    raise TypeError(f"The 'model' parameter must be sf.Linear(), sf.MLP(...), sf.Function(...) or a flax NNX module. "
                    f"Got {type(model).__name__}.")


def forward(model: Model, params, xdata, batched: bool = False):
    """The index with observations last: ``(n,)`` or ``(k, n)``; ``xdata`` is in the model's layout.
    ``batched`` tells a built-in model that the call runs under a vmap over starts."""
    if model.columns:
        return model.index_t(params, xdata, batched)
    out = model.index(params, xdata)
    return out if out.ndim == 1 else out.T


def layout(model, x: np.ndarray, dtype: str):
    """``x`` of shape ``(n, d)`` as the model reads it: ``model.columns_of(x)`` for built-in models."""
    x = np.asarray(x, dtype=dtype)
    # device_put copies; jnp.asarray would compile a small program for every new shape
    return jax.device_put(np.ascontiguousarray(model.columns_of(x)) if model.columns else x)
