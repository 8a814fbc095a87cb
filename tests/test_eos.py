"""The models compared on GD runs at the edge of stability (fa.compare_models), the central flow's
time-averaged loss against GD's, and the self-stabilization trajectory against the central flow."""
import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.optimize import minimize

import flowcore as fc
from flowcore import analysis as fa

# a valley of rising sharpness: λ_max = x + z²/10 along y rises as GD descends toward (9/2, 0, 2)
VALLEY = "(x - 9/2)**2/80 + (z - 2)**2/40 + (x + z**2/10)*y**2/2"


def test_quadratic_closed_forms():
    """E = ½θᵀAθ below the edge: the PF predicts every step exactly ((1 − hλ)^n), PF+NP3 equals it
    (T = 0), the NGF misses by |e^{−hλ} − (1 − hλ)|·|θ| per direction, and the central flow,
    with nothing critical, equals the NGF."""
    A = np.diag([1.0, 3.0])
    loss = fc.Loss.from_expr("x**2/2 + 3*y**2/2")
    h, th0, steps = 0.2, np.array([1.0, -0.7]), 30
    r = fa.compare_models(loss, h, th0, steps, horizon=5)
    n = np.arange(steps + 1)[:, None]
    gd = th0 * (1 - h * np.diag(A)) ** n
    np.testing.assert_allclose(r["gd"], gd, rtol=1e-13)
    for name in ("pf", "pf_np3"):
        for mode in ("one_step", "horizon", "global"):
            assert np.nanmax(r["models"][name]["errors"][mode]["theta"]) < 1e-9
    ngf_one = np.linalg.norm(gd[:-1] * (np.exp(-h * np.diag(A)) - (1 - h * np.diag(A))), axis=1)
    np.testing.assert_allclose(r["models"]["ngf"]["errors"]["one_step"]["theta"], ngf_one, rtol=1e-7, atol=1e-14)
    np.testing.assert_allclose(r["models"]["central"]["trajectory"], th0 * np.exp(-h * np.diag(A) * n), atol=1e-8)
    assert r["models"]["central"]["defined"] == steps
    assert r["mean_from"] is None and r["best"]["one_step"]["theta"] in ("pf", "pf_np3")


def test_window_average_and_alignment():
    """GD's averages are the means of `window` consecutive iterates; a prediction made at n for n + m
    is scored against iterate n + m."""
    loss = fc.Loss.from_expr("x**2/2")
    r = fa.compare_models(loss, 1.5, [1.0], 12, horizon=3, window=3, models=("ngf",))
    gd = (-0.5) ** np.arange(13)
    np.testing.assert_allclose(r["gd_theta_avg"][:, 0], (gd[:-2] + gd[1:-1] + gd[2:]) / 3, rtol=1e-14)
    pred = gd[:-1] * np.exp(-1.5 * 3)            # the NGF over t = 3h from θ_n
    np.testing.assert_allclose(r["models"]["ngf"]["errors"]["horizon"]["theta"], np.abs(pred[:10] - gd[3:]),
                               rtol=1e-7)


def test_central_flow_predicts_the_time_averaged_loss_at_the_edge():
    """On the valley GD reaches the edge, catapults, and settles into a 2-cycle about the central
    flow's rest point: GD's loss averaged over the cycle equals E + ½⟨Σ, H⟩ there (tolerance 1e-8,
    relative), and that point is the minimum of E on {λ_max = 2/h} (scipy SLSQP, independently)."""
    loss = fc.Loss.from_expr(VALLEY)
    h, th0 = 0.5, [3.5, 0.05, 1.0]
    gd = fc.descend(loss, [th0], fc.GD(h), 20000).iterates[0]
    E = loss.value(gd)
    cf = fa.central_flow(loss, h, th0, 2000, t_eval=[0.0, 2000.0])        # at rest from t ≈ 500
    gd_avg = E[-1000:].mean()
    assert cf.time_averaged_loss[-1] == pytest.approx(gd_avg, rel=1e-8)
    f = lambda p: (p[0] - 4.5) ** 2 / 80 + (p[1] - 2) ** 2 / 40                     # noqa: E731
    m = minimize(f, [3.0, 1.0], constraints=[{"type": "eq", "fun": lambda p: p[0] + p[1] ** 2 / 10 - 4}],
                 method="SLSQP", options={"ftol": 1e-15})
    np.testing.assert_allclose(cf.theta[-1, [0, 2]], m.x, atol=1e-7)
    np.testing.assert_allclose(gd[-2:, [0, 2]].mean(axis=0), m.x, atol=1e-7)
    # over a finite run that still catapults, GD's loss averaged from the edge is near the prediction
    r = fa.compare_models(loss, h, th0, 600, horizon=10, models=("ngf", "central"), every=20)
    gd_mean, cf_mean = r["gd_loss_mean"][-1], r["central_loss_mean"][-1]
    assert abs(gd_mean - cf_mean) / cf_mean < 0.1
    assert r["best"]["horizon"]["loss"] == "central" and r["models"]["ngf"]["defined"] == 30


    assert r["left_edge_at"] is None            # catapults that come back are not "leaving"


