"""One pass over a chunked source: compiled per-chunk programs whose sums add up to the full data's.

A pass at parameters ``params`` runs one compiled program per chunk (every chunk has the same
shape, the last one padded with rows of weight 0, so one program serves them all) and adds up what
it returns: the total weight, the weighted sums of the statistics' terms
(``likelihood.streamed``), and as asked the gradient, the information (``X'WX`` for the GLM
families, minus the Hessian otherwise) and the scores' outer products (for robust standard errors).
Sums are reduced over the chunks here, over the devices of a mesh by the compiled program (the rows
of each chunk are sharded over the local devices), and over processes by ``distributed.allreduce``.

The first pass (``Feeder.describe``) reads the source with NumPy: row count, weighted column
moments (the standardization), the target's encoding and its moments (the intercept-only model),
checks for missing and infinite values; it keeps the chunks on the device when they fit the
source's ``cache`` budget, so later passes do not read the files again.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from scipy import special

from ..data.identification import EXTREME_LOGIT
from ..likelihoods import streamed as lstats
from ..models.core import forward
from . import distributed
from .second_order import _glm_gradient, _glm_information, gram

__all__ = ["Feeder", "Moments", "run_pass", "mesh_of", "GLM_KINDS"]


@dataclass
class Moments:
    """What the first pass learns (totals over every process)."""

    rows: int
    weight: float
    mean: np.ndarray  # (d,) weighted column means
    m2: np.ndarray  # (d,) weighted sums of squared deviations
    y_mean: float
    y_m2: float
    lgamma: float  # sum of w * lgamma(y + 1) (counts' intercept-only model)
    classes: np.ndarray | None  # weighted class totals (Categorical)
    likelihood: object  # prepared (Categorical learns its class count)

    def center_scale(self, centered: bool):
        """The standardization, as ``data.design.Design.build`` computes it."""
        scale = np.sqrt(self.m2 / self.weight) if self.weight > 0 else np.ones_like(self.mean)
        center = self.mean.copy()
        flat = ~(scale > 1e-12 * np.maximum(1.0, np.abs(center)))
        center = np.where(flat | (not centered), 0.0, center)
        return center.astype(np.float64), np.where(flat, 1.0, scale).astype(np.float64)


def _merge(a, b):
    """Chan et al.'s pairwise update of (weight, mean, m2)."""
    wa, ma, sa = a
    wb, mb, sb = b
    w = wa + wb
    if w == 0:
        return w, ma, sa
    delta = mb - ma
    return w, ma + delta * (wb / w), sa + sb + delta * delta * (wa * wb / w)


def mesh_of(devices=None):
    """A one-axis mesh ("rows") over the local devices, or None with one device."""
    devices = jax.local_devices() if devices is None else devices
    if len(devices) < 2:
        return None
    from jax.sharding import AxisType

    return jax.make_mesh((len(devices),), ("rows",), axis_types=(AxisType.Auto,), devices=devices)


def _narrow(y: np.ndarray):
    """The smallest dtype that holds the encoded target exactly (kept chunks: -1/1 labels take a byte)."""
    with np.errstate(invalid="ignore", over="ignore"):
        for dt in (np.int8, np.int32) if y.dtype.kind in "iub" else (np.int8, np.float32):
            if np.array_equal(y.astype(dt), y):  # a cast that wraps or rounds does not compare equal
                return dt
    return np.int32 if y.dtype.kind in "iu" else np.float64


