"""Discrete optimizers against closed forms and plain numpy loops; diagnostics against numpy."""

import numpy as np
import pytest

import flowcore as fc

RNG = np.random.default_rng(2)


def test_gd_on_quadratic_equals_closed_form():
    D = 4
    Q, _ = np.linalg.qr(RNG.normal(size=(D, D)))
    A = Q @ np.diag([3.0, 1.0, -0.5, 0.2]) @ Q.T
    b = RNG.normal(size=D)
    h, n = 0.3, 25
    th0 = RNG.normal(size=(7, D))
    run = fc.descend(fc.losses.quadratic(A, b), th0, fc.GD(h), n)
    star = -np.linalg.solve(A, b)
    M = np.linalg.matrix_power(np.eye(D) - h * A, n)
    ref = (M @ (th0 - star).T).T + star                  # (I − hA)^n (θ0 + A⁻¹b) − A⁻¹b
    np.testing.assert_allclose(run.iterates[:, -1], ref, rtol=1e-10)
    assert np.all(run.status == fc.Status.OK) and np.all(run.nsteps == n)


def numpy_loop(grad, hess, th0, h, n, method, beta=0.9, p=1.0, cap=None):
    th, prev, out, rates = th0.copy(), th0.copy(), [th0.copy()], []
    for _ in range(n):
        if method == "nesterov":
            y = th + beta * (th - prev)
            new = y - h * grad(y)
        elif method == "heavy_ball":
            new = th - h * grad(th) + beta * (th - prev)
        else:
            g, H = grad(th), hess(th)
            ghat = g / np.linalg.norm(g)
            if method == "dal_per_param":
                r = 2 / np.abs(H @ ghat) ** p
            else:
                r = 2 / np.linalg.norm(H @ ghat) ** p
            if cap is not None:
                r = np.minimum(r, cap)
            rates.append(r)
            new = th - r * g + (beta * (th - prev) if method == "dal_momentum" else 0)
        prev, th = th, new
        out.append(th.copy())
    return np.array(out), np.array(rates)


@pytest.mark.parametrize("method", ["heavy_ball", "nesterov", "dal", "dal_momentum", "dal_per_param"])
def test_optimizers_match_numpy_loops(method):
    loss = fc.losses.rosenbrock(b=5)
    th0 = np.array([[-0.7, 0.4], [1.3, 0.2]])
    kw = dict(lr=0.01) if method in ("heavy_ball", "nesterov") else dict(power=1.5, lr_cap=0.05)
    if method in ("heavy_ball", "nesterov", "dal_momentum"):
        kw["beta"] = 0.8
    run = fc.descend(loss, th0, fc.method(method, **kw), steps=30)
    for i in range(2):
        ref, rates = numpy_loop(lambda t: loss.grad(t), lambda t: loss.hess(t), th0[i],
                                kw.get("lr"), 30, method, beta=0.8, p=1.5, cap=0.05)
        np.testing.assert_allclose(run.iterates[i], ref, rtol=1e-12, atol=1e-14)
        if method.startswith("dal"):
            np.testing.assert_allclose(run.lr[i], rates, rtol=1e-13)


def test_dal_rate_is_two_over_norm_H_ghat():
    loss = fc.losses.double_well()
    th0 = RNG.uniform(-1.5, 1.5, (20, 2))
    for p in (1.0, 2.0):
        run = fc.descend(loss, th0, fc.DAL(power=p), steps=1)
        g, H = loss.grad(th0), loss.hess(th0)
        ghat = g / np.linalg.norm(g, axis=1, keepdims=True)
        ref = 2 / np.linalg.norm(np.einsum("nab,nb->na", H, ghat), axis=1) ** p
        np.testing.assert_allclose(run.lr[:, 0], ref, rtol=1e-13)


def test_status_escaped_and_nonfinite_per_trajectory():
    loss = fc.losses.quadratic_1d(1.0)
    run = fc.descend(loss, [[1.0], [np.nan], [1.0]], fc.GD(2.5), steps=200, escape_radius=1e6)
    assert list(run.status) == [fc.Status.ESCAPED, fc.Status.NONFINITE, fc.Status.ESCAPED]
    # |1 − 2.5|^n > 1e6 first at n = 35
    assert run.nsteps[0] == 35 and np.isnan(run.iterates[0, 36:]).all()
    ok = fc.descend(loss, [[1.0], [np.inf]], fc.GD(0.5), steps=10)
    assert list(ok.status) == [fc.Status.OK, fc.Status.NONFINITE]
    np.testing.assert_allclose(ok.iterates[0, -1], 0.5**10)


