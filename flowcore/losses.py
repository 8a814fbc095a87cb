"""The built-in loss zoo: closed forms written in C (csrc/zoo_impl.h).

Each loss also carries its sympy expression (``loss.expr``, ``loss.vars``), so the
analysis layer can differentiate it symbolically.
"""
import numpy as np
import sympy as sp

from flowcore._loss import Loss

__all__ = ["quadratic", "quadratic_1d", "double_well", "quartic_1d", "elongated_bowl",
           "round_bowl", "rosenbrock", "ring_saddle"]


def _real(value, label):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{label} must be a real number, got {value!r}") from None
    if not np.isfinite(v):
        raise ValueError(f"{label} must be finite, got {v}")
    return v


def _num(c):
    """A float as an exact sympy number when it is an integer, else a 17-digit Float."""
    return sp.Integer(int(c)) if c == int(c) else sp.Float(c, 17)


def quadratic(A, b=None):
    """E(θ) = ½ θᵀAθ + bᵀθ on R^D, any D.  g = Aθ + b, H = A, T = 0.

    ``A`` [D, D] is symmetrised (½(A + Aᵀ) gives the same E); ``b`` defaults to 0.
    Note the ½: the paper's E = θᵀAθ is ``quadratic(2 A)``.
    """
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
        raise ValueError(f"A must be a square matrix [D, D], got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise ValueError("A must be finite")
    D = A.shape[0]
    b = np.zeros(D) if b is None else np.asarray(b, dtype=np.float64).reshape(-1)
    if b.shape != (D,):
        raise ValueError(f"b must have shape [{D}] to match A, got {b.shape}")
    if not np.all(np.isfinite(b)):
        raise ValueError("b must be finite")
    A = 0.5 * (A + A.T)
    x = sp.symbols(f"x0:{D}") if D > 1 else (sp.Symbol("x"),)
    X = sp.Matrix(x)
    As = sp.Matrix(D, D, [_num(a) for a in A.flat])
    bs = sp.Matrix([_num(c) for c in b])
    expr = sp.expand((X.T * As * X)[0] / 2 + (bs.T * X)[0])
    return Loss._zoo("quadratic", "quadratic", D, np.concatenate([A.ravel(), b]), expr, x)


def quadratic_1d(lam=1.0):
    """E(x) = λx²/2 in one dimension (GD is stable for 0 < hλ < 2)."""
    lam = _real(lam, "lam")
    loss = quadratic([[lam]])
    return Loss._zoo("quadratic", f"quadratic_1d(lam={lam:g})", 1, [lam, 0.0], loss.expr, loss.vars)


def double_well():
    """E(x, y) = (x² − 1)² + y²: minima (±1, 0), saddle (0, 0)."""
    x, y = sp.symbols("x y")
    return Loss._zoo("double_well", "double_well", 2, [0.0], (x**2 - 1)**2 + y**2, (x, y))


def quartic_1d():
    """E(w) = w⁴ − 2w²: minima ±1 (E'' = 8), maximum 0."""
    w = sp.Symbol("w")
    return Loss._zoo("quartic_1d", "quartic_1d", 1, [0.0], w**4 - 2 * w**2, (w,))


def elongated_bowl(kappa=25.0):
    """E(x, y) = x² + κy²: an ill-conditioned bowl (Hessian diag(2, 2κ))."""
    kappa = _real(kappa, "kappa")
    x, y = sp.symbols("x y")
    return Loss._zoo("elongated_bowl", f"elongated_bowl(kappa={kappa:g})", 2, [kappa],
                     x**2 + _num(kappa) * y**2, (x, y))


def round_bowl():
    """E(x, y) = x² + y²."""
    x, y = sp.symbols("x y")
    return Loss._zoo("elongated_bowl", "round_bowl", 2, [1.0], x**2 + y**2, (x, y))


def rosenbrock(a=1.0, b=100.0):
    """E(x, y) = (a − x)² + b(y − x²)²: the banana, minimum (a, a²)."""
    a, b = _real(a, "a"), _real(b, "b")
    x, y = sp.symbols("x y")
    return Loss._zoo("rosenbrock", f"rosenbrock(a={a:g}, b={b:g})", 2, [a, b],
                     (_num(a) - x)**2 + _num(b) * (y - x**2)**2, (x, y))


def ring_saddle():
    """E(a, b) = (a² + b² − 1)² + ab: a ring of near-minima tilted by a saddle term."""
    a, b = sp.symbols("a b")
    return Loss._zoo("ring_saddle", "ring_saddle", 2, [0.0], (a**2 + b**2 - 1)**2 + a * b, (a, b))
