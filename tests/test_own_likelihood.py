"""sf.fit_loglik: the worked examples of docs/own_likelihood.md, run as written and checked against
references (statsmodels OLS and OrderedModel, a SciPy maximization with the exact Hessian), and the
inference options by hand."""

import re
from pathlib import Path

import jax
import numpy as np
import pytest

import scanfit as sf

DOC = Path(__file__).resolve().parents[1] / "docs" / "own_likelihood.md"


@pytest.fixture(scope="module")
def doc():
    """The page's code blocks, run in order in one namespace (so the page and the tests agree)."""
    scope: dict = {}
    for code in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S):
        exec(compile(code, str(DOC), "exec"), scope)  # noqa: S102 - our own page
    return scope


def test_every_example_converges_with_named_natural_parameters(doc):
    for name, rows in (("reg", ["beta0", "beta1", "sigma"]), ("tob", ["const", "educ", "kids", "sigma"]),
                       ("olog", ["income", "age", "cuts[0]", "cuts[1]", "cuts[2]"])):
        r = doc[name]
        assert r.status.code == "converged", (name, r.status)
        assert (r.config.optimizer, r.config.dtype) == ("newton", "float64")
        assert list(r.summary().index) == rows
        assert r.history["train_objective"].is_monotonic_increasing
    assert list(doc["reg"].history.columns) == ["step", "train_objective", "beta0", "beta1", "sigma"]
    assert doc["reg"].params["sigma"].dtype == np.float64


def test_regression_equals_ols_with_sigma_by_maximum_likelihood(doc):
    import statsmodels.api as sm

    reg, table = doc["reg"], doc["table"]
    X = sm.add_constant(table["x"])
    ols = sm.OLS(table["y"], X).fit()
    n, k = len(table["y"]), 2
    sigma = np.sqrt(ols.ssr / n)
    s = reg.summary()
    np.testing.assert_allclose(s["estimate"], [*ols.params, sigma], rtol=1e-8)
    np.testing.assert_allclose(s["std_err"][:2], ols.bse * np.sqrt((n - k) / n), rtol=1e-8)
    assert s.loc["sigma", "std_err"] == pytest.approx(sigma / np.sqrt(2 * n), rel=1e-8)  # exact information
    assert s.attrs["loglik"] == pytest.approx(ols.llf, rel=1e-10)
    assert s.attrs["aic"] == pytest.approx(-2 * ols.llf + 2 * 3, rel=1e-10)
    assert s.attrs["bic"] == pytest.approx(-2 * ols.llf + 3 * np.log(n), rel=1e-10)
    hc0 = reg.summary(cov_type="HC0")["std_err"][:2]
    np.testing.assert_allclose(hc0, ols.get_robustcov_results("HC0").bse, rtol=1e-8)
    np.testing.assert_allclose(reg.summary(cov_type="HC1")["std_err"], reg.summary(cov_type="HC0")["std_err"]
                               * np.sqrt(n / (n - 3)), rtol=1e-10)
    # one-way clusters: statsmodels' CRV1 has (n - 1) / (n - k) besides G / (G - 1); the likelihood's does not
    groups = np.arange(n) % 30
    cl = reg.summary(cov_type="cluster", groups=groups)
    ref = ols.get_robustcov_results("cluster", groups=groups).bse * np.sqrt((n - k) / (n - 1))
    np.testing.assert_allclose(cl["std_err"][:2], ref, rtol=1e-8)
    assert (cl.attrs["n_groups"], cl.attrs["small_sample"]) == (30, "G / (G - 1)")


