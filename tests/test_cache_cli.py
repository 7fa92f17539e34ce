"""The entry points of the compilation cache: ``scanfit cache [--clear]`` and ``sf.compilation_cache``
(the cache itself: ``tests/test_compilation_cache.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_compilation_cache import CONFIG, _env, _python


def _scanfit(*args, env: dict) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("scanfit")
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=120)


def test_scanfit_cache_shows_and_clears_only_scanfits_files(tmp_path):
    env = _env(tmp_path)
    _python(CONFIG.format(before=""), env)  # creates the private directories
    (folder,) = (tmp_path / "cache" / "jax-cache").iterdir()
    (folder / "abc-cache").write_bytes(b"x" * 2048)
    (folder / "abc-atime").write_bytes(b"t" * 8)
    (folder / "notes.txt").write_text("mine")
    (tmp_path / "cache" / "bernoulli-0123.so").write_bytes(b"so")
    shown = _scanfit("cache", env=env)
    assert shown.returncode == 0, shown.stderr
    assert f"compiled programs: {folder} (1 entry, 2.0 KiB)" in shown.stdout
    assert f"native kernels: {tmp_path / 'cache'} (1 entry" in shown.stdout
    cleared = _scanfit("cache", "--clear", env=env)
    assert cleared.returncode == 0, cleared.stderr
    assert "Deleted 2 files of compiled programs" in cleared.stdout
    assert sorted(p.name for p in folder.iterdir() if p.name != ".lockfile") == ["notes.txt"]  # (JAX's lock)
    assert not (tmp_path / "cache" / "bernoulli-0123.so").exists()


def test_compilation_cache_is_a_lazy_public_name():
    done = subprocess.run([sys.executable, "-c", "import sys, scanfit; assert 'compilation_cache' in scanfit.__all__; "
                           "assert 'jax' not in sys.modules; "
                           "from scanfit.engine import cache; assert scanfit.compilation_cache is cache.compilation_cache"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
