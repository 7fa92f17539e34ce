"""scanfit: fit likelihood models with compiled JAX loops, full learning paths and inference.

>>> import scanfit as sf
>>> data = sf.datasets.linear(seed=0)
>>> result = sf.fit(sf.Linear(), sf.Gaussian(), data.train.x, data.train.y, steps=500, learning_rate=0.01)
"""

from . import datasets, optimizers
from .config import EarlyStopping, FitConfig
from .engine import fit
from .likelihoods import Bernoulli, Categorical, Gaussian, Likelihood
from .models import MLP, Function, Linear, Module
from .result import FitError, FitResult, FitWarning, Status

__version__ = "0.1.0"

__all__ = [
    "datasets", "optimizers", "fit", "FitConfig", "EarlyStopping", "FitResult", "Status", "FitError", "FitWarning",
    "Linear", "MLP", "Function", "Module", "Gaussian", "Bernoulli", "Categorical", "Likelihood", "__version__",
]
