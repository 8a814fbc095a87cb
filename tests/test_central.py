"""The central flow (Cohen et al. 2025): its cone problem against closed forms and an independent
active-set solver, the flow against the NGF, closed-form end points and pinned sharpness."""
import importlib

import numpy as np
import pytest
from scipy.optimize import brentq

import flowcore as fc
from flowcore import analysis as fa

central = importlib.import_module("flowcore.analysis.central")


def kkt(X, A, tau):
    """The three conditions, computed directly from the definition."""
    Z = A + 0.5 * np.einsum("abd,ijd,ij->ab", tau, tau, X)
    return -np.linalg.eigvalsh(X)[0], -np.linalg.eigvalsh(Z)[0], np.max(np.abs(X @ Z))


def enumerate_2x2(A, tau):
    """An independent solver for k = 2 by the rank of X: 0 (X = 0 if A ⪰ 0); 2 (A + B[X] = 0,
    a 3×3 linear system); 1 (X = s vvᵀ, v = (cos φ, sin φ): s from vᵀ(A + B[X])v = 0, and φ a root
    of the off-diagonal wᵀ(A + B[X])v, found by a scan and brentq)."""
    def B(X):
        return 0.5 * np.einsum("abd,ijd,ij->ab", tau, tau, X)

    cands = []
    if np.linalg.eigvalsh(A)[0] >= 0:
        cands.append(np.zeros((2, 2)))
    basis = [np.array([[1.0, 0], [0, 0]]), np.array([[0, 1.0], [1, 0]]), np.array([[0, 0], [0, 1.0]])]
    Mx = np.array([[B(E)[0, 0], B(E)[0, 1], B(E)[1, 1]] for E in basis]).T
    x = np.linalg.solve(Mx, -np.array([A[0, 0], A[0, 1], A[1, 1]]))
    cands.append(x[0] * basis[0] + x[1] * basis[1] + x[2] * basis[2])

    def rank1(phi):
        v, w = np.array([np.cos(phi), np.sin(phi)]), np.array([-np.sin(phi), np.cos(phi)])
        V = np.outer(v, v)
        s = max(0.0, -(v @ A @ v) / (v @ B(V) @ v))
        return s * V, w @ (A + B(s * V)) @ v

    phis = np.linspace(0, np.pi, 721)
    vals = [rank1(p)[1] for p in phis]
    for p0, p1, f0, f1 in zip(phis[:-1], phis[1:], vals[:-1], vals[1:]):
        if f0 * f1 < 0:
            cands.append(rank1(brentq(lambda p: rank1(p)[1], p0, p1, xtol=1e-15))[0])
    ok = [X for X in cands if max(kkt(X, A, tau)) <= 1e-9 * (1 + np.max(np.abs(A)))]
    assert ok, "the enumeration found no solution"
    return ok


def test_cone_one_direction_is_the_closed_form():
    rng = np.random.default_rng(0)
    for _ in range(20):
        t, a = rng.normal(size=7), rng.normal()
        X, res = fa.cone_solve(np.array([[a]]), t[None, None, :])
        assert X[0, 0] == pytest.approx(max(0.0, -2 * a / (t @ t)), rel=1e-13, abs=1e-300) and res < 1e-14


@pytest.mark.parametrize("seed", range(12))
def test_cone_two_directions_matches_active_set_enumeration(seed):
    rng = np.random.default_rng(seed)
    tau = rng.normal(size=(2, 2, 5))
    tau = (tau + tau.transpose(1, 0, 2)) / 2
    A = rng.normal(size=(2, 2))
    A = (A + A.T) / 2
    X, res = fa.cone_solve(A, tau)
    assert max(kkt(X, A, tau)) <= 1e-12 and res <= 1e-12
    # B is positive definite here (5 > 3 generic vectors), so the solution is unique
    assert any(np.max(np.abs(X - Y)) <= 1e-9 * (1 + np.max(np.abs(Y))) for Y in enumerate_2x2(A, tau))


