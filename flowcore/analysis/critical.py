"""Critical points, their Jacobians under every model of GD, and learning-rate stability.

At a critical point θ* (g = 0) with Hessian eigenvalues λ, the linearised models are

| model | Jacobian eigenvalue (flows) / multiplier (maps) | attracts when |
|---|---|---|
| gd (map I − hH) | 1 − hλ | |1 − hλ| < 1 |
| heavy_ball (2D×2D map) | roots of ρ² − (1 + β − hλ)ρ + β | both |ρ| < 1 |
| nesterov (2D×2D map) | roots of ρ² − (1 + β)(1 − hλ)ρ + β(1 − hλ) | both |ρ| < 1 |
| pgf | +λ | Re < 0 |
| ngf | −λ | Re < 0 |
| igr | −λ − (h/2)λ² | Re < 0 |
| third_order | −λ − (h/2)λ² − (h²/3)λ³ | Re < 0 |
| pf, pf_np3 | log(1 − hλ)/h (+iπ on the cut) | Re < 0 ⟺ |1 − hλ| < 1 |

(The non-principal terms are quadratic in g, so they vanish from the Jacobian at g = 0.) Every
flow's eigenvalue is α(hλ)·λ from its α in :mod:`flowcore.problems.models`, where each model is defined.
So GD and the PF are repelled along directions with hλ > 2, while NGF and IGR predict
convergence at a minimum for every h (paper §3.2).
"""
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from flowcore.engine.checks import names, positive
from flowcore.engine.expressions import degree_bound
from flowcore.problems.models import MODELS as _REGISTRY, model as _model

# the models with a fixed-rate linear stability (DAL's rate depends on θ; BEA needs an order)
MODELS = tuple(k for k in _REGISTRY if k not in ("dal", "bea"))


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


class CriticalPoints(list):
    """The critical points found (a list of :class:`CriticalPoint`, sorted by E), with how they were
    found and what could not be established.

    ``method``: 'groebner' (every real solution of the polynomial system ∇E = 0, from a lex Gröbner
    basis; complete), 'newton' (a search from a lattice of starts: finds what it finds) or
    'degenerate' (the critical set is not isolated). ``complete``: True only when the list is
    proven to hold every critical point (in ``box`` when one is given). ``notes``: what the
    cross-check found (a Newton point missing from the exact list, an exact point Newton missed
    is only a remark) and anything that could not be decided."""

    def __init__(self, points=(), method="newton", complete=False, notes=()):
        super().__init__(points)
        self.method, self.complete, self.notes = method, complete, list(notes)

    def __repr__(self):
        kinds = {}
        for c in self:
            kinds[c.kind] = kinds.get(c.kind, 0) + 1
        text = ", ".join(f"{n} {k}" for k, n in kinds.items()) or "none"
        return (f"CriticalPoints({len(self)}: {text}; method={self.method!r}, "
                f"complete={self.complete}" + (f", {len(self.notes)} note(s)" if self.notes else "") + ")")


_DIGITS = 50


def _rational(expr):
    """Floats in a polynomial made exact (their binary value), so that Gröbner bases are exact."""
    return expr.xreplace({f: sp.Rational(f) for f in expr.atoms(sp.Float)})


def _roots_of(polys, var):
    """Common real roots of univariate polynomials (mpmath numbers, 50 digits) in ``var``: the
    roots of the lowest-degree one that is not zero, kept where all the others vanish. None when
    the numerical root finder did not converge (the caller then says so)."""
    import mpmath
    with mpmath.workdps(_DIGITS):
        coeffs = []
        for p in polys:
            c = list(p)                                # mpmath numbers from the caller
            scale = max(abs(v) for v in c) if c else 0
            while c and abs(c[0]) <= mpmath.mpf(10) ** (-_DIGITS + 10) * max(scale, 1):
                c = c[1:]
            if len(c) > 0:
                coeffs.append(c)
        if not coeffs:
            return "free"
        base = min(coeffs, key=len)
        if len(base) == 1:
            return []
        try:
            roots = mpmath.polyroots(base, maxsteps=400, extraprec=4 * _DIGITS)
        except mpmath.libmp.NoConvergence:
            return None
        out = []
        for r in roots:
            if abs(mpmath.im(r)) > mpmath.mpf(10) ** -20 * max(1, abs(r)):
                continue
            r = mpmath.re(r)
            if all(abs(mpmath.polyval(c, r)) <= mpmath.mpf(10) ** -15 * max(1, max(abs(v) for v in c))
                   * max(1, abs(r)) ** (len(c) - 1) for c in coeffs):
                if all(abs(r - q) > mpmath.mpf(10) ** -25 * max(1, abs(r)) for q in out):
                    out.append(r)
        return out