def test_left_edge_by_hand():
    from flowcore.analysis.eos import left_edge
    e = 2.0
    assert left_edge([1.0] * 50, e) is None                               # never at the edge
    assert left_edge([1.9, 2.1] * 25, e) is None                          # at it to the end
    assert left_edge([2.1] * 5 + [1.9] * 30, e) == 5                       # then below for 30 ≥ 20 steps
    assert left_edge([2.1] * 5 + [1.9] * 10, e) is None                    # 10 < 20: may come back
    # catapults 25 steps apart: a final stretch below of 40 < 2·24 steps is a calm phase, not leaving
    catapults = ([2.1] + [1.5] * 24) * 4
    assert left_edge(catapults + [1.5] * 15, e) is None
    assert left_edge(catapults + [1.5] * 30, e) == 76


def test_the_central_flow_is_not_scored_after_gd_leaves_the_edge():
    """½(xy − 1)² at h = 0.25 from (2.8, 0.3): GD catapults at step 1 and is below the edge from step
    10 to the end (λ_max → 7.78 < 8) while the central flow stays pinned at 8: its run from θ₀ is not
    scored from step 10 on, nor averaged past it. At h = 1.05 every minimum (λ = x² + y² ≥ 2) is
    above the edge 2/h = 1.90: GD sits at the edge for good, and the central flow's averaged loss
    is within 15 % of GD's (0.0207 against 0.0231 over 300 steps from (0.9, 0.9))."""
    loss = fc.Loss.from_expr("(x*y - 1)**2/2")
    r = fa.compare_models(loss, 0.25, [2.8, 0.3], 200, horizon=5, models=("igr", "central"), every=10)
    sharp = r["sharpness"]
    assert r["edge_reached_at"] == 1 and r["left_edge_at"] == 10
    assert np.all(sharp[10:] < 8) and sharp[9] >= 8
    central = r["models"]["central"]
    assert np.isnan(central["loss_avg"][10:]).all() and np.isfinite(central["loss_avg"][1:10]).all()
    assert len(r["gd_loss_mean"]) == len(r["central_loss_mean"]) == 10 - r["mean_from"]
    r = fa.compare_models(loss, 1.05, [0.9, 0.9], 300, horizon=5, models=("central",), every=50)
    assert r["left_edge_at"] is None and len(r["gd_loss_mean"]) == 300 - r["mean_from"] + 1
    assert abs(r["central_loss_mean"][-1] / r["gd_loss_mean"][-1] - 1) < 0.15


def test_self_stabilization_follows_the_central_flow_to_first_order():
    """Damian–Nichani–Lee's projected GD and the one-direction central flow are two discretisations of
    one constrained flow: slowing the drift by ε (E → ε·f + ½ s y², so GD takes 1/ε times more steps
    for the same path) halves their distance when ε halves."""
    dist = []
    for eps in (1.0, 0.5):
        loss = fc.Loss.from_expr(f"{eps}*((x - 9/2)**2/80 + (z - 2)**2/40) + (x + z**2/10)*y**2/2")
        n = int(60 / eps)
        ss = fa.self_stabilization(loss, 0.5, [3.5, 0.05, 1.0], n)
        S = np.linalg.eigvalsh(loss.hess(ss))[:, -1]
        assert np.all(S <= 4 + 1e-9) and np.all(np.abs(ss[:, 1]) < 1e-9)     # on M: below the edge, y = 0
        cf = fa.central_flow(loss, 0.5, ss[0], n, t_eval=np.arange(n + 1.0))
        dist.append(np.max(np.linalg.norm(ss - cf.theta, axis=1)))
    assert dist[0] < 1e-2 and 1.8 < dist[0] / dist[1] < 2.2


