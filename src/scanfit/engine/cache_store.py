"""scanfit's store for JAX's compiled programs: one directory, opened once, every entry signed.

JAX's own file cache (``jax._src.lru_cache.LRUCache``) names its directory by path at every read
and write, trusts an entry on its compression's checksum and writes ``<key>-atime`` stamps next
to it. For the directories scanfit chooses, :func:`attach` makes JAX use a :class:`Store` instead
(JAX's ``compilation_cache.get_file_cache`` is wrapped; any other directory keeps JAX's cache):

- The directory is opened once (:func:`open_dir`) and checked on that descriptor (this user's,
  closed to other writers); every later read, write, lock and deletion goes through the descriptor
  (``dir_fd``), so a link swapped in for the path afterwards changes nothing.
- It is scanfit's only if scanfit created it or found it empty: then a key file is made there
  (``KEY_FILE``, 32 random bytes, mode 0600). A directory holding other files and no key file is
  refused (:class:`Refused`), never emptied; a key file others may read is refused too.
- An entry is ``MAGIC``, an HMAC-SHA256 (that key) of the program's name and bytes, and the bytes
  JAX gave. A read checks the HMAC before JAX sees the bytes; a bad entry (changed, cut short, not
  a regular file of this user) is removed, with one warning per process, and compiled again.
- An entry is recorded (``cache_bound.record``) before it is written; only recorded entries are
  ever deleted (the size bound, ``scanfit cache --clear``).
- Reads take a shared ``flock`` on ``.lockfile``, writes an exclusive one, so no read sees a
  half-written entry. A failure to read or write (a full disk, a lock held for 10 s) warns once and
  turns the store off for the rest of the process: the fit goes on, compiling.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import secrets
import stat
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from . import cache_bound
from .outcome import FitWarning

__all__ = ["CacheWarning", "KEY_FILE", "Refused", "Store", "attach", "claim", "existing", "legacy_files", "open_dir",
           "warn_once", "warned"]

KEY_FILE = ".scanfit-key"
LOCK_FILE = ".lockfile"
MAGIC = b"scanfit-xla1"
LOCK_SECONDS = 10.0
MAX_ENTRY = 1 << 30
_KEY_TEXT = b"scanfit compilation cache key: keep this file private (0600)\n"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_LEGACY = (".lockfile", cache_bound.LEDGER)  # with <key>-cache and <key>-atime: what an older scanfit kept
_STORES: dict[str, Store] = {}
_JAX: dict = {}
_WARNED: set[str] = set()


class CacheWarning(FitWarning, RuntimeWarning):
    """scanfit's compilation cache is off, or removed a bad entry (the fit goes on, compiling; the CLI shows it
    as it shows a fit's warnings)."""


class Refused(RuntimeError):
    """A cache directory scanfit will not use (the message says why and what to do)."""


def warn_once(topic: str, message: str) -> None:
    """One ``CacheWarning`` per process for ``topic``, shown as ``scanfit: CacheWarning: ...`` (no source line:
    the place in scanfit's code would tell the user nothing)."""
    if topic not in _WARNED:
        _WARNED.add(topic)
        warnings.warn_explicit(message, CacheWarning, "scanfit", 0, module="scanfit.engine.cache_store", registry={})


def warned(topic: str) -> bool:
    """Whether this process has warned about ``topic``."""
    return topic in _WARNED


def open_dir(path: Path, env: str, *, create: bool = True) -> int:
    """``path`` opened as a directory (created 0700 if absent and ``create``), checked on the descriptor:
    this user's and closed to other writers. Raises :class:`Refused` (or OSError) with the fix."""
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except NotADirectoryError:
        raise Refused(f"the cache {str(path)!r} is not a directory; remove it or set {env}") from None
    info = os.fstat(fd)
    why = None
    if _foreign(info):
        why = f"belongs to user id {info.st_uid}, not to you; set {env} to a directory of your own"
    elif info.st_mode & 0o022:
        why = (f"can be written by other users (mode {stat.S_IMODE(info.st_mode):o}), so what is there may not be "
               f"scanfit's; remove it (scanfit recreates it private) or set {env}")
    if why is not None:
        os.close(fd)
        raise Refused(f"the cache directory {str(path)!r} {why}")
    return fd


def _foreign(info: os.stat_result) -> bool:
    return hasattr(os, "getuid") and info.st_uid != os.getuid()


def _is_legacy(name: str) -> bool:
    return name.endswith(("-cache", "-atime")) or name in _LEGACY or name.startswith(f"{cache_bound.LEDGER}.")