MAX_GROEBNER_DEGREE = 24      # beyond it a lex Gröbner basis and exact root isolation take minutes


def _polynomial_solutions(loss, max_terms=200):
    """Every real solution of ∇E = 0 for a polynomial E, from a lex Gröbner basis.

    The basis of a zero-dimensional ideal is triangular: its polynomials in the last variable
    alone have every solution's last coordinate as a root (sympy's exact real-root isolation
    finds them all), and back-substitution, variable by variable, reaches every solution. Returns
    (points, notes): points a list of (coordinates, {var: sympy number}) or None when E is not a
    polynomial (or too large), 'degenerate' when the critical set is not isolated."""
    import mpmath
    if loss.expr is None:
        return None, []
    syms = list(loss.vars)
    E = _rational(loss.expr)
    if not E.is_polynomial(*syms):
        return None, []
    degree = degree_bound(E)
    if degree > MAX_GROEBNER_DEGREE:
        return None, [f"E has degree {degree:,} > {MAX_GROEBNER_DEGREE}: no Gröbner basis attempted"]
    if len(sp.Add.make_args(sp.expand(E))) > max_terms:
        return None, [f"E has more than {max_terms} terms: no Gröbner basis attempted"]
    grad = [sp.expand(sp.diff(E, s)) for s in syms]
    if all(g == 0 for g in grad):
        return "degenerate", []
    G = sp.groebner(grad, *syms, order="lex")
    if list(G.exprs) == [1]:
        return [], []
    if not G.is_zero_dimensional:
        return "degenerate", []
    last = syms[-1]
    uni = [sp.Poly(p, last) for p in G.exprs if p.free_symbols <= {last}]
    base = sp.Poly(sp.gcd_list([u.as_expr() for u in uni]), last)
    partial = []
    with mpmath.workdps(_DIGITS):
        for r in sp.real_roots(base.sqf_part()):
            partial.append(({last: r}, [mpmath.mpf(str(sp.N(r, _DIGITS + 5)))]))
        notes = []
        for k in range(len(syms) - 2, -1, -1):
            var, known = syms[k], syms[k + 1:]
            polys = [sp.Poly(p, var, *known) for p in G.exprs
                     if var in p.free_symbols and p.free_symbols <= {var, *known}]
            nxt = []
            for exact, vals in partial:
                if all(exact[s_] is not None and exact[s_].is_Rational for s_ in known):
                    # rational coordinates so far: stay exact (multiple roots are no trouble)
                    sub = {s_: exact[s_] for s_ in known}
                    uni_exact = [sp.Poly(p.as_expr().xreplace(sub), var) for p in polys]
                    base_k = sp.gcd_list([u.as_expr() for u in uni_exact])
                    if base_k != 0:
                        for r in sp.real_roots(sp.Poly(base_k, var).sqf_part()):
                            nxt.append(({**exact, var: r}, [mpmath.mpf(str(sp.N(r, _DIGITS + 5)))] + vals))
                        continue
                env = dict(zip(known, vals))
                unis = []
                for P in polys:
                    deg = P.degree(var)
                    c = [mpmath.mpf(0)] * (deg + 1)
                    for mon, coef in P.terms():
                        term = mpmath.mpf(sp.Rational(coef).p) / mpmath.mpf(sp.Rational(coef).q)
                        for s_, e_ in zip(known, mon[1:]):
                            term *= env[s_] ** e_
                        c[deg - mon[0]] += term
                    unis.append(c)
                roots = _roots_of(unis, var)
                if roots is None or roots == "free":
                    notes.append(f"back-substitution for {var} did not converge at "
                                 f"{ {str(s_): float(v) for s_, v in env.items()} }")
                    continue
                for r in roots:
                    nxt.append(({**exact, var: None}, [r] + vals))
            partial = nxt
    out = []
    for exact, vals in partial:
        pt = np.array([float(v) for v in vals])
        ex = {s_: (exact[s_] if exact.get(s_) is not None and exact[s_].is_Rational
                   else sp.Float(mpmath.nstr(v, _DIGITS), _DIGITS)) for s_, v in zip(syms, vals)}
        out.append((pt, ex))
    return out, notes


