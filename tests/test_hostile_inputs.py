"""Issue 27's input, bounds and message cases: symlink loops in globs, sizes refused before anything is allocated
(with the environment variable that lifts each limit), a streamed target read in bounded batches, values that
overflow, fits that cannot start, control characters in names, Parquet column types, and the rows and advice
that messages give."""

import decimal
import os
import time

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import scanfit as sf
from scanfit import tables
from scanfit.cli import app
from scanfit.data import limits, parquet_schema
from scanfit.data.formula import Formula
from scanfit.show.terminal import printable


def _xy(n=40, d=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    return x, (x[:, 0] + rng.logistic(size=n) > 0).astype(float)


def test_a_glob_through_a_symlink_loop_reads_each_file_once(tmp_path):
    sub = tmp_path / "loop" / "sub"
    sub.mkdir(parents=True)
    pq.write_table(pa.table({"x": [1.0, 2.0], "y": [0.0, 1.0]}), sub / "a.parquet")
    os.symlink("..", sub / "up")  # loop/sub/up -> loop
    os.symlink(sub / "a.parquet", tmp_path / "loop" / "same.parquet")  # a second name for the same file
    found = parquet_schema.files_of(str(tmp_path / "loop" / "**" / "*.parquet"))
    assert len(found) == 1 and os.path.realpath(found[0]) == str((sub / "a.parquet").resolve())
    assert len(parquet_schema.files_of(str(tmp_path / "loop"))) == 1  # the directory form agrees


@pytest.mark.parametrize("make, words", [
    (lambda: sf.MLP(hidden=10**6), r"'hidden'.*1,000,000.*SCANFIT_MAX_HIDDEN=1000000"),
    (lambda: sf.fit(sf.MLP(hidden=(10**5, 10**5)), sf.Bernoulli(), *_xy()), r"parameters.*SCANFIT_MAX_PARAMETERS"),
    (lambda: sf.fit(sf.MLP(hidden=2), sf.Bernoulli(), *_xy(), restarts=10**6), r"'restarts'.*SCANFIT_MAX_RESTARTS"),
    (lambda: sf.fit(sf.MLP(hidden=2), sf.Bernoulli(), *_xy(), steps=10**9), r"'steps'.*SCANFIT_MAX_STEPS"),
    (lambda: sf.fit(sf.MLP(hidden=2), sf.Bernoulli(), *_xy(), steps=10**12), r"'steps'.*1,000,000,000,000"),
    (lambda: sf.fit(sf.MLP(hidden=10**4), sf.Bernoulli(), *_xy(n=2000), restarts=1000),
     r"40,001 parameters x 2,000 rows x 1000 restarts.*SCANFIT_MAX_WORK"),
    (lambda: sf.fit(sf.Linear(), sf.Gaussian(), *_xy(n=50, d=5000)),
     r"5,001 coefficients.*only 50 rows.*penalty=sf.ElasticNet"),
])
def test_sizes_are_refused_before_anything_is_allocated(make, words):
    start = time.perf_counter()
    with pytest.raises(ValueError, match=words):
        make()
    assert time.perf_counter() - start < 5


def test_a_limit_is_lifted_by_its_environment_variable(monkeypatch):
    monkeypatch.setenv("SCANFIT_MAX_HIDDEN", "2000000")
    assert sf.MLP(hidden=10**6).hidden == (10**6,)
    monkeypatch.setenv("SCANFIT_MAX_HIDDEN", "many")
    with pytest.raises(ValueError, match="SCANFIT_MAX_HIDDEN must be a positive integer.*'many'"):
        limits.limit("hidden")


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame({"y": rng.normal(size=60), "x1": rng.random(60), "x2": rng.random(60), "x3": rng.random(60),
                         "g": list("abc") * 20})


@pytest.mark.parametrize("text, words", [
    ("y ~ bs(x1, df=100+1)", "bs: a degree, df or number of knots is at most 100"),
    ("y ~ poly(x1, 2**7)", "poly: a degree"),
    ("y ~ poly(x1,100):poly(x2,100):poly(x3,100)", r"design columns .*1,000,001.*SCANFIT_MAX_COLUMNS"),
    ("y ~ (x1 + x2 + x3 + g + x1:x2 + x2:x3 + x1:g + x2:g + x3:g + x1:x3 + x1:x2:x3 + x1:x2:g + x2:x3:g + x1:x3:g"
     " + x1:x2:x3:g)**15", r"number of terms.*SCANFIT_MAX_COLUMNS"),
    ("y ~ C(x1):C(x2):C(x3)", r"design columns .*216,001"),
])
def test_formula_columns_are_counted_before_they_are_built(frame, text, words):
    with pytest.raises(ValueError, match=words):
        Formula.build(text, frame)


def test_a_tampered_saved_formula_is_refused_before_it_is_expanded(frame):
    saved = Formula.build("y ~ x1 + C(g)", frame).to_json()
    assert Formula.from_json(saved).names == ("C(g)[T.b]", "C(g)[T.c]", "x1")
    big = {**saved, "formula": "y ~ poly(x1,100):poly(x2,100):poly(x3,100)"}
    with pytest.raises(ValueError, match="not a valid saved formula.*1,000,001"):
        Formula.from_json(big)
    with pytest.raises(ValueError, match="not a valid saved formula: its 9 names"):
        Formula.from_json({**saved, "names": saved["names"] * 3})


class _CountingParquet:
    """A stand-in for pyarrow.parquet whose files hand out batches of a column and count them."""

    def __init__(self, batches):
        self.batches, self.read = batches, 0

    def ParquetFile(self, path):  # noqa: N802 - pyarrow's name
        outer = self

        class File:
            def iter_batches(self, batch_size, columns):
                for b in outer.batches:
                    outer.read += 1
                    yield pa.record_batch([pa.array(b)], names=columns)

        return File()


def test_a_streamed_target_is_read_in_batches_and_only_as_far_as_needed():
    rng = np.random.default_rng(0)
    counted = _CountingParquet([rng.normal(size=100) for _ in range(50)])
    assert len(tables._distinct(counted, "f", "y")) > tables.MAX_CLASSES and counted.read == 1
    late = _CountingParquet([np.zeros(100)] * 9 + [np.r_[np.zeros(99), 1.0]])  # the second class in the last batch
    assert list(tables._distinct(late, "f", "y")) == [0.0, 1.0] and late.read == 10
    with pytest.raises(ValueError, match="missing values, the first at row 103"):
        tables._distinct(_CountingParquet([np.zeros(100), np.r_[0.0, 0, 0, np.nan]]), "f", "y")


def test_a_streamed_fit_chooses_its_likelihood_from_the_summaries(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"x": rng.normal(size=300), "y": rng.normal(size=300)}), path, row_group_size=50)
    lik, classes, reason = tables.streamed_likelihood(sf, sf.Parquet(str(path), target="y"), None, None)
    assert lik.name == "gaussian" and "more than 20 distinct" in reason
    pq.write_table(pa.table({"x": rng.normal(size=300), "y": np.r_[np.zeros(299), 1]}), path, row_group_size=50)
    lik, classes, reason = tables.streamed_likelihood(sf, sf.Parquet(str(path), target="y"), None, None)
    assert lik.name == "bernoulli" and classes == [0.0, 1.0]


