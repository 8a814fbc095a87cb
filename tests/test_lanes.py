"""The map kernels in SIMD lanes (maps.h, fc_rest_lanes): a start's result must not depend on its
lane, its neighbours, the lane width, the thread count or the order of the batch — bitwise."""
import numpy as np
import pytest

import flowcore as fc
from flowcore import Status
from flowcore.engine import _kernels

RADIUS = 1e6


def _starts():
    """A grid on the double well, with a NaN start, an escaping one and one on the saddle mixed in
    (their lane neighbours are ordinary starts)."""
    g = np.linspace(-2, 2, 37)
    th = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    th[5] = [np.nan, 0.3]
    th[6] = [50.0, 1.0]
    th[7] = [0.0, 0.0]
    return np.ascontiguousarray(th)


CASES = [  # GD to fixed points; GD past the edge to 2- and 4-cycles; heavy ball; DAL (H ĝ rates)
    (fc.GD(0.1), fc.RestTest(escape_radius=RADIUS, steps=1000)),
    (fc.GD(0.27), fc.RestTest(escape_radius=RADIUS, steps=3000)),
    (fc.GD(0.31), fc.RestTest(escape_radius=RADIUS, steps=3000, max_period=8, confirm=20)),
    (fc.HeavyBall(0.1, beta=0.9), fc.RestTest(escape_radius=RADIUS, steps=2000)),
    (fc.DAL(power=1, lr_cap=0.2), fc.RestTest(escape_radius=RADIUS, steps=500)),
]


def _run(th, method, rest, threads=1):
    r = fc.descend_to_rest(fc.losses.double_well(), th, method, rest=rest,
                           compute=fc.Compute(threads=threads, device="cpu"), progress=False)
    return np.concatenate([r.final, np.stack([r.status, r.nsteps, r.period], 1)], 1)


def _width(monkeypatch, w):
    if w is None:
        monkeypatch.delenv(_kernels.LANES_ENV, raising=False)
    else:
        monkeypatch.setenv(_kernels.LANES_ENV, str(w))


@pytest.mark.parametrize("method, rest", CASES, ids=["gd", "gd-2cycles", "gd-4cycles", "heavy-ball", "dal"])
def test_bitwise_across_widths_threads_and_order(monkeypatch, method, rest):
    th = _starts()
    _width(monkeypatch, 1)
    ref = _run(th, method, rest)
    st, per = ref[:, 2], ref[:, 4]
    assert st[5] == Status.NONFINITE and per[7] == 1
    if method.name != "dal":                    # DAL's rate 2/‖Hĝ‖ brings this start back
        assert st[6] == Status.ESCAPED
    if method.name == "gd" and method.lr == 0.27:
        assert (per == 2).sum() > 100           # the cases exercise the cycle path
    if method.name == "gd" and method.lr == 0.31:
        assert (per == 4).sum() > 100
    perm = np.random.default_rng(0).permutation(len(th))
    for w in (1, 4, 8, None):                   # None: this machine's width
        _width(monkeypatch, w)
        for threads in (1, 2):
            np.testing.assert_array_equal(_run(th, method, rest, threads), ref, err_msg=f"W={w}, {threads} thr")
        np.testing.assert_array_equal(_run(th[perm], method, rest, 2), ref[perm], err_msg=f"W={w}, permuted")


def test_a_start_alone_equals_it_among_others(monkeypatch):
    """Lane neighbours never leak: each start run alone (a block of one) gives its batch row."""
    _width(monkeypatch, None)
    th = _starts()
    method, rest = CASES[1]
    ref = _run(th, method, rest)
    for i in [0, 5, 6, 7, 100, 700, len(th) - 1]:
        np.testing.assert_array_equal(_run(th[i:i + 1], method, rest), ref[i:i + 1])


def test_lane_width_is_validated(monkeypatch):
    monkeypatch.setenv(_kernels.LANES_ENV, "3")
    with pytest.raises(ValueError, match="FLOWCORE_LANES must be one of"):
        _run(_starts()[:4], *CASES[0])