class Feeder:
    """A source's chunks as device arrays of one shape: ``(x, y, w, offset, rows)``."""

    def __init__(self, source, likelihood, dtype: str, *, mesh=None, part: str = "x"):
        self.source, self.likelihood, self.dtype, self.mesh, self.part = source, likelihood, dtype, mesh, part
        ndev = 1 if mesh is None else mesh.size
        self.rows = int(math.ceil(source.batch_rows / ndev) * ndev)
        self.kept: list | None = None
        self.keep = source.nbytes() <= source.cache_bytes()

    def _put(self, a, rows_axis=True):
        if a is None:
            return None
        if self.mesh is None:
            return jax.device_put(a)  # a plain copy (jnp.asarray takes several times longer)
        from jax.sharding import NamedSharding, PartitionSpec as P

        spec = P("rows", *([None] * (a.ndim - 1))) if rows_axis else P()
        return jax.device_put(a, NamedSharding(self.mesh, spec))

    def _device(self, chunk, yenc):
        b, n = self.rows, len(chunk.y)

        def pad(a, fill=0.0):
            if a is None or len(a) == b:
                return a
            out = np.full((b,) + a.shape[1:], fill, a.dtype)
            out[:n] = a
            return out

        ydt = _narrow(yenc)
        w = None if chunk.weights is None else pad(chunk.weights.astype(self.dtype))
        off = None if chunk.offset is None else pad(chunk.offset.astype(self.dtype))
        return (self._put(pad(chunk.x)), self._put(pad(yenc.astype(ydt))), self._put(w), self._put(off),
                jax.device_put(np.int32(n)))

    def _encode(self, chunk, lik):
        name = "y" if self.part == "x" else "valid y"
        lik2, yenc = lik.prepare(np.asarray(chunk.y), name=f"{name} (column {self.source.target!r})")
        return lik2, yenc

    def describe(self) -> Moments:
        """The first pass (see the module docstring); keeps the chunks when they fit the budget."""
        kept = [] if self.keep else None
        try:
            totals, error = self._scan(kept), None
        except Exception as err:  # the other processes learn of it in _totals instead of waiting for this one
            if distributed.process_count() == 1:
                raise
            d = len(self.source.features)
            totals, error = ((0.0, np.zeros(d), np.zeros(d)), (0.0, 0.0, 0.0), 0, 0.0, {}, -1), err
        self.kept = kept
        return self._totals(*totals, error=error)

    def _scan(self, kept):
        """This process's chunks, checked, as ``(stats, ystats, rows, lgamma sum, class totals, top label)``."""
        src, lik = self.source, self.likelihood
        names = src.features
        stats = (0.0, np.zeros(len(names)), np.zeros(len(names)))
        ystats, rows, lgam, top = (0.0, 0.0, 0.0), 0, 0.0, -1
        classes = {}
        for chunk in src.chunks():
            y = np.asarray(chunk.y)
            if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
                bad = ~np.isfinite(y)
                raise ValueError(f"The target column {src.target!r} of the Parquet data has NaN or infinite values "
                                 f"({int(bad.sum())} in rows {rows}..{rows + len(y) - 1}, the first at row "
                                 f"{rows + int(np.argmax(bad))}); drop or fill them before the fit.")
            lik_c, yenc = self._encode(chunk, lik)
            device = self._device(chunk, yenc)
            wc, mc, m2c, finite, ym, ym2 = jax.device_get(_moments(*device))
            bad = ~finite
            if bad.any():
                raise ValueError(f"The column {names[int(np.argmax(bad))]!r} of the Parquet data has NaN or infinite "
                                 f"values; drop or fill them before the fit.")
            w = np.ones(len(chunk.y)) if chunk.weights is None else chunk.weights
            if not np.all(np.isfinite(w) & (w >= 0)):
                raise ValueError(f"The weights column {src.weights!r} must hold finite numbers >= 0; got "
                                 f"{w[~(np.isfinite(w) & (w >= 0))][:3].tolist()}.")
            if chunk.offset is not None and not np.all(np.isfinite(chunk.offset)):
                raise ValueError("The offset/exposure column of the Parquet data has non-finite values.")
            if getattr(lik_c, "n_classes", None) is not None and lik.name == "categorical":
                top = max(top, int(yenc.max()))
                classes_c = np.bincount(yenc, weights=w, minlength=top + 1)
                for k, v in enumerate(classes_c):
                    classes[k] = classes.get(k, 0.0) + v
            if wc > 0:
                stats = _merge(stats, (float(wc), np.asarray(mc, np.float64), np.asarray(m2c, np.float64)))
                ystats = _merge(ystats, (float(wc), float(ym), float(ym2)))
            if lik.name in ("poisson", "negativebinomial"):
                lgam += float(w @ special.gammaln(yenc + 1.0))
            rows += len(chunk.y)
            if kept is not None:
                kept.append(device)
        return stats, ystats, rows, lgam, classes, top

    def _totals(self, stats, ystats, rows, lgam, classes, top, error=None) -> Moments:
        lik = self.likelihood
        if distributed.process_count() > 1:  # gather every process's moments, merged in process order
            head = distributed.allgather(np.array([top, error is not None, rows]))
            failed = [i for i, v in enumerate(head) if v[1]]
            if error is not None:
                raise error
            if failed:
                raise RuntimeError(f"Process {failed[0]} could not read its share of the data {self.source.path!r} "
                                   f"(its own error says why); every process stops.")
            empty = [i for i, v in enumerate(head) if v[2] == 0]
            if empty:
                raise ValueError(f"Process {empty[0]} read no rows from its share of the Parquet data "
                                 f"{self.source.path!r} (every {len(head)}-th file from its index): every process needs "
                                 f"rows; write the data as files of rows, at least one per process.")
            top = int(head[:, 0].max())
            d = len(stats[1])
            mine = np.concatenate([[stats[0]], stats[1], stats[2], ystats, [rows, lgam],
                                   [classes.get(k, 0.0) for k in range(top + 1)]])
            every = distributed.allgather(mine)
            stats, ystats = (0.0, np.zeros(d), np.zeros(d)), (0.0, 0.0, 0.0)
            for v in every:
                stats = _merge(stats, (v[0], v[1:1 + d], v[1 + d:1 + 2 * d]))
                ystats = _merge(ystats, tuple(v[1 + 2 * d:4 + 2 * d]))
            rows, lgam = int(every[:, 4 + 2 * d].sum()), float(every[:, 5 + 2 * d].sum())
            classes = {k: float(every[:, 6 + 2 * d + k].sum()) for k in range(top + 1)}
        if lik.name == "categorical":
            from dataclasses import replace

            k = lik.n_classes if lik.n_classes is not None else max(top + 1, 2)
            if top >= k:
                raise ValueError(f"The Categorical likelihood with {k} classes needs labels in 0..{k - 1}; the data "
                                 f"has label {top}.")
            lik = replace(lik, n_classes=k)
        weight = float(stats[0])
        if rows == 0 or not weight > 0:
            raise ValueError(f"The Parquet data {self.source.path!r} has no rows with positive weight.")
        counts = None if lik.name != "categorical" else np.array([classes.get(c, 0.0) for c in range(lik.n_classes)])
        self.likelihood = lik
        return Moments(rows, weight, np.asarray(stats[1], np.float64), np.asarray(stats[2], np.float64),
                       float(ystats[1]), float(ystats[2]), lgam, counts, lik)

    def sampled(self, every: int) -> "Feeder":
        """This feeder over about one ``every``-th of the rows, spread over the data: every
        ``every``-th kept chunk, or every ``every``-th row group of the files (the first included)."""
        import copy

        out = copy.copy(self)
        out.every = max(1, int(every))
        return out

    every = 1

    def __iter__(self):
        if self.kept is not None:
            yield from self.kept[::self.every]
            return
        for chunk in self.source.chunks(every=self.every):
            yield self._device(chunk, self._encode(chunk, self.likelihood)[1])


