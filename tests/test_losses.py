"""Losses against sympy-evaluated derivatives (an independent reference) and finite differences."""
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings, strategies as st

import flowcore as fc

RNG = np.random.default_rng(0)
x, y, w, a, b = sp.symbols("x y w a b")


def sympy_reference(expr, syms):
    """E, g, H, T[v,v] as numpy functions, derived by sympy independently of flowcore."""
    D = len(syms)
    v = list(sp.symbols(f"vv0:{D}"))
    g = [sp.diff(expr, s) for s in syms]
    H = [[sp.diff(gi, s) for s in syms] for gi in g]
    T = [sum(sp.diff(expr, si, sj, sk) * v[j] * v[k]
             for j, sj in enumerate(syms) for k, sk in enumerate(syms)) for si in syms]
    mods = [{"exp": np.exp, "log": np.log, "tanh": np.tanh}, "numpy"]
    fE = sp.lambdify(syms, expr, mods)
    fg = sp.lambdify(syms, g, mods)
    fH = sp.lambdify(syms, H, mods)
    fT = sp.lambdify(syms + v, T, mods)

    def full(f, args, shape):
        out = np.array(f(*args), dtype=complex)
        return np.broadcast_to(out, shape) if out.ndim == 0 else out

    def ev(th, vv):
        n = th.shape[0]
        cols, vcols = list(th.T), list(vv.T)
        E = full(fE, cols, (n,))
        G = np.stack([np.broadcast_to(np.asarray(c, complex), (n,)) for c in fg(*cols)], -1)
        Hm = np.stack([np.stack([np.broadcast_to(np.asarray(c, complex), (n,)) for c in row], -1)
                       for row in fH(*cols)], -2)
        Tv = np.stack([np.broadcast_to(np.asarray(c, complex), (n,)) for c in fT(*cols, *vcols)], -1)
        return E, G, Hm, Tv
    return ev


def rel_err(got, ref):
    """Row-wise relative error, normed over each point's components."""
    got, ref = np.asarray(got).reshape(len(ref), -1), np.asarray(ref).reshape(len(ref), -1)
    return np.max(np.linalg.norm(got - ref, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-300))


def check_against_sympy(loss, expr, syms, complex_points, n=64, scale=1.5, tol=1e-12):
    D = len(syms)
    th = RNG.uniform(-scale, scale, (n, D))
    vv = RNG.normal(size=(n, D))
    if complex_points:
        th = th + 1j * RNG.uniform(-scale, scale, (n, D))
        vv = vv + 1j * RNG.normal(size=(n, D))
    E, g, H, T = sympy_reference(expr, list(syms))(th, vv)
    assert rel_err(loss.value(th)[:, None], E[:, None]) < tol
    assert rel_err(loss.grad(th), g) < tol
    assert rel_err(loss.hess(th), H) < tol
    got_T = loss.third(th, vv)
    # T vanishes identically for quadratics: compare absolutely then.
    if np.max(np.abs(T)) == 0:
        assert np.max(np.abs(got_T)) == 0
    else:
        assert rel_err(got_T, T) < tol
    # The all-in-one call agrees with the single ones (up to rounding: CSE differs).
    E2, g2, H2, T2 = loss.evaluate(th, vv, hess=True)
    assert rel_err(g2, g) < tol and rel_err(H2, H) < tol
    np.testing.assert_array_equal(T2, got_T)


ZOO = [
    (lambda: fc.losses.double_well(), (x**2 - 1)**2 + y**2, (x, y)),
    (lambda: fc.losses.quartic_1d(), w**4 - 2 * w**2, (w,)),
    (lambda: fc.losses.elongated_bowl(), x**2 + 25 * y**2, (x, y)),
    (lambda: fc.losses.elongated_bowl(kappa=0.3), x**2 + sp.Rational(3, 10) * y**2, (x, y)),
    (lambda: fc.losses.round_bowl(), x**2 + y**2, (x, y)),
    (lambda: fc.losses.rosenbrock(), (1 - x)**2 + 100 * (y - x**2)**2, (x, y)),
    (lambda: fc.losses.rosenbrock(a=0.5, b=3), (sp.Rational(1, 2) - x)**2 + 3 * (y - x**2)**2, (x, y)),
    (lambda: fc.losses.ring_saddle(), (a**2 + b**2 - 1)**2 + a * b, (a, b)),
    (lambda: fc.losses.quadratic_1d(0.7), sp.Rational(7, 20) * x**2, (x,)),
]