def test_lanes_agree_with_the_generic_loop():
    """The independent implementation of the same rest test (the Cython loop that runs losses
    given as Python callables) finds the same statuses and periods, and the same rest points."""
    th = _starts()
    generic = fc.Loss.from_callable(lambda w: (w[..., 0] ** 2 - 1) ** 2 + w[..., 1] ** 2,
                                    lambda w: np.stack([4 * w[..., 0] * (w[..., 0] ** 2 - 1), 2 * w[..., 1]], -1),
                                    dim=2)
    for method, rest in CASES[:3]:
        a = fc.descend_to_rest(fc.losses.double_well(), th, method, rest=rest, progress=False)
        b = fc.descend_to_rest(generic, th, method, rest=rest, progress=False)
        np.testing.assert_array_equal(a.status, b.status)
        np.testing.assert_array_equal(a.period, b.period)
        ok = a.status == Status.OK
        np.testing.assert_allclose(a.final[ok], b.final[ok], rtol=0, atol=1e-8)
        assert np.mean(np.abs(a.nsteps.astype(int) - b.nsteps) <= 1) > 0.99



# ------------------------------------------------------------------ recorded maps (fc_record_lanes)
RECORD_CASES = [(fc.GD(0.1), 60), (fc.GD(0.31), 60), (fc.HeavyBall(0.1, beta=0.9), 40),
                (fc.DAL(power=1, lr_cap=0.2), 30), (fc.DALPerParam(power=2, lr_cap=0.2), 30), (fc.Nesterov(0.1, beta=0.8), 40)]


def _record(th, method, steps, threads=1, radius=RADIUS):
    r = fc.descend(fc.losses.double_well(), th, method, steps, escape_radius=radius,
                   compute=fc.Compute(threads=threads, device="cpu"))
    assert r.device == "cpu"
    rates = np.asarray(r.lr, dtype=float).reshape(len(th), -1)
    return np.concatenate([r.iterates.reshape(len(th), -1), rates, np.stack([r.status, r.nsteps], 1)], 1)


@pytest.mark.parametrize("method, steps", RECORD_CASES, ids=["gd", "gd-cycles", "heavy-ball", "dal", "dal-per-param", "nesterov"])
def test_recording_bitwise_across_widths_threads_and_order(monkeypatch, method, steps):
    """fc.descend records FC_W starts a block: every iterate, rate, status and step count is the
    same bit for bit at W = 1, 4, 8 and this machine's width, on 1 and 2 threads, permuted, and
    for a start alone; the NaN start and the escaping one stop with NaN after their stop while
    their lane neighbours run on."""
    th = _starts()
    _width(monkeypatch, 1)
    ref = _record(th, method, steps, radius=40.0)
    st, n = ref[:, -2], ref[:, -1]
    assert st[5] == Status.NONFINITE and n[5] == 0
    if not method.name.startswith("dal"):
        assert st[6] == Status.ESCAPED and 0 < n[6] < steps
    X = ref[:, :(steps + 1) * 2].reshape(len(th), steps + 1, 2)
    k = np.arange(steps + 1)
    kept = k[None, :] <= n[:, None]
    assert np.isnan(X[~kept]).all() and np.isfinite(X[kept & (np.arange(len(th)) != 5)[:, None]]).all()
    assert ((n == steps) == (st == Status.OK)).all() and (st == Status.OK).mean() > 0.5
    perm = np.random.default_rng(1).permutation(len(th))
    for w in (4, 8, None):
        _width(monkeypatch, w)
        for threads in (1, 2):
            np.testing.assert_array_equal(_record(th, method, steps, threads, 40.0), ref,
                                          err_msg=f"W={w}, {threads} thr")
        np.testing.assert_array_equal(_record(th[perm], method, steps, 2, 40.0), ref[perm], err_msg=f"W={w}, permuted")
        for i in (0, 6, 100, len(th) - 1):
            np.testing.assert_array_equal(_record(th[i:i + 1], method, steps, 1, 40.0), ref[i:i + 1])


