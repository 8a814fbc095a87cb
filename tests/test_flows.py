"""Spectral flows and general fields against closed forms, scipy and sympy."""
import numpy as np
import pytest
import scipy.linalg as sl
import sympy as sp

import flowcore as fc

RNG = np.random.default_rng(1)


def random_quadratic(D, hmax, h, indefinite=True):
    """A, b with max |hλ| = hmax; some eigenvalues negative when indefinite."""
    Q, _ = np.linalg.qr(RNG.normal(size=(D, D)))
    lam = RNG.uniform(-1 if indefinite else 0.05, 1, D)
    lam[0] = 1.0
    lam *= hmax / h / np.max(np.abs(lam))
    return Q @ np.diag(lam) @ Q.T, RNG.normal(size=D)


@pytest.mark.parametrize("D", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("hmax", [0.5, 1.6, 4.0, 10.0])
def test_pf_on_quadratic_equals_matrix_log(D, hmax):
    h = 0.3
    A, b = random_quadratic(D, hmax, h)
    loss = fc.losses.quadratic(A, b)
    flow = fc.flows.pf(loss, h)
    th = RNG.normal(size=(6, D))
    got = flow(th)
    M = sl.logm(np.eye(D) - h * A) / h @ np.linalg.inv(A)        # (1/h) log(I − hA) A⁻¹
    ref = (M @ (th @ A.T + b).T).T
    err = np.linalg.norm(got - ref, axis=1) / np.linalg.norm(ref, axis=1)
    assert np.max(err) < 1e-10


def test_pf_confluent_eigenvalues_2d():
    """λ1 ≈ λ2: the divided difference takes its confluent limit without cancellation."""
    h = 0.5
    for base in [0.3, 1.4, 3.0, -2.0, 0.01]:
        for eps in [0.0, 1e-14, 1e-9, 1e-5, 1e-3, 1e-1]:
            A = np.array([[base / h + eps, 0.2 * eps], [0.2 * eps, base / h - eps]])
            loss = fc.losses.quadratic(A)
            th = np.array([[0.7, -1.3]])
            got = fc.flows.pf(loss, h)(th)[0]
            ref = sl.logm(np.eye(2) - h * A) @ np.linalg.solve(h * A, A @ th[0]) if eps > 1e-6 else \
                np.log(complex(1 - base)) / base * (A @ th[0])
            assert np.linalg.norm(got - ref) <= 1e-9 * np.linalg.norm(ref), (base, eps)


def test_closed_forms_agree_with_lapack_path():
    """D ≤ 2 closed forms vs the LAPACK path: embed the problem in a block-diagonal 3-D one."""
    h = 0.4
    for _ in range(20):
        for D in (1, 2):
            A, b = random_quadratic(D, RNG.uniform(0.2, 6), h)
            big = sl.block_diag(A, [[1.3]])
            th = RNG.normal(size=(4, D)) + 1j * RNG.normal(size=(4, D))
            small = fc.flows.pf(fc.losses.quadratic(A, b), h)(th)
            pad = np.concatenate([th, np.ones((4, 1))], axis=1)
            full = fc.flows.pf(fc.losses.quadratic(big, np.append(b, 0.0)), h)(pad)
            np.testing.assert_allclose(full[:, :D], small, rtol=1e-11, atol=1e-13)


def test_pf_complex_points_nonquadratic_lapack_vs_closed_form():
    """Complex-symmetric Hessians: 2-D closed form vs zgeev on a 3-D loss decoupled in z."""
    l2 = fc.Loss.from_expr("(x**2 - 1)**2 + x*y**3 + y**2")
    l3 = fc.Loss.from_expr("(x**2 - 1)**2 + x*y**3 + y**2 + z**2", vars=("x", "y", "z"))
    th = RNG.normal(size=(10, 2)) * 0.7 + 1j * RNG.normal(size=(10, 2)) * 0.3
    th3 = np.concatenate([th, np.full((10, 1), 0.5 + 0.1j)], axis=1)
    a = fc.flows.pf(l2, 0.3)(th)
    b3 = fc.flows.pf(l3, 0.3)(th3)
    np.testing.assert_allclose(b3[:, :2], a, rtol=1e-10, atol=1e-12)


def sympy_flow(expr, syms, h, coef, npc):
    """α(hH)g + npc·T[g,g] from sympy, evaluated by lambdify (independent of flowcore)."""
    g = sp.Matrix([sp.diff(expr, s) for s in syms])
    H = sp.hessian(expr, syms)
    r = coef[-1] * g
    for c in reversed(coef[:-1]):
        r = c * g + h * H * r
    T = sp.Matrix([sum(sp.diff(expr, si, sj, sk) * g[j] * g[k]
                       for j, sj in enumerate(syms) for k, sk in enumerate(syms)) for si in syms])
    f = sp.lambdify(syms, list(r + npc * T), "numpy")
    return lambda th: np.stack([np.broadcast_to(np.asarray(c, complex), th.shape[:1])
                                for c in f(*th.T)], -1)


@pytest.mark.parametrize("text", ["(x**2 - 1)**2 + y**2 + x*y**3/3", "exp(x*y/2) + log(1 + x**2) + y**4"])
def test_polynomial_flows_match_sympy(text):
    loss = fc.Loss.from_expr(text)
    syms = loss.vars
    h = 0.37
    th = RNG.uniform(-1, 1, (30, 2)) + 1j * RNG.uniform(-0.5, 0.5, (30, 2))
    cases = [(fc.flows.ngf(loss, h), [-1], 0), (fc.flows.pgf(loss, h), [1], 0),
             (fc.flows.igr(loss, h), [-1, -sp.Rational(1, 2)], 0),
             (fc.flows.third_order(loss, h), [-1, -sp.Rational(1, 2), -sp.Rational(1, 3)], -h * h / 12)]
    for n in range(5):
        cases.append((fc.flows.bea(loss, h, n), [-sp.Rational(1, p + 1) for p in range(n + 1)], 0))
    for flow, coef, npc in cases:
        ref = sympy_flow(loss.expr, syms, h, coef, npc)(th)
        got = flow(th)
        assert np.max(np.abs(got - ref) / (1 + np.abs(ref))) < 1e-11, flow.name
        # real points run in real arithmetic and agree with the complex kernel
        real = flow(th.real)
        assert real.dtype == np.float64
        np.testing.assert_allclose(real, sympy_flow(loss.expr, syms, h, coef, npc)(th.real).real,
                                   rtol=1e-11, atol=1e-12)


def test_pf_plus_np3_adds_the_third_derivative_term():
    loss = fc.losses.rosenbrock(b=3)
    h = 0.05
    th = RNG.uniform(-1, 1, (8, 2))
    g = loss.grad(th)
    diff = fc.flows.pf(loss, h, nonprincipal=True)(th) - fc.flows.pf(loss, h)(th)
    np.testing.assert_allclose(diff, -h * h / 12 * loss.third(th, g), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_pf_taylor_expansion_matches_bea(n):
    """‖PF_h − BEA_n,h‖ = O(h^{n+1}): fitted slope on a non-quadratic loss."""
    loss = fc.losses.double_well()
    th = np.array([[0.6, 0.4]])
    hs = np.array([0.02, 0.01, 0.005, 0.0025])
    errs = [np.linalg.norm(fc.flows.pf(loss, h)(th) - fc.flows.bea(loss, h, n)(th)) for h in hs]
    slope = np.polyfit(np.log(hs), np.log(errs), 1)[0]
    assert abs(slope - (n + 1)) < 0.1, slope


def test_branch_at_real_point_is_plus_i_pi():
    """θ = 1.05 on w⁴/4 − w²/2, h = 0.8: hλ ≈ 1.85 > 1, imaginary part from +iπ."""
    loss = fc.Loss.from_expr("w**4/4 - w**2/2")
    h, w = 0.8, 1.05
    z, g = h * (3 * w * w - 1), w**3 - w
    f = fc.flows.pf(loss, h)([[w]])[0, 0]
    assert f.imag > 0
    np.testing.assert_allclose(f, (np.log(z - 1) + 1j * np.pi) / z * g, rtol=1e-14)
    # a -0.0 imaginary part (signed-zero flip) does not move it to −iπ
    f2 = fc.flows.pf(loss, h)(np.array([[complex(w, -0.0)]]))[0, 0]
    assert f2 == f
    state = fc.flows.pf(loss, h).branch_state([[w]])
    assert state[0, 1].imag == pytest.approx(np.pi)


def test_branch_continued_around_the_cut():
    """A closed path of accepted points with hλ circling z = 1 once comes back on the next
    branch (log gains 2πi), not reset to the principal value."""
    loss = fc.Loss.from_expr("w**4/4 - w**2/2")
    h, r = 0.8, 0.3
    flow = fc.flows.pf(loss, h)
    ts = np.linspace(0, 2 * np.pi, 201)
    ws = np.sqrt(((1 + r * np.exp(1j * ts)) / h + 1) / 3)        # hλ(w) = 1 + r e^{it}
    state = flow.branch_state(ws[:1, None])
    for w in ws[1:]:
        assert flow.accept([[w]], state)[0] == fc.Status.OK
    w = ws[-1]
    z, g = h * (3 * w * w - 1), w**3 - w
    cont = flow([[w]], state=state)[0, 0]
    fresh = flow([[w]])[0, 0]
    np.testing.assert_allclose(cont - fresh, 2j * np.pi / z * g, rtol=1e-10)
    # and back the other way it unwinds
    for w in ws[::-1][1:]:
        flow.accept([[w]], state)
    np.testing.assert_allclose(flow([[ws[0]]], state=state), flow([[ws[0]]]), rtol=1e-12)


def test_branch_state_follows_directions_through_an_eigenvalue_crossing():
    """H = diag(3x², 4): along x = 1 → 1.4 the x-eigenvalue crosses 4. A log that was moved
    to another branch stays with its direction, not with an eigenvalue's rank."""
    flow = fc.flows.pf(fc.Loss.from_expr("x**4/4 + 2*y**2"), 0.5)
    state = flow.branch_state([[1.0, 0.3]])
    jx = int(np.argmin(np.abs(state[0, :2] - 3.0)))
    assert state[0, 2 + jx].imag == pytest.approx(np.pi)
    state[0, 2 + jx] += 2j * np.pi                     # as if it had looped around z = 1 once
    for x in np.linspace(1.0, 1.4, 81)[1:]:
        assert flow.accept([[x, 0.3]], state)[0] == fc.Status.OK
    jx = int(np.argmin(np.abs(state[0, :2] - 3 * 1.4**2)))
    assert state[0, 2 + jx].imag == pytest.approx(3 * np.pi)
    assert state[0, 3 - jx].imag == pytest.approx(np.pi)


def test_singular_and_nonfinite_status_per_row():
    loss = fc.losses.quadratic_1d(2.0)
    flow = fc.flows.pf(loss, 0.5)                                  # hλ = 1 everywhere except g = 0
    f, status = flow.evaluate([[1.0]])
    assert status[0] == fc.Status.SINGULAR and np.isnan(f[0, 0])
    loss2 = fc.losses.double_well()
    f, status = fc.flows.pf(loss2, 0.1).evaluate([[0.5, 0.1], [np.nan, 0.0], [0.2, 0.3]])
    assert list(status) == [fc.Status.OK, fc.Status.NONFINITE, fc.Status.OK]
    assert np.all(np.isfinite(f[[0, 2]])) and np.all(np.isnan(f[1]))
    f, status = fc.flows.igr(loss2, 0.1).evaluate([[0.5, 0.1], [np.inf, 0.0]])
    assert list(status) == [fc.Status.OK, fc.Status.NONFINITE]


def test_user_alpha_flips_top_direction():
    loss = fc.losses.quadratic(np.diag([4.0, 1.0, 0.5]))
    th = RNG.normal(size=(5, 3))
    flip = fc.flows.spectral(loss, 0.1, lambda z: np.where(np.arange(z.shape[1]) == 0, 1.0, -1.0))
    g = loss.grad(th)
    np.testing.assert_allclose(flip(th), g * np.array([1, -1, -1]), rtol=1e-12)
    same = fc.flows.spectral(loss, 0.1, lambda z: np.log(1 - z.astype(complex)) / z)
    np.testing.assert_allclose(same(th + 0j), fc.flows.pf(loss, 0.1)(th), rtol=1e-12)


def test_flow_argument_errors():
    loss = fc.losses.double_well()
    with pytest.raises(ValueError, match="lr"):
        fc.flows.pf(loss, -1)
    with pytest.raises(TypeError, match="lr"):
        fc.flows.igr(loss, "big")
    with pytest.raises(TypeError, match="flowcore.Loss"):
        fc.flows.ngf("x**2", 0.1)
    with pytest.raises(ValueError, match="order"):
        fc.flows.bea(loss, 0.1, -1)
    with pytest.raises(ValueError, match="branch"):
        fc.flows.pf(loss, 0.1, branch="sometimes")
    with pytest.raises(ValueError, match="no branch state"):
        fc.flows.igr(loss, 0.1)([[0.0, 0.0]], state=np.zeros((1, 4), complex))
    with pytest.raises(ValueError, match="state must be"):
        fc.flows.pf(loss, 0.1)([[0.0, 0.0]], state=np.zeros((1, 3), complex))


# ------------------------------------------------------------------ general fields
def test_field_from_expr_matches_sympy_at_complex_points():
    exprs = ["y*(1 - x**2) + sin(x)", "-x + exp(y/3)*z", "tanh(x*y) - z**3"]
    field = fc.Field.from_expr(exprs, vars=("x", "y", "z"))
    x, y, z = sp.symbols("x y z")
    f = sp.lambdify((x, y, z), [sp.sympify(e) for e in exprs], "numpy")
    th = RNG.normal(size=(40, 3)) + 1j * RNG.normal(size=(40, 3))
    ref = np.stack(f(*th.T), -1)
    got = field(th)
    assert np.max(np.abs(got - ref) / (1 + np.abs(ref))) < 1e-12
    np.testing.assert_allclose(field(th.real), np.stack(f(*th.real.T), -1).real, rtol=1e-13)


def test_lessons_fields():
    rot = fc.Field.from_expr(["y", "-x"], vars=("x", "y"))
    np.testing.assert_array_equal(rot([[1.0, 2.0]]), [[2.0, -1.0]])
    logistic = fc.Field.from_expr(["y*(1 - y)"])
    np.testing.assert_allclose(logistic(np.array([[0.5], [2.0]])), [[0.25], [-2.0]])
    py = fc.Field.from_callable(lambda t: -t, dim=1)
    np.testing.assert_array_equal(py([[3.0]]), [[-3.0]])


def test_field_errors():
    with pytest.raises(fc.ExpressionError, match="'c'"):
        fc.Field.from_expr(["c*y", "-x"], vars=("x", "y"))
    with pytest.raises(fc.ExpressionError, match="abs"):
        fc.Field.from_expr(["abs(y)", "-x"])
    with pytest.raises(fc.ExpressionError, match="components"):
        fc.Field.from_expr(["y", "-x", "x*y"], vars=("x", "y"))
    with pytest.raises(fc.ExpressionError, match="list"):
        fc.Field.from_expr("y")


def test_batch_values_do_not_depend_on_chunking():
    """Points are evaluated in OpenMP chunks: each value equals its single-point evaluation."""
    loss = fc.losses.double_well()
    th = RNG.uniform(-1.5, 1.5, (1000, 2))
    for flow in (fc.flows.pf(loss, 0.3), fc.flows.third_order(loss, 0.3)):
        full = flow(th)
        for i in (0, 255, 256, 511, 999):
            np.testing.assert_array_equal(full[i], flow(th[i:i + 1])[0])


@pytest.mark.parametrize("gap", [1e-1, 1e-3, 1e-6, 1e-9, 0.0])
def test_pf_2x2_complex_symmetric_against_mpmath(gap):
    """The 2×2 closed form (divided differences) vs a 40-digit mpmath logm reference, for
    complex-symmetric H with eigenvalues from well separated to confluent. (Eigenvalues are
    kept off the cut's neighbourhood: mpmath's logm is not the principal log for matrices whose
    eigenvalues straddle the negative real axis.)"""
    import mpmath as mp
    mp.mp.dps = 40
    h = 0.5
    rng = np.random.default_rng(int(gap * 1e9) + 7)
    for _ in range(5):
        lam = complex(rng.uniform(-2, 0.8), rng.uniform(-1, 1))
        c, s = np.cos(0.3 + 0.2j), np.sin(0.3 + 0.2j)           # complex orthogonal: cᵀc = 1
        R = np.array([[c, -s], [s, c]])
        H = R @ np.diag([lam, lam + gap * (1 + 1j)]) @ R.T / h
        g = rng.normal(size=2) + 1j * rng.normal(size=2)
        loss = fc.Loss.from_callable(lambda t: 0.0, lambda t: g + 0 * t, lambda t: H + 0 * t[0],
                                     dim=2)
        got = fc.flows.pf(loss, h)(np.zeros((1, 2), complex))[0]
        M = mp.matrix(H.tolist()) * h
        ref = mp.logm(mp.eye(2) - M) * mp.inverse(M) * mp.matrix(g.tolist())
        ref = np.array([complex(ref[0]), complex(ref[1])])
        assert np.linalg.norm(got - ref) <= 1e-10 * np.linalg.norm(ref), (lam, gap)


def test_latex_in_notebooks_states_the_paper_formulas():
    """Loss, flows and fields show their mathematics in a notebook: α of IGR and of the third-order
    flow as in the paper (−1 − z/2, −1 − z/2 − z²/3, with −h²/12 ∇³E[g, g]), the PF's log."""
    loss = fc.losses.double_well()
    assert loss._repr_latex_() == r"$E(x, y) = y^{2} + \left(x^{2} - 1\right)^{2}$"
    assert fc.Loss.from_callable(lambda t: t @ t, lambda t: 2 * t, dim=2)._repr_latex_() is None
    igr = fc.flows.igr(loss, 0.1)._repr_latex_()
    assert r"\alpha(z) &= -1 - \frac{z}{2},\quad h = 0.1" in igr and "nabla^3" not in igr
    third = fc.flows.third_order(loss, 0.25)._repr_latex_()
    assert r"\alpha(z) &= -1 - \frac{z}{2} - \frac{z^{2}}{3},\quad h = 0.25" in third
    assert r"\alpha(hH)\,\nabla E - \frac{1}{12}\,h^2\,\nabla^3E[\nabla E, \nabla E]" in third
    pf = fc.flows.pf(loss, 0.2)._repr_latex_()
    assert r"\frac{\log(1 - z)}{z}" in pf and "continued" in pf and "E(x, y) &= y^{2}" in pf
    assert "principal branch" in fc.flows.pf(loss, 0.2, branch="principal")._repr_latex_()
    for text in (igr, third, pf):
        assert text.startswith("$$") and text.count("{") == text.count("}")
    rot = fc.Field.from_expr(["y", "-x"], vars=("x", "y"))
    assert rot._repr_latex_() == (r"$\frac{d}{dt}\left[\begin{matrix}x\\y\end{matrix}\right] = "
                                  r"\left[\begin{matrix}y\\- x\end{matrix}\right]$")
