"""Backward error analysis: the modified equation of a one-step map, symbolically.

For a map Φ_h(θ) (GD: θ − h∇E) we seek f̃ = f₀ + h f₁ + … + hⁿ fₙ whose exact flow at time h
matches Φ_h up to O(h^{n+2}). The flow of f̃ has the Taylor series

    φ_h(θ) = θ + Σ_{m≥1} h^m/m! F^{[m]},   F^{[1]} = f̃,   F^{[m+1]} = (∂F^{[m]}/∂θ) f̃,

so, order by order in h, f_j is the h^{j+1} coefficient of Φ_h minus that of the flow of
f₀ + … + h^{j−1} f_{j−1} (f_j enters that coefficient only through the first term).
"""
from dataclasses import dataclass

import numpy as np
import sympy as sp

H_SYMBOL = sp.Symbol("h", positive=True)


def _map_coefficients(step, theta, h, N):
    """Taylor coefficients in h of Φ_h(θ) − θ, orders 1..N."""
    phi = sp.Matrix(step(theta, h))
    coeffs = []
    for m in range(1, N + 1):
        coeffs.append(sp.Matrix([sp.expand(sp.diff(c, h, m).subs(h, 0) / sp.factorial(m)) for c in phi]))
    return coeffs


class _FlowSeries:
    """Coefficients of the time-h flow of f̃ = Σ_k h^k f_k, built as f_k become known.

    T(m, k) is the h^k coefficient of F^{[m]} (F^{[1]} = f̃, F^{[m+1]} = (∂F^{[m]}/∂θ) f̃):
    T(1, k) = f_k and T(m+1, k) = Σ_{a+b=k} J(T(m, a)) f_b. The h^{j+1} coefficient of the
    flow is Σ_m T(m, j+1−m)/m!, and for m ≥ 2 it needs only f_0 … f_{j−1}; every T and every
    Jacobian is computed once (memoised). Vectors are lists of sympy Polys when the
    problem is polynomial in θ (sparse arithmetic, no expand; parameters go in the domain),
    else of expanded expressions.
    """

    def __init__(self, theta, poly):
        self.theta, self.poly, self.f, self._T, self._J = list(theta), poly, [], {}, {}

    def zero(self):
        return [sp.Poly(0, *self.theta) if self.poly else sp.Integer(0)
                for _ in self.theta]

    def T(self, m, k):
        if m == 1:
            return self.f[k]
        if (m, k) not in self._T:
            acc = self.zero()
            for a in range(k + 1):
                J, fb = self.J(m - 1, a), self.f[k - a]
                for i in range(len(acc)):
                    for c in range(len(fb)):
                        acc[i] = acc[i] + J[i][c] * fb[c]
            self._T[m, k] = acc if self.poly else [sp.expand(e) for e in acc]
        return self._T[m, k]

    def J(self, m, a):
        if (m, a) not in self._J:
            v = self.T(m, a)
            self._J[m, a] = [[e.diff(x) for x in self.theta] for e in v]
        return self._J[m, a]

    def known(self, j):
        """The h^{j+1} coefficient of the flow without the unknown f_j."""
        acc = self.zero()
        for m in range(2, j + 2):
            w = sp.Rational(1, sp.factorial(m))
            acc = [a + w * t for a, t in zip(acc, self.T(m, j + 1 - m))]
        return acc


