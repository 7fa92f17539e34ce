"""Streamed fits on awkward inputs (issue 16): layouts other tools write, files that disagree,
mistaken parameters, and data whose maximum does not exist. Each gives the right numbers or an
error that names the problem, as the in-memory fit does."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
sm = pytest.importorskip("statsmodels.api")

import scanfit as sf  # noqa: E402
from test_stream import coefs, logit_frame  # noqa: E402


def put(frame, path, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, **kw)


def statsmodels_logit(frame):
    X = sm.add_constant(frame.drop(columns="y").to_numpy(np.float64))
    return sm.Logit(frame["y"].to_numpy(float), X).fit(disp=0, tol=1e-14, maxiter=100)


def test_spark_and_hidden_files_are_skipped(tmp_path):
    frame = logit_frame(n=3000)
    put(frame, tmp_path / "d" / "part-0.parquet")
    put(frame.iloc[:500], tmp_path / "d" / "_temporary" / "0" / "part-0.parquet")  # an unfinished Spark job
    put(frame.iloc[:300], tmp_path / "d" / ".part-1.parquet")  # a hidden copy
    (tmp_path / "d" / "_SUCCESS").write_text("")
    for path in (tmp_path / "d", str(tmp_path / "d" / "**" / "*.parquet")):
        src = sf.Parquet(path, target="y")
        assert src.n_rows == 3000 and [os.path.basename(f) for f in src.files] == ["part-0.parquet"]
    r = sf.fit(sf.Linear(), sf.Bernoulli(), sf.Parquet(tmp_path / "d", target="y"))
    np.testing.assert_allclose(coefs(r), statsmodels_logit(frame).params, rtol=1e-9)


def test_files_of_other_types_are_read_in_one_type(tmp_path):
    """float32 in one file, float64 and int8 in others: read as float64 (no digits lost), as
    statsmodels reads them; the target as int in one file and float in another."""
    frame = logit_frame(n=4000).astype({"x0": np.float64, "x1": np.float64})
    frame["x1"] += 1e-9 * np.arange(4000)  # digits float32 does not hold
    frame["x4"] = np.round(frame["x4"]).clip(-100, 100)
    put(frame.iloc[:1500].astype({"x0": np.float32, "x1": np.float32}).astype({"x0": np.float64}), tmp_path / "m" / "a.parquet")
    put(frame.iloc[1500:3000].astype({"x4": np.int8, "y": np.int64}), tmp_path / "m" / "b.parquet")
    put(frame.iloc[3000:], tmp_path / "m" / "c.parquet")
    src = sf.Parquet(tmp_path / "m", target="y", batch_rows=1000)
    assert src.x_dtype == "float64"
    x = np.concatenate([c.x for c in src.chunks()])
    expect = pd.concat([pq.read_table(tmp_path / "m" / f).to_pandas() for f in ("a.parquet", "b.parquet", "c.parquet")])
    np.testing.assert_array_equal(x, expect.drop(columns="y").to_numpy(np.float64))
    r = sf.fit(sf.Linear(), sf.Bernoulli(), src)
    m = statsmodels_logit(expect.astype(np.float64))
    np.testing.assert_allclose(coefs(r), m.params, rtol=1e-9)
    np.testing.assert_allclose(r.summary()["std_err"].to_numpy(), m.bse, rtol=1e-8)


def test_files_that_disagree_are_named(tmp_path):
    frame = logit_frame(n=2000)
    put(frame.iloc[:1000], tmp_path / "s" / "a.parquet")
    put(frame.iloc[1000:].drop(columns="x2"), tmp_path / "s" / "b.parquet")
    with pytest.raises(ValueError, match=r"b\.parquet' lacks the columns \['x2'\]"):
        sf.Parquet(tmp_path / "s", target="y")
    put(frame.iloc[1000:].astype({"x2": str}), tmp_path / "s" / "b.parquet")
    with pytest.raises(ValueError, match=r"\['x2'\] of .*b\.parquet' hold \['(large_)?string'\], not numbers"):
        sf.Parquet(tmp_path / "s", target="y")
    put(frame.iloc[1000:], tmp_path / "s" / "b.parquet")
    blob = (tmp_path / "s" / "b.parquet").read_bytes()
    (tmp_path / "s" / "b.parquet").write_bytes(blob[:len(blob) // 2])  # cut short
    with pytest.raises(ValueError, match=r"footer of .*b\.parquet'"):
        sf.Parquet(tmp_path / "s", target="y")


def test_mistaken_columns_are_refused(tmp_path):
    put(logit_frame(n=500), tmp_path / "a.parquet")
    put(logit_frame(n=500), tmp_path / "hive" / "g=1" / "part-0.parquet")  # as Spark's partitionBy writes
    with pytest.raises(ValueError, match=r"\['g'\] name folders key=value, Hive partitioning"):
        sf.Parquet(tmp_path / "hive", target="y", features=["x0", "g"])
    with pytest.raises(ValueError, match=r"names \['y'\], which is the target"):
        sf.Parquet(tmp_path / "a.parquet", target="y", features=["x0", "y"])
    with pytest.raises(ValueError, match=r"names \['x0'\] more than once"):
        sf.Parquet(tmp_path / "a.parquet", target="y", features=["x0", "x1", "x0"])
    with pytest.raises(ValueError, match="'target' parameter .* Got None"):
        sf.Parquet(tmp_path / "a.parquet", target=None)


def test_batch_rows_beyond_the_data_pad_no_more_than_the_rows(tmp_path):
    frame = logit_frame(n=2000)
    put(frame, tmp_path / "a.parquet")
    src = sf.Parquet(tmp_path / "a.parquet", target="y", batch_rows=10**12)
    assert src.aligned().batch_rows == 2000  # one chunk of the data's rows, not 10**12 padded ones
    r = sf.fit(sf.Linear(), sf.Bernoulli(), src)
    np.testing.assert_allclose(coefs(r), statsmodels_logit(frame).params, rtol=1e-9)
    with pytest.raises(TypeError, match="take the rows themselves .* not a Parquet source"):
        r.predict(src)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_target_that_is_not_finite_is_named(tmp_path, bad):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=300)})
    frame["y"] = frame["a"] + 1.0
    frame.loc[7, "y"] = bad
    pq.write_table(pa.table({"a": frame["a"].to_numpy(), "y": frame["y"].to_numpy()}), tmp_path / "a.parquet")
    for lik in (sf.Gaussian(), sf.Poisson()):
        with pytest.raises(ValueError, match=r"target column 'y' .* NaN or infinite .* the first at row 7"):
            sf.fit(sf.Linear(), lik, sf.Parquet(tmp_path / "a.parquet", target="y"))


def test_separated_classes_are_not_converged(tmp_path):
    """As in memory: a column that separates the classes gives status 'separation' and summary()
    refuses; a class that never occurs too."""
    rng = np.random.default_rng(1)
    x0 = np.r_[rng.normal(-2, 0.5, 500), rng.normal(2, 0.5, 500)]
    frame = pd.DataFrame({"x0": x0, "x1": rng.normal(size=1000), "y": (x0 > 0).astype(float)})
    put(frame, tmp_path / "sep.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = sf.fit(sf.Linear(), sf.Bernoulli(), sf.Parquet(tmp_path / "sep.parquet", target="y"))
        mem = sf.fit(sf.Linear(), sf.Bernoulli(), frame[["x0", "x1"]], frame["y"])
    assert r.status.code == mem.status.code == "separation"
    assert "the column 'x0' separates y=0 from y=1" in r.status.message
    with pytest.raises(sf.NotIdentifiedError, match="x0"):
        r.summary()
    labels = np.where(rng.random(1000) < 0.5, 0, 2)  # class 1 never occurs
    put(pd.DataFrame({"u": rng.normal(size=1000), "y": labels}), tmp_path / "cat.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = sf.fit(sf.Linear(), sf.Categorical(), sf.Parquet(tmp_path / "cat.parquet", target="y"))
    assert rc.status.code == "separation" and "classes [1] never occur" in rc.status.message


def test_a_fit_whose_residual_variance_does_not_exist_says_so(tmp_path):
    put(pd.DataFrame({"a": [1.0, 2.0], "y": [3.0, 5.0]}), tmp_path / "two.parquet")
    # as in memory, an exact fit with no more rows than coefficients is refused before fitting (issue 27)
    with pytest.raises(ValueError, match=r"2 coefficients .* only 2 rows \(n_samples = 2\)"):
        sf.fit(sf.Linear(), sf.Gaussian(), sf.Parquet(tmp_path / "two.parquet", target="y"))
    put(pd.DataFrame({"a": [1.0, 2.0, 3.0], "y": [3.0, 5.0, 7.0]}), tmp_path / "three.parquet")  # a perfect fit
    r = sf.fit(sf.Linear(), sf.Gaussian(), sf.Parquet(tmp_path / "three.parquet", target="y"))
    with pytest.raises(ValueError, match="residual variance, and so the standard errors, do not exist"):
        r.summary()


def test_a_validation_source_without_the_training_columns_is_named(tmp_path):
    frame = logit_frame(n=1000)
    put(frame, tmp_path / "train" / "a.parquet")
    put(frame.drop(columns="x3"), tmp_path / "valid" / "a.parquet")
    with pytest.raises(ValueError, match=r"valid=sf.Parquet\(.*must hold the training columns .*'x3'.* lacks"):
        sf.fit(sf.Linear(), sf.Bernoulli(), sf.Parquet(tmp_path / "train", target="y"),
               valid=sf.Parquet(tmp_path / "valid", target="y"))
    x = frame.drop(columns="y").to_numpy()  # arrays: columns x0..x4, which the validation files do not have
    renamed = frame.rename(columns={f"x{j}": f"v{j}" for j in range(5)})
    put(renamed, tmp_path / "valid2" / "a.parquet")
    with pytest.raises(ValueError, match="arrays without column names have the columns x0, x1"):
        sf.fit(sf.Linear(), sf.Bernoulli(), x, frame["y"].to_numpy(), batch_size=100, epochs=1,
               valid=sf.Parquet(tmp_path / "valid2", target="y"))
