"""SGD, SDEs and SGD's continuous models against closed forms and independent references."""
import math

import numpy as np
import pytest
import sympy as sp

import flowcore as fc
from flowcore import analysis as fa

M0, M1 = 0xD2E7470EE14C6C93, 0xCA5A826395121157
W0, W1 = 0x9E3779B97F4A7C15, 0xBB67AE8584CAA73B
MASK = 2**64 - 1

SCHEMES = {"euler_maruyama": fc.EulerMaruyama, "weak2": fc.Weak2}


def philox(ctr, key):
    """Philox4x64-10 written from Salmon et al. (2011), in Python integers."""
    c, k = list(ctr), list(key)
    for _ in range(10):
        p0, p1 = M0 * c[0], M1 * c[2]
        c = [(p1 >> 64) ^ c[1] ^ k[0], p1 & MASK, (p0 >> 64) ^ c[3] ^ k[1], p0 & MASK]
        k = [(k[0] + W0) & MASK, (k[1] + W1) & MASK]
    return c


def test_philox_reference_matches_numpy():
    key, ctr = [2**64 - 5, 77], [3, 1, 4, 1]
    bg = np.random.Philox(counter=np.array(ctr, dtype=np.uint64), key=np.array(key, dtype=np.uint64))
    # numpy increments the counter before it draws
    assert list(bg.random_raw(4)) == philox([4, 1, 4, 1], key)


def _ziggurat_normal(bits, x, f):
    """A standard normal from a stream of 64-bit draws by the ziggurat as random.h documents it."""
    while True:
        b = next(bits)
        i, sign = b & 0xFF, -1.0 if b & 0x100 else 1.0
        u = (b >> 11) * 2.0**-53
        t = u * x[i]
        if t < x[i + 1]:
            return sign * t
        if i == 0:
            while True:
                a = -math.log(((next(bits) >> 11) + 1.0) * 2.0**-53) / x[1]
                y = -math.log(((next(bits) >> 11) + 1.0) * 2.0**-53)
                if 2 * y >= a * a:
                    return sign * (x[1] + a)
        if f[i] + (next(bits) >> 11) * 2.0**-53 * (f[i + 1] - f[i]) < math.exp(-0.5 * t * t):
            return sign * t


def test_sde_noise_is_the_ziggurat_on_philox():
    """dθ = dW with dt = 1: the increments are the generator's normals, which must be the
    ziggurat on the trajectory's Philox stream, counter (block, id, 0, 0), as random.h documents."""
    from flowcore.engine._stochastic import ziggurat_tables
    x, f = ziggurat_tables()
    seed, tid, steps = 2**70 + 12345, 7, 300
    sol = fc.sde_solve(fc.SDE(["0"], 1.0, vars=("x",)), [[0.0]], (0, steps), fc.EulerMaruyama(1.0), seed=seed, ids=[tid])
    key = [seed & MASK, seed >> 64]

    def draws():
        block = 0
        while True:
            yield from philox([block, tid, 0, 0], key)
            block += 1

    stream = draws()
    want = [_ziggurat_normal(stream, x, f) for _ in range(steps)]
    assert np.array_equal(sol.y[0, 1:, 0], np.cumsum(want))      # θ_{k+1} = θ_k + ΔW_k, added in order


def test_ziggurat_tables_have_equal_areas_and_normals_are_normal():
    from scipy import special, stats
    from flowcore.engine._stochastic import ziggurat_tables
    x, f = ziggurat_tables()
    r = x[1]
    v = r * np.exp(-r * r / 2) + np.sqrt(np.pi / 2) * special.erfc(r / np.sqrt(2))
    np.testing.assert_allclose(x[1:256] * (f[2:] - f[1:256]), v, rtol=1e-12)     # every layer: area v
    np.testing.assert_allclose(f[1:], np.exp(-x[1:]**2 / 2), rtol=1e-15)     # f[0] = 0: the base layer starts at 0
    z = fc.sde_solve(fc.SDE(["0"], 1.0, vars=("x",)), np.zeros((400_000, 1)), (0, 1), fc.EulerMaruyama(1.0), seed=1).y[:, -1, 0]
    assert stats.kstest(z, "norm").pvalue > 1e-3
    tail = np.mean(np.abs(z) > 3.0)                   # exercises the tail and the top wedges
    p = special.erfc(3 / np.sqrt(2))
    assert abs(tail - p) < 5 * np.sqrt(p / len(z))


