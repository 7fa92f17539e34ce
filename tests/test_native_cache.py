"""The native kernel's cache loads only what scanfit built: a library planted under the cached name
(its constructor would write a marker file) is rebuilt over, never dlopen'ed, and a cache directory
that others can write to, or that another user owns, is refused."""

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scanfit.likelihoods import native

COMPILER = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
pytestmark = pytest.mark.skipif(COMPILER is None, reason="no C++ compiler")

PLANTED = r"""
#include <cstdio>
__attribute__((constructor)) static void planted() {
    if (FILE *f = std::fopen(MARKER, "w")) { std::fputs("the planted library ran", f); std::fclose(f); }
}
extern "C" int scanfit_bernoulli_pass() { return 0; }
"""


@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
    """The kernel as scanfit compiles it (built once; rebuilds in these tests copy it)."""
    out = tmp_path_factory.mktemp("genuine") / "kernel.so"
    native._compile(COMPILER, out)
    return out.read_bytes()


@pytest.fixture
def cache(tmp_path, monkeypatch, genuine):
    """A fresh $SCANFIT_CACHE, a fast compiler (copies the genuine build) and a record of every dlopen
    with the bytes it opened."""
    monkeypatch.setenv("SCANFIT_CACHE", str(tmp_path / "cache"))
    compiled = []

    def fast_compile(compiler, target, source=native.SOURCE):
        compiled.append(target)
        Path(target).write_bytes(genuine)
    monkeypatch.setattr(native, "_compile", fast_compile)
    opened, real_cdll = [], ctypes.CDLL

    def cdll(name, *args, **kwargs):
        if name is not None:
            opened.append(Path(name).read_bytes())
        return real_cdll(name, *args, **kwargs)
    monkeypatch.setattr(ctypes, "CDLL", cdll)
    lib = tmp_path / "cache" / f"bernoulli-{native._key(COMPILER)}.so"
    return {"lib": lib, "sidecar": lib.with_name(lib.name + ".sha256"), "compiled": compiled, "opened": opened,
            "marker": tmp_path / "marker", "tmp": tmp_path}


def _plant(c):
    """Compile a library whose constructor writes the marker, and put it under the cached name."""
    src = c["tmp"] / "planted.cc"
    src.write_text(PLANTED)
    out = c["tmp"] / "planted.so"
    subprocess.run([COMPILER, "-shared", "-fPIC", f'-DMARKER="{c["marker"]}"', str(src), "-o", str(out)], check=True)
    c["lib"].parent.mkdir(mode=0o700, exist_ok=True)
    shutil.copyfile(out, c["lib"])
    return out.read_bytes()


def _loaded_genuine(c, genuine, built):
    lib, path, was_built = native.load_library(COMPILER)
    assert path == c["lib"] and was_built is built
    assert lib.scanfit_bernoulli_pass  # the kernel's entry point
    assert c["opened"] and all(b == genuine for b in c["opened"])
    assert not c["marker"].exists(), "the planted library's code ran"
    assert c["lib"].read_bytes() == genuine
    assert c["sidecar"].read_text().strip() == hashlib.sha256(genuine).hexdigest()


def test_builds_then_loads_from_the_cache_by_digest(cache, genuine):
    _loaded_genuine(cache, genuine, built=True)
    assert len(cache["compiled"]) == 1
    assert oct(cache["lib"].parent.stat().st_mode & 0o777) == "0o700"
    cache["opened"].clear()
    _loaded_genuine(cache, genuine, built=False)
    assert len(cache["compiled"]) == 1  # the cached library, checked, not rebuilt


def test_a_planted_library_without_a_digest_is_rebuilt_not_loaded(cache, genuine):
    planted = _plant(cache)
    assert planted != genuine
    _loaded_genuine(cache, genuine, built=True)


def test_a_planted_library_under_an_old_digest_is_rebuilt_not_loaded(cache, genuine):
    native.load_library(COMPILER)  # a genuine build and its digest
    _plant(cache)  # then the library is swapped
    cache["opened"].clear()
    _loaded_genuine(cache, genuine, built=True)


@pytest.mark.parametrize("tamper", ["digest", "digest-garbage", "link", "writable", "missing-digest"])
def test_anything_but_the_recorded_bytes_means_rebuild(cache, genuine, tamper):
    native.load_library(COMPILER)
    lib, side = cache["lib"], cache["sidecar"]
    if tamper == "digest":
        side.write_text("0" * 64 + "\n")
    elif tamper == "digest-garbage":
        side.write_bytes(b"\0" * 10_000)
    elif tamper == "link":  # the same bytes through a link elsewhere: not followed
        elsewhere = cache["tmp"] / "elsewhere.so"
        shutil.copyfile(lib, elsewhere)
        lib.unlink()
        lib.symlink_to(elsewhere)
    elif tamper == "writable":
        lib.chmod(0o666)
    else:
        side.unlink()
    cache["opened"].clear()
    _loaded_genuine(cache, genuine, built=True)


def test_a_cache_others_can_write_is_refused(cache):
    cache["lib"].parent.mkdir(mode=0o700)
    cache["lib"].parent.chmod(0o777)
    with pytest.raises(RuntimeError, match=r"cache directory .*cache' can be written by other users \(mode 777\).*"
                                           r"remove it .*or set SCANFIT_CACHE"):
        native.load_library(COMPILER)
    assert cache["opened"] == [] and cache["compiled"] == []


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="giving a directory away needs root")
def test_a_cache_of_another_user_is_refused(cache):
    cache["lib"].parent.mkdir(mode=0o700)
    os.chown(cache["lib"].parent, 12345, -1)
    with pytest.raises(RuntimeError, match=r"belongs to user id 12345, not to you; set SCANFIT_CACHE"):
        native.load_library(COMPILER)
    assert cache["opened"] == [] and cache["compiled"] == []


def test_an_own_cache_open_to_reading_is_used_and_left_as_it_is(cache, genuine):
    cache["lib"].parent.mkdir(mode=0o750)
    cache["lib"].parent.chmod(0o2750)  # a group's shared directory: read by the group, written by its owner
    _loaded_genuine(cache, genuine, built=True)
    assert cache["lib"].parent.stat().st_mode & 0o7777 == 0o2750


def test_a_refused_cache_leaves_the_jax_kernels_with_a_reason(cache, monkeypatch):
    cache["lib"].parent.mkdir(mode=0o700)
    cache["lib"].parent.chmod(0o777)
    monkeypatch.setattr(native, "_REGISTERED", {})
    native.bernoulli_target.cache_clear()
    try:
        assert native.bernoulli_target() is False
        assert "can be written by other users" in native.status() and "pure-JAX" in native.status()
    finally:
        native.bernoulli_target.cache_clear()


def test_a_library_rewritten_in_place_after_loading_does_not_fault_the_process(tmp_path):
    """What is loaded is a private copy of the verified bytes: rewriting the cached file in place afterwards
    (another process, a planted file) cannot change or fault the running code (a library mapped from a file
    truncated under it dies with SIGBUS: the whole test suite once did, at exit)."""
    code = textwrap.dedent("""
        import glob, os
        from scanfit.likelihoods import native
        lib = native.glm_library()
        assert lib is not None, native.GLM_STATUS[0]
        for path in glob.glob(os.path.join(os.environ["SCANFIT_CACHE"], "glm-*.so")):
            with open(path, "wb") as f:  # in place: the same file, truncated
                f.write(b"not a library")
        print(lib.scanfit_glm_size(20, 1, 1, 1, 1, 1))
    """)
    env = {**os.environ, "SCANFIT_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(1 + 4 + 21 + 2 * 21 * 21 + 1)]
