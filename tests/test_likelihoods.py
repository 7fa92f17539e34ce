import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scanfit as sf


def fd_grad(f, z, eps=1e-6):
    z = np.asarray(z, dtype=np.float64)
    g = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        e = np.zeros_like(z)
        e[i] = eps
        g[i] = (f(z + e) - f(z - e)) / (2 * eps)
    return g


CASES = [
    (sf.Gaussian(), np.array([0.3, -1.2, 2.0, 0.1, 0.7]), np.array([0.1, -1.0, 2.5, 0.0, 1.0])),
    (sf.Bernoulli(), np.array([0.3, -4.2, 9.0, 0.0, -0.7]), np.array([1, 0, 1, 1, 0])),
    (sf.Categorical(), np.array([[0.3, -1.2, 2.0, 0.1], [1.0, 0.2, -0.5, 3.0], [-2.0, 0.0, 0.5, 0.1]]),
     np.array([0, 2, 1, 1])),
]


@pytest.mark.parametrize("lik, index, y", CASES, ids=["gaussian", "bernoulli", "categorical"])
def test_gradient_matches_finite_differences(lik, index, y):
    with jax.enable_x64(True):
        lik, yenc = lik.prepare(y)
        f = lambda z: float(lik.objective(jnp.asarray(z), jnp.asarray(yenc)))  # noqa: E731
        g = np.asarray(jax.grad(lambda z: lik.objective(z, jnp.asarray(yenc)))(jnp.asarray(index, dtype=jnp.float64)))
        np.testing.assert_allclose(g, fd_grad(f, index), rtol=1e-6, atol=1e-9)


def test_bernoulli_matches_the_textbook_formula():
    z = np.array([0.3, -4.2, 9.0, 0.0, -0.7])
    y = np.array([1, 0, 1, 1, 0])
    p = 1 / (1 + np.exp(-z))
    expected = np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    _, yenc = sf.Bernoulli().prepare(y)
    with jax.enable_x64(True):
        assert float(sf.Bernoulli().objective(jnp.asarray(z), jnp.asarray(yenc))) == pytest.approx(expected, rel=1e-12)


def test_bernoulli_stays_finite_at_extreme_logits():
    z = jnp.array([1000.0, -1000.0, 1000.0, -1000.0])
    y = jnp.array([1.0, -1.0, -1.0, 1.0])  # encoded signs: two right, two badly wrong
    value, grad = jax.value_and_grad(lambda z: sf.Bernoulli().objective(z, y))(z)
    assert float(value) == pytest.approx(-500.0)
    np.testing.assert_allclose(np.asarray(grad), [0.0, 0.0, -0.25, 0.25])


def test_bernoulli_stats_count_exactly():
    """The counts come from one matrix-vector product; they must equal the boolean means, ties at 0 included."""
    rng = np.random.default_rng(3)
    z = np.round(rng.normal(size=1001), 1)  # rounding makes some logits exactly 0 (predicted 1)
    z[:5] = 0.0
    y = rng.integers(0, 2, size=1001)
    _, yenc = sf.Bernoulli().prepare(y)
    stats = sf.Bernoulli().stats(jnp.asarray(z, jnp.float32), jnp.asarray(yenc, jnp.float32))
    pred, truth = z >= 0, y == 1
    assert float(stats["false_pos"]) == pytest.approx(np.mean(pred & ~truth), abs=1e-7)
    assert float(stats["false_neg"]) == pytest.approx(np.mean(~pred & truth), abs=1e-7)
    assert float(stats["predavg"]) == pytest.approx(np.mean(pred), abs=1e-7)
    assert float(stats["accuracy"]) == pytest.approx(np.mean(pred == truth), abs=1e-6)


def test_categorical_matches_log_softmax():
    z = np.array([[0.3, -1.2], [1.0, 0.2], [-2.0, 5.0]])
    y = np.array([2, 0])
    logp = z - np.log(np.exp(z).sum(axis=0))
    lik, yenc = sf.Categorical().prepare(y)
    assert lik.n_classes == 3
    assert float(lik.objective(jnp.asarray(z), jnp.asarray(yenc))) == pytest.approx(logp[[2, 0], [0, 1]].mean(), rel=1e-6)


def test_gaussian_reports_the_profile_loglik():
    index, y = jnp.array([0.0, 1.0, 2.0]), jnp.array([0.5, 1.0, 1.0])
    st = sf.Gaussian().stats(index, y)
    mse = (0.25 + 0 + 1) / 3
    assert float(st["mse"]) == pytest.approx(mse)
    assert float(st["objective"]) == pytest.approx(-0.5 * (np.log(2 * np.pi * mse) + 1))


def test_label_errors():
    with pytest.raises(ValueError, match=r"Bernoulli likelihood needs 'y' in \{0, 1\}.*Got values \[0, 1, 2\]"):
        sf.Bernoulli().prepare(np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="labels in 0..2 in 'y'. Got labels from 0 to 5"):
        sf.Categorical(n_classes=3).prepare(np.array([0, 1, 5]))
    with pytest.raises(ValueError, match="integer labels"):
        sf.Categorical().prepare(np.array([0.5, 1.0]))