def _weights(x, w, rows):
    dt = jnp.result_type(float)  # float64 in a float64 fit
    mask = (jnp.arange(x.shape[0]) < rows).astype(dt)
    return mask if w is None else mask * w.astype(dt)


@jax.jit
def _sums(x, y, w, rows):
    wt = _weights(x, w, rows)
    return jnp.sum(wt), jnp.sum(x.astype(wt.dtype) * wt[:, None], axis=0), jnp.sum(y.astype(wt.dtype) * wt)


@jax.jit
def _squares(x, y, w, rows, mean, ymean):
    wt = _weights(x, w, rows)
    return (jnp.sum(jnp.square(x.astype(wt.dtype) - mean[None, :]) * wt[:, None], axis=0),
            jnp.sum(jnp.square(y.astype(wt.dtype) - ymean) * wt))


def _moments(x, y, w, off, rows):
    """A chunk's weight, weighted column means and sums of squared deviations (in the fit's dtype),
    whether each column is finite, and the target's mean and sum of squared deviations. Two
    programs: XLA on a CPU fuses these reductions into one loop that runs several times slower."""
    total, sx, sy = _sums(x, y, w, rows)
    safe = jnp.maximum(total, jnp.finfo(total.dtype).tiny)
    mean, ymean = sx / safe, sy / safe
    m2, ym2 = _squares(x, y, w, rows, mean, ymean)
    return total, mean, m2, jnp.isfinite(sx) & jnp.isfinite(m2), ymean, ym2


