"""Critical points, their Jacobians under every model of GD, and learning-rate stability.

At a critical point θ* (g = 0) with Hessian eigenvalues λ, the linearised models are

| model | Jacobian eigenvalue (flows) / multiplier (maps) | attracts when |
|---|---|---|
| gd (map I − hH) | 1 − hλ | |1 − hλ| < 1 |
| heavy_ball (2D×2D map) | roots of ρ² − (1 + β − hλ)ρ + β | both |ρ| < 1 |
| ngf | −λ | Re < 0 |
| igr | −λ − (h/2)λ² | Re < 0 |
| third_order | −λ − (h/2)λ² − (h²/3)λ³ | Re < 0 |
| pf, pf_np3 | log(1 − hλ)/h (+iπ on the cut) | Re < 0 ⟺ |1 − hλ| < 1 |

(The non-principal terms are quadratic in g, so they vanish from the Jacobian at g = 0.)
So GD and the PF are repelled along directions with hλ > 2, while NGF and IGR predict
convergence at a minimum for every h (paper §3.2).
"""
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

MODELS = ("gd", "heavy_ball", "ngf", "igr", "third_order", "pf", "pf_np3")
MAPS = ("gd", "heavy_ball")


@dataclass
class CriticalPoint:
    """A point with ∇E = 0: coordinates, kind ('min', 'max', 'saddle', 'degenerate'),
    Hessian eigenpairs (ascending), the residual ‖∇E‖ there, and the exact sympy solution
    when sympy found it."""
    point: np.ndarray
    kind: str
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    hessian: np.ndarray
    residual: float
    exact: dict | None = field(default=None, repr=False)

    def as_dict(self):
        return {"point": self.point.tolist(), "kind": self.kind,
                "eigenvalues": self.eigenvalues.tolist(), "residual": self.residual,
                "exact": None if self.exact is None else {str(k): str(v) for k, v in self.exact.items()}}


def classify(eigenvalues, tol=1e-8):
    """'min' / 'max' / 'saddle' from the Hessian's eigenvalues; 'degenerate' when any
    |λ| ≤ tol·max(1, max|λ|) (the quadratic model cannot decide)."""
    lam = np.asarray(eigenvalues, dtype=float)
    scale = tol * max(1.0, float(np.max(np.abs(lam))))
    if np.any(np.abs(lam) <= scale):
        return "degenerate"
    if np.all(lam > 0):
        return "min"
    if np.all(lam < 0):
        return "max"
    return "saddle"


def _check_box(box, dim):
    if box is None:
        return None
    b = np.asarray(box, dtype=float)
    if b.shape == (2,) and dim == 1:
        b = b[None]
    if b.shape != (dim, 2) or not np.all(np.isfinite(b)) or np.any(b[:, 0] >= b[:, 1]):
        raise ValueError(f"box must be [[lo, hi]] per coordinate, shape ({dim}, 2) with lo < hi, "
                         f"got {np.shape(box)}")
    return b


def _make(loss, th, exact=None):
    H = loss.hess(th)
    lam, U = np.linalg.eigh(H)
    return CriticalPoint(np.asarray(th, float), classify(lam), lam, U, H,
                         float(np.linalg.norm(loss.grad(th))), exact)


def _exact_solutions(loss, timeout_terms=200):
    """Real isolated solutions of ∇E = 0 by sympy for polynomial losses; None when sympy
    cannot (non-polynomial, too large) and 'degenerate' for a non-isolated solution set."""
    if loss.expr is None:
        return None
    syms = list(loss.vars)
    if not loss.expr.is_polynomial(*syms):
        return None
    if len(sp.Add.make_args(sp.expand(loss.expr))) > timeout_terms:
        return None
    grad = [sp.expand(sp.diff(loss.expr, s)) for s in syms]
    try:
        sols = sp.solve(grad, syms, dict=True)
    except (NotImplementedError, ValueError):
        return None
    out = []
    for sol in sols:
        if len(sol) < len(syms) or any(v.free_symbols for v in sol.values()):
            return "degenerate"
        vals = [complex(sp.N(sol[s], 30)) for s in syms]
        if all(abs(v.imag) <= 1e-12 * max(1.0, abs(v.real)) for v in vals):
            out.append((np.array([v.real for v in vals]), sol))
    return out


