"""The files of a saved model, read without trusting them, and the directory swap that writes them.

- Reading: the model's directory is opened once and both files are opened relative to it, so a
  save that replaces the directory meanwhile cannot mix one model's ``model.json`` with another's
  parameters. Each file must be a regular file (not a FIFO, a device such as ``/dev/zero``, or a
  directory; a symbolic link is followed, then checked), is opened non-blocking and read with a
  size bound: ``model.json`` at most :data:`MAX_META_BYTES`, the parameters exactly the byte count
  recorded at save time.
- Parsing: JSON without NaN/Infinity constants, repeated keys, nesting deeper than
  :data:`MAX_DEPTH`, or numbers Python refuses to read; every failure is a :class:`ModelFileError`
  that names the file and the fix.
- Integrity: ``digest`` is the SHA-256 of the canonical JSON (sorted keys, no spaces) of all of
  ``model.json`` but the digest itself; the parameters' SHA-256 is one of those fields, so one
  digest covers both files. It catches edits and corruption, not a forger (who can recompute it).
- Writing: :func:`replace_dir` puts a finished directory in place in one step (Linux
  ``renameat2(RENAME_EXCHANGE)``), so the path holds the old model or the new one at every
  instant; :func:`locked` serializes writers of one path (``fcntl.flock`` on a lock file that is
  removed afterwards).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import stat
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: writers are not serialized
    fcntl = None

__all__ = ["ModelFileError", "MAX_META_BYTES", "MAX_DEPTH", "ModelDir", "parse_json", "digest",
           "replace_dir", "locked", "remove_debris", "new_dir", "debris"]

MAX_META_BYTES = 64 << 20
MAX_DEPTH = 64
LOCK_TIMEOUT_S = 120.0
PARAMS_FILE = "params.safetensors"
META_FILE = "model.json"
SAVE_AGAIN = "Save the model again (result.save) or restore the directory from a backup."


class ModelFileError(ValueError):
    """A saved model is missing, truncated, corrupted, modified, or from a newer format version."""


ModelFileError.__module__ = "scanfit.results.persist"  # its public home (sf.ModelFileError)


class Missing(ModelFileError):
    """A file of the model is not there (perhaps only because a save replaced the directory)."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device (such as /dev/zero)"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


class ModelDir:
    """A saved model's directory, opened once; its files are opened relative to it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.where = str(path)
        self.fd = None
        flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            if os.open in os.supports_dir_fd:
                self.fd = os.open(self.path, flags)
            elif not self.path.is_dir():  # pragma: no cover - no dir_fd (Windows): paths instead
                raise NotADirectoryError(errno.ENOTDIR, "not a directory")
        except FileNotFoundError:
            raise ModelFileError(self._absent()) from None
        except NotADirectoryError:
            raise ModelFileError(f"{self.where!r} is not a saved scanfit model: {META_FILE} is missing. "
                                 f"Give the directory that result.save() wrote.") from None
        except OSError as err:
            raise ModelFileError(f"Cannot open the saved model at {self.where!r}: {err.strerror}. "
                                 f"Check the path and its permissions.") from None

    def _absent(self) -> str:
        text = (f"No saved model at {self.where!r}: the directory does not exist. "
                f"Save one with result.save({self.where!r}) or `scanfit fit ... --out DIR`.")
        old = sorted(p for p in debris(self.path) if p.name.endswith(".old"))
        if old:
            text += (f" A save that was interrupted left the previous model in {str(old[-1])!r}: rename it back to "
                     f"{self.where!r}, or save again.")
        return text

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "ModelDir":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def replaced(self) -> bool:
        """Whether the path now names another directory than the one opened (a save replaced it)."""
        if self.fd is None:  # pragma: no cover
            return False
        try:
            now, then = os.stat(self.path), os.fstat(self.fd)
        except OSError:
            return False
        return (now.st_ino, now.st_dev) != (then.st_ino, then.st_dev)

    def fail(self, what: str, fix: str = SAVE_AGAIN) -> ModelFileError:
        return ModelFileError(f"The saved model at {self.where!r} is not usable: {what}. {fix}")

    def read(self, name: str, limit: int, missing: str) -> bytes:
        """The bytes of regular file ``name``, at most ``limit`` (a longer file is refused unread)."""
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(name, flags, dir_fd=self.fd) if self.fd is not None else os.open(self.path / name, flags)
        except FileNotFoundError:
            raise Missing(missing) from None
        except IsADirectoryError:
            raise self.fail(f"{name} is a directory, not a regular file") from None
        except OSError as err:
            raise self.fail(f"cannot open {name} ({err.strerror})", "Check its permissions, or save the model again.") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                link = " a symbolic link to" if self._is_link(name) else ""
                raise self.fail(f"{name} is{link} {_kind(st.st_mode)}, not a regular file; a saved model holds "
                                f"regular files only")
            if st.st_size > limit:
                raise self.fail(f"{name} has {st.st_size} bytes, more than the {limit} it may have")
            chunks, size = [], 0
            while size <= limit:
                chunk = os.read(fd, min(1 << 20, limit + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            if size > limit:  # the file grew while being read
                raise self.fail(f"{name} has more than the {limit} bytes it may have")
            return b"".join(chunks)
        except OSError as err:
            raise self.fail(f"cannot read {name} ({err.strerror})", "Check the disk, or save the model again.") from None
        finally:
            os.close(fd)

    def _is_link(self, name: str) -> bool:
        try:
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False) if self.fd is not None else \
                os.lstat(self.path / name)
        except OSError:
            return False
        return stat.S_ISLNK(st.st_mode)


# ---------------------------------------------------------------- JSON

class _Refused(Exception):
    pass


def _pairs(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _Refused(f"repeats the key {dup!r} in one object")
    return out


def _constant(name: str):
    raise _Refused(f"holds {name}, which JSON does not allow (a saved model writes null)")


def _scan(value: Any) -> str | None:
    """What makes a parsed JSON value unfit to use: nesting deeper than MAX_DEPTH, or a number that
    overflowed to infinity (``1e999``); None when it is fine. Iterative, so no recursion limit."""
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            if level + 1 > MAX_DEPTH:
                return f"nests JSON arrays or objects deeper than {MAX_DEPTH} levels"
            stack.extend((v, level + 1) for v in item)
        elif isinstance(item, float) and not math.isfinite(item):
            return "holds a number too large for a float"
    return None


def parse_json(blob: bytes, fail) -> Any:
    """``model.json``'s bytes as a JSON value; ``fail(what)`` makes the error for what is wrong."""
    try:
        value = json.loads(blob.decode("utf-8"), object_pairs_hook=_pairs, parse_constant=_constant)
    except UnicodeDecodeError as err:
        raise fail(f"{META_FILE} is not UTF-8 text ({err.reason} at byte {err.start}); it is corrupted") from None
    except json.JSONDecodeError as err:
        raise fail(f"{META_FILE} is not valid JSON ({err}); it is corrupted or truncated") from None
    except RecursionError:
        raise fail(f"{META_FILE} nests JSON arrays or objects too deeply to read (a saved model nests at most "
                   f"{MAX_DEPTH} levels)") from None
    except ValueError as err:  # e.g. an integer longer than Python's 4300-digit limit
        raise fail(f"{META_FILE} holds a number that cannot be read ({str(err).split(';')[0]})") from None
    except _Refused as err:
        raise fail(f"{META_FILE} {err}") from None
    problem = _scan(value)
    if problem:
        raise fail(f"{META_FILE} {problem}")
    return value