def test_recording_equals_gd_written_in_numpy():
    """The recorded GD iterates of E = (x² − 1)² + y² against the same map in numpy with the
    gradient derived by hand (4x(x² − 1), 2y): equal to rounding (the kernel folds lr into ∇E)."""
    th = _starts()[8:]
    h, steps = 0.1, 50
    X = fc.descend(fc.losses.double_well(), th, fc.GD(h), steps, compute=fc.Compute(device="cpu")).iterates
    cur = th.copy()
    for k in range(steps):
        cur = cur - h * np.stack([4 * cur[:, 0] * (cur[:, 0] ** 2 - 1), 2 * cur[:, 1]], 1)
        np.testing.assert_allclose(X[:, k + 1], cur, rtol=1e-13, atol=1e-15)

# ------------------------------------------------------------------ fc.solve's lanes (rk.h)
DW = fc.losses.double_well()
SOLVE_CASES = {   # adaptive with dense output or landing on outputs, fixed steps with the rest test
    "igr-dopri5-dense": (fc.flows.igr(DW, 0.3), dict(t_eval=np.linspace(0, 3, 7), escape_radius=30.0)),
    "igr-dopri5-landing": (fc.flows.igr(DW, 0.3), dict(t_eval=np.linspace(0, 3, 7), escape_radius=30.0,
                                                       method=fc.Dopri5(dense=False))),
    "igr-dop853": (fc.flows.igr(DW, 0.1), dict(t_span=(0, 2), method=fc.Dop853(rtol=1e-9, atol=1e-12),
                                               escape_radius=30.0)),
    "igr-rk4-rest": (fc.flows.igr(DW, 0.1), dict(t_span=(0, 20), method=fc.RK4(0.05), rest_tol=1e-6,
                                                 escape_radius=30.0)),
    "third-order-max-steps": (fc.flows.third_order(DW, 0.2), dict(t_span=(0, 50), escape_radius=30.0,
                                                                  method=fc.Dopri5(max_steps=40))),
    # the PF (tracked): diagonal in lanes (MVEC_CASES); coupled one trajectory a thread (W = 1 whatever
    # $FLOWCORE_LANES says)
    "pf-double-well": (fc.flows.pf(DW, 0.4), dict(t_span=(0, 2), escape_radius=30.0)),
    "pf-coupled": (fc.flows.pf(fc.losses.quadratic(np.array([[6.0, 1.0], [1.0, 2.0]])), 0.25),
                   dict(t_span=(0, 2), escape_radius=30.0)),
    "pf-rk4-rest": (fc.flows.pf(DW, 0.2), dict(t_span=(0, 20), method=fc.RK4(0.02), rest_tol=1e-8,
                                               escape_radius=30.0)),
    # sin and exp: glibc's scalar functions, called lane by lane (no -ffast-math, so no libmvec)
    "expression": (fc.Field.from_expr(["-sin(x)*exp(-y**2/4) - x/10", "cos(x*y) - y"], ["x", "y"]),
                   dict(t_span=(0, 3), escape_radius=30.0)),
}


def _solve(th, flow, kw, threads=1):
    s = fc.solve(flow, th, compute=fc.Compute(threads=threads, device="cpu"), progress=False, **kw)
    return np.concatenate([s.y.reshape(len(th), -1), np.stack([s.status, s.nfev, s.nsteps, s.nreject], 1)], 1)


