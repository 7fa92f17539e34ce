"""The compilation cache's size bound kept by a ledger (engine/cache_bound.py, issue 14): a new entry
does not list the cache, the bound and the least-recently-used order still hold, and an entry
without a last-use stamp does not stop writes."""

from __future__ import annotations

import os
import time

import pytest

from scanfit.engine import cache, cache_bound

lru_cache = pytest.importorskip("jax._src.lru_cache")
pytest.importorskip("filelock")


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
    for i in range(5):
        jax_cache.put(f"k{i}", bytes(1000))
    assert len(listings) == 1  # the first write found no ledger; the next four only added to it
    assert int((folder / cache_bound.LEDGER).read_text()) == total(folder) == 5000
    assert jax_cache.get("k3") == bytes(1000)


def test_the_bound_holds_and_the_least_recently_used_go_first(bounded):
    folder, jax_cache, listings = bounded
    for i in range(10):
        jax_cache.put(f"k{i}", bytes(1000))
        time.sleep(0.002)
    jax_cache.get("k0")  # used again: now the most recent
    for i in range(10, 13):
        jax_cache.put(f"k{i}", bytes(1000))
        assert total(folder) <= 10_000
    assert entries(folder) == sorted(["k0"] + [f"k{i}" for i in range(4, 13)])
    assert not (folder / "k1-atime").exists()  # a deleted entry's stamp goes with it
    assert int((folder / cache_bound.LEDGER).read_text()) == total(folder)
    assert len(listings) == 4  # the first write and the three past the bound


def test_an_entry_without_a_stamp_does_not_stop_writes(bounded):
    folder, jax_cache, _ = bounded
    (folder / "unbounded-cache").write_bytes(bytes(9500))  # written by a process with no size bound
    old = time.time() - 3600
    os.utime(folder / "unbounded-cache", (old, old))
    jax_cache.put("new", bytes(1000))  # JAX's own listing raises FileNotFoundError on the missing stamp
    assert entries(folder) == ["new"] and total(folder) == 1000


def test_a_damaged_ledger_is_rebuilt(bounded):
    folder, jax_cache, listings = bounded
    jax_cache.put("a", bytes(1000))
    (folder / cache_bound.LEDGER).write_text("not a number")
    jax_cache.put("b", bytes(2000))
    assert len(listings) == 2 and int((folder / cache_bound.LEDGER).read_text()) == 3000


def test_other_caches_keep_jax_s_own_listing(tmp_path, bounded):
    _, _, listings = bounded
    other = tmp_path / "users-own"
    other.mkdir()
    mine = lru_cache.LRUCache(str(other), max_size=10_000)
    for i in range(3):
        mine.put(f"k{i}", bytes(1000))
    assert not listings and not (other / cache_bound.LEDGER).exists()
    assert entries(other) == ["k0", "k1", "k2"] and (other / "k0-atime").exists()


def test_clear_resets_the_ledger(tmp_path, monkeypatch):
    monkeypatch.setenv("SCANFIT_CACHE", str(tmp_path / "base"))
    folder = cache.default_dir()
    assert cache_bound.install(folder)
    jax_cache = lru_cache.LRUCache(str(folder), max_size=10_000)
    jax_cache.put("k", bytes(1000))
    assert (folder / cache_bound.LEDGER).exists()
    cache.clear()
    assert not entries(folder) and not (folder / cache_bound.LEDGER).exists()