def digest(meta: dict) -> str:
    """SHA-256 of the canonical JSON of ``meta`` without its ``digest`` field."""
    body = {k: v for k, v in meta.items() if k != "digest"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------- writing: one-step replacement, one writer

_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _renameat2():
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError, TypeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step; False where the system or file system cannot."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_dir(new: Path, path: Path) -> None:
    """Put the finished directory ``new`` at ``path``; the old one (if any) ends up at ``new``.

    Where the system can swap two names in one step, ``path`` always names a whole model. Elsewhere
    the old directory is first renamed aside to ``.NAME.save-*.old`` and put back if the second
    rename fails; a reader that finds ``path`` missing in that instant (or after a kill in it) is
    told where the previous model is.
    """
    if not os.path.lexists(path):
        os.rename(new, path)
    elif not exchange(new, path):
        aside = new.with_name(new.name[: -len(".tmp")] + ".old")
        os.rename(path, aside)
        try:
            os.rename(new, path)
        except BaseException:
            os.rename(aside, path)  # put the old model back
            raise
        os.rename(aside, new)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - not possible on every system
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def debris(path: Path) -> list[Path]:
    """The temporary directories (``.NAME.save-XXXXXXXX.tmp`` or ``.old``) that saves to ``path`` left."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.save-[A-Za-z0-9_]{{8}}\.(tmp|old)")
    try:
        return [p for p in path.parent.iterdir() if pattern.fullmatch(p.name) and p.is_dir() and not p.is_symlink()]
    except OSError:
        return []


def remove_debris(path: Path) -> None:
    """Remove what interrupted saves to ``path`` left (call it holding :func:`locked`)."""
    for other in debris(path):
        shutil.rmtree(other, ignore_errors=True)


def new_dir(path: Path, kind: str = "save") -> Path:
    """A fresh temporary directory ``.NAME.KIND-XXXXXXXX.tmp`` beside ``path``, made with the umask's
    permissions (an ordinary directory, unlike ``mkdtemp``'s 0700; and without changing the
    process-wide umask). Only ``kind="save"`` directories are :func:`debris` of saves."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{kind}-{secrets.token_hex(4)}.tmp")
        try:
            os.mkdir(tmp, 0o777)
            return tmp
        except FileExistsError:  # pragma: no cover - 32 random bits
            continue
    raise FileExistsError(f"Cannot create a temporary directory beside {str(path)!r}.")  # pragma: no cover


@contextmanager
def locked(path: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the lock of saves to ``path``: ``.NAME.lock`` beside it, locked with ``flock`` and removed
    when released (a writer that locked a removed lock file tries again)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    lock = path.parent / f".{path.name}.lock"
    deadline = time.monotonic() + timeout
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"Cannot save to {str(path)!r}: another process has been saving to it for "
                                           f"{timeout:.0f} s (it holds {str(lock)!r}). Wait for it to finish, "
                                           f"or stop it and save again.") from None
                    time.sleep(0.01)
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock, follow_symlinks=False))
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)  # the holder before us removed this lock file: lock the new one
    try:
        yield
    finally:
        try:
            os.unlink(lock)
        except OSError:  # pragma: no cover
            pass
        os.close(fd)