@pytest.mark.parametrize("case", SOLVE_CASES)
def test_solve_bitwise_across_widths_threads_and_order(monkeypatch, case):
    flow, kw = SOLVE_CASES[case]
    th = _starts()
    if case == "pf-double-well":
        th[8] = [np.sqrt(13 / 24), 0.5]          # h·H_xx = 0.4 (12x² − 4) = 1: on the singular set
    _width(monkeypatch, 1)
    ref = _solve(th, flow, kw)
    if case == "pf-double-well":
        assert ref[8, -4] == Status.SINGULAR
    st = ref[:, -4]
    assert st[5] == Status.NONFINITE
    assert st[6] in (Status.ESCAPED, Status.NONFINITE)     # outside the radius (RK4's first step overflows)
    assert np.all(np.isnan(ref[5, -6:-4]))        # a stopped trajectory's last output stays NaN
    if case == "third-order-max-steps":
        assert (st == Status.MAX_STEPS).sum() > 100
    perm = np.random.default_rng(0).permutation(len(th))
    ref1 = ref
    for w in (4, 8, None):
        _width(monkeypatch, w)
        if case in MVEC_CASES:                  # libmvec's log, log1p, atan2 in the lanes: this width's own
            ref = _solve(th, flow, kw)
            _close_to_width_1(ref, ref1, MVEC_CASES[case], f"W={w}")
        for threads in (1, 2):
            np.testing.assert_array_equal(_solve(th, flow, kw, threads), ref, err_msg=f"W={w}, {threads} thr")
        np.testing.assert_array_equal(_solve(th[perm], flow, kw, 2), ref[perm], err_msg=f"W={w}, permuted")
    for i in [0, 5, 6, 7, 700]:                    # alone (the other lanes of its block idle)
        np.testing.assert_array_equal(_solve(th[i:i + 1], flow, kw), ref[i:i + 1])
    # one start in every lane of two blocks: no lane computes differently (a vector loop's remainder
    # or the compiler's fused complex products in some lanes only would show here)
    np.testing.assert_array_equal(_solve(np.repeat(th[700:701], 64, axis=0), flow, kw), np.repeat(ref[700:701], 64, axis=0))


# The diagonal PF runs in lanes with libmvec's vector log, log1p and atan2 (≤ 4 ulp; glibc's scalar
# functions at W = 1): per width bitwise as above, across widths the same statuses and values within
# a few ulp on fixed steps, within the tolerance where an adaptive step sequence can change
# (measured 2.6e-16 and 2.3e-7 relative; docs/kernels.md)
MVEC_CASES = {"pf-double-well": 1e-5, "pf-rk4-rest": 1e-14}


def _close_to_width_1(r, r1, rel, msg):
    np.testing.assert_array_equal(r[:, -4], r1[:, -4], err_msg=msg + ": statuses")
    y, y1 = r[:, :-4], r1[:, :-4]
    np.testing.assert_array_equal(np.isnan(y), np.isnan(y1), err_msg=msg)
    ok = ~np.isnan(y1)
    assert np.max(np.abs(y[ok] - y1[ok]) / np.maximum(np.abs(y1[ok]), 1.0)) <= rel, msg


def test_the_controllers_log_and_exp_against_mpmath():
    """control.h's factor exp(p log x), the step controller's err^p, to 1e-15 relative for x in
    [1e-10, 1e10] and 3e-14 out to the clamp, [1e-300, 1e300] (mpmath at 30 digits)."""
    import mpmath
    from flowcore.engine import _codegen
    src = "\n".join(['#include "flowcore/control.h"',
                     "int fc_ctrl_pow_all(long n, const double *x, const double *p, double *out)",
                     "{ for (long i = 0; i < n; i++) out[i] = fc_ctrl_exp(p[i] * fc_ctrl_log(x[i])); return 0; }"])
    lib = _codegen.build(["test-ctrl-pow", src], lambda: src, "the controller's test harness",
                         extra=["-I", str(_kernels.INCLUDE)])
    rng = np.random.default_rng(3)
    for lo, hi, bound in ((-10, 10, 1e-15), (-300, 300, 3e-14)):
        x = 10.0 ** rng.uniform(lo, hi, 4000)
        x[:3] = [1.0, 10.0 ** lo, 10.0 ** hi]
        p = rng.choice([-0.17, -0.2, 0.04, 0.08, -0.125], len(x))
        out = np.empty_like(x)
        ptr = lambda a: a.ctypes.data_as(__import__("ctypes").c_void_p)      # noqa: E731
        lib.fc_ctrl_pow_all(__import__("ctypes").c_long(len(x)), ptr(x), ptr(p), ptr(out))
        with mpmath.workdps(30):
            exact = np.array([float(mpmath.power(mpmath.mpf(float(a)), mpmath.mpf(float(b)))) for a, b in zip(x, p)])
        assert np.max(np.abs(out - exact) / exact) < bound


