"""The per-problem compiled kernels: one source for the CPU and the GPU.

References are closed forms (quadratics, the exponential decay), the generic function-pointer
loop run on Python callables (a separate implementation of the same semantics), and NVRTC,
which must compile every kind of kernel source for CUDA (no GPU needed)."""
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import flowcore as fc
from flowcore.engine import _kernels
from flowcore.engine.tableaux import TABLEAUX


def _cases():
    dw = fc.losses.double_well()
    quartic = fc.Loss.from_expr("x**4/4 - x**2/2")
    rich = fc.Loss.from_expr("exp(x*y/2) + log(1 + x**2) + sqrt(1 + y**2)*sin(x)**1.5")
    lorenz = fc.Field.from_expr(["10*(y - x)", "x*(28 - z) - y", "x*y - 8*z/3"], vars=("x", "y", "z"))
    coupled = fc.Loss.from_expr("x**4/4 - x**2/2 + y**2/2 + x*y/4")     # the 2×2 PF: eigenvectors, divided differences
    return [(fc.flows.igr(dw, 0.1), "dopri5", False),
            (fc.flows.pf(dw, 0.4), "dop853", False),
            (fc.flows.pf(quartic, 0.4, nonprincipal=True), "rk4", False),
            (fc.flows.pf(dw, 0.4, branch="principal"), "dopri5", False),
            (fc.flows.third_order(rich, 0.1), "dopri5", True),
            (lorenz, "dop853", False),
            (fc.flows.pf(coupled, 0.3), "dopri5", False)]


@pytest.mark.skipif(sys.platform != "linux", reason="the NVRTC wheels are for Linux")
def test_every_kind_of_kernel_compiles_for_cuda():
    """CI has no GPU: NVRTC compiles the very sources the CPU runs, so CUDA breakage fails here."""
    sources = [_kernels.solve_source(_kernels.problem(f, c), TABLEAUX[m], True) for f, m, c in _cases()]
    dw = _kernels.loss_problem(fc.losses.double_well())
    # heavy ball's branch is a part of Nesterov's, DAL momentum's of DAL per parameter's and DAL's
    maps = [_kernels.map_source(dw, method, 16) for method in ("gd", "nesterov", "dal", "dal_per_param")]
    with ThreadPoolExecutor(2) as pool:
        ptx = list(pool.map(_kernels.nvrtc_compile, sources + maps))
    assert all(".entry fc_solve_gpu" in p for p in ptx[:len(sources)])
    assert all(".entry fc_rest_gpu" in p and ".entry fc_record_gpu" in p for p in ptx[len(sources):])


