"""The fit's lowered programs kept on disk, so that a warm process neither traces nor lowers them.

JAX's persistent cache (``cache.py``) keeps compiled programs, keyed by the lowered program: a new
process still traces and lowers the loop (about two thirds of a small MLP's first fit) before it can
look one up. This module keeps the lowered program itself (``jax.export``, StableHLO) under scanfit's
own key, so a warm process reads it, skips tracing and lowering, and finds the compiled program in
JAX's cache. Both processes run the same exported program, so their numbers are bit for bit the same.

- What is kept: the loop's ``init``, ``first``, ``more`` and ``evaluate`` programs (``loop._fused``,
  ``loop._programs``) of built-in models and likelihoods only: ``Linear``/``MLP`` with scanfit's
  likelihoods and named optimizers. A user's function, module or optax object is code whose
  changes no key can see: those fits trace as before.
- The key: the model, likelihood and fit configuration as their full field values, the program's
  static arguments, the arguments' tree, shapes, dtypes and weak types, JAX's x64 flag and the
  settings that change a lowering, the backend and device kind, the jax, jaxlib and optax versions,
  whether the native kernel is in use, and a hash of scanfit's own source files: a changed file
  never loads an old program.
- Where: ``$SCANFIT_CACHE/programs/`` (private, 0700), one ``<sha256 of the key>.prog`` per program,
  on while scanfit's compilation cache is on (``SCANFIT_COMPILATION_CACHE=0`` turns both off;
  ``SCANFIT_PROGRAM_CACHE=0`` this one alone); ``scanfit cache --clear`` empties it.
- A file is ``MAGIC``, the SHA-256 of the rest, a JSON header (the key in full, the output's tree,
  the trace-time names the loop needs, whether it calls the native kernel) and the serialized
  ``Exported``. It is written to a temporary file and renamed into place (two writers: the last
  rename wins, both whole); a file that is not this user's regular file, too large, of another
  checksum or key, or that does not deserialize is ignored (the program is traced and stored
  again). Nothing in a file is run as Python: the tree names only dict, list, tuple, None and
  namedtuple classes already imported; no pickle.
- At most ``MAX_BYTES`` in all: after a write the least recently used entries go.
- The native Bernoulli kernel: an exported program that calls it is exported with that custom call
  allowed, and is loaded only after ``native.bernoulli_target()`` has registered the target.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import stat
import sys
import tempfile
from pathlib import Path

import jax
from jax.tree_util import PyTreeDef, default_registry

from ..likelihoods import native
from . import cache

__all__ = ["ENV", "kept", "loads", "status"]

ENV = "SCANFIT_PROGRAM_CACHE"
MAGIC = b"scanfit-program1"
MAX_BYTES = 256 << 20
MAX_ENTRY = 64 << 20
_SETTINGS = ("jax_enable_x64", "jax_default_matmul_precision", "jax_default_prng_impl", "jax_threefry_partitionable",
             "jax_numpy_rank_promotion", "jax_numpy_dtype_promotion", "jax_enable_checks")
_LOADS = [0]
_FALLBACK = object()


class Uncacheable(Exception):
    """A program whose key or output tree cannot be written down (user code, unknown tree nodes)."""


def loads() -> int:
    """How many programs this process has read from the cache (tests use it)."""
    return _LOADS[0]


def status() -> str:
    """Whether this process keeps the fit's lowered programs, and where (or why not)."""
    if os.environ.get(ENV, "").strip().lower() in cache.OFF:
        return f"off ({ENV}={os.environ[ENV]})"
    if not cache.status().startswith("on"):
        return "off (the compilation cache is off)"
    if not _serializable():
        return "off (jax.export needs the flatbuffers package)"
    return f"on: {cache.programs_dir()}"


def _on() -> bool:
    return (cache.status().startswith("on") and os.environ.get(ENV, "").strip().lower() not in cache.OFF
            and _serializable())


@functools.lru_cache(maxsize=1)
def _serializable() -> bool:
    try:
        import flatbuffers  # noqa: F401  (jax.export's serialization needs it)
    except ImportError:
        return False
    return True