@pytest.mark.parametrize("make, expr, syms", ZOO)
@pytest.mark.parametrize("complex_points", [False, True])
def test_zoo_matches_sympy(make, expr, syms, complex_points):
    check_against_sympy(make(), expr, syms, complex_points)


@pytest.mark.parametrize("D", [1, 3, 6])
@pytest.mark.parametrize("complex_points", [False, True])
def test_quadratic_any_dim(D, complex_points):
    A = RNG.normal(size=(D, D))
    bvec = RNG.normal(size=D)
    loss = fc.losses.quadratic(A, bvec)
    syms = sp.symbols(f"q0:{D}")
    X = sp.Matrix(syms)
    As = sp.Matrix(A)
    expr = (X.T * (As + As.T) * X)[0] / 4 + sum(float(bi) * s for bi, s in zip(bvec, syms))
    check_against_sympy(loss, expr, syms, complex_points)


EXPRS = [
    ("exp(-x**2 - y**2) + log(1 + x**2) * tanh(y)", None),
    ("(x**2 - 1)**2 + y**2 + x*y*z**3 - sin(z)*cosh(x)", None),
    ("log(cosh(w1*w2 - 1)) + w2**4/4 + sqrt(1 + w1**2)", ("w1", "w2")),
    ("(E*x - 2)**2 / 2 + beta * E**3", ("E", "x", "beta")),   # E and beta are plain names
]


@pytest.mark.parametrize("text, vars", EXPRS)
@pytest.mark.parametrize("complex_points", [False, True])
def test_from_expr_matches_sympy(text, vars, complex_points):
    loss = fc.Loss.from_expr(text, vars=vars)
    names = vars or sorted({s.name for s in loss.expr.free_symbols})
    syms = tuple(sp.Symbol(n) for n in names)
    local = {n: s for n, s in zip(names, syms)}
    expr = sp.sympify(text, locals=local)
    assert loss.dim == len(syms)
    check_against_sympy(loss, expr, syms, complex_points, scale=0.8)


def test_from_expr_accepts_sympy_objects_and_orders_vars():
    u, v = sp.symbols("u v", real=True)
    loss = fc.Loss.from_expr(u**3 * v, vars=(v, u))
    # coordinates are (v, u): grad = (u^3, 3 u^2 v) at (v, u) = (2, 1)
    np.testing.assert_allclose(loss.grad([2.0, 1.0]), [1.0, 6.0], rtol=0, atol=0)


def test_third_against_finite_differences_of_hessian():
    losses = [fc.losses.rosenbrock(), fc.losses.ring_saddle(),
              fc.Loss.from_expr("exp(x*y) + tanh(x - y**2)")]
    for loss in losses:
        th = RNG.uniform(-1, 1, (20, 2))
        vv = RNG.normal(size=(20, 2))
        eps = 1e-5
        dH = (loss.hess(th + eps * vv) - loss.hess(th - eps * vv)) / (2 * eps)
        fd = np.einsum("nij,nj->ni", dH, vv)
        np.testing.assert_allclose(loss.third(th, vv), fd, rtol=1e-6, atol=1e-6)


def test_python_fallback_matches_sympy():
    expr = sp.exp(x) * y**2 + x**4
    fE = sp.lambdify((x, y), expr)

    def value(t):
        return np.exp(t[0]) * t[1]**2 + t[0]**4

    def grad(t):
        return np.array([np.exp(t[0]) * t[1]**2 + 4 * t[0]**3, 2 * np.exp(t[0]) * t[1]])

    def hess(t):
        e = np.exp(t[0])
        return np.array([[e * t[1]**2 + 12 * t[0]**2, 2 * e * t[1]], [2 * e * t[1], 2 * e]])

    def third(t, v):
        e = np.exp(t[0])
        d = {(0, 0, 0): e * t[1]**2 + 24 * t[0], (0, 0, 1): 2 * e * t[1], (0, 1, 1): 2 * e, (1, 1, 1): 0}
        T3 = np.zeros((2, 2, 2), dtype=np.result_type(t, v))
        for i in range(2):
            for j in range(2):
                for k in range(2):
                    T3[i, j, k] = d[tuple(sorted((i, j, k)))]
        return np.einsum("ijk,j,k->i", T3, v, v)

    loss = fc.Loss.from_callable(value, grad, hess, third, dim=2)
    assert loss.kind == "python"
    for cplx in (False, True):
        check_against_sympy(loss, expr, (x, y), cplx, n=16)
    vec = fc.Loss.from_callable(lambda T: fE(T[:, 0], T[:, 1]),
                                lambda T: np.stack([grad(t) for t in T]), dim=2, vectorized=True)
    th = RNG.normal(size=(5, 2))
    np.testing.assert_allclose(vec.value(th), loss.value(th), rtol=1e-14)
    with pytest.raises(NotImplementedError, match="hess="):
        vec.hess(th)


