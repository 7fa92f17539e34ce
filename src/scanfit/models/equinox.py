"""Equinox modules as scanfit models (``sf.Equinox``); equinox is an optional extra.

``pip install "scanfit[equinox]"``. The module's floating-point arrays are the parameters, the
rest (activation functions, shapes) stays fixed: :func:`equinox.partition` splits them and
:func:`equinox.combine` rebuilds the module inside the compiled loop. Parameters travel as a plain
dict keyed by the array's path in the module (``"layers[0].weight"``), like the other models.

Equinox layers act on one example; by default the module is ``jax.vmap``-ed over the rows of
``x`` (``vmap=False`` for a module that takes the whole batch).

>>> import equinox as eqx, jax, scanfit as sf
>>> d = sf.datasets.hill(seed=0)
>>> model = sf.Equinox(lambda key: eqx.nn.MLP(2, 1, width_size=4, depth=1, key=key))
>>> r = sf.fit(model, sf.Bernoulli(), d.train.x, d.train.y, optimizer="adam", steps=200, restarts=2)
>>> sorted(r.params)[:2]
['layers[0].bias', 'layers[0].weight']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from .core import Model

__all__ = ["Equinox"]


def _equinox():
    try:
        import equinox
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("sf.Equinox needs equinox: pip install equinox (or scanfit[equinox]).") from None
    return equinox


@dataclass(frozen=True, eq=False)
class Equinox(Model):
    """An equinox module, given as ``make(key) -> module`` (restarts then draw fresh starts from
    their keys) or as a module instance (every start begins at its arrays).

    ``x`` reaches the module with shape ``(n, d)``: row by row through ``jax.vmap`` (default), or
    whole with ``vmap=False``. Its output is ``(n,)``/``(n, 1)`` for one output or ``(n, k)``.
    """

    make: Any
    vmap: bool = True
    name = "equinox"

    def __post_init__(self):
        eqx = _equinox()
        if isinstance(self.make, eqx.Module):
            template = self.make
        elif callable(self.make):
            template = self.make(jax.random.key(0))
            if not isinstance(template, eqx.Module):
                raise TypeError(f"The 'make' parameter of Equinox must return an equinox.Module from a key. "
                                f"Got {type(template).__name__}.")
        else:
            raise TypeError(f"The 'make' parameter of Equinox must be an equinox.Module or a function key -> module. "
                            f"Got {type(self.make).__name__}.")
        arrays, static = eqx.partition(template, eqx.is_inexact_array)
        leaves, treedef = jax.tree_util.tree_flatten_with_path(arrays)
        object.__setattr__(self, "_static", static)
        object.__setattr__(self, "_treedef", treedef)
        object.__setattr__(self, "_keys", tuple(jax.tree_util.keystr(path).lstrip(".") for path, _ in leaves))
        object.__setattr__(self, "_template", template)

    def _to_dict(self, module) -> dict:
        eqx = _equinox()
        arrays, _ = eqx.partition(module, eqx.is_inexact_array)
        return dict(zip(self._keys, jax.tree_util.tree_leaves(arrays)))

    def init(self, key, n_features, n_outputs):
        eqx = _equinox()
        module = self._template if isinstance(self.make, eqx.Module) else self.make(key)
        return self._to_dict(module)

    def module(self, params):
        """The equinox module holding ``params`` (e.g. ``result.params``)."""
        eqx = _equinox()
        arrays = jax.tree_util.tree_unflatten(self._treedef, [jnp.asarray(params[k]) for k in self._keys])
        return eqx.combine(arrays, self._static)

    def index(self, params, x):
        module = self.module(params)
        out = jax.vmap(module)(x) if self.vmap else module(x)
        return out[:, 0] if out.ndim == 2 and out.shape[1] == 1 else out

    def spec(self):
        return {"name": self.name, "vmap": self.vmap}
