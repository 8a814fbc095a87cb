"""Explicit Runge–Kutta methods as data (Butcher tableaux); one loop in _solve.pyx runs them all.

Adding a method means adding a Tableau here. The embedded pairs' coefficients are
taken from scipy.integrate (the Dormand–Prince 5(4) and 8(5,3) tables it ships).
"""
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Tableau:
    """Stages k_i = f(y + h Σ_j A[i, j] k_j), y⁺ = y + h Σ_i b_i k_i.

    ``e`` (length s + 1, the last entry weighting f(y⁺)) gives the embedded error
    estimate h Σ e_i k_i; ``e3`` marks DOP853's combined 5th/3rd-order estimator.
    ``error_order`` q sets the controller exponent 1/(q + 1); ``beta`` the PI term.
    ``P`` [s + 1, p] is a continuous extension (dense output):
    y(t + xh) = y + h Σ_j k_j Σ_q P[j, q] x^(q+1).
    """
    name: str
    A: np.ndarray
    b: np.ndarray
    c: np.ndarray
    order: int
    error_order: int | None = None
    e: np.ndarray | None = None
    e3: np.ndarray | None = None
    P: np.ndarray | None = None
    beta: float = 0.0
    doc: str = field(default="", compare=False)

    @property
    def stages(self):
        return len(self.b)

    @property
    def adaptive(self):
        return self.e is not None


def _fixed(name, A, b, c, order, doc):
    return Tableau(name, np.array(A, float), np.array(b, float), np.array(c, float), order, doc=doc)


def _from_scipy():
    from scipy.integrate._ivp.rk import DOP853, RK45
    dopri5 = Tableau("dopri5", np.pad(RK45.A, ((0, 0), (0, 1))), RK45.B, RK45.C, 5, 4, RK45.E,
                     P=RK45.P, beta=0.04, doc="Dormand–Prince 5(4), FSAL, 4th-order dense output")
    dop853 = Tableau("dop853", DOP853.A[:12, :12], DOP853.B, DOP853.C[:12], 8, 7, DOP853.E5,
                     DOP853.E3, doc="Dormand–Prince 8(5,3)")
    return dopri5, dop853


_dopri5, _dop853 = _from_scipy()
TABLEAUX = {
    "euler": _fixed("euler", [[0]], [1], [0], 1, "explicit Euler"),
    "midpoint": _fixed("midpoint", [[0, 0], [0.5, 0]], [0, 1], [0, 0.5], 2, "explicit midpoint"),
    "heun": _fixed("heun", [[0, 0], [1, 0]], [0.5, 0.5], [0, 1], 2, "Heun (trapezoidal RK2)"),
    "rk4": _fixed("rk4", [[0, 0, 0, 0], [0.5, 0, 0, 0], [0, 0.5, 0, 0], [0, 0, 1, 0]],
                  [1 / 6, 1 / 3, 1 / 3, 1 / 6], [0, 0.5, 0.5, 1], 4, "classical Runge–Kutta"),
    "dopri5": _dopri5,
    "dop853": _dop853,
}