def test_cone_three_directions_kkt():
    rng = np.random.default_rng(7)
    for _ in range(10):
        tau = rng.normal(size=(3, 3, 8))
        tau = (tau + tau.transpose(1, 0, 2)) / 2
        A = rng.normal(size=(3, 3))
        A = (A + A.T) / 2
        X, res = fa.cone_solve(A, tau)
        assert max(kkt(X, A, tau)) <= 1e-11


# ------------------------------------------------------------------------------ the flow
EOS = fc.Loss.from_expr("(x*y - 1)**2/2")      # on the valley xy = 1 the sharpness is x² + y²
LR = 0.25                                      # 2/η = 8


def test_below_the_edge_the_central_flow_is_the_ngf():
    """With no eigenvalue at 2/η, dθ/dt = −η∇E: the NGF at time ηt."""
    th0 = [1.5, 0.2]
    r = fa.central_flow(EOS, LR, th0, 40.0, t_eval=np.linspace(0, 40, 21), solver=fc.Dop853(rtol=1e-12, atol=1e-14))
    assert r.events == [] and np.all(r.critical == 0) and np.all(r.sharpness < 8)
    ngf = fc.solve(fc.flows.ngf(EOS, LR), [th0], t_eval=LR * r.t, method=fc.Dopri5(rtol=1e-12, atol=1e-14)).y[0]
    np.testing.assert_allclose(r.theta, ngf, atol=1e-9)
    np.testing.assert_array_equal(r.time_averaged_loss, r.loss)          # Σ = 0


def test_one_critical_direction_pins_sharpness_and_ends_in_closed_form():
    """From (2.8, 0) the NGF sharpens from 7.97 to √(7.84² + 4) = 8.09 > 8: the central flow
    enters the edge when the NGF's sharpness reaches 8, keeps S = 8, and ends on the valley point
    with x² + y² = 8, xy = 1: x² = 4 + √15."""
    r = fa.central_flow(EOS, LR, [2.8, 0.0], 150.0, solver=fc.Dop853(rtol=1e-11, atol=1e-13))
    assert [e[1:] for e in r.events] == [("enter", 1)]
    # the entry time, independently: where the NGF's sharpness crosses 8
    ngf = fc.solve(fc.flows.ngf(EOS, LR), [[2.8, 0.0]], t_eval=LR * np.linspace(0, 3, 301), method=fc.Dopri5(rtol=1e-12, atol=1e-14))
    S = np.linalg.eigvalsh(EOS.hess(ngf.y[0]))[:, -1]
    i = np.argmax(S > 8)
    f = lambda t: np.linalg.eigvalsh(EOS.hess(fc.solve(fc.flows.ngf(EOS, LR), [[2.8, 0.0]], t_eval=[LR * t], method=fc.Dopri5(rtol=1e-13, atol=1e-15)).y[0, 0]))[-1] - 8
    t_enter = brentq(f, ngf.t[i - 1] / LR, ngf.t[i] / LR, xtol=1e-12)
    assert r.events[0][0] == pytest.approx(t_enter, abs=1e-6)
    on = r.t > r.events[0][0] + 1e-9
    assert np.max(np.abs(r.sharpness[on] - 8)) <= 1e-8 and np.max(r.residual) <= 1e-12
    x = np.sqrt(4 + np.sqrt(15))
    np.testing.assert_allclose(r.theta[-1], [x, 1 / x], atol=1e-7)
    # one direction: σ² = max(0, 2⟨−∇E, ∇S⟩/‖∇S‖²) and the flow is tangent to {S = 8}
    th = r.theta[np.flatnonzero(on)[3]]
    st = central.central_field(EOS, LR, th, 1)
    u = st.U[:, 0]
    gS = EOS.third(th, u)
    g = EOS.grad(th)
    assert st.X[0, 0] == pytest.approx(max(0.0, -2 * g @ gS / (gS @ gS)), rel=1e-10)
    assert abs(st.velocity @ gS) <= 1e-10 * np.linalg.norm(st.velocity) * np.linalg.norm(gS)
    assert r.time_averaged_loss[np.flatnonzero(on)[3]] == pytest.approx(
        r.loss[np.flatnonzero(on)[3]] + st.X[0, 0] / LR * (st.eigenvalues[0] * LR / 2), rel=1e-12)


