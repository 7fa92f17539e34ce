"""The compilation cache's store and size bound (engine/cache_store.py, engine/cache_bound.py;
issues 14 and 27): a new entry does not list the cache, the bound and the least-recently-used order
hold, only recorded entries are ever deleted, every entry is signed and a bad one is removed with
one warning, the directory is used by descriptor, and a directory holding other files is refused."""

from __future__ import annotations

import fcntl
import os
import threading
import time
import warnings
import zlib

import jax
import pytest

from scanfit.engine import cache, cache_bound, cache_store
from scanfit.engine.cache_store import CacheWarning, Refused

ENV = "SCANFIT_COMPILATION_CACHE"


def entry():
    """An entry as JAX writes one (compressed), of about 1000 bytes."""
    return zlib.compress(os.urandom(990))


def names(folder):
    return sorted(p.name[:-len("-cache")] for p in folder.glob("*-cache"))


def total(folder):
    return sum(p.stat().st_size for p in folder.glob("*-cache"))


@pytest.fixture
def bound(monkeypatch):
    """The size bound JAX's setting gives the store (10,000 bytes here)."""
    old = jax.config.jax_compilation_cache_max_size
    jax.config.update("jax_compilation_cache_max_size", 10_000)
    monkeypatch.setattr(cache_store, "_WARNED", set())  # each test sees its own first warning
    yield
    jax.config.update("jax_compilation_cache_max_size", old)


@pytest.fixture
def store(tmp_path, bound, monkeypatch):
    folder = tmp_path / "jax"
    got = cache_store.claim(folder, ENV)
    listings = []
    real = cache_bound.evict
    monkeypatch.setattr(cache_bound, "evict", lambda f, target: listings.append(target) or real(f, target))
    yield folder, got, listings
    got.close()


