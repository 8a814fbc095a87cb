"""Solvers: the method and setting values, and the drivers that run them over batches of starts —
``solve`` (Runge–Kutta), ``descend`` and ``descend_to_rest`` (maps, SGD), ``sde_solve``. Imports
the problems and the engine."""
