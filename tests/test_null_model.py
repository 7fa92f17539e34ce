"""The intercept-only model of streamed and minibatch fits (engine.null_model) equals the in-memory one.

For every built-in family, with and without weights, with an offset where the family takes one, and
with validation rows: a streamed exact fit reports the in-memory fit's ``*_null_objective`` and
``*_pseudo_r2`` (float64, to 1e-10); a minibatch fit (first-order: its objective differs) the same
null objectives and a finite pseudo R-squared.
"""

from __future__ import annotations

import numpy as np
import pytest

import scanfit as sf
from scanfit.data.sources import Arrays

N, NV = 240, 120  # training and validation rows


def _target(family, eta, rng):
    if family == "gaussian":
        return eta + rng.normal(size=eta.shape)
    if family in ("logit", "probit"):
        return (rng.random(eta.shape) < 1 / (1 + np.exp(-eta))).astype(float)
    if family == "categorical":
        return np.digitize(eta + rng.normal(size=eta.shape), [-0.5, 0.5]).astype(float)
    if family == "poisson":
        return rng.poisson(np.exp(eta)).astype(float)
    mu = np.exp(eta)  # negative binomial, alpha 0.5
    return rng.negative_binomial(2.0, 2.0 / (2.0 + mu)).astype(float)


LIKELIHOODS = {"gaussian": sf.Gaussian, "logit": sf.Bernoulli, "probit": lambda: sf.Bernoulli(link="probit"),
               "categorical": sf.Categorical, "poisson": sf.Poisson, "negbin": sf.NegativeBinomial}
# (family, weights, offset); the negative binomial's fits take longest: weights and the offset together
CASES = [(f, w, False) for f in LIKELIHOODS if f != "negbin" for w in (False, True)] + [
    ("poisson", False, True), ("poisson", True, True), ("negbin", False, False), ("negbin", True, True)]


def data(family, weighted, offset, seed=0):
    """``(x, y, weights, offset)`` of the training rows and of the validation rows."""
    rng = np.random.default_rng(seed)
    n = N + NV
    x = rng.normal(size=(n, 2))
    off = np.log(rng.uniform(0.5, 3.0, size=n)) if offset else None
    eta = 0.3 + x @ [0.5, -0.4] + (0.0 if off is None else off)
    y = _target(family, eta, rng)
    w = rng.integers(1, 4, size=n).astype(float) if weighted else None

    def part(rows):
        return x[rows], y[rows], None if w is None else w[rows], None if off is None else off[rows]

    return part(slice(0, N)), part(slice(N, n))


def in_memory(lik, train, valid):
    x, y, w, off = train
    extra = {k: v for k, v in (("weights", valid[2]), ("offset", valid[3])) if v is not None}
    return sf.fit(sf.Linear(), lik, x, y, weights=w, offset=off, valid=(valid[0], valid[1], extra), dtype="float64")


def source(part):
    """Chunks of 100 rows (the last padded): several per part, of one shape in both runners."""
    return Arrays(*part, batch_rows=100)


KEYS = ("train_null_objective", "valid_null_objective")


@pytest.mark.parametrize("family,weighted,offset", CASES)
def test_streamed_and_minibatch_null_model_equal_in_memory(family, weighted, offset):
    lik = LIKELIHOODS[family]()
    train, valid = data(family, weighted, offset)
    mem = in_memory(lik, train, valid)
    streamed = sf.fit(sf.Linear(), lik, source(train), valid=source(valid), dtype="float64")
    mini = sf.fit(sf.Linear(), lik, source(train), valid=source(valid), dtype="float64", batch_size=100, epochs=1)
    for key in KEYS + ("train_pseudo_r2", "valid_pseudo_r2"):
        assert np.isfinite(mem.final[key]), key
        assert streamed.final[key] == pytest.approx(mem.final[key], rel=1e-10, abs=1e-12), key
        assert np.isfinite(mini.final[key]), key
    for key in KEYS:
        assert mini.final[key] == pytest.approx(mem.final[key], rel=1e-10, abs=1e-12), key


def test_parquet_null_model_reads_no_features(tmp_path):
    """With cache=0 the files are read again for the fitted null model (Poisson with an exposure):
    without the feature columns."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    train, valid = data("poisson", True, offset=True, seed=1)
    for name, (x, y, w, off) in (("train", train), ("valid", valid)):
        (tmp_path / name).mkdir()
        pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "y": y, "e": np.exp(off), "w": w}),
                       tmp_path / name / "part.parquet", row_group_size=70)
    spec = dict(target="y", exposure="e", weights="w", cache=0, batch_rows=70)
    lik = sf.Poisson()
    mem = in_memory(lik, train, valid)
    r = sf.fit(sf.Linear(), lik, sf.Parquet(tmp_path / "train", **spec),
               valid=sf.Parquet(tmp_path / "valid", **spec), dtype="float64")
    for key in KEYS + ("train_pseudo_r2", "valid_pseudo_r2"):
        assert r.final[key] == pytest.approx(mem.final[key], rel=1e-10), key
    src = sf.Parquet(tmp_path / "train", **spec).without_features()
    chunk = next(src.chunks(prefetch=False))
    assert chunk.x.shape == (70, 0) and np.allclose(chunk.offset, train[3][:70])
