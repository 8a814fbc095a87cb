"""Runge–Kutta methods as data: one exact Butcher-tableau type for the integrators and the B-series.

A :class:`Tableau` holds A, b, c (and, for embedded pairs, the error weights e and a continuous
extension P) as given: integers and Fractions stay exact, sympy numbers such as √3/6 are allowed
(the Gauss methods), and floats are accepted for methods published only to double precision
(DOP853). It is validated on construction — row sums equal c, Σb = 1, Σe = 0 — exactly when the
entries are exact, to 1e-13 otherwise. The integrator (``fc.solve``) reads the derived float
arrays and runs explicit tableaux only; the B-series code (``flowcore.analysis.bseries``) reads
the exact entries of any tableau. Adding a method means adding a Tableau here.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction as F

import numpy as np

__all__ = ["Tableau", "TABLEAUX"]


def _symbolic(x):
    return type(x).__module__.startswith("sympy")


def _is_zero(value, exact):
    """value == 0: exactly (Fractions, sympy after simplification) or to 1e-13 for floats."""
    if _symbolic(value):
        import sympy as sp
        return sp.simplify(value) == 0
    return value == 0 if exact else abs(float(value)) <= 1e-13


@dataclass(frozen=True)
class Tableau:
    """Stages k_i = f(y + h Σ_j A[i][j] k_j), y⁺ = y + h Σ_i b_i k_i (c_i = Σ_j A[i][j]).

    ``e`` (length s + 1, the last entry weighting f(y⁺)) gives the embedded error estimate
    h Σ e_i k_i; ``e3`` marks DOP853's combined 5th/3rd-order estimator. ``error_order`` q sets
    the step controller's exponent 1/(q + 1), ``beta`` its PI term. ``P`` [s + 1, p] is a
    continuous extension (dense output): y(t + xh) = y + h Σ_j k_j Σ_q P[j][q] x^(q+1).
    """
    A: tuple
    b: tuple
    c: tuple | None = None
    name: str = "tableau"
    order: int | None = None
    error_order: int | None = None
    e: tuple | None = None
    e3: tuple | None = None
    P: tuple | None = None
    beta: float = 0.0

    def __post_init__(self):
        A = tuple(tuple(row) for row in self.A)
        b = tuple(self.b)
        s = len(b)
        if len(A) != s or any(len(row) != s for row in A):
            raise ValueError(f"{self.name}: A must be s×s with s = len(b) = {s}, got rows of lengths "
                             f"{[len(r) for r in A]}")
        c = tuple(sum(row) for row in A) if self.c is None else tuple(self.c)
        if len(c) != s:
            raise ValueError(f"{self.name}: c must have {s} entries, got {len(c)}")
        entries = [v for row in A for v in row] + list(b) + list(c)
        exact = all(isinstance(v, (int, F)) or _symbolic(v) for v in entries)
        for i, row in enumerate(A):
            if not _is_zero(sum(row) - c[i], exact):
                raise ValueError(f"{self.name}: row {i} of A sums to {sum(row)}, not c[{i}] = {c[i]}")
        if not _is_zero(sum(b) - 1, exact):
            raise ValueError(f"{self.name}: the weights b sum to {sum(b)}, not 1")
        for label in ("e", "e3"):
            w = getattr(self, label)
            if w is not None:
                w = tuple(w)
                if len(w) != s + 1:
                    raise ValueError(f"{self.name}: {label} must have s + 1 = {s + 1} entries (the last "
                                     f"weighs f(y⁺)), got {len(w)}")
                if not _is_zero(sum(w), exact and all(isinstance(v, (int, F)) for v in w)):
                    raise ValueError(f"{self.name}: the error weights {label} must sum to 0, got {sum(w)}")
                object.__setattr__(self, label, w)
        if self.P is not None and len(self.P) != s + 1:
            raise ValueError(f"{self.name}: P must have s + 1 = {s + 1} rows, got {len(self.P)}")
        object.__setattr__(self, "A", A)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "c", c)

    @property
    def stages(self):
        return len(self.b)

    @property
    def explicit(self):
        """Strictly lower-triangular A: each stage uses only the ones before it."""
        return all(_is_zero(self.A[i][j], True) for i in range(self.stages) for j in range(i, self.stages))

    @property
    def adaptive(self):
        return self.e is not None

    def floats(self):
        """(A, b, e, e3, P) as float64 arrays for the integrator (None where absent)."""
        arr = lambda x: None if x is None else np.array(x, dtype=float).astype(np.float64)  # noqa: E731
        return arr(self.A), arr(self.b), arr(self.e), arr(self.e3), arr(self.P)


def _rational(rows):
    return tuple(tuple(F(v) for v in row) for row in rows)


# Dormand & Prince (1980), 5(4), FSAL, with Shampine's 4th-order continuous extension.
_DOPRI5 = Tableau(
    A=_rational([[0, 0, 0, 0, 0, 0],
                 [F(1, 5), 0, 0, 0, 0, 0],
                 [F(3, 40), F(9, 40), 0, 0, 0, 0],
                 [F(44, 45), F(-56, 15), F(32, 9), 0, 0, 0],
                 [F(19372, 6561), F(-25360, 2187), F(64448, 6561), F(-212, 729), 0, 0],
                 [F(9017, 3168), F(-355, 33), F(46732, 5247), F(49, 176), F(-5103, 18656), 0]]),
    b=(F(35, 384), F(0), F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84)),
    name="dopri5", order=5, error_order=4, beta=0.04,
    e=(F(-71, 57600), F(0), F(71, 16695), F(-71, 1920), F(17253, 339200), F(-22, 525), F(1, 40)),
    P=_rational([[1, F(-8048581381, 2820520608), F(8663915743, 2820520608), F(-12715105075, 11282082432)],
                 [0, 0, 0, 0],
                 [0, F(131558114200, 32700410799), F(-68118460800, 10900136933), F(87487479700, 32700410799)],
                 [0, F(-1754552775, 470086768), F(14199869525, 1410260304), F(-10690763975, 1880347072)],
                 [0, F(127303824393, 49829197408), F(-318862633887, 49829197408), F(701980252875, 199316789632)],
                 [0, F(-282668133, 205662961), F(2019193451, 616988883), F(-1453857185, 822651844)],
                 [0, F(40617522, 29380423), F(-110615467, 29380423), F(69997945, 29380423)]]))

# Hairer's DOP853 (Hairer, Nørsett & Wanner, Solving ODEs I, §II.10): an 8th-order method with
# 5th- and 3rd-order error estimators, published as decimal constants; double precision here.
_DOP853_A = (
    (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    (0.05260015195876773, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    (0.0197250569845379, 0.0591751709536137, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    (0.02958758547680685, 0.0, 0.08876275643042054, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    (0.2413651341592667, 0.0, -0.8845494793282861, 0.924834003261792, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    (0.037037037037037035, 0.0, 0.0, 0.17082860872947386, 0.12546768756682242, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    (0.037109375, 0.0, 0.0, 0.17025221101954405, 0.06021653898045596, -0.017578125, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    (0.03709200011850479, 0.0, 0.0, 0.17038392571223998, 0.10726203044637328, -0.015319437748624402, 0.008273789163814023, 0.0, 0.0, 0.0, 0.0, 0.0),
    (0.6241109587160757, 0.0, 0.0, -3.3608926294469414, -0.868219346841726, 27.59209969944671, 20.154067550477894, -43.48988418106996, 0.0, 0.0, 0.0, 0.0),
    (0.47766253643826434, 0.0, 0.0, -2.4881146199716677, -0.590290826836843, 21.230051448181193, 15.279233632882423, -33.28821096898486, -0.020331201708508627, 0.0, 0.0, 0.0),
    (-0.9371424300859873, 0.0, 0.0, 5.186372428844064, 1.0914373489967295, -8.149787010746927, -18.52006565999696, 22.739487099350505, 2.4936055526796523, -3.0467644718982196, 0.0, 0.0),
    (2.273310147516538, 0.0, 0.0, -10.53449546673725, -2.0008720582248625, -17.9589318631188, 27.94888452941996, -2.8589982771350235, -8.87285693353063, 12.360567175794303, 0.6433927460157636, 0.0),
)
_DOP853_B = (0.054293734116568765, 0.0, 0.0, 0.0, 0.0, 4.450312892752409, 1.8915178993145003, -5.801203960010585, 0.3111643669578199, -0.1521609496625161, 0.20136540080403034, 0.04471061572777259)
_DOP853_C = (0.0, 0.05260015195876773, 0.0789002279381516, 0.1183503419072274, 0.2816496580927726, 0.3333333333333333, 0.25, 0.3076923076923077, 0.6512820512820513, 0.6, 0.8571428571428571, 1.0)
_DOP853_E5 = (0.01312004499419488, 0.0, 0.0, 0.0, 0.0, -1.2251564463762044, -0.4957589496572502, 1.6643771824549864, -0.35032884874997366, 0.3341791187130175, 0.08192320648511571, -0.022355307863886294, 0.0)
_DOP853_E3 = (-0.18980075407240762, 0.0, 0.0, 0.0, 0.0, 4.450312892752409, 1.8915178993145003, -5.801203960010585, -0.4226823213237919, -0.1521609496625161, 0.20136540080403034, 0.02265179219836082, 0.0)
_DOP853 = Tableau(A=_DOP853_A, b=_DOP853_B, c=_DOP853_C, name="dop853", order=8, error_order=7,
                  e=_DOP853_E5, e3=_DOP853_E3)

TABLEAUX = {
    "euler": Tableau(((0,),), (1,), name="euler", order=1),
    "midpoint": Tableau(((0, 0), (F(1, 2), 0)), (0, 1), name="midpoint", order=2),
    "heun": Tableau(((0, 0), (1, 0)), (F(1, 2), F(1, 2)), name="heun", order=2),
    "rk4": Tableau(((0, 0, 0, 0), (F(1, 2), 0, 0, 0), (0, F(1, 2), 0, 0), (0, 0, 1, 0)),
                   (F(1, 6), F(1, 3), F(1, 3), F(1, 6)), name="rk4", order=4),
    "dopri5": _DOPRI5,
    "dop853": _DOP853,
}
