"""Modified equations against hand-derived closed forms and numerical local errors."""
import numpy as np
import pytest
import sympy as sp

from flowcore.analysis import bea

x, y = sp.symbols("x y")


def tensors(E, syms):
    g = sp.Matrix([sp.diff(E, s) for s in syms])
    H = sp.hessian(E, syms)
    T = sp.Matrix([sum(sp.diff(E, si, sj, sk) * g[j] * g[k] for j, sj in enumerate(syms)
                       for k, sk in enumerate(syms)) for si in syms])
    return g, H, T


def test_gd_order_two_is_the_third_order_flow():
    """Paper Eq 8: θ' = −g − (h/2)Hg − h²((1/3)H²g + (1/12)T[g,g])."""
    E = x**4 / 4 - x**2 * y + y**3 / 3 + 2 * x * y
    me = bea.modified_equation(E, order=2)
    g, H, T = tensors(E, (x, y))
    expected = [-g, -H * g / 2, -(H * H * g) / 3 - T / 12]
    for k in range(3):
        assert sp.expand(me.terms[k] - expected[k]) == sp.zeros(2, 1), k


def test_principal_terms_theorem_on_quadratics():
    """Theorem 3.1: the principal part is −Σ_p h^p H^p g/(p+1); on a quadratic it is all
    there is (T and higher derivatives vanish). Checked for p ≤ 12."""
    A = sp.Matrix([[3, 1], [1, 2]]) / 2
    X = sp.Matrix([x, y])
    E = (X.T * A * X)[0] / 2 + x - y
    me = bea.modified_equation(E, order=12)
    g = A * X + sp.Matrix([1, -1])
    for p in range(13):
        assert sp.expand(me.terms[p] + A ** p * g / (p + 1)) == sp.zeros(2, 1), p


def test_euler_scalar_modified_fields():
    """Explicit Euler on y' = y²: y² − h y³ + (3/2)h² y⁴ − (8/3)h³ y⁵; on y' = λy: log(1+hλ)/h·y."""
    me = bea.modified_equation(order=3, vars=("y",), step=lambda th, h: th + h * th.applyfunc(lambda e: e**2))
    assert [sp.expand(f[0]) for f in me.terms] == [y**2, -y**3, sp.Rational(3, 2) * y**4, -sp.Rational(8, 3) * y**5]
    lam = sp.Symbol("lambda")
    lin = bea.modified_equation(order=5, vars=("y",), step=lambda th, h: th + h * lam * th)
    series = sp.series(sp.log(1 + bea.H_SYMBOL * lam) / bea.H_SYMBOL * y, bea.H_SYMBOL, 0, 6).removeO()
    got = sum(bea.H_SYMBOL**k * f[0] for k, f in enumerate(lin.terms))
    assert sp.expand(got - series) == 0


def test_is_gradient():
    E = x**4 / 4 + x * y**2 + y**3 / 3
    me = bea.modified_equation(E, order=2)
    ok, P = me.is_gradient(1)
    g = sp.Matrix([sp.diff(E, v) for v in (x, y)])
    assert ok and sp.expand(P - (-(g.T * g)[0] / 4)) == 0   # f₁ = −∇(¼‖∇E‖²)
    assert me.is_gradient(2) == (False, None)               # order 2 is not a gradient here
    ok0, P0 = me.is_gradient(0)
    assert ok0 and sp.expand(P0 + E) == 0


def test_latex_and_errors():
    me = bea.modified_equation("(x**2 - 1)**2 + y**2", order=1)
    text = me.latex()
    # a complete environment that compiles on its own: begin/end, one aligned row per term
    assert text.startswith(r"\begin{aligned}") and text.endswith(r"\end{aligned}")
    assert text.count("&") == 2 and r"&+ h\," in text and r"\frac{d}{dt}" in text
    assert text.count("{") == text.count("}")
    assert me._repr_latex_() == "$$" + text + "$$"
    with pytest.raises(ValueError, match="order"):
        bea.modified_equation("x**2", order=-1)
    with pytest.raises(ValueError, match="vars"):
        bea.modified_equation(order=1)


def test_a_loss_object_gives_its_expression():
    import flowcore as fc
    x, y = sp.symbols("x y")
    me = bea.modified_equation(fc.losses.double_well(), order=1)
    # f₀ = −∇E, f₁ = −½H∇E for E = (x² − 1)² + y² (by hand)
    assert sp.simplify(me.terms[0] - sp.Matrix([-4 * x**3 + 4 * x, -2 * y])) == sp.zeros(2, 1)
    assert sp.simplify(me.terms[1] - sp.Matrix([-(12 * x**2 - 4) * (4 * x**3 - 4 * x) / 2, -2 * y])) == sp.zeros(2, 1)
    with pytest.raises(ValueError, match="no symbolic expression"):
        bea.modified_equation(fc.Loss.from_callable(lambda t: t @ t, lambda t: 2 * t, dim=2), order=1)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4])
def test_local_error_slope_is_order_plus_two(n):
    """‖GD step − flow of the truncated modified field over time h‖ = O(h^{n+2})."""
    me = bea.modified_equation("(x**2 - 1)**2 / 4 + x*y + y**2/2", order=n)
    slope, errs = bea.verify_order(me, [0.7, -0.4], [0.1, 0.07, 0.05])
    assert abs(slope - (n + 2)) < 0.2, (slope, errs)


