"""Batched integrators against exact solutions (expm, GD iterates), scipy and a hand-written RK4."""
import dataclasses

import numpy as np
import pytest
import scipy.linalg as sl
from scipy.integrate import solve_ivp

import flowcore as fc
from flowcore.engine.tableaux import TABLEAUX

RNG = np.random.default_rng(3)
A2 = np.array([[2.0, 0.3], [0.3, 0.5]])


@pytest.mark.parametrize("method, order, dts", [
    ("euler", 1, [0.02, 0.01, 0.005]), ("midpoint", 2, [0.04, 0.02, 0.01]),
    ("heun", 2, [0.04, 0.02, 0.01]), ("rk4", 4, [0.2, 0.1, 0.05]),
    ("dopri5", 5, [0.1, 0.05, 0.025]), ("dop853", 8, [0.3, 0.25, 0.2]),
])
def test_convergence_orders(method, order, dts):
    """NGF on a quadratic, exact solution expm(−tA)θ0: fitted slope = order ± 0.3.
    Embedded pairs are run as fixed-step methods (their tableau without the error estimate)."""
    flow = fc.flows.ngf(fc.losses.quadratic(A2), 0.1)
    tab = dataclasses.replace(TABLEAUX[method], e=None, e3=None)
    th0 = np.array([[1.0, -0.5]])
    ref = sl.expm(-2 * A2) @ th0[0]
    errs = [np.linalg.norm(fc.solve(flow, th0, t_span=(0, 2), method=fc.FixedStep(tab, dt)).y[0, -1] - ref)
            for dt in dts]
    slope = np.polyfit(np.log(dts), np.log(errs), 1)[0]
    assert abs(slope - order) < 0.3, (method, slope, errs)


def gd(A, b, th0, h, n):
    out = [th0]
    for _ in range(n):
        out.append(out[-1] - h * (out[-1] @ A.T + b))
    return np.array(out)


@pytest.mark.parametrize("D", [1, 2, 5, 20])
@pytest.mark.parametrize("hmax", [0.5, 1.6, 3.0, 10.0])
def test_pf_equals_gd_on_quadratics(D, hmax):
    """The central check: PF at t = nh equals GD iterate n, also when GD diverges (hλ > 2)."""
    h, n = 0.25, 5
    Q, _ = np.linalg.qr(RNG.normal(size=(D, D)))
    lam = RNG.uniform(-1, 1, D)
    lam[0] = 1
    lam *= hmax / h
    A = Q @ np.diag(lam) @ Q.T
    b = RNG.normal(size=D)
    th0 = RNG.normal(size=(3, D))
    sol = fc.solve(fc.flows.pf(fc.losses.quadratic(A, b), h), th0, t_eval=h * np.arange(n + 1), method=fc.Dop853(rtol=1e-12, atol=1e-12))
    assert np.all(sol.status == fc.Status.OK), sol.message
    for i in range(3):
        ref = gd(A, b, th0[i], h, n)
        err = np.linalg.norm(sol.y[i] - ref, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1)
        assert np.max(err) <= 1e-9, (D, hmax, err)


def test_paper_quadratic():
    """E = θᵀAθ, A = diag(1, 0.01), θ0 = (−0.35, −0.2), h = 1.05: PF(5h) = GD iterate 5."""
    loss = fc.losses.quadratic(2 * np.diag([1.0, 0.01]))
    h = 1.05
    sol = fc.solve(fc.flows.pf(loss, h), [[-0.35, -0.2]], t_eval=[0, 5 * h], method=fc.Dop853(rtol=1e-12, atol=1e-14))
    np.testing.assert_allclose(sol.y[0, -1], [0.5636785, -0.17986367], atol=5e-8)
    ref = gd(2 * np.diag([1.0, 0.01]), np.zeros(2), np.array([-0.35, -0.2]), h, 5)[-1]
    assert np.max(np.abs(sol.y[0, -1] - ref)) < 1e-9


