"""The built-in loss zoo: closed forms written in C (engine/include/flowcore/zoo_impl.h).

Each loss also carries its sympy expression (``loss.expr``, ``loss.vars``), so the
analysis layer can differentiate it symbolically; it is built on first use, so that
``import flowcore`` does not import sympy.
"""
import numpy as np

from flowcore.engine._loss import Loss
from flowcore.problems.data import DataLoss

__all__ = ["quadratic", "quadratic_1d", "double_well", "quartic_1d", "elongated_bowl",
           "round_bowl", "rosenbrock", "ring_saddle", "linear_regression", "logistic_regression"]


def _real(value, label):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{label} must be a real number, got {value!r}") from None
    if not np.isfinite(v):
        raise ValueError(f"{label} must be finite, got {v}")
    return v


def _symbols(names):
    import sympy as sp
    return sp.symbols(names)


def _quadratic_expr(A, b):
    from flowcore.engine.expressions import exact_number   # (sympy: loaded on first use)
    import sympy as sp
    D = A.shape[0]
    x = sp.symbols(f"x0:{D}") if D > 1 else (sp.Symbol("x"),)
    X = sp.Matrix(x)
    As = sp.Matrix(D, D, [exact_number(a) for a in A.flat])
    bs = sp.Matrix([exact_number(c) for c in b])
    return sp.expand((X.T * As * X)[0] / 2 + (bs.T * X)[0]), x


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
    return Loss._zoo("quadratic", "quadratic", D, np.concatenate([A.ravel(), b]),
                     lambda: _quadratic_expr(A, b))


def quadratic_1d(lam=1.0):
    """E(x) = λx²/2 in one dimension (GD is stable for 0 < hλ < 2)."""
    lam = _real(lam, "lam")
    return Loss._zoo("quadratic", f"quadratic_1d(lam={lam:g})", 1, [lam, 0.0],
                     lambda: _quadratic_expr(np.array([[lam]]), np.zeros(1)))


def double_well():
    """E(x, y) = (x² − 1)² + y²: minima (±1, 0), saddle (0, 0)."""
    def symbolic():
        x, y = _symbols("x y")
        return (x**2 - 1)**2 + y**2, (x, y)
    return Loss._zoo("double_well", "double_well", 2, [0.0], symbolic)


def quartic_1d():
    """E(w) = w⁴ − 2w²: minima ±1 (E'' = 8), maximum 0."""
    def symbolic():
        (w,) = _symbols("w,")
        return w**4 - 2 * w**2, (w,)
    return Loss._zoo("quartic_1d", "quartic_1d", 1, [0.0], symbolic)


def elongated_bowl(kappa=25.0):
    """E(x, y) = x² + κy²: an ill-conditioned bowl (Hessian diag(2, 2κ))."""
    kappa = _real(kappa, "kappa")

    def symbolic():
        from flowcore.engine.expressions import exact_number   # (sympy: loaded on first use)
        x, y = _symbols("x y")
        return x**2 + exact_number(kappa) * y**2, (x, y)
    return Loss._zoo("elongated_bowl", f"elongated_bowl(kappa={kappa:g})", 2, [kappa], symbolic)


def round_bowl():
    """E(x, y) = x² + y²."""
    def symbolic():
        x, y = _symbols("x y")
        return x**2 + y**2, (x, y)
    return Loss._zoo("elongated_bowl", "round_bowl", 2, [1.0], symbolic)


def rosenbrock(a=1.0, b=100.0):
    """E(x, y) = (a − x)² + b(y − x²)²: the banana, minimum (a, a²)."""
    a, b = _real(a, "a"), _real(b, "b")

    def symbolic():
        from flowcore.engine.expressions import exact_number   # (sympy: loaded on first use)
        x, y = _symbols("x y")
        return (exact_number(a) - x)**2 + exact_number(b) * (y - x**2)**2, (x, y)
    return Loss._zoo("rosenbrock", f"rosenbrock(a={a:g}, b={b:g})", 2, [a, b], symbolic)


def ring_saddle():
    """E(a, b) = (a² + b² − 1)² + ab: a ring of near-minima tilted by a saddle term."""
    def symbolic():
        a, b = _symbols("a b")
        return (a**2 + b**2 - 1)**2 + a * b, (a, b)
    return Loss._zoo("ring_saddle", "ring_saddle", 2, [0.0], symbolic)


# ------------------------------------------------------------------ losses over data
def _design(X, y):
    X = np.asarray(X, dtype=np.float64)
    X = X[:, None] if X.ndim == 1 else X
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X must be [n, p] (or [n]), got shape {np.shape(X)}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have one value per row of X ([{X.shape[0]}]), got shape {y.shape}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise ValueError("X and y must be finite")
    p = X.shape[1]
    data = {f"x{j}": X[:, j] for j in range(p)} | {"y": y}
    w = [f"w{j}" for j in range(p)]
    return data, w, " + ".join(f"w{j}*x{j}" for j in range(p))


def linear_regression(X, y, intercept=False):
    """Least squares as a :class:`flowcore.DataLoss`: ℓ(w; x, y) = ½(wᵀx (+ b) − y)², parameters
    w0 … w_{p−1} (and b). Its mean is a quadratic written with the data's moments; its gradient
    noise Σ(w) depends on w (the residuals), as in real regression."""
    data, w, dot = _design(X, y)
    if intercept:
        dot, w = dot + " + b", w + ["b"]
    return DataLoss.from_expr(f"({dot} - y)**2/2", data, vars=w, name="linear regression")


def logistic_regression(X, y):
    """Logistic regression with labels y ∈ {−1, +1} as a :class:`flowcore.DataLoss`:
    ℓ(w; x, y) = log(1 + exp(−y wᵀx)) (its mean is an explicit sum: n ≤ 2000)."""
    data, w, dot = _design(X, y)
    if not np.all(np.isin(data["y"], (-1.0, 1.0))):
        raise ValueError("y must hold labels −1 and +1")
    return DataLoss.from_expr(f"log(1 + exp(-y*({dot})))", data, vars=w, name="logistic regression")