def critical_points(loss, box=None, grid=15, tol=1e-10, exact=True, max_iter=60):
    """Critical points of a flowcore Loss, as :class:`CriticalPoint` objects sorted by E.

    With ``exact=True`` and a polynomial loss, sympy solves ∇E = 0 (real solutions kept,
    ``point.exact`` holds them). Otherwise — or for a non-isolated critical set, which is
    reported as 'degenerate' points — Newton's method runs from a ``grid``^D lattice in
    ``box`` (required then), batched through the C loss: θ ← θ − H⁺g (pseudo-inverse, so
    singular Hessians cannot stall it), at most ``max_iter`` iterations. Converged points
    (‖g‖ ≤ tol·max(1, ‖θ‖)) are de-duplicated at 1e-6 relative distance.
    """
    D = loss.dim
    b = _check_box(box, D)
    found = _exact_solutions(loss) if exact else None
    if isinstance(found, list):
        pts = [_make(loss, p, sol) for p, sol in found]
        if b is not None:
            pts = [c for c in pts if np.all((c.point >= b[:, 0]) & (c.point <= b[:, 1]))]
        return sorted(pts, key=lambda c: float(loss.value(c.point)))
    if b is None:
        raise ValueError("sympy cannot list these critical points exactly; pass box=[[lo, hi], ...] "
                         "for a Newton search")
    if not isinstance(grid, (int, np.integer)) or grid < 1 or grid ** D > 10 ** 6:
        raise ValueError(f"grid must be a positive integer with grid**D <= 1e6, got {grid!r}")
    axes = [np.linspace(lo, hi, grid) for lo, hi in b]
    th = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, D)
    for _ in range(max_iter):
        with np.errstate(all="ignore"):
            g, H = loss.grad(th), loss.hess(th)
        live = np.all(np.isfinite(g), axis=1) & np.all(np.isfinite(H), axis=(1, 2))
        th[~live] = np.nan                       # a start that blew up stays out
        with np.errstate(all="ignore"):
            th[live] -= np.einsum("nij,nj->ni", np.linalg.pinv(H[live], rcond=1e-12), g[live])
    with np.errstate(all="ignore"):
        g = loss.grad(th)
        ok = np.all(np.isfinite(th), axis=1) & np.all(np.isfinite(g), axis=1)
        ok &= np.linalg.norm(g, axis=1) <= tol * np.maximum(1, np.linalg.norm(th, axis=1))
        ok &= np.all((th >= b[:, 0] - 1e-9) & (th <= b[:, 1] + 1e-9), axis=1)
    pts = []
    for p in th[ok]:
        if all(np.linalg.norm(p - q.point) > 1e-6 * max(1, np.linalg.norm(p)) for q in pts):
            pts.append(_make(loss, p))
    if found == "degenerate":
        for c in pts:
            c.kind = "degenerate"
    return sorted(pts, key=lambda c: float(loss.value(c.point)))


# ------------------------------------------------------------------------ stability
def _pf_log(z):
    """log(1 − z) with +iπ on the cut (numpy or sympy)."""
    if isinstance(z, sp.Basic):
        return sp.log(1 - z)
    z = complex(z)
    w = complex(1 - z.real, -z.imag if z.imag != 0 else 0.0)
    return np.log(w)


def jacobian_eigenvalues(lam, lr, model, beta=0.9):
    """Eigenvalues (flows) or multipliers (maps) of one model at a critical point, per Hessian
    eigenvalue λ. Works for numbers and for sympy symbols."""
    h = lr
    sym = isinstance(lam, sp.Basic) or isinstance(h, sp.Basic)
    if model == "gd":
        return (1 - h * lam,)
    if model == "heavy_ball":
        if sym:
            rho = sp.Symbol("rho")
            return tuple(sp.solve(rho ** 2 - (1 + beta - h * lam) * rho + beta, rho))
        return tuple(np.roots([1, -(1 + beta - h * lam), beta]))
    if model == "ngf":
        return (-lam,)
    if model == "igr":
        return (-lam - h / 2 * lam ** 2,)
    if model == "third_order":
        return (-lam - h / 2 * lam ** 2 - h ** 2 / 3 * lam ** 3,)
    if model in ("pf", "pf_np3"):
        return (_pf_log(h * lam) / h,)
    raise ValueError(f"model must be one of {MODELS}, got {model!r}")


