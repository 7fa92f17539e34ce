"""The command line's choices (typer shows them in ``--help`` and in its errors)."""

from __future__ import annotations

from enum import Enum

__all__ = ["ModelKind", "LikelihoodKind", "Link", "Activation", "Optimizer", "Dtype", "CovType"]


class ModelKind(str, Enum):
    linear = "linear"
    mlp = "mlp"


class LikelihoodKind(str, Enum):
    gaussian = "gaussian"
    bernoulli = "bernoulli"
    categorical = "categorical"
    poisson = "poisson"
    negativebinomial = "negativebinomial"


class Link(str, Enum):
    logit = "logit"
    probit = "probit"


class Activation(str, Enum):
    sigmoid = "sigmoid"
    tanh = "tanh"
    relu = "relu"


class Optimizer(str, Enum):
    auto = "auto"
    gd = "gd"
    sgd = "sgd"
    adam = "adam"
    adamw = "adamw"
    rmsprop = "rmsprop"
    adagrad = "adagrad"
    newton = "newton"
    lbfgs = "lbfgs"


class Dtype(str, Enum):
    auto = "auto"
    float32 = "float32"
    float64 = "float64"


class CovType(str, Enum):
    nonrobust = "nonrobust"
    HC0 = "HC0"
    HC1 = "HC1"
    HC2 = "HC2"
    HC3 = "HC3"
    cluster = "cluster"
