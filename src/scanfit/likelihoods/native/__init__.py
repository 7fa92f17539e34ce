"""Compiled CPU kernels, built on first use with the machine's C++ compiler and called through
``jax.ffi`` inside the compiled loop. Each has a pure-JAX twin that gives the same numbers;
without a compiler (or with ``SCANFIT_NATIVE=0``) scanfit uses the twin, only slower.

The one kernel today is the Bernoulli pass (``bernoulli.cc``): objective, counts and gradient
weights in one loop over the observations. The library is cached in ``$SCANFIT_CACHE`` (default
``~/.cache/scanfit``) under a name that hashes the source, the flags, the compiler and the CPU.

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
import subprocess
import tempfile
from pathlib import Path

import jax

__all__ = ["bernoulli_target", "status"]

TARGET = "scanfit_bernoulli_pass"
SOURCE = Path(__file__).with_name("bernoulli.cc")
# No -ffast-math: NaN and inf must propagate. Associative math lets the sums vectorize.
FLAGS = ["-O3", "-std=c++17", "-shared", "-fPIC", "-w", "-fno-math-errno", "-fassociative-math",
         "-fno-signed-zeros", "-fno-trapping-math"]
NATIVE_FLAGS = ["-march=native", "-mprefer-vector-width=512"]
_STATUS = ["not built yet"]
_REGISTERED: dict[str, str] = {}  # target -> library path (XLA keeps a target once registered)


def status() -> str:
    """What happened to the native kernels in this process (compiled, cached, or why not)."""
    return _STATUS[0]


def _cpu_signature() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        return next((line for line in text.splitlines() if line.startswith(("flags", "Features"))), text[:200])
    except OSError:
        return platform.processor()


def _compile(compiler: str, out: Path) -> None:
    include = jax.ffi.include_dir()
    errors = []
    for extra in (NATIVE_FLAGS, []):  # a compiler without -march=native still builds a portable kernel
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            target = Path(tmp) / out.name
            cmd = [compiler, *FLAGS, *extra, f"-I{include}", str(SOURCE), "-o", str(target)]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if done.returncode == 0:
                os.replace(target, out)  # atomic: a parallel process sees the old name or the whole file
                return
            errors.append(done.stderr.strip()[-500:])
    raise RuntimeError(f"{compiler} failed: {errors[-1]}")


@functools.lru_cache(maxsize=1)
def bernoulli_target() -> bool:
    """Build (once), load and register the Bernoulli kernel; False when it is not available."""
    if os.environ.get("SCANFIT_NATIVE", "1") == "0":
        _STATUS[0] = "disabled by SCANFIT_NATIVE=0"
        return False
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        _STATUS[0] = "no C++ compiler found (set CXX); using the pure-JAX kernels"
        return False
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60).stdout
        key = hashlib.sha256("\n".join([SOURCE.read_text(), " ".join(FLAGS + NATIVE_FLAGS), version,
                                        _cpu_signature(), jax.__version__]).encode()).hexdigest()[:16]
        cache = Path(os.environ.get("SCANFIT_CACHE") or Path.home() / ".cache" / "scanfit")
        cache.mkdir(parents=True, exist_ok=True)
        lib_path = cache / f"bernoulli-{key}.so"
        built = not lib_path.exists()
        if built:
            _compile(compiler, lib_path)
        if TARGET not in _REGISTERED:
            lib = ctypes.cdll.LoadLibrary(str(lib_path))
            jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(lib.scanfit_bernoulli_pass), platform="cpu")
            _REGISTERED[TARGET] = str(lib_path)
    except Exception as err:  # any failure leaves the pure-JAX path, which gives the same numbers
        _STATUS[0] = f"not available ({type(err).__name__}: {err}); using the pure-JAX kernels"
        return False
    _STATUS[0] = f"{'compiled' if built else 'cached'}: {lib_path}"
    return True
