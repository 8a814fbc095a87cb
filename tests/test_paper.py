"""The paper's analyses that the network tour items draw, against closed forms on quadratics."""
import numpy as np
import pytest
from scipy.linalg import expm

import flowcore as fc
from flowcore.analysis import paper

A = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]])
QUADRATIC = "(3*x**2 + 2*y**2 + z**2)/2 + x*y + y*z/2"          # ½θᵀAθ


@pytest.fixture(scope="module")
def quadratic():
    loss = fc.Loss.from_expr(QUADRATIC)
    np.testing.assert_allclose(loss.hess(np.zeros((1, 3)))[0], A)
    return loss


@pytest.mark.parametrize("lr", [0.2, 0.45, 0.6])        # hλ₀ = 0.73, 1.64 (sign flips), 2.19 (growth)
def test_projection_predictions_closed_form(quadratic, lr):
    lam, U = np.linalg.eigh(A)
    it = fc.descend(quadratic, np.array([[1.0, -0.5, 2.0]]), fc.GD(lr), 6).iterates[0]
    r = paper.projection_predictions(quadratic, lr, it)
    x = np.abs(it[:-1] @ A @ U[:, -1])                      # |gᵀu₀|, g = Aθ
    np.testing.assert_allclose(r["sharpness"], lam[-1], rtol=1e-13)
    np.testing.assert_allclose(r["projection"], x, rtol=1e-12)
    # on a quadratic g_{n+1} = (I − hA)g_n: along u₀ GD multiplies by 1 − hλ₀, which is the PF's e^{ch}
    np.testing.assert_allclose(r["gd"], (1 - lr * lam[-1]) * x, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(r["predicted"]["pf"], r["gd"], rtol=1e-11, atol=1e-14)
    z = lr * lam[-1]
    np.testing.assert_allclose(r["predicted"]["ngf"], x * np.exp(-z), rtol=1e-12)
    np.testing.assert_allclose(r["predicted"]["igr"], x * np.exp(-z - z ** 2 / 2), rtol=1e-12)
    assert np.all(np.sign(r["predicted"]["pf"]) == np.sign(r["gd"]))


def test_projection_refuses_a_diverged_run(quadratic):
    with pytest.raises(ValueError, match="finite GD run"):
        paper.projection_predictions(quadratic, 0.1, np.array([[1.0, 0, 0], [np.nan, 0, 0]]))


def test_stability_run_one_step_flows_closed_form(quadratic):
    lr = 0.45
    r = paper.stability_run(quadratic, lr, [1.0, -0.5, 2.0], 5, flows=("ngf", "pgf"))
    it = r["iterates"]
    E = lambda th: 0.5 * np.einsum("ni,ij,nj->n", th, A, th)          # noqa: E731
    for name, sign in (("ngf", -1), ("pgf", 1)):           # θ' = ∓Aθ: θ(h) = e^{∓hA}θ
        end = it[:-1] @ expm(sign * lr * A).T
        np.testing.assert_allclose(r["one_step_error"][name], np.linalg.norm(it[1:] - end, axis=-1), rtol=1e-8)
        np.testing.assert_allclose(r["predicted_delta_loss"][name], E(end) - E(it[:-1]), rtol=1e-8, atol=1e-12)
    assert np.all(r["predicted_delta_loss"]["pgf"] > 0) and np.all(r["predicted_delta_loss"]["ngf"] < 0)
    assert "pf" not in r["one_step_error"]


def test_tracking_error_on_a_quadratic_and_where_a_flow_stops(quadratic):
    """On ½θᵀAθ the flows are linear: the PF passes through GD's iterates (global error at
    rounding), the NGF's is ‖(I − hA)ⁿθ₀ − e^{−nhA}θ₀‖. On x⁴/4 − x²/2 at h = 0.5 the minimum
    x = 1 has hE'' = 1: α_PF = log(1 − hλ)/(hλ) is infinite there, so the PF from θ₀ stops on
    the way (said, not drawn as a number) while the polynomial flows reach the end."""
    th0, h, n = np.array([1.0, -0.5, 0.3]), 0.2, 6
    r = paper.tracking_error(quadratic, h, th0, n, flows=("ngf", "pf"))
    gd = np.array([np.linalg.matrix_power(np.eye(3) - h * A, k) @ th0 for k in range(n + 1)])
    ngf = np.array([expm(-k * h * A) @ th0 for k in range(n + 1)])
    np.testing.assert_allclose(r["gd"], gd, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(r["flows"]["ngf"]["global"], np.linalg.norm(gd - ngf, axis=1), rtol=1e-8, atol=1e-13)
    assert r["flows"]["pf"]["global"].max() < 1e-9
    assert all(v["status"] == "OK" and v["reached"] == n for v in r["flows"].values())

    r = paper.tracking_error(fc.Loss.from_expr("x**4/4 - x**2/2"), 0.5, [0.3], 20, flows=("igr", "pf"),
                             max_steps=10**4)
    pf, igr = r["flows"]["pf"], r["flows"]["igr"]
    assert (igr["status"], igr["reached"]) == ("OK", 20)
    assert pf["status"] != "OK" and 5 < pf["reached"] < 20
    assert np.all(np.isfinite(pf["global"][:pf["reached"] + 1])) and np.all(np.isnan(pf["global"][pf["reached"] + 1:]))


def test_one_flow_named_as_a_string(quadratic):
    """flows='pf' is the PF, not the flows 'p' and 'f'; an empty list is refused."""
    r = paper.tracking_error(quadratic, 0.2, [1.0, -0.5, 0.3], 3, flows="pf")
    assert list(r["flows"]) == ["pf"]
    with pytest.raises(ValueError, match="flows is empty"):
        paper.tracking_error(quadratic, 0.2, [1.0, -0.5, 0.3], 3, flows=())
