"""Data the engine reads in chunks: a Parquet file, directory or glob, read lazily.

``sf.Parquet(path, target="y")`` goes where ``x`` goes in ``sf.fit`` (``y`` is then a column of the
files). The engine asks a source for :class:`Chunk` s of ``batch_rows`` rows (the last one shorter):
pyarrow reads only the columns the fit needs, row group by row group, and a prefetch thread reads
the next chunk while the engine computes on this one. Nothing is read when the source is made but
the files' schemas and row counts (their footers).

>>> import scanfit as sf  # doctest: +SKIP
>>> r = sf.fit(sf.Linear(), sf.Bernoulli(), sf.Parquet("data/", target="y"))  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
from dataclasses import dataclass, field
from typing import Iterator, NamedTuple

import numpy as np

from . import parquet_schema

__all__ = ["Parquet", "Arrays", "Chunk", "is_source"]

DEFAULT_BATCH_ROWS = 131_072


class Chunk(NamedTuple):
    """Up to ``batch_rows`` consecutive rows: ``x`` (rows, d) in float32 when every feature column is
    exact in float32, else float64; ``y`` as stored; ``weights`` and ``offset`` (float64) or None.
    ``columns``: the features as one array each (``chunks(columns=True)``; ``x`` is then None when the
    columns are stored in ``x``'s type: the caller lays the rows out where it keeps them)."""

    x: np.ndarray | None
    y: np.ndarray
    weights: np.ndarray | None
    offset: np.ndarray | None
    columns: tuple | None = None


def is_source(value) -> bool:
    return isinstance(value, (Parquet, Arrays))


def _pyarrow():
    try:
        import pyarrow.dataset as ds
        import pyarrow.parquet as pq
    except ImportError as err:  # pragma: no cover - pyarrow is a dependency
        raise ImportError("sf.Parquet needs pyarrow: pip install pyarrow") from err
    return ds, pq


@dataclass(frozen=True)
class Parquet:
    """A Parquet dataset read in chunks (see the module docstring).

    path : a ``.parquet`` file, a directory (its ``*.parquet`` files, recursively) or a glob.
    target : the column holding ``y``.
    features : the columns of ``x``, in order; default every other numeric column (not ``target``,
        ``weights``, ``offset``, ``exposure``), in the files' order.
    weights : a column of frequency weights; offset, exposure : count models' index offset, or
        exposure (its log is the offset).
    batch_rows : rows per chunk (the memory a pass needs grows with it, not with the file).
    cache : keep the chunks in memory after the first pass when they take at most this many bytes
        (``"auto"``: 1 GiB; 0 re-reads the files on every pass).
    """

    path: str
    target: str = "y"
    features: tuple[str, ...] | None = None
    weights: str | None = None
    offset: str | None = None
    exposure: str | None = None
    batch_rows: int = DEFAULT_BATCH_ROWS
    cache: int | str = "auto"
    files: tuple[str, ...] = field(default=(), compare=False, repr=False)
    n_rows: int = field(default=0, compare=False, repr=False)
    x_dtype: str = field(default="float64", compare=False, repr=False)
    schema: object = field(default=None, compare=False, repr=False)  # the columns as read (parquet_schema.unified)

    def __post_init__(self):
        if isinstance(self.batch_rows, bool) or not isinstance(self.batch_rows, (int, np.integer)) or self.batch_rows < 1:
            raise ValueError(f"The 'batch_rows' parameter of sf.Parquet must be a positive integer. "
                             f"Got {self.batch_rows!r}.")
        if not (self.cache == "auto" or (isinstance(self.cache, (int, np.integer)) and not isinstance(self.cache, bool)
                                         and self.cache >= 0)):
            raise ValueError(f"The 'cache' parameter of sf.Parquet must be 'auto' or a number of bytes >= 0. "
                             f"Got {self.cache!r}.")
        files = self.files or parquet_schema.files_of(self.path)
        object.__setattr__(self, "path", os.fspath(self.path))
        object.__setattr__(self, "files", files)
        _, pq = _pyarrow()
        if self.schema is not None:  # a copy of a checked source (aligned(), shard()): the same columns and types
            if not self.n_rows:  # a process's share of the files: its row count
                object.__setattr__(self, "n_rows", parquet_schema.footers(pq, files)[1])
            return
        schemas, n_rows = parquet_schema.footers(pq, files)
        schema = schemas[0]
        columns = list(schema.names)
        for name, value in (("target", self.target), ("weights", self.weights), ("offset", self.offset),
                            ("exposure", self.exposure)):
            if name == "target" and not isinstance(value, str):
                raise ValueError(f"The 'target' parameter of sf.Parquet must name the column of y (a string). "
                                 f"Got {value!r}; the columns are {columns}.")
            if value is not None and value not in columns:
                raise ValueError(f"The '{name}' parameter of sf.Parquet names the column {value!r}, which "
                                 f"{files[0]!r} lacks; it has {columns}"
                                 f"{parquet_schema.folder_keys(files, [value])}.")
        if self.offset is not None and self.exposure is not None:
            raise ValueError("Give sf.Parquet an 'offset' column or an 'exposure' column, not both.")
        others = tuple(dict.fromkeys(c for c in (self.target, self.weights, self.offset, self.exposure) if c))
        types = {n: schema.field(n).type for n in columns}
        for name in others:
            if not parquet_schema.numeric(types[name]):
                raise ValueError(f"The column {name!r} of {files[0]!r} holds {types[name]}, not numbers; sf.Parquet "
                                 f"reads the target, weights and offsets as numbers (encode classes as 0..K-1).")
        if self.features is None:
            features = tuple(n for n in columns if n not in others and parquet_schema.numeric(types[n]))
        else:
            features = (self.features,) if isinstance(self.features, str) else tuple(self.features)
            missing = [f for f in features if f not in types]
            if missing:
                raise ValueError(f"The 'features' parameter of sf.Parquet names {missing}, which {files[0]!r} "
                                 f"lacks; it has {columns}{parquet_schema.folder_keys(files, missing)}.")
            twice = sorted({f for f in features if features.count(f) > 1})
            if twice:
                raise ValueError(f"The 'features' parameter of sf.Parquet names {twice} more than once; name each "
                                 f"column once.")
            roles = [f for f in features if f in others]
            if roles:
                raise ValueError(f"The 'features' parameter of sf.Parquet names {roles}, which is the target, weights "
                                 f"or offset column; a column cannot be both (leave it out of features).")
            text = [f for f in features if not parquet_schema.numeric(types[f])]
            if text:
                raise ValueError(f"The 'features' parameter of sf.Parquet names non-numeric columns {text} "
                                 f"({[str(types[f]) for f in text]}); encode them as numbers first.")
        if not features:
            raise ValueError(f"sf.Parquet found no numeric feature columns in {files[0]!r} besides the target "
                             f"{self.target!r}; it has {columns}.")
        read_as, x_dtype = parquet_schema.unified(files, schemas, features, others)
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "n_rows", int(self.n_rows or n_rows))
        object.__setattr__(self, "x_dtype", x_dtype)
        object.__setattr__(self, "schema", read_as)

    @property
    def names(self) -> tuple[str, ...]:
        return self.features

    def cache_bytes(self) -> int:
        return (1 << 30) if self.cache == "auto" else int(self.cache)

    def nbytes(self) -> int:
        """The bytes the chunks take in memory."""
        per_row = len(self.features) * np.dtype(self.x_dtype).itemsize + 8 * (1 + (self.weights is not None)
                                                                              + (self.offset is not None or self.exposure is not None))
        return self.n_rows * per_row

    def aligned(self) -> "Parquet":
        """This source with ``batch_rows`` lowered to fit the files' row groups (from the first
        file's first group): a group larger than ``batch_rows`` is read as equal parts, smaller groups
        whole, as many to a chunk as fit. Each chunk is then one slice of a decoded row group (no rows
        copied to join pieces of two groups) and the chunks are alike (no padding but the last)."""
        from dataclasses import replace

        _, pq = _pyarrow()
        try:
            meta = pq.ParquetFile(self.files[0]).metadata
            group = meta.row_group(0).num_rows if meta.num_row_groups else 0
        except Exception:  # the chunks as asked: a file the first pass cannot read says why there
            return self
        b = min(int(self.batch_rows), max(self.n_rows, 1))  # every chunk is padded to b rows: no more than needed
        if group <= 0:
            return self if b == self.batch_rows else replace(self, batch_rows=b)
        rows = -(-group // -(-group // b)) if group > b else group * (b // group)
        return self if rows == self.batch_rows else replace(self, batch_rows=rows)

    def with_features(self, names) -> "Parquet":
        """This source reading the columns ``names`` instead (a validation source takes the training
        columns), checked again in every file."""
        from dataclasses import replace

        names = tuple(names)
        try:
            return replace(self, features=names, schema=None, n_rows=0)
        except ValueError as err:
            unnamed = all(n == f"x{j}" for j, n in enumerate(names))
            raise ValueError(f"valid=sf.Parquet({self.path!r}, ...) must hold the training columns {list(names)}"
                             + (" (arrays without column names have the columns x0, x1, ...: train on a DataFrame "
                                "whose columns name the features)" if unnamed else "") + f". {err}") from None

    def without_features(self) -> "Parquet":
        """This source reading only the target, weights and offset columns (chunks with an empty ``x``)."""
        import pyarrow as pa
        from dataclasses import replace

        return replace(self, features=(), schema=pa.schema([f for f in self.schema if f.name not in self.features]))

    def shard(self, index: int, count: int) -> "Parquet":
        """This process's share: every ``count``-th file from ``index`` (multi-process fits)."""
        if count <= 1:
            return self
        if len(self.files) < count:
            raise ValueError(f"sf.Parquet has {len(self.files)} file(s) for {count} processes; each process reads "
                             f"whole files, so write the data as at least {count} files (one per process or more).")
        from dataclasses import replace

        return replace(self, files=self.files[index::count], n_rows=0)


    def chunks(self, prefetch: bool = True, every: int = 1, columns: bool = False) -> Iterator[Chunk]:
        """The rows in chunks of ``batch_rows`` (the last shorter), in file order; a prefetch thread
        reads ahead (at most two chunks) while the caller computes. ``every=k`` reads every k-th
        row group only (counted over the files, the first included): a sample spread over the data.
        ``columns=True``: the features as columns (``Chunk.columns``, pyarrow's memory) and no ``x``
        where the columns have ``x``'s type, so the reading thread does not lay out the rows."""
        it = self._read(every, columns)
        return _prefetched(it) if prefetch else it

    def _read(self, every: int = 1, columns: bool = False) -> Iterator[Chunk]:
        import pyarrow as pa

        _, pq = _pyarrow()
        b = int(self.batch_rows)
        pieces, have = [], 0
        # held here: a pass left open until the interpreter exits is closed with the modules emptied
        release, errors = _release, (OSError, ValueError, pa.ArrowInvalid)
        try:
            # file by file, row group by row group: pyarrow's dataset scanner reads ahead until 64 MB are
            # queued; the prefetch thread already overlaps reading, so memory stays a few chunks
            groups = itertools.count()
            for batch in (batch for f in self.files for batch in _batches(pq, f, self.schema, b, groups, every)):
                pieces.append(batch)
                have += batch.num_rows
                while have >= b:
                    block = pa.Table.from_batches(pieces).combine_chunks() if len(pieces) > 1 else \
                        pa.Table.from_batches(pieces)
                    yield self._chunk(block.slice(0, b), columns)
                    rest = block.slice(b)
                    pieces, have = ([rest.combine_chunks().to_batches()[0]] if rest.num_rows else []), rest.num_rows
            if have:
                yield self._chunk(pa.Table.from_batches(pieces), columns)
        except errors as err:
            if "missing values" in str(err) or "must be positive" in str(err):
                raise
            raise ValueError(f"sf.Parquet could not read {self.path!r}: {err}") from None
        finally:
            pieces = []
            release()

    def _chunk(self, table, columns: bool = False) -> Chunk:
        """One chunk from a pyarrow table of its rows: ``x`` row-major in ``x_dtype`` (one C++ copy
        when the feature columns share that type; column by column otherwise), or with ``columns``
        the columns as they are (no copy) when they have that type."""
        for name in table.column_names:
            if table.column(name).null_count:
                raise ValueError(f"The column {name!r} of the Parquet data has missing values (nulls); drop or fill "
                                 f"them before the fit.")
        batch = table.combine_chunks().to_batches()[0] if table.num_rows else None
        features = batch.select(list(self.features))
        cols = None
        try:
            if not self.features or any(str(t) != _ARROW[self.x_dtype] for t in features.schema.types):
                raise TypeError("mixed types, or no features (without_features)")
            if columns:
                cols = tuple(features.column(j).to_numpy(zero_copy_only=True) for j in range(len(self.features)))
                x = None
            else:
                x = np.asarray(features.to_tensor(row_major=True, memory_pool=_pool()))
        except (TypeError, NotImplementedError, ValueError, AttributeError):
            x = np.empty((batch.num_rows, len(self.features)), self.x_dtype)
            for j in range(len(self.features)):
                x[:, j] = features.column(j).to_numpy(zero_copy_only=False)

        def column(name):
            return np.asarray(batch.column(name).to_numpy(zero_copy_only=False), np.float64)

        y = np.asarray(batch.column(self.target).to_numpy(zero_copy_only=False))
        y = y.astype(np.float64) if y.dtype != np.float64 else y.copy()
        w = None if self.weights is None else column(self.weights)
        off = None
        if self.offset is not None:
            off = column(self.offset)
        elif self.exposure is not None:
            e = column(self.exposure)
            if np.any(~(e > 0)):
                raise ValueError(f"The exposure column {self.exposure!r} must be positive; got {e[~(e > 0)][:3]}.")
            off = np.log(e)
        return Chunk(x, y, w, off, cols)


_ARROW = {"float32": "float", "float64": "double"}


def _pool():
    """Where a chunk's ``x`` is allocated: the C library's allocator (64-byte aligned, so the device
    array aliases it). pyarrow's default pool (mimalloc) faulted fresh pages about three times slower:
    a first pass that keeps 10 million rows x 20 took 2.4 s in ``to_tensor`` against 0.6 s."""
    import pyarrow as pa

    return pa.system_memory_pool()


def _release():
    """pyarrow's allocator hands the memory it keeps for reuse back to the system, at the end of a
    pass (within a pass it reuses it: released after every file, the decoding buffers were faulted
    and zeroed again, about a tenth of a first pass's time)."""
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except Exception:  # noqa: BLE001 - a pass closed while the interpreter exits: nothing to hand back
        pass


def _batches(pq, path, schema, rows, groups, every: int = 1):
    """The columns of ``schema`` of one file, in its types (a file of other types is cast), in record
    batches of at most ``rows`` rows, row group by row group; only the groups whose number (drawn from
    the counter ``groups``) is a multiple of ``every``."""
    f = pq.ParquetFile(path)
    cols = schema.names
    missing = [c for c in cols if c not in f.schema_arrow.names]
    if missing:
        raise ValueError(f"the file {path!r} lacks the columns {missing} (it has {f.schema_arrow.names}); every file "
                         f"must hold the same columns")

    def group(i):  # a whole row group, decoded by pyarrow's threads (twice as fast as iter_batches' slices)
        table = f.read_row_group(i, columns=cols, use_threads=True).select(cols)
        if table.schema.types != schema.types:  # e.g. float64 features where other files hold float32
            table = table.cast(schema, safe=False)
        return table.to_batches(max_chunksize=rows)

    return (batch for i in range(f.num_row_groups) if next(groups) % every == 0 for batch in group(i))


_END = object()


def _prefetched(it: Iterator[Chunk], depth: int = 2) -> Iterator[Chunk]:
    """``it`` read by a background thread at most ``depth`` items ahead; errors are raised here."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work():
        try:
            for item in it:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_END)
        except BaseException as err:  # handed to the consumer
            q.put(err)

    thread = threading.Thread(target=work, daemon=True, name="scanfit-prefetch")
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a waiting put, then let the thread end
            try:
                q.get_nowait()
            except queue.Empty:
                pass
            thread.join(timeout=0.05)


class Arrays:
    """Arrays in memory as a source of chunks (the engine's streamed and minibatch paths read them
    as they read a Parquet file): ``x`` (n, d), ``y`` (n,), optional ``weights`` and ``offset``."""

    def __init__(self, x, y, weights=None, offset=None, *, names=None, batch_rows: int = DEFAULT_BATCH_ROWS):
        self.x = np.asarray(x)
        if self.x.ndim == 1:
            self.x = self.x[:, None]
        self.y = np.asarray(y)
        self.w = None if weights is None else np.asarray(weights, np.float64)
        self.off = None if offset is None else np.asarray(offset, np.float64)
        n = len(self.y)
        if self.x.shape[0] != n:
            raise ValueError(f"x has {self.x.shape[0]} rows but y has {n}; they must match.")
        self.features = tuple(names) if names is not None else tuple(f"x{j}" for j in range(self.x.shape[1]))
        self.target, self.weights = "y", None if weights is None else "weights"
        self.offset, self.exposure = None if offset is None else "offset", None
        self.batch_rows, self.cache, self.path = int(batch_rows), "auto", "<arrays>"
        self.n_rows = n
        self.x_dtype = "float32" if self.x.dtype == np.float32 else "float64"

    names = property(lambda self: self.features)

    def cache_bytes(self) -> int:
        return 1 << 62  # already in memory

    def nbytes(self) -> int:
        return int(self.x.nbytes)

    def aligned(self) -> "Arrays":
        return self

    def without_features(self) -> "Arrays":
        return Arrays(self.x[:, :0], self.y, self.w, self.off, names=(), batch_rows=self.batch_rows)

    def shard(self, index: int, count: int) -> "Arrays":
        if count <= 1:
            return self
        rows = slice(index, None, count)
        out = Arrays(self.x[rows], self.y[rows], None if self.w is None else self.w[rows],
                     None if self.off is None else self.off[rows], names=self.features, batch_rows=self.batch_rows)
        return out

    def chunks(self, prefetch: bool = True, every: int = 1, columns: bool = False) -> Iterator[Chunk]:
        b = self.batch_rows  # (rows as x always: ``columns`` is for files)
        for s in range(0, self.n_rows, b * every):
            yield Chunk(self.x[s:s + b].astype(self.x_dtype), self.y[s:s + b],
                        None if self.w is None else self.w[s:s + b], None if self.off is None else self.off[s:s + b])
