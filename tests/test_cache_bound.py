"""The compilation cache's size bound kept by a ledger (engine/cache_bound.py, issue 14): a new entry
does not list the cache, the bound and the least-recently-used order still hold, and an entry
without a last-use stamp does not stop writes."""

from __future__ import annotations

import os
import threading
import time

import pytest

from scanfit.engine import cache, cache_bound

lru_cache = pytest.importorskip("jax._src.lru_cache")
pytest.importorskip("filelock")
from jax._src.compilation_cache import compress_executable  # noqa: E402


def entry(i=0):
    """An entry as JAX writes one (compressed), of about 1000 bytes."""
    return compress_executable(os.urandom(990))


def entries(folder):
    return sorted(p.name[:-len("-cache")] for p in folder.glob("*-cache"))


def total(folder):
    return sum(p.stat().st_size for p in folder.glob("*-cache"))


@pytest.fixture
def bounded(tmp_path, monkeypatch):
    folder = tmp_path / "jax"
    folder.mkdir()
    assert cache_bound.install(folder) and cache_bound.installed(folder)
    listings = []
    real = cache_bound.evict
    monkeypatch.setattr(cache_bound, "evict", lambda f, target: listings.append(target) or real(f, target))
    return folder, lru_cache.LRUCache(str(folder), max_size=10_000), listings


def test_writes_keep_a_ledger_instead_of_listing_the_cache(bounded):
    folder, jax_cache, listings = bounded
    values = [entry() for _ in range(5)]
    for i, value in enumerate(values):
        jax_cache.put(f"k{i}", value)
    assert len(listings) == 1  # the first write found no ledger; the next four only added to it
    assert int((folder / cache_bound.LEDGER).read_text()) == total(folder) == sum(map(len, values))
    assert jax_cache.get("k3") == values[3]


def test_the_bound_holds_and_the_least_recently_used_go_first(bounded):
    folder, jax_cache, listings = bounded
    for i in range(9):
        jax_cache.put(f"k{i}", entry())
        time.sleep(0.002)
    assert jax_cache.get("k0") is not None  # used again: now the most recent
    for i in range(9, 13):
        jax_cache.put(f"k{i}", entry())
        assert total(folder) <= 10_000
    assert entries(folder) == sorted(["k0"] + [f"k{i}" for i in range(5, 13)])  # 1001 bytes each, 9 fit
    assert not (folder / "k1-atime").exists()  # a deleted entry's stamp goes with it
    assert int((folder / cache_bound.LEDGER).read_text()) == total(folder)
    assert len(listings) == 5  # the first write and the four past the bound


def test_an_entry_without_a_stamp_does_not_stop_writes(bounded):
    folder, jax_cache, _ = bounded
    (folder / "unbounded-cache").write_bytes(bytes(9500))  # written by a process with no size bound
    old = time.time() - 3600
    os.utime(folder / "unbounded-cache", (old, old))
    value = entry()
    jax_cache.put("new", value)  # JAX's own listing raises FileNotFoundError on the missing stamp
    assert entries(folder) == ["new"] and total(folder) == len(value)


def test_a_damaged_ledger_is_rebuilt(bounded):
    folder, jax_cache, listings = bounded
    jax_cache.put("a", entry())
    (folder / cache_bound.LEDGER).write_text("not a number")
    jax_cache.put("b", entry())
    assert len(listings) == 2 and int((folder / cache_bound.LEDGER).read_text()) == total(folder)
    old = time.time() - 2 * cache_bound.STALE_SECONDS  # a day without writes: listed again at the next
    os.utime(folder / cache_bound.LEDGER, (old, old))
    jax_cache.put("c", entry())
    assert len(listings) == 3 and int((folder / cache_bound.LEDGER).read_text()) == total(folder)


def test_a_broken_entry_is_removed_unread_and_written_again(bounded):
    folder, jax_cache, _ = bounded
    os.mkfifo(folder / "pipe-cache")  # JAX's own read would block for ever (holding its lock)
    got = []
    reader = threading.Thread(target=lambda: got.append(jax_cache.get("pipe")), daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive() and got == [None] and not (folder / "pipe-cache").exists()
    (folder / "cut-cache").write_bytes(entry()[:300])  # cut short: does not decompress
    (folder / "link-cache").symlink_to("/etc/passwd")
    (folder / "folder-cache").mkdir()
    for key in ("cut", "link", "folder"):
        assert jax_cache.get(key) is None and not os.path.lexists(folder / f"{key}-cache")
    value = entry()
    jax_cache.put("cut", value)  # the next process writes it whole
    assert jax_cache.get("cut") == value


def test_other_caches_keep_jax_s_own_listing(tmp_path, bounded):
    _, _, listings = bounded
    other = tmp_path / "users-own"
    other.mkdir()
    mine = lru_cache.LRUCache(str(other), max_size=10_000)
    for i in range(3):
        mine.put(f"k{i}", entry())
    assert not listings and not (other / cache_bound.LEDGER).exists()
    assert entries(other) == ["k0", "k1", "k2"] and (other / "k0-atime").exists()


def test_clear_resets_the_ledger(tmp_path, monkeypatch):
    monkeypatch.setenv("SCANFIT_CACHE", str(tmp_path / "base"))
    folder = cache.default_dir()
    monkeypatch.setitem(cache._STATE, "dir", str(folder))  # clear() must not reach this process's own cache
    assert cache_bound.install(folder)
    jax_cache = lru_cache.LRUCache(str(folder), max_size=10_000)
    jax_cache.put("k", entry())
    assert (folder / cache_bound.LEDGER).exists()
    (folder / "broken-cache").mkdir()  # a broken entry of any kind goes too
    (folder / "pipe-cache").symlink_to(folder / "nowhere")
    cache.clear()
    assert not list(folder.glob("*-cache")) and not (folder / cache_bound.LEDGER).exists()
    assert not os.path.lexists(folder / "pipe-cache")


def test_the_cache_place_is_taken_as_the_user_means_it(tmp_path, monkeypatch):
    from scanfit.likelihoods import native

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SCANFIT_CACHE", "~/mine")
    assert native.cache_base() == tmp_path / "mine"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCANFIT_CACHE", "relative")
    assert native.cache_base() == tmp_path / "relative"
    with pytest.raises(ValueError, match="empty path"):
        cache.compilation_cache("")
