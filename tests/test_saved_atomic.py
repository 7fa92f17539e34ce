"""Saving over a saved model: the path holds the old model or the new one at every instant (a
failure or kill injected at each step of the save), and concurrent writers take turns instead of
mixing two saves or failing with raw errors."""

import os
import subprocess
import sys
import textwrap
import threading

import _saved
import numpy as np
import pytest

import scanfit as sf
from scanfit.results import model_files, persist


class Killed(BaseException):
    """A failure that no ``except Exception`` catches, as close to a kill as a test gets in-process."""


@pytest.fixture(scope="module")
def hill():
    return _saved.hill()


@pytest.fixture(scope="module")
def two():
    """Two different models of one shape: ``old`` and ``new``."""
    return _saved.fits()


def _which(path, two, hill):
    """'old' or 'new': which of the two models ``sf.load(path)`` predicts."""
    got = sf.load(path).predict(hill.valid.x)
    for name, r in zip(("old", "new"), two):
        if np.array_equal(got, r.predict(hill.valid.x)):
            return name
    raise AssertionError("the loaded model is neither the old nor the new one")


def _crash_at(monkeypatch, point, path):
    """Make one step of a save raise Killed."""
    def crash(*args, **kwargs):
        raise Killed(point)

    if point == "writing model.json":
        real = persist._write
        monkeypatch.setattr(persist, "_write", lambda d, name, data: crash() if name == persist.META_FILE
                            else real(d, name, data))
    elif point == "the swap":
        monkeypatch.setattr(model_files, "exchange", crash)
    elif point == "after the swap":  # the directory fsync that follows the swap
        real_fsync = model_files.fsync_dir
        monkeypatch.setattr(model_files, "fsync_dir", lambda d: crash() if d == path.parent else real_fsync(d))
    elif point in ("moving the old model aside", "moving the new model in"):  # systems without the swap
        monkeypatch.setattr(model_files, "exchange", lambda a, b: False)
        real_rename, calls = os.rename, []

        def rename(a, b):
            calls.append(a)
            if len(calls) == (1 if point == "moving the old model aside" else 2):
                crash()
            return real_rename(a, b)
        monkeypatch.setattr(model_files.os, "rename", rename)


def _leftovers(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir() if p.name != "m")


POINTS = [("writing model.json", "old"), ("the swap", "old"), ("after the swap", "new"),
          ("moving the old model aside", "old"), ("moving the new model in", "old")]


@pytest.mark.parametrize("point, expect, killed", [(p, e, False) for p, e in POINTS] +
                         [(p, e, True) for p, e in POINTS if p != "moving the new model in"])
def test_a_failure_at_each_step_leaves_a_loadable_model(tmp_path, monkeypatch, two, hill, point, expect, killed):
    """``killed``: nothing cleans up after the failure (no rmtree, the lock file stays), as after SIGKILL."""
    old, new = two
    path = old.save(tmp_path / "m", summary="")
    _crash_at(monkeypatch, point, path)
    if killed:
        monkeypatch.setattr(model_files.shutil, "rmtree", lambda *a, **k: None)
        monkeypatch.setattr(model_files.os, "unlink", lambda *a, **k: None)
    with pytest.raises(Killed, match=point):
        new.save(path, summary="")
    monkeypatch.undo()
    assert _which(path, two, hill) == expect
    if not killed:
        assert _leftovers(tmp_path) == []
    new.save(path, summary="")  # the next save clears what a killed one left
    assert _which(path, two, hill) == "new" and _leftovers(tmp_path) == []


KILL_BETWEEN_RENAMES = """
import os, signal, sys
import scanfit as sf
from scanfit.results import model_files
r = sf.load(sys.argv[1])
model_files.exchange = lambda a, b: False  # a system without the one-step swap
real, calls = os.rename, []
def rename(a, b):
    calls.append(a)
    if len(calls) == 2:  # the old model is aside, the new one not yet in
        os.kill(os.getpid(), signal.SIGKILL)
    return real(a, b)
os.rename = rename
r.save(sys.argv[2], summary="")
"""


