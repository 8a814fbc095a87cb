"""B-series: rooted trees, elementary weights and differentials, and the modified equation
of any Runge–Kutta tableau (exact sympy arithmetic).

Conventions: a method's step is y₁ = y₀ + Σ_t h^{|t|} Φ(t)/σ(t) F(t), the exact flow has
Φ = 1/γ, and the modified field is f̃ = Σ_t h^{|t|−1} b(t)/σ(t) F(t). The coefficients b(t)
come from the same recursion as the concrete modified equation (analysis.bea), run in the
free algebra of trees: the derivative of F(u) along F(v) is Σ_{nodes of u} F(u with v grafted
there), so the Lie-series coefficients are linear combinations of trees.
"""
from functools import lru_cache
from math import factorial

import sympy as sp

from flowcore.engine.tableaux import TABLEAUX, Tableau

# A tree is a sorted tuple of its children (each a tree); the single node is ().


@lru_cache(maxsize=None)
def order(t):
    """|t|: the number of nodes."""
    return 1 + sum(order(c) for c in t)


@lru_cache(maxsize=None)
def sigma(t):
    """σ(t): the order of the tree's symmetry group."""
    out = 1
    for c in set(t):
        k = t.count(c)
        out *= factorial(k) * sigma(c) ** k
    return out


@lru_cache(maxsize=None)
def gamma(t):
    """γ(t): the density, |t| Π γ(children)."""
    out = order(t)
    for c in t:
        out *= gamma(c)
    return out


def _canon(children):
    return tuple(sorted(children, key=_key))


@lru_cache(maxsize=None)
def _key(t):
    return (order(t), tuple(_key(c) for c in t))


def level_sequence(t, level=1):
    """Pre-order depths, root 1, children in canonical order: [1, 2, 2] is the cherry."""
    seq = [level]
    for c in t:
        seq += level_sequence(c, level + 1)
    return seq


def from_level_sequence(seq):
    """The tree of a level sequence (inverse of level_sequence)."""
    seq = list(seq)
    if not seq or seq[0] != 1:
        raise ValueError(f"a level sequence starts at 1, got {seq}")

    def build(i, level):
        children, j = [], i + 1
        while j < len(seq) and seq[j] > level:
            if seq[j] != level + 1:
                raise ValueError(f"invalid level sequence {seq}")
            child, j = build(j, level + 1)
            children.append(child)
        return _canon(children), j
    t, end = build(0, 1)
    if end != len(seq):
        raise ValueError(f"invalid level sequence {seq}")
    return t


@lru_cache(maxsize=None)
def trees(n):
    """All rooted trees with n nodes (canonical, sorted)."""
    if n == 1:
        return ((),)
    out = set()
    for t in trees(n - 1):
        out.update(graft(t, ()))
    return tuple(sorted(out, key=_key))


@lru_cache(maxsize=None)
def graft(u, v):
    """The trees obtained by attaching v to each node of u, with multiplicity (a tuple)."""
    out = [_canon(u + (v,))]
    for i, c in enumerate(u):
        for g in graft(c, v):
            out.append(_canon(u[:i] + (g,) + u[i + 1:]))
    return tuple(out)


def elementary_differential(t):
    """F(t) as text: f, f'f, f''(f,f), f'f'f, ..."""
    if not t:
        return "f"
    args = [elementary_differential(c) for c in t]
    d = "f" + "'" * len(t)
    return d + args[0] if len(args) == 1 else f"{d}({','.join(args)})"


ButcherTableau = Tableau      # the one tableau type (flowcore.engine.tableaux): exact entries, validated


def weight(tab, t):
    """Elementary weight Φ(t) = Σ_i b_i Φ_i(t), Φ_i(t) = Π_children Σ_j a_ij Φ_j(child), exactly."""
    A, b = sp.Matrix(tab.A), sp.Matrix(tab.b).reshape(tab.stages, 1)
    return exact(sp.simplify((b.T * _stage_weights(t, A))[0]))


def _stage_weights(t, A):
    s = A.rows
    out = sp.ones(s, 1)
    for c in t:
        inner = A * _stage_weights(c, A)
        out = sp.Matrix([out[i] * inner[i] for i in range(s)])
    return out


def exact(x):
    """x as an exact sympy number: floats become the nearest simple rationals (0.9 -> 9/10);
    numbers that are already exact (194/1065, √3/6) are kept as they are: ``nsimplify`` is not
    the identity on them (it turns 97/1065 into a product of radicals)."""
    if isinstance(x, str):
        raise TypeError(f"expected a number, got the string {x!r}")
    x = sp.sympify(x)
    return sp.nsimplify(x, rational=True) if x.has(sp.Float) else x


def modified_equation(method, order_):
    """b(t) for every tree with |t| ≤ order_: the modified field of ``method`` (a name in
    TABLEAUX or a Tableau) is f̃ = Σ_t h^{|t|−1} b(t)/σ(t) F(t). Returns {tree: b(t)}."""
    tab = TABLEAUX.get(method) if isinstance(method, str) else method
    if not isinstance(tab, Tableau):
        raise ValueError(f"method must be one of {sorted(TABLEAUX)} or a Tableau, got {method!r}")
    if not isinstance(order_, int) or order_ < 1:
        raise ValueError(f"order must be an integer >= 1, got {order_!r}")
    f = []                      # f[k]: {tree of order k+1: coefficient of F(tree)}
    T = {}

    def add(acc, tree, c):
        acc[tree] = acc.get(tree, 0) + c

    def Tm(m, k):               # h^k coefficient of F^{[m]}, a combination of trees
        if m == 1:
            return f[k]
        if (m, k) not in T:
            acc = {}
            for a in range(k + 1):
                for u, cu in Tm(m - 1, a).items():
                    for v, cv in f[k - a].items():
                        for g in graft(u, v):
                            add(acc, g, cu * cv)
            T[m, k] = acc
        return T[m, k]

    for j in range(order_):
        target = {t: weight(tab, t) / sigma(t) for t in trees(j + 1)}
        for m in range(2, j + 2):
            for t, c in Tm(m, j + 1 - m).items():
                add(target, t, -sp.Rational(1, factorial(m)) * c)
        f.append({t: exact(sp.simplify(c)) for t, c in target.items()})
    return {t: sp.simplify(c * sigma(t)) for fk in f for t, c in fk.items()}


def evaluate_differential(t, field, syms):
    """F(t) for a concrete sympy vector field f(θ) (list of expressions in syms)."""
    f = sp.Matrix(field)
    if not t:
        return f
    args = [evaluate_differential(c, field, syms) for c in t]
    eps = sp.symbols(f"eps0:{len(args)}")
    shifted = {s: s + sum(e * a[i] for e, a in zip(eps, args)) for i, s in enumerate(syms)}
    g = f.xreplace(shifted)
    for e in eps:
        g = g.diff(e)
    return g.subs({e: 0 for e in eps}).applyfunc(sp.expand)
