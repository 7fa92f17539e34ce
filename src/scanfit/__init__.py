"""scanfit: fit likelihood models with compiled JAX loops, full learning paths and inference.

>>> import scanfit as sf
>>> data = sf.datasets.linear(seed=0)
>>> result = sf.fit(sf.Linear(), sf.Gaussian(), data.train.x, data.train.y, steps=500, learning_rate=0.01)

Names are imported on first use (PEP 562), so that ``import scanfit`` and ``scanfit --help``
do not pay for importing JAX; ``sf.fit`` and ``from scanfit import fit`` work as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the table below imports on demand
    from .api import fit, fit_loglik
    from .data import datasets
    from .data.sources import Parquet
    from .engine import distributed
    from .data.identification import NotIdentifiedError
    from .engine import optimizers
    from .engine.cache import compilation_cache
    from .engine.config import EarlyStopping, FitConfig
    from .engine.penalty import ElasticNet
    from .engine.outcome import FitError, FitWarning, Status
    from .likelihoods import Bernoulli, Categorical, Gaussian, Likelihood, NegativeBinomial, Poisson
    from .models import MLP, Function, Linear, Module
    from .models.equinox import Equinox
    from .results import inference
    from .results.inference import lr_test
    from .results.persist import ModelFileError
    from .results.result import FitResult, load
    from .show import plots

__version__ = "0.1.0"

# public name -> (module, attribute); attribute None means the module itself. Add new public names
# here (and to __all__), not as eager imports: an eager import of JAX makes `scanfit --help` slow.
_LAZY = {
    "datasets": (".data.datasets", None), "optimizers": (".engine.optimizers", None),
    "plots": (".show.plots", None), "inference": (".results.inference", None),
    "EarlyStopping": (".engine.config", "EarlyStopping"), "FitConfig": (".engine.config", "FitConfig"),
    "ElasticNet": (".engine.penalty", "ElasticNet"),
    "fit": (".api", "fit"), "fit_loglik": (".api", "fit_loglik"), "compilation_cache": (".engine.cache", "compilation_cache"),
    "Bernoulli": (".likelihoods", "Bernoulli"), "Categorical": (".likelihoods", "Categorical"),
    "Gaussian": (".likelihoods", "Gaussian"), "Likelihood": (".likelihoods", "Likelihood"),
    "Poisson": (".likelihoods", "Poisson"), "NegativeBinomial": (".likelihoods", "NegativeBinomial"),
    "MLP": (".models", "MLP"), "Function": (".models", "Function"), "Linear": (".models", "Linear"),
    "Module": (".models", "Module"), "Equinox": (".models.equinox", "Equinox"),
    "load": (".results.result", "load"), "ModelFileError": (".results.persist", "ModelFileError"),
    "FitResult": (".results.result", "FitResult"),
    "FitError": (".engine.outcome", "FitError"), "FitWarning": (".engine.outcome", "FitWarning"),
    "Status": (".engine.outcome", "Status"),
    "NotIdentifiedError": (".data.identification", "NotIdentifiedError"),
    "lr_test": (".results.inference", "lr_test"),
    "Parquet": (".data.sources", "Parquet"), "distributed": (".engine.distributed", None),
}

__all__ = [
    "datasets", "optimizers", "fit", "fit_loglik", "FitConfig", "EarlyStopping", "FitResult", "Status", "FitError", "FitWarning",
    "Linear", "MLP", "Function", "Module", "Equinox", "Gaussian", "Bernoulli", "Categorical", "Poisson",
    "NegativeBinomial", "Likelihood", "ElasticNet", "__version__",
    "load", "ModelFileError", "plots", "inference", "NotIdentifiedError", "lr_test", "compilation_cache",
    "Parquet", "distributed",
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'scanfit' has no attribute {name!r}")
    where, attribute = _LAZY[name]
    module = importlib.import_module(where, __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
