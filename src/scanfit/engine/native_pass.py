"""The streamed GLM passes in native code: a chunk's sums from ``likelihoods/native/glm.cc``.

On a CPU with one device, the Newton passes of ``Linear`` with the Gaussian or the logit Bernoulli
likelihood in a float64 fit are summed by a compiled C++ loop, called with ``ctypes`` on the chunks'
host memory (the kept chunks are NumPy arrays already; a device array of the CPU is read in place).
It returns what ``passes._linear_glm``'s XLA program does (weight, the statistics' terms, gradient,
``X'WX``, the scores' products, the rows beyond the separation logit), in float64 throughout, so a
"rough" or "newton" pass has more digits than XLA's float32 products, never fewer. No program is
traced or compiled: the pass needs neither XLA's ~3 ns an element nor its tracing and lowering.

Other families, links, models, devices or dtypes, and ``SCANFIT_NATIVE=0`` or no C++ compiler, use
the XLA programs, which give the same sums (the tests compare the two).
"""

from __future__ import annotations

import ctypes
import os

import jax
import numpy as np

from ..data.identification import EXTREME_LOGIT

__all__ = ["native_glm_pass", "native_moments", "moments_library", "applies", "gather_rows"]

_FAMILIES = {"gaussian": 0, "bernoulli": 1}
_TERMS = {0: 1, 1: 4}


def _threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _family(model, lik, kind, family, dtype, feeder) -> int | None:
    if not (kind in ("rough", "newton", "score", "final") and dtype == "float64" and model.name == "linear"
            and feeder.mesh is None and family == lik.name and lik.name in _FAMILIES
            and getattr(lik, "link", "logit") == "logit" and not lik.extra_params):
        return None
    if jax.default_backend() != "cpu":
        return None
    return _FAMILIES[lik.name]


def applies(feeder, model, lik, family, dtype) -> bool:
    """Whether Newton's passes of this fit run natively (its parameters can then stay NumPy arrays)."""
    if _family(model, lik, "newton", family, dtype, feeder) is None:
        return False
    from ..likelihoods import native

    return native.glm_library() is not None


def native_glm_pass(feeder, model, lik, kind, family, params, center, scale, dtype):
    """This process's sums of one pass as a dict of NumPy float64 arrays (``passes._linear_glm``'s
    keys), or None when the native pass does not apply here (the caller runs the XLA programs)."""
    code = _family(model, lik, kind, family, dtype, feeder)
    if code is None:
        return None
    from ..likelihoods import native

    lib = native.glm_library()
    if lib is None:
        return None
    intercept = int(bool(model.intercept))
    beta = np.ascontiguousarray(np.asarray(params["beta1"], np.float64).reshape(-1))
    beta0 = float(np.asarray(params["beta0"])) if intercept else 0.0
    d = beta.shape[0]
    center = np.zeros(d) if center is None else np.ascontiguousarray(np.asarray(center, np.float64))
    inv_scale = np.ones(d) if scale is None else np.ascontiguousarray(1.0 / np.asarray(scale, np.float64))
    want_h, want_meat = int(kind != "score"), int(kind == "final")
    want_extreme = int(kind == "final" and code == 1)
    out = np.zeros(lib.scanfit_glm_size(d, intercept, code, want_h, want_meat, want_extreme))
    threads, seen = _threads(), False
    for x, y, w, off, rows in feeder:
        seen = True
        n = int(rows)
        xh = _rows(x)
        yh = np.ascontiguousarray(np.asarray(y)[:n], np.float64)
        wh = None if w is None else np.ascontiguousarray(np.asarray(w)[:n], np.float64)
        oh = None if off is None else np.ascontiguousarray(np.asarray(off)[:n], np.float64)
        done = lib.scanfit_glm_pass(
            xh.ctypes.data, int(xh.dtype == np.float64), n, d, yh.ctypes.data, _ptr(wh), _ptr(oh),
            beta.ctypes.data, beta0, intercept, center.ctypes.data, inv_scale.ctypes.data, code, want_h,
            want_meat, want_extreme, EXTREME_LOGIT, threads, out.ctypes.data)
        if done != 0:  # pragma: no cover - the options above are always valid
            raise RuntimeError(f"the native GLM pass refused its options (code {done})")
    if not seen:
        raise ValueError(f"The Parquet data {feeder.source.path!r} gave this process no rows.")
    return _unpack(out, d + intercept, _TERMS[code], want_h, want_meat, want_extreme)


