"""Argument checks shared by flowcore and its analysis layer: errors name the argument and the fix."""
import os

import numpy as np

MAX_THREADS = 4096
INT32_MAX = 2**31 - 1


def positive(value, label):
    """value as a finite float > 0, or a TypeError/ValueError naming ``label``."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{label} must be a real number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{label} must be a real number, got {value!r}") from None
    if not (np.isfinite(v) and v > 0):
        raise ValueError(f"{label} must be finite and > 0, got {value!r}")
    return v


def count(value, label, low=1, high=INT32_MAX):
    """value as an int in [low, high], or an error naming ``label``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{label} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{label} must be an integer in [{low}, {high}], got {value!r}")
    return int(value)


_CORES = os.cpu_count() or 1     # (asked once: every kernel call asks, and the call is a system call)


def threads(value, work=None):
    """OpenMP threads to start: ``None`` is all cores; never more than the cores or than
    ``work`` (independent blocks), so a small call starts a small team and a huge request
    cannot exhaust the process."""
    cores = _CORES
    if value is not None:
        value = count(value, "threads (None: all cores)", 1, MAX_THREADS)
    n = cores if value is None else min(value, cores)
    if work is not None:
        n = min(n, max(1, int(work)))
    return n


def names(value, label, choices=None):
    """One name or several as a tuple: ``'pf'`` is one model, not the letters p, f."""
    out = (value,) if isinstance(value, str) else tuple(value)
    if not out:
        raise ValueError(f"{label} is empty: name at least one" + (f" of {', '.join(choices)}" if choices else ""))
    return out
