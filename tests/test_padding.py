"""Rows padded to shared sizes (issue 14): cross-validation folds reuse one compiled program, and a
padded fit reports the numbers of the fit on the exact rows (estimates, history, statuses, standard
errors), checked against the fit with padding switched off and against statsmodels."""

import warnings

import numpy as np
import pytest
from jax import monitoring

import scanfit as sf
from scanfit.engine import inputs, loop
from scanfit.likelihoods import bernoulli, native


@pytest.fixture
def no_padding(monkeypatch):
    def run(f):
        monkeypatch.setattr(inputs, "PADDING", False)
        try:
            return f()
        finally:
            monkeypatch.setattr(inputs, "PADDING", True)
    return run


def _cancer(n=None):
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    x, y = d.data[:, [0, 1, 4, 7]], d.target
    return (x, y) if n is None else (x[:n], y[:n])


class _Compiles:
    """Counts XLA compilations (backend compiles) while active."""

    def __init__(self):
        self.count, self.on = 0, False
        monitoring.register_event_duration_secs_listener(self._event)

    def _event(self, event, secs, **kw):
        if self.on and event == "/jax/core/compile/backend_compile_duration":
            self.count += 1

    def __enter__(self):
        self.count, self.on = 0, True
        return self

    def __exit__(self, *exc):
        self.on = False


COMPILES = _Compiles()


def test_the_ladder():
    sizes = [inputs.padded_rows(n) for n in range(1, inputs.PAD_MAX + 1)]
    assert all(m >= n for n, m in enumerate(sizes, start=1)) and sizes == sorted(sizes)
    assert set(sizes[:inputs.PAD_MIN]) == {inputs.PAD_MIN}
    assert max(m / n for n, m in enumerate(sizes, start=1) if n > inputs.PAD_MIN) <= 1.25
    assert len(set(sizes)) == 1 + 4 * 9  # 128 .. 65536: four sizes per doubling
    assert inputs.padded_rows(inputs.PAD_MAX + 1) == inputs.PAD_MAX + 1  # large fits keep their shapes


def test_cross_validation_traces_the_fit_once(no_padding):
    """569 rows in 5 folds train on 455 and 456 rows: one padded size (512), one trace; without
    padding each row count traces again. The scores are the same."""
    from sklearn.model_selection import cross_val_score
    from scanfit.sklearn import LogisticRegression

    x, y = _cancer()
    before = loop.traces()
    padded = cross_val_score(LogisticRegression(tol=1.01e-8), x, y, cv=5)  # a tol no other test compiles
    assert loop.traces() - before == 1
    before = loop.traces()
    exact = no_padding(lambda: cross_val_score(LogisticRegression(tol=1.02e-8), x, y, cv=5))
    assert loop.traces() - before == 2
    np.testing.assert_array_equal(padded, exact)
    assert 0.9 < padded.mean() < 0.96


def test_a_fit_of_another_row_count_compiles_nothing():
    """Part 2: after one fit (and its summary), a fit of another row count with the same padded size
    compiles no program at all, and neither does its summary."""
    x, y = _cancer()
    sf.fit(sf.Linear(), sf.Bernoulli(), x[:300], y[:300], tol=1.03e-8).summary()
    with COMPILES as c:
        r = sf.fit(sf.Linear(), sf.Bernoulli(), x[:301], y[:301], tol=1.03e-8)
    assert c.count == 0 and r.status.code == "converged"
    with COMPILES as c:
        r.summary()
    assert c.count == 1  # the summary's derivatives: one program per design shape (301 rows, unpadded)
    with COMPILES as c:
        sf.fit(sf.Linear(), sf.Bernoulli(), x[:290], y[:290], tol=1.03e-8).summary()
    assert c.count == 1


def test_padded_logit_is_statsmodels_logit():
    sm = pytest.importorskip("statsmodels.api")
    x, y = _cancer(300)
    assert inputs.padded_rows(300) == 312
    r = sf.fit(sf.Linear(), sf.Bernoulli(), x, y)
    ref = sm.Logit(y, sm.add_constant(x)).fit(disp=0, tol=1e-12)
    table = r.summary()
    np.testing.assert_allclose(table["estimate"], ref.params, rtol=1e-7)
    np.testing.assert_allclose(table["std_err"], ref.bse, rtol=1e-6)
    np.testing.assert_allclose(r.final["train_objective"] * 300, ref.llf, rtol=1e-10)
    np.testing.assert_allclose(r.final["train_accuracy"], np.mean((ref.predict() > 0.5) == y), atol=1e-12)
    assert r.train[0].shape == (300, 4) and r.train[1].shape == (300,) and r.weights is None


def _compare(padded, exact, *, rtol_params, rtol_history):
    assert (padded.status.code, padded.status.steps) == (exact.status.code, exact.status.steps)
    assert list(padded.history.columns) == list(exact.history.columns)
    np.testing.assert_allclose(padded.history.to_numpy(), exact.history.to_numpy(), rtol=rtol_history,
                               atol=rtol_history)
    for k in exact.params:
        np.testing.assert_allclose(padded.params[k], exact.params[k], rtol=rtol_params, atol=rtol_params)
    assert padded.final.keys() == exact.final.keys()
    for k in exact.final:
        np.testing.assert_allclose(padded.final[k], exact.final[k], rtol=rtol_history, atol=rtol_history, err_msg=k)


