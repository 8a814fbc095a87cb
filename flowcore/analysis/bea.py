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

import flowcore as fc
from flowcore.analysis.bseries import exact

H_SYMBOL = sp.Symbol("h", positive=True)
MAX_ORDER = 12
MAX_DEGREE = 200     # degree of E × (order + 1): (x + y)**80 at order 1 takes 2.5 s, each further order far more


def _check_degree(E, order):
    """Refuse a polynomial whose expanded terms would take minutes and gigabytes (read from the
    expression's tree, before anything is expanded)."""
    from flowcore.engine.expressions import degree_bound
    d = degree_bound(E)
    if d is not None and d * (order + 1) > MAX_DEGREE:
        raise ValueError(f"E has degree up to {d:,}: its modified equation to order {order} expands polynomials "
                         f"of degree ~{d * (order + 1):,} (at most {MAX_DEGREE}); lower the degree or the order")


def _map_coefficients(step, theta, h, N):
    """Taylor coefficients in h of Φ_h(θ) − θ, orders 1..N."""
    phi = sp.Matrix(step(theta, h))
    if phi.shape != theta.shape:
        raise ValueError(f"step must return a vector of shape {theta.shape}, got {phi.shape}")
    if sp.expand(phi.subs(h, 0) - theta) != sp.zeros(*theta.shape):
        raise ValueError("step(theta, 0) must be theta: backward error analysis needs a map that is "
                         "O(h)-close to the identity (e.g. momentum on the (θ, v) pair is not; "
                         "use method='heavy_ball', the position-only modified equation)")
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

    def known(self, j, weight):
        """Σ_{m≥2} weight(m)·T(m, j+1−m): the h^{j+1} coefficient of Σ_m weight(m) h^m F^{[m]}
        without the unknown f_j (weight(m) = 1/m! for the flow itself)."""
        acc = self.zero()
        for m in range(2, j + 2):
            w = weight(m)
            acc = [a + w * t for a, t in zip(acc, self.T(m, j + 1 - m))]
        return acc


@dataclass(repr=False)
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
        """A complete LaTeX ``aligned`` environment: d/dt (x, y)ᵀ = f₀ + h f₁ + …, one term per
        line, so the display stands on its own (paste it into $$…$$ or an equation*)."""
        theta = sp.latex(sp.Matrix(self.vars))
        rows = []
        for k, f in enumerate(self.terms):
            power = "" if k == 0 else ("h" if k == 1 else f"h^{{{k}}}")
            sign = "= " if k == 0 else "+ "
            rows.append(rf"&{sign}{power}\,{sp.latex(f.applyfunc(sp.factor))}")
        head = rf"\frac{{d}}{{dt}}{theta} "
        return "\\begin{aligned}\n" + head + " \\\\\n".join(rows) + "\n\\end{aligned}"

    def _repr_latex_(self):
        return "$$" + self.latex() + "$$"

    def __repr__(self):
        return (f"ModifiedEquation({self.method}, order {self.order}, vars {tuple(map(str, self.vars))}"
                + (f", E = {self.loss}" if self.loss is not None else "") + ")")

    def principal(self):
        """GD's principal terms −h^p H^p g/(p+1) (Theorem 3.1), as sympy vectors per order."""
        if self.method != "gd" or self.loss is None:
            raise ValueError("principal() is defined for GD's modified equation of a loss")
        g = sp.Matrix([sp.diff(self.loss, v) for v in self.vars])
        Hm = sp.hessian(self.loss, self.vars)
        out, v = [], g
        for p in range(len(self.terms)):
            out.append((-v / (p + 1)).applyfunc(sp.expand))
            v = Hm * v
        return out

    def nonprincipal(self):
        """terms[k] minus the principal part: only third and higher derivatives of E enter
        (zero for quadratic E; −(1/12)T[g,g] at order 2)."""
        return [(f - p).applyfunc(sp.expand) for f, p in zip(self.terms, self.principal())]

    def tensor_form(self):
        """GD's terms in g, H = ∇²E, ∇³E, … : per order k, a list of (coefficient, text) with
        f_k = Σ coefficient · text. From the B-series of explicit Euler with f = −∇E: a tree
        t contributes b(t)/σ(t)·(−1)^{|t|} ∇^{m+1}E[…] per node with m children, g per leaf."""
        if self.method != "gd":
            raise ValueError("tensor_form() is defined for GD's modified equation")
        from flowcore.analysis import bseries as bs
        b = bs.modified_equation("euler", self.order + 1)
        out = []
        for k in range(self.order + 1):
            out.append([(bs.exact(b[t] / bs.sigma(t) * (-1) ** bs.order(t)), _tensor_text(t))
                        for t in bs.trees(k + 1) if b[t] != 0])
        return out

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
        if isinstance(lr, sp.Basic) and lr.is_Rational:
            lr = lr if lr > 0 else None
        else:
            v = float(lr) if isinstance(lr, (int, float, np.floating, np.integer)) else np.nan
            lr = None if not (np.isfinite(v) and v > 0) else (
                exact(v) if v == round(v, 12) else sp.Float(v, 17))
        if lr is None:
            raise ValueError("to_flow(lr): lr must be a finite number > 0 (the learning rate h)")
        return Field.from_expr([sp.expand(c.subs(self.h, lr)) for c in self.field()],
                               vars=self.vars, name=f"modified {self.method} (order {self.order})")


