"""The size bound of scanfit's compilation cache, kept without listing the cache on every write.

With a size bound, JAX's file cache (``jax._src.lru_cache.LRUCache``) lists every entry and reads
its last-use stamp before each new entry is written, under its file lock: the cost of a new
program grows with the entries kept (0.3 s a program at 3,400 entries measured here, seconds at the
tens of thousands that a 1 GiB bound holds). For scanfit's own cache directory, this keeps JAX's
lock, its reads and writes and its least-recently-used eviction, and replaces only that listing by
a ledger: a small file in the directory (``LEDGER``) holding the entries' total size, updated at
each write under JAX's lock. The directory is listed only when the ledger says the bound is
reached, or when the ledger is missing or unreadable; then the least recently used entries are
deleted as JAX would (by their ``<key>-atime`` stamps), an entry without a stamp counting as last used
when it was written (JAX's own listing fails on such an entry, which a process with no size bound
writes, and then no new entry can be written at all).

The ledger is listed again when it is more than a day old, so entries written by a process with no
size bound (which the ledger does not count) are found within a day.

Reads of an entry are checked first (``get``): a link, a pipe or a folder where an entry belongs is
removed unread (JAX would block for ever on a pipe, holding its lock), and an entry that does not
decompress (cut short, overwritten) is removed, so JAX compiles the program again and writes it
whole, instead of warning and compiling in every later process.

The hooks are installed on JAX's class once per process and act only on the directories given to
:func:`install`; any other cache (the user's own) keeps JAX's behavior. Where JAX's class is not
the one this was written for (no ``_evict_if_needed(additional_size=...)`` or ``get(key)``), nothing
is installed and JAX's own behavior stays.
"""

from __future__ import annotations

import inspect
import os
import shutil
import stat
import time
from pathlib import Path

__all__ = ["LEDGER", "evict", "install", "installed", "remove"]

LEDGER = ".scanfit-bytes"
STALE_SECONDS = 86_400.0  # a ledger older than this is checked against a listing of the directory
_DIRS: set[str] = set()
_JAX: dict = {}  # "scan": JAX's own _evict_if_needed


def install(directory) -> bool:
    """Bound the JAX cache at ``directory`` by the ledger; False where JAX's class does not allow it."""
    try:
        from jax._src import lru_cache
    except ImportError:
        return False
    cls = getattr(lru_cache, "LRUCache", None)
    current, read = getattr(cls, "_evict_if_needed", None), getattr(cls, "get", None)
    if current is None or read is None:
        return False
    if "scan" not in _JAX:
        try:
            params, read_params = inspect.signature(current).parameters, inspect.signature(read).parameters
        except (TypeError, ValueError):
            return False
        if "additional_size" not in params or list(read_params)[1:] != ["key"]:
            return False
        _JAX["scan"], _JAX["get"] = current, read

        def _evict_if_needed(self, *, additional_size: int = 0) -> None:
            if _key(self.path) not in _DIRS or not getattr(self, "eviction_enabled", False):
                return _JAX["scan"](self, additional_size=additional_size)
            return _by_ledger(self, additional_size)

        def get(self, key):
            if _key(self.path) not in _DIRS:
                return _JAX["get"](self, key)
            return _checked_get(self, key)

        cls._evict_if_needed, cls.get = _evict_if_needed, get
    _DIRS.add(_key(directory))
    return True


def installed(directory) -> bool:
    """Whether the ledger bounds the cache at ``directory`` in this process."""
    return _key(directory) in _DIRS


def _key(directory) -> str:
    return os.path.realpath(os.fspath(directory))


def _by_ledger(cache, additional: int) -> None:
    """JAX's ``_evict_if_needed`` for a scanfit directory (called under JAX's lock, before a write)."""
    ledger = Path(cache.path) / LEDGER
    total = _read(ledger)
    if total is not None and total + additional <= cache.max_size and _fresh(ledger):
        _write(ledger, total + additional)
        return
    _write(ledger, evict(Path(cache.path), cache.max_size - additional) + additional)


def _fresh(ledger: Path) -> bool:
    try:
        return time.time() - ledger.stat().st_mtime < STALE_SECONDS
    except OSError:
        return False


def _checked_get(cache, key: str):
    """JAX's ``get`` for a scanfit directory, for an entry that is a whole, regular file only."""
    path = Path(cache.path) / f"{key}-cache"
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None  # not there: a miss
    if not stat.S_ISREG(mode):  # never opened: a pipe would block the read (and JAX's lock) for ever
        remove(path)
        return None
    value = _JAX["get"](cache, key)
    if value is not None and not _whole(value):
        remove(path)
        (path.with_name(f"{key}-atime")).unlink(missing_ok=True)
        return None
    return value


def _whole(value: bytes) -> bool:
    """Whether a cached entry decompresses (JAX's own step before it loads the program)."""
    try:
        from jax._src.compilation_cache import decompress_executable
    except ImportError:
        return True
    try:
        return len(decompress_executable(value)) > 0
    except Exception:  # noqa: BLE001 - any failure to decompress means the entry is broken
        return False


def remove(path: Path) -> None:
    """Delete an entry of any kind (a file, a link, a pipe, a folder); a failure leaves it."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def evict(folder: Path, target: int) -> int:
    """Delete the least recently used entries of ``folder`` until their total size is at most
    ``target`` (and the stamps left by deleted entries); returns the total size left."""
    entries, stamps, total = [], set(), 0
    with os.scandir(folder) as listing:
        for item in listing:
            if not item.is_file(follow_symlinks=False):
                continue
            if item.name.endswith("-atime"):
                stamps.add(item.name[:-len("-atime")])
            elif item.name.endswith("-cache"):
                info = item.stat(follow_symlinks=False)
                entries.append([info.st_mtime_ns, item.name[:-len("-cache")], info.st_size])
                total += info.st_size
    for entry in entries:
        if entry[1] in stamps:
            entry[0] = _stamp(folder / f"{entry[1]}-atime", entry[0])
    entries.sort()
    for _, key, size in entries:
        if total <= target:
            break
        (folder / f"{key}-cache").unlink(missing_ok=True)
        (folder / f"{key}-atime").unlink(missing_ok=True)
        total -= size
    for key in stamps - {key for _, key, _ in entries}:
        (folder / f"{key}-atime").unlink(missing_ok=True)
    return total


def _stamp(path: Path, default: int) -> int:
    """JAX's last-use stamp (8 bytes, little-endian nanoseconds), or ``default``."""
    try:
        blob = path.read_bytes()
    except OSError:
        return default
    return int.from_bytes(blob, "little") if len(blob) == 8 else default


def _read(ledger: Path) -> int | None:
    try:
        text = ledger.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    text = text.strip()
    return int(text) if text.isdigit() and len(text) < 20 else None


def _write(ledger: Path, total: int) -> None:
    """Replace the ledger in one step (a reader sees the old total or the new one); a failure only
    leaves the next write to list the directory."""
    tmp = ledger.with_name(f"{LEDGER}.{os.getpid()}.tmp")
    try:
        tmp.write_text(str(max(0, int(total))), encoding="ascii")
        os.replace(tmp, ledger)
    except OSError:
        tmp.unlink(missing_ok=True)