PHI_HARNESS = r"""
#define FC_D 1
#define FC_COMPLEX 1
#include "flowcore/kernel.h"
#include "flowcore/spectral.h"
/* as fc_rhs_block: the calls' arguments, the calls alone, the rest; n a multiple of FC_W */
void phi(int n, const double *zr, const double *zi, double *out)
{
    for (int i0 = 0; i0 < n; i0 += FC_W) {
        double arg[FC_W], n2[FC_W], y[FC_W], x[FC_W], lg[FC_W], ln[FC_W], at[FC_W];
        FC_SIMD
        for (int l = 0; l < FC_W; l++) {
            const fc_z z = fc_cmplx(zr[i0 + l], zi[i0 + l]);
            arg[l] = fc_log1m_arg(z); n2[l] = fc_log1m_norm2(z); y[l] = fc_arg_y(z); x[l] = fc_arg_x(z);
        }
        FC_SIMD
        for (int l = 0; l < FC_W; l++) { lg[l] = fc_vlog1p(arg[l]); ln[l] = fc_vlog(n2[l]); at[l] = fc_vatan2(y[l], x[l]); }
        FC_SIMD
        for (int l = 0; l < FC_W; l++) {
            const fc_z z = fc_cmplx(zr[i0 + l], zi[i0 + l]), p = fc_phi_lane(z, fc_log1m_parts(z, lg[l], ln[l], at[l]));
            out[2 * (i0 + l)] = fc_re(p);
            out[2 * (i0 + l) + 1] = fc_im(p);
        }
    }
}
"""