@functools.lru_cache(maxsize=64)
def _program(model, lik, kind: str, family, standardized: bool, dtype: str, block: int = 0):
    """The per-chunk program: ``(acc, params, center, scale, x, y, w, offset, rows) -> acc + sums``
    (``block``: sub-blocks of about that many rows where the program has them, see ``_linear_glm``)."""
    extra_names = lik.extra_params

    if family in SCALAR_FAMILIES and kind in GLM_KINDS and model.name == "linear":
        return _linear_glm(model, lik, kind, standardized, dtype, block)

    def body(params, center, scale, x, y, w, off, rows):
        dt = jnp.dtype(dtype)
        xs = x.astype(dt)
        if standardized:
            xs = (xs - center[None, :]) / scale[None, :]
        xl = model.columns_of(xs) if model.columns else xs
        mask = (jnp.arange(x.shape[0]) < rows).astype(dt)
        wt = mask if w is None else mask * w
        yy = y if lik.name == "categorical" else y.astype(dt)

        def index_of(p):
            i = forward(model, p, xl)
            return i if off is None else i + off

        def per_row(p):
            return lstats.terms(lik, index_of(p), yy, **{k: p[k] for k in extra_names})

        index = index_of(params)
        terms = lstats.terms(lik, index, yy, **{k: params[k] for k in extra_names})
        out = {"weight": jnp.sum(wt), "terms": terms @ wt}
        if kind == "grad":
            out["grad"] = jax.grad(lambda p: per_row(p)[0] @ wt)(params)
        if kind in ("newton", "final"):
            n = index.shape[-1]
            if family is not None:
                out["g"] = _glm_gradient(lik, family, index, yy, xl, wt) * n
                out["h"] = _glm_information(lik, family, index, yy, xl, wt) * n
                if kind == "final":
                    out["meat"] = _glm_meat(lik, family, index, yy, xl, wt)
                    if family == "categorical":  # rows whose fitted logits suggest separation
                        out["extreme"] = jnp.sum(jnp.where(jnp.ptp(index, axis=0) > EXTREME_LOGIT, wt, 0.0))
            else:
                theta, unravel = ravel_pytree(params)
                total = lambda th: per_row(unravel(th))[0] @ wt  # noqa: E731
                out["g"] = jax.grad(total)(theta)
                out["h"] = -jax.hessian(total)(theta)
                if kind == "final":
                    s = jax.jacfwd(lambda th: per_row(unravel(th))[0])(theta)  # (n, p)
                    out["meat"] = (s * wt[:, None]).T @ s
        return out

    def run(acc, params, center, scale, x, y, w, off, rows):
        out = body(params, center, scale, x, y, w, off, rows)
        return jax.tree.map(jnp.add, acc, out)

    return body, jax.jit(run, donate_argnums=0)


SCALAR_FAMILIES = ("gaussian", "bernoulli", "poisson")
GLM_KINDS = ("rough", "newton", "score", "final")  # the passes that use the GLM family's structure


