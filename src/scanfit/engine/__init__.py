"""Engine layer: the fit's configuration, optimizers and steppers, and the compiled loop."""

from . import cache

cache.configure()  # compiled programs kept across processes (before anything here compiles)

from .loop import fit, traces  # noqa: E402

__all__ = ["fit", "traces"]
