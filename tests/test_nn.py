"""Networks through JAX: derivatives against a sympy transcription and finite differences, the PF of a
linear network against GD, Lanczos against the full eigendecomposition, and the holomorphy guard."""
import pickle

import numpy as np
import pytest

import flowcore as fc

pytest.importorskip("jax")
pytest.importorskip("sklearn")

X3 = np.array([[0.5], [-1.0]])
Y3 = np.array([[1.0], [-0.5]])


def tiny_expr():
    """The MLP 1→2→1 (tanh, MSE) on two points X3, Y3 written out for sympy, in fc.nn's parameter order
    (W1 [1, 2], b1 [2], W2 [2, 1], b2 [1]); names p0 … p6 sort in that order."""
    terms = []
    for (x,), (y,) in zip(X3, Y3):
        hidden = [f"tanh({x}*p{j} + p{2 + j})" for j in range(2)]
        out = f"({hidden[0]}*p4 + {hidden[1]}*p5 + p6)"
        terms.append(f"({out} - ({y}))**2")
    return "(" + " + ".join(terms) + f")/(2*{len(X3)})"


@pytest.fixture(scope="module")
def tiny():
    return fc.nn.mlp(X3, Y3, widths=(2,), activation="tanh", loss="mse", seed=3)


@pytest.mark.parametrize("complex_point", [False, True])
def test_jax_equals_sympy_on_a_tiny_network(tiny, complex_point):
    ref = fc.Loss.from_expr(tiny_expr())
    rng = np.random.default_rng(0)
    th = rng.normal(size=(4, 7)) + (1j * 0.3 * rng.normal(size=(4, 7)) if complex_point else 0)
    v = rng.normal(size=(4, 7))
    for name in ("value", "grad", "hess"):
        np.testing.assert_allclose(getattr(tiny.loss, name)(th), getattr(ref, name)(th), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tiny.loss.third(th, v), ref.third(th, v), rtol=1e-10, atol=1e-12)


def test_derivatives_against_finite_differences():
    net = fc.nn.mlp(*fc.nn.regression_2d(8, seed=1), widths=(4, 3), activation="softplus", seed=2)
    rng = np.random.default_rng(1)
    th = net.theta0 + 0.1j * rng.normal(size=net.dim)          # a complex point: holomorphic derivatives
    v = rng.normal(size=net.dim)
    eps = 1e-4

    def d(f, k):          # the k-th derivative along v by a 4th-order central difference
        pts = np.array([th + s * eps * v for s in (-2, -1, 1, 2)])
        F = f(pts)
        if k == 1:
            return (F[0] - 8 * F[1] + 8 * F[2] - F[3]) / (12 * eps)
        raise ValueError
    assert d(net.loss.value, 1) == pytest.approx(net.loss.grad(th) @ v, rel=1e-8)
    np.testing.assert_allclose(d(net.loss.grad, 1), net.loss.hess(th) @ v, rtol=1e-7, atol=1e-10)
    vHv = lambda P: np.einsum("nij,i,j->n", net.loss.hess(P), v, v)          # noqa: E731
    # T[v, v] · w = d/dε vᵀH(θ + εw)v: the third derivative checked along another direction w
    w = rng.normal(size=net.dim)
    pts = np.array([th + s * eps * w for s in (-2, -1, 1, 2)])
    F = vHv(pts)
    assert (F[0] - 8 * F[1] + 8 * F[2] - F[3]) / (12 * eps) == pytest.approx(net.loss.third(th, v) @ w, rel=1e-7)
    np.testing.assert_allclose(fc.nn.hvp(net.loss, th, v), net.loss.hess(th) @ v, rtol=1e-12, atol=1e-14)


