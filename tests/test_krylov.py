"""The matrix-free principal flow (Arnoldi on Hessian–vector products) against the dense tracked
PF, GD on a quadratic, and the dense path's refusals."""
import numpy as np
import pytest

import flowcore as fc
from flowcore.engine._field import _log1m

pytest.importorskip("jax")

RTOL = dict(method=fc.Dop853(rtol=1e-10, atol=1e-12))


def _nets():
    return {"D=41": fc.nn.mlp(*fc.nn.regression_2d(20), widths=(10,), activation="tanh", loss="mse", seed=1),
            "D=203": fc.nn.mlp(*fc.nn.regression_2d(20), widths=(14, 10), activation="tanh", loss="mse", seed=1)}


# one case per target at D = 41; at D = 203 (20 examples: the dense Hessian is cheap, the Krylov
# dimension still 12–16) one hλ_max on each side of 2 in one case, so that one process compiles
# its shapes once (all four there took 20 s of the suite)
@pytest.mark.parametrize("key, zs", [("D=41", (z,)) for z in (0.5, 1.5, 2.5, 3.0)] + [("D=203", (1.5, 3.0))])
def test_one_gd_step_equals_the_dense_tracked_pf(key, zs):
    """One GD step (t ∈ [0, h]) of the PF from a network's point, with h set so that hλ_max = z:
    the Krylov PF and the dense tracked PF (complex Hessian, LAPACK) agree to 1e-8 relative;
    and each Krylov evaluation's error estimate bounds its measured error (principal branch, at the
    start and at complex points on the way)."""
    net = _nets()[key]
    for z in zs:
        _one_gd_step(net, z)


def _one_gd_step(net, z):
    th = fc.descend(net.loss, net.theta0[None], fc.GD(0.5), 10).iterates[0, -1]
    lam = np.linalg.eigvalsh(net.loss.hess(th))[-1]
    h = z / lam
    dense, kry = fc.flows.pf(net.loss, h, krylov=False), fc.flows.pf(net.loss, h, krylov=True)
    a = fc.solve(dense, th[None], t_eval=[h / 2, h], **RTOL)
    b = fc.solve(kry, th[None], t_eval=[h / 2, h], **RTOL)
    assert a.status[0] == b.status[0] == fc.Status.OK
    np.testing.assert_allclose(b.y[0, -1], a.y[0, -1], rtol=1e-8, atol=1e-8 * np.abs(a.y[0, -1]).max())
    points = np.stack([th.astype(complex), a.y[0, 0]])
    exact = dense(points)
    approx = kry(points)
    est = np.array(kry.impl.stats["estimates"][-2:])
    err = np.linalg.norm(approx - exact, axis=1)
    assert np.all(err <= est + 1e-12 * np.linalg.norm(exact, axis=1)), (z, err, est)


def test_a_branch_continued_past_the_cut_and_an_eigenvalue_crossing_one():
    """The 41-parameter MLP at h = 1 from its first iterate: during the step one eigenvalue's
    Re hλ falls below 1 (two above at the start, one at the end), and a tracked log ends a full 2πi
    off the principal branch: the Krylov PF, its branch carried on the Ritz values, still equals the
    dense tracked PF; the principal-branch evaluation along the way would not."""
    net = _nets()["D=41"]
    h, th = 1.0, net.theta0
    dense = fc.flows.pf(net.loss, h, krylov=False)
    ts = np.linspace(0, h, 41)
    a = fc.solve(dense, th[None], t_eval=ts, **RTOL)
    Z = h * np.linalg.eigvals(net.loss.hess(a.y[0]))
    above = np.sum(Z.real > 1, axis=1)
    assert above[0] == 2 and above[-1] == 1                        # an eigenvalue crosses hλ = 1
    S = dense.branch_state(th[None].astype(complex))
    for y in a.y[0, 1:]:
        dense.accept(y[None], S)
    D = net.dim
    off = np.round((S[0, D:2 * D] - _log1m(h * S[0, :D])).imag / (2 * np.pi))
    assert np.any(off != 0)                                         # the continuation is not the principal log
    b = fc.solve(fc.flows.pf(net.loss, h, krylov=True), th[None], t_eval=ts, **RTOL)
    np.testing.assert_allclose(b.y[0], a.y[0], rtol=1e-8, atol=1e-9)
    # the principal log re-evaluated pointwise is discontinuous across the cut: the integrator stalls
    # on it (MAX_STEPS) or ends elsewhere
    principal = fc.solve(fc.flows.pf(net.loss, h, krylov=True, branch="principal"), th[None], t_eval=ts,
                         method=fc.Dop853(rtol=1e-10, atol=1e-12, max_steps=40))
    assert principal.status[0] != fc.Status.OK or np.abs(principal.y[0, -1] - a.y[0, -1]).max() > 1e-6


