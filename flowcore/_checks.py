"""Argument checks shared by the Python entry points (errors name the argument)."""
import numpy as np


def positive(value, label):
    """value as a finite float > 0, or a TypeError/ValueError naming ``label``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{label} must be a real number, got {value!r}") from None
    if not (np.isfinite(v) and v > 0):
        raise ValueError(f"{label} must be finite and > 0, got {value!r}")
    return v