def test_values_near_the_float64_limit_get_one_clear_message():
    x, y = _xy()
    x[:, 0] *= 1e300
    for standardize in (None, False):
        with pytest.raises(ValueError) as err:
            sf.fit(sf.Linear(), sf.Bernoulli(), x, y, standardize=standardize)
        text = str(err.value)
        assert "'x0'" in text and "squares overflow float64" in text and "divide it by a power of ten" in text
        assert "standardize" not in text.split("Rescale")[1]  # standardizing does not help here


def test_a_fit_that_cannot_start_says_so_with_fixes_that_apply():
    x, y = _xy()
    model = sf.Function(lambda p, x: jnp.log(p["a"] - 1) + x @ p["b"], params={"a": 0.5, "b": jnp.zeros(2)})
    with pytest.warns(sf.FitWarning, match="could not start"):
        r = sf.fit(model, sf.Gaussian(), x, y, optimizer="lbfgs", steps=5)  # float64 already
    assert r.status.code == "diverged" and "could not start" in r.status.message
    assert "learning rate is not the cause" in r.status.message
    assert "dtype='float64'" not in r.status.message and "standardize=True" not in r.status.message


def test_a_streamed_fit_that_cannot_start_does_not_blame_the_learning_rate(tmp_path):
    x, y = _xy()
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"x0": x[:, 0], "x1": x[:, 1], "y": y * 1e3}), path)
    start = {"beta0": np.float32(0.0), "beta1": np.full(2, 1e19, np.float32)}
    with pytest.warns(sf.FitWarning):
        r = sf.fit(sf.Linear(), sf.Gaussian(), sf.Parquet(str(path)), optimizer="gd", standardize=False, steps=3,
                   init_params=start)
    assert r.status.step == 0 and "could not start" in r.status.message and "smaller learning_rate" not in str(r.status)


