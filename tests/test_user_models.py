"""User models (a JAX function, a flax NNX module, an equinox module) through sf.fit.

Each user model here is a linear index written the user's way, so every fit has an exact
reference: OLS (Gaussian), statsmodels Logit (Bernoulli), statsmodels MNLogit probabilities
(Categorical, K logits: only the probabilities are identified).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import statsmodels.api as sm

import scanfit as sf

flax_nnx = pytest.importorskip("flax.nnx")
eqx = pytest.importorskip("equinox")

N, D, K = 400, 2, 3


def _data(likelihood: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D))
    if likelihood == "gaussian":
        return x, 1.0 + x @ np.array([2.0, -1.0]) + 0.5 * rng.normal(size=N)
    if likelihood == "bernoulli":
        return x, (rng.uniform(size=N) < 1 / (1 + np.exp(-(0.5 + x @ np.array([1.0, -1.0]))))).astype(int)
    logits = x @ np.array([[0.0, 1.5, -1.0], [0.0, -0.5, 1.0]])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return x, np.array([rng.choice(K, p=row) for row in p])


def _reference(likelihood: str, x, y) -> np.ndarray:
    """Fitted response-scale values of the maximum-likelihood fit: (n,) or (n, K)."""
    X = sm.add_constant(x)
    if likelihood == "gaussian":
        return X @ np.linalg.lstsq(X, y, rcond=None)[0]
    if likelihood == "bernoulli":
        return sm.Logit(y, X).fit(disp=0).predict(X)
    return np.asarray(sm.MNLogit(y, X).fit(disp=0, method="newton").predict(X))


def _outputs(likelihood):
    return K if likelihood == "categorical" else 1


def function_model(k):
    if k == 1:
        return sf.Function(lambda p, x: p["a"] + x @ p["b"],
                           init=lambda key: {"a": jnp.zeros(()), "b": 0.1 * jax.random.normal(key, (D,))})
    return sf.Function(lambda p, x: p["a"][None, :] + x @ p["b"],
                       init=lambda key: {"a": jnp.zeros(k), "b": 0.1 * jax.random.normal(key, (D, k))})


def nnx_model(k):
    return sf.Module(lambda rngs: flax_nnx.Linear(D, k, rngs=rngs))


def equinox_model(k):
    return sf.Equinox(lambda key: eqx.nn.Linear(D, "scalar" if k == 1 else k, key=key))


KINDS = {"function": function_model, "nnx": nnx_model, "equinox": equinox_model}
LIKELIHOODS = {"gaussian": sf.Gaussian, "bernoulli": sf.Bernoulli, "categorical": sf.Categorical}


# Every model kind meets every likelihood, and every optimizer family (plain gradient, optax by
# name, an optax transformation, Newton, L-BFGS) appears; one fit per row keeps the compile bill low.
# tolerance: exact methods agree with the float64 reference to 1e-3 (float32 parameters), 1000
# first-order steps to 2e-2, on the response scale.
TABLE = [
    ("function", "gaussian", "newton", None, 1e-3), ("nnx", "bernoulli", "newton", None, 1e-3),
    ("equinox", "categorical", "newton", None, 1e-3), ("function", "bernoulli", "lbfgs", None, 1e-3),
    ("nnx", "categorical", "lbfgs", None, 1e-3), ("equinox", "gaussian", "lbfgs", None, 1e-3),
    ("function", "categorical", "adam", 0.05, 2e-2), ("nnx", "gaussian", "rmsprop", 0.003, 2e-2),
    ("equinox", "bernoulli", "gd", 2.0, 2e-2), ("nnx", "bernoulli", optax.adamw(0.05, weight_decay=0.0), None, 2e-2),
]


@pytest.mark.parametrize("kind,likelihood,optimizer,lr,tol", TABLE,
                         ids=[f"{k}-{l}-{o if isinstance(o, str) else 'optax'}" for k, l, o, _, _ in TABLE])
def test_user_models_reach_the_maximum_likelihood_fit(kind, likelihood, optimizer, lr, tol):
    x, y = _data(likelihood)
    r = sf.fit(KINDS[kind](_outputs(likelihood)), LIKELIHOODS[likelihood](), x, y, optimizer=optimizer,
               learning_rate=lr, steps=1000 if lr or not isinstance(optimizer, str) else 100, record_every=10)
    assert r.status.code in ("completed", "converged"), r.status
    np.testing.assert_allclose(r.predict(x), _reference(likelihood, x, y), atol=tol, rtol=tol)


@pytest.mark.parametrize("kind", list(KINDS))
def test_restarts_draw_different_starts_from_the_init_function(kind):
    x, y = _data("bernoulli")
    r = sf.fit(KINDS[kind](1), sf.Bernoulli(), x, y, optimizer="adam", learning_rate=0.05, steps=20, restarts=3)
    assert len(r.restarts) == 3 and r.restarts["chosen"].sum() == 1
    first = [h["train_objective"].iloc[0] for h in r.start_histories]
    assert len(set(np.round(first, 6))) == 3  # three different starting points
    starts = [np.concatenate([np.ravel(v) for v in jax.tree.leaves(p)]) for p in r.start_params]
    assert not np.allclose(starts[0], starts[1])


def test_equinox_params_are_a_plain_dict_and_rebuild_the_module():
    x, y = _data("gaussian")
    model = sf.Equinox(lambda key: eqx.nn.MLP(D, "scalar", width_size=8, depth=1, key=key))
    r = sf.fit(model, sf.Gaussian(), x, y, optimizer="adam", learning_rate=0.01, steps=50)
    assert sorted(r.params) == ["layers[0].bias", "layers[0].weight", "layers[1].bias", "layers[1].weight"]
    assert r.params["layers[0].weight"].shape == (8, D)
    module = model.module(r.params)
    np.testing.assert_allclose(np.asarray(jax.vmap(module)(jnp.asarray(x, jnp.float32))), r.predict(x), rtol=1e-5, atol=1e-6)


def test_equinox_instance_without_vmap():
    class Batched(eqx.Module):
        w: jax.Array
        b: jax.Array

        def __call__(self, x):
            return x @ self.w + self.b

    x, y = _data("gaussian")
    r = sf.fit(sf.Equinox(Batched(jnp.zeros(D), jnp.zeros(())), vmap=False), sf.Gaussian(), x, y,
               optimizer="newton", steps=20)
    beta = np.linalg.lstsq(sm.add_constant(x), y, rcond=None)[0]
    np.testing.assert_allclose([r.params["b"], *r.params["w"]], beta, rtol=1e-4)


def test_equinox_errors_name_the_parameter():
    with pytest.raises(TypeError, match="'make' parameter of Equinox must return an equinox.Module"):
        sf.Equinox(lambda key: {"w": 1.0})
    with pytest.raises(TypeError, match="'make' parameter of Equinox must be an equinox.Module or a function"):
        sf.Equinox(3)