def test_pf_of_a_linear_network_is_gd():
    """A network without hidden layers and MSE is a quadratic: the PF passes through GD's iterates,
    also with a direction past hλ = 1."""
    X, Y = fc.nn.regression_2d(12, seed=4)
    net = fc.nn.mlp(X, Y, widths=(), activation="linear", seed=5)
    lam = np.linalg.eigvalsh(net.loss.hess(net.theta0))
    h = 1.5 / lam[-1]                          # hλ_max = 1.5: GD oscillates there, the PF spirals
    steps = 12
    gd = fc.descend(net.loss, net.theta0[None], fc.GD(h), steps).iterates[0]
    sol = fc.solve(fc.flows.pf(net.loss, h), net.theta0[None], t_eval=h * np.arange(steps + 1), method=fc.Dop853(rtol=1e-12, atol=1e-14))
    np.testing.assert_allclose(sol.y[0], gd, atol=1e-9)


def test_lanczos_equals_the_full_eigendecomposition():
    net = fc.nn.mlp(*fc.nn.iris(), widths=(10, 10, 10, 10), activation="tanh", loss="cross_entropy", seed=0)
    assert 380 <= net.dim <= 450
    th = net.theta0 + 0.05 * np.random.default_rng(2).normal(size=net.dim)
    lam, U = fc.nn.top_eigenpairs(net.loss, th, k=4)
    full, V = np.linalg.eigh(net.loss.hess(th))
    np.testing.assert_allclose(lam, full[::-1][:4], rtol=1e-8)
    assert np.all(np.abs(np.abs(np.sum(U * V[:, ::-1][:, :4], axis=0)) - 1) < 1e-6)


def test_relu_is_refused_at_complex_points_and_works_at_real_ones():
    net = fc.nn.mlp(X3, Y3, widths=(3,), activation="relu")
    assert np.isfinite(net.loss.value(net.theta0))
    fc.descend(net.loss, net.theta0[None], fc.GD(0.1), 5)
    with pytest.raises(ValueError, match="max"):
        fc.solve(fc.flows.pf(net.loss, 0.1), net.theta0[None], t_span=(0, 0.1))


def test_from_jax_checks_and_pickles():
    import jax.numpy as jnp
    with pytest.raises(ValueError, match="scalar"):
        fc.Loss.from_jax(lambda th: th ** 2, 3)
    with pytest.raises(ValueError, match="dim"):
        fc.Loss.from_jax(lambda th: jnp.sum(th ** 2), 0)
    with pytest.raises(ValueError, match="abs"):
        fc.Loss.from_jax(lambda th: jnp.sum(jnp.abs(th)), 2).value(np.array([1.0 + 1j, 0]))
    loss = fc.Loss.from_jax(lambda th: jnp.sum(jnp.cos(th)), 2, name="cos")
    again = pickle.loads(pickle.dumps(fc.nn.mlp(X3, Y3, widths=(2,)).loss))
    assert again.value(np.zeros(7)) == pytest.approx(0.5 * np.mean(Y3[:, 0] ** 2))
    np.testing.assert_allclose(loss.hess(np.array([0.3, 0.5])), np.diag(-np.cos([0.3, 0.5])), rtol=1e-14)


@pytest.mark.parametrize("kw, msg", [(dict(widths=(0,)), "widths"), (dict(activation="swish"), "activation"),
                                     (dict(loss="hinge"), "loss"), (dict(X=np.ones(3)), "X must be")])
def test_mlp_bad_arguments(kw, msg):
    args = dict(X=X3, Y=Y3)
    with pytest.raises(ValueError, match=msg):
        fc.nn.mlp(**{**args, **kw})


def test_cross_entropy_targets_are_classes():
    """Labels [n] are one-hot encoded; rows that are not probabilities, or one output (a softmax
    of one logit is 1: a constant loss), are refused instead of trained on."""
    X, Y = fc.nn.iris()
    labels = Y.argmax(1)
    by_label = fc.nn.mlp(X, labels, widths=4, loss="cross_entropy", seed=1)
    one_hot = fc.nn.mlp(X, Y, widths=(4,), loss="cross_entropy", seed=1)
    th = one_hot.theta0[None]
    assert by_label.loss.value(th) == one_hot.loss.value(th)
    f = one_hot.predict(one_hot.theta0, X)           # by hand: the mean of logsumexp(f) − f[label]
    ref = np.mean(np.log(np.exp(f).sum(1)) - f[np.arange(150), labels])
    assert one_hot.loss.value(th)[0] == pytest.approx(ref, rel=1e-12)
    for bad in (labels + 0.5, Y + 0.5, Y[:, :1], np.zeros(150)):
        with pytest.raises(ValueError, match="cross_entropy"):
            fc.nn.mlp(X, bad, widths=4, loss="cross_entropy")


