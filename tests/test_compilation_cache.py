"""The persistent compilation cache (``scanfit.engine.cache``): fresh processes with a temporary
``$SCANFIT_CACHE`` load what an earlier one compiled, with the same numbers, the native kernel included;
two processes may fill an empty cache at once; a cache the user set for JAX is left alone;
``scanfit predict`` compiles no fit. ``tests/test_cache_cli.py``: ``scanfit cache`` and ``sf.compilation_cache``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# A Bernoulli logit in float32 with gd: on the CPU its loop calls the native kernel (when a compiler exists).
FIT = r"""
import json, sys
import numpy as np
import jax
events = {}
jax.monitoring.register_event_listener(lambda name, **kw: events.__setitem__(name, events.get(name, 0) + 1))
import scanfit as sf
from scanfit.engine import cache
from scanfit.likelihoods import native
d = sf.datasets.hill(n_train=2000, n_valid=200, seed=0)
r = sf.fit(sf.Linear(), sf.Bernoulli(), d.train.x, d.train.y, optimizer="gd", learning_rate=0.5, steps=200,
           dtype="float32", valid=(d.valid.x, d.valid.y))
print(json.dumps({"events": events, "params": {k: np.asarray(v).tolist() for k, v in r.params.items()},
                  "history": r.history.to_numpy().tolist(), "native": native.status(), "status": cache.status(),
                  "dir": jax.config.jax_compilation_cache_dir}))
"""
HITS, MISSES = "/jax/compilation_cache/cache_hits", "/jax/compilation_cache/cache_misses"


def _env(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCANFIT_", "JAX_"))}
    return {**env, "SCANFIT_CACHE": str(tmp_path / "cache"), **extra}


def _python(code: str, env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "compilation cache" not in done.stderr, done.stderr[-3000:]  # JAX's warnings on a bad read or write
    return json.loads(done.stdout.strip().splitlines()[-1])


def _entries(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache" / "jax-cache").glob("*/*-cache"))


def test_a_second_process_loads_the_cached_bernoulli_fit_with_the_same_numbers(tmp_path):
    from jax._src.compilation_cache import compress_executable, decompress_executable

    from scanfit.engine import cache_store

    env = _env(tmp_path)
    first = _python(FIT, env)
    assert first["status"].startswith("on: ") and first["dir"].startswith(str(tmp_path / "cache" / "jax-cache"))
    assert first["events"].get(MISSES, 0) > 0 and _entries(tmp_path)
    second = _python(FIT, env)
    assert second["events"].get(HITS, 0) >= first["events"][MISSES]  # everything the first one wrote, loaded
    assert second["events"].get(MISSES, 0) == 0  # nothing compiled again
    assert second["params"] == first["params"] and second["history"] == first["history"]
    if shutil.which("c++") or shutil.which("g++") or os.environ.get("CXX"):
        # the loop called the kernel in both: its FFI target is registered while tracing, before the load
        assert first["native"].startswith(("compiled", "cached")) and second["native"].startswith("cached")
    mode = (tmp_path / "cache" / "jax-cache").stat().st_mode
    assert mode & 0o777 == 0o700 and (Path(first["dir"]).stat().st_mode & 0o777) == 0o700
    # issue 27: each program's bytes changed, the compressor's checksum made to agree: none is loaded
    head = len(cache_store.MAGIC) + 32
    for entry in _entries(tmp_path):
        blob = entry.read_bytes()
        program = bytearray(decompress_executable(blob[head:]))
        program[len(program) // 2] ^= 1
        entry.write_bytes(blob[:head] + compress_executable(bytes(program)))
    done = subprocess.run([sys.executable, "-c", FIT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("CacheWarning: scanfit's compilation cache removed the entry") == 1, done.stderr[-3000:]
    third = json.loads(done.stdout.strip().splitlines()[-1])
    assert third["params"] == first["params"] and third["events"].get(HITS, 0) == 0  # all compiled again
    store = cache_store.existing(Path(first["dir"]), "SCANFIT_CACHE")
    assert all(store.get(e.name[:-len("-cache")]) for e in _entries(tmp_path))  # and written again, whole
    store.close()


def test_two_processes_fill_an_empty_cache_at_once(tmp_path):
    from jax._src.compilation_cache import decompress_executable

    from scanfit.engine import cache_store, programs

    env = _env(tmp_path)
    procs = [subprocess.Popen([sys.executable, "-c", FIT], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
        assert "compilation cache" not in err, err[-3000:]
    a, b = (json.loads(out.strip().splitlines()[-1]) for out, _ in outs)
    assert a["params"] == b["params"] and a["history"] == b["history"]
    entries = _entries(tmp_path)
    assert entries
    store = cache_store.existing(entries[0].parent, "SCANFIT_COMPILATION_CACHE")
    for entry in entries:  # every entry whole: its signature holds and it decompresses
        assert len(decompress_executable(store.get(entry.name[:-len("-cache")]))) > 4
    store.close()
    kept = sorted((tmp_path / "cache" / "programs").glob("*.prog"))  # the lowered programs (engine/programs.py)
    assert kept and not list((tmp_path / "cache" / "programs").glob("*.tmp"))
    for entry in kept:  # each whole: its checksum holds
        blob, n = entry.read_bytes(), len(programs.MAGIC)
        assert blob.startswith(programs.MAGIC) and hashlib.sha256(blob[n + 32:]).digest() == blob[n:n + 32]


CONFIG = r"""
import json, jax
{before}
import scanfit.engine
from scanfit.engine import cache
print(json.dumps({{"dir": jax.config.jax_compilation_cache_dir, "status": cache.status(),
                  "min": jax.config.jax_persistent_cache_min_compile_time_secs,
                  "max": jax.config.jax_compilation_cache_max_size}}))
