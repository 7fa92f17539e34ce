"""The compiled Bernoulli kernel (scanfit/native) against its pure-JAX twin."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scanfit as sf
from scanfit.engine import loop as engine
from scanfit.likelihoods import bernoulli as likelihoods
from scanfit.likelihoods import native
from scanfit.data import checks as data_mod


@pytest.fixture(scope="module")
def built():
    if not native.bernoulli_target():
        # skipped only where it cannot be built: with a compiler a failure is a bug (one hid this way once)
        assert native._compiler() is None or os.environ.get("SCANFIT_NATIVE") == "0", native.status()
        pytest.skip(f"native kernel not available: {native.status()}")


def signs(rng, n):
    return jnp.asarray(np.where(rng.random(n) < 0.5, 1.0, -1.0), jnp.float32)


@pytest.mark.parametrize("n", [1, 63, 64, 65, 1000, 12345])
def test_native_pass_matches_jax(built, n):
    rng = np.random.default_rng(n)
    index = jnp.asarray(rng.standard_normal((3, n)) * 4, jnp.float32)
    index = index.at[0, 0].set(0.0)  # a tie at 0 counts as predicted 1 in both
    y = signs(rng, n)
    sums, g = jax.jit(jax.vmap(likelihoods._pass, in_axes=(0, None)))(index, y)
    want_sums, want_g = jax.vmap(likelihoods._pass_jax, in_axes=(0, None))(index, y)
    np.testing.assert_allclose(sums[:, 0], want_sums[:, 0], rtol=1e-6, atol=2e-6)  # the objective
    np.testing.assert_array_equal(np.round(np.asarray(sums[:, 1:]) * n), np.round(np.asarray(want_sums[:, 1:]) * n))
    np.testing.assert_allclose(g, want_g, rtol=2e-6, atol=1e-12)
    s = np.asarray(y, np.float64) * np.asarray(index, np.float64)
    ref = np.mean(np.minimum(0, s) - np.log1p(np.exp(-np.abs(s))), axis=-1)
    np.testing.assert_allclose(sums[:, 0], ref, rtol=1e-6, atol=2e-6)


def test_native_is_in_the_compiled_loop_and_gives_the_jax_numbers(built, monkeypatch):
    d = sf.datasets.hyperplane(n_train=2000, n_valid=500, dim=10, seed=1)
    lik, yenc = sf.Bernoulli().prepare(d.train.y)
    programs = engine._programs(sf.Linear(), lik, "gd", 1e-8, 1, 20, 20, None, False, False,
                                tuple(f"x{i}" for i in range(10)), False, data_mod.FullBatch())
    init, chunk = programs[0], programs[1]
    carry = init(jax.random.key(0), None, 1.0, 10, 1)
    data = {"x": engine.layout(sf.Linear(), d.train.x, "float32"), "y": jnp.asarray(yenc, jnp.float32)}
    assert native.TARGET in chunk.lower(carry, data).as_text()
    fit = lambda: sf.fit(sf.Linear(), sf.Bernoulli(), d.train.x, d.train.y, valid=(d.valid.x, d.valid.y),  # noqa: E731
                         optimizer="gd", learning_rate=1.0, steps=200, restarts=3)
    fast = fit()
    monkeypatch.setattr(likelihoods, "_pass", likelihoods._pass_jax)
    engine._programs.cache_clear()
    slow = fit()
    engine._programs.cache_clear()
    pd_cols = [c for c in fast.history.columns if c != "step"]
    np.testing.assert_allclose(fast.history[pd_cols].to_numpy(), slow.history[pd_cols].to_numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fast.params["beta1"], slow.params["beta1"], rtol=1e-5, atol=1e-6)


def test_native_shows_nan_and_inf_as_the_jax_twin_does(built):
    y = jnp.ones(130, jnp.float32).at[5].set(-1.0)
    for bad, finite in ((jnp.nan, False), (-jnp.inf, False), (jnp.inf, True)):  # +inf for a 1 is a sure 1
        for at in (77, 129):  # inside a block of 64 and in the remainder
            index = jnp.zeros(130, jnp.float32).at[at].set(bad)
            sums, g = jax.jit(likelihoods._pass)(index, y)
            want, want_g = likelihoods._pass_jax(index, y)
            assert bool(np.isfinite(sums[0])) is finite, (bad, at)
            np.testing.assert_allclose(sums, want, rtol=1e-6)
            np.testing.assert_allclose(g, want_g, rtol=1e-6)
    extreme = jnp.array([1000.0, -1000.0] * 40, jnp.float32)
    assert float(jax.jit(likelihoods._pass)(extreme, jnp.ones(80, jnp.float32))[0][0]) == pytest.approx(-500.0)


def test_native_second_derivatives_are_the_jax_twins(built):
    rng = np.random.default_rng(3)
    index, y = jnp.asarray(rng.standard_normal(70), jnp.float32), signs(rng, 70)
    objective = lambda i: likelihoods.bernoulli_pass(i, y)[0]  # noqa: E731
    twin = lambda i: likelihoods._pass_jax(i, y)[0][0]  # noqa: E731
    np.testing.assert_allclose(jax.jit(jax.grad(objective))(index), jax.grad(twin)(index), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(jax.jit(jax.hessian(objective))(index), jax.hessian(twin)(index), rtol=1e-5, atol=1e-9)


def test_native_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("SCANFIT_NATIVE", "0")
    native.bernoulli_target.cache_clear()
    try:
        assert native.bernoulli_target() is False
        assert "SCANFIT_NATIVE=0" in native.status()
    finally:
        monkeypatch.delenv("SCANFIT_NATIVE")
        native.bernoulli_target.cache_clear()


def test_other_backends_lower_to_the_jax_twin(built):
    """A GPU program never calls the CPU kernel: lowering for CUDA (no GPU needed) has no custom call."""
    index, y = jnp.zeros((3, 100), jnp.float32), jnp.ones(100, jnp.float32)
    grad = jax.jit(jax.vmap(jax.grad(lambda i, y: likelihoods.bernoulli_pass(i, y)[0]), in_axes=(0, None)))
    assert native.TARGET not in jax.export.export(grad, platforms=["cuda"])(index, y).mlir_module()
    assert native.TARGET in grad.lower(index, y).as_text()
