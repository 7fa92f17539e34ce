"""The streamed GLM pass in native code (engine/native_pass.py, likelihoods/native/glm.cc) gives the
XLA program's sums, and a streamed fit gives the same answer with either."""

from __future__ import annotations

import os

import numpy as np
import pytest

import scanfit as sf
from scanfit.engine import native_pass, passes
from scanfit.likelihoods import native

# skipped only where the library cannot be built (no compiler, SCANFIT_NATIVE=0); with a compiler a failed
# build fails the tests below instead
pytestmark = pytest.mark.skipif(
    native.glm_library() is None and (native._compiler() is None or os.environ.get("SCANFIT_NATIVE") == "0"),
    reason=f"no native GLM pass: {native.GLM_STATUS[0]}")


class _Feeder:
    mesh, every = None, 1

    def __init__(self, chunks):
        self.chunks = chunks

    def __iter__(self):
        return iter(self.chunks)


def _chunks(family, xdtype, weighted, rng, n=1200, rows=1130, d=4):
    """Two chunks (the second one's last rows padding, as the last chunk of a source)."""
    out = []
    for valid in (n, rows):
        x = (rng.normal(size=(n, d)) * [1, 10, 0.1, 3] + [2, -50, 0, 1e3]).astype(xdtype)
        y = rng.choice([-1, 1], n).astype(np.int8) if family == "bernoulli" else rng.normal(size=n) * 3
        w = rng.uniform(0.5, 2, n) if weighted else None
        off = rng.normal(scale=0.1, size=n) if weighted else None
        out.append((x, y, w, off, np.int32(valid)))
    return out