def test_lane_phi_against_mpmath(tmp_path):
    """φ(z) = log(1 − z)/z as the diagonal PF's lanes compute it (spectral.h: ½ log1p(|1 − z|² − 1)
    near z = 0, ½ log|1 − z|² elsewhere, atan2; no series) against mpmath at 120 bits: within 4 ulp
    on the real axis up to the singularity, near 0 and 1, over the plane and around |1 − z| = 1 — at
    W = 1 (glibc's scalar functions) and in lanes (libmvec's vector ones, when the build finds them)."""
    import ctypes
    import subprocess
    import mpmath as mp
    from flowcore.engine import _codegen
    cc = _codegen.compiler()
    src = tmp_path / "phi.c"
    src.write_text(PHI_HARNESS)
    defines, libs = _codegen.mvec_flags(cc)
    rng, n = np.random.default_rng(0), 384                      # a multiple of the harness's 32 lanes
    a = rng.uniform(0, 2 * np.pi, n)
    regions = {"real axis": (np.linspace(-3, 0.999, n), np.zeros(n)),
               "near 1": (1 + np.geomspace(1e-11, 0.4, n) * np.repeat([-1, 1], n // 2), rng.normal(0, 1e-9, n)),
               "near 0": (rng.normal(0, 1e-3, n), rng.normal(0, 1e-3, n)),
               "plane": (rng.uniform(-5, 5, n), rng.uniform(-5, 5, n)),
               "|1 - z| = 1": (1 - np.cos(a), -np.sin(a))}
    mp.mp.prec = 120
    for width, extra in ((1, []), (32, [*_codegen.native_flags(cc), *defines])):
        so = tmp_path / f"phi{width}.so"
        proc = subprocess.run([cc, *_codegen.cflags(cc), *_codegen.openmp_flags(cc), *extra, f"-DFC_W={width}",
                               "-I", str(_kernels.INCLUDE), "-o", str(so), str(src), *libs, "-lm"],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        lib = ctypes.CDLL(str(so))
        for name, (zr, zi) in regions.items():
            zr, zi = np.ascontiguousarray(zr), np.ascontiguousarray(zi)
            assert len(zr) % 32 == 0
            out = np.empty(2 * len(zr))
            P = ctypes.POINTER(ctypes.c_double)
            lib.phi(len(zr), zr.ctypes.data_as(P), zi.ctypes.data_as(P), out.ctypes.data_as(P))
            got = out[0::2] + 1j * out[1::2]
            ref = np.array([complex(mp.log(1 - mp.mpc(x, y)) / mp.mpc(x, y)) for x, y in zip(zr, zi)])
            ulps = np.abs(got - ref) / np.abs(ref) / np.finfo(float).eps
            assert ulps.max() <= 4, (width, name, ulps.max(), zr[np.argmax(ulps)], zi[np.argmax(ulps)])


ABS_HARNESS = r"""
#define FC_D 1
#define FC_COMPLEX 1
#include "flowcore/kernel.h"
void absl(int n, const double *zr, const double *zi, double *out)
{
    FC_SIMD
    for (int l = 0; l < n; l++) out[l] = fc_cabs_lane(fc_cmplx(zr[l], zi[l]));
}
"""


def test_lane_modulus_against_hypot(tmp_path):
    """|z| as the complex error norm computes it in lanes (kernel.h's fc_cabs_lane: √(re² + im²)
    where safe, else scaled by the larger part, no library call): within 2 ulp of hypot from 1e-300
    to 1e300 (fc_cabs's √(re² + im²): 1.5), inf for an infinite part (a NaN beside it too), NaN for a NaN, 0 for 0."""
    import ctypes
    import subprocess
    from flowcore.engine import _codegen
    cc = _codegen.compiler()
    (tmp_path / "abs.c").write_text(ABS_HARNESS)
    so = tmp_path / "abs.so"
    proc = subprocess.run([cc, *_codegen.cflags(cc), *_codegen.openmp_flags(cc), *_codegen.native_flags(cc),
                           "-I", str(_kernels.INCLUDE), "-o", str(so), str(tmp_path / "abs.c"), "-lm"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rng = np.random.default_rng(1)
    mag = 10.0 ** rng.uniform(-300, 300, (2, 4000))
    zr, zi = mag * rng.choice([-1, 1], mag.shape)
    zi[:1000] = zr[:1000] * 10.0 ** rng.uniform(-20, 0, 1000)          # parts of similar size
    special = [(0.0, 0.0), (-0.0, 0.0), (np.inf, 1.0), (1.0, -np.inf), (np.inf, np.nan), (np.nan, 1.0),
               (1e-320, 0.0), (3e-160, 4e-160), (3e160, 4e160)]
    zr = np.ascontiguousarray(np.concatenate([zr, [s[0] for s in special]]))
    zi = np.ascontiguousarray(np.concatenate([zi, [s[1] for s in special]]))
    out = np.empty(len(zr))
    P = ctypes.POINTER(ctypes.c_double)
    ctypes.CDLL(str(so)).absl(len(zr), zr.ctypes.data_as(P), zi.ctypes.data_as(P), out.ctypes.data_as(P))
    ref = np.hypot(zr, zi)
    finite = np.isfinite(ref) & (ref > 0)
    assert np.max(np.abs(out[finite] - ref[finite]) / ref[finite]) <= 2 * np.finfo(float).eps
    got = dict(zip(special, out[-len(special):]))
    assert got[(0.0, 0.0)] == 0 and got[(-0.0, 0.0)] == 0
    assert got[(np.inf, 1.0)] == got[(1.0, -np.inf)] == got[(np.inf, np.nan)] == np.inf
    assert np.isnan(got[(np.nan, 1.0)])
    assert got[(1e-320, 0.0)] == 1e-320 and got[(3e-160, 4e-160)] == pytest.approx(5e-160, rel=1e-15)
    assert got[(3e160, 4e160)] == pytest.approx(5e160, rel=1e-15)
