"""Results layer: ``FitResult`` and what reads it: inference and saved models."""
