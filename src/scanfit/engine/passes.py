"""One pass over a chunked source: compiled per-chunk programs whose sums add up to the full data's.

A pass at parameters ``params`` runs one compiled program per chunk (every chunk has the same
shape, the last one padded with rows of weight 0, so one program serves them all) and adds up what
it returns: the total weight, the weighted sums of the statistics' terms
(``likelihood.streamed``), and as asked the gradient, the information (``X'WX`` for the GLM
families, minus the Hessian otherwise) and the scores' outer products (for robust standard errors).
Sums are reduced over the chunks here, over the devices of a mesh by the compiled program (the rows
of each chunk are sharded over the local devices), and over processes by ``distributed.allreduce``.

The chunks come from ``engine.feeder.Feeder`` (its first pass learns the moments and keeps the chunks).
On a CPU, the GLM passes of the Gaussian and logit likelihoods are summed by native code instead
(``engine.native_pass``), with the same sums.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..data.identification import EXTREME_LOGIT
from ..likelihoods import streamed as lstats
from ..models.core import forward
from . import distributed
from .feeder import Feeder, Moments, mesh_of
from .native_pass import native_glm_pass
from .second_order import _glm_gradient, _glm_information, gram

__all__ = ["Feeder", "Moments", "run_pass", "mesh_of", "GLM_KINDS"]


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

    return _with_accumulator(body)


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

    return _with_accumulator(body)


def _with_accumulator(body):
    """``(body, run)``: the chunk's sums as a jitted function, and ``run(acc, *args) = acc + body(*args)``
    compiled with ``acc`` donated. ``run`` calls the jitted ``body``, so that tracing ``body`` once for
    the sums' shapes (``jax.eval_shape`` in ``_local_pass``) serves ``run`` too (it was traced twice)."""
    body = jax.jit(body)

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
    try:
        acc = native_glm_pass(feeder, model, lik, kind, family, params, center, scale, dtype)
        if acc is None:  # no native pass here: XLA's programs
            block = BLOCK_ROWS if feeder.mesh is None and jax.default_backend() == "cpu" else 0  # a CPU's caches
            body, program = _program(model, lik, kind, family, center is not None, dtype, block)
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