def _describe(obj):
    """A JSON value that says everything about a static argument, or Uncacheable (user code)."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return repr(obj)
    if isinstance(obj, (tuple, list)):
        return [type(obj).__name__, [_describe(v) for v in obj]]
    kind = type(obj)
    if dataclasses.is_dataclass(obj) and kind.__module__.startswith("scanfit.") and kind.__name__ in _BUILT_IN:
        return [f"{kind.__module__}.{kind.__qualname__}",
                {f.name: _describe(getattr(obj, f.name)) for f in dataclasses.fields(obj)}]
    raise Uncacheable(f"{kind.__qualname__} is not one of scanfit's built-in parts")


_BUILT_IN = {"Linear", "MLP", "Gaussian", "Bernoulli", "Categorical", "Poisson", "NegativeBinomial", "FullBatch",
             "EarlyStopping", "ElasticNet"}


def _tree(t: PyTreeDef):
    """A tree's structure as JSON: "*" for a leaf, else [kind, ...]; Uncacheable for other node types."""
    data = t.node_data()
    if data is None:
        return "*"
    kind, aux = data
    children = [_tree(c) for c in t.children()]
    if kind is dict and all(isinstance(k, str) for k in aux):
        return ["dict", list(aux), children]
    if kind in (tuple, list, type(None)):
        return [kind.__name__, children]
    if issubclass(kind, tuple) and hasattr(kind, "_fields") and aux is None:
        return ["namedtuple", kind.__module__, kind.__qualname__, children]
    raise Uncacheable(f"a {kind.__qualname__} node")


_LEAF = jax.tree.structure(0)
_KINDS = {"tuple": tuple, "list": list, "NoneType": type(None)}


def _untree(node) -> PyTreeDef:
    """The inverse of ``_tree``; a namedtuple class must already be imported (nothing is imported here)."""
    if node == "*":
        return _LEAF
    if node[0] == "dict":
        data, children = (dict, [str(k) for k in node[1]]), node[2]
    elif node[0] == "namedtuple":
        kind = sys.modules[node[1]]
        for part in node[2].split("."):
            kind = getattr(kind, part)
        if not (isinstance(kind, type) and issubclass(kind, tuple) and hasattr(kind, "_fields")):
            raise ValueError(f"{node[2]} is not a namedtuple")
        data, children = (kind, None), node[3]
    else:
        data, children = (_KINDS[node[0]], None), node[1]
    return PyTreeDef.from_node_data_and_children(default_registry, data, [_untree(c) for c in children])


@functools.lru_cache(maxsize=1)
def _environment() -> str:
    """What a program depends on beyond its arguments: versions, backend, scanfit's own source."""
    from importlib.metadata import version

    import jaxlib

    root = Path(__file__).resolve().parents[1]
    source = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".cc") and p.is_file()):
        source.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    device = jax.devices()[0]
    return json.dumps({"jax": jax.__version__, "jaxlib": jaxlib.__version__, "optax": version("optax"),
                       "python": sys.version_info[:2], "platform": device.platform, "device": device.device_kind,
                       "source": source.hexdigest()})


def _aval(leaf) -> tuple:
    a = jax.typeof(leaf)
    return tuple(a.shape), str(a.dtype), bool(getattr(a, "weak_type", False))