def test_heavy_ball_first_order_symbolic_beta():
    """θ' = −g/(1−β) − h(1+β)/(2(1−β)³) H g (position-only modified equation)."""
    b = sp.Symbol("beta")
    E = x**4 / 4 + x * y + y**2
    me = bea.modified_equation(E, order=1, method="heavy_ball", beta=b)
    g = sp.Matrix([sp.diff(E, v) for v in (x, y)])
    H = sp.hessian(E, (x, y))
    assert sp.simplify(me.terms[0] + g / (1 - b)) == sp.zeros(2, 1)
    assert sp.simplify(me.terms[1] + (1 + b) / (2 * (1 - b)**3) * H * g) == sp.zeros(2, 1)
    with pytest.raises(ValueError, match="beta"):
        bea.modified_equation(E, order=1, method="heavy_ball", beta=1.5)


MOMENTUM_LOSS = (x**2 - 1)**2 / 4 + x * y + y**2 / 2


def two_step_residual_slope(me, next_point, hs=(0.1, 0.07, 0.05)):
    """Slope of ‖φ_h(θ) − next_point(θ, φ_{−h}(θ), h)‖ in h, φ the flow of the truncated field
    (forward and backward in time by fc.solve at rtol 1e-13)."""
    import flowcore as fc
    th = np.array([[0.7, -0.4]])
    errs = []
    for h in hs:
        field = [sp.expand(-c.subs(me.h, h)) for c in me.field()]
        kw = dict(t_span=(0, h), method=fc.Dop853(rtol=1e-13, atol=1e-15))
        ahead = fc.solve(me.to_flow(h), th, **kw).y[0, -1]
        back = fc.solve(fc.Field.from_expr(field, vars=("x", "y")), th, **kw).y[0, -1]
        errs.append(np.linalg.norm(ahead - next_point(th[0], back, h)))
    return np.polyfit(np.log(hs), np.log(errs), 1)[0], errs


@pytest.mark.parametrize("method", ["heavy_ball", "nesterov"])
@pytest.mark.parametrize("n", [0, 1, 2])
def test_momentum_two_step_residual_slope(method, n):
    """Heavy ball: θ⁺ = θ − h g(θ) + β(θ − θ⁻); Nesterov: θ⁺ = y − h g(y), y = θ + β(θ − θ⁻);
    on the truncated flow (θ⁻ = φ_{−h}(θ)) the residual is O(h^{n+2})."""
    beta = 0.5
    me = bea.modified_equation(MOMENTUM_LOSS, order=n, method=method, beta=beta)
    grad = sp.lambdify((x, y), [sp.diff(MOMENTUM_LOSS, v) for v in (x, y)])

    def next_point(th, back, h):
        yy = th + beta * (th - back) if method == "nesterov" else th
        return yy - h * np.array(grad(*yy)) + (beta * (th - back) if method == "heavy_ball" else 0)
    slope, errs = two_step_residual_slope(me, next_point)
    assert abs(slope - (n + 2)) < 0.25, (slope, errs)


def test_principal_and_nonprincipal_split():
    E = x**4 / 4 + x * y + y**2
    me = bea.modified_equation(E, order=3)
    g, H, T = tensors(E, (x, y))
    P = me.principal()
    for p in range(4):
        assert sp.expand(P[p] + H**p * g / (p + 1)) == sp.zeros(2, 1)
    NP = me.nonprincipal()
    assert NP[0] == sp.zeros(2, 1) and NP[1] == sp.zeros(2, 1)
    assert sp.expand(NP[2] + T / 12) == sp.zeros(2, 1)
    quad = bea.modified_equation(x**2 + x * y + 3 * y**2, order=5)
    assert all(v == sp.zeros(2, 1) for v in quad.nonprincipal())


def test_tensor_form_and_theorem_3_1_on_all_trees():
    """Tensor form from the B-series: order 2 is −(1/3)H²g − (1/12)∇³E[g,g], and for every
    p ≤ 7 the coefficient of H^p g (the tall tree) is −1/(p+1) (Theorem 3.1)."""
    me = bea.modified_equation("x**4/4 + x*y**2", order=7)
    tf = me.tensor_form()
    assert tf[0] == [(-1, "g")] and tf[1] == [(sp.Rational(-1, 2), "H[g]")]
    assert sorted(tf[2], key=str) == sorted([(sp.Rational(-1, 12), "∇³E[g, g]"),
                                             (sp.Rational(-1, 3), "H[H[g]]")], key=str)
    for p in range(8):
        tall = "H[" * p + "g" + "]" * p
        assert dict((text, c) for c, text in tf[p])[tall] == sp.Rational(-1, p + 1)


def test_step_map_must_be_near_identity():
    b = sp.Rational(1, 2)
    with pytest.raises(ValueError, match="identity"):
        bea.modified_equation(order=1, vars=("x", "y"),
                              step=lambda th, h: sp.Matrix([th[0] + b * th[1] - h * th[0], b * th[1] - h * th[0]]))


def test_bad_method_names_every_method():
    import pytest
    from flowcore import analysis as fa
    with pytest.raises(ValueError, match="'gd', 'heavy_ball' or 'nesterov'"):
        fa.modified_equation("x**4/4", order=1, method="adam")