def test_opg_and_cluster_by_hand(doc):
    """OPG from the regression's analytic natural-scale scores; a group column named by its key."""
    reg, table = doc["reg"], doc["table"]
    b0, b1, sigma = (float(reg.params[k]) for k in ("beta0", "beta1", "sigma"))
    e = table["y"] - b0 - b1 * table["x"]
    scores = np.column_stack([e / sigma**2, e * table["x"] / sigma**2, e**2 / sigma**3 - 1 / sigma])
    np.testing.assert_allclose(reg.cov_params(cov_type="opg").to_numpy(), np.linalg.inv(scores.T @ scores),
                               rtol=1e-7)
    info = np.linalg.inv(reg.cov_params().to_numpy())
    g = np.arange(len(e)) % 7
    u = np.stack([scores[g == j].sum(0) for j in range(7)])
    want = np.linalg.inv(info) @ (u.T @ u) @ np.linalg.inv(info) * 7 / 6
    np.testing.assert_allclose(reg.cov_params(cov_type="cluster", groups=g).to_numpy(), want, rtol=1e-7)


def test_tobit_equals_a_scipy_maximization_with_the_exact_hessian(doc):
    import jax.numpy as jnp
    from jax.scipy.stats import norm
    from scipy import optimize, stats

    X, y = doc["X"].to_numpy(), doc["hours"]
    with jax.enable_x64(True):
        def nll(theta):  # (beta, log sigma), written apart from the page's function
            beta, sigma = theta[:3], jnp.exp(theta[3])
            xb = X @ beta
            cens = norm.logcdf(-xb / sigma)
            dens = -0.5 * ((y - xb) / sigma) ** 2 - jnp.log(sigma) - 0.5 * jnp.log(2 * jnp.pi)
            return -jnp.sum(jnp.where(y > 0, dens, cens))

        value, grad, hess = jax.jit(nll), jax.jit(jax.grad(nll)), jax.jit(jax.hessian(nll))
        fit = optimize.minimize(lambda t: float(value(t)), np.zeros(4), jac=lambda t: np.asarray(grad(t)),
                                hess=lambda t: np.asarray(hess(t)), method="Newton-CG", options={"xtol": 1e-12})
        natural = np.r_[fit.x[:3], np.exp(fit.x[3])]

        def nll_natural(t):
            return nll(jnp.concatenate([t[:3], jnp.log(t[3:])]))

        cov = np.linalg.inv(np.asarray(jax.hessian(nll_natural)(natural)))
    assert fit.success and np.abs(fit.jac).max() < 1e-8
    s = doc["tob"].summary()
    np.testing.assert_allclose(s["estimate"], natural, rtol=1e-6)
    np.testing.assert_allclose(s["std_err"], np.sqrt(np.diag(cov)), rtol=1e-6)
    # the log-likelihood by SciPy's own normal distribution
    xb, sd = X @ natural[:3], natural[3]
    ll = np.where(y > 0, stats.norm.logpdf(y, xb, sd), stats.norm.logcdf(-xb / sd)).sum()
    assert s.attrs["loglik"] == pytest.approx(ll, rel=1e-10)


def test_ordered_logit_equals_statsmodels_ordered_model(doc):
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    ref = OrderedModel(doc["rating"], doc["x"], distr="logit").fit(method="newton", disp=0, maxiter=200)
    # statsmodels fits the first cut and the logs of the gaps (as the 'increasing' constraint):
    # its cut points and their covariance by the delta method
    raw = np.asarray(ref.params)
    cuts = ref.model.transform_threshold_params(raw)[1:-1]
    J = np.eye(len(raw))
    for j in range(1, 3):
        J[2 + j, 2:] = [1.0] + [np.exp(raw[2 + i]) if i <= j else 0.0 for i in range(1, 3)]
    cov = J @ np.asarray(ref.cov_params()) @ J.T
    s = doc["olog"].summary()
    np.testing.assert_allclose(s["estimate"], np.r_[raw[:2], cuts], rtol=1e-6)
    np.testing.assert_allclose(s["std_err"], np.sqrt(np.diag(cov)), rtol=1e-4)
    assert s.attrs["loglik"] == pytest.approx(ref.llf, rel=1e-10)