BLOCK_ROWS = 25_000  # a GLM pass sums a chunk in sub-blocks of about this many rows (on a CPU)
_PRODUCTS = (((0,), (0,)), ((), ()))  # z'z as lax.dot_general contracting the rows (faster than z.T @ z)


def _block_rows(n: int, block: int) -> int:
    """The sub-block of a chunk of ``n`` rows: a divisor of ``n`` between a quarter of ``block`` and
    ``block``, or ``n`` (no sub-blocks) when ``block`` is 0, ``n`` is small or has no such divisor."""
    if not block or n <= 2 * block:
        return n
    return next((b for b in range(block, block // 4, -1) if n % b == 0), n)


@functools.lru_cache(maxsize=32)
def _linear_glm(model, lik, kind: str, standardized: bool, dtype: str, block: int = 0):
    """The Newton pass of ``Linear`` with a scalar GLM family, on the chunk as stored (rows x
    features; XLA forms ``X'WX`` from that layout several times faster than from the transposed
    one). A "rough" pass is float32 throughout (the sums returned in float64), for the steps far
    from the maximum, where a direction and a line search need only a few digits; a "newton" pass
    is float64 but for the products of ``X'WX`` (a direction with float32's digits still multiplies
    the error by about 1e-6 a step); a "score" pass is float64 without ``X'WX`` (the objective and
    the gradient, for steps with an information held from an earlier pass); the "final" pass, at
    the returned estimate, is float64 throughout (its information gives the standard errors).

    ``block`` rows (``BLOCK_ROWS`` on a CPU with one device): the program sums the chunk in sub-blocks
    of about that many rows (``lax.scan``), so that the weighted rows ``z = x sqrt(v)`` of a block stay in
    the CPU's caches between forming them and their products ``z'z``: measured at 125,000 x 20, the
    final pass 14 ms a chunk against 25 ms for the whole chunk at once in two programs (one program
    over the whole chunk: 19-30 ms)."""
    intercept = model.intercept
    dt = jnp.dtype("float32" if kind == "rough" else dtype)
    # a "newton" pass forms X'WX from float32 products: its direction has float32's digits, so a step
    # multiplies the error by ~1e-6 (from the rough passes' ~1e-6, to ~1e-12); the "final" pass, whose
    # information gives the standard errors, is float64
    low = jnp.float32 if kind == "newton" else dt
    keys = {"score": (), "final": ("h", "meat")}.get(kind, ("h",))

    def sums_of(params, center, scale, x, y, wt, off):
        """One block's sums, each matrix as (total, side, products) of [1, x]' diag(v) [1, x]."""
        xs = x.astype(dt)
        if standardized:
            xs = (xs - center.astype(dt)[None, :]) / scale.astype(dt)[None, :]
        yy = y.astype(dt)
        # sums over rows written as reductions: XLA fuses the cast and the standardization into them
        # (a matrix-vector product over the rows of this layout is several times slower on a CPU)
        index = jnp.sum(xs * params["beta1"][None, :], axis=1) + (params["beta0"] if intercept else 0.0)
        index = index if off is None else index + off.astype(dt)
        r, W = lik.glm_terms(index, yy)
        rw = r * wt
        g = jnp.sum(xs * rw[:, None], axis=0)
        out = {"weight": jnp.sum(wt), "terms": lstats.terms(lik, index, yy) @ wt,
               "g": jnp.concatenate([jnp.sum(rw)[None], g]) if intercept else g}
        if kind == "final" and lik.name == "bernoulli":  # rows whose fitted logit suggests separation
            out["extreme"] = jnp.sum(jnp.where(jnp.abs(index) > EXTREME_LOGIT, wt, 0.0))
        for key in keys:
            v = jnp.broadcast_to(W, index.shape) * wt if key == "h" else r * r * wt  # v >= 0
            z = (xs * jnp.sqrt(v)[:, None]).astype(low)
            out[key] = (jnp.sum(v), jnp.sum(xs * v[:, None], axis=0),
                        jax.lax.dot_general(z, z, _PRODUCTS).astype(dt))
        return jax.tree.map(lambda a: a.astype(dtype), out)

    def body(params, center, scale, x, y, w, off, rows):
        params = jax.tree.map(lambda a: a.astype(dt), params)
        n = x.shape[0]
        mask = (jnp.arange(n) < rows).astype(dt)
        wt = mask if w is None else mask * w.astype(dt)
        b = _block_rows(n, block)
        if b == n:
            out = sums_of(params, center, scale, x, y, wt, off)
        else:
            parts = jax.tree.map(lambda a: a.reshape((n // b, b) + a.shape[1:]), (x, y, wt, off))
            shapes = jax.eval_shape(lambda p: sums_of(params, center, scale, *p), jax.tree.map(lambda a: a[0], parts))

            def add(acc, part):
                return jax.tree.map(jnp.add, acc, sums_of(params, center, scale, *part)), None

            out = jax.lax.scan(add, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes), parts)[0]
        for key in keys:
            total, side, inner = out[key]
            out[key] = inner if not intercept else jnp.block([[total[None, None], side[None, :]],
                                                              [side[:, None], inner]])
        return out

    def run(acc, *args):
        return jax.tree.map(jnp.add, acc, body(*args))

    return body, jax.jit(run, donate_argnums=0)


def _glm_meat(lik, family, index, y, xt, w):
    """Sum of ``w_i s_i s_i'`` for the GLM coordinates' per-row scores ``s_i``."""
    if family != "categorical":
        r = lik.glm_terms(index, y)[0]
        return gram(xt, w * r * r)
    k = index.shape[0]
    r = jax.nn.one_hot(y, k, axis=0, dtype=index.dtype) - jax.nn.softmax(index, axis=0)  # (k, n)
    s = (r[1:, None, :] * xt[None, :, :]).reshape(-1, xt.shape[1])  # ((k-1) q, n)
    return (s * w[None, :]) @ s.T


_SHAPES: dict = {}  # the sums' shapes per program and input shapes (eval_shape traces the program)


def run_pass(feeder, model, lik, kind, family, params, center, scale, dtype):
    """The sums of one pass at ``params`` (NumPy float64), over chunks, devices and processes."""
    block = BLOCK_ROWS if feeder.mesh is None and jax.default_backend() == "cpu" else 0  # a CPU's caches
    body, program = _program(model, lik, kind, family, center is not None, dtype, block)
    try:
        acc = _local_pass(feeder, body, program, params, center, scale)
    except Exception:
        if distributed.process_count() > 1:  # tell the others, who would otherwise wait for this process
            distributed.allgather(np.array([1.0]))
        raise
    if distributed.process_count() > 1:
        failed = np.flatnonzero(distributed.allgather(np.array([0.0]))[:, 0])
        if len(failed):
            raise RuntimeError(f"Process {failed[0]} could not read its share of the data {feeder.source.path!r} "
                               f"in a pass (its own error says why); every process stops.")
    return distributed.allreduce(jax.device_get(acc))


def _local_pass(feeder, body, program, params, center, scale):
    """This process's sums of one pass (device arrays)."""
    acc = None
    for x, y, w, off, rows in feeder:
        if acc is None:
            key = (body, x.shape, x.dtype, y.dtype, w is None, off is None, jax.tree.structure(params))
            if key not in _SHAPES:
                _SHAPES[key] = jax.eval_shape(body, params, center, scale, x, y, w, off, rows)
            shapes = _SHAPES[key]
            acc = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
            if feeder.mesh is not None:
                from jax.sharding import NamedSharding, PartitionSpec as P

                acc = jax.device_put(acc, NamedSharding(feeder.mesh, P()))
        else:  # the next chunk is on the device: wait for the last one's program, so that the loop does not
            jax.block_until_ready(acc)  # queue the whole pass's chunks (memory is a few chunks, not the rows)
        acc = program(acc, params, center, scale, x, y, w, off, rows)
    if acc is None:
        raise ValueError(f"The Parquet data {feeder.source.path!r} gave this process no rows.")
    return acc