@pytest.mark.parametrize("kw, msg", [(dict(steps=1), "steps"), (dict(horizon=0), "horizon"),
                                     (dict(horizon=50), "smaller than steps"), (dict(models=("gd",)), "unknown model"),
                                     (dict(theta0=[1.0]), "coordinates"), (dict(lr=-1.0), "lr"),
                                     (dict(window=True), "window"), (dict(every=0), "every"),
                                     (dict(models=()), "models is empty"),
                                     (dict(models="pff"), r"unknown model\(s\) \['pff'\]")])
def test_bad_arguments(kw, msg):
    args = dict(loss=fc.Loss.from_expr("x**2 + y**2"), lr=0.1, theta0=[1.0, 1.0], steps=20)
    with pytest.raises(ValueError, match=msg):
        fa.compare_models(**{**args, **kw})


def test_diverging_gd_is_refused():
    with pytest.raises(ValueError, match="diverged"):
        fa.compare_models(fc.Loss.from_expr("x**2"), 1.5, [1.0], 2000)


def test_cli_compare_json(tmp_path):
    out = subprocess.run([sys.executable, "-m", "flowcore.cli", "compare", "--loss", "(x*y - 1)**2/2", "--lr", "0.25",
                          "--theta0", "2.82,0.36", "--steps", "40", "--models", "ngf,pf,central", "--json",
                          "-o", str(tmp_path / "c.png")], capture_output=True, text=True, cwd=tmp_path, check=True)
    d = json.loads(out.stdout)
    assert set(d["models"]) == {"ngf", "pf", "central"} and len(d["gd_loss"]) == 41
    assert len(d["summary"]) == 12 and (tmp_path / "c.png").stat().st_size > 10000
    assert d["models"]["pf"]["table"]["one_step"]["theta"] < d["models"]["ngf"]["table"]["one_step"]["theta"]


@pytest.mark.parametrize("argv, msg", [
    (["--loss", "x**2", "--network", "regression"], "not both"),
    (["--network", "regression", "--theta0", "1,2"], "--theta0 is for --loss"),
    (["--loss", "x**2"], "needs --theta0"),
    ([], "give --loss"),
    (["--network", "mnist"], "--network must be one of"),
    (["--network", "regression", "--widths", "4,x"], "--widths"),
])
def test_cli_compare_network_or_loss(argv, msg, capsys):
    """`flowcore compare` takes a loss with a start or a network at its initialisation, and says which."""
    from flowcore.cli import main
    assert main(["compare", "--lr", "1", *argv]) == 2
    assert msg in capsys.readouterr().err


def test_restarts_are_scored_where_every_flow_predicted():
    """A flow that stopped at the hard iterates is not credited for skipping them: the restart means
    are over the iterates where every flow predicted (the central flow, defined only at or below the
    edge, does not narrow them), and a run from θ₀ that stopped early cannot be the global best."""
    from flowcore.analysis.eos import _score
    nan = np.nan

    def model(one, glob, stopped=0):
        errs = {"one_step": np.array(one), "horizon": np.array(one), "global": np.array(glob)}
        return {"errors": {m: {q: e for q in ("theta", "theta_avg", "loss", "loss_avg")} for m, e in errs.items()},
                "unfinished": {"global": stopped, "restarts": 0}}
    models = {"ngf": model([1.0, 2.0, 9.0, 3.0], [1.0, 1.0, 1.0]),
              "pf": model([0.1, 0.2, nan, 0.3], [0.1, nan, nan], stopped=1),
              "central": model([nan, 1.0, 5.0, 0.5], [2.0, 2.0, 2.0])}
    out = _score(models)
    t = {k: m["table"] for k, m in models.items()}
    assert t["ngf"]["one_step"]["theta"] == pytest.approx((1 + 2 + 3) / 3)        # n = 2 dropped: the PF stopped
    assert t["pf"]["one_step"]["theta"] == pytest.approx(0.2)
    assert t["central"]["one_step"]["theta"] == pytest.approx((1 + 0.5) / 2)      # its own NaN at n = 0 stays out
    assert models["ngf"]["median"]["one_step"]["theta"] == 2.0
    assert out["scored"]["one_step"] == {"scored": 3, "made": 4}
    assert out["best"]["one_step"]["theta"] == "pf"
    assert t["pf"]["global"]["theta"] == pytest.approx(0.1)                     # its mean over the steps reached …
    assert out["best"]["global"]["theta"] == "ngf"                              # … but not eligible as the best

