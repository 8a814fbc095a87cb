"""Orbit diagrams and basin entropy against closed forms."""
import numpy as np
import pytest

import flowcore as fc
from flowcore import analysis as fa

LOSS = fc.Loss.from_expr("(w**2 - 1)**2 / 4")       # E'' = 2 at the minima ±1: GD stable for h < 1


def distinct(orbit):
    return len(np.unique(np.round(orbit[:, 0], 6)))


def test_orbit_diagram_fixed_point_and_doubling_cascade():
    lrs = np.array([0.3, 0.9, 1.05, 1.25, 1.4])
    r = fa.orbit_diagram(LOSS, lrs, [0.5], transient=3000, keep=64)
    assert list(r["status"]) == [fc.Status.OK] * 5
    # a stable fixed point: one value, exponent log|1 − hλ| with λ = 2
    for i in (0, 1):
        assert distinct(r["orbits"][i]) == 1
        assert r["lyapunov"][i] == pytest.approx(np.log(abs(1 - 2 * lrs[i])), abs=1e-9)
    assert distinct(r["orbits"][2]) == 2 and r["lyapunov"][2] < 0    # period 2 just above h = 1
    assert distinct(r["orbits"][3]) == 4                             # then period 4
    assert r["lyapunov"][4] > 0.1                                    # chaos further on


def test_orbit_diagram_escape_and_errors():
    r = fa.orbit_diagram(LOSS, [2.5], [0.5], transient=100, keep=10)
    assert r["status"][0] == fc.Status.ESCAPED and np.isnan(r["lyapunov"][0])
    with pytest.raises(ValueError, match="lrs"):
        fa.orbit_diagram(LOSS, [-1.0], [0.5])
    with pytest.raises(ValueError, match="theta0"):
        fa.orbit_diagram(LOSS, [0.5], [0.5, 1.0])


def test_basin_entropy_closed_forms():
    # a straight two-colour boundary through the middle of a column of boxes: S = ln 2 there
    L = np.zeros((20, 20), int)
    L[:, 12:] = 1                      # boxes of 4 columns: the box over columns 12..15 is pure,
    L[:, 10:12] = 1                    # the one over 8..11 is split half/half
    Sb, Sbb, nb = fa.basin_entropy(L, box=4)
    assert nb == 5 and Sbb == pytest.approx(np.log(2))
    assert Sb == pytest.approx(np.log(2) * 5 / 25)
    # checkerboard: every 2×2 box holds two of each
    cb = np.indices((30, 30)).sum(0) % 2
    assert fa.basin_entropy(cb, box=2)[:2] == pytest.approx((np.log(2), np.log(2)))
    # uniform random with k labels: S → ln k for large boxes (plug-in bias (k−1)/(2n))
    rng = np.random.default_rng(0)
    k, box = 3, 50
    R = rng.integers(0, k, size=(500, 500))
    Sb, Sbb, _ = fa.basin_entropy(R, box=box)
    assert Sb == pytest.approx(np.log(k) - (k - 1) / (2 * box * box), abs=2e-3)
    # one label: no boundary
    assert np.isnan(fa.basin_entropy(np.zeros((10, 10)), box=5)[1])
    with pytest.raises(ValueError, match="box"):
        fa.basin_entropy(L, box=0)
    # a line of labels: segments of `box` points; 0 0 0 1 | 1 1 1 1 | 2 2 0 0 (| 2 dropped)
    line = np.array([0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 0, 0, 2])
    Sb, Sbb, nb = fa.basin_entropy(line, box=4)
    s1 = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
    assert nb == 2 and Sbb == pytest.approx((s1 + np.log(2)) / 2) and Sb == pytest.approx((s1 + np.log(2)) / 3)


def test_orbit_period_closed_forms():
    """A fixed point, a 2-cycle, a damped oscillation onto a fixed point (not a 2-cycle), chaos."""
    n = np.arange(200)
    assert fa.orbit_period(np.ones((50, 1))) == 1
    assert fa.orbit_period(np.where(n % 2, 1.2, 0.7)[:, None]) == 2
    damped = 1 + 3e-5 * (-0.986) ** n       # multiplier −0.986: converges slowly; passes the p = 2 test
    assert fa.orbit_period(damped[:, None]) == 0
    x = [0.3]
    for _ in range(199):
        x.append(4 * x[-1] * (1 - x[-1]))                 # the logistic map at r = 4: chaos
    assert fa.orbit_period(np.array(x)[:, None]) == 0
    assert fa.orbit_period(np.full((10, 1), np.nan)) is None


def test_uncertainty_exponent_closed_forms():
    """A smooth boundary (isolated points) has α = 1; the middle-thirds Cantor set as boundary
    has dimension log 2/log 3, so α = 1 − log 2/log 3."""
    n = 3 ** 12
    i = np.arange(n)
    _, f, a = fa.uncertainty_exponent((i > n // 3).astype(int) + (i > 2 * n // 3), 1.0 / n)
    assert a == pytest.approx(1.0, abs=0.01)
    digits = (i[:, None] // 3 ** np.arange(11, -1, -1)) % 3          # ternary digits, most significant first
    first_one = np.where(np.any(digits == 1, axis=1), np.argmax(digits == 1, axis=1), 12)
    _, f, a = fa.uncertainty_exponent(first_one % 2, 1.0 / n, ks=3 ** np.arange(1, 7))
    assert 1 - a == pytest.approx(np.log(2) / np.log(3), abs=0.02)
    with pytest.raises(ValueError, match="two separations"):
        fa.uncertainty_exponent([0, 1, 0], 1.0)
