"""optimizer="newton" and "lbfgs": exact maximum likelihood, stopping, history, generic path.

References: OLS in closed form (numpy lstsq), statsmodels Logit/MNLogit maxima, finite differences.
Shapes are shared with tests/test_inference.py so that both files reuse the compiled programs.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scanfit as sf
from scanfit.engine import loop as engine
from scanfit.engine import second_order
from scanfit.likelihoods.glm import glm_family


def gaussian_data():
    d = sf.datasets.linear(n_train=300, n_valid=10, seed=0)
    return d.train.x, d.train.y


def bernoulli_data():
    d = sf.datasets.hyperplane(n_train=500, n_valid=10, dim=4, seed=0)
    return d.train.x, d.train.y


def categorical_data():
    x, _ = bernoulli_data()
    rng = np.random.default_rng(1)
    eta = x[:, :2] @ np.array([[0.5, -1.0], [1.0, 0.5]]) + rng.gumbel(size=(len(x), 2))
    y = np.where(eta.max(axis=1) > rng.gumbel(size=len(x)), 1 + eta.argmax(axis=1), 0)
    return x, y


def objective_ml(x, y, family, b0, b1):
    """Mean log-likelihood in NumPy (the exact maximum's value is the reference)."""
    design = np.column_stack([np.ones(len(x)), x])
    if family == "bernoulli":
        eta = design @ np.r_[b0, b1]
        return np.mean(np.where(y, -np.logaddexp(0, -eta), -np.logaddexp(0, eta)))
    logits = design @ np.vstack([b0[None, :], b1])
    return np.mean(logits[np.arange(len(y)), y] - np.logaddexp.reduce(logits, axis=1))


@pytest.mark.parametrize("optimizer", ["newton"])
def test_gaussian_matches_closed_form_ols(optimizer):
    x, y = gaussian_data()
    r = sf.fit(sf.Linear(), sf.Gaussian(), x, y, optimizer=optimizer, dtype="float64", steps=64)
    ols = np.linalg.lstsq(np.column_stack([np.ones(len(x)), x]), y, rcond=None)[0]
    assert r.status.code == "converged"
    np.testing.assert_allclose(np.r_[r.params["beta0"], r.params["beta1"]], ols, rtol=1e-8)
    if optimizer == "newton":  # a quadratic objective: one Newton step, then the gradient check
        assert len(r.history) == 2


@pytest.mark.parametrize("optimizer", ["newton", "lbfgs"])
def test_logit_reaches_statsmodels_maximum(optimizer):
    sm = pytest.importorskip("statsmodels.api")
    x, y = bernoulli_data()
    r = sf.fit(sf.Linear(), sf.Bernoulli(), x, y, optimizer=optimizer, dtype="float64", steps=64)
    ref = sm.Logit(y.astype(float), sm.add_constant(x)).fit(disp=0, tol=1e-12, maxiter=100)
    assert r.status.code == "converged"
    np.testing.assert_allclose(np.r_[r.params["beta0"], r.params["beta1"]], ref.params, rtol=1e-6)
    mine = objective_ml(x, y, "bernoulli", r.params["beta0"], r.params["beta1"])
    assert abs(mine - ref.llf / len(y)) <= 1e-12 * abs(mine)
    h = r.history
    # the history's last row is the converging step's start; the kept last step can only add (below 1e-9)
    assert len(h) > 2 and h["train_objective"].iloc[-1] == pytest.approx(r.final["train_objective"], rel=1e-9)
    assert r.final["train_objective"] >= h["train_objective"].iloc[-1]
    if optimizer == "newton":  # step-halving keeps every step uphill
        assert (np.diff(h["train_objective"].to_numpy()) >= -1e-15).all()
        assert len(h) <= 12


def test_newton_multinomial_holds_class_zero_and_reaches_mnlogit():
    sm = pytest.importorskip("statsmodels.api")
    x, y = categorical_data()
    start = {"beta0": np.array([0.3, 0.0, 0.0]), "beta1": np.tile([[0.7], [0.0], [0.0]], (4, 1)).reshape(4, 3)}
    r = sf.fit(sf.Linear(), sf.Categorical(), x, y, optimizer="newton", dtype="float64", steps=64, init_params=start)
    assert r.status.code == "converged"
    # class 0 is the pivot: its coefficients never move from the start
    np.testing.assert_array_equal(r.params["beta1"][:, 0], start["beta1"][:, 0])
    assert r.params["beta0"][0] == 0.3
    ref = sm.MNLogit(y, sm.add_constant(x)).fit(disp=0, tol=1e-12, maxiter=100)
    contrast = np.vstack([r.params["beta0"][None, :], r.params["beta1"]])
    contrast = contrast[:, 1:] - contrast[:, :1]
    np.testing.assert_allclose(contrast, ref.params, rtol=1e-6, atol=1e-9)


def test_generic_hessian_path_matches_glm_path():
    x, y = bernoulli_data()
    model = sf.Function(lambda p, x: p["b"] + x @ p["w"], init=lambda key: {"b": jnp.zeros(()), "w": jnp.zeros(4)})
    assert glm_family(model, sf.Bernoulli()) is None
    generic = sf.fit(model, sf.Bernoulli(), x, y, optimizer="newton", dtype="float64", steps=64)
    glm = sf.fit(sf.Linear(), sf.Bernoulli(), x, y, optimizer="newton", dtype="float64", steps=64)
    assert generic.status.code == "converged"
    np.testing.assert_allclose(generic.params["w"], glm.params["beta1"], rtol=1e-9)
    np.testing.assert_allclose(generic.params["b"], glm.params["beta0"], rtol=1e-9)


def test_glm_gradient_and_information_match_autodiff():
    with jax.enable_x64(True):
        x, y = categorical_data()
        xt, yj = sf.Linear().columns_of(jnp.asarray(x[:60])), jnp.asarray(y[:60].astype(np.int32))
        rng = np.random.default_rng(0)
        b0, b1 = jnp.asarray(rng.standard_normal(3)), jnp.asarray(rng.standard_normal((4, 3)))

        def f(free):  # classes 1..2 free, class 0 fixed: the same coordinates as the Newton step
            coef = jnp.concatenate([jnp.stack([b0[0], *b1[:, 0]])[None, :], free.reshape(2, 5)])  # (3, d+1)
            return sf.Categorical(n_classes=3).objective(coef @ xt, yj)

        free = jnp.concatenate([jnp.concatenate([b0[k:k + 1], b1[:, k]]) for k in (1, 2)])

        @jax.jit
        def both(free, b0, b1):
            index = sf.Linear().index_t({"beta0": b0, "beta1": b1}, xt)
            return (second_order._glm_gradient(None, "categorical", index, yj, xt), jax.grad(f)(free),
                    second_order._glm_information(None, "categorical", index, yj, xt), -jax.hessian(f)(free))

        g, g_ad, info, info_ad = both(free, b0, b1)
        np.testing.assert_allclose(g, g_ad, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(info, info_ad, rtol=1e-10, atol=1e-14)


def test_float32_newton_stops_at_working_precision():
    x, y = bernoulli_data()
    r32 = sf.fit(sf.Linear(), sf.Bernoulli(), x, y, optimizer="newton", dtype="float32", steps=64)
    r64 = sf.fit(sf.Linear(), sf.Bernoulli(), x, y, optimizer="newton", dtype="float64", steps=64)
    assert r32.status.code == "converged" and r32.status.steps < 20  # not the 100-step cap
    np.testing.assert_allclose(r32.params["beta1"], r64.params["beta1"], rtol=1e-4)


def test_second_fit_does_not_recompile_and_restarts_converge():
    x, y = bernoulli_data()
    sf.fit(sf.Linear(), sf.Bernoulli(), x, y, optimizer="newton", dtype="float64", steps=64)
    before = engine.traces()
    sf.fit(sf.Linear(), sf.Bernoulli(), x, y, optimizer="newton", dtype="float64", steps=64, seed=5)
    assert engine.traces() == before
    r = sf.fit(sf.Linear(), sf.Bernoulli(), x, y, optimizer="newton", dtype="float64", steps=64, restarts=2)
    assert [s.code for s in r.start_statuses] == ["converged", "converged"]
    np.testing.assert_allclose(r.start_params[0]["beta1"], r.start_params[1]["beta1"], rtol=1e-8)


def test_newton_on_a_network_climbs():
    """Generic path on a non-concave objective: the modified Newton direction still goes uphill."""
    x, y = bernoulli_data()
    r = sf.fit(sf.MLP(hidden=2, activation="tanh"), sf.Bernoulli(), x[:200], y[:200], optimizer="newton",
               dtype="float64", steps=30)
    obj = r.history["train_objective"].to_numpy()
    assert np.isfinite(obj).all() and obj[-1] > obj[0] + 0.1
    assert (np.diff(obj) >= -1e-12).all()


def test_make_rejects_unknown_names():
    with pytest.raises(ValueError, match="'newton' or 'lbfgs'. Got 'bfgs'"):
        second_order.make("bfgs", 1e-8)
    with pytest.raises(ValueError, match="The 'optimizer' parameter must be one of"):
        sf.fit(sf.Linear(), sf.Bernoulli(), *bernoulli_data(), optimizer="newtons")


def test_newton_on_raw_columns_starts_from_the_intercept_only_model():
    """standardize=False with a column of values near 5,000: from the seeded random start the first Newton
    step stalled (the index far out where the logit is flat); from the intercept-only model (zero slopes, as
    the streamed fit starts) it converges to statsmodels' estimates."""
    import statsmodels.api as sm

    rng = np.random.default_rng(0)
    n = 4000
    X = rng.normal(size=(n, 3)) * [1, 100, 0.01] + [0, 5000, 1]
    eta = 0.5 * X[:, 0] + 0.01 * (X[:, 1] - 5000) + 20 * (X[:, 2] - 1)
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    r = sf.fit(sf.Linear(), sf.Bernoulli(), X, y, standardize=False, optimizer="newton")
    m = sm.Logit(y, sm.add_constant(X)).fit(disp=0, tol=1e-12, maxiter=100)
    assert r.status.code == "converged", r.status.message
    np.testing.assert_allclose(np.r_[r.params["beta0"], r.params["beta1"]], m.params, rtol=1e-8)
    np.testing.assert_allclose(r.summary()["std_err"].to_numpy(), m.bse, rtol=1e-6)
    # Gaussian too: its intercept-only start is the mean of y
    yg = X @ [1.0, 0.02, 5.0] + rng.normal(size=n)
    g = sf.fit(sf.Linear(), sf.Gaussian(), X, yg, standardize=False, optimizer="newton")
    ols = sm.OLS(yg, sm.add_constant(X)).fit()
    assert g.status.code == "converged", g.status.message
    np.testing.assert_allclose(np.r_[g.params["beta0"], g.params["beta1"]], ols.params, rtol=1e-7)
