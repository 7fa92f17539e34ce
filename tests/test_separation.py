"""The separation check: a certificate from the fit's own estimate where the maximum exists, the
linear program where it may not (identification.maximum_exists / check_separation)."""

import warnings

import numpy as np
import pytest

import scanfit as sf
from scanfit.data import identification


def _quasi(n=300, seed=0):
    """x1 in {-1, 0, 1}: y = 0 wherever x1 = -1 and y = 1 wherever x1 = 1 (quasi-complete separation)."""
    rng = np.random.default_rng(seed)
    x1 = rng.integers(-1, 2, n).astype(float)
    x2 = rng.normal(size=n)
    y = np.where(x1 < 0, 0, np.where(x1 > 0, 1, (rng.random(n) < 0.5).astype(int)))
    return np.c_[x1, x2], y


def test_quasi_complete_separation_by_a_three_valued_column_is_reported():
    # Newton's decrement goes to zero along the separating direction: the fit looked "converged" with the
    # coefficient near 20 and every fitted logit under 30, so no check ran before
    x, y = _quasi()
    with pytest.warns(sf.FitWarning, match="separat"):
        r = sf.fit(sf.Linear(), sf.Bernoulli(), x, y)
    assert r.status.code == "separation" and "'x0' separates" in r.status.message
    # the certificate holds on the rows with x0 = 0; the tail's rows separate in the null space of theirs
    assert identification.maximum_exists(x, y, np.r_[r.params["beta0"], r.params["beta1"]]) is False
    statsmodels = pytest.importorskip("statsmodels.api")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ref = statsmodels.Logit(y, statsmodels.add_constant(x)).fit(disp=0)
            assert not ref.mle_retvals["converged"] or abs(ref.params[1]) > 15
        except Exception as err:  # PerfectSeparationError in older statsmodels
            assert "separation" in str(err).lower()


def test_quasi_complete_separation_by_a_combination_of_columns_is_reported():
    x, y = _quasi(seed=3)
    both = np.c_[x[:, 0] + x[:, 1], x[:, 1]]  # no single column separates; x0 - x1 does
    with pytest.warns(sf.FitWarning, match="separat"):
        r = sf.fit(sf.Linear(), sf.Bernoulli(), both, y)
    assert r.status.code == "separation" and "quasi-complete" in r.status.message
    assert "'x0', 'x1'" in r.status.message


def test_probit_and_weights_see_the_same_separation():
    x, y = _quasi(seed=1)
    with pytest.warns(sf.FitWarning, match="separat"):
        assert sf.fit(sf.Linear(), sf.Bernoulli(link="probit"), x, y).status.code == "separation"
    # rows of weight zero do not count: overlapping rows given weight 0 leave the classes separated
    rng = np.random.default_rng(2)
    xs = rng.normal(size=(200, 2))
    ys = (xs[:, 0] + xs[:, 1] > 0).astype(int)
    ys[:20] = 1 - ys[:20]  # 20 rows overlap ...
    w = np.r_[np.zeros(20), np.ones(180)]  # ... but weigh nothing
    with pytest.warns(sf.FitWarning, match="separat"):
        assert sf.fit(sf.Linear(), sf.Bernoulli(), xs, ys, weights=w).status.code == "separation"
    assert sf.fit(sf.Linear(), sf.Bernoulli(), xs, ys).status.code == "converged"


def _random_problem(rng, classes):
    n, d = int(rng.integers(8, 60)), int(rng.integers(1, 4))
    x = rng.normal(size=(n, d))
    if rng.random() < 0.3:
        x[:, 0] = rng.integers(-1, 2, n)  # ties, for quasi-complete separation
    scale = rng.choice([0.5, 3.0, 30.0])
    eta = scale * x @ rng.normal(size=(d, classes))
    y = np.argmax(eta + rng.gumbel(size=eta.shape) * rng.choice([0.0, 1.0]), axis=1)
    return x, y


@pytest.mark.parametrize("classes", [2, 3])
def test_the_verdict_never_contradicts_the_linear_program(classes):
    # from a poor start (zero coefficients) the check takes its own Newton steps; whatever it decides must
    # agree with the linear program over all rows, and where the maximum exists it decides alone mostly
    rng = np.random.default_rng(classes)
    exists = 0
    for _ in range(60):
        x, y = _random_problem(rng, classes)
        if len(np.unique(y)) < classes:
            continue
        names = tuple(f"x{j}" for j in range(x.shape[1]))
        coef = np.zeros(x.shape[1] + 1) if classes == 2 else np.zeros((x.shape[1] + 1, classes))
        verdict = identification.maximum_exists(x, y, coef, classes)
        truth = identification.separation(x, y, names, classes) is None
        assert verdict is None or verdict == truth, (x, y, verdict)
        if truth:  # where the maximum exists, the check decides it alone
            assert verdict is True, (x, y)
            exists += 1
    assert exists >= 10


def test_a_fit_whose_maximum_exists_never_runs_the_linear_program(monkeypatch):
    # the notebook's hyperplane logit has fitted logits beyond 30 but no separation: a certificate from the
    # fit's own estimate settles it (the program over 10,000 rows cost a second a fit)
    d = sf.datasets.hyperplane(n_train=3000, n_valid=10, dim=20, seed=0)

    def refuse(*args, **kwargs):
        raise AssertionError("the linear program ran")

    monkeypatch.setattr(identification, "separation", refuse)
    r = sf.fit(sf.Linear(), sf.Bernoulli(), d.train.x, d.train.y)
    assert r.status.code == "converged"
    r.summary()
    eta = r.params["beta0"] + d.train.x @ r.params["beta1"]
    assert np.max(np.abs(eta)) > 15  # rows near 0 or 1 (the tail the certificate leaves to the program)


def test_multinomial_certificate_at_the_estimate():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 3))
    y = np.argmax(x @ rng.normal(size=(3, 4)) + rng.gumbel(size=(400, 4)), axis=1)
    r = sf.fit(sf.Linear(), sf.Categorical(), x, y)
    assert r.status.code == "converged"
    coef = np.vstack([r.params["beta0"][None], r.params["beta1"]])
    assert identification.maximum_exists(x, y, coef, 4) is True


def test_a_streamed_fit_reports_the_quasi_complete_separation_too():
    from scanfit.data.sources import Arrays

    x, y = _quasi()
    with pytest.warns(sf.FitWarning, match="separat"):
        r = sf.fit(sf.Linear(), sf.Bernoulli(), Arrays(x, y.astype(float)))
    assert r.status.code == "separation" and "'x0' separates" in r.status.message
    # a streamed logit whose maximum exists keeps its status: no row in the tail and a tiny decrement
    d = sf.datasets.hyperplane(n_train=2000, n_valid=10, dim=3, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sf.FitWarning)
        r = sf.fit(sf.Linear(), sf.Bernoulli(), Arrays(d.train.x, d.train.y.astype(float)))
    assert r.status.code == "converged"
