"""Compiled programs kept on disk, so that a fit compiled once loads in the next process.

Most of a small fit's time is XLA compiling its programs (the loop's ``init``, ``chunk`` and
``evaluate``, and a dozen small ones). JAX can keep compiled programs in a directory and load
them in later processes (its persistent compilation cache); scanfit turns that on when the engine
is imported, in ``$SCANFIT_CACHE/jax-cache/<cpu>/`` (default ``~/.cache/scanfit``), unless:

- ``SCANFIT_COMPILATION_CACHE=0`` (or ``off``) turns it off, and ``SCANFIT_COMPILATION_CACHE=PATH``
  moves it; in a running process :func:`compilation_cache` does the same;
- JAX's cache is already the user's (``jax.config.jax_compilation_cache_dir`` set, or
  ``JAX_COMPILATION_CACHE_DIR`` in the environment) or turned off (``jax_enable_compilation_cache``):
  then scanfit changes none of JAX's settings.

What scanfit sets (process-wide: JAX has one cache per process): the directory; a minimum compile
time of 0 (JAX's default, 1 s, would keep none of scanfit's programs: they are small but many) and
a bound of 1 GiB (the least recently used entries go first), each unless the user set it. JAX reads
and writes scanfit's directory through ``cache_store.Store``, not its own file cache:

- the directory is opened once and checked on that descriptor (this user's, closed to other
  writers: a compiled program is code this process runs); every later use goes through the
  descriptor, so a link swapped in for the path changes nothing;
- it is used only if scanfit created it or found it empty (a key file marks it then); a directory
  holding anything else is refused, with a warning once per process, and nothing there is deleted;
- every entry carries an HMAC-SHA256 of its bytes under that directory's secret key, checked
  before JAX sees them; a bad entry is removed with one warning and compiled again;
- only entries the store recorded (``cache_bound``'s journal) are ever deleted, by the size bound
  or by ``scanfit cache --clear``. An older scanfit's entries in the default place are replaced.

The last part of the default path hashes the CPU's features, so a home directory shared by
machines of different CPUs never loads a program built for another. Two processes at once: reads
hold a shared lock, writes an exclusive one, an entry is written once and never replaced. The
native Bernoulli kernel: its FFI target is registered while the loop is traced
(``native.bernoulli_target()``), and JAX looks up the cache only after tracing and lowering, so a
cached program that calls the kernel is never loaded before the target exists. ``scanfit cache``
shows the cache, ``scanfit cache --clear`` empties it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import jax

from ..likelihoods.native import cache_base, cpu_signature, private_dir
from . import cache_bound, cache_store
from .cache_store import CacheWarning, Refused

__all__ = ["CacheWarning", "ENV", "Refused", "clear", "compilation_cache", "configure", "default_dir", "describe", "programs_dir", "status"]

ENV = "SCANFIT_COMPILATION_CACHE"
OFF = ("0", "off", "false", "no")
ON = ("", "1", "on", "true", "yes")
MAX_BYTES = 1 << 30
MIN_COMPILE_SECS = 0.0
_JAX_DEFAULTS = {"jax_persistent_cache_min_compile_time_secs": 1.0, "jax_compilation_cache_max_size": -1}
_OURS = {"jax_persistent_cache_min_compile_time_secs": MIN_COMPILE_SECS, "jax_compilation_cache_max_size": MAX_BYTES}
_STATE: dict = {"dir": None, "status": "not configured yet", "restore": {}}
_ASK = object()


def default_dir() -> Path:
    """``$SCANFIT_CACHE/jax-cache/<cpu>``, created private (0700)."""
    root = private_dir(private_dir(cache_base()) / "jax-cache")
    return private_dir(root / hashlib.sha256(cpu_signature().encode()).hexdigest()[:12])


def programs_dir() -> Path:
    """``$SCANFIT_CACHE/programs``, created private (0700): the fit's lowered programs (``programs.py``)."""
    return private_dir(private_dir(cache_base()) / "programs")


def status() -> str:
    """Where this process keeps compiled programs, or why it keeps none."""
    return _STATE["status"]


def _users_own() -> str | None:
    """Why JAX's cache is the user's business (their directory, or turned off), else None."""
    if not jax.config.jax_enable_compilation_cache:
        return "off: JAX's persistent cache is turned off (jax_enable_compilation_cache); scanfit leaves it so"
    current = jax.config.jax_compilation_cache_dir
    if current and current != _STATE["dir"] or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return f"JAX's own cache at {current!r}, set outside scanfit (scanfit leaves JAX's settings alone)"
    return None