def test_results_do_not_depend_on_threads_or_batch():
    loss = fc.losses.ring_saddle()
    th0 = RNG.uniform(-1.5, 1.5, (300, 2))
    a = fc.descend(loss, th0, fc.GD(0.05), 50, compute=fc.Compute(threads=1))
    b = fc.descend(loss, th0, fc.GD(0.05), 50, compute=fc.Compute(threads=2))
    np.testing.assert_array_equal(a.iterates, b.iterates)
    c = fc.descend(loss, th0[137:138], fc.GD(0.05), 50)
    np.testing.assert_array_equal(c.iterates[0], a.iterates[137])


def test_descend_argument_errors():
    loss = fc.losses.double_well()
    with pytest.raises(ValueError, match="unknown method 'adam'"):
        fc.method("adam", lr=0.1)
    with pytest.raises(TypeError, match="method must be an optimizer value"):
        fc.descend(loss, [0, 0], "gd", 5)
    with pytest.raises(TypeError, match="lr"):
        fc.GD()
    with pytest.raises(ValueError, match="lr must be finite and > 0"):
        fc.GD(-0.1)
    with pytest.raises(ValueError, match=r"theta0 must have shape \[N, 2\]"):
        fc.descend(loss, [0, 0, 0], fc.GD(0.1), 5)
    with pytest.raises(ValueError, match="beta"):
        fc.HeavyBall(0.1, beta=1.0)
    with pytest.raises(ValueError, match="steps"):
        fc.descend(loss, [0, 0], fc.GD(0.1), -1)
    with pytest.raises(ValueError, match="threads"):
        fc.Compute(threads=0)
    with pytest.raises(ValueError, match="device"):
        fc.Compute(device="tpu")


@pytest.mark.parametrize("method, given", [("gd", dict(lr=0.1, beta=0.9)), ("nesterov", dict(lr=0.1, power=2.0)),
                                           ("dal", dict(lr=0.1)), ("dal_per_param", dict(beta=0.5)),
                                           ("gd", dict(lr=0.1, lr_cap=1.0)), ("gd", dict(lr=0.1, batch=4)),
                                           ("heavy_ball", dict(lr=0.1, seed=3)), ("pf", dict(lr=0.1, beta=0.5))])
def test_a_parameter_the_method_does_not_read_cannot_be_given(method, given):
    """A method value owns its parameters: one it does not read is a TypeError naming it, made
    from the class or from the name (the CLI's shorthand), never a silently different run."""
    name = next(k for k in given if k != "lr" or method.startswith("dal"))
    with pytest.raises(TypeError, match=f"{method} does not read {name}"):
        fc.method(method, **given)
    cls = type(fc.method(method, **{k: v for k, v in given.items() if k != name}))
    with pytest.raises(TypeError, match=name):
        cls(**given)


def test_method_values_are_checked_when_made():
    assert repr(fc.HeavyBall(0.1, beta=0.5)) == "HeavyBall(lr=0.1, beta=0.5)"
    assert repr(fc.PF(0.2, solver=fc.Dop853(rtol=1e-9))) == "PF(lr=0.2, solver=Dop853(rtol=1e-09))"
    assert fc.method("pf_np3", lr=0.1).name == "pf_np3"
    for bad, match in ((lambda: fc.Dopri5(rtol=0), "rtol"), (lambda: fc.RK4(dt=-1), "dt"),
                       (lambda: fc.Adaptive("rk4"), "no error estimate"), (lambda: fc.DAL(power=0), "power"),
                       (lambda: fc.SGD(0.1, batch=0), "batch"), (lambda: fc.RestTest(max_period=0), "max_period"),
                       (lambda: fc.PF(0.1, branch="sheet"), "branch"), (lambda: fc.BEA(0.1, order=-1), "order"),
                       (lambda: fc.GD(np.array([[0.1]])), "1-D"), (lambda: fc.GD(np.array([0.1, np.inf])), "finite")):
        with pytest.raises((TypeError, ValueError), match=match):
            bad()


