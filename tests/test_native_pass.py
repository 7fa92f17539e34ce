"""The streamed GLM pass in native code (engine/native_pass.py, likelihoods/native/glm.cc) gives the
XLA program's sums, and a streamed fit gives the same answer with either."""

from __future__ import annotations

import numpy as np
import pytest

import scanfit as sf
from scanfit.engine import native_pass, passes
from scanfit.likelihoods import native

pytestmark = pytest.mark.skipif(native.glm_library() is None, reason=f"no native GLM pass: {native.GLM_STATUS[0]}")


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
