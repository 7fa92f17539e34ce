"""Engine layer: the fit's configuration, optimizers and steppers, and the compiled loop."""

from .loop import fit, traces

__all__ = ["fit", "traces"]