def test_python_fallback_propagates_errors():
    def bad(t):
        raise ZeroDivisionError("boom")
    loss = fc.Loss.from_callable(bad, bad, dim=1)
    with pytest.raises(ZeroDivisionError, match="boom"):
        loss.value([[1.0]])


@given(st.lists(st.floats(-3, 3), min_size=2, max_size=2),
       st.lists(st.floats(-3, 3), min_size=2, max_size=2))
@settings(max_examples=50, deadline=None)
def test_double_well_holomorphic_extension(re_part, im_part):
    """At z = a + ib the complex kernel is the analytic continuation: compare exact polynomial."""
    z = np.array(re_part) + 1j * np.array(im_part)
    loss = fc.losses.double_well()
    ref = (z[0]**2 - 1)**2 + z[1]**2
    assert abs(loss.value(z) - ref) <= 1e-13 * max(1.0, abs(ref))


# ------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("loss", [fc.losses.double_well(), fc.Loss.from_expr("x**2*exp(y)")],
                         ids=["zoo", "compiled"])
def test_nonfinite_rows_stay_in_their_row(loss):
    th = np.array([[0.5, 0.2], [np.nan, 0.0], [np.inf, 1.0], [1.0, -1.0]])
    E, g, H, T = loss.evaluate(th, np.ones_like(th), hess=True)
    for arr in (E, g, H, T):
        rows = arr.reshape(4, -1)
        assert np.all(np.isfinite(rows[[0, 3]]))
        assert not np.all(np.isfinite(rows[1]))
    np.testing.assert_allclose(E[[0, 3]], loss.value(th[[0, 3]]), rtol=0)


def test_shapes_and_types():
    loss = fc.losses.double_well()
    assert loss.value(np.zeros((3, 4, 2))).shape == (3, 4)
    assert loss.hess(np.zeros((3, 4, 2))).shape == (3, 4, 2, 2)
    assert loss.grad([1, 0]).dtype == np.float64          # ints become float64
    assert loss.grad(np.zeros(2, np.complex64)).dtype == np.complex128
    assert loss.third([1.0, 0.0], [1j, 0]).dtype == np.complex128   # complex v promotes
    with pytest.raises(ValueError, match=r"shape \[\.\.\., 2\]"):
        loss.value(np.zeros((5, 3)))
    with pytest.raises(TypeError, match="numeric"):
        loss.value(["a", "b"])
    assert fc.losses.quartic_1d().value(2.0) == 8.0         # a scalar is one point in 1-D
    with pytest.raises(ValueError, match="square"):
        fc.losses.quadratic(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"b must have shape \[2\]"):
        fc.losses.quadratic(np.eye(2), [1, 2, 3])
    with pytest.raises(TypeError, match="kappa"):
        fc.losses.elongated_bowl(kappa="big")
    with pytest.raises(TypeError, match="Loss.from_expr"):
        fc.Loss()


@pytest.mark.parametrize("text, culprit", [
    ("abs(x) + y**2", "abs"), ("Abs(x) + y", "abs"), ("conjugate(x)*x", "conjugate"),
    ("re(x)**2", "re"), ("im(x)", "im"), ("sign(x)*x", "sign"), ("floor(x)", "floor"),
    ("Max(x, y)", "Max"), ("max(x, y)", "max"), ("Piecewise((x, x > 0), (0, True))", "Piecewise"),
    ("foo(x) + y", "foo"), ("erf(x)", "erf"),
])
def test_non_holomorphic_and_unknown_functions_are_named(text, culprit):
    with pytest.raises(fc.ExpressionError, match=culprit):
        fc.Loss.from_expr(text)


def test_undefined_names_and_non_scalar():
    with pytest.raises(fc.ExpressionError, match="'c'"):
        fc.Loss.from_expr("x**2 + c*y", vars=("x", "y"))
    with pytest.raises(fc.ExpressionError, match="scalar"):
        fc.Loss.from_expr(["x", "y"])
    with pytest.raises(fc.ExpressionError, match="no variables"):
        fc.Loss.from_expr("3")
    with pytest.raises(fc.ExpressionError, match="cannot parse"):
        fc.Loss.from_expr("x**")