@pytest.mark.parametrize("z", [0.5, 1.5, 2.5, 3.0])
def test_on_a_linear_network_the_pf_is_gd(z):
    """A network with no hidden layer and linear output is least squares, E quadratic: the PF at
    t = h is GD's next iterate exactly (per eigen-direction (1 − hλ)^{t/h}), for hλ_max up to 3.
    Its two outputs have the same targets up to a factor, so every eigenvalue of H is double: the
    Krylov space ends after 4 of 8 directions (z = 1.5 once stalled there, on ghost Ritz values and
    on logs taken on the wrong side of the cut at complex points)."""
    X, Y = fc.nn.regression_2d(30, seed=2)
    X = np.c_[X, X[:, :1] ** 2 - X[:, 1:]]
    net = fc.nn.mlp(X, np.c_[Y, 2 * Y], widths=(), activation="linear", loss="mse", seed=0)
    lam = np.linalg.eigvalsh(net.loss.hess(net.theta0))[-1]
    h = z / lam
    start = net.theta0 + 0.3
    sol = fc.solve(fc.flows.pf(net.loss, h, krylov=True), start[None], t_span=(0, h),
                   method=fc.Dop853(rtol=1e-10, atol=1e-12, max_steps=2000))
    assert sol.status[0] == fc.Status.OK, fc.Status(int(sol.status[0])).name
    pf = sol.y[0, -1]
    gd = fc.descend(net.loss, start[None], fc.GD(h), 1).iterates[0, -1]
    np.testing.assert_allclose(pf, gd, rtol=1e-9, atol=1e-9 * np.abs(gd).max())


def test_a_loss_without_holomorphic_extension_is_refused():
    X, Y = fc.nn.regression_2d(10)
    net = fc.nn.mlp(X, Y, widths=(8,), activation="relu", loss="mse")
    with pytest.raises(ValueError, match="max"):
        fc.flows.pf(net.loss, 0.5, krylov=True)
    with pytest.raises(ValueError, match="not a JAX loss"):
        fc.flows.pf(fc.losses.double_well(), 0.5, krylov=True)


def test_pf_np3_matches_the_dense_one():
    net = _nets()["D=41"]
    th = net.theta0
    a = fc.solve(fc.flows.pf(net.loss, 1.0, nonprincipal=True, krylov=False), th[None], t_span=(0, 1.0), **RTOL)
    b = fc.solve(fc.flows.pf(net.loss, 1.0, nonprincipal=True, krylov=True), th[None], t_span=(0, 1.0), **RTOL)
    np.testing.assert_allclose(b.y[0, -1], a.y[0, -1], rtol=1e-8, atol=1e-9)


def test_a_looser_krylov_tolerance_takes_fewer_products_within_its_bound():
    """fc.Krylov(tol) sets the bound on each evaluation's error estimate: at 1e-6 the field takes
    fewer Hessian–vector products than at the default 1e-11, its measured error against the dense
    PF stays within the estimate and below 1e-6 relative (where it converged before the last
    check); krylov=True is fc.Krylov(); bad settings are refused by name."""
    net = _nets()["D=41"]
    th = fc.descend(net.loss, net.theta0[None], fc.GD(0.5), 10).iterates[0, -1]
    h = 2.5 / np.linalg.eigvalsh(net.loss.hess(th))[-1]
    points = (th + 0.05j * np.random.default_rng(1).standard_normal((3, net.dim))).astype(complex)
    exact = fc.flows.pf(net.loss, h, krylov=False)(points)
    work = {}
    for tol in (1e-11, 1e-6):
        kry = fc.flows.pf(net.loss, h, krylov=fc.Krylov(tol))
        approx = kry(points)
        est = np.array(kry.impl.stats["estimates"])
        err = np.linalg.norm(approx - exact, axis=1)
        assert np.all(err <= est + 1e-12 * np.linalg.norm(exact, axis=1)), (tol, err, est)
        assert np.all(err <= tol * np.linalg.norm(exact, axis=1)), (tol, err)
        work[tol] = kry.impl.stats["hvps"]
    assert work[1e-6] < work[1e-11]
    assert fc.PF(h, krylov=True).krylov == fc.Krylov() and fc.PF(h, krylov=fc.Krylov(1e-8)).krylov.tol == 1e-8
    with pytest.raises(ValueError, match="tol"):
        fc.Krylov(0.0)
    with pytest.raises(ValueError, match="below 1"):
        fc.Krylov(2.0)
    with pytest.raises(TypeError, match=r"fc.Krylov\(tol=...\)"):
        fc.PF(h, krylov=1e-8)