"""


@pytest.mark.parametrize("how", ["environment", "config"])
def test_a_cache_the_user_set_for_jax_is_left_alone(tmp_path, how):
    mine = str(tmp_path / "mine")
    if how == "environment":
        got = _python(CONFIG.format(before=""), _env(tmp_path, JAX_COMPILATION_CACHE_DIR=mine))
    else:
        got = _python(CONFIG.format(before=f"jax.config.update('jax_compilation_cache_dir', {mine!r})"),
                      _env(tmp_path))
    assert got["dir"] == mine and got["min"] == 1.0 and got["max"] == -1  # JAX's own defaults, untouched
    assert got["status"].startswith("JAX's own cache")
    assert not (tmp_path / "cache" / "jax-cache").exists()


def test_the_environment_turns_it_off_or_moves_it(tmp_path):
    off = _python(CONFIG.format(before=""), _env(tmp_path, SCANFIT_COMPILATION_CACHE="0"))
    assert off["dir"] is None and off["status"] == "off (SCANFIT_COMPILATION_CACHE=0)" and off["min"] == 1.0
    assert not (tmp_path / "cache").exists()
    moved = _python(CONFIG.format(before=""), _env(tmp_path, SCANFIT_COMPILATION_CACHE=str(tmp_path / "elsewhere")))
    assert moved["dir"] == str(tmp_path / "elsewhere") and moved["min"] == 0.0 and moved["max"] == 1 << 30
    assert (tmp_path / "elsewhere").stat().st_mode & 0o777 == 0o700


def test_compilation_cache_moves_it_turns_it_off_and_refuses_a_shared_directory(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    got = _python(r"""
import json, jax
from scanfit.engine.cache import compilation_cache
out = {"default": str(compilation_cache())}
out["moved"] = str(compilation_cache(%r))
out["min_on"] = jax.config.jax_persistent_cache_min_compile_time_secs
out["off"] = compilation_cache(None)
out["min_off"] = jax.config.jax_persistent_cache_min_compile_time_secs
out["max_off"] = jax.config.jax_compilation_cache_max_size
try:
    compilation_cache(%r)
except RuntimeError as err:
    out["refused"] = str(err)
out["after"] = compilation_cache()
print(json.dumps(out))
""" % (str(tmp_path / "moved"), str(shared)), _env(tmp_path))
    assert got["default"].startswith(str(tmp_path / "cache" / "jax-cache"))
    assert got["moved"] == str(tmp_path / "moved") and got["min_on"] == 0.0
    assert got["off"] is None and got["min_off"] == 1.0 and got["max_off"] == -1  # JAX's settings given back
    assert "can be written by other users" in got["refused"] and got["after"] is None


def test_predict_on_a_saved_model_compiles_no_fit(tmp_path, caplog):
    import logging

    import jax
    from typer.testing import CliRunner

    import scanfit as sf
    from scanfit import engine
    from scanfit.cli import app

    d = sf.datasets.hill(n_train=200, n_valid=20, seed=1)
    sf.fit(sf.Linear(), sf.Bernoulli(), d.train.x, d.train.y, optimizer="newton").save(tmp_path / "m")
    table = tmp_path / "t.csv"
    table.write_text("x0,x1\n" + "".join(f"{a},{b}\n" for a, b in d.valid.x[:5]))
    before = engine.traces()
    with jax.log_compiles(True), caplog.at_level(logging.WARNING):
        result = CliRunner().invoke(app, ["predict", str(tmp_path / "m"), str(table)])
    assert result.exit_code == 0, result.output
    assert engine.traces() == before  # no fit loop traced
    compiled = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Compiling ")]
    assert not [m for m in compiled if m.startswith(("Compiling jit(init)", "Compiling jit(chunk)",
                                                     "Compiling jit(evaluate)"))], compiled