def test_writes_keep_a_ledger_instead_of_listing_the_cache(store):
    folder, kept, listings = store
    values = [entry() for _ in range(5)]
    for i, value in enumerate(values):
        kept.put(f"k{i}", value)
    assert len(listings) == 1  # the first write found no ledger; the next four only added to it
    assert int((folder / cache_bound.LEDGER).read_text()) == total(folder)
    assert sorted(cache_bound.recorded(kept.fd)) == [f"k{i}-cache" for i in range(5)]
    assert kept.get("k3") == values[3] and kept.get("missing") is None
    assert (folder / cache_store.KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert not list(folder.glob("*-atime"))  # the last use is the entry's modification time


def test_the_bound_holds_and_the_least_recently_used_go_first(store):
    folder, kept, listings = store
    for i in range(9):
        kept.put(f"k{i}", entry())
        time.sleep(0.002)
    assert kept.get("k0") is not None  # used again: now the most recent
    for i in range(9, 13):
        kept.put(f"k{i}", entry())
        assert total(folder) <= 10_000
    assert names(folder) == sorted(["k0"] + [f"k{i}" for i in range(5, 13)])  # 1045 bytes each, 9 fit
    assert int((folder / cache_bound.LEDGER).read_text()) == total(folder)
    assert sorted(cache_bound.recorded(kept.fd)) == sorted(f"{k}-cache" for k in names(folder))
    assert len(listings) == 5  # the first write and the four past the bound


def test_a_damaged_ledger_is_rebuilt(store):
    folder, kept, listings = store
    kept.put("a", entry())
    (folder / cache_bound.LEDGER).write_text("not a number")
    kept.put("b", entry())
    assert len(listings) == 2 and int((folder / cache_bound.LEDGER).read_text()) == total(folder)


def test_only_recorded_entries_are_ever_deleted(store):
    folder, kept, _ = store
    mine = {"results-cache": b"user", "run-atime": b"user", "notes.txt": b"user"}
    for name, text in mine.items():
        (folder / name).write_bytes(text)
    os.mkfifo(folder / "pipe-cache")
    for i in range(14):  # past the bound: eviction
        kept.put(f"k{i}", entry())
    with pytest.warns(CacheWarning, match="did not write it; delete it yourself"):
        assert kept.get("results") is None and kept.get("pipe") is None  # not scanfit's: a miss, left alone
    kept.put("results", entry())  # never written over
    assert cache_bound.forget(kept.fd)[0] == 9
    assert sorted(p.name for p in folder.iterdir() if p.name != ".lockfile") == sorted(
        [*mine, "pipe-cache", cache_store.KEY_FILE])
    assert (folder / "results-cache").read_bytes() == b"user"


def test_a_changed_or_broken_entry_is_removed_with_one_warning(store):
    folder, kept, _ = store
    value = entry()
    for key in ("flip", "cut", "link", "pipe", "folder", "swap"):
        kept.put(key, value)
    blob = (folder / "flip-cache").read_bytes()
    head = len(cache_store.MAGIC) + 32
    program = bytearray(zlib.decompress(blob[head:]))
    program[100] ^= 1  # the program's bytes changed, the compressor's checksum made to agree
    (folder / "flip-cache").write_bytes(blob[:head] + zlib.compress(bytes(program)))
    (folder / "cut-cache").write_bytes((folder / "cut-cache").read_bytes()[:300])
    (folder / "swap-cache").write_bytes((folder / "flip-cache").read_bytes())  # another entry's signature
    for key, broken in (("link", lambda p: p.symlink_to("/etc/passwd")), ("pipe", os.mkfifo), ("folder", os.mkdir)):
        (folder / f"{key}-cache").unlink()
        broken(folder / f"{key}-cache")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reader = threading.Thread(target=lambda: [kept.get(k) for k in ("pipe",)], daemon=True)
        reader.start()
        reader.join(10)  # a pipe is never read (it would block, holding the lock)
        assert not reader.is_alive()
        for key in ("flip", "cut", "link", "folder", "swap"):
            assert kept.get(key) is None and not os.path.lexists(folder / f"{key}-cache")
    assert [str(w.message) for w in caught if w.category is CacheWarning] == [
        f"scanfit's compilation cache removed the entry '{folder / 'pipe-cache'}': it is not a regular file of "
        f"yours; the program is compiled again (further bad entries are removed without a warning)"]
    kept.put("cut", value)  # written whole again
    assert kept.get("cut") == value


def test_the_directory_is_used_by_descriptor_after_a_swap(store, tmp_path):
    folder, kept, _ = store
    from jax._src import compilation_cache as jax_cache

    cache_store.attach(kept, str(folder))
    assert jax_cache.get_file_cache(str(folder))[0] is kept  # JAX's cache for that directory is the store
    other = tmp_path / "other"
    other.mkdir()
    assert jax_cache.get_file_cache(str(other))[0].__class__.__name__ == "LRUCache"  # any other: JAX's own
    folder.rename(tmp_path / "moved")
    (tmp_path / "evil").mkdir()
    folder.symlink_to(tmp_path / "evil")  # the path now leads somewhere else
    value = entry()
    kept.put("k", value)
    assert kept.get("k") == value
    assert (tmp_path / "moved" / "k-cache").exists() and not list((tmp_path / "evil").iterdir())


def test_a_failure_to_write_warns_once_and_turns_the_store_off(store, monkeypatch):
    folder, kept, _ = store

    def full(*args):
        raise OSError(28, "No space left on device", str(folder / cache_bound.JOURNAL))

    monkeypatch.setattr(cache_bound, "record", full)
    with pytest.warns(CacheWarning, match="could not write: No space left on device") as caught:
        kept.put("a", entry())
        kept.put("b", entry())
        assert kept.get("a") is None
    assert len(caught) == 1 and kept.off and names(folder) == []


def test_a_lock_held_too_long_is_a_miss(store, monkeypatch):
    folder, kept, _ = store
    monkeypatch.setattr(cache_store, "LOCK_SECONDS", 0.05)
    with open(folder / cache_store.LOCK_FILE, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.warns(CacheWarning, match="held the lock"):
            assert kept.get("a") is None


@pytest.mark.parametrize("case", ["user files", "open key", "damaged key"])
def test_a_directory_that_is_not_scanfits_is_refused_and_left_as_it_was(tmp_path, case):
    folder = tmp_path / "mine"
    folder.mkdir(mode=0o700)
    if case == "user files":
        for name in ("run-atime", "meeting-atime", "results-cache"):
            (folder / name).write_text("user")
        match = r"holds 3 file\(s\) scanfit did not write \('meeting-atime', 'results-cache', 'run-atime'\); .*" \
                "set SCANFIT_COMPILATION_CACHE to a new or empty directory"
    else:
        cache_store.claim(folder, ENV).close()
        key = folder / cache_store.KEY_FILE
        if case == "open key":
            key.chmod(0o644)
            match = "can be read by other users or is not yours \\(mode 644\\); make it private \\(chmod 600\\)"
        else:
            key.write_bytes(key.read_bytes()[:-10])
            match = "is damaged; delete the directory"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(Refused, match=match):
        cache_store.claim(folder, ENV)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_an_empty_directory_is_claimed_and_an_older_scanfits_default_one_replaced(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o700)
    cache_store.claim(empty, ENV).close()
    assert sorted(p.name for p in empty.iterdir()) == [cache_store.KEY_FILE]
    monkeypatch.setenv("SCANFIT_CACHE", str(tmp_path / "base"))
    old = cache.default_dir()
    for name in ("a-cache", "a-atime", ".lockfile", cache_bound.LEDGER):
        (old / name).write_bytes(b"old")
    cache_store.claim(old, ENV, legacy=True).close()
    assert sorted(p.name for p in old.iterdir()) == [cache_store.KEY_FILE]
    (old / cache_store.KEY_FILE).unlink()
    (old / "notes.txt").write_text("mine")  # not an older scanfit's: refused there too
    with pytest.raises(Refused, match="notes.txt"):
        cache_store.claim(old, ENV, legacy=True)


def test_clear_deletes_only_what_the_store_recorded(tmp_path, bound, monkeypatch):
    monkeypatch.setenv("SCANFIT_CACHE", str(tmp_path / "base"))
    folder = cache.default_dir()
    monkeypatch.setitem(cache._STATE, "dir", str(folder))  # clear() must not reach this process's own cache
    kept = cache_store.claim(folder, ENV, legacy=True)
    kept.put("k", entry())
    (folder / "results-cache").write_text("user")
    lines = cache.clear()
    assert f"Deleted 1 files of compiled programs (1.0 KiB) in {folder}" in lines
    assert sorted(p.name for p in folder.iterdir() if p.name != ".lockfile") == [cache_store.KEY_FILE,
                                                                                 "results-cache"]
    kept.close()


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
