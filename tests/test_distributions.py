"""results/distributions.py: the tails of scipy.stats' normal (math.erfc, statistics.NormalDist), t and
chi-squared (scipy.special), and a logit's summary in a fresh process that imports none of scipy.stats,
scipy.optimize and scipy.special (issue 14)."""

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
    # the normal's from the standard library: equal to scipy's Cephes to the last few bits, deep tails included
    np.testing.assert_allclose(Normal().sf(X), stats.norm().sf(X), rtol=1e-13, atol=0)
    np.testing.assert_allclose(Normal().cdf(X), stats.norm().cdf(X), rtol=1e-13, atol=0)
    np.testing.assert_allclose(Normal().ppf(Q), stats.norm().ppf(Q), rtol=1e-14, atol=0)
    assert Normal().ppf(0.0) == -np.inf and Normal().ppf(1.0) == np.inf and np.isnan(Normal().ppf(np.nan))
    assert isinstance(Normal().sf(1.96), float) and np.isclose(Normal().ppf(0.975), 1.959963984540054, rtol=1e-15)
    np.testing.assert_allclose(Normal.pdf(X), stats.norm.pdf(X), rtol=1e-15, atol=0)
    for df in (1, 3.5, 30, 1e4):
        np.testing.assert_allclose(StudentT(df).sf(X), stats.t(df).sf(X), rtol=1e-14, atol=0)
        np.testing.assert_allclose(StudentT(df).cdf(X), stats.t(df).cdf(X), rtol=1e-14, atol=0)
        np.testing.assert_allclose(StudentT(df).ppf(Q), stats.t(df).ppf(Q), rtol=1e-14, atol=0)
    for df in (1, 2, 7, 150, 999, 2.5, 1500):  # whole df up to 1000 in closed form, others from scipy.special
        np.testing.assert_allclose(chi2_sf(X, df), stats.chi2.sf(X, df), rtol=1e-12, atol=0)  # 1 for x <= 0
    x = np.linspace(0.01, 80, 300)
    np.testing.assert_allclose(chi2_sf(x, 21), stats.chi2.sf(x, 21), rtol=1e-13, atol=0)
    np.testing.assert_allclose(chi2_sf(x[:, None], [1, 4]), stats.chi2.sf(x[:, None], [1, 4]), rtol=1e-13, atol=0)


def test_a_logit_summary_imports_no_scipy_stats_optimize_or_special():
    code = ("import json, sys, numpy as np, scanfit as sf; rng = np.random.default_rng(0); "
            "x = rng.normal(size=(300, 3)); y = (x @ [1.0, -1.0, 0.5] + rng.logistic(size=300) > 0).astype(float); "
            "r = sf.fit(sf.Linear(), sf.Bernoulli(), x, y, optimizer='newton'); text = str(r.summary()); "
            "print(json.dumps(['P>|z|' in text, sorted(m for m in ('scipy.stats', 'scipy.optimize', 'scipy.special') "
            "if m in sys.modules)]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "SCANFIT_COMPILATION_CACHE": "0"})
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [True, []]
