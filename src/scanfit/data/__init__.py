"""Data layer: input checks, precision, the notebook's datasets, identification of a design."""

from .checks import FullBatch, as_features, as_target, check_xy

__all__ = ["FullBatch", "as_features", "as_target", "check_xy"]