def test_diagnostics_against_numpy():
    loss = fc.losses.double_well()
    h = 0.4
    run = fc.descend(loss, [[0.3, 0.9]], fc.GD(h), 10)
    th = run.iterates[0]
    d = fc.diagnostics(loss, th, h)
    g, H = loss.grad(th), loss.hess(th)
    lam, U = np.linalg.eigh(H)
    np.testing.assert_allclose(d["eigenvalues"], lam, rtol=1e-14)
    proj = np.abs(np.einsum("na,nai->ni", g, U))
    z = (h * lam).astype(complex)
    # α_PF by hand: log|1 − z| + iπ·[z > 1], over z (real z here)
    alpha = (np.log(np.abs(1 - z.real)) + 1j * np.pi * (z.real > 1)) / z.real
    np.testing.assert_allclose(d["stability_coefficients"], alpha * proj, rtol=1e-12, atol=1e-15)
    Hg = np.einsum("nab,nb->na", H, g)
    np.testing.assert_allclose(d["Hg_norm"], np.linalg.norm(Hg, axis=1), rtol=1e-14)
    np.testing.assert_allclose(d["Hghat_norm"], np.linalg.norm(Hg, axis=1) / np.linalg.norm(g, axis=1),
                               rtol=1e-14)
    ratio = (loss.value(th - h * g) - loss.value(th)) / (h * np.sum(g * g, axis=1))
    np.testing.assert_allclose(d["progress_ratio"], ratio, rtol=1e-12)
    np.testing.assert_allclose(d["loss"], loss.value(th))
    # small h: the progress ratio tends to −1
    assert abs(fc.diagnostics(loss, th[:1], 1e-6)["progress_ratio"][0] + 1) < 1e-5


def test_python_loss_under_openmp_threads():
    """The GIL-taking trampoline works from OpenMP threads (no deadlock) and agrees with C."""
    py = fc.Loss.from_callable(lambda t: t @ t, lambda t: 2 * t, lambda t: 2 * np.eye(2), dim=2)
    th0 = RNG.uniform(-1, 1, (300, 2))
    for method, kw in (("gd", dict(lr=0.1)), ("dal", dict(lr_cap=0.3))):
        a = fc.descend(py, th0, fc.method(method, **kw), steps=20, compute=fc.Compute(threads=2))
        b = fc.descend(fc.losses.round_bowl(), th0, fc.method(method, **kw), steps=20, compute=fc.Compute(threads=2))
        np.testing.assert_array_equal(a.iterates, b.iterates)
    np.testing.assert_array_equal(fc.flows.pf(py, 0.3)(th0), fc.flows.pf(fc.losses.round_bowl(), 0.3)(th0))


def test_analysis_imports_no_private_engine_module():
    """The analysis layer reads the engine through its public API only (DESIGN §2)."""
    import ast
    from pathlib import Path
    for path in (Path(__file__).resolve().parents[1] / "analysis").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith("flowcore._"), f"{path.name} imports {name}"


def test_descend_to_rest_against_closed_forms():
    """GD on w⁴ − 2w² (E'' = 8 at ±1): at h = 0.2 the multiplier is −0.6, every start in (0, √2)
    rests at 1 with period 1; at h = 0.26 (multiplier −1.08) a 2-cycle w ↔ w' with
    w' = w − h(4w³ − 4w) and back, which sympy solves; a start at the maximum 0 stays."""
    import sympy as sp
    loss = fc.losses.quartic_1d()
    r = fc.descend_to_rest(loss, [[0.3], [0.9], [1.3]], fc.GD(0.2), fc.RestTest(steps=3000))
    np.testing.assert_allclose(r.final[:, 0], 1.0, atol=1e-9)
    assert list(r.period) == [1, 1, 1] and list(r.status) == [fc.Status.OK] * 3
    r = fc.descend_to_rest(loss, [[0.9]], fc.GD(0.26), fc.RestTest(steps=5000))
    assert r.period[0] == 2
    w = sp.Symbol("w")
    f = lambda v: v - sp.Rational(26, 100) * (4 * v**3 - 4 * v)          # noqa: E731
    roots = [complex(x) for x in sp.Poly(sp.expand(f(f(w)) - w), w).nroots()]
    cyc = sorted(x.real for x in roots if abs(x.imag) < 1e-12 and abs(abs(x.real) - 1) > 1e-6
                 and abs(x.real) > 1e-9 and x.real > 0)
    assert abs(r.final[0, 0] - cyc[0]) < 1e-8            # the representative: the smaller point
    short = fc.descend_to_rest(loss, [[0.9]], fc.GD(0.26), fc.RestTest(steps=3))
    assert short.period[0] == 0 and short.status[0] == fc.Status.MAX_STEPS


