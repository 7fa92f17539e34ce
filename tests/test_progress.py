"""Progress: a fit run in chunks (to move a progress bar) gives the numbers of one unchunked run,
and Ctrl-C stops cleanly with the history so far. (test_cli checks that `scanfit fit` asks for the bar.)"""

import numpy as np
import pytest

import _io_fits
import scanfit as sf
from scanfit.engine import loop as engine


def _fit(progress, steps, model=None, **kw):
    d = _io_fits.hill()
    return sf.fit(model or sf.MLP(hidden=2), sf.Bernoulli(), d.train.x, d.train.y, valid=(d.valid.x, d.valid.y),
                  optimizer="rmsprop", steps=steps, seed=3, progress=progress, **kw)


# 50 chunks of 2 steps; 49 chunks of 2 for 97 steps, the last one masked, with 2 restarts vmapped
@pytest.mark.parametrize("steps, restarts, model", [(100, 1, sf.MLP(hidden=2)), (97, 2, sf.Linear())])
def test_chunked_equals_unchunked(steps, restarts, model):
    plain = _fit(False, steps, model, restarts=restarts)
    chunked = _fit(True, steps, model, restarts=restarts)
    assert engine._chunk_records(steps, True, None) == 2  # the progress run really is chunked
    assert len(plain.history) == len(chunked.history) == steps
    assert plain.history.equals(chunked.history)  # exact, not approximately
    for k in plain.params:
        np.testing.assert_array_equal(plain.params[k], chunked.params[k])
    assert plain.final == chunked.final and plain.status == chunked.status


class _InterruptingBar:
    """A progress bar whose user presses Ctrl-C after ``after`` chunks."""

    def __init__(self, after):
        self.after, self.calls = after, 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def advance(self, done):
        self.calls += 1
        if self.calls == self.after:
            raise KeyboardInterrupt


def test_ctrl_c_returns_the_history_so_far(monkeypatch):
    full = _fit(False, 100)
    monkeypatch.setattr(engine, "_progress_bar", lambda progress, total: _InterruptingBar(after=3))
    stopped = _fit(True, 100)
    assert stopped.status.code == "interrupted" and "Ctrl-C" in stopped.status.message
    assert stopped.status.steps == 6 and len(stopped.history) == 6  # 3 chunks of 2 steps
    assert stopped.history.equals(full.history.iloc[:6])
    assert all(np.isfinite(np.asarray(v)).all() for v in stopped.params.values())


def test_without_a_bar_a_long_fit_runs_in_chunks_and_ctrl_c_keeps_the_work(monkeypatch):
    """No bar (the API's default): a long fit still runs in chunks, so Ctrl-C between two keeps the history."""
    assert engine._chunk_records(1000, False, None, work=1e9) == 20  # 50 chunks, no masking
    assert engine._chunk_records(1000, False, None, work=1e3) == 1000  # a small fit is one chunk
    assert engine._chunk_records(997, False, None, work=1e9) == 20  # 997 is prime: 50 chunks, the last masked
    full = _fit(False, 100)
    monkeypatch.setattr(engine, "SMALL_WORK", 0.0)
    monkeypatch.setattr(engine, "_progress_bar", lambda progress, total: _InterruptingBar(after=4))
    stopped = _fit(False, 100)
    assert stopped.status.code == "interrupted" and stopped.status.steps == 8
    assert stopped.history.equals(full.history.iloc[:8])


def test_chunks_without_a_bar_give_the_unchunked_numbers(monkeypatch):
    plain = _fit(False, 60)  # a step count no other test here uses, so that the traces below are this test's
    traced = engine.traces()
    monkeypatch.setattr(engine, "SMALL_WORK", 0.0)
    chunked = _fit(False, 60)
    assert engine.traces() == traced + 1  # one compilation serves the 30 chunks of 2 steps
    assert plain.history.equals(chunked.history) and plain.final == chunked.final
    again = _fit(False, 60)
    assert engine.traces() == traced + 1 and again.history.equals(chunked.history)