def rk4_pf_branch(w0, h, T, steps):
    """Independent fixed-step RK4 for the PF of w⁴/4 − w²/2 with the same branch rule:
    log(1 − hλ) continued from its value at the last accepted step (+iπ on the cut at start)."""
    def field(w, Lprev):
        lam = 3 * w * w - 1
        z = h * lam
        one_minus = complex(1 - z)
        if one_minus.imag == 0:
            one_minus = complex(one_minus.real, 0.0)
        L = np.log(one_minus)
        L += 2j * np.pi * np.round((Lprev.imag - L.imag) / (2 * np.pi))
        return L / z * (w**3 - w), L
    w = complex(w0)
    _, L = field(w, np.log(complex(1 - h * (3 * w0 * w0 - 1), 0.0)))
    dt = T / steps
    for _ in range(steps):
        k1, _ = field(w, L)
        k2, _ = field(w + dt / 2 * k1, L)
        k3, _ = field(w + dt / 2 * k2, L)
        k4, _ = field(w + dt * k3, L)
        w = w + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        _, L = field(w, L)
    return w


@pytest.mark.parametrize("w0", [0.5, 1.05, 1.3, -1.2, 2.0])
def test_branch_tracking_finishes_and_converges(w0):
    """PF on w⁴/4 − w²/2, h = 0.8 (DESIGN §1.1: pointwise-principal chatters on the cut)."""
    loss = fc.Loss.from_expr("w**4/4 - w**2/2")
    h = 0.8
    flow = fc.flows.pf(loss, h)
    coarse = fc.solve(flow, [[w0]], t_span=(0, 5 * h), method=fc.Dopri5(rtol=1e-8, atol=1e-10))
    assert coarse.nfev[0] <= 5000
    if coarse.status[0] == fc.Status.SINGULAR:
        return
    assert coarse.status[0] == fc.Status.OK, coarse.message
    fine = fc.solve(flow, [[w0]], t_span=(0, 5 * h), method=fc.Dop853(rtol=1e-11, atol=1e-13))
    assert abs(fine.y[0, -1, 0] - coarse.y[0, -1, 0]) < 1e-5 * max(1, abs(fine.y[0, -1, 0]))
    ref = rk4_pf_branch(w0, h, 5 * h, 20000)
    # w0 = 0.5 passes next to hλ = 1 (an integrable log singularity), where fixed-step RK4
    # drops to O(dt log dt): the reference itself is only good to ~1e-6 there
    assert abs(fine.y[0, -1, 0] - ref) < 1e-5 * max(1, abs(ref))


def test_real_flow_matches_scipy():
    loss = fc.losses.double_well()
    flow = fc.flows.igr(loss, 0.1)
    th0 = RNG.uniform(-1.5, 1.5, (6, 2))
    ts = np.linspace(0, 3, 7)
    sol = fc.solve(flow, th0, t_eval=ts, method=fc.Dop853(rtol=1e-12, atol=1e-14))
    assert sol.y.dtype == np.float64
    for i in range(6):
        ref = solve_ivp(lambda t, y: flow(y[None])[0], (0, 3), th0[i], method="DOP853",
                        t_eval=ts, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(sol.y[i], ref.y.T, atol=1e-8)


def test_threads_and_batches_do_not_change_results():
    flow = fc.flows.pf(fc.losses.double_well(), 0.3)
    th0 = RNG.uniform(-1.5, 1.5, (200, 2))
    a = fc.solve(flow, th0, t_span=(0, 1), compute=fc.Compute(threads=1))
    b = fc.solve(flow, th0, t_span=(0, 1), compute=fc.Compute(threads=2))
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.nfev, b.nfev)
    c = fc.solve(flow, th0[77:78], t_span=(0, 1))
    np.testing.assert_array_equal(c.y[0], a.y[77])


def test_statuses_per_trajectory():
    loss = fc.losses.quadratic_1d(1.0)
    pgf = fc.flows.pgf(loss, 0.1)                    # θ' = +θ: grows like e^t
    sol = fc.solve(pgf, [[1.0], [np.nan], [1e-3]], t_span=(0, 20), escape_radius=1e6)
    assert list(sol.status) == [fc.Status.ESCAPED, fc.Status.NONFINITE, fc.Status.OK]
    np.testing.assert_allclose(sol.y[2, -1, 0], 1e-3 * np.exp(20), rtol=1e-7)
    short = fc.solve(pgf, [[1.0]], t_span=(0, 30), method=fc.Dopri5(max_steps=5))
    assert short.status[0] == fc.Status.MAX_STEPS
    # the PF reaching hλ = 1 exactly: singular at the start, the others unaffected
    sing = fc.solve(fc.flows.pf(fc.losses.quadratic_1d(2.0), 0.5), [[1.0]], t_span=(0, 1))
    assert sing.status[0] == fc.Status.SINGULAR