def modified_equation(expr=None, order=2, method="gd", vars=None, step=None, beta=None):
    """The modified equation of a one-step map, terms f₀ … f_order.

    ``method='gd'``: Φ_h(θ) = θ − h∇E(θ) for the loss ``expr`` (sympy, a string, or a
    :class:`flowcore.Loss` that carries its expression: the zoo, ``Loss.from_expr``). Or pass
    ``step(theta, h)`` — any explicit one-step map as a sympy function of the coordinate
    vector θ (a Matrix) and h — with ``vars`` naming the coordinates (``expr`` may then be None).

    ``method='nesterov'``: θ_{n+1} = y − h g(y), y = θ_n + β(θ_n − θ_{n−1}), the same way,
    with g(θ + d) expanded in its Taylor series (d = O(h)).

    ``method='heavy_ball'`` (momentum ``beta``, a number or sympy symbol): the position-only
    two-step recursion θ_{n+1} = θ_n − h g(θ_n) + β(θ_n − θ_{n−1}), with θ_{n−1} = φ_{−h}(θ_n)
    on the flow: Σ_m (1 + β(−1)^m) h^m/m! F^{[m]} = −h g, solved order by order
    (first order: θ' = −g/(1−β) − h(1+β)/(2(1−β)³) H g).
    """
    from flowcore.engine.expressions import parse, resolve_vars
    if not isinstance(order, (int, np.integer)) or not 0 <= order <= MAX_ORDER:
        raise ValueError(f"order must be an integer in [0, {MAX_ORDER}], got {order!r}: the symbolic "
                         f"terms grow factorially (order 8 takes seconds on a 2-D polynomial, each "
                         "further order several times longer)")
    h = H_SYMBOL
    E = None
    if isinstance(expr, fc.Loss):
        if expr.expr is None:
            raise ValueError(f"the loss {expr.name!r} has no symbolic expression (a Python or C callable): the "
                             "modified equation is symbolic; write it with Loss.from_expr or give the expression")
        vars = expr.vars if vars is None else vars
        expr = expr.expr
    if expr is not None:
        E = parse(expr, "loss")
        syms, (E,) = resolve_vars([E], vars, "loss")
        _check_degree(E, order)
    elif vars is not None:
        syms = tuple(sp.Symbol(v) if isinstance(v, str) else v for v in vars)
    else:
        raise ValueError("give a loss expression, or vars= with step=")
    theta = sp.Matrix(syms)
    if method == "nesterov" and step is None:
        return _nesterov(E, syms, order, beta)
    if method == "heavy_ball" and step is None:
        if E is None:
            raise ValueError("method 'heavy_ball' needs a loss expression")
        b = sp.Rational(9, 10) if beta is None else exact(beta)
        if b.is_number and not (0 <= b < 1):
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        grad = [sp.diff(E, s) for s in syms]
        poly = all(c.is_polynomial(*syms) for c in grad)
        series = _FlowSeries(syms, poly)
        weight = lambda m: (1 + b * (-1) ** m) / sp.factorial(m)  # noqa: E731
        for j in range(order + 1):
            rhs = [-c if j == 0 else sp.Integer(0) for c in grad]
            rhs = [sp.Poly(c, *syms) if poly else c for c in rhs]
            f_j = [(r - k) * (1 / (1 - b)) for r, k in zip(rhs, series.known(j, weight))]
            series.f.append(f_j if poly else [sp.expand(e) for e in f_j])
        terms = [sp.Matrix([sp.expand(e.as_expr() if poly else e) for e in f]) for f in series.f]
        return ModifiedEquation(terms, tuple(syms), h, "heavy_ball", E)
    if step is None:
        if method != "gd":
            raise ValueError(f"method must be 'gd', 'heavy_ball' or 'nesterov' (or pass step=), got {method!r}")
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
    flow_weight = lambda m: sp.Rational(1, sp.factorial(m))  # noqa: E731
    for j in range(order + 1):
        target = [sp.Poly(c, *syms) if poly else c for c in coeffs[j]]
        series.f.append([t - k if poly else sp.expand(t - k)
                         for t, k in zip(target, series.known(j, flow_weight))])
    terms = [sp.Matrix([e.as_expr() if poly else e for e in f]) for f in series.f]
    return ModifiedEquation(terms, tuple(syms), h, method, E)


