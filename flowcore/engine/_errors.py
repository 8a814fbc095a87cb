"""Exceptions of the public API (a light module: importing it loads no sympy)."""


class ExpressionError(ValueError):
    """An expression flowcore cannot compile (undefined names, non-holomorphic, non-scalar)."""


class DeviceUnavailable(RuntimeError):
    """device='gpu' was asked for where no GPU is usable (CuPy missing, no driver or device)."""