def test_control_characters_are_escaped_on_the_terminal(tmp_path):
    assert printable("a\x1b[2J\x00\u202eb\nc") == "a\\x1b[2J\\x00\\u202eb\nc"
    x, y = _xy()
    hostile = "\x1b]0;OWNED\x07\x1b[2J\x00\u202e"
    frame = pd.DataFrame(x, columns=[hostile, "x1"])
    sf.fit(sf.Linear(), sf.Bernoulli(), frame, y).save(tmp_path / "m", extra={"target": hostile})
    out = CliRunner().invoke(app, ["summary", str(tmp_path / "m")]).output
    assert "\x1b" not in out and "\x00" not in out and "\u202e" not in out and "\x07" not in out
    assert "\\x1b]0;OWNED\\x07\\x1b[2J\\x00\\u202e" in out
    assert "learning rate" not in out  # a Newton fit takes none


def test_parquet_columns_that_are_not_numbers_are_named_by_their_type(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"y": [0, 1, 0, 1], "l": pa.array([[1, 2], [3], [4], [5]]),
                             "s": pa.array([{"a": i} for i in range(4)]),
                             "ts": pa.array(pd.date_range("2020-01-01", periods=4)),
                             "d": pa.array([decimal.Decimal("1.5")] * 4), "city": list("abab")}), path)
    frame = tables.read(path)
    for column, words in (("l", "lists.*one column per element"), ("s", "structs.*flatten"),
                          ("ts", "timestamps.*days since"), ("d", "decimals.*floating point"),
                          ("city", r"text.*--formula 'y ~ C\(city\)")):
        with pytest.raises(ValueError, match=words):
            tables.features(frame, "y", [column])


@pytest.mark.parametrize("valid_fraction", [0.0, 0.25])
def test_a_formula_error_names_the_row_of_the_users_table(valid_fraction):
    x, y = _xy()
    frame = pd.DataFrame({"choice": y, "ttme": x[:, 0], "mode": list("ab") * 20})
    frame.loc[5, "ttme"] = np.nan
    with pytest.raises(ValueError, match=r"'ttme' has a missing value at row 5 \(index 5\)"):
        tables.fit_table(frame, target=None, formula="choice ~ ttme + C(mode)", model=sf.Linear(),
                         valid_fraction=valid_fraction)


@pytest.mark.filterwarnings("ignore::scanfit.FitWarning")  # five steps: no better than the null model
def test_the_status_of_a_network_gives_advice_that_applies():
    r = sf.fit(sf.MLP(hidden=2), sf.Bernoulli(), *_xy(), optimizer="adam", steps=5)
    assert r.status.code == "completed" and "refine()" not in r.status.message
    r = sf.fit(sf.Linear(), sf.Bernoulli(), *_xy(), optimizer="adam", steps=5)
    assert "result.refine() finds the exact maximum" in r.status.message


def test_streamed_and_minibatch_fits_check_their_sizes_too(monkeypatch):
    from scanfit.data.sources import Arrays

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 40)), (rng.random(30) < 0.5).astype(float)
    with pytest.raises(ValueError, match=r"41 coefficients .* only 30 rows \(n_samples = 30\).*penalty=sf.ElasticNet"):
        sf.fit(sf.Linear(), sf.Bernoulli(), Arrays(x, y))  # an exact streamed fit with p >= n
    monkeypatch.setenv("SCANFIT_MAX_PARAMETERS", "100")
    with pytest.raises(ValueError, match=r"2,101, above scanfit's limit of 100 parameters.*SCANFIT_MAX_PARAMETERS"):
        sf.fit(sf.MLP(hidden=50), sf.Bernoulli(), Arrays(x, y), batch_size=10, epochs=1)
    with pytest.raises(ValueError, match=r"above scanfit's limit of 100 parameters"):
        sf.fit(sf.MLP(hidden=50), sf.Bernoulli(), Arrays(x, y), optimizer="adam", steps=5)