def test_two_critical_directions_complementarity_at_every_evaluation():
    """Two copies of the valley, started apart: both directions enter, one after the other; the
    cone conditions hold to 1e-10 at every evaluation of the field (so at every accepted step) and
    both copies end on their closed-form point."""
    loss = fc.Loss.from_expr("(x*y - 1)**2/2 + (z*w - 1)**2/2", vars=("x", "y", "z", "w"))
    r = fa.central_flow(loss, LR, [2.8, 0.0, 2.79, 0.0], 150.0, solver=fc.Dop853(rtol=1e-11, atol=1e-13))
    assert [e[1:] for e in r.events][:2] == [("enter", 1), ("enter", 2)]
    assert r.max_residual <= 1e-10 and np.max(r.residual) <= 1e-10 and r.critical.max() == 2
    x = np.sqrt(4 + np.sqrt(15))
    np.testing.assert_allclose(r.theta[-1], [x, 1 / x, x, 1 / x], atol=1e-6)


def test_a_start_past_the_edge_is_refused():
    with pytest.raises(ValueError, match="starts at or below the edge"):
        fa.central_flow(EOS, LR, [3.0, 0.0], 10.0)
    for t_max in (-1.0, 0.0, np.nan):        # no time to integrate: said, not an IndexError
        with pytest.raises(ValueError, match="t_max must be finite and > 0"):
            fa.central_flow(EOS, LR, [2.8, 0.0], t_max)


SPECTATORS = 60


def _jax_valleys(copies):
    """½(xy − 1)² per copy, as a JAX loss, with SPECTATORS coordinates beside it: a bulk of
    curvatures 0.02 to 3 below the outliers at 2/η = 8, as in a network, among which the search
    looks for the top eigenpairs (D ≫ k)."""
    import jax.numpy as jnp

    def E(t):
        val = sum((t[2 * c] * t[2 * c + 1] - 1) ** 2 / 2 for c in range(copies))
        return val + jnp.sum(jnp.linspace(0.01, 1.5, SPECTATORS) * t[2 * copies:] ** 2)
    return fc.Loss.from_jax(E, 2 * copies + SPECTATORS)


@pytest.mark.parametrize("copies, start, t_max", [(1, [2.8, 0.0], 30.0), (2, [2.8, 0.0, 2.79, 0.0], 20.0)])
def test_matrix_free_central_flow_equals_the_exact_one(copies, start, t_max):
    """Top eigenpairs by a warm-started block Krylov search on Hessian–vector products instead of LAPACK on H: the
    same flow (events, θ, the predicted average loss) within 1e-7, with one and with two critical
    directions; and the warm start takes fewer products than a cold one over the same integration."""
    pytest.importorskip("jax")
    from flowcore.analysis import central
    loss = _jax_valleys(copies)
    th0 = np.r_[start, 0.1 * np.ones(SPECTATORS)]
    kw = dict(t_eval=np.linspace(0, t_max, 7), solver=fc.Dop853(rtol=1e-10, atol=1e-12))
    exact = fa.central_flow(loss, LR, th0, t_max, matrix_free=False, **kw)
    free = fa.central_flow(loss, LR, th0, t_max, matrix_free=True, **kw)
    assert [e[1:] for e in free.events] == [e[1:] for e in exact.events] and exact.critical.max() == copies
    np.testing.assert_allclose(free.theta, exact.theta, rtol=1e-7, atol=1e-7)
    # E + ½ΣX_aaλ_a: E moves by ∇E·Δθ, and the two integrations agree in θ to 1e-7
    np.testing.assert_allclose(free.time_averaged_loss, exact.time_averaged_loss, rtol=1e-7, atol=1e-9)
    assert free.sigma is not None and free.hvps > 0
    y = exact.theta[len(exact.t) // 2]
    counts = {}
    for warm in (True, False):
        eig = central.TopEigenpairs(loss, matrix_free=True, warm=warm)
        for s in np.linspace(0, 1e-3, 30):               # nearby points, as an integrator visits them
            eig(y + s, copies + 1)
        counts[warm] = eig.hvps
    assert counts[True] < counts[False], counts
