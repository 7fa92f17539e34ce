"""The speed guard CI runs: interleaved ratios of two hot paths against their references, failing only on
a gross regression (a ratio more than twice its target), so that a noisy machine never blocks a landing.

    python benchmarks/guard.py            # about 30 s on 2 cores; exit status 1 on a gross regression

Pairs (each pair runs the two sides back to back, so both see the same machine; the ratio is the
median over the pairs, after a first call of each side that compiles):
  logit (b)   the notebook's logit (benchmarks/engine.py): hyperplane 10,000 x 100, 5,000 "gd" steps at
              2.0 with statistics every step, against the floor (a bare jitted loop of the two
              matrix-vector products a step needs). Target 1.2x, fails above 2.4x.
  newton      sf.fit(Linear(), Bernoulli()) with optimizer="newton" on the same data (float64, tol 1e-8),
              against scikit-learn's LogisticRegression(C=1e6, lbfgs, tol 1e-8). Target 0.5x, fails above
              1.0x.
Both scanfit sides include the checks after a fit (the separation check's linear program once cost
1.1 s of a fit here, unseen: this guard exists to see such a thing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))


SETTLE = 0.25  # seconds of rest before each timed run: BLAS's and XLA's threads spin for a while after a call,
# and the other side's first milliseconds then fought them (scikit-learn ran 2-10x slower right after a JAX fit)


def paired(fn, ref, pairs: int) -> list[float]:
    """Per-pair ratios ``fn / ref`` of alternated runs, after a first call of each."""
    fn()
    ref()
    ratios = []
    for _ in range(pairs):
        seconds = []
        for side in (fn, ref):
            time.sleep(SETTLE)
            t0 = time.perf_counter()
            side()
            seconds.append(time.perf_counter() - t0)
        ratios.append(seconds[0] / seconds[1])
    return ratios


def judge(name: str, ratios: list[float], target: float) -> bool:
    """Print the row and say whether it passes: the median ratio at most twice the target."""
    median = statistics.median(ratios)
    ok = median <= 2 * target
    print(f"{name:<12}{median:>8.2f}x  target {target:.2f}x  fails above {2 * target:.2f}x  "
          f"pairs {min(ratios):.2f}-{max(ratios):.2f}  {'ok' if ok else 'GROSS REGRESSION'}")
    return ok


def workloads():
    """``[(name, fn, ref, target)]`` for the two hot paths."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import scanfit as sf

    sys.path.insert(0, HERE)
    from engine import logit_floor

    d = sf.datasets.hyperplane(seed=0)
    x32, y = d.train.x.astype(np.float32), d.train.y
    steps = 5000
    floor = logit_floor(jnp.asarray(x32.T.copy()), jnp.asarray(y, jnp.float32), steps)

    def fit_b():
        return sf.fit(sf.Linear(), sf.Bernoulli(), x32, y, optimizer="gd", learning_rate=2.0, steps=steps, seed=0)

    x, yb = d.train.x, d.train.y.astype(bool)

    def newton():
        return sf.fit(sf.Linear(), sf.Bernoulli(), x, yb, optimizer="newton", dtype="float64", tol=1e-8, steps=100)

    from sklearn.linear_model import LogisticRegression

    def sklearn():
        return LogisticRegression(C=1e6, solver="lbfgs", tol=1e-8, max_iter=10_000).fit(x, yb)

    del jax
    return [("logit (b)", fit_b, floor, 1.2), ("newton", newton, sklearn, 0.5)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5, help="alternated pairs per row (default 5)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    ok = True
    print(f"speed guard: median of {args.pairs} interleaved pairs, {os.cpu_count()} cores")
    for name, fn, ref, target in workloads():
        ok &= judge(name, paired(fn, ref, args.pairs), target)
    print(f"guard took {time.perf_counter() - t0:.0f} s: {'passed' if ok else 'FAILED (a ratio above twice its target)'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