def test_network_edge_of_stability_against_independent_computations():
    """Sharpness (Lanczos) against the full eigendecomposition, the counts of loss rises recounted,
    and the NGF's one-step prediction against scipy's solve_ivp on −∇E."""
    from scipy.integrate import solve_ivp
    from flowcore.analysis import paper
    net = fc.nn.mlp(*fc.nn.iris(), widths=(8, 8), activation="tanh", loss="cross_entropy", seed=1)
    assert net.dim > 64                                          # the Lanczos path
    r = paper.network_edge_of_stability(net.loss, 1.0, net.theta0, 40, every=17, flows=("ngf",))
    full = np.linalg.eigvalsh(net.loss.hess(r["iterates"]))[:, -1]
    np.testing.assert_allclose(r["sharpness"], full, rtol=1e-8)
    above = full[:-1] > 2.0
    dE = np.diff(net.loss.value(r["iterates"]))
    assert r["increases_above"] == np.sum((dE > 0) & above) and r["iterates_above"] == above.sum()
    assert r["increases_below"] == np.sum((dE > 0) & ~above)
    for i, n in enumerate(r["restarts"]):
        ref = solve_ivp(lambda t, y: -net.loss.grad(y), (0, 1.0), r["iterates"][n], rtol=1e-11, atol=1e-13).y[:, -1]
        assert r["flows"]["ngf"]["one_step_error"][i] == pytest.approx(np.linalg.norm(ref - r["iterates"][n + 1]),
                                                                       rel=1e-4)


def test_network_eos_scores_the_real_part_and_counts_rises_over_gds():
    """The PF's prediction is its real part (its complex end point's imaginary part is not an
    error), restarts in a catapult (λ₀ > 1.2·2/h) are summarised apart, and a flow's predicted rises
    are counted over the restarts where GD's loss rose (not over all of them)."""
    from flowcore.analysis import paper
    net = fc.nn.mlp(*fc.nn.regression_2d(), widths=3, activation="tanh", loss="mse", seed=0)
    r = paper.network_edge_of_stability(net.loss, 1.5, net.theta0, 40, every=3, flows=("ngf", "pf"))
    it, pick = r["iterates"], r["restarts"]
    sol = fc.solve(fc.flows.pf(net.loss, 1.5), it[pick], t_span=(0, 1.5), method=fc.Dopri5(rtol=1e-7, atol=1e-10))
    ok = sol.status == fc.Status.OK
    end = sol.y[:, -1]
    assert np.abs(end[ok].imag).max() > 1e-6                       # complex end points were scored
    np.testing.assert_allclose(r["flows"]["pf"]["one_step_error"][ok], np.linalg.norm(end[ok].real - it[pick + 1][ok], axis=1),
                               rtol=1e-6)
    cat = r["sharpness"][pick] > 1.2 * r["edge"]
    assert np.array_equal(r["catapult"], cat)
    rose = r["delta_loss"][pick] > 0
    for group, sel in (("edge", ~cat), ("catapult", cat)):
        g = r["summary"][group]
        assert g["restarts"] == sel.sum() and g["gd_rises"] == (sel & rose).sum()
        for k, f in r["flows"].items():
            assert g[k]["rises_predicted"] == np.sum(sel & rose & (f["predicted_delta_loss"] > 0))


