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
