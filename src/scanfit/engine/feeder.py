"""A source's chunks on the device, and the first pass over them.

``Feeder`` gives a source's chunks as device arrays of one shape, ``(x, y, w, offset, rows)``: every
chunk padded to ``batch_rows`` (rows of weight 0), its rows sharded over the local devices of a mesh.
The first pass (``Feeder.describe``) reads the source with NumPy: row count, weighted column moments
(the standardization), the target's encoding and its moments (the intercept-only model), checks for
missing and infinite values; it keeps the chunks in memory when they fit the source's ``cache``
budget (``x`` in one populated arena, ``_Arena``), so later passes do not read the files again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from . import distributed
from .native_pass import gather_rows, moments_library, native_moments

__all__ = ["Feeder", "Moments", "mesh_of"]


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
    x_weight: float | None = None  # the weight behind mean and m2 (None: all of it; less: a sample's)
    offset: bool = False  # whether the rows carry an offset (or exposure)

    def center_scale(self, centered: bool):
        """The standardization, as ``data.design.Design.build`` computes it (from a sample's moments
        when the first pass took them on every k-th chunk only)."""
        xw = self.weight if self.x_weight is None else self.x_weight
        scale = np.sqrt(self.m2 / xw) if xw > 0 else np.ones_like(self.mean)
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


def _populated(nbytes: int) -> np.ndarray:
    """``nbytes`` of zeroed memory, page-aligned, its pages mapped at once (``MAP_POPULATE``, Linux):
    on this project's VMs faulting fresh pages one at a time cost about 2.4 s for 840 MB (the chunks
    of 10 million rows x 20 kept by a first pass), mapping them in one call 0.3 s."""
    import mmap

    flags = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0) | getattr(mmap, "MAP_POPULATE", 0)
    try:
        return np.frombuffer(mmap.mmap(-1, nbytes, flags=flags), np.uint8)  # the array holds the mapping
    except (OSError, ValueError, TypeError):  # another system: NumPy's zeroed memory
        return np.zeros(nbytes, np.uint8)


class _Arena:
    """Zeroed, 64-byte aligned arrays carved out of large populated pieces (the kept chunks' ``x``;
    a device array on a CPU aliases such an array instead of copying it)."""

    def __init__(self, total: int):
        self.total, self.buf, self.used = max(int(total), 0), None, 0

    def empty(self, shape, dtype) -> np.ndarray:
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        size = -(-nbytes // 64) * 64
        if self.buf is None or self.used + size > len(self.buf):
            self.buf, self.used = _populated(max(size, self.total)), 0
            self.total = 0  # the estimate is spent: a chunk beyond it gets a piece of its own
        out = self.buf[self.used:self.used + nbytes].view(dtype).reshape(shape)
        self.used += size
        return out


class Feeder:
    """A source's chunks as device arrays of one shape: ``(x, y, w, offset, rows)``."""

    def __init__(self, source, likelihood, dtype: str, *, mesh=None, part: str = "x"):
        self.source, self.likelihood, self.dtype, self.mesh, self.part = source, likelihood, dtype, mesh, part
        ndev = 1 if mesh is None else mesh.size
        self.rows = int(math.ceil(source.batch_rows / ndev) * ndev)
        self.kept: list | None = None
        self.keep = source.nbytes() <= source.cache_bytes()
        self.arena = None

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
        if self.arena is not None and self.mesh is None:
            # kept, in memory mapped at once; left a NumPy array, which each program call aliases (a
            # device array aliasing it would hand the memory back only at JAX's next call after the fit)
            if chunk.x is None:  # columns (chunks(columns=True)): their rows laid out here by native code
                x = self.arena.empty((b, len(chunk.columns)), chunk.columns[0].dtype)
                gather_rows(chunk.columns, x[:n])
            else:
                x = self.arena.empty((b,) + chunk.x.shape[1:], chunk.x.dtype)
                x[:n] = chunk.x
        else:
            x = self._put(pad(chunk.x))
        return (x, self._put(pad(yenc.astype(ydt))), self._put(w), self._put(off), jax.device_put(np.int32(n)))

    def _encode(self, chunk, lik):
        name = "y" if self.part == "x" else "valid y"
        lik2, yenc = lik.prepare(np.asarray(chunk.y), name=f"{name} (column {self.source.target!r})")
        return lik2, yenc

    def describe(self, moments_every: int = 1) -> Moments:
        """The first pass (see the module docstring); keeps the chunks when they fit the budget.
        ``moments_every=k``: the columns' moments (the standardization) from every k-th chunk only
        (a sample, for fits whose answer does not depend on the standardization); every chunk is
        still checked, and counted for the weight and the target's moments."""
        moments_every = max(1, int(moments_every))
        kept = [] if self.keep else None
        if self.keep:
            chunks = -(-max(int(getattr(self.source, "n_rows", 0) or 0), 1) // self.rows)
            itemsize = np.dtype(getattr(self.source, "x_dtype", "float64")).itemsize
            self.arena = _Arena(chunks * (-(-self.rows * len(self.source.features) * itemsize // 64) * 64))
        try:
            totals, error = self._scan(kept, moments_every), None
        except Exception as err:  # the other processes learn of it in _totals instead of waiting for this one
            if distributed.process_count() == 1:
                raise
            d = len(self.source.features)
            totals, error = ((0.0, np.zeros(d), np.zeros(d)), (0.0, 0.0, 0.0), 0, 0.0, {}, -1), err
        self.kept, self.arena = kept, None
        return self._totals(*totals, error=error, moments_every=moments_every)

    def _scan(self, kept, moments_every=1):
        """This process's chunks, checked, as ``(stats, ystats, rows, lgamma sum, class totals, top label)``."""
        src, lik = self.source, self.likelihood
        names = src.features
        stats = (0.0, np.zeros(len(names)), np.zeros(len(names)))
        ystats, rows, lgam, top = (0.0, 0.0, 0.0), 0, 0.0, -1
        classes = {}
        native = moments_library(self.mesh, self.dtype)
        # kept chunks with the native library: the reading thread hands over the columns, whose rows are
        # laid out straight into the kept memory here (pyarrow's to_tensor and a copy took the reader's time)
        columns = native is not None and kept is not None  # (moments_library: one device only)
        for i, chunk in enumerate(src.chunks(columns=columns)):
            y = np.asarray(chunk.y)
            if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
                bad = ~np.isfinite(y)
                raise ValueError(f"The target column {src.target!r} of the Parquet data has NaN or infinite values "
                                 f"({int(bad.sum())} in rows {rows}..{rows + len(y) - 1}, the first at row "
                                 f"{rows + int(np.argmax(bad))}); drop or fill them before the fit.")
            lik_c, yenc = self._encode(chunk, lik)
            device = self._device(chunk, yenc)
            if native is not None:  # the same numbers from native code on the chunk's memory (no XLA program)
                x = chunk.x if chunk.x is not None else device[0][:len(chunk.y)]
                wc, mc, m2c, finite, ym, ym2 = native_moments(native, x, yenc, chunk.weights, i % moments_every == 0)
            elif i % moments_every == 0:  # the columns' moments (the standardization) on every k-th chunk
                wc, mc, m2c, finite, ym, ym2 = jax.device_get(_moments(*device))
            else:  # the others are checked and counted: a fit with a sample start needs no more of them
                wc, finite, ym, ym2 = jax.device_get(_checked(*device))
                mc = None
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
                if mc is not None:
                    stats = _merge(stats, (float(wc), np.asarray(mc, np.float64), np.asarray(m2c, np.float64)))
                ystats = _merge(ystats, (float(wc), float(ym), float(ym2)))
            if lik.name in ("poisson", "negativebinomial"):
                from scipy.special import gammaln  # counts only (its import takes ~0.3 s)

                lgam += float(w @ gammaln(yenc + 1.0))
            rows += len(chunk.y)
            if kept is not None:
                kept.append(device)
        return stats, ystats, rows, lgam, classes, top

    def _totals(self, stats, ystats, rows, lgam, classes, top, error=None, moments_every=1) -> Moments:
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
        weight = float(ystats[0])
        if rows == 0 or not weight > 0:
            raise ValueError(f"The Parquet data {self.source.path!r} has no rows with positive weight.")
        counts = None if lik.name != "categorical" else np.array([classes.get(c, 0.0) for c in range(lik.n_classes)])
        self.likelihood = lik
        return Moments(rows, weight, np.asarray(stats[1], np.float64), np.asarray(stats[2], np.float64),
                       float(ystats[1]), float(ystats[2]), lgam, counts, lik,
                       None if moments_every == 1 else float(stats[0]),
                       any(getattr(self.source, k, None) is not None for k in ("offset", "exposure")))

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


@jax.jit
def _checked(x, y, w, off, rows):
    """A chunk's weight, whether each column is finite, and the target's mean and sum of squared
    deviations (``_moments`` without the columns' moments: one cheap program)."""
    wt = _weights(x, w, rows)
    total = jnp.sum(wt)
    ymean = jnp.sum(y.astype(wt.dtype) * wt) / jnp.maximum(total, jnp.finfo(total.dtype).tiny)
    return total, jnp.all(jnp.isfinite(x), axis=0), ymean, jnp.sum(jnp.square(y.astype(wt.dtype) - ymean) * wt)


def _moments(x, y, w, off, rows):
    """A chunk's weight, weighted column means and sums of squared deviations (in the fit's dtype),
    whether each column is finite, and the target's mean and sum of squared deviations. Two
    programs: XLA on a CPU fuses these reductions into one loop that runs several times slower."""
    total, sx, sy = _sums(x, y, w, rows)
    safe = jnp.maximum(total, jnp.finfo(total.dtype).tiny)
    mean, ymean = sx / safe, sy / safe
    m2, ym2 = _squares(x, y, w, rows, mean, ymean)
    return total, mean, m2, jnp.isfinite(sx) & jnp.isfinite(m2), ymean, ym2
