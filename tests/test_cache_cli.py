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
    from scanfit.engine import cache_store

    env = _env(tmp_path)
    _python(CONFIG.format(before=""), env)  # creates the private directories and claims the cache's
    (folder,) = (tmp_path / "cache" / "jax-cache").iterdir()
    kept = cache_store.existing(folder, "SCANFIT_CACHE")
    kept.put("abc", b"x" * 2004)  # a recorded entry: 2048 bytes with its signature
    kept.close()
    mine = {"def-cache": "mine", "abc-atime": "mine", "notes.txt": "mine"}  # the user's, whatever their names
    for name, text in mine.items():
        (folder / name).write_text(text)
    (tmp_path / "cache" / "bernoulli-0123.so").write_bytes(b"so")
    shown = _scanfit("cache", env=env)
    assert shown.returncode == 0, shown.stderr
    assert f"compiled programs: {folder} (1 entry, 2.0 KiB)" in shown.stdout
    assert f"native kernels: {tmp_path / 'cache'} (1 entry" in shown.stdout
    cleared = _scanfit("cache", "--clear", env=env)
    assert cleared.returncode == 0, cleared.stderr
    assert f"Deleted 1 files of compiled programs (2.0 KiB) in {folder}" in cleared.stdout
    assert {p.name: p.read_text() for p in folder.iterdir() if p.name in mine} == mine
    assert not (folder / "abc-cache").exists() and not (tmp_path / "cache" / "bernoulli-0123.so").exists()


def test_a_folder_of_the_users_is_refused_once_and_left_as_it_was(tmp_path):
    folder = tmp_path / "existing"
    folder.mkdir()
    mine = {"run-atime": "a", "meeting-atime": "b", "results-cache": "c"}
    for name, text in mine.items():
        (folder / name).write_text(text)
    (tmp_path / "t.csv").write_text("x1,y\n" + "".join(f"{i % 7},{i % 3 == 0:d}\n" for i in range(40)))
    env = _env(tmp_path, SCANFIT_COMPILATION_CACHE=str(folder))
    fit = subprocess.run([str(Path(sys.executable).with_name("scanfit")), "fit", str(tmp_path / "t.csv"), "--target",
                          "y", "--features", "x1", "--out", str(tmp_path / "out")], env=env, capture_output=True,
                         text=True, timeout=120)
    assert fit.returncode == 0, fit.stderr
    refusal = (f"scanfit's compilation cache is off: the cache directory '{folder}' holds 3 file(s) scanfit "
               f"did not write ('meeting-atime', 'results-cache', 'run-atime'); scanfit keeps compiled programs only "
               f"in a directory it creates or an empty one, and deletes nothing else: set SCANFIT_COMPILATION_CACHE "
               f"to a new or empty directory")
    assert fit.stderr.count(refusal) == 1 and "Traceback" not in fit.stderr, fit.stderr
    cleared = _scanfit("cache", "--clear", env=env)
    assert cleared.returncode == 0 and cleared.stderr.count(refusal) == 1, cleared.stderr
    assert cleared.stderr.startswith("scanfit:0: CacheWarning: ") and "Traceback" not in cleared.stderr
    assert cleared.stdout.startswith("Compilation cache: off (the warning above says why)\n"), cleared.stdout
    assert {p.name: p.read_text() for p in folder.iterdir()} == mine


def test_compilation_cache_is_a_lazy_public_name():
    done = subprocess.run([sys.executable, "-c", "import sys, scanfit; assert 'compilation_cache' in scanfit.__all__; "
                           "assert 'jax' not in sys.modules; "
                           "from scanfit.engine import cache; assert scanfit.compilation_cache is cache.compilation_cache"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