rng = np.random.default_rng(0)
X, Y = _cancer(400)
W = rng.uniform(0.5, 2.0, len(Y))
COUNTS = rng.poisson(np.exp(0.3 + 0.02 * (X[:, 1] - 19)))
MU = np.exp(1.0 + 0.02 * (X[:, 1] - 19))
OVERDISPERSED = rng.negative_binomial(2, 2 / (2 + MU))  # alpha = 0.5: the NB estimate is interior
CLASSES = (X[:, 0] > 12).astype(int) + (X[:, 0] > 16)
VALID = (X[300:], Y[300:])

# float64 second-order fits: the estimates to 1e-9; the history to 1e-6 (Newton forms its Hessian's
# products in float32, so the iterates before the maximum differ in the float32 digits)
CASES = {
    "logit": (lambda: sf.fit(sf.Linear(), sf.Bernoulli(), X, Y), 1e-9, 1e-6),
    "logit weighted": (lambda: sf.fit(sf.Linear(), sf.Bernoulli(), X, Y, weights=W), 1e-9, 1e-6),
    "probit": (lambda: sf.fit(sf.Linear(), sf.Bernoulli(link="probit"), X, Y), 1e-9, 1e-6),
    "poisson offset": (lambda: sf.fit(sf.Linear(), sf.Poisson(), X[:, 1:], COUNTS, offset=0.1 * X[:, 0] / 20), 1e-9, 1e-6),
    "negative binomial": (lambda: sf.fit(sf.Linear(), sf.NegativeBinomial(), X[:, 1:], OVERDISPERSED), 1e-8, 1e-6),
    "categorical": (lambda: sf.fit(sf.Linear(), sf.Categorical(), X[:, 1:], CLASSES), 1e-9, 1e-6),
    "gaussian": (lambda: sf.fit(sf.Linear(), sf.Gaussian(), X[:, 1:], X[:, 0]), 1e-9, 1e-9),
    "lbfgs mlp": (lambda: sf.fit(sf.MLP(hidden=2), sf.Bernoulli(), X, Y, optimizer="lbfgs", steps=30), 1e-6, 1e-8),
    # float32 first-order fits, the unweighted logit through the native kernel: float32 rounding
    "adam logit valid restarts": (lambda: sf.fit(sf.Linear(), sf.Bernoulli(), X[:300], Y[:300], valid=VALID,
                                                 optimizer="adam", steps=200, restarts=3), 1e-4, 1e-4),
    "adam mlp early stopping": (lambda: sf.fit(sf.MLP(hidden=3), sf.Bernoulli(), X[:300], Y[:300], valid=VALID,
                                               optimizer="adam", steps=400,
                                               early_stopping=sf.EarlyStopping(patience=20)), 1e-4, 1e-4),
    "adam categorical mlp": (lambda: sf.fit(sf.MLP(hidden=4), sf.Categorical(), X[:, 1:], CLASSES,
                                            optimizer="adam", steps=200), 1e-4, 1e-4),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_padded_fit_gives_the_numbers_of_the_exact_rows(case, no_padding):
    fit, rtol_params, rtol_history = CASES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        padded, exact = fit(), no_padding(fit)
    _compare(padded, exact, rtol_params=rtol_params, rtol_history=rtol_history)
    assert padded.train[0].shape == exact.train[0].shape and padded.design.names == exact.design.names
    if padded.weights is not None:
        np.testing.assert_array_equal(padded.weights, W)
    if case in ("logit", "logit weighted", "probit", "poisson offset", "gaussian"):
        a, b = padded.summary(), exact.summary()
        np.testing.assert_allclose(a[["estimate", "std_err"]], b[["estimate", "std_err"]], rtol=1e-7)
        assert a.attrs["n_obs"] == b.attrs["n_obs"]


def test_a_one_class_classifier_is_still_named(no_padding):
    """assemble's warning counts predicted classes over the real rows only: 50 rows padded to 128,
    whose padded rows (index 0) would count as predicted 1s."""
    r = np.random.default_rng(2)
    x, y = r.normal(size=(50, 1)), (r.random(50) < 0.3).astype(int)
    with pytest.warns(sf.FitWarning, match="predicts class 0 for every training row"):
        sf.fit(sf.Linear(), sf.Bernoulli(), x, y, optimizer="gd", learning_rate=1e-6, steps=1,
               init_params={"beta0": np.array(-5.0), "beta1": np.array([0.0])})


@pytest.mark.parametrize("which", ["jax", "native"])
def test_the_bernoulli_pass_skips_padded_rows(which):
    """y = 0 marks a padded row: the sums and the gradient's weights are those of the real rows."""
    import jax
    import jax.numpy as jnp

    if which == "native" and not native.bernoulli_target():
        pytest.skip("no native kernel here")
    f = bernoulli._pass_jax if which == "jax" else jax.jit(bernoulli._pass)
    r = np.random.default_rng(1)
    n, m = 150, 200
    index = r.normal(size=(3, n)).astype(np.float32) * 3
    y = np.where(r.random(n) < 0.4, 1.0, -1.0).astype(np.float32)
    junk = r.normal(size=(3, m - n)).astype(np.float32)  # whatever a padded row's index is
    sums, g = jax.vmap(f, in_axes=(0, None))(jnp.asarray(index), jnp.asarray(y))
    psums, pg = jax.vmap(f, in_axes=(0, None))(jnp.asarray(np.concatenate([index, junk], axis=1)),
                                               jnp.asarray(np.r_[y, np.zeros(m - n, np.float32)]))
    np.testing.assert_allclose(psums, sums, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(pg[:, :n], g, rtol=1e-6, atol=1e-9)
    assert not np.asarray(pg[:, n:]).any()
    s = y.astype(np.float64) * index
    np.testing.assert_allclose(sums[:, 0], np.mean(np.minimum(0, s) - np.log1p(np.exp(-np.abs(s))), axis=-1),
                               rtol=1e-6)
