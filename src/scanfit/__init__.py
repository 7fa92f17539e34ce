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
    from . import datasets, inference, optimizers, plots
    from .config import EarlyStopping, FitConfig
    from .engine import fit
    from .identification import NotIdentifiedError
    from .likelihoods import Bernoulli, Categorical, Gaussian, Likelihood
    from .models import MLP, Function, Linear, Module
    from .persist import ModelFileError, load
    from .result import FitError, FitResult, FitWarning, Status
    from .user_models import Equinox

__version__ = "0.1.0"

# public name -> the module that defines it ("" for a submodule of the same name). Add new public
# names here (and to __all__), not as eager imports: an eager import of JAX makes `scanfit --help` slow.
_LAZY = {
    "datasets": "", "optimizers": "", "plots": "",
    "EarlyStopping": ".config", "FitConfig": ".config",
    "fit": ".engine",
    "Bernoulli": ".likelihoods", "Categorical": ".likelihoods", "Gaussian": ".likelihoods", "Likelihood": ".likelihoods",
    "MLP": ".models", "Function": ".models", "Linear": ".models", "Module": ".models", "Equinox": ".user_models",
    "load": ".persist", "ModelFileError": ".persist",
    "FitError": ".result", "FitResult": ".result", "FitWarning": ".result", "Status": ".result",
    "inference": "", "NotIdentifiedError": ".identification",
}

__all__ = [
    "datasets", "optimizers", "fit", "FitConfig", "EarlyStopping", "FitResult", "Status", "FitError", "FitWarning",
    "Linear", "MLP", "Function", "Module", "Equinox", "Gaussian", "Bernoulli", "Categorical", "Likelihood", "__version__",
    "load", "ModelFileError", "plots", "inference", "NotIdentifiedError",
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'scanfit' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name] or f".{name}", __name__)
    value = module if not _LAZY[name] else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