def test_interrupt_between_chunks(monkeypatch):
    from flowcore.engine import _kernels
    calls = []
    real = _kernels.run_host

    def flaky(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)
    monkeypatch.setattr(_kernels, "run_host", flaky)
    flow = fc.flows.ngf(fc.losses.round_bowl(), 0.1)
    with pytest.raises(fc.Interrupted) as info:          # never returned as if it were a result
        fc.solve(flow, np.ones((6, 2)), t_span=(0, 1), compute=fc.Compute(chunk=2), progress=True)
    sol = info.value.partial
    assert list(sol.status) == [fc.Status.OK] * 2 + [fc.Status.INTERRUPTED] * 4
    assert np.isnan(sol.y[2:, -1]).all()


def test_solve_argument_errors():
    flow = fc.flows.ngf(fc.losses.double_well(), 0.1)
    th = np.zeros((2, 2))
    with pytest.raises(ValueError, match="rtol"):
        fc.solve(flow, th, t_span=(0, 1), method=fc.Dopri5(rtol=0))
    with pytest.raises(ValueError, match="increasing"):
        fc.solve(flow, th, t_eval=[0, 1, 0.5])
    with pytest.raises(ValueError, match=r"shape \[N, 2\]"):
        fc.solve(flow, np.zeros((2, 3)), t_span=(0, 1))
    with pytest.raises(TypeError, match="method must be an integrator value"):
        fc.solve(flow, th, t_span=(0, 1), method="rk45")
    with pytest.raises(ValueError, match="tableau must be one of"):
        fc.Adaptive("rk45")
    with pytest.raises(TypeError, match="dt"):
        fc.RK4()
    with pytest.raises(ValueError, match="t_span"):
        fc.solve(flow, th, t_span=(1, 0))
    with pytest.raises(TypeError, match="Field"):
        fc.solve(lambda t: t, th, t_span=(0, 1))


def test_pointwise_principal_chatters_where_tracking_finishes():
    """DESIGN §1.1: with the principal log re-evaluated at every stage, a real start with
    hλ > 1 chatters on the cut and exhausts its budget; branch tracking finishes."""
    loss = fc.Loss.from_expr("w**4/4 - w**2/2")
    kw = dict(t_span=(0, 4.0), method=fc.Dopri5(rtol=1e-8, atol=1e-10, max_steps=2000))
    tracked = fc.solve(fc.flows.pf(loss, 0.8), [[1.05]], **kw)
    principal = fc.solve(fc.flows.pf(loss, 0.8, branch="principal"), [[1.05]], **kw)
    assert tracked.status[0] == fc.Status.OK and tracked.nfev[0] < 2000
    assert principal.status[0] == fc.Status.MAX_STEPS


def test_real_paths_through_the_branch_point_resolve_the_same_way():
    """Real starts with hλ < 1 that reach hλ = 1 along the real axis: the side of the cut is
    the +iπ convention, not rounding noise in RK stages, so resolutions agree (before the
    rule, a third of these runs came out complex-conjugated between tolerances)."""
    flow = fc.flows.pf(fc.losses.double_well(), 0.4)
    th0 = RNG.uniform(-0.7, 0.7, (200, 2))                   # hλ_x < 1 at the start
    kw = dict(t_span=(0, 2), escape_radius=1e3)
    a = fc.solve(flow, th0, method=fc.Dopri5(rtol=1e-8, atol=1e-10), **kw)
    b = fc.solve(flow, th0, method=fc.Dop853(rtol=1e-12, atol=1e-14), **kw)
    ok = (a.status == fc.Status.OK) & (b.status == fc.Status.OK)
    assert ok.sum() > 100
    crossed = np.abs(b.y[:, -1, 0].imag) > 1e-3
    assert crossed[ok].sum() > 20                             # the case is exercised
    rel = np.abs(a.y[ok, -1] - b.y[ok, -1]).max(axis=1) / np.maximum(1, np.abs(b.y[ok, -1]).max(axis=1))
    assert rel.max() < 1e-5


