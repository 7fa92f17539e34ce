"""The fit's lowered programs kept on disk (``scanfit.engine.programs``, issue 14): a second process with
the same ``$SCANFIT_CACHE`` loads them instead of tracing the loop, with bit-identical numbers; a
corrupt entry is ignored (traced and written again, same numbers, no traceback); the key follows the
configuration, the shapes and x64; user code is never kept; both off switches work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import scanfit as sf
from scanfit.data.precision import dtype_scope
from scanfit.engine import programs
from test_compilation_cache import _env

# float32 logit with gd: on the CPU the kept program calls the native kernel (a custom call) when a
# compiler exists; a validation set, so the loop's statistics have both train_ and valid_ columns
FIT = r"""
import json
import numpy as np
import scanfit as sf
from scanfit.engine import loop, programs
d = sf.datasets.hill(n_train=600, n_valid=100, seed=0)
r = sf.fit(sf.Linear(), sf.Bernoulli(), d.train.x, d.train.y, optimizer="gd", learning_rate=0.5, steps=40,
           record_every=4, dtype="float32", valid=(d.valid.x, d.valid.y))
print(json.dumps({"traces": loop.traces(), "loads": programs.loads(), "status": programs.status(),
                  "params": {k: np.asarray(v).tolist() for k, v in r.params.items()},
                  "columns": list(r.history.columns), "history": r.history.to_numpy().tolist(), "final": r.final}))