def _newton(loss, b, grid, tol, max_iter):
    """Critical points by batched Newton from a grid^D lattice in box b: θ ← θ − H⁺g (pseudo-
    inverse, so singular Hessians cannot stall it). Converged points (‖g‖ ≤ tol·max(1, ‖θ‖)) in
    the box, de-duplicated at 1e-6 relative distance."""
    D = loss.dim
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
        if all(np.linalg.norm(p - q) > 1e-6 * max(1, np.linalg.norm(p)) for q in pts):
            pts.append(p)
    return pts


def _same(p, q):
    return np.max(np.abs(p - q)) <= 1e-6 * (1 + np.max(np.abs(p)))


def critical_points(loss, box=None, grid: int = 15, tol: float = 1e-10, exact: bool = True,
                    max_iter: int = 60) -> CriticalPoints:
    """Critical points of a flowcore Loss, as a :class:`CriticalPoints` list sorted by E.

    With ``exact=True`` and a polynomial loss, every real solution of ∇E = 0 comes from a lex
    Gröbner basis (exact real-root isolation of its univariate polynomial, then back-substitution
    at 50 digits; ``point.exact`` holds the coordinates, Rational where rational). This is
    complete; it is cross-checked by the Newton search below in ``box`` (default: the found
    points' bounding box, widened), and any disagreement is written to ``.notes`` and warned.
    Otherwise — or for a non-isolated critical set, reported as 'degenerate' points — Newton's
    method runs from a ``grid``^D lattice in ``box`` (required then), batched through the C loss:
    θ ← θ − H⁺g, at most ``max_iter`` iterations; such a list is not proven complete.
    """
    import warnings
    D = loss.dim
    b = _check_box(box, D)
    if not isinstance(grid, (int, np.integer)) or grid < 1 or grid ** D > 10 ** 6:
        raise ValueError(f"grid must be a positive integer with grid**D <= 1e6, got {grid!r}")
    found, notes = _polynomial_solutions(loss) if exact else (None, [])
    by_value = lambda c: float(loss.value(c.point))   # noqa: E731
    if isinstance(found, list):
        pts = [_make(loss, p, sol) for p, sol in found]
        if b is not None:
            pts = [c for c in pts if np.all((c.point >= b[:, 0]) & (c.point <= b[:, 1]))]
        check = b
        if check is None:
            lo = np.min([c.point for c in pts], axis=0) if pts else -np.ones(D)
            hi = np.max([c.point for c in pts], axis=0) if pts else np.ones(D)
            half = 0.75 * np.maximum(hi - lo, 1.0)
            check = np.stack([(lo + hi) / 2 - half, (lo + hi) / 2 + half], axis=1)
        n = min(grid, max(2, int(round(2e4 ** (1 / D)))))
        for p in _newton(loss, check, n, tol, max_iter):
            if not any(_same(p, c.point) for c in pts):
                notes.append(f"Newton found a critical point at {np.round(p, 6).tolist()} that the "
                             "Gröbner basis did not: the exact list may be incomplete")
        complete = not notes
        if notes:
            warnings.warn("critical_points: " + "; ".join(notes), RuntimeWarning, stacklevel=2)
        return CriticalPoints(sorted(pts, key=by_value), "groebner", complete, notes)
    if b is None:
        why = ("the critical set is not isolated (a curve or surface of critical points)"
               if found == "degenerate" else "; ".join(notes) or "E is not a polynomial")
        raise ValueError(f"critical points cannot be listed exactly: {why}; pass box=[[lo, hi], ...] "
                         "for a Newton search in that box")
    pts = [_make(loss, p) for p in _newton(loss, b, grid, tol, max_iter)]
    if found == "degenerate":
        for c in pts:
            c.kind = "degenerate"
        notes.append("the critical set is not isolated (positive-dimensional): points are samples of it")
    else:
        notes.append(f"Newton search from a {grid}^{D} lattice: points between the starts' basins "
                     "can be missed")
    return CriticalPoints(sorted(pts, key=by_value), "degenerate" if found == "degenerate" else "newton",
                          False, notes)