def test_dopri5_dense_output_between_steps():
    """t_eval from the continuous extension: accurate at every output, no extra steps."""
    flow = fc.flows.ngf(fc.losses.quadratic(A2), 0.1)
    th0 = np.array([[1.0, -0.5], [0.3, 0.8]])
    ts = np.linspace(0, 3, 301)
    dense = fc.solve(flow, th0, t_eval=ts, method=fc.Dopri5(rtol=1e-10, atol=1e-12))
    landed = fc.solve(flow, th0, t_eval=ts, method=fc.Dopri5(rtol=1e-10, atol=1e-12, dense=False))
    ref = np.stack([(sl.expm(-t * A2) @ th0.T).T for t in ts], axis=1)
    assert np.max(np.abs(dense.y - ref)) < 1e-8
    assert np.max(np.abs(landed.y - ref)) < 1e-9
    assert np.all(dense.nsteps < 200) and np.all(landed.nsteps >= 300)
    np.testing.assert_array_equal(dense.y[:, 0], th0)


def test_t_eval_without_t_span_starts_at_zero():
    """y' = −y from y(0) = 1: y(2) = e^{−2}; not a zero-length run from t_eval[0]."""
    rot = fc.Field.from_expr(["-y"], vars=("y",))
    sol = fc.solve(rot, [[1.0]], t_eval=[2.0], method=fc.Dopri5(rtol=1e-10, atol=1e-12))
    assert sol.nfev[0] > 0 and sol.y.shape == (1, 1, 1)
    np.testing.assert_allclose(sol.y[0, 0, 0], np.exp(-2.0), rtol=1e-8)
    with pytest.raises(ValueError, match="t = 0"):
        fc.solve(rot, [[1.0]], t_eval=[-1.0, 2.0])
    with pytest.raises(ValueError, match="1-D"):
        fc.solve(rot, [[1.0]], t_eval=[[0.0, 1.0]])


def test_tracked_pf_of_a_callable_loss_evaluates_once_per_counted_stage():
    """The generic path (a Python loss) carries the branch state of a step's end from its last
    stage (FSAL), not from another loss evaluation after the step is accepted: every row the
    loss sees is a counted field evaluation, plus one per start for the initial branch."""
    rows = [0]

    def grad(t):
        rows[0] += len(t)
        return np.stack([4 * t[:, 0] * (t[:, 0] ** 2 - 1) + 0.3 * t[:, 1], 2 * t[:, 1] + 0.3 * t[:, 0]], -1)

    def hess(t):
        H = np.zeros((len(t), 2, 2), dtype=t.dtype)
        H[:, 0, 0], H[:, 0, 1], H[:, 1, 0], H[:, 1, 1] = 12 * t[:, 0] ** 2 - 4, 0.3, 0.3, 2
        return H
    value = lambda t: (t[:, 0] ** 2 - 1) ** 2 + t[:, 1] ** 2 + 0.3 * t[:, 0] * t[:, 1]   # noqa: E731
    loss = fc.Loss.from_callable(value, grad, hess, dim=2, vectorized=True)
    th0 = RNG.uniform(-1.3, 1.3, (40, 2))
    sol = fc.solve(fc.flows.pf(loss, 0.4), th0, t_span=(0, 2), escape_radius=1e3)
    assert not fc.compiled(fc.flows.pf(loss, 0.4))
    assert rows[0] == sol.nfev.sum() + len(th0)
    # the same trajectories as the compiled kernel of the same loss from its formula
    ref = fc.solve(fc.flows.pf(fc.Loss.from_expr("(x**2 - 1)**2 + y**2 + 0.3*x*y"), 0.4), th0, t_span=(0, 2), escape_radius=1e3)
    ok = (sol.status == 0) & (ref.status == 0)
    assert ok.sum() > 10 and np.array_equal(sol.status, ref.status)
    np.testing.assert_allclose(sol.y[ok, -1], ref.y[ok, -1], rtol=1e-7, atol=1e-10)   # rounding moves the steps
