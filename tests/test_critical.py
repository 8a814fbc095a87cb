"""Critical points and stability against sympy, closed forms and actual GD runs."""
import numpy as np
import pytest
import scipy.linalg as sl
import sympy as sp

import flowcore as fc
from flowcore import analysis as fa


def points(cps):
    return sorted((tuple(np.round(c.point, 9)), c.kind) for c in cps)


def test_zoo_critical_points():
    assert points(fa.critical_points(fc.losses.double_well())) == [
        ((-1.0, 0.0), "min"), ((0.0, 0.0), "saddle"), ((1.0, 0.0), "min")]
    assert points(fa.critical_points(fc.losses.quartic_1d())) == [
        ((-1.0,), "min"), ((0.0,), "max"), ((1.0,), "min")]
    (rb,) = fa.critical_points(fc.losses.rosenbrock())
    np.testing.assert_allclose(rb.point, [1, 1], atol=1e-14)
    np.testing.assert_allclose(rb.eigenvalues, np.linalg.eigvalsh([[802, -400], [-400, 200]]), rtol=1e-12)
    assert rb.kind == "min"


def test_ring_saddle_against_sympy_exact_solution():
    a, b = sp.symbols("a b")
    E = (a**2 + b**2 - 1)**2 + a * b
    exact = sp.solve([sp.diff(E, a), sp.diff(E, b)], [a, b], dict=True)
    real = sorted(tuple(round(float(sp.re(sp.N(s[v]))), 9) for v in (a, b)) for s in exact
                  if all(abs(complex(sp.N(s[v])).imag) < 1e-12 for v in (a, b)))
    loss = fc.losses.ring_saddle()
    found = fa.critical_points(loss)
    assert sorted(tuple(np.round(c.point, 9)) for c in found) == real
    # the Newton search (no sympy) finds the same set
    newton = fa.critical_points(loss, box=[[-1.5, 1.5], [-1.5, 1.5]], exact=False)
    assert sorted(tuple(np.round(c.point, 9)) for c in newton) == real
    assert all(c.residual < 1e-12 for c in newton)
    kinds = {tuple(np.round(c.point, 6)): c.kind for c in found}
    assert kinds[(0.0, 0.0)] == "max"


def test_newton_on_non_polynomial_loss():
    loss = fc.Loss.from_expr("exp(x)*cos(y) - x")          # critical points (0, 2πk)
    cps = fa.critical_points(loss, box=[[-2, 2], [-7, 7]], grid=21)
    ys = sorted(c.point[1] for c in cps)
    np.testing.assert_allclose(ys, [-2 * np.pi, 0, 2 * np.pi], atol=1e-10)
    assert all(c.kind == "saddle" for c in cps)


def test_bad_box_and_degenerate_set():
    loss = fc.losses.double_well()
    with pytest.raises(ValueError, match="box"):
        fa.critical_points(loss, box=[[0, 1]], exact=False)
    with pytest.raises(ValueError, match="box"):
        fa.critical_points(loss, box=[[1, 0], [0, 1]], exact=False)
    line = fc.Loss.from_expr("(x - y)**2")
    cps = fa.critical_points(line, box=[[-1, 1], [-1, 1]], grid=5)
    assert cps and all(c.kind == "degenerate" for c in cps)
    assert all(abs(c.point[0] - c.point[1]) < 1e-12 for c in cps)
    with pytest.raises(ValueError, match="box"):
        fa.critical_points(fc.Loss.from_expr("exp(x) - x + y**2"))


def test_pf_jacobian_exponentiates_to_the_gd_map():
    """exp(h·J_PF) = I − hH, numerically (matrix) and symbolically (diagonal H)."""
    rng = np.random.default_rng(4)
    h = 0.3
    for _ in range(5):
        Q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        lam = rng.uniform(-3, 9, 3)                        # includes hλ > 1 and hλ > 2
        H = Q @ np.diag(lam) @ Q.T
        mu = np.array([fa.jacobian_eigenvalues(l, h, "pf")[0] for l in lam])
        J = Q @ np.diag(mu) @ Q.T
        np.testing.assert_allclose(sl.expm(h * J), np.eye(3) - h * H, atol=1e-12)
    l1, l2, hs = sp.symbols("lambda1 lambda2 h", positive=True)
    for l in (l1, l2):
        (mu,) = fa.jacobian_eigenvalues(l, hs, "pf")
        assert sp.simplify(sp.exp(hs * mu) - (1 - hs * l)) == 0


