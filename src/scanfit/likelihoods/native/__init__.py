"""Compiled CPU kernels, built on first use with the machine's C++ compiler and called through
``jax.ffi`` inside the compiled loop. Each has a pure-JAX twin that gives the same numbers;
without a compiler (or with ``SCANFIT_NATIVE=0``) scanfit uses the twin, only slower.

Two kernels: the Bernoulli pass (``bernoulli.cc``, called through ``jax.ffi``): objective, counts
and gradient weights in one loop over the observations; and the streamed GLM pass (``glm.cc``,
called with ``ctypes`` by ``engine.native_pass`` on chunks in host memory): a chunk's sums for
Newton's passes. Each library is cached in ``$SCANFIT_CACHE`` (default ``~/.cache/scanfit``) under a
name that hashes its source, the flags, the compiler and the CPU.

Only a library that scanfit built is loaded. The cache directory must be this user's and closed
to others (it is created 0700, an own directory open to reading is tightened to 0700, one that
others may write to or that another user owns is refused: the pure-JAX kernels are used and
``status()`` says why). Each library is compiled in a private temporary directory, renamed into
place, and its SHA-256 is written next to it (``bernoulli-<key>.so.sha256``, ``glm-<key>.so.sha256``,
also atomically).
Before a cached library is loaded its bytes are read through one open descriptor and hashed; a
missing or different digest means rebuild, never load; the bytes that were hashed are copied into an
anonymous in-memory file (``memfd_create``, Linux) and that copy is loaded, so a file swapped in or
rewritten meanwhile is neither loaded nor able to fault the running code (elsewhere the hashed
descriptor itself is loaded).

>>> from scanfit.likelihoods import native
>>> native.status()  # doctest: +SKIP
'compiled: /root/.cache/scanfit/bernoulli-....so'
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import jax

__all__ = ["bernoulli_target", "cache_base", "cpu_signature", "glm_library", "private_dir", "status"]

TARGET = "scanfit_bernoulli_pass"
SOURCE = Path(__file__).with_name("bernoulli.cc")
GLM_SOURCE = Path(__file__).with_name("glm.cc")
# No -ffast-math: NaN and inf must propagate. Associative math lets the sums vectorize.
FLAGS = ["-O3", "-std=c++17", "-shared", "-fPIC", "-w", "-fno-math-errno", "-fassociative-math",
         "-fno-signed-zeros", "-fno-trapping-math"]
NATIVE_FLAGS = ["-march=native", "-mprefer-vector-width=512"]
_STATUS = ["not built yet"]
_REGISTERED: dict[str, str] = {}  # target -> its status line (XLA keeps a target once registered)
MAX_LIBRARY_BYTES = 64 << 20


def status() -> str:
    """What happened to the native kernels in this process (compiled, cached, or why not)."""
    return _STATUS[0]


def cpu_signature() -> str:
    """The CPU's feature flags (what code compiled for this machine may use)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        return next((line for line in text.splitlines() if line.startswith(("flags", "Features"))), text[:200])
    except OSError:
        return platform.processor()


def cache_base() -> Path:
    """scanfit's cache directory: ``$SCANFIT_CACHE`` (``~`` expanded, made absolute), default
    ``~/.cache/scanfit`` (not created here)."""
    return Path(os.path.abspath(os.path.expanduser(os.environ.get("SCANFIT_CACHE") or "~/.cache/scanfit")))


