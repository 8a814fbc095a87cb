"""flowcore: continuous-time models of gradient descent, with a C (Cython) core.

    import flowcore as fc
    loss = fc.Loss.from_expr("(x**2 - 1)**2 + y**2")
    loss.grad([[0.5, 1.0]])

See ``fc.losses`` for the built-in zoo and ``flowcore.analysis`` for the symbolic layer.
"""
from flowcore._errors import DeviceUnavailable, ExpressionError
from flowcore._loss import Loss
from flowcore._field import Field, SpectralFlow
from flowcore._status import Interrupted, Status
from flowcore.optim import cluster_points, descend, descend_to_rest, diagnostics, Rest, Run
from flowcore.integrate import compiled, solve, Solution
from flowcore.data import DataLoss
from flowcore.sde import SDE, SDESolution, data_noise, sde_solve
from flowcore.methods import (GD, HeavyBall, Nesterov, DAL, DALMomentum, DALPerParam, SGD, NGF, PGF, IGR, ThirdOrder,
                              BEA, PF, Adaptive, FixedStep, Dopri5, Dop853, Euler, Midpoint, Heun, RK4, EulerMaruyama,
                              Weak2, RestTest, Compute, method)
from flowcore import losses, flows, models, nn

__all__ = ["Loss", "Field", "SpectralFlow", "Status", "Interrupted", "losses", "flows", "models", "nn", "ExpressionError", "DeviceUnavailable",
           "get_include", "DataLoss", "SDE", "SDESolution", "data_noise", "sde_solve", "descend", "descend_to_rest", "cluster_points", "diagnostics", "Run", "Rest", "solve", "Solution", "compiled",
           "GD", "HeavyBall", "Nesterov", "DAL", "DALMomentum", "DALPerParam", "SGD", "NGF", "PGF", "IGR", "ThirdOrder",
           "BEA", "PF", "Adaptive", "FixedStep", "Dopri5", "Dop853", "Euler", "Midpoint", "Heun", "RK4", "EulerMaruyama",
           "Weak2", "RestTest", "Compute", "method"]
__version__ = "0.1.0"


def get_include():
    """The folder holding ``flowcore_abi.h``, for compiling a loss in C (``cc -I ...``)."""
    from pathlib import Path
    return str(Path(__file__).resolve().parent / "include")