class Kept:
    """``jitted`` (a ``jax.jit`` function whose last ``n_static`` arguments are static) with its lowered
    program kept on disk per key; ``names``: a list the trace fills and its caller reads (kept too)."""

    def __init__(self, jitted, name: str, config: tuple, n_static: int = 0, names: list | None = None):
        self.jitted, self.name, self.config, self.n_static, self.names = jitted, name, config, n_static, names
        self._ready: dict = {}  # per arguments' tree, statics and avals: (call, out tree), or _FALLBACK

    def __call__(self, *args):
        if not _on():
            return self.jitted(*args)
        cut = len(args) - self.n_static
        statics = args[cut:]
        leaves, in_tree = jax.tree.flatten(args[:cut])
        local = (in_tree, statics, tuple(_aval(a) for a in leaves), jax.config.jax_enable_x64)
        ready = self._ready.get(local)
        if ready is None:
            ready = self._ready[local] = self._prepare(leaves, in_tree, statics)
        if ready is _FALLBACK:
            return self.jitted(*args)
        call, out_tree = ready
        return jax.tree.unflatten(out_tree, call(*leaves))

    def _key(self, leaves, in_tree, statics) -> str:
        settings = {name: str(getattr(jax.config, name, None)) for name in _SETTINGS}
        uses_kernel = (any(_aval(a)[1] == "float32" for a in leaves)
                       and any(getattr(part, "name", None) == "bernoulli" for part in self.config))
        return json.dumps({"program": self.name, "config": _describe(self.config), "statics": _describe(statics),
                           "tree": str(in_tree), "avals": [_aval(a) for a in leaves], "settings": settings,
                           "native": uses_kernel and native.bernoulli_target(), "env": _environment()},
                          sort_keys=True)

    def _prepare(self, leaves, in_tree, statics):
        try:
            key = self._key(leaves, in_tree, statics)
            path = cache.programs_dir() / f"{hashlib.sha256(key.encode()).hexdigest()}.prog"
        except Exception:  # user code (Uncacheable), or no private directory: traced as before
            return _FALLBACK
        got = _read(path, key)
        if got is not None and (not got[2] or native.bernoulli_target()):
            exported, out_tree, _, names = got
            if self.names is not None:
                self.names[:] = names
            _LOADS[0] += 1
            return jax.jit(exported.call), out_tree
        trees = []

        def flat(*flat_args):
            out = self.jitted(*jax.tree.unflatten(in_tree, flat_args), *statics)
            out_leaves, out_tree = jax.tree.flatten(out)
            trees.append(out_tree)
            return out_leaves

        try:
            allowed = [jax.export.DisabledSafetyCheck.custom_call(native.TARGET)]
            exported = jax.export.export(jax.jit(flat), disabled_checks=allowed)(*leaves)
        except Exception:  # not exportable (a primitive export refuses): the plain jit traces it as before
            return _FALLBACK
        try:
            header = {"key": key, "out": _tree(trees[0]), "names": list(self.names or ()),
                      "native": native.TARGET in exported.mlir_module()}
            _write(path, header, exported.serialize())
        except (Uncacheable, OSError, ValueError, TypeError):
            pass  # not kept: this process runs the exported program all the same
        return jax.jit(exported.call), trees[0]


def kept(jitted, name: str, config: tuple, n_static: int = 0, names: list | None = None) -> Kept:
    """``jitted`` whose lowered program a later process loads instead of tracing (see the module's text)."""
    return Kept(jitted, name, config, n_static, names)


def _read(path: Path, key: str):
    """(exported, out tree, calls the native kernel, names) from ``path``, or None for anything amiss."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))  # no FIFO waits
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_size > MAX_ENTRY:
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            blob = f.read(MAX_ENTRY + 1)
        body = blob[len(MAGIC) + 32:]
        if not blob.startswith(MAGIC) or hashlib.sha256(body).digest() != blob[len(MAGIC):len(MAGIC) + 32]:
            return None
        size = int.from_bytes(body[:4], "little")
        header = json.loads(body[4:4 + size])
        if header.get("key") != key:
            return None
        out_tree = _untree(header["out"])
        exported = jax.export.deserialize(bytearray(body[4 + size:]))
        os.utime(fd)  # last use, for the size bound's eviction
        return exported, out_tree, bool(header["native"]), [str(n) for n in header["names"]]
    except Exception:  # a corrupt or foreign entry costs a trace, never an error
        return None
    finally:
        os.close(fd)


def _write(path: Path, header: dict, exported: bytes) -> None:
    """Write an entry atomically (a temporary file renamed into place), then keep the folder under MAX_BYTES."""
    head = json.dumps(header).encode()
    body = len(head).to_bytes(4, "little") + head + bytes(exported)
    if len(body) > MAX_ENTRY:
        return
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + hashlib.sha256(body).digest() + body)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _bound(path.parent)


def _bound(folder: Path) -> None:
    """Delete the least recently used entries while the folder holds more than MAX_BYTES."""
    entries = []
    for p in folder.glob("*.prog"):
        try:
            info = p.stat()
        except OSError:
            continue
        entries.append((info.st_mtime, info.st_size, p))
    total = sum(size for _, size, _ in entries)
    for _, size, p in sorted(entries):
        if total <= MAX_BYTES:
            break
        p.unlink(missing_ok=True)
        total -= size
