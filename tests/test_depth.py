"""Lesson 16b's ResNet and neural ODE, against numpy and scipy recomputations of the trained models."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import flowcore as fc

pytest.importorskip("jax")
from flowcore.analysis.depth import resnet_and_ode  # noqa: E402


def f(p, x):
    return np.tanh(x @ p["W"].T + p["b"]) @ p["V"].T


@pytest.fixture(scope="module")
def run():
    X, y = fc.nn.moons(40, noise=0.1, seed=1)
    return X, y, resnet_and_ode(X, y, blocks=3, width=8, steps=150, grid=4)


def test_resnet_states_and_determinant(run):
    X, y, r = run
    x = X.copy()
    for k, p in enumerate(r["params"]["resnet"]):
        x = x + f(p, x)
        np.testing.assert_allclose(r["resnet_states"][k + 1], x, rtol=1e-12, atol=1e-12)

    def resnet(z):
        for p in r["params"]["resnet"]:
            z = z + f(p, z)
        return z
    for g, det in zip(r["grid"][::5], r["det_resnet"][::5]):           # central differences
        J = np.stack([(resnet(g + e) - resnet(g - e)) / 2e-6 for e in 1e-6 * np.eye(2)], axis=-1)
        assert np.linalg.det(J) == pytest.approx(det, rel=1e-6)


def test_ode_trajectories_and_liouville_against_scipy(run):
    X, y, r = run
    p, T = r["params"]["ode"], float(r["blocks"])
    rhs = lambda t, z: f(p, z.reshape(1, 2))[0]           # noqa: E731
    for i in range(0, len(X), 7):
        ref = solve_ivp(rhs, (0, T), X[i], method="DOP853", t_eval=r["ode_t"], rtol=1e-12, atol=1e-12).y.T
        np.testing.assert_allclose(r["ode_states"][i], ref, rtol=1e-8, atol=1e-8)
    end = lambda z: solve_ivp(rhs, (0, T), z, method="DOP853", rtol=1e-12, atol=1e-12).y[:, -1]  # noqa: E731
    for g, det in zip(r["grid"][::5], r["det_ode"][::5]):
        J = np.stack([(end(g + e) - end(g - e)) / 2e-5 for e in 1e-5 * np.eye(2)], axis=-1)
        assert det > 0 and np.linalg.det(J) == pytest.approx(det, rel=1e-3)      # trapezoids in t: O(dt²)
    assert r["ode_status"] == 0
    np.testing.assert_allclose(r["det_ode"], r["det_ode_rk4"], rtol=1e-3)
    assert r["velocity_jump"]["ode"] >= 0 and r["velocity_jump"]["resnet"] >= 0


def test_training_lowers_both_losses_and_bad_input_is_named(run):
    X, y, r = run
    for k in ("resnet", "ode"):
        assert r["loss"][k][-1] < 0.5 * r["loss"][k][0]
    with pytest.raises(ValueError, match="X must be"):
        resnet_and_ode(X[:, :1], y)
    with pytest.raises(ValueError, match="blocks must be"):
        resnet_and_ode(X, y, blocks=0)
