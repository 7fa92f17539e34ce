"""Data that ships with statsmodels, as module-scoped fixtures for the inference tests (import the
ones a test module uses: ``from _sm_data import spector  # noqa: F401``)."""

import numpy as np
import pytest
import statsmodels.api as sm


@pytest.fixture(scope="module")
def spector():
    """32 students: GRADE on GPA, TUCE, PSI."""
    d = sm.datasets.spector.load_pandas()
    return d.exog, d.endog


@pytest.fixture(scope="module")
def counts():
    """The first 3,000 rows of randhie: mdvis (doctor visits) on the other columns."""
    d = sm.datasets.randhie.load_pandas()
    return d.exog.iloc[:3000], d.endog.iloc[:3000]


@pytest.fixture(scope="module")
def anes():
    """944 voters: party identification PID (7 classes) on five columns."""
    a = sm.datasets.anes96.load_pandas().data
    return a[["logpopul", "selfLR", "age", "educ", "income"]], a["PID"].to_numpy().astype(int)


@pytest.fixture(scope="module")
def fair():
    return sm.datasets.fair.load_pandas().data


def groups(n: int, size: int) -> np.ndarray:
    """Consecutive groups of ``size`` rows."""
    return np.arange(n) // size
