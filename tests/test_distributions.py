"""results/distributions.py: the tails of scipy.stats' normal, t and chi-squared from scipy.special, and a
logit's summary in a fresh process that imports neither scipy.stats nor scipy.optimize (issue 14)."""

import json
import os
import subprocess
import sys

import numpy as np
from scipy import stats

from scanfit.results.distributions import Normal, StudentT, chi2_sf

X = np.array([-40.0, -8.5, -1.96, -0.3, 0.0, 1e-12, 0.7, 1.96, 3.3, 12.0, np.inf, np.nan])
Q = np.array([1e-300, 1e-9, 0.025, 0.3, 0.5, 0.8, 0.975, 1 - 1e-12])


def test_the_tails_are_scipy_stats_numbers():
    np.testing.assert_array_equal(Normal().sf(X), stats.norm().sf(X))
    np.testing.assert_array_equal(Normal().cdf(X), stats.norm().cdf(X))
    np.testing.assert_array_equal(Normal().ppf(Q), stats.norm().ppf(Q))
    np.testing.assert_allclose(Normal.pdf(X), stats.norm.pdf(X), rtol=1e-15, atol=0)
    for df in (1, 3.5, 30, 1e4):
        np.testing.assert_allclose(StudentT(df).sf(X), stats.t(df).sf(X), rtol=1e-14, atol=0)
        np.testing.assert_allclose(StudentT(df).cdf(X), stats.t(df).cdf(X), rtol=1e-14, atol=0)
        np.testing.assert_allclose(StudentT(df).ppf(Q), stats.t(df).ppf(Q), rtol=1e-14, atol=0)
    for df in (1, 2, 7, 150):
        np.testing.assert_array_equal(chi2_sf(X, df), stats.chi2.sf(X, df))  # 1 for x <= 0, as scipy.stats


def test_a_logit_summary_imports_neither_scipy_stats_nor_optimize():
    code = ("import json, sys, numpy as np, scanfit as sf; rng = np.random.default_rng(0); "
            "x = rng.normal(size=(300, 3)); y = (x @ [1.0, -1.0, 0.5] + rng.logistic(size=300) > 0).astype(float); "
            "r = sf.fit(sf.Linear(), sf.Bernoulli(), x, y, optimizer='newton'); text = str(r.summary()); "
            "print(json.dumps(['P>|z|' in text, sorted(m for m in ('scipy.stats', 'scipy.optimize') "
            "if m in sys.modules)]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "SCANFIT_COMPILATION_CACHE": "0"})
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [True, []]
