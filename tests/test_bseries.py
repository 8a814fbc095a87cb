"""B-series: trees and their counts, order conditions, and the modified-equation coefficients
against the published values and against the concrete engine."""
from math import factorial

import numpy as np
import pytest
import sympy as sp

from flowcore.analysis import bea, bseries as bs


def test_tree_counts_and_combinatorics():
    assert [len(bs.trees(n)) for n in range(1, 9)] == [1, 1, 2, 4, 9, 20, 48, 115]   # OEIS A000081
    for n in range(1, 8):
        # monotone labellings n!/(σγ) sum to (n−1)!
        assert sum(factorial(n) // (bs.sigma(t) * bs.gamma(t)) for t in bs.trees(n)) == factorial(n - 1)
    cherry, tall = bs.from_level_sequence([1, 2, 2]), bs.from_level_sequence([1, 2, 3])
    assert (bs.sigma(cherry), bs.gamma(cherry), bs.sigma(tall), bs.gamma(tall)) == (2, 3, 1, 6)
    for t in bs.trees(6):
        assert bs.from_level_sequence(bs.level_sequence(t)) == t
    assert bs.elementary_differential(bs.from_level_sequence([1, 2, 2, 3])) == "f''(f,f'f)"
    with pytest.raises(ValueError, match="level sequence"):
        bs.from_level_sequence([1, 3])


def test_rk4_order_conditions():
    tab = bs.TABLEAUX["rk4"]
    for n in range(1, 5):
        for t in bs.trees(n):
            assert bs.weight(tab, t) == sp.Rational(1, bs.gamma(t))
    assert any(bs.weight(tab, t) != sp.Rational(1, bs.gamma(t)) for t in bs.trees(5))


def coefficient_of_F(b, seq):
    t = bs.from_level_sequence(seq)
    return b[t] / bs.sigma(t)


def test_explicit_euler_coefficients():
    b = bs.modified_equation("euler", 4)
    R = sp.Rational
    expected = {(1, 2): R(-1, 2), (1, 2, 2): R(1, 12), (1, 2, 3): R(1, 3), (1, 2, 2, 2): 0,
                (1, 2, 2, 3): R(-1, 12), (1, 2, 3, 3): R(-1, 12), (1, 2, 3, 4): R(-1, 4)}
    for seq, c in expected.items():
        assert coefficient_of_F(b, seq) == c, seq


def test_explicit_midpoint_b():
    b = bs.modified_equation("midpoint", 4)
    R = sp.Rational
    for seq, c in {(1, 2, 2): R(-1, 12), (1, 2, 3): R(-1, 6), (1, 2, 3, 3): R(1, 8), (1, 2, 3, 4): R(1, 8)}.items():
        assert b[bs.from_level_sequence(seq)] == c, seq


def test_gauss_legendre_irrational_entries():
    """2-stage Gauss (√3 in A): order 4, so b(t) = 0 for 2 ≤ |t| ≤ 4; exact arithmetic throughout."""
    r = sp.sqrt(3)
    gl = bs.ButcherTableau(((sp.Rational(1, 4), sp.Rational(1, 4) - r / 6),
                            (sp.Rational(1, 4) + r / 6, sp.Rational(1, 4))),
                           (sp.Rational(1, 2), sp.Rational(1, 2)), name="gauss2")
    b = bs.modified_equation(gl, 5)
    assert all(b[t] == 0 for n in (2, 3, 4) for t in bs.trees(n))
    assert any(b[t] != 0 for t in bs.trees(5))
    assert all(sp.nsimplify(b[t]).is_rational for t in bs.trees(5))


def test_euler_bseries_equals_concrete_gd_engine():
    """f = −∇E: Σ_{|t|=k+1} b(t)/σ(t) F(t) equals the concrete modified equation, k ≤ 4."""
    x, y = sp.symbols("x y")
    rng = np.random.default_rng(5)
    coeffs = rng.integers(-3, 4, size=5)
    E = (coeffs[0] * x**3 + coeffs[1] * x * y**2 + coeffs[2] * y**3 + coeffs[3] * x**2 + coeffs[4] * y**2) / 3
    field = [-sp.diff(E, v) for v in (x, y)]
    b = bs.modified_equation("euler", 5)
    me = bea.modified_equation(E, order=4)
    for k in range(5):
        total = sp.zeros(2, 1)
        for t in bs.trees(k + 1):
            if b[t] != 0:
                total += b[t] / bs.sigma(t) * bs.evaluate_differential(t, field, (x, y))
        assert sp.expand(total - me.terms[k]) == sp.zeros(2, 1), k


def test_rational_tableau_stays_rational():
    """c₂ = 194/1065 (Ralston-type 2-stage family, b₂ = 1/(2c₂)): by hand Φ(•) = 1, Φ([•]) = b₂c₂ = 1/2,
    Φ([•,•]) = b₂c₂² = c₂/2 = 97/1065, Φ([[•]]) = 0. nsimplify once turned 97/1065 into radicals."""
    c = sp.Rational(194, 1065)
    tab = bs.ButcherTableau(((0, 0), (c, 0)), (1 - 1 / (2 * c), 1 / (2 * c)), (0, c), name="c=194/1065")
    bushy, tall = bs.trees(3)
    assert bs.weight(tab, bushy) == sp.Rational(97, 1065)
    assert bs.weight(tab, tall) == 0
    b = bs.modified_equation(tab, 4)
    assert all(v.is_Rational for v in b.values())
    assert bs.exact(0.9) == sp.Rational(9, 10) and bs.exact(sp.Rational(97, 1065)) == sp.Rational(97, 1065)


def test_one_tableau_type_validated_and_order_conditions_of_the_integrators_tableaux():
    """The integrators' tableaux are the B-series' tableaux: dopri5 (exact rationals) meets every
    order condition Φ(t) = 1/γ(t) to order 5 exactly, its embedded b − e[:s] to order 4; DOP853
    (double precision) to order 8 within 1e-13. Bad tableaux are refused."""
    from flowcore.engine.tableaux import TABLEAUX, Tableau
    import numpy as np
    assert bs.TABLEAUX is TABLEAUX and bs.ButcherTableau is Tableau
    d5 = TABLEAUX["dopri5"]
    for n in range(1, 6):
        for t in bs.trees(n):
            assert bs.weight(d5, t) == sp.Rational(1, bs.gamma(t))
    # the embedded 4th-order weights include f(y⁺) (FSAL): b* = b − e over s + 1 stages
    A7 = [list(r) + [0] for r in d5.A] + [list(d5.b) + [0]]
    bstar = [bi - ei for bi, ei in zip(list(d5.b) + [0], d5.e)]
    four = Tableau(A7, bstar, name="dopri5-embedded")
    assert all(bs.weight(four, t) == sp.Rational(1, bs.gamma(t)) for n in range(1, 5) for t in bs.trees(n))
    assert any(bs.weight(four, t) != sp.Rational(1, bs.gamma(t)) for t in bs.trees(5))
    d8 = TABLEAUX["dop853"]
    A, b = np.array(d8.A, float), np.array(d8.b, float)

    def phi(t):                                   # numeric stage weights, the same recursion
        out = np.ones(len(b))
        for child in t:
            out = out * (A @ phi(child))
        return out
    worst = max(abs(b @ phi(t) - 1 / bs.gamma(t)) for n in range(1, 9) for t in bs.trees(n))
    assert worst < 1e-13
    with pytest.raises(ValueError, match="sums to"):
        Tableau(((0, 0), (sp.Rational(1, 2), 0)), (0, 1), c=(0, 1))
    with pytest.raises(ValueError, match="sum to"):
        Tableau(((0,),), (sp.Rational(1, 2),))
    with pytest.raises(ValueError, match="implicit"):
        import flowcore as fc
        gl = Tableau(((sp.Rational(1, 2),),), (1,), name="implicit midpoint")
        fc.FixedStep(gl, dt=0.1)