def _claim(fd: int, path: Path, env: str, legacy: bool) -> bytes:
    """The directory's key: read, or made when the directory is empty (or, with ``legacy``, holds only an
    older scanfit's entries, which are deleted first). Raises :class:`Refused` for anyone else's files."""
    key = _read_key(fd, path, env)
    if key is not None:
        return key
    names = [n for n in os.listdir(fd) if not n.startswith(KEY_FILE)]
    if names:
        key = _read_key(fd, path, env)  # another process may have claimed it meanwhile
        if key is not None:
            return key
        if not (legacy and all(map(_is_legacy, names))):
            shown = ", ".join(repr(n) for n in sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
            raise Refused(f"the cache directory {str(path)!r} holds {len(names)} file(s) scanfit did not write "
                          f"({shown}); scanfit keeps compiled programs only in a directory it creates or an empty "
                          f"one, and deletes nothing else: set {env} to a new or empty directory")
        for name in names:
            cache_bound.unlink(fd, name)
    temp = f"{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    new = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600, dir_fd=fd)
    try:
        cache_bound.write_all(new, _KEY_TEXT + secrets.token_hex(32).encode() + b"\n")
        os.fsync(new)
    finally:
        os.close(new)
    try:
        os.link(temp, KEY_FILE, src_dir_fd=fd, dst_dir_fd=fd, follow_symlinks=False)  # whole, or someone else's
    except FileExistsError:
        pass
    finally:
        os.unlink(temp, dir_fd=fd)
    key = _read_key(fd, path, env)
    if key is None:
        raise Refused(f"the key file {str(path / KEY_FILE)!r} could not be read back; set {env} to another directory")
    return key


def _read_key(fd: int, path: Path, env: str) -> bytes | None:
    """The key in ``KEY_FILE``, None if there is none; :class:`Refused` if it is not private or damaged."""
    where = str(path / KEY_FILE)
    try:
        kf = os.open(KEY_FILE, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW, dir_fd=fd)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise Refused(f"the key file {where!r} cannot be opened ({err.strerror}); delete the directory "
                      f"{str(path)!r} (scanfit builds its cache again) or set {env}") from None
    try:
        info = os.fstat(kf)
        blob = os.read(kf, 4096) if stat.S_ISREG(info.st_mode) else b""
    finally:
        os.close(kf)
    if _foreign(info) or stat.S_IMODE(info.st_mode) & 0o077:
        raise Refused(f"the key file {where!r} can be read by other users or is not yours (mode "
                      f"{stat.S_IMODE(info.st_mode):o}); make it private (chmod 600) or delete the directory "
                      f"{str(path)!r} (scanfit builds its cache again)")
    try:
        return bytes.fromhex(blob[len(_KEY_TEXT):].decode("ascii").strip()) if blob.startswith(_KEY_TEXT) else b""
    except ValueError:
        return b""


def claim(path: Path, env: str, *, legacy: bool = False) -> Store:
    """The store at ``path``, created or claimed as the module's text says; :class:`Refused` if not scanfit's."""
    fd = open_dir(path, env)
    try:
        key = _claim(fd, path, env, legacy)
        return Store(path, fd, _checked(key, path, env))
    except BaseException:
        os.close(fd)
        raise


def existing(path: Path, env: str) -> Store | None:
    """The store at ``path`` if it is scanfit's (its key file is there), else None; nothing is created."""
    fd = open_dir(path, env, create=False)
    try:
        key = _read_key(fd, path, env)
        if key is None:
            os.close(fd)
            return None
        return Store(path, fd, _checked(key, path, env))
    except BaseException:
        os.close(fd)
        raise


def legacy_files(path: Path, env: str) -> list[str]:
    """The names an older scanfit kept in ``path`` (``<key>-cache``, ``<key>-atime``, its lock and ledger)."""
    fd = open_dir(path, env, create=False)
    try:
        return sorted(filter(_is_legacy, os.listdir(fd)))
    finally:
        os.close(fd)


def _checked(key: bytes, path: Path, env: str) -> bytes:
    if len(key) != 32:
        raise Refused(f"the key file {str(path / KEY_FILE)!r} is damaged; delete the directory {str(path)!r} "
                      f"(scanfit builds its cache again) or set {env}")
    return key


class Store:
    """JAX's file cache for one scanfit directory (``get`` and ``put``, as ``LRUCache``), by descriptor."""

    def __init__(self, path: Path, fd: int, key: bytes):
        self._path = self.path = Path(path)
        self.fd, self.key, self.off = fd, key, False

    def close(self) -> None:
        os.close(self.fd)

    def _header(self, key: str, value: bytes) -> bytes:
        return MAGIC + hmac.new(self.key, key.encode() + b"\0" + value, hashlib.sha256).digest()

    def get(self, key: str) -> bytes | None:
        if not key:
            raise ValueError("key cannot be empty")
        if self.off:
            return None
        try:
            with self._locked(fcntl.LOCK_SH):
                return self._read(key)
        except (OSError, TimeoutError) as err:
            self._fail("read", err)
            return None

    def _read(self, key: str) -> bytes | None:
        name = f"{key}{cache_bound.SUFFIX}"
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW, dir_fd=self.fd)  # a pipe never blocks
        except FileNotFoundError:
            return None
        except OSError:  # a link (O_NOFOLLOW), or unreadable
            return self._bad(name, "it is not a regular file")
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_ENTRY or _foreign(info):
                return self._bad(name, "it is not a regular file of yours")
            with os.fdopen(os.dup(fd), "rb") as f:
                blob = f.read(MAX_ENTRY + 1)
            head = len(MAGIC) + 32
            value = blob[head:]
            if len(blob) < head or not hmac.compare_digest(blob[:head], self._header(key, value)):
                return self._bad(name, "its signature does not match its bytes (changed or cut short after "
                                       "scanfit wrote it)")
            os.utime(fd)  # its last use, for the size bound
            return value
        finally:
            os.close(fd)

    def _bad(self, name: str, why: str) -> None:
        """A miss; the entry is removed if scanfit recorded it, else left (it is not scanfit's to delete)."""
        where = str(self.path / name)
        if name in cache_bound.recorded(self.fd) and cache_bound.unlink(self.fd, name):
            warn_once(f"bad:{self.path}", f"scanfit's compilation cache removed the entry {where!r}: {why}; the "
                                          f"program is compiled again (further bad entries are removed without a "
                                          f"warning)")
        else:
            warn_once(f"foreign:{self.path}", f"scanfit's compilation cache does not load {where!r}: {why}, and "
                                              f"scanfit did not write it; delete it yourself")

    def put(self, key: str, value: bytes) -> None:
        if not key:
            raise ValueError("key cannot be empty")
        import jax

        bound = jax.config.jax_compilation_cache_max_size
        size = len(MAGIC) + 32 + len(value)
        if self.off or bound == 0 or (bound != -1 and size > bound):
            return
        name = f"{key}{cache_bound.SUFFIX}"
        try:
            with self._locked(fcntl.LOCK_EX):
                try:
                    os.stat(name, dir_fd=self.fd, follow_symlinks=False)
                    return  # written once, never replaced
                except FileNotFoundError:
                    pass
                cache_bound.make_room(self.fd, size, bound)
                cache_bound.record(self.fd, name, size)
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600, dir_fd=self.fd)
                try:
                    cache_bound.write_all(fd, self._header(key, value))
                    cache_bound.write_all(fd, value)
                except BaseException:
                    cache_bound.unlink(self.fd, name)
                    raise
                finally:
                    os.close(fd)
        except (OSError, TimeoutError) as err:
            self._fail("write", err)

    def clear(self) -> tuple[int, int]:
        """Delete every recorded entry: (files, bytes)."""
        with self._locked(fcntl.LOCK_EX):
            return cache_bound.forget(self.fd)

    def _fail(self, what: str, err: BaseException) -> None:
        self.off = True
        reason = f"{err.strerror} ({err.filename or 'in it'})" if isinstance(err, OSError) and err.strerror else err
        warn_once(f"fail:{self.path}", f"scanfit's compilation cache at {str(self.path)!r} could not {what}: {reason}; "
                                       f"compiled programs are not kept in this process (free space there, or set "
                                       f"SCANFIT_COMPILATION_CACHE to another directory, or 0 to turn it off)")

    @contextmanager
    def _locked(self, kind: int):
        fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600, dir_fd=self.fd)
        try:
            deadline = time.monotonic() + LOCK_SECONDS
            while True:
                try:
                    fcntl.flock(fd, kind | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"another process held the lock {str(self.path / LOCK_FILE)!r} for "
                                           f"{LOCK_SECONDS:.0f} s") from None
                    time.sleep(0.01)
            yield
        finally:
            os.close(fd)


def attach(store: Store, name: str) -> None:
    """Make JAX use ``store`` for the cache directory ``name`` (the string in ``jax_compilation_cache_dir``)."""
    from jax._src import compilation_cache as jax_cache

    if "get_file_cache" not in _JAX:
        original = getattr(jax_cache, "get_file_cache", None)
        if original is None or not hasattr(jax_cache, "VerificationCache"):
            raise Refused("this JAX's compilation cache has no get_file_cache, so scanfit cannot check its entries; "
                          "the cache is off (set SCANFIT_COMPILATION_CACHE=0 to say so)")
        _JAX["get_file_cache"] = original

        def get_file_cache(path):
            ours = _STORES.get(path)
            if ours is None:
                return _JAX["get_file_cache"](path)
            import jax

            return (jax_cache.VerificationCache(ours) if jax.config.jax_compilation_cache_check_contents else ours), path

        jax_cache.get_file_cache = get_file_cache
    _STORES[name] = store