@dataclass
class ModifiedEquation:
    """θ' = Σ_k h^k terms[k] (sympy column vectors in ``vars``), matching ``method``'s
    one-step map to O(h^{order+2})."""
    terms: list
    vars: tuple
    h: sp.Symbol
    method: str
    loss: sp.Expr | None = None

    @property
    def order(self):
        return len(self.terms) - 1

    def field(self):
        """The truncated modified field Σ h^k f_k as one sympy Matrix."""
        return sum((self.h ** k * f for k, f in enumerate(self.terms)), sp.zeros(len(self.vars), 1))

    def latex(self):
        """LaTeX of θ' = f₀ + h f₁ + …, one term per line."""
        rows = [rf"h^{{{k}}}\,{sp.latex(f.applyfunc(sp.factor))}" for k, f in enumerate(self.terms)]
        return r"\dot\theta = " + r" \\ + ".join(rows)

    def is_gradient(self, k):
        """(True, P) when terms[k] = ∇P (curl-free; P from the radial line integral, P(0) = 0),
        else (False, None)."""
        f = self.terms[k]
        J = f.jacobian(self.vars)
        if any(sp.simplify(J[i, j] - J[j, i]) != 0 for i in range(len(self.vars)) for j in range(i)):
            return False, None
        t = sp.Symbol("t")
        sub = {v: t * v for v in self.vars}
        integrand = sum(fi.xreplace(sub) * v for fi, v in zip(f, self.vars))
        return True, sp.simplify(sp.integrate(sp.expand(integrand), (t, 0, 1)))

    def to_flow(self, lr):
        """The truncated modified field at h = lr, compiled to a flowcore Field."""
        from flowcore import Field
        lr = sp.nsimplify(lr) if float(lr) == round(float(lr), 12) else sp.Float(lr, 17)
        return Field.from_expr([sp.expand(c.subs(self.h, lr)) for c in self.field()],
                               vars=self.vars, name=f"modified {self.method} (order {self.order})")


def modified_equation(expr=None, order=2, method="gd", vars=None, step=None):
    """The modified equation of a one-step map, terms f₀ … f_order.

    ``method='gd'``: Φ_h(θ) = θ − h∇E(θ) for the loss ``expr`` (sympy or string). Or pass
    ``step(theta, h)`` — any explicit one-step map as a sympy function of the coordinate
    vector θ (a Matrix) and h — with ``vars`` naming the coordinates (``expr`` may then be None).
    """
    from flowcore._codegen import parse, resolve_vars
    if not isinstance(order, (int, np.integer)) or order < 0:
        raise ValueError(f"order must be an integer >= 0, got {order!r}")
    h = H_SYMBOL
    E = None
    if expr is not None:
        E = parse(expr, "loss")
        syms, (E,) = resolve_vars([E], vars, "loss")
    elif vars is not None:
        syms = tuple(sp.Symbol(v) if isinstance(v, str) else v for v in vars)
    else:
        raise ValueError("give a loss expression, or vars= with step=")
    theta = sp.Matrix(syms)
    if step is None:
        if method != "gd":
            raise ValueError(f"method must be 'gd' (or pass step=), got {method!r}")
        if E is None:
            raise ValueError("method 'gd' needs a loss expression")
        grad = sp.Matrix([sp.diff(E, s) for s in syms])
        step = lambda th, hh: th - hh * grad.xreplace(dict(zip(syms, th)))  # noqa: E731
    elif not callable(step):
        raise TypeError("step must be a callable step(theta, h) -> Matrix")
    else:
        method = "custom"
    coeffs = _map_coefficients(step, theta, h, order + 1)
    poly = all(c.is_polynomial(*syms) for col in coeffs for c in col)
    series = _FlowSeries(syms, poly)
    for j in range(order + 1):
        target = [sp.Poly(c, *syms) if poly else c for c in coeffs[j]]
        series.f.append([t - k if poly else sp.expand(t - k) for t, k in zip(target, series.known(j))])
    terms = [sp.Matrix([e.as_expr() if poly else e for e in f]) for f in series.f]
    return ModifiedEquation(terms, tuple(syms), h, method, E)


def verify_order(me, theta, hs, step=None):
    """Fitted slope of ‖Φ_h(θ) − φ̃_h(θ)‖ against h (expected order + 2), where φ̃_h is the
    time-h flow of the truncated modified field, integrated by fc.solve (dop853, rtol 1e-13).
    Φ defaults to GD on the equation's loss."""
    import flowcore as fc
    theta = np.asarray(theta, dtype=float).reshape(1, -1)
    if step is None:
        grad = sp.lambdify(me.vars, [sp.diff(me.loss, v) for v in me.vars], "numpy")
        step = lambda th, hh: th - hh * np.array(grad(*th), dtype=float)  # noqa: E731
    errs = []
    for hh in hs:
        flow = me.to_flow(hh)
        y = fc.solve(flow, theta, t_span=(0, hh), method="dop853", rtol=1e-13, atol=1e-15).y[0, -1]
        errs.append(np.linalg.norm(step(theta[0], hh) - y))
    return float(np.polyfit(np.log(hs), np.log(errs), 1)[0]), np.array(errs)
