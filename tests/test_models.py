"""The model registry: each flow's α, its Jacobian at a critical point and the maps' multipliers,
against finite differences of the compiled fields, mpmath, and brute-force root moduli."""
import mpmath
import numpy as np
import pytest

import flowcore as fc
from flowcore import analysis as fa


@pytest.mark.parametrize("name", ["ngf", "pgf", "igr", "third_order", "pf", "pf_np3"])
def test_flow_jacobian_matches_finite_differences_of_the_field(name):
    """At the double well's minimum (1, 0), H = diag(8, 2): the registry's α(hλ)·λ must equal the
    eigenvalues of the numerical Jacobian of the compiled field there."""
    loss, h = fc.losses.double_well(), 0.1
    field = fc.models.model(name).build(loss, h)
    x0, eps = np.array([1.0, 0.0]), 1e-6
    J = np.empty((2, 2), complex)
    for k in range(2):
        e = np.zeros(2)
        e[k] = eps
        J[:, k] = (field(x0 + e + 0j) - field(x0 - e + 0j)) / (2 * eps)
    numeric = np.sort_complex(np.linalg.eigvals(J))
    registry = np.sort_complex(np.array([fc.models.model(name).jacobian(lam, h)[0] for lam in (8.0, 2.0)],
                                        dtype=complex))
    np.testing.assert_allclose(numeric, registry, rtol=1e-7, atol=1e-8)


def test_pf_alpha_against_mpmath_near_zero_and_on_the_cut():
    z = np.array([0.0, 1e-12, -3e-9, 0.3, 0.999, 1.5, 2.0, 5.0, 0.5 + 0.5j])
    got = fc.flows.pf_alpha(z + 0j)
    for zi, gi in zip(z, got):
        if zi == 0:
            ref = -1
        else:
            with mpmath.workdps(50):                 # 1 − z exactly: no cancellation in the reference
                zz = mpmath.mpc(zi.real, zi.imag)
                cut = zi.imag == 0 and zi.real > 1
                L = mpmath.log(zz.real - 1) + mpmath.pi * 1j if cut else mpmath.log(1 - zz)
                ref = L / zz
        assert abs(complex(ref) - gi) <= 1e-14 * max(1, abs(complex(ref)))
    assert got[5].imag > 0                           # the +iπ side, as the paper chooses


def test_nesterov_stable_interval_by_brute_force():
    """Jury's conditions give hλ < 2(1 + β)/(1 + 2β); check by the root moduli on a fine grid."""
    beta, lam = 0.9, 3.0
    (iv,) = fa.stable_lr_interval(np.array([[lam]]), "nesterov", beta=beta)
    hs = np.linspace(1e-3, 2 * iv[1], 4001)
    stable = [max(abs(r) for r in fc.models.model("nesterov").jacobian(lam, h, beta)) < 1 for h in hs]
    edge = hs[np.flatnonzero(stable)[-1]]
    assert abs(edge - iv[1]) < 2 * (hs[1] - hs[0]) and all(stable[: np.flatnonzero(stable)[-1]])


def test_registry_names_and_errors():
    assert set(fc.models.MAPS) == {"gd", "heavy_ball", "nesterov", "dal"}
    assert "pgf" in fc.models.FLOWS and fc.models.model("igr").coefficients == (-1, -0.5)
    with pytest.raises(ValueError, match="did you mean igr"):
        fc.models.model("igrr")
    with pytest.raises(ValueError, match="map"):
        fc.models.model("gd").build(fc.losses.double_well(), 0.1)
    with pytest.raises(ValueError, match="order"):
        fc.flows.bea(fc.losses.double_well(), 0.1, order=True)