@pytest.mark.parametrize("family", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("xdtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_native_pass_equals_the_xla_program(family, xdtype, weighted):
    """Every kind's sums (weight, terms, gradient, X'WX, the scores' products, the extreme rows) equal
    the XLA program's summed over the chunks: to 1e-14 where XLA works in float64; "rough" and
    "newton" passes to float32's digits (XLA forms their products in float32, the native pass in float64)."""
    import jax

    from scanfit.data.precision import dtype_scope

    rng = np.random.default_rng(7)
    chunks = _chunks(family, xdtype, weighted, rng)
    lik = sf.Bernoulli() if family == "bernoulli" else sf.Gaussian()
    d = chunks[0][0].shape[1]
    params = {"beta0": np.float64(0.3), "beta1": rng.normal(scale=2.0, size=d)}
    params["beta1"][0] = 20.0  # some rows beyond the separation logit (30)
    x_all = np.concatenate([c[0] for c in chunks]).astype(np.float64)
    center, scale = x_all.mean(0), x_all.std(0)
    for kind in passes.GLM_KINDS:
        with dtype_scope("float64"):
            body = passes._program(sf.Linear(), lik, kind, family, True, "float64", 0)[0]
            parts = [jax.device_get(body(params, center, scale, *c)) for c in chunks]
        xla = {k: sum(np.asarray(p[k], np.float64) for p in parts) for k in parts[0]}
        got = native_pass.native_glm_pass(_Feeder(chunks), sf.Linear(), lik, kind, family, params, center, scale,
                                          "float64")
        assert got.keys() == xla.keys(), kind
        tol = 1e-14 if kind in ("score", "final") else 1e-5
        for key in xla:
            np.testing.assert_allclose(got[key], xla[key], rtol=tol, atol=tol * max(np.abs(xla[key]).max(), 1.0),
                                       err_msg=f"{kind} {key}")
    if family == "bernoulli":
        assert 0 < got["extreme"] < got["weight"]
    w = np.concatenate([c[2][:int(c[4])] if weighted else np.ones(int(c[4])) for c in chunks])
    assert got["weight"] == pytest.approx(w.sum(), rel=1e-15)


def test_native_pass_does_not_depend_on_the_threads(monkeypatch):
    """The rows are summed in tiles whose sums add in order: any number of threads gives the same bits."""
    rng = np.random.default_rng(3)
    chunks = _chunks("bernoulli", np.float32, True, rng, n=40_000, rows=39_000)
    params = {"beta0": np.float64(-0.2), "beta1": rng.normal(size=4)}
    center, scale = np.zeros(4), np.ones(4)
    runs = []
    for threads in (1, 2, 5):
        monkeypatch.setattr(native_pass, "_threads", lambda t=threads: t)
        runs.append(native_pass.native_glm_pass(_Feeder(chunks), sf.Linear(), sf.Bernoulli(), "final", "bernoulli",
                                                params, center, scale, "float64"))
    for other in runs[1:]:
        for key in runs[0]:
            np.testing.assert_array_equal(other[key], runs[0][key])


def test_native_pass_applies_only_where_it_gives_the_same_sums():
    """Probit, Poisson, float32 fits and models other than Linear keep the XLA programs."""
    feeder = _Feeder([])
    args = (None, None, None, None)
    assert native_pass.native_glm_pass(feeder, sf.Linear(), sf.Bernoulli(link="probit"), "final", "bernoulli",
                                       *args[:3], "float64") is None
    assert native_pass.native_glm_pass(feeder, sf.Linear(), sf.Poisson(), "final", "poisson", *args[:3],
                                       "float64") is None
    assert native_pass.native_glm_pass(feeder, sf.Linear(), sf.Bernoulli(), "final", "bernoulli", *args[:3],
                                       "float32") is None
    assert native_pass.native_glm_pass(feeder, sf.Linear(), sf.Bernoulli(), "grad", None, *args[:3],
                                       "float64") is None


@pytest.mark.parametrize("xdtype", [np.float32, np.float64])
def test_native_moments_equal_the_first_pass_programs(xdtype):
    """A first pass's chunk numbers (weight, column means and squared deviations, finiteness, the
    target's mean and squared deviations) equal the feeder's XLA programs; NaN and inf are found."""
    import jax

    from scanfit.data.precision import dtype_scope
    from scanfit.engine import feeder

    lib = native_pass.moments_library(None, "float64")
    rng = np.random.default_rng(11)
    n = 900
    x = (rng.normal(size=(n, 5)) * [1, 10, 1e3, 0.1, 5] + [0, 1e4, 3, 1, -2]).astype(xdtype)
    y, w = rng.normal(size=n), rng.uniform(0, 2, n)
    for weights in (w, None):
        with dtype_scope("float64"):
            ref = jax.device_get(feeder._moments(x, y, weights, None, np.int32(n)))
            checked = jax.device_get(feeder._checked(x, y, weights, None, np.int32(n)))
        got = native_pass.native_moments(lib, x, y, weights, True)
        for a, b in zip(ref, got):
            np.testing.assert_allclose(np.asarray(b, np.float64), np.asarray(a, np.float64), rtol=1e-13)
        cheap = native_pass.native_moments(lib, x, y, weights, False)
        assert cheap[1] is None and cheap[2] is None
        for a, b in zip(checked, (cheap[0], cheap[3], cheap[4], cheap[5])):
            np.testing.assert_allclose(np.asarray(b, np.float64), np.asarray(a, np.float64), rtol=1e-13)
    x[3, 2], x[n - 1, 4] = np.inf, np.nan
    for moments in (True, False):
        assert native_pass.native_moments(lib, x, y, None, moments)[3].tolist() == [True, True, False, True, False]


def test_native_pass_propagates_nan():
    """A NaN parameter gives a NaN objective and gradient, an infinite one an objective of -inf, as XLA's
    program does (the engine's divergence checks need them)."""
    rng = np.random.default_rng(2)
    chunks = _chunks("bernoulli", np.float32, False, rng)
    for beta0 in (np.nan, np.inf):
        params = {"beta0": np.float64(beta0), "beta1": np.zeros(4)}
        got = native_pass.native_glm_pass(_Feeder(chunks), sf.Linear(), sf.Bernoulli(), "newton", "bernoulli",
                                          params, np.zeros(4), np.ones(4), "float64")
        if np.isnan(beta0):
            assert np.isnan(got["terms"][0]) and np.all(np.isnan(got["g"]))
        else:
            assert got["terms"][0] == -np.inf


def test_streamed_logit_loads_no_program_but_the_statistics(tmp_path):
    """With the native passes a streamed logit runs without XLA programs for the first pass, the start or
    the steps: a fresh process compiles (or loads) only the history's statistics and the user's scale."""
    import subprocess
    import sys
    import textwrap

    pd = pytest.importorskip("pandas")
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(3000, 3)).astype(np.float32), columns=["a", "b", "c"])
    frame["y"] = (rng.random(3000) < 1 / (1 + np.exp(-frame["a"].to_numpy()))).astype(np.float32)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "d.parquet")
    code = textwrap.dedent(f"""
        import logging, jax
        jax.config.update("jax_log_compiles", True)
        names = []
        class Grab(logging.Handler):
            def emit(self, record):
                text = record.getMessage()
                if text.startswith("Compiling "):
                    names.append(text.split()[1])
        logging.getLogger("jax").addHandler(Grab())
        logging.getLogger("jax").setLevel(logging.WARNING)
        import scanfit as sf
        r = sf.fit(sf.Linear(), sf.Bernoulli(), sf.Parquet({str(tmp_path / "d.parquet")!r}, target="y"))
        print(r.status.code, sorted(set(names)))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[-2] == "converged ['jit(stats)', 'jit(user)']", out.stdout + out.stderr[-2000:]


def test_kept_chunks_rows_laid_out_from_the_columns(tmp_path):
    """A first pass that keeps the chunks takes pyarrow's columns (``chunks(columns=True)``: no ``x``) and
    lays their rows out in the kept memory by native code: the same rows as ``to_tensor``."""
    from scanfit.engine.feeder import Feeder

    pd = pytest.importorskip("pandas")
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    rng = np.random.default_rng(4)
    for dtype in (np.float32, np.float64):
        frame = pd.DataFrame(rng.normal(size=(2500, 3)).astype(dtype), columns=["a", "b", "c"])
        frame["y"] = rng.integers(0, 2, 2500).astype(np.float32)
        path = tmp_path / f"{np.dtype(dtype).name}.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=1000)
        src = sf.Parquet(path, target="y", batch_rows=1000).aligned()
        plain, cols = list(src.chunks()), list(src.chunks(columns=True))
        assert all(c.x is None and len(c.columns) == 3 for c in cols) and all(c.columns is None for c in plain)
        for a, b in zip(plain, cols):
            out = np.full((len(b.y) + 7, 3), np.nan, dtype)[:len(b.y)]
            native_pass.gather_rows(b.columns, out)
            np.testing.assert_array_equal(out, a.x)
        feeder = Feeder(src, sf.Bernoulli(), "float64")
        feeder.describe()
        kept = np.concatenate([k[0][:int(k[4])] for k in feeder.kept])
        np.testing.assert_array_equal(kept, frame[["a", "b", "c"]].to_numpy(dtype))


def test_both_native_libraries_load_in_one_process():
    """The GLM library first, then the Bernoulli kernel: each keeps its own symbols (the loader knows a
    library by its /proc/self/fd/N name, which a closed descriptor would hand to the next library)."""
    import subprocess
    import sys

    code = ("from scanfit.likelihoods import native\n"
            "assert native.glm_library() is not None, native.GLM_STATUS[0]\n"
            "assert native.bernoulli_target(), native.status()\n"
            "assert native.glm_library().scanfit_glm_pass\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
