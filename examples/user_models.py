"""Your own model in scanfit: a JAX function, a flax NNX module, an equinox module.

Each is given by a function of a random key (or rngs), so that ``restarts`` draws a fresh start
for every run; any likelihood and optimizer work with any of them. Here all three fit the hill
data with a Bernoulli likelihood and keep the best of 4 starts.

    python examples/user_models.py
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import scanfit as sf


def function_model(hidden: int = 4) -> sf.Function:
    """A JAX function predict(params, x) -> logits (n,), with init(key) -> params."""

    def predict(p, x):
        return jnp.tanh(x @ p["W"] + p["b"][None, :]) @ p["v"] + p["c"]

    def init(key):
        k1, k2 = jax.random.split(key)
        return {"W": jax.random.normal(k1, (2, hidden)), "b": jnp.zeros(hidden),
                "v": jax.random.normal(k2, (hidden,)) / hidden**0.5, "c": jnp.zeros(())}

    return sf.Function(predict, init=init)


def nnx_model(hidden: int = 4) -> sf.Module:
    """A flax NNX module from a factory make(rngs) -> module."""
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.hidden = nnx.Linear(2, hidden, rngs=rngs)
            self.out = nnx.Linear(hidden, 1, rngs=rngs)

        def __call__(self, x):
            return self.out(jnp.tanh(self.hidden(x)))

    return sf.Module(lambda rngs: Net(rngs))


def equinox_model(hidden: int = 4) -> sf.Equinox:
    """An equinox module from make(key) -> module (applied row by row with jax.vmap)."""
    import equinox as eqx

    return sf.Equinox(lambda key: eqx.nn.MLP(2, "scalar", width_size=hidden, depth=1, activation=jnp.tanh, key=key))


def main(*, verbose: bool = True) -> dict:
    data = sf.datasets.hill(seed=0)
    out = {}
    for name, model in [("function", function_model()), ("nnx", nnx_model()), ("equinox", equinox_model())]:
        r = sf.fit(model, sf.Bernoulli(), data.train.x, data.train.y, valid=(data.valid.x, data.valid.y),
                   optimizer="rmsprop", learning_rate=0.01, steps=2000, record_every=20, restarts=4, seed=0)
        out[name] = r.final["valid_accuracy"]
        if verbose:
            print(f"{name:9s} valid accuracy {r.final['valid_accuracy']:.3f}  (best of 4 starts: "
                  f"{r.restarts['valid_accuracy'].round(3).tolist()})")
    return out


if __name__ == "__main__":
    main()
