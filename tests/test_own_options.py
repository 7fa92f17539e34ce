"""sf.fit_loglik's options and failures: names, constraints, integer columns, weights, restarts,
L-BFGS beyond the Newton limit, lr_test, and each refusal naming the parameter and the fix."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import scanfit as sf

N = 200
RNG = np.random.default_rng(5)
X1, X2 = RNG.normal(size=N), RNG.normal(size=N)
Y = 1.0 + 2.0 * X1 - 1.0 * X2 + 0.5 * RNG.normal(size=N)
DATA = {"y": Y, "x1": X1, "x2": X2}
START = {"b0": 0.0, "b1": 0.0, "b2": 0.0, "sigma": 1.0}


def normal(p, d):
    r = (d["y"] - p["b0"] - p["b1"] * d["x1"] - p["b2"] * d["x2"]) / p["sigma"]
    return -0.5 * r**2 - jnp.log(p["sigma"]) - 0.5 * jnp.log(2 * jnp.pi)


def small(p, d):  # the restricted model: no x2
    r = (d["y"] - p["b0"] - p["b1"] * d["x1"]) / p["sigma"]
    return -0.5 * r**2 - jnp.log(p["sigma"]) - 0.5 * jnp.log(2 * jnp.pi)


@pytest.fixture(scope="module")
def full():
    return sf.fit_loglik(normal, START, DATA, constraints={"sigma": "positive"})


def test_weights_count_rows_and_lr_test_compares_nested_fits(full):
    w = np.where(np.arange(N) < 50, 2.0, 1.0)
    weighted = sf.fit_loglik(normal, START, DATA, weights=w, constraints={"sigma": "positive"})
    rows = np.r_[np.arange(N), np.arange(50)]
    doubled = sf.fit_loglik(normal, START, {k: v[rows] for k, v in DATA.items()}, constraints={"sigma": "positive"})
    a, b = weighted.summary(cov_type="HC0"), doubled.summary(cov_type="HC0")
    np.testing.assert_allclose(a["estimate"], b["estimate"], rtol=1e-9)
    np.testing.assert_allclose(a["std_err"], b["std_err"], rtol=1e-9)
    assert a.attrs["n_obs"] == N + 50
    restricted = sf.fit_loglik(small, {"b0": 0.0, "b1": 0.0, "sigma": 1.0}, DATA, constraints={"sigma": "positive"})
    test = sf.lr_test(restricted, full)
    want = 2 * (full.summary().attrs["loglik"] - restricted.summary().attrs["loglik"])
    assert (test["statistic"], test["df"]) == (pytest.approx(want, rel=1e-10), 1)
    wald = full.wald_test("b2 = 0")
    assert wald["statistic"] == pytest.approx(full.summary().loc["b2", "z"] ** 2, rel=1e-10)


def test_integer_group_ids_index_a_named_vector_and_restarts_keep_the_best():
    g = np.arange(N) % 4
    y = np.array([0.0, 1.0, 2.0, 3.0])[g] + 0.3 * RNG.normal(size=N)

    def groups(p, d):
        return -0.5 * ((d["y"] - p["mu"][d["g"]]) / p["s"]) ** 2 - jnp.log(p["s"])

    frame = pd.DataFrame({"y": y, "g": g})
    r = sf.fit_loglik(groups, {"mu": np.zeros(4), "s": 1.0}, frame, names={"mu": ["a", "b", "c", "d"]},
                      constraints={"s": "positive"}, restarts=3)
    assert r.status.code == "converged"
    np.testing.assert_allclose(r.params["mu"], frame.groupby("g")["y"].mean(), rtol=1e-9)
    assert list(r.summary().index) == ["a", "b", "c", "d", "s"]
    assert len(r.restarts) == 3 and len(r.start_histories) == 3
    starts = [h["train_objective"].iloc[0] for h in r.start_histories]
    assert starts[0] == pytest.approx(np.mean(-0.5 * y**2), rel=1e-12)  # start 0 is params itself
    assert starts[0] != starts[1]  # the others moved away from it
    np.testing.assert_allclose(r.loglik(frame.iloc[:5]), r.loglik()[:5], rtol=1e-12)


def test_constraints_interval_and_probability_and_lbfgs_beyond_the_newton_limit(monkeypatch):
    k = RNG.binomial(1, 0.3, size=N)

    def bern(p, d):  # q: a Bernoulli probability; rho: a normal mean of known variance, inside (-1, 1)
        return d["k"] * jnp.log(p["q"]) + (1 - d["k"]) * jnp.log1p(-p["q"]) - 0.5 * (d["z"] - p["rho"]) ** 2

    z = 0.2 + RNG.normal(size=N)
    r = sf.fit_loglik(bern, {"q": 0.5, "rho": 0.5}, {"k": k, "z": z}, constraints={"q": "probability", "rho": (-1, 1)})
    s = r.summary()
    np.testing.assert_allclose(s["estimate"], [k.mean(), z.mean()], rtol=1e-8)
    np.testing.assert_allclose(s["std_err"], [np.sqrt(k.mean() * (1 - k.mean()) / N), 1 / np.sqrt(N)], rtol=1e-8)
    monkeypatch.setattr("scanfit.api.NEWTON_UP_TO", 2)
    wide = sf.fit_loglik(normal, START, DATA, constraints={"sigma": "positive"})
    assert (wide.config.optimizer, wide.status.code) == ("lbfgs", "converged")
    narrow = sf.fit_loglik(normal, START, DATA, constraints={"sigma": "positive"}, optimizer="newton")
    np.testing.assert_allclose(wide.summary()["estimate"], narrow.summary()["estimate"], rtol=1e-5)


@pytest.mark.parametrize("fn, params, options, match", [
    (lambda p, d: jnp.sum(normal(p, d)), START, {"constraints": {"sigma": "positive"}},
     r"shape \(200,\)\. It returns shape \(\): return the per-row values, not their sum"),
    (normal, START, {"weights": "w"}, r"'weights' parameter of fit_loglik names the column 'w', which 'data' lacks"),
    (normal, {**START, "sigma": -1.0}, {}, r"NaN or infinite at the starting values for 200 of 200 rows.*sigma=-1"),
    (normal, {**START, "extra": 0.0}, {"constraints": {"sigma": "positive"}},
     r"does not depend on the parameter \['extra'\].*zero curvature"),
    (normal, {**START, "sigma": -1.0}, {"constraints": {"sigma": "positive"}},
     r"starting value of parameter 'sigma' is -1.0, which is not positive"),
    (normal, START, {"constraints": {"sigma": "increasing"}}, r"'increasing' of parameter 'sigma'.*shape \(\)"),
    (normal, START, {"constraints": {"sigma": "postive"}}, r"constraint of parameter 'sigma' must be one of"),
    (normal, START, {"constraints": {"tau": "positive"}}, r"'constraints' parameter of fit_loglik names \['tau'\]"),
    (normal, START, {"names": {"b0": ["x"]}}, r"names\['b0'\] gives 1 labels, but parameter 'b0' has shape \(\)"),
    (normal, {**START, "b0": [0.0, 0.0]}, {"names": {"b0": ["a"]}}, r"names\['b0'\] gives 1 labels.*\(2,\)"),
])
def test_failures_name_the_parameter_and_the_fix(fn, params, options, match):
    with pytest.raises((ValueError, TypeError), match=match):
        sf.fit_loglik(fn, params, DATA, **options)


def test_bad_data_and_non_identified_models_are_refused(full):
    with pytest.raises(TypeError, match=r"column 'y' of 'data' holds <U1 values.*factorize"):
        sf.fit_loglik(normal, START, {**DATA, "y": np.array(["a"] * N)})
    with pytest.raises(ValueError, match=r"column 'x1' of 'data' has 2 NaN.*row 3"):
        sf.fit_loglik(normal, START, {**DATA, "x1": np.where(np.isin(np.arange(N), [3, 9]), np.nan, X1)})
    with pytest.raises(ValueError, match=r"column 'x2' of 'data' has 199 rows, but 'y' has 200"):
        sf.fit_loglik(normal, START, {**DATA, "x2": X2[:-1]})

    def twice(p, d):  # a and b enter only as their sum
        return -0.5 * (d["y"] - p["a"] - p["b"]) ** 2

    r = sf.fit_loglik(twice, {"a": 0.0, "b": 0.0}, DATA)
    with pytest.raises(sf.NotIdentifiedError, match=r"\['a', 'b'\] can move together"):
        r.summary()
    with pytest.raises(ValueError, match=r"HC2 and HC3 need each row's leverage"):
        full.summary(cov_type="HC3")
    with pytest.raises(ValueError, match="no mean to predict"):
        full.predict(DATA)
    with pytest.raises(NotImplementedError, match="not supported yet"):
        full.save("nowhere")


def test_a_second_fit_of_the_same_function_and_shapes_does_not_recompile(full):
    from scanfit.engine import loop

    before = loop.traces()
    again = sf.fit_loglik(normal, START, DATA, constraints={"sigma": "positive"})
    assert loop.traces() == before
    np.testing.assert_array_equal(again.unconstrained["b1"], full.unconstrained["b1"])