def _rows(x) -> np.ndarray:
    """A chunk's rows as the kernels read them: C-contiguous float32 or float64 (in place when they are)."""
    xh = np.asarray(x)
    return xh if xh.dtype in (np.float32, np.float64) and xh.flags.c_contiguous else np.ascontiguousarray(xh, np.float64)


def _ptr(a):
    return None if a is None else ctypes.c_void_p(a.ctypes.data)


def _unpack(out, p, m, want_h, want_meat, want_extreme) -> dict:
    sums = {"weight": out[0], "terms": out[1:1 + m], "g": out[1 + m:1 + m + p]}
    at = 1 + m + p
    for key, wanted in (("h", want_h), ("meat", want_meat)):
        if wanted:
            sums[key] = out[at:at + p * p].reshape(p, p)
            at += p * p
    if want_extreme:
        sums["extreme"] = out[at]
    return sums


def moments_library(mesh, dtype):
    """The native library for a first pass's chunk moments (a float64 fit on one CPU device), or None
    (the feeder's XLA programs then compute them)."""
    if mesh is not None or dtype != "float64" or jax.default_backend() != "cpu":
        return None
    from ..likelihoods import native

    return native.glm_library()


def native_moments(lib, x, y, w, moments: bool):
    """A chunk's ``(weight, mean, m2, finite, y mean, y m2)`` as the feeder's ``_moments`` (``moments``)
    or ``_checked`` (mean and m2 None) give them, from host memory: the weighted column means and sums of
    squared deviations, whether each column is finite, the target's mean and sum of squared deviations
    (``x``: the chunk's rows, no padding)."""
    xh = _rows(x)
    d = xh.shape[1]
    rows = xh.shape[0]
    yh = np.ascontiguousarray(np.asarray(y), np.float64)
    wh = None if w is None else np.ascontiguousarray(np.asarray(w), np.float64)
    out = np.zeros(3 + 3 * d)
    done = lib.scanfit_chunk_moments(xh.ctypes.data, int(xh.dtype == np.float64), rows, xh.shape[0], d,
                                     yh.ctypes.data, _ptr(wh), int(moments), out.ctypes.data)
    if done != 0:  # pragma: no cover - the arguments above are always valid
        raise RuntimeError(f"the native chunk moments refused their arguments (code {done})")
    mean, m2 = (out[3:3 + d], out[3 + d:3 + 2 * d]) if moments else (None, None)
    return out[0], mean, m2, out[3 + 2 * d:] == 1.0, out[1], out[2]


def gather_rows(columns, out: np.ndarray) -> None:
    """``out[:, j] = columns[j]`` for a row-major ``out`` (C-contiguous, float32 or float64, the columns'
    dtype) by native code: a kept chunk's rows from pyarrow's columns, faster than pyarrow's own
    ``to_tensor`` and a copy (the feeder asks for columns only where the library is loaded)."""
    from ..likelihoods import native

    cols = [np.ascontiguousarray(c, out.dtype) for c in columns]
    if not (out.flags.c_contiguous and out.dtype in (np.float32, np.float64) and out.shape[1] == len(cols)
            and all(len(c) == out.shape[0] for c in cols)):
        raise ValueError(f"gather_rows needs a C-contiguous float32/float64 out of {len(cols)} columns of "
                         f"{out.shape[0]} rows; got {out.dtype} {out.shape}")
    pointers = (ctypes.c_void_p * len(cols))(*[c.ctypes.data for c in cols])
    done = native.glm_library().scanfit_gather_rows(pointers, int(out.dtype == np.float64), out.shape[0],
                                                    out.shape[1], out.ctypes.data)
    if done != 0:  # pragma: no cover - the arguments above are always valid
        raise RuntimeError(f"the native row gather refused its arguments (code {done})")
