"""Problems: the losses (the C zoo, sympy-compiled, JAX networks, Python callables), losses over
data, the continuous models of GD and their fields, and SDEs. Imports the engine only."""
