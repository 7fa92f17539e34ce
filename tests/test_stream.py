"""Streamed exact fits (issue 16): sf.Parquet sources read in chunks equal the in-memory answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
sm = pytest.importorskip("statsmodels.api")

import scanfit as sf  # noqa: E402


def write(tmp, frame, files=4, row_group=1500):
    tmp.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, len(frame), files + 1).astype(int)
    for i in range(files):
        part = frame.iloc[bounds[i]:bounds[i + 1]]
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False), tmp / f"part-{i:03d}.parquet",
                       row_group_size=row_group)
    return tmp


def logit_frame(n=20_000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32) * np.array([1, 10, 100, 0.1, 3], np.float32) + 5
    eta = -1 + (X - 5) @ np.array([0.5, -0.05, 0.01, 2.0, 0.1])
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(np.float32)
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(5)])
    frame["y"] = y
    return frame


def coefs(r):
    return np.r_[np.atleast_1d(r.params["beta0"]), r.params["beta1"]]


@pytest.fixture(scope="module")
def logit_dir(tmp_path_factory):
    frame = logit_frame()
    return write(tmp_path_factory.mktemp("logit") / "data", frame, files=20), frame


def test_streamed_logit_equals_statsmodels_many_chunks(logit_dir):
    path, frame = logit_dir
    r = sf.fit(sf.Linear(), sf.Bernoulli(), sf.Parquet(path, target="y", batch_rows=700))
    assert r.status.code == "converged"
    X = sm.add_constant(frame.drop(columns="y").to_numpy(np.float64))
    m = sm.Logit(frame["y"].to_numpy(float), X).fit(disp=0, tol=1e-14, maxiter=100)
    np.testing.assert_allclose(coefs(r), m.params, rtol=1e-9, atol=1e-10)
    s = r.summary()
    np.testing.assert_allclose(s["std_err"].to_numpy(), m.bse, rtol=1e-8)
    mh = sm.Logit(frame["y"].to_numpy(float), X).fit(disp=0, tol=1e-14, cov_type="HC0")
    np.testing.assert_allclose(r.cov_params(cov_type="HC0").to_numpy(), mh.cov_params(), rtol=1e-7, atol=1e-12)
    n, k = X.shape
    np.testing.assert_allclose(r.cov_params(cov_type="HC1").to_numpy(), mh.cov_params() * n / (n - k), rtol=1e-7,
                               atol=1e-12)
    assert np.isclose(r.final["train_null_objective"] * n, m.llnull, rtol=1e-10)
    # the history: one row per pass at the step's parameters; the last is the estimate's (the first
    # passes, far from the maximum, run in float32: their statistics have float32's digits)
    obj = r.history["train_objective"].to_numpy()
    assert np.all(np.diff(obj) >= -1e-6 * np.abs(obj[1:]))
    np.testing.assert_allclose(r.history["train_objective"].iloc[-1] * n, m.llf, rtol=1e-10)
    pred = (m.predict(X) > 0.5) == (frame["y"].to_numpy() > 0)
    assert np.isclose(r.final["train_accuracy"], pred.mean())


@pytest.mark.parametrize("cache", ["auto", 0])
def test_streamed_newton_from_a_sample_equals_statsmodels(logit_dir, monkeypatch, cache):
    """Large data: Newton's float32 steps run on a sample first (every k-th kept chunk, or every k-th
    row group read from the files), then float64 passes over all the rows; the answer is unchanged.
    The passes sum each chunk in sub-blocks of 100 rows here (7 a chunk)."""
    from scanfit.engine import passes, stream_newton

    monkeypatch.setattr(stream_newton, "SAMPLE_ROWS", 2000)  # 20,000 rows: a sample of every 10th chunk / group
    monkeypatch.setattr(passes, "BLOCK_ROWS", 100)
    path, frame = logit_dir
    r = sf.fit(sf.Linear(), sf.Bernoulli(), sf.Parquet(path, target="y", batch_rows=700, cache=cache))
    assert r.status.code == "converged" and "on a sample of the rows" in r.status.message
    X = sm.add_constant(frame.drop(columns="y").to_numpy(np.float64))
    m = sm.Logit(frame["y"].to_numpy(float), X).fit(disp=0, tol=1e-14, maxiter=100)
    np.testing.assert_allclose(coefs(r), m.params, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(r.summary()["std_err"].to_numpy(), m.bse, rtol=1e-8)
    np.testing.assert_allclose(r.history["train_objective"].iloc[-1] * len(frame), m.llf, rtol=1e-10)
    # the final pass's information is taken within ~1e-12 of the estimate: the standard errors equal the
    # in-memory fit's to 1e-10 (the last float64 step uses a fresh float32 X'WX, not the held one)
    mem = sf.fit(sf.Linear(), sf.Bernoulli(), frame.drop(columns="y").astype(np.float64), frame["y"])
    np.testing.assert_allclose(coefs(r), coefs(mem), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.summary()["std_err"], mem.summary()["std_err"], rtol=1e-10)


def test_streamed_newton_from_a_sample_passes(logit_dir, monkeypatch):
    """After the sample's steps the full passes are score passes while the held information's steps are
    far from the maximum, then a float32-X'WX ("newton") pass, then the final pass one step later: its
    information is taken within ~1e-12 of the maximum (a session tried predicting the final pass one
    pass earlier; its information was then ~1e-9 away at 1e7 rows, standard errors 5e-10 off)."""
    from scanfit.engine import passes, stream, stream_newton

    kinds = []
    run = passes.run_pass

    def spy(feeder, model, lik, kind, *args):
        kinds.append((feeder.every, kind))
        return run(feeder, model, lik, kind, *args)

    monkeypatch.setattr(stream_newton, "SAMPLE_ROWS", 2000)
    monkeypatch.setattr(stream_newton, "run_pass", spy)
    monkeypatch.setattr(stream, "run_pass", spy)
    path, frame = logit_dir
    r = sf.fit(sf.Linear(), sf.Bernoulli(), sf.Parquet(path, target="y", batch_rows=700))
    full = [k for every, k in kinds if every == 1]
    assert r.status.code == "converged" and [k for every, k in kinds if every > 1] and set(kinds[0][1:]) == {"rough"}
    assert full[0] == "score" and full[-2:] == ["newton", "final"] and full.count("final") == 1
    assert len(r.history) == len(full)  # one history row per pass over all the rows
    mem = sf.fit(sf.Linear(), sf.Bernoulli(), frame.drop(columns="y").astype(np.float64), frame["y"])
    np.testing.assert_allclose(coefs(r), coefs(mem), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.summary()["std_err"], mem.summary()["std_err"], rtol=1e-11)


@pytest.mark.parametrize("family", ["bernoulli", "gaussian", "poisson"])
def test_sub_blocks_give_the_whole_chunks_sums(family):
    """A GLM pass sums a chunk in sub-blocks (``lax.scan``, for the CPU's caches): every kind's sums
    (objective, gradient, X'WX, the scores' products) equal the whole chunk's, weights, offsets and the
    padded rows of a last chunk included."""
    import jax

    from scanfit.data.precision import dtype_scope
    from scanfit.engine import passes

    rng = np.random.default_rng(5)
    n, rows, d = 1200, 1130, 4  # the chunk's last 70 rows are padding (weight 0)
    x = (rng.normal(size=(n, d)) * [1, 10, 0.1, 3] + 2).astype(np.float32)
    lik = {"bernoulli": sf.Bernoulli(), "gaussian": sf.Gaussian(), "poisson": sf.Poisson()}[family]
    y = {"bernoulli": rng.choice([-1, 1], n), "gaussian": rng.normal(size=n), "poisson": rng.poisson(2.0, n)}[family]
    w, off = rng.uniform(0.5, 2, n), rng.normal(scale=0.1, size=n)
    chunk = (x, y.astype(np.int8 if family == "bernoulli" else np.float64), w, off, np.int32(rows))
    params = {"beta0": np.float64(0.2), "beta1": rng.normal(scale=0.1, size=d)}
    center, scale = x.mean(0).astype(np.float64), x.std(0).astype(np.float64)
    assert passes._block_rows(n, 300) == 300 and passes._block_rows(n, 0) == n
    for kind in passes.GLM_KINDS:
        with dtype_scope("float64"):
            sums = [jax.device_get(passes._program(sf.Linear(), lik, kind, family, True, "float64", block)[0](
                params, center, scale, *chunk)) for block in (0, 300)]
        assert sums[0].keys() == sums[1].keys() and ("h" in sums[0]) == (kind != "score")
        tol = 1e-5 if kind == "rough" else 1e-6 if kind == "newton" else 1e-12  # float32 sums add in another order
        for key in sums[0]:
            np.testing.assert_allclose(sums[1][key], sums[0][key], rtol=tol, atol=tol * np.abs(sums[0][key]).max(),
                                       err_msg=f"{kind} {key}")
    assert np.isclose(sums[0]["weight"], w[:rows].sum())


def test_chunks_follow_the_row_groups(tmp_path):
    """aligned(): batch_rows lowered so that chunks are whole row groups or equal parts of one."""
    frame = logit_frame(n=6000)
    path = write(tmp_path / "groups", frame, files=2, row_group=1500)  # 3000 rows a file, 2 groups each
    assert sf.Parquet(path, target="y", batch_rows=700).aligned().batch_rows == 500  # 1500 = 3 x 500
    assert sf.Parquet(path, target="y", batch_rows=4000).aligned().batch_rows == 3000  # 2 groups a chunk
    assert sf.Parquet(path, target="y", batch_rows=1500).aligned().batch_rows == 1500
    src = sf.Parquet(path, target="y", batch_rows=700).aligned()
    sizes = [len(c.y) for c in src.chunks()]
    assert sizes == [500] * 12
    np.testing.assert_array_equal(np.concatenate([c.x for c in src.chunks()]),
                                  frame.drop(columns="y").to_numpy(np.float32))
    every = [len(c.y) for c in src.chunks(every=2)]  # groups 0 and 2: the first group of each file
    assert every == [500] * 6


@pytest.mark.parametrize("native", [True, False])
def test_streamed_equals_in_memory_fit(logit_dir, monkeypatch, native):
    """With the native GLM pass (a CPU with a C++ compiler) and with XLA's programs."""
    from scanfit.engine import passes

    if not native:
        monkeypatch.setattr(passes, "native_glm_pass", lambda *args: None)
    path, frame = logit_dir
    r = sf.fit(sf.Linear(), sf.Bernoulli(), sf.Parquet(path, target="y", batch_rows=4096))
    m = sf.fit(sf.Linear(), sf.Bernoulli(), frame.drop(columns="y").astype(np.float64), frame["y"])
    np.testing.assert_allclose(coefs(r), coefs(m), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.summary()["std_err"], m.summary()["std_err"], rtol=1e-10)
    for key in ("train_objective", "train_accuracy", "train_false_pos", "train_false_neg", "train_predavg",
                "train_null_objective", "train_pseudo_r2"):
        assert np.isclose(r.final[key], m.final[key], rtol=1e-10, atol=1e-12), key
    x = frame.drop(columns="y").to_numpy(np.float64)[:50]
    np.testing.assert_allclose(r.predict(x), m.predict(x), rtol=1e-9)


def test_streamed_lbfgs_and_gd(logit_dir):
    path, frame = logit_dir
    src = sf.Parquet(path, target="y", batch_rows=5000)
    newton = sf.fit(sf.Linear(), sf.Bernoulli(), src)
    lb = sf.fit(sf.Linear(), sf.Bernoulli(), src, optimizer="lbfgs", steps=200, tol=1e-9)
    assert lb.status.code == "converged", lb.status
    np.testing.assert_allclose(coefs(lb), coefs(newton), rtol=1e-5, atol=1e-6)
    gd = sf.fit(sf.Linear(), sf.Bernoulli(), src, optimizer="gd", learning_rate=1.0, steps=30)
    assert gd.status.code == "completed" and len(gd.history) == 30
    assert gd.history["train_objective"].iloc[-1] > gd.history["train_objective"].iloc[0]
    assert gd.final["train_objective"] < newton.final["train_objective"] + 1e-12


def test_streamed_gaussian_weights_and_valid(tmp_path):
    rng = np.random.default_rng(1)
    n = 6000
    X = rng.normal(size=(n, 3)) * [1.0, 50.0, 0.01] + [0.0, 1000.0, 3.0]
    y = 2 + X @ [1.0, 0.02, 30.0] + rng.normal(size=n)
    w = rng.integers(1, 4, size=n).astype(float)
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(y=y, w=w)
    write(tmp_path / "train", frame.iloc[:5000], files=3, row_group=700)
    write(tmp_path / "valid", frame.iloc[5000:], files=1)
    r = sf.fit(sf.Linear(), sf.Gaussian(), sf.Parquet(tmp_path / "train", target="y", weights="w", batch_rows=900),
               valid=sf.Parquet(tmp_path / "valid", target="y", weights="w"))
    tr = frame.iloc[:5000]
    m = sm.GLM(tr["y"], sm.add_constant(tr[["a", "b", "c"]]), freq_weights=tr["w"]).fit()
    np.testing.assert_allclose(coefs(r), m.params, rtol=1e-10)
    mem = sf.fit(sf.Linear(), sf.Gaussian(), tr[["a", "b", "c"]], tr["y"], weights=tr["w"].to_numpy(),
                 valid=(frame.iloc[5000:][["a", "b", "c"]], frame.iloc[5000:]["y"],
                        {"weights": frame.iloc[5000:]["w"].to_numpy()}))
    np.testing.assert_allclose(r.summary()["std_err"], mem.summary()["std_err"], rtol=1e-9)
    for key in ("train_mse", "valid_mse", "valid_objective", "train_null_objective", "valid_null_objective"):
        assert np.isclose(r.final[key], mem.final[key], rtol=1e-9), key
    assert "valid_mse" in r.history.columns


def test_streamed_poisson_exposure_and_categorical(tmp_path):
    rng = np.random.default_rng(2)
    n = 8000
    X = rng.normal(size=(n, 2))
    expo = rng.uniform(0.5, 3.0, size=n)
    counts = rng.poisson(expo * np.exp(0.3 + X @ [0.4, -0.2]))
    frame = pd.DataFrame(X, columns=["u", "v"]).assign(y=counts.astype(float), t=expo)
    write(tmp_path / "pois", frame, files=2)
    r = sf.fit(sf.Linear(), sf.Poisson(), sf.Parquet(tmp_path / "pois", target="y", exposure="t", batch_rows=1000))
    m = sm.GLM(frame["y"], sm.add_constant(frame[["u", "v"]]), family=sm.families.Poisson(),
               exposure=frame["t"]).fit(tol=1e-14)
    np.testing.assert_allclose(coefs(r), m.params, rtol=1e-9)
    np.testing.assert_allclose(r.summary()["std_err"], m.bse, rtol=1e-8)

    logits = np.c_[np.zeros(n), 0.5 + X @ [1.0, 0.0], -0.5 + X @ [0.0, 1.0]]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = (rng.random(n)[:, None] > np.cumsum(p, 1)).sum(1)
    cat = pd.DataFrame(X, columns=["u", "v"]).assign(y=labels)
    write(tmp_path / "cat", cat, files=2)
    rc = sf.fit(sf.Linear(), sf.Categorical(), sf.Parquet(tmp_path / "cat", target="y", batch_rows=1500))
    mc = sm.MNLogit(labels, sm.add_constant(X)).fit(disp=0, tol=1e-14, maxiter=100)
    s = rc.summary()
    np.testing.assert_allclose(s["estimate"].to_numpy(), np.asarray(mc.params).T.ravel(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(s["std_err"].to_numpy(), np.asarray(mc.bse).T.ravel(), rtol=1e-7)


def test_streamed_negative_binomial_matches_in_memory(tmp_path):
    rng = np.random.default_rng(3)
    n = 3000
    X = rng.normal(size=(n, 2))
    mu = np.exp(0.5 + X @ [0.3, -0.4])
    y = rng.negative_binomial(2.0, 2.0 / (2.0 + mu)).astype(float)
    frame = pd.DataFrame(X, columns=["a", "b"]).assign(y=y)
    write(tmp_path, frame, files=2)
    r = sf.fit(sf.Linear(), sf.NegativeBinomial(), sf.Parquet(tmp_path, target="y", batch_rows=700))
    m = sm.NegativeBinomial(y, sm.add_constant(X)).fit(disp=0, tol=1e-14, maxiter=200, method="newton")
    s = r.summary()
    np.testing.assert_allclose(s["estimate"].to_numpy(), m.params, rtol=1e-7)
    np.testing.assert_allclose(s["std_err"].to_numpy(), m.bse, rtol=1e-5)


def test_parquet_errors_name_the_problem(tmp_path, logit_dir):
    path, frame = logit_dir
    with pytest.raises(FileNotFoundError, match="path"):
        sf.Parquet(tmp_path / "nothing-here", target="y")
    with pytest.raises(ValueError, match="'target'.*'label'"):
        sf.Parquet(path, target="label")
    with pytest.raises(ValueError, match="'features'.*'zz'"):
        sf.Parquet(path, target="y", features=["x0", "zz"])
    with pytest.raises(ValueError, match="batch_rows"):
        sf.Parquet(path, target="y", batch_rows=0)
    with pytest.raises(TypeError, match="target='y'"):
        sf.fit(sf.Linear(), sf.Bernoulli(), sf.Parquet(path, target="y"), frame["y"])
    with pytest.raises(ValueError, match=r"offset='x4'.*count models.*Bernoulli"):  # as fit's offset=
        sf.fit(sf.Linear(), sf.Bernoulli(), sf.Parquet(path, target="y", features=["x0"], offset="x4"))
    bad = frame.head(100).copy()
    bad.loc[5, "x3"] = np.nan
    write(tmp_path / "nan", bad, files=1)
    with pytest.raises(ValueError, match="'x3'"):
        sf.fit(sf.Linear(), sf.Bernoulli(), sf.Parquet(tmp_path / "nan", target="y"))
    labels = frame.head(100).assign(y=2.0)
    write(tmp_path / "labels", labels, files=1)
    with pytest.raises(ValueError, match=r"\{0, 1\}"):
        sf.fit(sf.Linear(), sf.Bernoulli(), sf.Parquet(tmp_path / "labels", target="y"))
    src = sf.Parquet(path, target="y")
    assert src.features == tuple(f"x{j}" for j in range(5)) and src.n_rows == len(frame)
    with pytest.raises(ValueError, match="cluster"):
        sf.fit(sf.Linear(), sf.Bernoulli(), src).summary(cov_type="cluster", groups=np.zeros(len(frame)))


def test_saved_streamed_model_keeps_its_standard_errors(logit_dir, tmp_path):
    path, frame = logit_dir
    r = sf.fit(sf.Linear(), sf.Bernoulli(), sf.Parquet(path, target="y", batch_rows=4096))
    r.save(tmp_path / "model")
    back = sf.load(tmp_path / "model")
    for cov in ("nonrobust", "HC1"):
        pd.testing.assert_frame_equal(back.summary(cov_type=cov), r.summary(cov_type=cov), rtol=1e-12)
    from scanfit.results import persist

    meta = persist.info(tmp_path / "model")
    assert "x3" in meta["summary_text"] and len(meta["inference"]["gradient"]) == 6


def test_kept_chunks_live_in_one_populated_arena():
    """The first pass keeps each chunk's x in memory mapped at once (``feeder._Arena``): zeroed, 64-byte
    aligned (so a program call aliases it instead of copying), one slot per chunk, a new piece when the
    estimate runs out."""
    from scanfit.engine import feeder

    arena = feeder._Arena(3 * 7 * 5 * 4 + 64)
    slots = [arena.empty((7, 5), np.float32) for _ in range(4)]  # the fourth is beyond the estimate
    for i, s in enumerate(slots):
        assert s.ctypes.data % 64 == 0 and s.shape == (7, 5) and not s.any()
        s[:] = i + 1
    assert [float(s.mean()) for s in slots] == [1.0, 2.0, 3.0, 4.0]  # no slot overlaps another


def test_first_pass_takes_the_standardization_from_a_sample(tmp_path):
    """describe(moments_every=k): the columns' moments from every k-th chunk (the chunks a Newton
    fit's sample start uses), the weight, row count and target's moments from every chunk, and every
    chunk still checked for missing or infinite values."""
    from scanfit.data.precision import dtype_scope
    from scanfit.engine import feeder

    frame = logit_frame(n=6000, seed=3)
    path = write(tmp_path / "m", frame, files=2, row_group=1000)
    src = sf.Parquet(path, target="y", batch_rows=1000).aligned()
    with dtype_scope("float64"):
        full = feeder.Feeder(src, sf.Bernoulli(), "float64").describe()
        part = feeder.Feeder(src, sf.Bernoulli(), "float64").describe(moments_every=3)
    x = frame.drop(columns="y").to_numpy(np.float64)
    sample = np.concatenate([x[i * 1000:(i + 1) * 1000] for i in (0, 3)])  # chunks 0 and 3 of 6
    assert part.rows == full.rows == 6000 and part.weight == full.weight == 6000 and part.x_weight == 2000
    np.testing.assert_allclose(part.mean, sample.mean(0), rtol=1e-12)
    np.testing.assert_allclose(part.center_scale(True)[1], sample.std(0), rtol=1e-12)
    np.testing.assert_allclose(full.center_scale(True)[1], x.std(0), rtol=1e-12)
    y = 2 * frame["y"].to_numpy() - 1  # Bernoulli's -1 / 1 coding
    assert np.isclose(part.y_mean, y.mean(), rtol=1e-14) and np.isclose(part.y_m2, full.y_m2, rtol=1e-12)
    bad = frame.copy()
    bad.loc[4321, "x2"] = np.inf  # in chunk 4, whose moments are not taken
    src = sf.Parquet(write(tmp_path / "bad", bad, files=2, row_group=1000), target="y", batch_rows=1000).aligned()
    with pytest.raises(ValueError, match="'x2' of the Parquet data has NaN or infinite"), dtype_scope("float64"):
        feeder.Feeder(src, sf.Bernoulli(), "float64").describe(moments_every=3)


def test_sample_start_from_sample_rows_on(logit_dir, monkeypatch):
    """The sample start runs from SAMPLE_ROWS rows on: every k-th chunk for about SAMPLE_ROWS rows, at
    least every 4th (a quarter of the rows between one and four SAMPLE_ROWS); the answer is unchanged."""
    from scanfit.engine import stream_newton

    monkeypatch.setattr(stream_newton, "SAMPLE_ROWS", 8000)
    assert [stream_newton._sample_every(n) for n in (7999, 8000, 20_000, 40_000, 100_000)] == [1, 4, 4, 5, 12]
    path, frame = logit_dir  # 20,000 rows: every 4th chunk
    r = sf.fit(sf.Linear(), sf.Bernoulli(), sf.Parquet(path, target="y", batch_rows=700))
    assert r.status.code == "converged" and "on a sample of the rows" in r.status.message
    mem = sf.fit(sf.Linear(), sf.Bernoulli(), frame.drop(columns="y").astype(np.float64), frame["y"])
    np.testing.assert_allclose(coefs(r), coefs(mem), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.summary()["std_err"], mem.summary()["std_err"], rtol=1e-10)