# ------------------------------------------------------------------------------ SGD
def _quadratic_data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal([1.0, -0.5], [1.0, 0.6], size=(n, 2))
    A = np.array([[1.5, 0.4], [0.4, 0.8]])
    ex = "(a*(w1 - x1)**2 + 2*b*(w1 - x1)*(w2 - x2) + c*(w2 - x2)**2)/2"
    ex = ex.replace("a", "1.5").replace("b", "0.4").replace("c", "0.8")
    return fc.DataLoss.from_expr(ex, {"x1": X[:, 0], "x2": X[:, 1]}, vars=("w1", "w2")), X, A


def test_sgd_mean_and_covariance_match_closed_form():
    """SGD with momentum on ½(θ − ξ)ᵀA(θ − ξ), batch B with replacement: z = (θ, v) is linear,
    z⁺ = M z + [I; I] ηA ξ̄_B with E ξ̄_B = ξ̄, Cov ξ̄_B = S/B; 10⁵ seeds within 5 standard errors."""
    data, X, A = _quadratic_data()
    eta, beta, B, steps, N = 0.3, 0.5, 3, 12, 100_000
    th0 = np.array([2.0, 1.0])
    run = fc.descend(data, np.tile(th0, (N, 1)), fc.SGD(eta, batch=B, beta=beta, seed=11, every=steps), steps)
    I = np.eye(2)
    M = np.block([[I - eta * A, beta * I], [-eta * A, beta * I]])
    U = np.vstack([I, I])
    xbar, S = X.mean(axis=0), np.cov(X.T, bias=True)
    m, C = np.r_[th0, 0, 0], np.zeros((4, 4))
    for _ in range(steps):
        m = M @ m + U @ (eta * A @ xbar)
        C = M @ C @ M.T + U @ (eta**2 * A @ S @ A.T / B) @ U.T
    final = run.iterates[:, -1]
    mean, cov = final.mean(axis=0), np.cov(final.T, bias=True)
    assert np.all(np.abs(mean - m[:2]) < 5 * np.sqrt(np.diag(C[:2, :2]) / N))
    se = np.sqrt((np.outer(np.diag(C[:2, :2]), np.diag(C[:2, :2])) + C[:2, :2]**2) / N)
    assert np.all(np.abs(cov - C[:2, :2]) < 5 * se)
    assert run.saved.tolist() == [0, steps] and np.array_equal(run.final, final)


