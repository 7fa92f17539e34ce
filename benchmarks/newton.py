"""Exact maximum likelihood on the notebook's hyperplane logit: scanfit "newton" (and "lbfgs")
against scikit-learn and statsmodels, all measured in one run.

    python benchmarks/newton.py            # 7 repeats each (about a minute on 2 cores)
    python benchmarks/newton.py --quick    # 3 repeats

Data: sf.datasets.hyperplane(seed=0), N=10,000, dim=100, float64 everywhere.
Rows (seconds are the median of the repeats after a first call, so scanfit's compilation is out):
  scanfit newton   sf.fit(Linear(), Bernoulli(), optimizer="newton", dtype="float64", tol=1e-8, steps=100)
  scanfit lbfgs    the same with optimizer="lbfgs"
  sklearn lbfgs    LogisticRegression(C=1e6, solver="lbfgs", tol=1e-8, max_iter=10_000), default BLAS threads
  sklearn 1 thread the same inside threadpoolctl.threadpool_limits(1)
  statsmodels      Logit(y, [1, x]).fit(method="newton", tol=1e-8)  (its default)
Each fit's time covers its whole call (input checks included). "gap" is the relative shortfall of
the fit's mean log-likelihood from the best of all rows; "ratio" is time over scikit-learn's (default threads).
scanfit's Newton forms X~'WX~ from the feature-major x with its products in float32 (gradient,
line search and stopping rule in float64), then a Cholesky solve; see src/scanfit/second_order.py.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings

import numpy as np

import scanfit as sf


def timed(fn, repeats):
    """(median seconds after the first call, first call seconds, last result)."""
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), first, out


def mean_loglik(x, y, b0, b1):
    eta = x @ b1 + b0
    return float(np.mean(np.where(y, -np.logaddexp(0, -eta), -np.logaddexp(0, eta))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 7")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 7
    data = sf.datasets.hyperplane(seed=0)  # N=10,000 train, dim=100
    x, y = data.train.x, data.train.y.astype(bool)

    rows = {}
    for opt in ("newton", "lbfgs"):
        def run(opt=opt):
            return sf.fit(sf.Linear(), sf.Bernoulli(), x, y, optimizer=opt, dtype="float64", tol=1e-8, steps=100)

        sec, first, r = timed(run, repeats)
        p = r.params
        rows[f"scanfit {opt}"] = dict(seconds=sec, first=first, loglik=mean_loglik(x, y, p["beta0"], p["beta1"]),
                                      iterations=len(r.history) - 1, status=r.status.code)

    from sklearn.linear_model import LogisticRegression

    def sk():
        return LogisticRegression(C=1e6, solver="lbfgs", tol=1e-8, max_iter=10_000).fit(x, y)

    sec, first, m = timed(sk, repeats)
    rows["sklearn lbfgs"] = dict(seconds=sec, first=first, loglik=mean_loglik(x, y, m.intercept_[0], m.coef_[0]),
                                 iterations=int(m.n_iter_[0]), status="")
    try:  # BLAS threads fight other processes on a busy machine; one thread shows the other side
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            sec, first, m = timed(sk, repeats)
        rows["sklearn 1 thread"] = dict(seconds=sec, first=first, iterations=int(m.n_iter_[0]), status="",
                                        loglik=mean_loglik(x, y, m.intercept_[0], m.coef_[0]))
    except ImportError:
        pass

    import statsmodels.api as sm

    xc = sm.add_constant(x)

    def smfit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sm.Logit(y.astype(float), xc).fit(disp=0, tol=1e-8, maxiter=100)

    sec, first, s = timed(smfit, repeats)
    rows["statsmodels newton"] = dict(seconds=sec, first=first, loglik=mean_loglik(x, y, s.params[0], s.params[1:]),
                                      iterations=int(s.mle_retvals["iterations"]),
                                      status="converged" if s.mle_retvals["converged"] else "not converged")

    best = max(r["loglik"] for r in rows.values())
    base = rows["sklearn lbfgs"]["seconds"]
    print(f"hyperplane logit, N={len(y):,}, dim={x.shape[1]}, float64; median of {repeats} after a first call; "
          f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores")
    print(f"{'fit':<20}{'seconds':>9}{'first':>8}{'ratio':>7}{'iters':>7}  {'mean loglik':>19}{'gap':>10}  status")
    for name, r in rows.items():
        gap = (best - r["loglik"]) / abs(best)
        print(f"{name:<20}{r['seconds']:>9.4f}{r['first']:>8.2f}{r['seconds'] / base:>7.2f}{r['iterations']:>7d}  "
              f"{r['loglik']:>19.15f}{gap:>10.1e}  {r['status']}")
    newton = rows["scanfit newton"]
    print(f"newton / sklearn = {newton['seconds'] / base:.2f} (target <= 0.5); "
          f"newton objective gap to statsmodels = {(rows['statsmodels newton']['loglik'] - newton['loglik']) / abs(best):.1e} "
          f"(target <= 1e-8)")


if __name__ == "__main__":
    main()