def test_disk_cache_is_reused(tmp_path, monkeypatch):
    from flowcore.engine import _codegen
    monkeypatch.setenv("FLOWCORE_CACHE", str(tmp_path))
    monkeypatch.setattr(_codegen, "_LOADED", {})
    fc.Loss.from_expr("x**3 + 7*y")
    libs = sorted(tmp_path.glob("*.so"))
    assert len(libs) == 1 and libs[0].with_suffix(".c").exists()
    mtime = libs[0].stat().st_mtime_ns
    monkeypatch.setattr(_codegen, "_LOADED", {})            # a new process: only the disk cache
    calls = []
    monkeypatch.setattr(_codegen, "loss_source", lambda *a: calls.append(a) or "")
    loss = fc.Loss.from_expr("x**3 + 7*y")
    assert calls == [] and libs[0].stat().st_mtime_ns == mtime
    np.testing.assert_allclose(loss.grad([2.0, 0.0]), [12.0, 7.0])


def _python(code, folder):
    """stdout of ``python -c code`` run in a fresh process outside the source tree."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=folder)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_does_not_load_sympy_and_zoo_expressions_appear_on_use(tmp_path):
    code = ("import sys, flowcore as fc; assert 'sympy' not in sys.modules; "
            "L = fc.losses.double_well(); L.grad([[1.0, 2.0]]); assert 'sympy' not in sys.modules; "
            "print(L.expr, L.vars)")
    assert _python(code, tmp_path) == "y**2 + (x**2 - 1)**2 (x, y)"


def test_a_loss_written_in_c_outside_the_package(tmp_path):
    """docs/c_abi.md's example, compiled here: E = cosh(x) + y²/2 through the public ABI, checked
    against the closed form, driven by fc.solve (NGF: y(t) = y0 e^{−t}; x from sinh's flow), and a
    struct of another ABI version refused."""
    import re
    import subprocess
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[1] / "docs" / "c_abi.md").read_text()
    source = re.search(r"```c\n(.*?)```", doc, re.S).group(1)
    src = tmp_path / "my_loss.c"
    src.write_text(source + "\nconst fc_loss old_loss = {99, 2, 0, eval_d, eval_z};\n")
    so = tmp_path / "my_loss.so"
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-I", fc.get_include(), str(src), "-o", str(so), "-lm"],
                   check=True)
    loss = fc.Loss.from_library(so, "my_loss")
    assert loss.dim == 2 and loss.kind == "c"
    th = np.array([[0.4, 1.0], [-1.2, 0.3 + 0.2j]])
    E, g, H, T = loss.evaluate(th, v=np.array([1.0, 2.0]), hess=True)
    np.testing.assert_allclose(E, np.cosh(th[:, 0]) + th[:, 1] ** 2 / 2, rtol=1e-15)
    np.testing.assert_allclose(g[:, 0], np.sinh(th[:, 0]), rtol=1e-15)
    np.testing.assert_allclose(T[:, 0], np.sinh(th[:, 0]), rtol=1e-15)
    # NGF: y' = −y, x' = −sinh x, so tanh(x/2) decays like e^{−t}
    sol = fc.solve(fc.flows.ngf(loss, 0.1), [[0.4, 1.0]], t_eval=[1.0], method=fc.Dopri5(rtol=1e-11, atol=1e-13))
    np.testing.assert_allclose(sol.y[0, 0, 1], np.exp(-1.0), rtol=1e-9)
    np.testing.assert_allclose(np.tanh(sol.y[0, 0, 0] / 2), np.tanh(0.2) * np.exp(-1.0), rtol=1e-9)
    # the capsule round trip, and a struct of another ABI version
    again = fc.Loss.from_capsule(loss.capsule, keep=loss)
    np.testing.assert_array_equal(again.grad(th), g)
    with pytest.raises(ValueError, match="ABI version 99"):
        fc.Loss.from_library(so, "old_loss")
    with pytest.raises(ValueError, match="no symbol"):
        fc.Loss.from_library(so, "nothing_here")


def test_import_is_light(tmp_path):
    """import flowcore loads neither sympy nor scipy (LAPACK is fetched by the first PF with D > 2)."""
    code = ("import sys, flowcore as fc; assert 'scipy' not in sys.modules and 'sympy' not in sys.modules; "
            "import numpy as np; f = fc.flows.pf(fc.losses.quadratic(np.diag([1.0, 2.0, 3.0])), 0.4); "
            "assert 'scipy.linalg' in sys.modules; print(f([[1.0, 1.0, 1.0]]).real.tolist())")
    # PF on a diagonal quadratic: Re of log(1 − hλ)/(hλ)·λθ per coordinate
    lam = np.array([1.0, 2.0, 3.0])
    expected = np.log(np.abs(1 - 0.4 * lam)) / 0.4
    np.testing.assert_allclose(eval(_python(code, tmp_path))[0], expected, rtol=1e-13)