def private_dir(cache: Path, env: str = "SCANFIT_CACHE") -> Path:
    """The directory ``cache``, created private (0700); refused unless it is this user's and closed to
    writers other than you (an existing directory's mode is left as it is: a group may read a shared one).

    What scanfit keeps there (kernel libraries, compiled programs) is code it runs, so a directory
    others may write to is refused; ``env`` is the variable the messages suggest for another place."""
    cache = Path(cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(cache, 0o700)
    except FileExistsError:
        pass
    st = os.stat(cache)
    if not stat.S_ISDIR(st.st_mode):
        raise RuntimeError(f"the cache {str(cache)!r} is not a directory; remove it or set {env}")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise RuntimeError(f"the cache directory {str(cache)!r} belongs to user id {st.st_uid}, not to you; "
                           f"set {env} to a directory of your own")
    if st.st_mode & 0o022:
        raise RuntimeError(f"the cache directory {str(cache)!r} can be written by other users (mode "
                           f"{stat.S_IMODE(st.st_mode):o}), so what is there may not be scanfit's; remove it "
                           f"(scanfit recreates it private) or set {env}")
    return cache


def _cache_dir() -> Path:
    return private_dir(cache_base())


def _owned_file(fd: int, limit: int) -> os.stat_result | None:
    """The stat of an open file if it is a regular file of this user, closed to writers, at most ``limit`` bytes."""
    st = os.fstat(fd)
    mine = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    return st if stat.S_ISREG(st.st_mode) and mine and not st.st_mode & 0o022 and st.st_size <= limit else None


def _open_verified(path: Path, want: str | None) -> int | None:
    """An open descriptor of the library at ``path`` whose SHA-256 is ``want``; None if it is absent,
    not this user's regular file, or has other bytes (then it must be rebuilt, never loaded)."""
    if want is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    digest = hashlib.sha256()
    try:
        if _owned_file(fd, MAX_LIBRARY_BYTES) is not None:
            while chunk := os.read(fd, 1 << 20):
                digest.update(chunk)
            if digest.hexdigest() == want:
                return fd
    except OSError:
        pass
    os.close(fd)
    return None


def _recorded_digest(sidecar: Path) -> str | None:
    """The digest recorded when the library was built, or None (absent, not ours, or malformed)."""
    try:
        fd = os.open(sidecar, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        text = os.read(fd, 129).decode("ascii", "replace").strip() if _owned_file(fd, 128) is not None else ""
    finally:
        os.close(fd)
    return text if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else None


def _compile(compiler: str, target: Path, source: Path = SOURCE) -> None:
    include = jax.ffi.include_dir()
    errors = []
    for extra in (NATIVE_FLAGS, []):  # a compiler without -march=native still builds a portable kernel
        cmd = [compiler, *FLAGS, *extra, f"-I{include}", str(source), "-o", str(target)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if done.returncode == 0:
            return
        errors.append(done.stderr.strip()[-500:])
    raise RuntimeError(f"{compiler} failed: {errors[-1]}")


def _build(compiler: str, lib_path: Path, source: Path = SOURCE) -> tuple[int, str]:
    """Compile into a private temporary directory, open and hash the result, then rename it into
    place and record its digest beside it (both renames atomic); the open descriptor is returned,
    so what is loaded is what was built even if another process replaces the file meanwhile."""
    sidecar = lib_path.with_name(lib_path.name + ".sha256")
    with tempfile.TemporaryDirectory(dir=lib_path.parent) as tmp:  # mkdtemp: mode 0700
        target = Path(tmp) / lib_path.name
        _compile(compiler, target, source)
        os.chmod(target, 0o700)
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        fd = _open_verified(target, digest)
        if fd is None:  # pragma: no cover - only if the private directory was tampered with
            raise RuntimeError(f"the library just built in {tmp!r} changed before it was loaded")
        try:
            (Path(tmp) / "digest").write_text(digest + "\n")
            os.replace(target, lib_path)  # atomic: a parallel process sees the old file or the whole new one
            os.replace(Path(tmp) / "digest", sidecar)
        except BaseException:
            os.close(fd)
            raise
    return fd, digest


def _key(compiler: str, source: Path = SOURCE) -> str:
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60).stdout
    return hashlib.sha256("\n".join([source.read_text(), " ".join(FLAGS + NATIVE_FLAGS), version,
                                     cpu_signature(), jax.__version__]).encode()).hexdigest()[:16]


def load_library(compiler: str, source: Path = SOURCE) -> tuple[ctypes.CDLL, Path, bool]:
    """The kernel library for this source, flags, compiler and CPU: ``(library, path, built)``.

    Loaded from the cache only when its bytes match the digest recorded when scanfit built it;
    otherwise (absent, planted, altered, half-written) it is built again and the new build is loaded.
    """
    lib_path = _cache_dir() / f"{source.stem}-{_key(compiler, source)}.so"
    want = _recorded_digest(lib_path.with_name(lib_path.name + ".sha256"))
    fd = _open_verified(lib_path, want)
    built = fd is None
    if built:
        fd, want = _build(compiler, lib_path, source)
    lib = private = None
    try:
        if hasattr(os, "memfd_create"):  # Linux: load a private copy of the verified bytes
            private = _private_copy(fd, want)
            try:
                lib = ctypes.CDLL(f"/proc/self/fd/{private}")
            except OSError:  # an in-memory file may not be executable here (vm.memfd_noexec): the file's own
                os.close(private)
                private = None
        if lib is None:  # the verified descriptor itself, kept open (below)
            by_fd = f"/proc/self/fd/{fd}"
            if not os.path.exists(by_fd):
                return ctypes.CDLL(str(lib_path)), lib_path, built
            lib, private, fd = ctypes.CDLL(by_fd), fd, None
    finally:
        if fd is not None:
            os.close(fd)
    # The descriptor stays open while the process lives: the dynamic loader knows a library by the name it
    # was opened with, so a second library opened later through a reused /proc/self/fd/N would be handed
    # the first one (the Bernoulli kernel lost its symbol to the GLM library that way).
    _HELD.append(private)
    return lib, lib_path, built


def _private_copy(fd: int, want: str | None) -> int:
    """The library's verified bytes in an anonymous in-memory file (``memfd_create``), which is what gets
    loaded: a cache file rewritten in place later (by another process, or a test planting one) can then
    neither change the code this process runs nor fault it (a library mapped from a file that is truncated
    under it dies with SIGBUS on its next page, at the latest at exit)."""
    chunks, at = [], 0
    while chunk := os.pread(fd, 1 << 20, at):
        chunks.append(chunk)
        at += len(chunk)
    data = b"".join(chunks)
    if want is None or hashlib.sha256(data).hexdigest() != want:
        raise RuntimeError("the kernel library changed while it was being loaded")
    private = os.memfd_create("scanfit-kernel", getattr(os, "MFD_CLOEXEC", 0))
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(private, view):]
    except BaseException:
        os.close(private)
        raise
    return private


_HELD: list[int] = []  # the descriptors of the loaded libraries (see load_library)


@functools.lru_cache(maxsize=1)
def bernoulli_target() -> bool:
    """Build (once), load and register the Bernoulli kernel; False when it is not available."""
    if os.environ.get("SCANFIT_NATIVE", "1") == "0":
        _STATUS[0] = "disabled by SCANFIT_NATIVE=0"
        return False
    if TARGET in _REGISTERED:  # XLA keeps a registered target for the life of the process
        _STATUS[0] = _REGISTERED[TARGET]
        return True
    compiler = _compiler()
    if compiler is None:
        _STATUS[0] = "no C++ compiler found (set CXX); using the pure-JAX kernels"
        return False
    try:
        lib, lib_path, built = load_library(compiler)
        jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(lib.scanfit_bernoulli_pass), platform="cpu")
    except Exception as err:  # any failure leaves the pure-JAX path, which gives the same numbers
        _STATUS[0] = f"not available ({type(err).__name__}: {err}); using the pure-JAX kernels"
        return False
    _STATUS[0] = _REGISTERED[TARGET] = f"{'compiled' if built else 'cached'}: {lib_path}"
    return True


