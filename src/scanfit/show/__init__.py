"""Show layer: plots and HTML reports of a ``FitResult`` (no maths of their own)."""