def test_without_replacement_visits_every_example_once_per_epoch():
    """ℓ = −ξ w has gradient −ξ: after one epoch θ = θ0 + (η/B) Σ_k ξ_k for every seed; the first
    batch is a uniform B-subset (inclusion B/n, pairs B(B−1)/(n(n−1)))."""
    n, B = 12, 3
    data = fc.DataLoss.from_expr("-x*w", {"x": 2.0 ** np.arange(n)})
    run = fc.descend(data, np.zeros((50, 1)), fc.SGD(1.0, batch=B, replace=False, seed=5), n // B)
    np.testing.assert_allclose(run.final[:, 0], (2.0**n - 1) / B, rtol=0, atol=1e-9)
    N = 40_000
    first = fc.descend(data, np.zeros((N, 1)), fc.SGD(float(B), batch=B, replace=False, seed=6), 1)
    bits = first.final[:, 0].astype(np.int64)
    member = (bits[:, None] >> np.arange(n)) & 1
    assert np.all(member.sum(axis=1) == B)
    p1 = B / n
    assert np.all(np.abs(member.mean(axis=0) - p1) < 5 * np.sqrt(p1 * (1 - p1) / N))
    p2 = B * (B - 1) / (n * (n - 1))
    pair = (member[:, :, None] & member[:, None, :]).mean(axis=0)[np.triu_indices(n, 1)]
    assert np.all(np.abs(pair - p2) < 5 * np.sqrt(p2 * (1 - p2) / N))


def _orderings(n, N, seed, B=1, epochs=1):
    """The examples each of N runs visits, [N, epochs·n/B·B]: at lr = 1 on ℓ = (w − ξ)²/2 with
    ξ_k = k, batch B, plain SGD from w = 0 steps to the batch mean, so B = 1 reads the example
    itself (B > 1: see the callers)."""
    data = fc.DataLoss.from_expr("(w - x)**2/2", {"x": np.arange(n, dtype=float)})
    run = fc.descend(data, np.zeros((N, 1)), fc.SGD(1.0, batch=B, replace=False, seed=seed), epochs * (n // B))
    return np.rint(run.iterates[:, 1:, 0]).astype(np.int64)


@pytest.mark.parametrize("n, N", [(3, 30_000), (4, 48_000), (5, 120_000), (6, 216_000)])
def test_without_replacement_every_ordering_is_equally_likely(n, N):
    """χ² over all n! orderings of one epoch (B = 1), and of the second epoch's independently;
    the statistic's upper 1e-4 tail (scipy.stats.chi2) is the threshold: a uniform shuffle fails
    one of these 8 tests with probability < 1e-3. (A Feistel network with cycle walking, the
    previous shuffle, fails at n = 5: orderings 718 to 1534 times against 1000 ± 32.)"""
    from itertools import permutations
    from scipy import stats
    perms = {p: i for i, p in enumerate(permutations(range(n)))}
    visits = _orderings(n, N, seed=7, epochs=2)
    for epoch in range(2):
        assert all(sorted(r) == list(range(n)) for r in visits[:50, epoch * n:(epoch + 1) * n])
        counts = np.bincount([perms[tuple(r)] for r in visits[:, epoch * n:(epoch + 1) * n]],
                             minlength=len(perms))
        expected = N / len(perms)
        chi2 = ((counts - expected) ** 2 / expected).sum()
        assert chi2 < stats.chi2.isf(1e-4, len(perms) - 1), (epoch, counts.min(), counts.max())


@pytest.mark.parametrize("n, N", [(8, 40_000), (20, 40_000), (64, 40_000)])
def test_without_replacement_position_table_is_uniform(n, N):
    """The position × example table of one epoch: every cell n⁻¹ of the runs; χ² with (n − 1)²
    degrees of freedom (the margins are fixed: every row and column sums to N), threshold the
    upper 1e-4 tail. The previous shuffle failed at n = 8 (p ≈ 1e-65), 20 and 64."""
    from scipy import stats
    visits = _orderings(n, N, seed=11)
    table = np.zeros((n, n))
    np.add.at(table, (np.broadcast_to(np.arange(n), visits.shape), visits), 1)
    expected = N / n
    chi2 = ((table - expected) ** 2 / expected).sum()
    assert chi2 < stats.chi2.isf(1e-4, (n - 1) ** 2), (table.min(), table.max())


def test_without_replacement_batches_are_uniform_subsets():
    """n = 6, B = 3: the first batch is each of the C(6, 3) = 20 subsets equally often (χ²,
    threshold the upper 1e-4 tail); the previous shuffle's inclusion frequencies were ±6σ off."""
    from itertools import combinations
    from scipy import stats
    n, B, N = 6, 3, 100_000
    data = fc.DataLoss.from_expr("-x*w", {"x": 2.0 ** np.arange(n)})
    bits = np.rint(fc.descend(data, np.zeros((N, 1)), fc.SGD(float(B), batch=B, replace=False, seed=13), 1).final[:, 0]).astype(np.int64)
    subsets = {sum(1 << k for k in c): i for i, c in enumerate(combinations(range(n), B))}
    counts = np.bincount([subsets[b] for b in bits], minlength=len(subsets))
    chi2 = ((counts - N / 20) ** 2 / (N / 20)).sum()
    assert chi2 < stats.chi2.isf(1e-4, 19), counts


@pytest.mark.parametrize("replace", [True, False])
def test_sgd_path_is_the_same_alone_in_a_batch_and_on_two_threads(replace):
    data, _, _ = _quadratic_data(n=17)
    th = np.random.default_rng(1).normal(size=(300, 2))
    kw = dict(batch=4, replace=replace, seed=2**90 + 3, beta=0.3)
    one = fc.descend(data, th, fc.SGD(0.2, **kw), 30, compute=fc.Compute(threads=1))
    two = fc.descend(data, th, fc.SGD(0.2, **kw), 30, compute=fc.Compute(threads=2))
    alone = fc.descend(data, th[[123]], fc.SGD(0.2, ids=[123], **kw), 30)
    assert np.array_equal(one.iterates, two.iterates)
    assert np.array_equal(alone.iterates[0], one.iterates[123])


def test_sde_path_is_the_same_alone_in_a_batch_and_on_two_threads():
    data, _, _ = _quadratic_data(n=9)
    sde = fc.SDE(data, fc.data_noise(data, 0.1, 2))
    th = np.random.default_rng(2).normal(size=(200, 2))
    one = fc.sde_solve(sde, th, (0, 1), fc.EulerMaruyama(0.05), seed=4, compute=fc.Compute(threads=1))
    two = fc.sde_solve(sde, th, (0, 1), fc.EulerMaruyama(0.05), seed=4, compute=fc.Compute(threads=2))
    alone = fc.sde_solve(sde, th[[57]], (0, 1), fc.EulerMaruyama(0.05), seed=4, ids=[57])
    assert np.array_equal(one.y, two.y) and np.array_equal(alone.y[0], one.y[57])


def test_sgd_rejects_bad_input_by_name():
    data, _, _ = _quadratic_data()
    with pytest.raises(TypeError, match="DataLoss"):
        fc.descend(fc.losses.round_bowl(), [0.0, 0.0], fc.SGD(0.1), 5)
    with pytest.raises(ValueError, match="batch"):
        fc.SGD(0.1, batch=0)
    with pytest.raises(ValueError, match=f"batch must be an integer in \\[1, {data.n}\\]"):
        fc.descend(data, [0.0, 0.0], fc.SGD(0.1, batch=data.n + 1), 5)
    with pytest.raises(ValueError, match="seed"):
        fc.SGD(0.1, seed=-1)
    with pytest.raises(ValueError, match="do not occur"):
        fc.DataLoss.from_expr("(w - x)**2", {"xx": [1.0, 2.0]})
    with pytest.raises(TypeError, match="every"):
        fc.GD(0.1, every=2)


def test_escaping_sgd_run_stops_alone():
    data = fc.DataLoss.from_expr("(w - x)**2/2", {"x": [0.0, 1.0]})
    run = fc.descend(data, [[0.5], [0.5]], fc.SGD(np.array([0.1, 3.0]), seed=1), 200, escape_radius=1e6)
    assert run.status.tolist() == [fc.Status.OK, fc.Status.ESCAPED]
    assert abs(run.final[0, 0] - 0.5) < 1 and abs(run.final[1, 0]) > 1e6


# ------------------------------------------------------------------------------ SDE
def _weak_errors(method, dts, N=4_000_000):
    """Errors of E X_T and E X_T² on the OU process dX = −X dt + dW, X_0 = 20, T = 1."""
    x0, T = 20.0, 1.0
    mean = x0 * np.exp(-T)
    second = mean**2 + (1 - np.exp(-2 * T)) / 2
    errs = []
    for dt in dts:
        y = fc.sde_solve(fc.SDE(["-x"], 1.0), np.full((N, 1), x0), (0, T), SCHEMES[method](dt), t_eval=[T],
                         seed=17).y[:, 0, 0]
        errs.append([abs(y.mean() - mean), abs((y**2).mean() - second)])
    return np.array(errs)


@pytest.mark.parametrize("method, order", [("euler_maruyama", 1), ("weak2", 2)])
def test_weak_order_on_ornstein_uhlenbeck(method, order):
    dts = [1 / 4, 1 / 8, 1 / 16]
    errs = _weak_errors(method, dts)
    for col in errs.T:
        slope = np.polyfit(np.log(dts), np.log(col), 1)[0]
        assert abs(slope - order) < 0.2, (method, errs, slope)


def test_weak2_on_geometric_brownian_motion_beats_euler():
    """Multiplicative noise dX = X/2 dt + X/2 dW: E X_1 = e^{1/2} exactly."""
    sde = fc.SDE(["x/2"], ["x/2"])
    err = {m: abs(fc.sde_solve(sde, np.ones((400_000, 1)), (0, 1), SCHEMES[m](0.25), t_eval=[1.0], seed=3)
                  .y[:, 0, 0].mean() - np.exp(0.5)) for m in ("euler_maruyama", "weak2")}
    assert err["weak2"] < 0.2 * err["euler_maruyama"]


def test_data_noise_covariance_is_lr_sigma_over_batch():
    """One Euler–Maruyama step from θ: Cov = dt²·0 + dt·η ν Σ(θ)/B (drift deterministic)."""
    data, _, _ = _quadratic_data(n=10)
    th = np.array([0.3, -0.2])
    for replace in (True, False):
        sde = fc.SDE(data, fc.data_noise(data, 0.2, 3, replace))
        dt, N = 0.5, 200_000
        y = fc.sde_solve(sde, np.tile(th, (N, 1)), (0, dt), fc.EulerMaruyama(dt), seed=9).y[:, -1]
        nu = 1.0 if replace else (10 - 3) / 9
        want = dt * 0.2 * nu / 3 * data.covariance(th)
        se = np.sqrt((np.outer(np.diag(want), np.diag(want)) + want**2) / N)
        assert np.all(np.abs(np.cov(y.T, bias=True) - want) < 5 * se)


# ------------------------------------------------------------------------------ models
def test_sme_weak_errors_scale_as_lr_and_lr_squared():
    """½a(w − ξ)²: SGD's mean and variance by hand, m⁺ = ξ̄ + (1 − ηa)(m − ξ̄),
    V⁺ = (1 − ηa)²V + η²a²s²/B; the SME's by their moment ODEs (linear drift, constant noise)
    dm/dt = f(m), dV/dt = 2f′V + G², integrated by fc.solve. Weak error of E w² at t = 1."""
    a, B, w0 = 2.0, 2, 1.5
    xs = np.random.default_rng(3).normal(0.3, 1.0, size=30)
    data = fc.DataLoss.from_expr(f"{a}*(w - x)**2/2", {"x": xs})
    xbar, s2 = xs.mean(), xs.var()
    w = sp.Symbol("w")
    lrs = [0.1, 0.05, 0.025]
    errs = {1: [], 2: []}
    for eta in lrs:
        k = round(1 / eta)
        m, V = w0, 0.0
        for _ in range(k):
            m, V = xbar + (1 - eta * a) * (m - xbar), (1 - eta * a)**2 * V + eta**2 * a**2 * s2 / B
        for order in (1, 2):
            s = fa.sme(data, eta, B, order)
            f = s.drift[0].xreplace({s.vars[0]: w})
            G2 = float(s.diffusion[0, 0]) ** 2          # Σ is constant here: a constant factor
            assert G2 == pytest.approx(eta * a**2 * s2 / B, rel=1e-12)
            V_ = sp.Symbol("V")
            ode = fc.Field.from_expr([f, 2 * sp.diff(f, w) * V_ + G2], vars=(w, V_))
            y = fc.solve(ode, [w0, 0.0], (0, k * eta), t_eval=[k * eta], method=fc.Dopri5(rtol=1e-12, atol=1e-14)).y[0, -1]
            errs[order].append(abs((y[0]**2 + y[1]) - (m**2 + V)))
    for order in (1, 2):
        slope = np.polyfit(np.log(lrs), np.log(errs[order]), 1)[0]
        assert abs(slope - order) < 0.2, (order, errs[order])


def test_smith_modified_loss_by_hand_two_points():
    """ℓ = (w − ξ)⁴/4 on ξ ∈ {1, −2}, B = 1, batches {0}, {1}: E_SGD = E + (η/8)[(w−1)⁶ + (w+2)⁶]."""
    data = fc.DataLoss.from_expr("(w - x)**4/4", {"x": [1.0, -2.0]})
    eta = 0.1
    w = sp.Symbol("w")
    hand = ((w - 1)**4 + (w + 2)**4) / 8 + sp.Rational(1, 10) / 8 * ((w - 1)**6 + (w + 2)**6)
    got = fa.sgd_modified_loss(data, eta, 1, partition=[[0], [1]])
    for pt in (-1.3, 0.0, 0.7, 2.1):
        assert float(got.expr.subs(got.vars[0], pt)) == pytest.approx(float(hand.subs(w, pt)), rel=1e-13)


def test_smith_mean_over_shuffles_is_the_mean_of_the_partitions():
    """n = 4, B = 2: the three ways to split into two batches, averaged, give the closed form."""
    data = fc.DataLoss.from_expr("(w*x - y)**2/2 + w**4/8", {"x": [1.0, 2.0, -1.0, 0.5], "y": [0.0, 1.0, 2.0, -1.0]})
    parts = [[[0, 1], [2, 3]], [[0, 2], [1, 3]], [[0, 3], [1, 2]]]
    avg = sum(fa.sgd_modified_loss(data, 0.2, 2, p).expr for p in parts) / 3
    mean = fa.sgd_modified_loss(data, 0.2, 2).expr
    w = data.vars[0]
    for pt in (-1.0, 0.4, 1.7):
        assert float(avg.subs(w, pt)) == pytest.approx(float(mean.subs(w, pt)), rel=1e-12)


def test_data_loss_mean_from_moments_equals_the_sum():
    rng = np.random.default_rng(4)
    xs, ys = rng.normal(size=25), rng.normal(size=25)
    data = fc.DataLoss.from_expr("(a*x + b*y - 1)**2 + a**2*b*x", {"x": xs, "y": ys})
    th = np.array([[0.3, -1.2], [1.0, 0.5]])
    direct = np.mean([(th[:, 0] * x + th[:, 1] * y - 1)**2 + th[:, 0]**2 * th[:, 1] * x for x, y in zip(xs, ys)], axis=0)
    np.testing.assert_allclose(data.loss.value(th), direct, rtol=1e-12)
    np.testing.assert_allclose(data.grads(th).mean(axis=1), data.loss.grad(th), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------ GPU
def _stochastic_problems():
    data, _, _ = _quadratic_data(n=8)
    return [data._noise_problem("sgd"),
            fc.SDE(data, fc.data_noise(data, 0.1, 2))._problem("euler_maruyama"),
            fc.SDE(["x/2 - y", "sin(x)"], [["x/2", "0.1"], ["1", "y"]])._problem("weak2")]


@pytest.mark.skipif(__import__("sys").platform != "linux", reason="the NVRTC wheels are for Linux")
def test_stochastic_kernels_compile_for_cuda():
    from concurrent.futures import ThreadPoolExecutor
    from flowcore.engine import _kernels, _stochastic
    problems = _stochastic_problems()
    with ThreadPoolExecutor(2) as pool:
        ptx = list(pool.map(_kernels.nvrtc_compile, [_stochastic.source(p) for p in problems]))
    assert all(f".entry fc_{p.kind}_gpu" in x for p, x in zip(problems, ptx))


def test_stochastic_gpu_matches_cpu(gpu):
    """The same keyed numbers on both devices: paths agree to rounding (fused multiply-adds)."""
    data, _, _ = _quadratic_data(n=8)
    th = np.random.default_rng(5).normal(size=(64, 2))
    runs = [fc.descend(data, th, fc.SGD(0.1, batch=3, replace=r, seed=8), 20, compute=fc.Compute(device=d))
            for r in (True, False) for d in ("cpu", "gpu")]
    for cpu, dev in zip(runs[::2], runs[1::2]):
        np.testing.assert_allclose(dev.iterates, cpu.iterates, rtol=1e-12, atol=1e-13)
    for sde, m in [(fc.SDE(data, fc.data_noise(data, 0.1, 2)), "euler_maruyama"),
                   (fc.SDE(["x/2 - y", "sin(x)"], [["x/2", "0.1"], ["1", "y"]]), "weak2")]:
        cpu, dev = (fc.sde_solve(sde, th, (0, 1), SCHEMES[m](0.1), seed=3, compute=fc.Compute(device=d))
                    for d in ("cpu", "gpu"))
        np.testing.assert_allclose(dev.y, cpu.y, rtol=1e-10, atol=1e-12)


def test_zoo_regressions_match_numpy():
    rng = np.random.default_rng(8)
    X, w_true = rng.normal(size=(60, 2)), np.array([1.0, -2.0])
    y = X @ w_true + 0.5 + 0.1 * rng.normal(size=60)
    lin = fc.losses.linear_regression(X, y, intercept=True)
    best = np.linalg.lstsq(np.c_[X, np.ones(60)], y, rcond=None)[0]
    np.testing.assert_allclose(lin.loss.grad(best[None])[0], 0, atol=1e-12)
    run = fc.descend(lin, np.zeros((1, 3)), fc.SGD(0.05, batch=60, replace=False, seed=0), 400)
    np.testing.assert_allclose(run.final[0], best, atol=1e-6)      # full batch: GD
    labels = np.where(X[:, 0] + 0.5 * rng.normal(size=60) > 0, 1.0, -1.0)
    log = fc.losses.logistic_regression(X, labels)
    th = rng.normal(size=(4, 2))
    ref = np.mean(np.log1p(np.exp(-labels * (th @ X.T))), axis=1)
    np.testing.assert_allclose(log.loss.value(th), ref, rtol=1e-13)
    p = 1 / (1 + np.exp(labels * (th @ X.T)))                       # σ(−y wᵀx)
    np.testing.assert_allclose(log.loss.grad(th), -(p * labels) @ X / 60, rtol=1e-12)
    H = np.einsum("nk,ki,kj->nij", p * (1 - p), X, X) / 60
    np.testing.assert_allclose(log.loss.hess(th), H, rtol=1e-11, atol=1e-15)
    with pytest.raises(ValueError, match="labels"):
        fc.losses.logistic_regression(X, labels * 2)


def test_cli_sgd_json_redraws(tmp_path, capsys):
    import json
    from flowcore.cli import main
    assert main(["sgd", "--example", "(w*x - y)**2/2", "--data", "x=1,2,-1", "--data", "y=2,3.5,-2", "--lr", "0.2",
                 "--theta0", "0", "--steps", "5", "--runs", "50", "--json", "-o", str(tmp_path / "s.png")]) == 0
    r = json.loads(capsys.readouterr().out)
    assert set(r["models"]) == {"SGD", "SME-1", "SME-2"} and len(r["t"]) == 6 and (tmp_path / "s.png").exists()
    assert np.shape(r["models"]["SME-2"]["mean"]) == (6, 1) and len(r["models"]["SGD"]["final_sample"]) == 50
    assert main(["sgd", "--example", "(w*x - y)**2/2", "--data", "x=1,2", "--lr", "0.2", "--theta0", "0"]) == 2
    assert "--data" in capsys.readouterr().err