def _compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")


GLM_STATUS = ["not built yet"]


@functools.lru_cache(maxsize=1)
def glm_library() -> ctypes.CDLL | None:
    """The streamed GLM pass's library (``glm.cc``), built once and loaded; None when it is not
    available (``SCANFIT_NATIVE=0``, no compiler, a failed build: ``GLM_STATUS`` says why), and the
    streamed passes run as XLA programs, which give the same sums."""
    if os.environ.get("SCANFIT_NATIVE", "1") == "0":
        GLM_STATUS[0] = "disabled by SCANFIT_NATIVE=0"
        return None
    compiler = _compiler()
    if compiler is None:
        GLM_STATUS[0] = "no C++ compiler found (set CXX); the streamed passes run as XLA programs"
        return None
    try:
        lib, lib_path, built = load_library(compiler, GLM_SOURCE)
        i64, i32, f64, ptr = ctypes.c_int64, ctypes.c_int, ctypes.c_double, ctypes.c_void_p
        lib.scanfit_glm_size.restype = i64
        lib.scanfit_glm_size.argtypes = [i64, i32, i32, i32, i32, i32]
        lib.scanfit_glm_pass.restype = i32
        lib.scanfit_glm_pass.argtypes = [ptr, i32, i64, i64, ptr, ptr, ptr, ptr, f64, i32, ptr, ptr, i32, i32, i32,
                                         i32, f64, i32, ptr]
        lib.scanfit_chunk_moments.restype = i32
        lib.scanfit_chunk_moments.argtypes = [ptr, i32, i64, i64, i64, ptr, ptr, i32, ptr]
        lib.scanfit_gather_rows.restype = i32
        lib.scanfit_gather_rows.argtypes = [ptr, i32, i64, i64, ptr]
    except Exception as err:  # the XLA programs give the same sums
        GLM_STATUS[0] = f"not available ({type(err).__name__}: {err}); the streamed passes run as XLA programs"
        return None
    GLM_STATUS[0] = f"{'compiled' if built else 'cached'}: {lib_path}"
    return lib