def _use(path: Path | None, env: str, *, legacy: bool = False) -> Path | None:
    """Point JAX's cache at ``path`` (opened once, checked, claimed: ``cache_store``) with scanfit's settings;
    None turns scanfit's off. ``legacy``: the default place, where an older scanfit's entries are replaced."""
    from jax.experimental.compilation_cache import compilation_cache as jax_cache

    if path is not None:
        path = Path(os.path.abspath(path))
        try:
            store = cache_store.claim(path, env, legacy=legacy)
        except PermissionError:  # its key file and new entries need to write there
            raise OSError(f"the cache directory {str(path)!r} is not writable by you; make it writable or set {env} "
                          f"to another directory") from None
        cache_store.attach(store, str(path))  # JAX reads and writes through the store's descriptor
    jax.config.update("jax_compilation_cache_dir", None if path is None else str(path))
    restore = _STATE["restore"]  # the settings scanfit changed, as they were before
    for name, value in _OURS.items():
        current = getattr(jax.config, name)
        if path is None:
            if name in restore and current == value:  # still scanfit's value: give the old one back
                jax.config.update(name, restore[name])
            restore.pop(name, None)
        elif name in restore or name.upper() in os.environ or current != _JAX_DEFAULTS[name]:
            continue  # already scanfit's, or the user's own: left as it is
        else:
            restore[name] = current
            jax.config.update(name, value)
    jax_cache.reset_cache()  # JAX opens its cache once, at the first compile; a moved one must be opened again
    _STATE["dir"] = None if path is None else str(path)
    return path


def configure() -> None:
    """Turn the cache on as the environment says (called once, when the engine is imported); never raises."""
    setting = os.environ.get(ENV, "").strip()
    if setting.lower() in OFF:
        _STATE["status"] = f"off ({ENV}={setting})"
        return
    own = _users_own()
    if own is not None:
        _STATE["status"] = own
        return
    explicit = setting.lower() not in ON
    try:
        where = (_use(Path(setting).expanduser(), ENV) if explicit
                 else _use(default_dir(), "SCANFIT_CACHE", legacy=True))
    except (OSError, RuntimeError, ValueError) as err:  # no cache only costs compile time
        _STATE["status"] = f"off: {err}"
        if explicit or os.environ.get("SCANFIT_CACHE") or isinstance(err, Refused):  # say why, once
            cache_store.warn_once("refused", f"scanfit's compilation cache is off: {err}")
        return
    _STATE["status"] = f"on: {where}"


def compilation_cache(path=_ASK) -> Path | None:
    """Where compiled programs are kept between processes; move that place or turn it off.

    scanfit keeps JAX's compiled programs in ``$SCANFIT_CACHE/jax-cache/`` (default
    ``~/.cache/scanfit``), so a fit compiled in one process loads in the next instead of compiling again.

    - ``compilation_cache()``: the directory JAX's cache uses now, or None when it is off.
    - ``compilation_cache(path)``: keep them in ``path`` from now on (created private, 0700; refused
      unless it is yours and closed to other writers: a compiled program is code this process runs).
    - ``compilation_cache(None)``: turn scanfit's cache off in this process and give back the JAX
      settings scanfit changed; a cache you set for JAX yourself is left alone.

    ``SCANFIT_COMPILATION_CACHE=0`` (off) or ``=PATH`` does the same for new processes; a cache set for
    JAX before scanfit is imported (``jax_compilation_cache_dir``) is never replaced unless you call
    this with a path. ``scanfit cache`` shows the cache's size, ``scanfit cache --clear`` empties it.

    >>> import scanfit as sf
    >>> sf.compilation_cache()  # doctest: +SKIP
    PosixPath('/home/me/.cache/scanfit/jax-cache/3f2a...')
    """
    if path is _ASK:
        current = jax.config.jax_compilation_cache_dir
        return Path(current) if current and jax.config.jax_enable_compilation_cache else None
    if path is None:
        if _STATE["dir"] is not None and jax.config.jax_compilation_cache_dir == _STATE["dir"]:
            _use(None, ENV)
            _STATE["status"] = "off (scanfit.compilation_cache(None))"
        return compilation_cache()
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"The 'path' parameter must be a directory (str or Path) or None. Got {path!r}.")
    if not os.fspath(path).strip():
        raise ValueError("The 'path' parameter must name a directory; got an empty path (give None to turn the "
                         "cache off).")
    if not jax.config.jax_enable_compilation_cache:
        raise ValueError("JAX's persistent cache is turned off (jax_enable_compilation_cache=False); turn it on "
                         "first, or leave the cache off.")
    where = _use(Path(path).expanduser(), "scanfit.compilation_cache(path)")
    _STATE["status"] = f"on: {where}"
    return where