"""


def _run(env: dict) -> tuple[dict, str]:
    done = subprocess.run([sys.executable, "-c", FIT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def _numbers(out: dict) -> tuple:
    return out["params"], out["columns"], out["history"], out["final"]


def _entries(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache" / "programs").glob("*.prog"))


def test_a_second_process_loads_the_program_and_a_corrupt_one_is_ignored(tmp_path):
    env = _env(tmp_path)
    first, _ = _run(env)
    assert first["status"].startswith("on: ") and first["traces"] >= 1 and first["loads"] == 0
    entries = _entries(tmp_path)
    assert entries
    second, _ = _run(env)
    assert second["traces"] == 0 and second["loads"] >= 1  # the loop was not traced
    assert _numbers(second) == _numbers(first)  # bit for bit (JSON floats round-trip exactly)
    for path in entries:  # one byte flipped in the middle: the checksum no longer holds
        blob = bytearray(path.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        path.write_bytes(bytes(blob))
    third, stderr = _run(env)
    assert third["traces"] >= 1 and third["loads"] == 0 and "Traceback" not in stderr
    assert _numbers(third) == _numbers(first)
    assert _run(env)[0]["loads"] >= 1  # written again, whole
    before = {p: p.stat().st_mtime_ns for p in _entries(tmp_path)}
    off, _ = _run({**env, "SCANFIT_PROGRAM_CACHE": "0"})  # traced as before the cache, the same numbers
    assert off["status"].startswith("off") and off["loads"] == 0 and off["traces"] >= 1
    assert _numbers(off) == _numbers(first)
    assert {p: p.stat().st_mtime_ns for p in _entries(tmp_path)} == before


def test_the_off_switches_keep_no_program(tmp_path, monkeypatch):
    assert programs.status().startswith("off")  # the suite runs with SCANFIT_COMPILATION_CACHE=0 (conftest.py)
    monkeypatch.setenv("SCANFIT_CACHE", str(tmp_path / "cache"))
    d = sf.datasets.hill(n_train=300, seed=0)
    sf.fit(sf.Linear(), sf.Bernoulli(), d.train.x, d.train.y, optimizer="gd", steps=10)
    assert not _entries(tmp_path)
    monkeypatch.setenv("SCANFIT_PROGRAM_CACHE", "0")
    assert programs.status() == "off (SCANFIT_PROGRAM_CACHE=0)"


def _kept(model=None, optimizer="gd", steps=40):
    config = (model or sf.Linear(), sf.Bernoulli(), optimizer, 1e-8, 1, 10, steps, None, False, True, ("x0",), False,
              None, True, None)
    return programs.kept(lambda *a: a, "more", config)


def test_the_key_follows_the_configuration_the_shapes_and_x64():
    leaves = [np.zeros((3, 128), np.float32), np.float32(0.5)]
    tree = jax.tree.structure(tuple(leaves))
    key = _kept()._key(leaves, tree, ())
    assert _kept()._key(leaves, tree, ()) == key
    assert _kept(optimizer="adam")._key(leaves, tree, ()) != key
    assert _kept(steps=80)._key(leaves, tree, ()) != key
    assert _kept(model=sf.MLP(hidden=3))._key(leaves, tree, ()) != key
    wider = [np.zeros((3, 256), np.float32), np.float32(0.5)]
    assert _kept()._key(wider, tree, ()) != key
    with dtype_scope("float64"):
        assert _kept()._key([leaves[0].astype(np.float64), np.float64(0.5)], tree, ()) != key
    with pytest.raises(programs.Uncacheable):  # a user's function: code no key can see
        _kept(model=sf.Function(lambda p, x: p["b"] * x[:, 0], {"b": 0.0}))._key(leaves, tree, ())


def test_an_entry_from_another_key_is_not_loaded(tmp_path):
    header = {"key": "one", "out": ["tuple", ["*"]], "names": [], "native": False}
    exported = jax.export.export(jax.jit(lambda x: (x + 1,)))(np.zeros(2, np.float32)).serialize()
    path = tmp_path / "entry.prog"
    programs._write(path, header, exported)
    assert programs._read(path, "two") is None
    got = programs._read(path, "one")
    assert got is not None and np.asarray(got[0].call(np.ones(2, np.float32))[0]).tolist() == [2.0, 2.0]


def test_scanfit_cache_counts_and_clears_the_programs(tmp_path, monkeypatch):
    from scanfit.engine import cache

    monkeypatch.setenv("SCANFIT_CACHE", str(tmp_path / "cache"))
    folder = cache.programs_dir()
    (folder / "abc.prog").write_bytes(b"x" * 10)
    (folder / "abc.prog123.tmp").write_bytes(b"x")
    (folder / "notes.txt").write_text("mine")
    assert f"lowered programs: {folder} (1 entry, 11 bytes)" in cache.describe()
    assert any(line.startswith("Deleted 2 files of lowered programs") for line in cache.clear())
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_the_least_recently_used_entries_go_past_the_bound(tmp_path, monkeypatch):
    exported = jax.export.export(jax.jit(lambda x: (x + 1,)))(np.zeros(2, np.float32)).serialize()
    header = {"key": "k", "out": ["tuple", ["*"]], "names": [], "native": False}
    paths = [tmp_path / f"{i}.prog" for i in range(3)]
    programs._write(paths[0], header, exported)
    os.utime(paths[0], (1, 1))  # the least recently used
    monkeypatch.setattr(programs, "MAX_BYTES", 2 * paths[0].stat().st_size)
    for path in paths[1:]:
        programs._write(path, header, exported)
    assert [p.exists() for p in paths] == [False, True, True]


def test_an_entry_that_is_not_a_regular_file_is_ignored_at_once(tmp_path):
    """A FIFO or a symbolic link where an entry should be: no program, and no wait for a writer."""
    import os
    import threading

    from scanfit.engine import programs

    fifo, link = tmp_path / "a.prog", tmp_path / "b.prog"
    os.mkfifo(fifo)
    (tmp_path / "real").write_bytes(programs.MAGIC + b"\0" * 64)
    link.symlink_to(tmp_path / "real")
    got = {}
    reader = threading.Thread(target=lambda: got.update(fifo=programs._read(fifo, "k"), link=programs._read(link, "k")),
                              daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive() and got == {"fifo": None, "link": None}