def test_cli_eos_json(tmp_path):
    import json
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "flowcore.cli", "eos", "--data", "regression", "--samples", "10",
                          "--widths", "3", "--objective", "mse", "--lr", "0.5", "--steps", "20", "--every", "9",
                          "--json", "-o", str(tmp_path / "e.png")], capture_output=True, text=True, cwd=tmp_path,
                         check=True)
    d = json.loads(out.stdout)
    assert d["dim"] == 2 * 3 + 3 + 3 + 1 and len(d["sharpness"]) == 21 and set(d["flows"]) == {"ngf", "igr", "pf"}
    assert (tmp_path / "e.png").stat().st_size > 10000
    bad = subprocess.run([sys.executable, "-m", "flowcore.cli", "eos", "--data", "mnist", "--lr", "0.5"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "--data" in bad.stderr


@pytest.mark.parametrize("replace", [True, False])
def test_network_sgd_draws_the_kernels_batches(replace):
    """An MLP with no hidden layer and a linear output is least squares: SGD on it (JAX, batches from
    the numpy Philox streams) equals the compiled SGD kernel on fc.losses.linear_regression with the
    same seed — the same examples at every step — to rounding; Σ(θ) agrees too."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    y = X @ [1.0, -2.0] + 0.5 + 0.1 * rng.normal(size=40)
    net = fc.nn.mlp(X, y, widths=(), activation="linear", loss="mse")
    lin = fc.losses.linear_regression(X, y, intercept=True)          # parameters (w0, w1, b): the net's order
    th0 = np.tile(net.theta0, (6, 1)) + rng.normal(size=(6, 3))
    sgd = fc.SGD(0.1, batch=4, replace=replace, seed=5, beta=0.3, every=7)
    a, b = fc.descend(net, th0, sgd, 50), fc.descend(lin, th0, sgd, 50)
    np.testing.assert_allclose(a.iterates, b.iterates, rtol=0, atol=1e-13)
    assert a.saved.tolist() == b.saved.tolist() and np.array_equal(a.nsteps, b.nsteps)
    np.testing.assert_allclose(net.covariance(th0[0]), lin.covariance(th0[0]), rtol=1e-12, atol=1e-15)
    boom = fc.descend(net, th0[:2], fc.SGD(np.array([0.1, 5.0]), batch=4, seed=5), 50, escape_radius=1e6)
    assert boom.status.tolist() == [fc.Status.OK, fc.Status.ESCAPED] and np.isnan(boom.iterates[1, -1]).all()


def test_compare_models_on_a_network_below_the_edge():
    """On a small MLP whose sharpness stays below 2/h over the run, the central flow is the NGF (to the
    solver's tolerance); a flow that runs out of max_steps predicts nothing further and is counted."""
    from flowcore import analysis as fa
    net = fc.nn.mlp(*fc.nn.regression_2d(20, 0), widths=(4,), activation="tanh", loss="mse", seed=0)
    r = fa.compare_models(net.loss, 0.3, net.theta0, 6, horizon=2, models=("ngf", "central"), every=3)
    assert r["sharpness"].max() < r["edge"]
    np.testing.assert_allclose(r["models"]["central"]["trajectory"], r["models"]["ngf"]["trajectory"], atol=1e-7)
    assert r["models"]["ngf"]["unfinished"] == {"global": 0, "restarts": 0, "global_reached": 6}
    cut = fa.compare_models(net.loss, 0.3, net.theta0, 6, horizon=2, models=("ngf",), every=3, max_steps=1)
    assert cut["models"]["ngf"]["unfinished"] == {"global": 1, "restarts": 2, "global_reached": 0}
    assert np.isnan(cut["models"]["ngf"]["trajectory"][-1]).all()


def test_grad_hess_is_one_call_with_the_two_functions_values(tiny):
    """A JAX loss hands the PF for D > 2 ∇E and H from one call (one dispatch instead of two): the
    same values as grad and hess apart, at real and complex points; the PF's field is unchanged when
    the fused function is taken away."""
    f = tiny.loss.functions[0].__self__
    rng = np.random.default_rng(3)
    for th in (rng.normal(size=(3, 7)), rng.normal(size=(3, 7)) + 0.3j * rng.normal(size=(3, 7))):
        g, H = f.grad_hess(th)
        np.testing.assert_allclose(g, tiny.loss.grad(th), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(H, tiny.loss.hess(th), rtol=1e-13, atol=1e-15)
    calls = []

    def counted(X):
        calls.append(len(X))
        return f.grad_hess(X)
    fused = fc.Loss.from_callable(f.value, f.grad, f.hess, f.third, dim=7, vectorized=True, grad_hess=counted)
    apart = fc.Loss.from_callable(f.value, f.grad, f.hess, f.third, dim=7, vectorized=True)
    th = 0.5 * rng.normal(size=(2, 7))
    a = fc.solve(fc.flows.pf(fused, 0.7), th, t_span=(0, 0.7), method=fc.RK4(0.1))
    b = fc.solve(fc.flows.pf(apart, 0.7), th, t_span=(0, 0.7), method=fc.RK4(0.1))
    np.testing.assert_array_equal(a.y, b.y)
    assert calls and a.status.tolist() == [0, 0]
    with pytest.raises(ValueError, match="vectorized=True"):
        fc.Loss.from_callable(f.value, f.grad, dim=7, grad_hess=counted)


def test_padded_batches_return_each_rows_own_values(tiny):
    """Batches are padded to a power of two (fewer JAX compiles): 3 rows equal each row alone (to
    rounding: XLA vectorises differently per batch shape)."""
    rng = np.random.default_rng(5)
    th, v = rng.normal(size=(3, 7)) + 0.2j * rng.normal(size=(3, 7)), rng.normal(size=(3, 7))
    for name in ("value", "grad", "hess"):
        whole = getattr(tiny.loss, name)(th)
        assert whole.shape[0] == 3
        for i in range(3):
            np.testing.assert_allclose(whole[i], getattr(tiny.loss, name)(th[i:i + 1])[0], rtol=1e-13, atol=1e-15)
    T = tiny.loss.third(th, v)
    for i in range(3):
        np.testing.assert_allclose(T[i], tiny.loss.third(th[i:i + 1], v[i:i + 1])[0], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", ["igr", "third_order", "bea"])
def test_polynomial_flows_of_a_network_by_hvp_equal_the_sympy_spectral_field(tiny, name):
    """IGR, the third-order flow (with its T[g, g] term) and BEA-3 of a JAX loss run on Hessian–vector
    products; the same flows of the network written in sympy run on the compiled H (Horner)."""
    ref = fc.Loss.from_expr(tiny_expr())
    opts = {"order": 3} if name == "bea" else {}
    jax_field = fc.models.model(name).build(tiny.loss, 0.7, **opts)
    ref_field = fc.models.model(name).build(ref, 0.7, **opts)
    assert not isinstance(jax_field, fc.SpectralFlow) and isinstance(ref_field, fc.SpectralFlow)
    rng = np.random.default_rng(2)
    for th in (rng.normal(size=(5, 7)), rng.normal(size=(5, 7)) + 0.3j * rng.normal(size=(5, 7))):
        got, st = jax_field.evaluate(th)
        want, _ = ref_field.evaluate(th)
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)
        assert np.all(st == fc.Status.OK)


def test_bad_network_input_is_refused_by_name():
    X, Y = fc.nn.regression_2d(10)
    with pytest.raises(TypeError, match="widths must be a positive integer or a sequence"):
        fc.nn.mlp(X, Y, widths=2.5)
    with pytest.raises(ValueError, match="widths must be positive integers"):
        fc.nn.mlp(X, Y, widths=(3, True))
    for bad in (np.where(np.arange(20).reshape(10, 2) == 3, np.nan, X), np.where(np.arange(20).reshape(10, 2) == 3, np.inf, X)):
        with pytest.raises(ValueError, match="finite"):
            fc.nn.mlp(bad, Y, widths=3)
    with pytest.raises(ValueError, match="parameters"):
        fc.nn.mlp(X, Y, widths=(100_000, 100_000))


def test_a_jax_loss_indexing_past_its_dim_is_refused():
    """JAX clamps an index past the end (θ[3] of a 3-vector reads θ[2]): a wrong dim gave a loss
    silently; it is refused by name (checkify's index checks), a right one is not."""
    import jax.numpy as jnp
    with pytest.raises(ValueError, match="out of bounds.*is dim right"):
        fc.Loss.from_jax(lambda t: t[0] ** 2 + t[3] ** 2, 3)
    with pytest.raises(ValueError, match="out of bounds"):
        fc.Loss.from_jax(lambda t: t[jnp.array(4)] ** 2, 3)
    assert fc.Loss.from_jax(lambda t: t[0] ** 2 + t[3] ** 2, 4).value([[1.0, 2.0, 3.0, 4.0]])[0] == 17.0


def test_bundled_data_equal_scikit_learns_loaders():
    """iris and digits read scikit-learn's bundled files directly (no sklearn import): the same
    arrays as its own loaders."""
    import sklearn.datasets as skd
    X, y = skd.load_iris(return_X_y=True)
    Xi, Yi = fc.nn.iris()
    np.testing.assert_allclose(Xi, (X - X.mean(0)) / X.std(0), rtol=0, atol=0)
    np.testing.assert_array_equal(Yi.argmax(1), y)
    X, y = skd.load_digits(return_X_y=True)
    Xd, Yd = fc.nn.digits()
    np.testing.assert_array_equal(Xd, X / 16.0)
    np.testing.assert_array_equal(Yd.argmax(1), y)
    assert Xd.shape == (1797, 64) and Yd.shape == (1797, 10)


def test_cnn_convolution_equals_xlas():
    """The CNN's 3×3 'SAME' convolution (image patches times the weights, one matrix product) equals
    XLA's convolution, at real and (through the three-product complex form) complex arguments; a
    product with one real side equals the complex one, derivatives included."""
    from flowcore.problems.nn import _bilinear, _conv, _jax
    jax = _jax()                                    # (float64)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 8, 8, 3)) + 1j * rng.normal(size=(5, 8, 8, 3))
    W = rng.normal(size=(3, 3, 3, 4)) + 1j * rng.normal(size=(3, 3, 3, 4))

    def xla(a, b):
        return np.asarray(jax.lax.conv_general_dilated(a, b, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))
    np.testing.assert_allclose(np.asarray(_conv(x.real, W.real)), xla(x.real, W.real), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(np.asarray(_bilinear(_conv, x, W)), xla(x, W), rtol=1e-13, atol=1e-12)
    # one side real (the data, or a real tangent): the value and the holomorphic derivative as
    # numpy's and JAX's own complex product give them
    import jax.numpy as jnp
    from flowcore.problems.nn import _matmul
    A, B = rng.normal(size=(6, 5)), rng.normal(size=(5, 4)) + 1j * rng.normal(size=(5, 4))
    np.testing.assert_allclose(np.asarray(_bilinear(_matmul, A, B)), A @ B, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(np.asarray(_bilinear(_matmul, B.T, A.T)), B.T @ A.T, rtol=1e-13, atol=1e-13)
    ours = jax.grad(lambda b: jnp.sum(jnp.tanh(_bilinear(_matmul, A, b))), holomorphic=True)(B)
    theirs = jax.grad(lambda b: jnp.sum(jnp.tanh(A @ b)), holomorphic=True)(B)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("method", [fc.DAL(power=1.0), fc.DALMomentum(beta=0.5, power=2.0),
                                    fc.DALPerParam(power=1.0, lr_cap=5.0)], ids=["dal", "momentum", "per-param"])
def test_dal_by_hessian_vector_products_equals_the_dense_loop(monkeypatch, method):
    """Above DENSE_HESSIAN_MAX a network's DAL takes H g from a Hessian–vector product: the same iterates
    and rates as the generic loop with the dense Hessian (forced here on a small MLP), to rounding."""
    from flowcore.solvers import optim
    net = fc.nn.mlp(*fc.nn.iris(), widths=(8,), activation="tanh", loss="cross_entropy", seed=0)
    dense = fc.descend(net, net.theta0, method, 8)
    monkeypatch.setattr(optim, "DENSE_HESSIAN_MAX", 0)
    free = fc.descend(net, net.theta0, method, 8)
    np.testing.assert_array_equal(free.status, dense.status)
    np.testing.assert_allclose(free.iterates, dense.iterates, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(free.lr, dense.lr, rtol=1e-10)
    assert np.all(np.isfinite(free.lr)) and np.ptp(free.lr) > 0          # the rate adapts


def test_diagnostics_by_products_equal_the_dense_ones_on_their_top_eigenpairs():
    """Figs 11–13/16–17's per-iterate numbers without the Hessian: the top-k eigenpairs by Lanczos and
    H g by a product give the dense path's eigenvalues, stability coefficients, ‖Hg‖ and progress ratio."""
    net = fc.nn.mlp(*fc.nn.iris(), widths=(8,), activation="tanh", loss="cross_entropy", seed=0)
    it = fc.descend(net, net.theta0, fc.GD(1.0), 4).iterates[0]
    dense = fc.diagnostics(net.loss, it, 1.0, k=None)
    assert dense["eigenvalues"].shape == (5, net.dim)          # a small network: the whole spectrum
    free = fc.diagnostics(net.loss, it, 1.0, k=3)
    np.testing.assert_allclose(free["eigenvalues"], dense["eigenvalues"][:, -3:], rtol=1e-9)
    np.testing.assert_allclose(free["stability_coefficients"], dense["stability_coefficients"][:, -3:],
                               rtol=1e-6, atol=1e-9)
    for key in ("Hg_norm", "Hghat_norm", "progress_ratio", "loss"):
        np.testing.assert_allclose(free[key], dense[key], rtol=1e-10)


def test_dal_and_diagnostics_run_on_a_network_of_85_thousand_parameters():
    """The digits MLP 64→256→256→10: its Hessian would take 58 GB (the generic DAL loop's per-trajectory
    D×D work array could not be allocated). By products a DAL step is a gradient and one H·g, and the
    diagnostics are the top eigenpairs by Lanczos."""
    net = fc.nn.mlp(*fc.nn.digits(), widths=(256, 256), activation="tanh", loss="cross_entropy", seed=0)
    assert net.dim == 85_002
    r = fc.descend(net, net.theta0, fc.DAL(power=1.0), 3)
    assert r.status[0] == fc.Status.OK and r.nsteps[0] == 3
    E = net.loss.value(r.iterates[0])
    assert E[-1] < E[0]                       # DAL's rate 2/‖H ĝ‖ decreases the loss here
    g = net.loss.grad(net.theta0[None])[0]
    Hg = fc.nn.hvp(net.loss, net.theta0, g)
    assert r.lr[0, 0] == pytest.approx(2 * np.linalg.norm(g) / np.linalg.norm(Hg), rel=1e-12)
    d = fc.diagnostics(net.loss, net.theta0, 0.5, k=2)
    assert d["eigenvalues"].shape == (2,) and 0 < d["eigenvalues"][0] <= d["eigenvalues"][1]
    assert d["Hg_norm"] == pytest.approx(np.linalg.norm(Hg), rel=1e-12)
    u = d["eigenvectors"][:, 1]                # Rayleigh quotient of the top vector by one more product
    assert u @ fc.nn.hvp(net.loss, net.theta0, u) == pytest.approx(d["eigenvalues"][1], rel=1e-8)
    from flowcore.analysis import paper          # Fig 8 at this scale: u₀ by Lanczos, the PF's factor 1 − hλ₀
    p = paper.projection_predictions(net.loss, 0.5, r.iterates[0][:2], flows=("ngf", "pf"))
    assert p["sharpness"][0] == pytest.approx(d["eigenvalues"][1], rel=1e-8) and p["projection"][0] >= 0
    assert p["factor"]["pf"][0] == pytest.approx(1 - 0.5 * p["sharpness"][0], rel=1e-12)


def test_cli_dal_json_redraws_and_refuses_bad_rates(tmp_path):
    """`flowcore dal`: its JSON holds every run's loss and rates (the figure's data), against an
    independent GD loop in numpy on the same network."""
    import json
    import subprocess
    import sys
    cmd = [sys.executable, "-m", "flowcore.cli", "dal", "--data", "regression", "--samples", "10", "--widths", "3",
           "--objective", "mse", "--steps", "12", "--lrs", "0.1,0.3", "--powers", "1"]
    out = subprocess.run(cmd + ["--json", "-o", str(tmp_path / "d.png")], capture_output=True, text=True,
                         cwd=tmp_path, check=True)
    d = json.loads(out.stdout)
    assert set(d["runs"]) == {"GD lr=0.1", "GD lr=0.3", "DAL"} and (tmp_path / "d.png").stat().st_size > 10000
    net = fc.nn.mlp(*fc.nn.regression_2d(10, seed=0), widths=(3,), activation="tanh", loss="mse", seed=0)
    th, losses = net.theta0.copy(), []
    for _ in range(13):
        losses.append(float(net.loss.value(th[None])[0]))
        th = th - 0.3 * net.loss.grad(th[None])[0]
    np.testing.assert_allclose(d["runs"]["GD lr=0.3"]["loss"], losses, rtol=1e-12)
    assert len(d["runs"]["DAL"]["lr"]) == 12 and min(d["runs"]["DAL"]["lr"]) > 0
    bad = subprocess.run(cmd[:-4] + ["--lrs", "0.1,-1"], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode != 0 and "--lrs" in bad.stderr


def test_cli_stability_json_against_numpy_and_scipy(tmp_path):
    """`flowcore stability --k 2` (the top eigenpairs by Lanczos, as at scale): its JSON against
    an independent computation — GD in numpy, the Hessian by central differences of the gradient,
    the NGF's step by scipy's solve_ivp — and the figure written."""
    import json
    import subprocess
    import sys
    from scipy.integrate import solve_ivp
    lr, steps = 0.9, 6
    cmd = [sys.executable, "-m", "flowcore.cli", "stability", "--data", "regression", "--samples", "10", "--widths", "3",
           "--objective", "mse", "--lr", str(lr), "--steps", str(steps), "--k", "2"]
    out = subprocess.run(cmd + ["--json", "-o", str(tmp_path / "s.png")], capture_output=True, text=True,
                         cwd=tmp_path, check=True)
    d = json.loads(out.stdout)
    assert (tmp_path / "s.png").stat().st_size > 10000
    net = fc.nn.mlp(*fc.nn.regression_2d(10, seed=0), widths=(3,), activation="tanh", loss="mse", seed=0)
    grad = lambda x: net.loss.grad(x[None])[0]                               # noqa: E731
    th = [net.theta0.copy()]
    for _ in range(steps):
        th.append(th[-1] - lr * grad(th[-1]))
    np.testing.assert_allclose(d["loss"], [float(net.loss.value(x[None])[0]) for x in th], rtol=1e-12)
    for n in (0, 3):
        eps = 1e-5
        H = np.array([(grad(th[n] + eps * e) - grad(th[n] - eps * e)) / (2 * eps) for e in np.eye(net.dim)])
        lam, U = np.linalg.eigh(0.5 * (H + H.T))
        np.testing.assert_allclose(d["eigenvalues"][n], lam[-2:], rtol=1e-6)
        g = grad(th[n])
        assert d["Hg_norm"][n] == pytest.approx(np.linalg.norm(H @ g), rel=1e-6)
        u = U[:, -1] * np.sign(g @ U[:, -1])
        assert d["projection"]["projection"][n] == pytest.approx(g @ u, rel=1e-6, abs=1e-9)
        assert d["projection"]["gd"][n] == pytest.approx(grad(th[n + 1]) @ u, rel=1e-6, abs=1e-9)
        ngf = solve_ivp(lambda t, y: -grad(y), (0, lr), th[n], rtol=1e-12, atol=1e-14).y[:, -1]
        assert d["drift"][n] == pytest.approx(np.linalg.norm(th[n + 1] - ngf), rel=1e-6)
    assert set(d["predicted_delta_loss"]) == {"ngf", "pgf"} and d["seconds"]["eigenpairs_per_iterate"] > 0
    bad = subprocess.run(cmd[:-2] + ["--flows", "ngf,pfg"], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode != 0 and "pfg" in bad.stderr