def _files(folder: Path, patterns: tuple[str, ...], *, any_kind: bool = False) -> list[Path]:
    """The regular files of ``folder`` that match ``patterns`` (``any_kind``: links, pipes, folders too)."""
    return [p for pattern in patterns for p in folder.glob(pattern)
            if any_kind or (p.is_file() and not p.is_symlink())]


KERNEL_FILES = ("bernoulli-*.so", "bernoulli-*.so.sha256", "glm-*.so", "glm-*.so.sha256")
PROGRAM_FILES = ("*.prog", "*.prog*.tmp")  # programs.py's entries and its temporary files


def _compiled_dirs() -> list[Path]:
    """The directories of compiled programs: the default ones (one per CPU) and this process's."""
    root = cache_base() / "jax-cache"
    found = sorted(d for d in root.glob("*") if d.is_dir() and not d.is_symlink())
    current = _STATE["dir"]
    return found + ([Path(current)] if current is not None and Path(current) not in found else [])


def _compiled(folder: Path, *, delete: bool) -> str:
    """What ``folder`` holds of scanfit's compiled programs (deleted first with ``delete``), as a line's end.
    Only entries scanfit recorded there go; in the default place, an older scanfit's entries too."""
    try:
        store = cache_store.existing(folder, ENV)
        if store is None:
            legacy = cache_store.legacy_files(folder, ENV) if folder.parent == cache_base() / "jax-cache" else []
            return _legacy(folder, legacy, delete)
        try:
            if delete:
                count, size = store.clear()
                return f"Deleted {count} files of compiled programs ({_size(size)}) in {folder}"
            sizes = [size for _, _, size in cache_bound.present(store.fd)]
        finally:
            store.close()
    except (OSError, RuntimeError) as err:
        return f"compiled programs: {folder} (not read: {err})"
    return f"compiled programs: {folder} ({_count(len(sizes))}, {_size(sum(sizes))})"


def _legacy(folder: Path, names: list[str], delete: bool) -> str:
    """An older scanfit's entries in the default place, or a note that ``folder`` holds no scanfit cache."""
    if not names:
        return f"compiled programs: {folder} (no scanfit cache there: nothing of it is read or deleted)"
    paths = [folder / n for n in names]
    size = sum(p.lstat().st_size for p in paths)
    if delete:
        for p in paths:
            p.unlink(missing_ok=True)
        return f"Deleted {len(paths)} files of compiled programs ({_size(size)}) in {folder}"
    return f"compiled programs: {folder} ({_count(sum(n.endswith('-cache') for n in names))} of an older scanfit, " \
           f"{_size(size)})"


def _count(n: int) -> str:
    return f"{n} {'entries' if n != 1 else 'entry'}"


def _places() -> list[tuple[str, Path, tuple[str, ...]]]:
    """(what, directory, file patterns) for the lowered programs and the native kernels."""
    base = cache_base()
    return [("lowered programs", base / "programs", PROGRAM_FILES), ("native kernels", base, KERNEL_FILES)]


def _status_line() -> str:
    """The cache's state in this process; a refusal already said in a warning is not said again."""
    return f"Compilation cache: {'off (the warning above says why)' if cache_store.warned('refused') else status()}"


def describe() -> list[str]:
    """Lines for ``scanfit cache``: where the cache is, its state in this process, and its size."""
    lines = [_status_line()] + [_compiled(d, delete=False) for d in _compiled_dirs()]
    for what, folder, patterns in _places():
        files = _files(folder, patterns)
        count = sum(1 for p in files if not p.name.endswith((".sha256", ".tmp")))
        lines.append(f"{what}: {folder} ({_count(count)}, {_size(sum(p.stat().st_size for p in files))})")
    return lines


def clear() -> list[str]:
    """Delete the compiled programs and native kernels scanfit keeps (other files are left); lines saying what."""
    lines = [_status_line()] + [_compiled(d, delete=True) for d in _compiled_dirs()]
    for what, folder, patterns in _places():
        files = _files(folder, patterns, any_kind=True)  # a broken entry (a link, a pipe, a folder) goes too
        freed = sum(p.lstat().st_size for p in files if p.is_file() and not p.is_symlink())
        for p in files:
            _remove(p)
        lines.append(f"Deleted {len(files)} files of {what} ({_size(freed)}) in {folder}")
    return lines


def _remove(path: Path) -> None:
    """Delete a file of any kind (a file, a link, a pipe, a folder); a failure leaves it."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