# ------------------------------------------------------------------------ stability
def jacobian_eigenvalues(lam, lr, model, beta=0.9):
    """Eigenvalues (flows) or multipliers (maps) of one model at a critical point, per Hessian
    eigenvalue λ. Works for numbers and for sympy symbols (see :meth:`flowcore.problems.models.Model.jacobian`)."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    return _model(model).jacobian(lam, lr, beta)


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


def stability(point, lr, models: tuple = MODELS, beta: float = 0.9) -> dict:
    """Per model: the Jacobian eigenvalues/multipliers and a verdict per eigen-direction
    ('attractive', 'repelling', 'neutral'; 'depends' when symbolic and undecidable).

    ``point``: a CriticalPoint, a Hessian matrix (numpy), or a sympy Matrix / list of sympy
    eigenvalues (then everything is symbolic); ``lr`` a number or a sympy symbol.
    Returns {model: {'eigenvalues': [...], 'verdicts': [...], 'verdict': overall}}.
    """
    models = names(models, "models")
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
    if not isinstance(lr, sp.Basic):
        lr = positive(lr, "lr")
    out = {}
    for model in models:
        vals, verdicts = [], []
        for lam in lams:
            for v in jacobian_eigenvalues(lam, lr, model, beta):
                if not isinstance(v, sp.Basic):          # plain Python numbers, not np.float64
                    v = complex(v) if np.iscomplexobj(v) and complex(v).imag != 0 else float(np.real(v))
                vals.append(v)
                verdicts.append(_verdict(v, _model(model).is_map))
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


def stable_lr_interval(point, model: str, beta: float = 0.9) -> list[tuple[float, float]]:
    """The learning rates h > 0 at which the critical point attracts ``model``, as a list of
    open intervals [(lo, hi), ...] (empty: never). Closed forms per Hessian eigenvalue λ:

    gd, pf, pf_np3: (0, 2/λ) for λ > 0; heavy_ball: (0, 2(1+β)/λ) for λ > 0; nesterov:
    (0, 2(1+β)/((1+2β)λ)) for λ > 0 (Jury's conditions on its recurrence); ngf, third_order:
    (0, ∞) for λ > 0; pgf: (0, ∞) for λ < 0; igr: (0, ∞) for λ > 0 and (2/|λ|, ∞) for λ < 0 (its
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
        elif model == "nesterov":
            s = [(0.0, 2 * (1 + beta) / ((1 + 2 * beta) * lam))] if lam > 0 else []
        elif model in ("ngf", "third_order"):
            s = [(0.0, np.inf)] if lam > 0 else []
        elif model == "pgf":
            s = [(0.0, np.inf)] if lam < 0 else []
        else:   # igr
            s = [(0.0, np.inf)] if lam > 0 else [(2 / abs(lam), np.inf)] if lam < 0 else []
        sets = _intersect(sets, s)
    return [(float(lo), float(hi)) for lo, hi in sets]


def stability_coefficients(loss, theta, lr):
    """sc_i = α_PF(hλ_i)(gᵀu_i) at real points θ [..., D] (sign of u_i: Re gᵀu_i ≥ 0), with the
    Hessian eigenvalues: returns (sc [..., D] complex, λ [..., D])."""
    from flowcore.solvers.optim import diagnostics
    d = diagnostics(loss, theta, lr)
    return d["stability_coefficients"], d["eigenvalues"]
