"""The record and the size bound of scanfit's compilation cache (``cache_store.Store``), kept
without listing the cache.

Two small files in the cache directory, both used through the directory's open descriptor:

- ``JOURNAL`` (``.scanfit-entries``): one line ``<name> <bytes>`` per entry the store wrote,
  appended before the entry is written. It is the record of what scanfit may delete: eviction and
  ``scanfit cache --clear`` delete only names listed there, never a file found by a pattern.
- ``LEDGER`` (``.scanfit-bytes``): the entries' total size, updated at each write under the store's
  lock, so that a new entry does not list the cache (with a size bound, JAX's own cache lists every
  entry before each write: 0.3 s a program at 3,400 entries). When the ledger says the bound is
  reached, or is missing or unreadable, the recorded entries are looked up (``os.stat``, no
  listing) and the least recently used are deleted (an entry's modification time is its last use:
  the store touches it at each read), and the journal is written again with those left.

A bad entry the store removes stays in the journal until the next eviction (a name no longer there
is dropped then; the ledger over-counts it until then, which only makes that eviction come sooner).
"""

from __future__ import annotations

import os

__all__ = ["JOURNAL", "LEDGER", "evict", "forget", "make_room", "present", "record", "recorded", "unlink", "write_all"]

LEDGER = ".scanfit-bytes"
JOURNAL = ".scanfit-entries"
SUFFIX = "-cache"
_READ = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
MAX_JOURNAL = 64 << 20


def record(folder: int, name: str, size: int) -> None:
    """Add ``name`` (``size`` bytes) to the journal of the directory open as ``folder``."""
    fd = os.open(JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600,
                 dir_fd=folder)
    try:
        write_all(fd, f"{name} {int(size)}\n".encode("ascii"))
    finally:
        os.close(fd)


def recorded(folder: int) -> dict[str, int]:
    """The entries the journal lists (name: bytes); malformed lines are skipped."""
    text = _read(folder, JOURNAL, MAX_JOURNAL)
    names = {}
    for line in (text or "").splitlines():
        name, _, size = line.rpartition(" ")
        if _entry_name(name) and size.isdigit():
            names[name] = int(size)
    return names


def _entry_name(name: str) -> bool:
    return name.endswith(SUFFIX) and len(name) > len(SUFFIX) and not name.startswith(".") and "/" not in name \
        and "\0" not in name and name.isprintable() and " " not in name


def make_room(folder: int, additional: int, max_size: int) -> None:
    """Before a write of ``additional`` bytes: keep the total under ``max_size`` (-1: no bound)."""
    total = _ledger(folder)
    if total is None or (max_size != -1 and total + additional > max_size):
        total = evict(folder, max_size - additional if max_size != -1 else None)
    _write(folder, LEDGER, str(max(0, total + additional)))


def present(folder: int) -> list[tuple[int, str, int]]:
    """The recorded entries still there: (last use in ns, name, bytes), least recently used first."""
    entries = []
    for name in recorded(folder):
        try:
            info = os.stat(name, dir_fd=folder, follow_symlinks=False)
        except OSError:
            continue  # gone (removed as bad, or by hand): dropped from the record
        entries.append((info.st_mtime_ns, name, info.st_size))
    return sorted(entries)


def evict(folder: int, target: int | None) -> int:
    """Delete the least recently used recorded entries until their total is at most ``target``
    (None: delete none, only count); write the journal again with those left; return their total."""
    entries = present(folder)
    total = sum(size for _, _, size in entries)
    kept = []
    for _, name, size in entries:
        if target is not None and total > target:
            unlink(folder, name)
            total -= size
        else:
            kept.append(f"{name} {size}\n")
    _write(folder, JOURNAL, "".join(kept))
    return total


def forget(folder: int) -> tuple[int, int]:
    """Delete every recorded entry, the journal and the ledger; (files deleted, their bytes)."""
    count = freed = 0
    for _, name, size in present(folder):
        if unlink(folder, name):
            count, freed = count + 1, freed + size
    for name in (JOURNAL, LEDGER):
        unlink(folder, name)
    return count, freed


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def unlink(folder: int, name: str) -> bool:
    """Delete a file (a link, a pipe) or an empty folder by that name; False if it could not."""
    try:
        os.unlink(name, dir_fd=folder)
        return True
    except IsADirectoryError:
        pass
    except OSError:
        return False
    try:
        os.rmdir(name, dir_fd=folder)
        return True
    except OSError:
        return False


def _ledger(folder: int) -> int | None:
    text = (_read(folder, LEDGER, 64) or "").strip()
    return int(text) if text.isdigit() and len(text) < 20 else None


def _read(folder: int, name: str, limit: int) -> str | None:
    """The text of a small regular file of the directory, or None (absent, not a file, too large)."""
    try:
        fd = os.open(name, _READ, dir_fd=folder)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not (info.st_mode & 0o170000 == 0o100000 and info.st_size <= limit):
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(limit).decode("ascii", errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def _write(folder: int, name: str, text: str) -> None:
    """Replace a small file in one step (a reader sees the old text or the new); a failure only
    leaves the next write to count again."""
    tmp = f"{name}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600, dir_fd=folder)
        try:
            write_all(fd, text.encode("ascii"))
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
    except OSError:
        unlink(folder, tmp)