def test_rest_runs_take_the_maps_that_have_a_rest_kernel():
    """DAL sets its own rate: it takes no lr at all; the per-parameter and SGD methods have no
    rest kernel and are refused by name."""
    loss = fc.losses.double_well()
    with pytest.raises(TypeError, match="lr"):
        fc.DAL(lr=0.1)
    a = fc.descend_to_rest(loss, [[0.5, 0.5]], fc.DAL(), fc.RestTest(steps=50))
    assert a.method == "dal" and a.final.shape == (1, 2)
    with pytest.raises(ValueError, match="DALPerParam cannot run here"):
        fc.descend_to_rest(loss, [[0.5, 0.5]], fc.DALPerParam())
    with pytest.raises(TypeError, match="rest must be a flowcore.RestTest"):
        fc.descend_to_rest(loss, [[0.5, 0.5]], fc.GD(0.1), 50)


def test_per_start_learning_rates_equal_separate_runs():
    """lr as an array: each start runs at its own rate, bit for bit as alone (GD, heavy ball), and
    x_n = (1 − η)^n on x²/2 for every η at once."""
    loss = fc.losses.quadratic_1d(1.0)
    etas = np.array([0.5, 1.0, 1.5, 1.9, 2.1])
    run = fc.descend(loss, np.ones((5, 1)), fc.GD(etas), 20)
    np.testing.assert_allclose(run.iterates[:, :, 0], (1 - etas[:, None]) ** np.arange(21), rtol=1e-13, atol=1e-300)
    np.testing.assert_array_equal(run.lr[:, 0], etas)
    dw = fc.losses.double_well()
    th = np.random.default_rng(3).uniform(-1.5, 1.5, (70, 2))
    rates = np.linspace(0.01, 0.3, 70)
    for method in ("gd", "heavy_ball"):
        together = fc.descend(dw, th, fc.method(method, lr=rates), 50).iterates
        alone = np.concatenate([fc.descend(dw, th[i:i + 1], fc.method(method, lr=rates[i]), 50).iterates for i in range(70)])
        np.testing.assert_array_equal(together, alone)
    with pytest.raises(ValueError, match="one per start"):
        fc.descend(dw, th, fc.GD(rates[:3]), 5)


def test_slowly_damped_oscillation_is_no_cycle():
    """GD on λx²/2 with hλ close to 2 oscillates onto 0 by |1 − hλ| per step: its p = 2 recurrence
    holds within tol long before p = 1 does, yet it is a fixed point (kernel and generic loop);
    hλ = 2 exactly is a true 2-cycle, and so is the 2-cycle of w⁴ − 2w² at h = 0.26."""
    quad = fc.losses.quadratic_1d(1.0)
    generic = fc.Loss.from_callable(lambda x: x @ x / 2, lambda x: x, dim=1)
    for loss in (quad, generic):
        r = fc.descend_to_rest(loss, [[0.7], [-1.3]], fc.GD(np.array([1.9, 1.95])), fc.RestTest(steps=20_000))
        assert np.all(r.period == 1) and np.all(np.abs(r.final) < 1e-8), r
        r = fc.descend_to_rest(loss, [[0.7]], fc.GD(2.0), fc.RestTest(steps=1000))
        assert r.period[0] == 2 and abs(r.final[0, 0]) == 0.7
    quartic = fc.losses.quartic_1d()
    q_generic = fc.Loss.from_callable(lambda w: w[0]**4 - 2 * w[0]**2, lambda w: 4 * w**3 - 4 * w, dim=1)
    a = fc.descend_to_rest(quartic, [[0.5]], fc.GD(0.26), fc.RestTest(steps=5000))
    b = fc.descend_to_rest(q_generic, [[0.5]], fc.GD(0.26), fc.RestTest(steps=5000))
    assert a.period[0] == b.period[0] == 2 and a.final[0, 0] == pytest.approx(b.final[0, 0], abs=1e-12)
    cyc = fc.descend(quartic, a.final, fc.GD(0.26), 2).iterates[0, :, 0]
    assert cyc[2] == pytest.approx(cyc[0], abs=1e-9) and abs(cyc[1] - cyc[0]) > 0.1
