"""flowcore: continuous-time models of gradient descent, with a C (Cython) core.

    import flowcore as fc
    loss = fc.Loss.from_expr("(x**2 - 1)**2 + y**2")
    loss.grad([[0.5, 1.0]])

See ``fc.losses`` for the built-in zoo and ``flowcore.analysis`` for the symbolic layer.
"""
from flowcore.engine._errors import DeviceUnavailable, ExpressionError
from flowcore.engine._loss import Loss
from flowcore.engine._field import Field, SpectralFlow
from flowcore.engine._status import Interrupted, Status
from flowcore.solvers.optim import cluster_points, descend, descend_to_rest, diagnostics
from flowcore.solvers.runs import Rest, Run
from flowcore.solvers.integrate import compiled, solve, Solution
from flowcore.problems.data import DataLoss
from flowcore.problems.sde import SDE, data_noise
from flowcore.solvers.sde_solve import SDESolution, sde_solve
from flowcore.solvers.methods import (GD, HeavyBall, Nesterov, DAL, DALMomentum, DALPerParam, SGD, NGF, PGF, IGR, ThirdOrder,
                              BEA, PF, Adaptive, FixedStep, Dopri5, Dop853, Euler, Midpoint, Heun, RK4, EulerMaruyama,
                              Weak2, RestTest, Compute, method)
from flowcore.engine.krylov import Krylov
from flowcore.problems import losses, flows, models, nn

__all__ = ["Loss", "Field", "SpectralFlow", "Status", "Interrupted", "losses", "flows", "models", "nn", "ExpressionError", "DeviceUnavailable",
           "get_include", "DataLoss", "SDE", "SDESolution", "data_noise", "sde_solve", "descend", "descend_to_rest", "cluster_points", "diagnostics", "Run", "Rest", "solve", "Solution", "compiled",
           "GD", "HeavyBall", "Nesterov", "DAL", "DALMomentum", "DALPerParam", "SGD", "NGF", "PGF", "IGR", "ThirdOrder",
           "BEA", "PF", "Adaptive", "FixedStep", "Dopri5", "Dop853", "Euler", "Midpoint", "Heun", "RK4", "EulerMaruyama",
           "Weak2", "RestTest", "Compute", "Krylov", "method"]
__version__ = "0.1.0"


def get_include():
    """The folder holding ``flowcore_abi.h``, for compiling a loss in C (``cc -I ...``)."""
    from pathlib import Path
    return str(Path(__file__).resolve().parent / "engine" / "include")
