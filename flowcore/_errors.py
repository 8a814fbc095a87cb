"""Exceptions of the public API (a light module: importing it loads no sympy)."""


class ExpressionError(ValueError):
    """An expression flowcore cannot compile (undefined names, non-holomorphic, non-scalar)."""