def test_igr_jacobian_is_minus_lambda_minus_half_h_lambda_squared():
    """The derivation: J = −H − (h/2)H² (the paper prints h²/2)."""
    x, y, h = sp.symbols("x y h")
    E = (x**2 - 1)**2 + 3 * y**2
    g = sp.Matrix([sp.diff(E, v) for v in (x, y)])
    H = sp.hessian(E, (x, y))
    field = -g - h / 2 * H * g
    J = field.jacobian((x, y)).subs({x: 1, y: 0})
    lam_x, lam_y = 8, 6
    assert sp.simplify(J - sp.diag(-lam_x - h / 2 * lam_x**2, -lam_y - h / 2 * lam_y**2)) == sp.zeros(2)
    for lam in (lam_x, lam_y):
        assert sp.simplify(fa.jacobian_eigenvalues(sp.Integer(lam), h, "igr")[0] - (-lam - h / 2 * lam**2)) == 0


def test_stability_verdicts_and_symbolic_mode():
    mins = [c for c in fa.critical_points(fc.losses.double_well()) if c.kind == "min"][0]   # λ = 2, 8
    st = fa.stability(mins, 0.3)                                                            # hλ = 0.6, 2.4
    assert st["gd"]["verdicts"] == ["attractive", "repelling"]
    assert st["pf"]["verdicts"] == ["attractive", "repelling"]
    assert st["ngf"]["verdict"] == st["igr"]["verdict"] == "attractive"
    lam, h = sp.symbols("lambda h", positive=True)
    sym = fa.stability([lam], h, models=("ngf", "gd"))
    assert sym["ngf"]["verdicts"] == ["attractive"] and sym["gd"]["verdicts"] == ["depends"]
    assert fa.stability([sp.Integer(2)], sp.Integer(1), models=("gd",))["gd"]["verdicts"] == ["neutral"]


@pytest.mark.parametrize("model", ["gd", "heavy_ball"])
def test_stable_lr_interval_against_gd_runs(model):
    loss = fc.losses.rosenbrock(b=10)
    (cp,) = fa.critical_points(loss)
    (iv,) = fa.stable_lr_interval(cp, model, beta=0.5)
    assert iv[0] == 0
    hmax = iv[1]
    expected = (2 if model == "gd" else 3) / cp.eigenvalues.max()
    assert hmax == pytest.approx(expected, rel=1e-14)
    start = cp.point + 1e-6 * np.array([0.6, 0.8])
    for h, converges in ((0.99 * hmax, True), (1.01 * hmax, False)):
        run = fc.descend(loss, start, fc.method(model, lr=h, **({"beta": 0.5} if model == "heavy_ball" else {})), 4000)
        dist = np.linalg.norm(run.final[0] - cp.point)
        assert (dist < 1e-9) == converges, (h, dist)


def test_stable_lr_interval_closed_forms():
    dw = fa.critical_points(fc.losses.double_well())
    saddle = [c for c in dw if c.kind == "saddle"][0]          # λ = −4, 2
    mn = [c for c in dw if c.kind == "min"][0]                 # λ = 2, 8
    assert fa.stable_lr_interval(mn, "ngf") == [(0.0, np.inf)]
    assert fa.stable_lr_interval(mn, "igr") == [(0.0, np.inf)]
    assert fa.stable_lr_interval(mn, "pf") == [(0.0, 0.25)]
    assert fa.stable_lr_interval(saddle, "ngf") == []
    assert fa.stable_lr_interval(saddle, "third_order") == []
    assert fa.stable_lr_interval(saddle, "gd") == []
    assert fa.stable_lr_interval(saddle, "igr") == [(0.5, np.inf)]   # −λ(1 + hλ/2) < 0 for h > 2/4