def test_kernel_equals_closed_form_and_generic_loop():
    # NGF on E = ½ θᵀAθ: θ(t) = exp(−tA) θ0 (closed form)
    A = np.array([[3.0, 1.0], [1.0, 2.0]])
    loss = fc.Loss.from_expr("3*x**2/2 + x*y + y**2")
    th0 = np.random.default_rng(1).uniform(-2, 2, (50, 2))
    sol = fc.solve(fc.flows.ngf(loss, 0.1), th0, t_eval=[0, 0.5, 1.0], method=fc.Dopri5(rtol=1e-11, atol=1e-13))
    lam, V = np.linalg.eigh(A)
    for k, t in enumerate([0, 0.5, 1.0]):
        exact = th0 @ (V @ np.diag(np.exp(-t * lam)) @ V.T).T
        np.testing.assert_allclose(sol.y[:, k], exact, rtol=0, atol=1e-9)
    # the same field as a Python callable runs the generic loop: the same steps and counts
    igr = fc.flows.igr(fc.losses.double_well(), 0.1)
    slow = fc.Field.from_callable(lambda th: igr(th), dim=2, vectorized=True)
    a = fc.solve(igr, th0, t_span=(0, 1))
    b = fc.solve(slow, th0, t_span=(0, 1))
    assert a.device == "cpu" and (a.nfev == b.nfev).all() and (a.nreject == b.nreject).all()
    np.testing.assert_allclose(a.y, b.y, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("flow, coef", [("igr", (-1.0, -0.5)), ("third_order", (-1.0, -0.5, -1 / 3))])
def test_polynomial_field_over_a_sparse_coupled_hessian(flow, coef):
    """The kernel writes H·r over the Hessian's structurally nonzero entries (H of x²y + z³ + xz
    has zeros off and on the diagonal): one RK4 step equals numpy's RK4 step on α(hH)g =
    Σ_p coef_p (hH)^p g with the full matrices (third order: plus its −(h²/12)T[g, g])."""
    loss = fc.Loss.from_expr("x**2*y + z**3 + x*z")
    h, dt = 0.1, 0.05
    fl = getattr(fc.flows, flow)(loss, h)
    th0 = np.random.default_rng(4).uniform(-1, 1, (20, 3))

    def field(th):
        g, H = loss.grad(th), loss.hess(th)
        out, power = np.zeros_like(g), g
        for c in coef:
            out += c * power
            power = h * np.einsum("nij,nj->ni", H, power)
        if getattr(fl, "np_coef", 0.0):
            out += fl.np_coef * loss.third(th, g)
        return out
    k1 = field(th0)
    k2 = field(th0 + dt / 2 * k1)
    k3 = field(th0 + dt / 2 * k2)
    k4 = field(th0 + dt * k3)
    ref = th0 + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    sol = fc.solve(fl, th0, t_span=(0, dt), method=fc.RK4(dt))
    assert fc.compiled(fl)
    np.testing.assert_allclose(sol.y[:, -1], ref, rtol=1e-13, atol=1e-15)
    src = _kernels.solve_source(_kernels.problem(fl), TABLEAUX["rk4"], False)
    body = src.split("const double coef")[1]
    assert f"s[1] = ((coef[{len(coef) - 1}] * a->lr) * H[3]) * g[0];" in body and "H[4]" not in body


def test_bad_starts_end_alone_and_leave_others_bit_identical():
    """NaN, escape and the PF's singular set hλ = 1 stop only their own trajectory."""
    loss = fc.Loss.from_expr("x**2")                      # λ = 2: hλ = 1 at h = 0.5
    good = np.array([[0.3], [-0.7], [1.1]])
    flow = fc.flows.pf(loss, 0.3)
    alone = fc.solve(flow, good, t_span=(0, 2), escape_radius=50)
    bad = np.array([[np.nan], [1e3]])
    mixed = fc.solve(flow, np.vstack([bad[:1], good[:1], bad[1:], good[1:]]), t_span=(0, 2), escape_radius=50)
    assert list(mixed.status) == [fc.Status.NONFINITE, 0, fc.Status.ESCAPED, 0, 0]
    assert np.array_equal(mixed.y[[1, 3, 4]], alone.y)            # bitwise
    sing = fc.solve(fc.flows.pf(loss, 0.5), good, t_span=(0, 1))
    assert (sing.status == fc.Status.SINGULAR).all()


def test_a_stage_going_non_finite_ends_its_trajectory_only():
    """The compiled fields do not test each stage: a NaN met inside a step (here √x of a stage
    below 0) must still end that trajectory as NONFINITE, fixed step or adaptive, and leave
    the others bit-identical."""
    field = fc.Field.from_expr(["-sqrt(x)"], vars=("x",))
    good = np.array([[4.0], [9.0]])
    for kw, rtol in ((dict(method=fc.RK4(0.1)), 1e-6), (dict(method=fc.Euler(0.1)), 2e-2)):
        alone = fc.solve(field, good, t_span=(0, 1), **kw)
        mixed = fc.solve(field, np.array([[4.0], [1e-4], [9.0]]), t_span=(0, 1), **kw)
        assert list(mixed.status) == [0, fc.Status.NONFINITE, 0], kw
        assert np.array_equal(mixed.y[[0, 2]], alone.y)
        np.testing.assert_allclose(alone.y[:, -1, 0], (np.sqrt(good[:, 0]) - 0.5) ** 2, rtol=rtol)
    # adaptive: a NaN stage rejects the step (never a state); x reaches 0 at t = 0.02, where the
    # steps shrink to nothing
    sol = fc.solve(field, [[1e-4], [4.0]], t_span=(0, 1), method=fc.Dopri5())
    assert list(sol.status) == [fc.Status.STEP_UNDERFLOW, 0] and sol.nreject[0] > 0
    np.testing.assert_allclose(sol.y[1, -1, 0], 2.25, rtol=1e-8)


def test_kernel_results_do_not_depend_on_threads_or_batch():
    flow = fc.flows.pf(fc.losses.double_well(), 0.4)
    th = np.random.default_rng(2).uniform(-1.3, 1.3, (300, 2))
    one = fc.solve(flow, th, t_span=(0, 3), escape_radius=1e3, compute=fc.Compute(threads=1))
    two = fc.solve(flow, th, t_span=(0, 3), escape_radius=1e3, compute=fc.Compute(threads=2, chunk=37))
    single = fc.solve(flow, th[123:124], t_span=(0, 3), escape_radius=1e3)
    assert np.array_equal(one.y, two.y, equal_nan=True) and np.array_equal(one.status, two.status)
    assert np.array_equal(single.y[0], one.y[123], equal_nan=True)


def test_rest_stop_ends_settled_trajectories_at_the_minimum():
    loss = fc.Loss.from_expr("(x - 1)**2 + 2*(y + 0.5)**2")
    th = np.random.default_rng(3).uniform(-3, 3, (20, 2))
    kw = dict(t_eval=[0, 50, 100], method=fc.RK4(0.05))       # the basins' fixed-step case
    full = fc.solve(fc.flows.ngf(loss, 0.1), th, **kw)
    rest = fc.solve(fc.flows.ngf(loss, 0.1), th, rest_tol=1e-10, **kw)
    assert (rest.status == fc.Status.OK).all() and (full.nsteps == 2000).all()
    assert (rest.nsteps < 400).all()          # |f| ~ e^{-2t} |f0| reaches 1e-10 by t ≈ 13
    np.testing.assert_allclose(rest.y[:, -1], [[1.0, -0.5]] * 20, atol=1e-9)
    np.testing.assert_array_equal(rest.y[:, 1], rest.y[:, 2])     # outputs after rest repeat it
    with pytest.raises(ValueError, match="rest_tol needs a compiled kernel"):
        fc.solve(fc.Field.from_callable(lambda th: -th, dim=1), [[1.0]], t_span=(0, 1), rest_tol=1e-8)


def test_device_argument():
    flow = fc.flows.ngf(fc.losses.double_well(), 0.1)
    with pytest.raises(ValueError, match="device must be"):
        fc.solve(flow, [[1.0, 1.0]], t_span=(0, 1), compute=fc.Compute(device="cuda"))
    if not _kernels.gpu_usable(None):
        with pytest.raises(fc.DeviceUnavailable, match="needs CuPy and an NVIDIA GPU"):
            fc.solve(flow, [[1.0, 1.0]], t_span=(0, 1), compute=fc.Compute(device="gpu"))
        from flowcore.cli import main
        assert main(["basins", "--loss", "double_well", "--lr", "0.1", "--grid=-1,1,5,-1,1,5",
                     "--device", "gpu"]) == 2
        assert main(["orbit", "--loss", "x**4/4 - x**2/2", "--lrs", "0.1,0.5,5", "--theta0", "0.5",
                     "--device", "gpu"]) == 2
    py = fc.Field.from_callable(lambda th: -th, dim=1)
    with pytest.raises(ValueError, match="cannot run on the GPU: .*Python callable"):
        fc.solve(py, [[1.0]], t_span=(0, 1), compute=fc.Compute(device="gpu"))


@pytest.mark.parametrize("case", range(7))
def test_gpu_matches_cpu(case, gpu):
    """The same statuses, and the same values up to rounding: 1e-12 relative for a fixed step
    (the tolerance for adaptive ones), widened per trajectory by how much the CPU's own result
    moves when the start moves by 8 ulps. A GPU's exp, log and complex sqrt differ from the
    host's in the last bit, and the PF near a branch point (1 − hλ → 0) amplifies that ~10⁷×."""
    flow, method, cplx = _cases()[case]
    rng = np.random.default_rng(case)
    # Boxes with well-posed paths: the principal PF's field jumps where Im x changes sign past
    # 1 − hλ = 0 (a real path crossing it takes a side by rounding, on any target), so its
    # starts lie beyond the crossing (half grind to max_steps on the jump: the same on both);
    # the complex third-order flow is kept short of sin(x)**1.5's branch point at x = 0.
    low, high, t_end = {3: (0.8, 1.3, 0.2), 4: (0.5, 1.3, 0.2)}.get(case, (-1.3, 1.3, 1.0))
    th = rng.uniform(low, high, (2000, flow.dim)) + (0.1j if cplx else 0)
    kw = dict(t_span=(0, t_end), method=fc.RK4(0.01, max_steps=2000) if method == "rk4" else
              fc.Adaptive(method, max_steps=2000), escape_radius=1e3)
    cpu = fc.solve(flow, th, compute=fc.Compute(device="cpu"), **kw)
    nudged = fc.solve(flow, th * (1 + 8 * np.finfo(float).eps), compute=fc.Compute(device="cpu"), **kw)
    dev = fc.solve(flow, th, compute=fc.Compute(device="gpu"), **kw)
    assert dev.device == "gpu"
    np.testing.assert_array_equal(cpu.status, dev.status)
    ok = (cpu.status == 0) & (nudged.status == 0)
    tol = 1e-12 if method == "rk4" else 1e-6
    err = np.abs(dev.y[ok] - cpu.y[ok]).max(axis=(1, 2))
    slack = np.abs(nudged.y[ok] - cpu.y[ok]).max(axis=(1, 2))
    allowed = tol * (1 + np.abs(cpu.y[ok]).max(axis=(1, 2))) + 100 * slack
    assert np.all(err <= allowed), (err / allowed).max()
    assert np.median(slack) < 1e-7              # the widening is the exception, not the rule


def test_rest_kernel_matches_generic_loop_and_closed_form():
    """descend_to_rest's compiled kernel against the generic loop (a Python-callable loss of the
    same function) and GD's closed form on the double well at h = 1.1 (2-cycles: the real roots
    of f(f(w)) = w, f(w) = w − h·4w(w² − 1), found here with numpy)."""
    loss = fc.Loss.from_expr("(x**2 - 1)**2")
    slow = fc.Loss.from_callable(lambda w: (w[..., 0] ** 2 - 1) ** 2,
                                 lambda w: 4 * w * (w ** 2 - 1),
                                 lambda w: (12 * w ** 2 - 4)[..., None], dim=1, vectorized=True)
    starts = np.linspace(-1.3, 1.3, 201)[:, None]
    for h in (0.1, 0.3):
        a = fc.descend_to_rest(loss, starts, fc.GD(h), fc.RestTest(steps=3000))
        b = fc.descend_to_rest(slow, starts, fc.GD(h), fc.RestTest(steps=3000))
        np.testing.assert_array_equal(a.period, b.period)
        np.testing.assert_allclose(a.final, b.final, atol=1e-12)
    h = 0.3
    c = fc.descend_to_rest(loss, starts, fc.GD(h), fc.RestTest(max_period=4, steps=3000))
    f = np.polynomial.Polynomial([0, 1 + 4 * h, 0, -4 * h])          # w - h 4w(w² - 1)
    ff = f(f) - np.polynomial.Polynomial([0, 1])
    roots = ff.roots()
    real = np.sort(roots[np.abs(roots.imag) < 1e-9].real)
    cyc = c.final[c.period == 2, 0]
    assert cyc.size > 0 and all(np.min(np.abs(real - w)) < 1e-8 for w in cyc)


def test_gpu_rest_matches_cpu(gpu):
    loss = fc.losses.double_well()
    g = np.linspace(-2, 2, 200)
    th = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    for method, lr in (("gd", 0.1), ("dal", None), ("nesterov", 0.05)):
        m = fc.method(method, **({} if lr is None else {"lr": lr}))
        cpu = fc.descend_to_rest(loss, th, m, fc.RestTest(steps=2000), fc.Compute(device="cpu"))
        dev = fc.descend_to_rest(loss, th, m, fc.RestTest(steps=2000), fc.Compute(device="gpu"))
        assert dev.device == "gpu"
        np.testing.assert_array_equal(cpu.status, dev.status)
        np.testing.assert_array_equal(cpu.period, dev.period)
        np.testing.assert_allclose(dev.final, cpu.final, atol=1e-8)


DESCEND_METHODS = (("gd", 0.1), ("heavy_ball", 0.05), ("nesterov", 0.05), ("dal", None),
                   ("dal_momentum", None), ("dal_per_param", None))


def _method_value(method, lr):
    """The method with DAL's rate cap and momentum's β where it reads them."""
    return fc.method(method, **({"lr": lr} if lr is not None else {}),
                     **({"lr_cap": 1.0} if method.startswith("dal") else {}),
                     **({"beta": 0.5} if method in ("heavy_ball", "nesterov", "dal_momentum") else {}))


def _double_well_callable():
    """The zoo's double well (x² − 1)² + y² as a Python callable: the generic loop's input."""
    def grad(w):
        return np.stack([4 * w[..., 0] * (w[..., 0] ** 2 - 1), 2 * w[..., 1]], -1)

    def hess(w):
        H = np.zeros(w.shape + (2,))
        H[..., 0, 0], H[..., 1, 1] = 12 * w[..., 0] ** 2 - 4, 2.0
        return H
    return fc.Loss.from_callable(lambda w: (w[..., 0] ** 2 - 1) ** 2 + w[..., 1] ** 2, grad, hess, dim=2,
                                 vectorized=True)


def test_descend_kernel_matches_generic_loop_and_closed_form(monkeypatch):
    """fc.descend's compiled recording kernel (an expression loss) against the generic loop (the
    same loss as a Python callable, a separate implementation): statuses, step counts, iterates
    and rates for all six methods; NaN and escaping starts end alone; GD on a quadratic is
    (1 − hλ)^k θ0; results do not depend on the thread count."""
    loss, slow = fc.losses.double_well(), _double_well_callable()
    th = np.random.default_rng(2).uniform(-1.5, 1.5, (200, 2))
    bad = np.vstack([[np.nan, 0.0], [40.0, 40.0], th])
    kernel_runs = []
    real = _kernels.run_record_host
    monkeypatch.setattr(_kernels, "run_record_host", lambda *a: kernel_runs.append(1) or real(*a))
    for method, lr in DESCEND_METHODS:
        m, kw = _method_value(method, lr), dict(steps=80, escape_radius=1e3)
        fast = fc.descend(loss, bad, m, **kw)
        assert len(kernel_runs) == 1, method                    # the kernel ran; the callable ...
        ref = fc.descend(slow, bad, m, **kw)
        assert len(kernel_runs) == 1, method                    # ... took the generic loop
        kernel_runs.clear()
        np.testing.assert_array_equal(fast.status, ref.status)
        np.testing.assert_array_equal(fast.nsteps, ref.nsteps)
        np.testing.assert_array_equal(np.isnan(fast.iterates), np.isnan(ref.iterates))
        np.testing.assert_allclose(fast.iterates, ref.iterates, rtol=1e-12, atol=1e-12, err_msg=method)
        assert fast.lr.shape == ref.lr.shape, method
        np.testing.assert_allclose(fast.lr, ref.lr, rtol=1e-12, err_msg=method)
        assert fast.status[0] == fc.Status.NONFINITE
        assert np.array_equal(fc.descend(loss, th, m, **kw).iterates, fast.iterates[2:])
        assert np.array_equal(fc.descend(loss, bad, m, compute=fc.Compute(threads=1), **kw).iterates, fast.iterates,
                              equal_nan=True)
        kernel_runs.clear()
    quad = fc.Loss.from_expr("3*x**2/2 + y**2/4")                  # λ = 3, 1/2
    h, k = 0.3, np.arange(41)
    run = fc.descend(quad, [[1.0, -2.0]], fc.GD(h), 40)
    exact = np.stack([(1 - 3 * h) ** k, -2 * (1 - h / 2) ** k], -1)
    np.testing.assert_allclose(run.iterates[0], exact, rtol=1e-13, atol=1e-300)


def test_gpu_descend_matches_cpu(gpu, capsys, monkeypatch):
    """fc.descend's recording kernel on the GPU against the CPU's: the same statuses and step
    counts, iterates and DAL rates equal up to rounding (contracting maps here, so last-bit
    differences stay small), a NaN start and an escaping one ending alone, the same in launches
    of a few starts; fa.orbit_diagram's periods and orbits the same on both."""
    import flowcore.analysis as fa
    loss = fc.losses.double_well()
    th = np.random.default_rng(1).uniform(-1.5, 1.5, (300, 2))
    bad = np.vstack([[np.nan, 0.0], [40.0, 40.0], th])
    for method, lr in DESCEND_METHODS:
        meth, kw = _method_value(method, lr), dict(steps=80, escape_radius=1e3)
        cpu = fc.descend(loss, bad, meth, compute=fc.Compute(device="cpu"), **kw)
        dev = fc.descend(loss, bad, meth, compute=fc.Compute(device="gpu"), **kw)
        assert (cpu.device, dev.device) == ("cpu", "gpu")
        far = fc.Status.OK if method.startswith("dal") else fc.Status.ESCAPED     # DAL's rate shrinks there
        assert list(dev.status[:2]) == [fc.Status.NONFINITE, far], method
        np.testing.assert_array_equal(cpu.status, dev.status)
        np.testing.assert_array_equal(cpu.nsteps, dev.nsteps)
        np.testing.assert_array_equal(np.isnan(cpu.iterates), np.isnan(dev.iterates))
        np.testing.assert_allclose(dev.iterates, cpu.iterates, rtol=1e-12, atol=1e-12, err_msg=method)
        np.testing.assert_allclose(dev.lr, cpu.lr, rtol=1e-12, err_msg=method)
        alone = fc.descend(loss, th, meth, compute=fc.Compute(device="gpu"), **kw)
        assert np.array_equal(alone.iterates, dev.iterates[2:]), method
    with monkeypatch.context() as m:                                     # launches of 7 starts
        m.setattr(_kernels, "GPU_RECORD_BYTES", 7 * 81 * 2 * 8)
        chunked = fc.descend(loss, bad, meth, compute=fc.Compute(device="gpu"), **kw)   # (the last: rates [N, steps, D])
    for field in ("iterates", "lr", "status", "nsteps"):
        assert np.array_equal(getattr(chunked, field), getattr(dev, field), equal_nan=True), field

    quartic = fc.Loss.from_expr("(x**2 - 1)**2")       # w⁺ = w − 4hw(w² − 1): doubling at h = 1/4
    lrs = np.arange(0.1025, 0.32, 0.005)                # periods 1, 2, 4; not h = 1/4 itself
    cpu, dev = (fa.orbit_diagram(quartic, lrs, [0.5], transient=400, keep=32, device=d) for d in ("cpu", "gpu"))
    assert dev["device"] == "gpu" and {1, 2, 4} <= set(dev["period"])
    assert cpu["period"] == dev["period"]
    np.testing.assert_allclose(dev["orbits"], cpu["orbits"], rtol=1e-9)

    py = _double_well_callable()
    with pytest.raises(ValueError, match="cannot run on the GPU: .*no symbolic expression"):
        fc.descend(py, th, fc.GD(0.1), steps=5, compute=fc.Compute(device="gpu"))
    many = np.full((_kernels.GPU_MIN_STARTS, 2), 0.5)
    assert fc.descend(py, many, fc.GD(0.1), steps=3).device == "cpu"
    assert "runs on the CPU" in capsys.readouterr().err
    assert fc.descend(loss, many, fc.GD(0.1), steps=3).device == "gpu"
    with pytest.raises(TypeError, match="every"):
        fc.GD(0.1, every=2)


def test_compiled_says_which_fields_have_a_kernel():
    assert fc.compiled(fc.flows.pf(fc.losses.double_well(), 0.2))
    assert not fc.compiled(fc.Field.from_callable(lambda th: -th, dim=1))
    A = np.array([[2.0, 1, 0], [1, 2, 0], [0, 0, 1]])
    assert not fc.compiled(fc.flows.pf(fc.losses.quadratic(A), 0.2))    # D > 2, coupled: LAPACK
    assert fc.compiled(fc.flows.pf(fc.losses.quadratic(np.diag([1.0, 2, 3])), 0.2))   # diagonal


def test_diagonal_hessian_pf_any_dimension():
    """A separable loss's PF is compiled for any D (f_k = φ(hH_kk) g_k). On ½Σ a_k θ_k² it meets
    GD at every t = nh, θ_k = (1 − h a_k)^n θ_k(0), through hλ > 1 (tracked log, +iπ side) and
    hλ > 2; on a non-quadratic separable loss it equals the generic LAPACK path (a Python
    callable of the same field)."""
    a = np.array([1.0, 6.0, 12.0, 0.5])           # h a = 0.25, 1.5, 3, 0.125 at h = 0.25
    h = 0.25
    quad = fc.Loss.from_expr(" + ".join(f"{v}*w{k}**2/2" for k, v in enumerate(a)))
    flow = fc.flows.pf(quad, h)
    assert _kernels.problem(flow).diagonal and fc.compiled(flow)
    th0 = np.random.default_rng(3).uniform(-1, 1, (5, 4))
    sol = fc.solve(flow, th0, t_eval=h * np.arange(5), method=fc.Dop853(rtol=1e-12, atol=1e-14))
    assert (sol.status == 0).all()
    for n in range(5):
        np.testing.assert_allclose(sol.y[:, n], th0 * (1 - h * a) ** n, rtol=1e-9, atol=1e-12)
    sep = fc.Loss.from_expr("(x**2 - 1)**2/4 + sin(y) + y**2 + cosh(z/2)")
    pf = fc.flows.pf(sep, 0.3, branch="principal")
    assert _kernels.problem(pf).diagonal
    slow = fc.Field.from_callable(lambda th: pf(th), dim=3, vectorized=True)
    z0 = np.random.default_rng(4).uniform(-1, 1, (20, 3)) + 0.05j   # 1 − hλ off the cut
    fast, ref = (fc.solve(f, z0, t_eval=[0, 0.5, 1.0], method=fc.Dopri5(rtol=1e-10, atol=1e-12)) for f in (pf, slow))
    assert not fc.compiled(slow) and (fast.status == ref.status).all()
    np.testing.assert_allclose(fast.y, ref.y, rtol=1e-8, atol=1e-10)


def test_complex_kernels_call_the_complex_functions():
    """sin, cosh, sqrt, pow of a complex state in a compiled kernel are csin, ccosh, csqrt, cpow:
    a kernel once called the real function of the real part (C converts silently). Against the
    generic loop on the same fields as Python callables, and z' = sin z's closed form
    tan(z/2) = e^t tan(z0/2) for complex z."""
    rich = fc.Loss.from_expr("exp(x*y/2) + log(2 + x**2) + sqrt(1 + y**2)*cosh(x/2) + (3 + y)**1.5")
    pf = fc.flows.pf(rich, 0.1, branch="principal")
    assert not _kernels.problem(pf).diagonal
    slow = fc.Field.from_callable(lambda th: pf(th), dim=2, vectorized=True)
    z0 = np.random.default_rng(5).uniform(-0.5, 0.5, (10, 2)) + 0.1j
    fast, ref = (fc.solve(f, z0, t_eval=[0, 0.2], method=fc.Dopri5(rtol=1e-10, atol=1e-12)) for f in (pf, slow))
    assert (fast.status == 0).all() and (ref.status == 0).all()
    np.testing.assert_allclose(fast.y, ref.y, rtol=1e-8, atol=1e-10)
    rot = fc.Field.from_expr(["sin(z)"], vars=("z",))
    w0 = np.array([[0.3 + 0.2j], [1.0 - 0.5j]])
    sol = fc.solve(rot, w0, t_eval=[0, 1.0], method=fc.Dopri5(rtol=1e-11, atol=1e-13))
    exact = 2 * np.arctan(np.e * np.tan(w0[:, 0] / 2))
    np.testing.assert_allclose(sol.y[:, 1, 0], exact, rtol=1e-8)


def test_gpu_path_end_to_end(gpu, capsys):
    """device=None picks the GPU for a large batch and says so when a problem cannot go there;
    bad starts end alone on the GPU too; fa.basins gives the CPU's labels, maps and flows."""
    import flowcore.analysis as fa
    dw = fc.losses.double_well()
    th = np.random.default_rng(0).uniform(-1.5, 1.5, (_kernels.GPU_MIN_STARTS, 2))
    assert fc.solve(fc.flows.igr(dw, 0.1), th, t_span=(0, 0.2)).device == "gpu"
    assert fc.solve(fc.flows.igr(dw, 0.1), th[:10], t_span=(0, 0.2)).device == "cpu"
    py = fc.Field.from_callable(lambda y: -y, dim=2)
    assert fc.solve(py, th, t_span=(0, 0.2)).device == "cpu"
    assert "runs on the CPU" in capsys.readouterr().err

    loss = fc.Loss.from_expr("x**2")
    good = np.array([[0.3], [-0.7], [1.1]])
    flow = fc.flows.pf(loss, 0.3)
    alone = fc.solve(flow, good, t_span=(0, 2), escape_radius=50, compute=fc.Compute(device="gpu"))
    mixed = fc.solve(flow, [[np.nan], [0.3], [1e3], [-0.7], [1.1]], t_span=(0, 2), escape_radius=50, compute=fc.Compute(device="gpu"))
    assert list(mixed.status) == [fc.Status.NONFINITE, 0, fc.Status.ESCAPED, 0, 0]
    assert np.array_equal(mixed.y[[1, 3, 4]], alone.y)
    sing = fc.solve(fc.flows.pf(loss, 0.5), good, t_span=(0, 1), compute=fc.Compute(device="gpu"))
    assert (sing.status == fc.Status.SINGULAR).all()

    for model, lr in (("gd", 0.1), ("igr", 0.1)):
        kw = dict(grid=((-1.5, 1.5, 41), (-1.5, 1.5, 41)), rest=fc.RestTest(steps=400), progress=False)
        cpu, dev = (fa.basins(dw, fc.method(model, lr=lr), compute=fc.Compute(device=d), **kw) for d in ("cpu", "gpu"))
        assert np.array_equal(cpu.labels, dev.labels), model
