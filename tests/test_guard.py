"""benchmarks/guard.py's verdict: a gross regression (a ratio above twice its target) fails, noise does not."""

import importlib.util
import os
import time

import scanfit as sf
from scanfit.data import identification

_PATH = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "guard.py")
_spec = importlib.util.spec_from_file_location("guard", _PATH)
guard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(guard)


def test_guard_fails_a_deliberately_slowed_fit_and_passes_the_same_fit(monkeypatch):
    d = sf.datasets.hyperplane(n_train=2000, n_valid=10, dim=10, seed=0)
    real = identification.check_separation
    slow = {"on": False, "seconds": 0.0}

    def check(*args, **kwargs):  # the check after a fit, slowed to cost four fits more (as the LP once did)
        if slow["on"]:
            time.sleep(slow["seconds"])
        return real(*args, **kwargs)

    monkeypatch.setattr(identification, "check_separation", check)

    def fit():
        return sf.fit(sf.Linear(), sf.Bernoulli(), d.train.x, d.train.y, optimizer="newton")

    def slowed():
        slow["on"] = True
        try:
            return fit()
        finally:
            slow["on"] = False

    fit()
    t0 = time.perf_counter()
    fit()
    slow["seconds"] = 4 * (time.perf_counter() - t0)
    assert guard.judge("same fit", guard.paired(fit, fit, 3), 1.2)  # a ratio near 1 passes a 1.2x target
    ratios = guard.paired(slowed, fit, 3)
    assert not guard.judge("slowed fit", ratios, 1.2)