def test_stability_coefficients_sign_convention():
    loss = fc.losses.double_well()
    th = np.array([[0.4, -0.3], [1.2, 0.5]])
    sc, lam = fa.stability_coefficients(loss, th, 0.2)
    g = loss.grad(th)
    _, U = np.linalg.eigh(loss.hess(th))
    proj = np.abs(np.einsum("na,nai->ni", g, U))
    z = 0.2 * lam
    alpha = (np.log(np.abs(1 - z)) + 1j * np.pi * (z > 1)) / z
    np.testing.assert_allclose(sc, alpha * proj, rtol=1e-12)


def test_himmelblau_all_nine_critical_points_against_mpmath():
    """sympy.solve returns 4 of the 9; the Gröbner basis finds all, each a root of ∇E found
    independently by mpmath's findroot from the Newton point, with the right kinds."""
    import mpmath
    loss = fc.Loss.from_expr("(x**2+y-11)**2+(x+y**2-7)**2")
    cps = fa.critical_points(loss)
    assert cps.method == "groebner" and cps.complete and not cps.notes
    kinds = sorted(c.kind for c in cps)
    assert kinds == ["max"] + ["min"] * 4 + ["saddle"] * 4
    (mx,) = [c for c in cps if c.kind == "max"]
    np.testing.assert_allclose(mx.point, [-0.270845, -0.923039], atol=1e-6)
    gx = lambda x, y: 4 * x * (x**2 + y - 11) + 2 * (x + y**2 - 7)         # noqa: E731
    gy = lambda x, y: 2 * (x**2 + y - 11) + 4 * y * (x + y**2 - 7)         # noqa: E731
    for c in cps:
        with mpmath.workdps(30):
            r = mpmath.findroot([gx, gy], tuple(c.point))
        np.testing.assert_allclose(c.point, [float(r[0]), float(r[1])], atol=1e-12)
    # the Newton search in a box agrees
    newton = fa.critical_points(loss, box=[[-6, 6], [-6, 6]], exact=False, grid=25)
    assert points(newton) == points(cps) or len(newton) == 9


def test_critical_counts_of_known_losses():
    """Counts by hand: x³ − 3x + y³ − 3y + z² has (±1, ±1, 0): 1 min and 3 saddles; x²(x − 1)³ + y²
    has x = 0 (saddle), x = 1 (degenerate), x = 2/5 (min); x⁴ + y² has one degenerate point."""
    cps = fa.critical_points(fc.Loss.from_expr("x**3 - 3*x + y**3 - 3*y + z**2"))
    assert points(cps) == [((-1.0, -1.0, 0.0), "saddle"), ((-1.0, 1.0, 0.0), "saddle"),
                           ((1.0, -1.0, 0.0), "saddle"), ((1.0, 1.0, 0.0), "min")]
    cps = fa.critical_points(fc.Loss.from_expr("x**2*(x - 1)**3 + y**2"))
    assert points(cps) == [((0.0, 0.0), "saddle"), ((0.4, 0.0), "min"), ((1.0, 0.0), "degenerate")]
    assert cps[0].exact is not None and {str(v) for v in cps[0].exact.values()} <= {"0", "2/5", "1"}
    (c,) = fa.critical_points(fc.Loss.from_expr("x**4 + y**2"))
    assert c.kind == "degenerate" and np.all(c.point == 0)


def test_newton_only_result_says_it_is_not_proven_complete():
    cps = fa.critical_points(fc.Loss.from_expr("exp(x)*cos(y) - x"), box=[[-2, 2], [-7, 7]], grid=21)
    assert cps.method == "newton" and not cps.complete and cps.notes
    with pytest.raises(ValueError, match="not isolated"):
        fa.critical_points(fc.Loss.from_expr("(x - y)**2"))