def _tensor_text(t):
    """∇^{m+1}E[children] for a node with m children, g for a leaf (H for ∇²E)."""
    if not t:
        return "g"
    args = ", ".join(_tensor_text(c) for c in t)
    head = "H" if len(t) == 1 else f"∇{_SUPERSCRIPT[len(t) + 1]}E"
    return f"{head}[{args}]"


_SUPERSCRIPT = {2: "²", 3: "³", 4: "⁴", 5: "⁵", 6: "⁶", 7: "⁷", 8: "⁸", 9: "⁹"}


def _compositions(total, parts):
    """Ordered tuples of `parts` positive integers summing to `total`."""
    if parts == 0:
        return [()] if total == 0 else []
    return [(k,) + rest for k in range(1, total - parts + 2) for rest in _compositions(total - k, parts - 1)]


def _nesterov(E, syms, order, beta):
    """Position-only modified equation of Nesterov's method (see modified_equation)."""
    import itertools
    if E is None:
        raise ValueError("method 'nesterov' needs a loss expression")
    b = sp.Rational(9, 10) if beta is None else exact(beta)
    if b.is_number and not (0 <= b < 1):
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    h = H_SYMBOL
    grad = [sp.diff(E, s) for s in syms]
    poly = all(c.is_polynomial(*syms) for c in grad)
    wrap = (lambda e: sp.Poly(e, *syms)) if poly else sp.expand
    D = len(syms)
    tensor = {}                       # ∂^r g / ∂θ_c1 … ∂θ_cr, per component

    def dg(idx):
        if idx not in tensor:
            tensor[idx] = [wrap(sp.diff(c, *[syms[i] for i in idx])) for c in grad]
        return tensor[idx]

    series = _FlowSeries(syms, poly)
    d = {}                            # d[k]: h^k coefficient of y − θ (k ≥ 1)
    flow_w = lambda m: sp.Rational(1, sp.factorial(m))                 # noqa: E731
    mom_w = lambda m: -b * (-1) ** m / sp.factorial(m)                 # noqa: E731
    for j in range(order + 1):
        G = [wrap(c) for c in grad] if j == 0 else series.zero()       # h^j coefficient of g(θ + d)
        for r in range(1, j + 1):
            for comp in _compositions(j, r):
                for idx in itertools.product(range(D), repeat=r):
                    w = sp.Rational(1, sp.factorial(r))
                    for k, c in zip(comp, idx):
                        w = w * d[k][c]
                    G = [a + w * t for a, t in zip(G, dg(tuple(sorted(idx))))]
        known, dknown = series.known(j, flow_w), series.known(j, mom_w)
        f_j = [(dk - kn - gj) * (1 / (1 - b)) for dk, kn, gj in zip(dknown, known, G)]
        series.f.append(f_j if poly else [sp.expand(e) for e in f_j])
        d[j + 1] = [b * fj + dk for fj, dk in zip(series.f[j], dknown)]
    terms = [sp.Matrix([sp.expand(e.as_expr() if poly else e) for e in f]) for f in series.f]
    return ModifiedEquation(terms, tuple(syms), h, "nesterov", E)


def verify_order(me, theta, hs, step=None):
    """Fitted slope of ‖Φ_h(θ) − φ̃_h(θ)‖ against h (expected order + 2), where φ̃_h is the
    time-h flow of the truncated modified field, integrated by fc.solve (dop853, rtol 1e-13).
    Φ defaults to GD on the equation's loss."""
    theta = np.asarray(theta, dtype=float).reshape(1, -1)
    if step is None:
        grad = sp.lambdify(me.vars, [sp.diff(me.loss, v) for v in me.vars], "numpy")
        step = lambda th, hh: th - hh * np.array(grad(*th), dtype=float)  # noqa: E731
    errs = []
    for hh in hs:
        flow = me.to_flow(hh)
        y = fc.solve(flow, theta, t_span=(0, hh), method=fc.Dop853(rtol=1e-13, atol=1e-15)).y[0, -1]
        errs.append(np.linalg.norm(step(theta[0], hh) - y))
    return float(np.polyfit(np.log(hs), np.log(errs), 1)[0]), np.array(errs)
