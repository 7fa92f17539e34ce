"""Model layer: ``index(params, x)`` for Linear, MLP, user functions and modules."""

from .core import MLP, Function, Linear, Model, Module, as_model, forward, layout

__all__ = ["Model", "Linear", "MLP", "Function", "Module", "as_model", "forward", "layout"]