def test_a_kill_between_the_renames_of_the_fallback_names_the_old_model(tmp_path, two, hill):
    """Without a one-step swap (not Linux, or a file system without RENAME_EXCHANGE) there is one
    instant without the path; a process killed there leaves a load that says where the old model is."""
    old, new = two
    path = old.save(tmp_path / "m", summary="")
    src = new.save(tmp_path.parent / f"{tmp_path.name}-src", summary="")
    done = subprocess.run([sys.executable, "-c", KILL_BETWEEN_RENAMES, str(src), str(path)], timeout=300)
    assert done.returncode == -9
    aside = [p for p in tmp_path.iterdir() if p.name.endswith(".old")]
    assert len(aside) == 1 and not path.exists()
    with pytest.raises(sf.ModelFileError, match=rf"No saved model at .*m'.*interrupted left the previous model in "
                                                rf".*{aside[0].name}'.*rename it back .*or save again"):
        sf.load(path)
    os.rename(aside[0], path)  # the fix the message gives
    assert _which(path, two, hill) == "old"
    new.save(path, summary="")
    assert _which(path, two, hill) == "new" and _leftovers(tmp_path) == []


def test_the_swap_is_one_step_here(tmp_path, monkeypatch, two):
    """On this Linux file system the replacement is renameat2(RENAME_EXCHANGE), not two renames."""
    results = []
    real = model_files.exchange
    monkeypatch.setattr(model_files, "exchange", lambda a, b: results.append(real(a, b)) or results[-1])
    path = two[0].save(tmp_path / "m", summary="")
    two[1].save(path, summary="")
    if sys.platform.startswith("linux"):
        assert results == [True]


def test_a_stale_lock_file_does_not_block(tmp_path, two, hill):
    path = two[0].save(tmp_path / "m", summary="")
    (tmp_path / ".m.lock").write_text("")  # left by a killed save: its flock died with it
    two[1].save(path, summary="")
    assert _which(path, two, hill) == "new" and _leftovers(tmp_path) == []


def test_a_held_lock_times_out_with_a_clear_error(tmp_path, two):
    path = two[0].save(tmp_path / "m", summary="")
    with model_files.locked(path):
        with pytest.raises(TimeoutError, match=r"another process has been saving to it .*Wait for it to finish"):
            with model_files.locked(path, timeout=0.2):
                pass


def test_threads_saving_to_one_path_while_another_reads(tmp_path, two, hill):
    path = two[0].save(tmp_path / "m", summary="")
    betas = [np.asarray(r.params["beta1"]) for r in two]
    errors, stop = [], threading.Event()

    def write(r):
        try:
            for _ in range(6):
                r.save(path, summary="")
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    def read():
        try:
            while not stop.is_set():
                beta = np.asarray(persist.read(path).params["beta1"])
                assert any(np.array_equal(beta, b) for b in betas)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    writers = [threading.Thread(target=write, args=(r,)) for r in two]
    reader = threading.Thread(target=read)
    for t in (*writers, reader):
        t.start()
    for t in writers:
        t.join(120)
    stop.set()
    reader.join(60)
    assert errors == []
    assert _which(path, two, hill) in ("old", "new") and _leftovers(tmp_path) == []


def test_processes_saving_to_one_path(tmp_path, two, hill):
    sources = [r.save(tmp_path / f"src{i}", summary="") for i, r in enumerate(two)]
    target = tmp_path / "m"
    script = textwrap.dedent("""
        import sys
        import scanfit as sf
        r = sf.load(sys.argv[1])
        for _ in range(10):
            r.save(sys.argv[2], summary="")
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(s), str(target)], stderr=subprocess.PIPE, text=True)
             for s in sources]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert _which(target, two, hill) in ("old", "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "src0", "src1"]
