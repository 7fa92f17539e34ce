import numpy as np
import pytest

import scanfit as sf


@pytest.mark.parametrize("make", [sf.datasets.linear, sf.datasets.hyperplane, sf.datasets.radial, sf.datasets.hill])
def test_seeded_and_shaped(make):
    a, b, c = make(seed=1), make(seed=1), make(seed=2)
    np.testing.assert_array_equal(a.train.x, b.train.x)
    np.testing.assert_array_equal(a.valid.y, b.valid.y)
    assert not np.array_equal(a.train.x, c.train.x)
    assert a.train.x.ndim == 2 and a.train.y.shape == (a.train.x.shape[0],)
    assert a.train.x.shape[0] == 10_000


def test_notebook_defaults():
    assert sf.datasets.hill().valid.x.shape == (1_000, 2)
    assert sf.datasets.hyperplane().valid.x.shape == (10_000, 100)
    assert sf.datasets.radial().train.x.shape == (10_000, 100)


def test_rules_hold():
    h = sf.datasets.hill(seed=3)
    x = h.train.x
    np.testing.assert_array_equal(h.train.y, x[:, 1] >= 2.5 * x[:, 0] * (1 - x[:, 0]))
    assert 0 <= x.min() and x.max() <= 1
    r = sf.datasets.radial(seed=3)
    np.testing.assert_array_equal(r.valid.y, np.sqrt((r.valid.x**2).mean(axis=1)) < 1)
    assert 0.4 < r.train.y.mean() < 0.6


def test_linear_truth_recovered_by_ols():
    d = sf.datasets.linear(n_train=50_000, seed=0)
    X = np.c_[np.ones(len(d.train.x)), d.train.x]
    b = np.linalg.lstsq(X, d.train.y, rcond=None)[0]
    np.testing.assert_allclose(b, [3.0, 2.0], atol=0.01)
    assert np.std(d.train.y - X @ b) == pytest.approx(0.5, abs=0.01)


def test_hyperplane_splits_share_slopes():
    d = sf.datasets.hyperplane(seed=4, dim=5, n_train=20_000, n_valid=20_000)
    expected = 1.0 + np.random.default_rng(4).standard_normal(5)
    np.testing.assert_array_equal(d.truth["beta1"], expected)
    for split in (d.train, d.valid):
        index = split.x @ expected
        # the label agrees with the sign of the true index far from the boundary
        far = np.abs(index) > 8
        assert (split.y[far] == (index[far] > 0)).mean() > 0.99


def test_bad_sizes():
    with pytest.raises(ValueError, match="'n_train' parameter must be an integer >= 1. Got 0"):
        sf.datasets.hill(n_train=0)