def _verdict(value, is_map, tol=1e-12):
    if isinstance(value, sp.Basic):
        q = (sp.Abs(value) - 1) if is_map else sp.re(value)
        q = sp.simplify(q)
        if q.is_negative:
            return "attractive"
        if q.is_positive:
            return "repelling"
        if q.is_zero:
            return "neutral"
        return "depends"
    q = abs(value) - 1 if is_map else complex(value).real
    if q < -tol:
        return "attractive"
    if q > tol:
        return "repelling"
    return "neutral"


def stability(point, lr, models=MODELS, beta=0.9):
    """Per model: the Jacobian eigenvalues/multipliers and a verdict per eigen-direction
    ('attractive', 'repelling', 'neutral'; 'depends' when symbolic and undecidable).

    ``point``: a CriticalPoint, a Hessian matrix (numpy), or a sympy Matrix / list of sympy
    eigenvalues (then everything is symbolic); ``lr`` a number or a sympy symbol.
    Returns {model: {'eigenvalues': [...], 'verdicts': [...], 'verdict': overall}}.
    """
    if isinstance(point, CriticalPoint):
        lams = list(point.eigenvalues)
    elif isinstance(point, sp.MatrixBase):
        lams = [ev for ev, mult in point.eigenvals().items() for _ in range(mult)]
    elif isinstance(point, (list, tuple)) and any(isinstance(v, sp.Basic) for v in point):
        lams = list(point)
    else:
        H = np.asarray(point, dtype=float)
        if H.ndim != 2 or H.shape[0] != H.shape[1]:
            raise ValueError(f"point must be a CriticalPoint or a square Hessian, got shape {H.shape}")
        lams = list(np.linalg.eigvalsh(H))
    if not isinstance(lr, sp.Basic) and not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be > 0, got {lr!r}")
    out = {}
    for model in models:
        vals, verdicts = [], []
        for lam in lams:
            for v in jacobian_eigenvalues(lam, lr, model, beta):
                vals.append(v)
                verdicts.append(_verdict(v, model in MAPS))
        overall = ("repelling" if "repelling" in verdicts else "depends" if "depends" in verdicts
                   else "neutral" if "neutral" in verdicts else "attractive")
        out[model] = {"eigenvalues": vals, "verdicts": verdicts, "verdict": overall}
    return out


def _intersect(a, b):
    out = []
    for lo1, hi1 in a:
        for lo2, hi2 in b:
            lo, hi = max(lo1, lo2), min(hi1, hi2)
            if lo < hi:
                out.append((lo, hi))
    return out


def stable_lr_interval(point, model, beta=0.9):
    """The learning rates h > 0 at which the critical point attracts ``model``, as a list of
    open intervals [(lo, hi), ...] (empty: never). Closed forms per Hessian eigenvalue λ:

    gd, pf, pf_np3: (0, 2/λ) for λ > 0; heavy_ball: (0, 2(1+β)/λ) for λ > 0; ngf,
    third_order: (0, ∞) for λ > 0; igr: (0, ∞) for λ > 0 and (2/|λ|, ∞) for λ < 0 (its
    −λ(1 + hλ/2) turns negative for large h); λ = 0 never attracts strictly.
    """
    lams = point.eigenvalues if isinstance(point, CriticalPoint) else np.linalg.eigvalsh(np.asarray(point, float))
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if not (0 <= beta < 1):
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    sets = [(0.0, np.inf)]
    for lam in lams:
        if model in ("gd", "pf", "pf_np3"):
            s = [(0.0, 2 / lam)] if lam > 0 else []
        elif model == "heavy_ball":
            s = [(0.0, 2 * (1 + beta) / lam)] if lam > 0 else []
        elif model in ("ngf", "third_order"):
            s = [(0.0, np.inf)] if lam > 0 else []
        else:   # igr
            s = [(0.0, np.inf)] if lam > 0 else [(2 / abs(lam), np.inf)] if lam < 0 else []
        sets = _intersect(sets, s)
    return sets


def stability_coefficients(loss, theta, lr):
    """sc_i = α_PF(hλ_i)(gᵀu_i) at real points θ [..., D] (sign of u_i: Re gᵀu_i ≥ 0), with the
    Hessian eigenvalues: returns (sc [..., D] complex, λ [..., D])."""
    from flowcore.optim import diagnostics
    d = diagnostics(loss, theta, lr)
    return d["stability_coefficients"], d["eigenvalues"]
