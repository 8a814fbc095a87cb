"""The tour, reduced (quick=True): every file is written, and the numbers it reports are right."""
import json
import subprocess
import sys

import numpy as np
import pytest

from flowcore.analysis import tour


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    d = tmp_path_factory.mktemp("tour")
    # in this process: spawned workers would each import and compile afresh (75 CPU-s against 53);
    # test_cli_track_and_tour_only runs the parallel path
    tour.run(d, quick=True, progress=False, workers=1)
    return d


def _load(out, name):
    return json.loads((out / f"{name}.json").read_text())


def test_every_item_has_png_json_and_index_line(out):
    index = (out / "index.md").read_text()
    for f in tour.ITEMS:
        png = out / f"{f.__name__}.png"
        assert png.stat().st_size > 20_000, f.__name__
        data = _load(out, f.__name__)
        assert data["item"] == f.__name__ and data["summary"]
        assert f"({f.__name__}.png)" in index and data["summary"] in index


def test_numbers(out):
    assert _load(out, "min_norm")["distance_to_pinv"] < 1e-8
    assert _load(out, "pf_quadratic_2d")["max_error"] < 1e-9
    q = _load(out, "quadratic_lr")
    assert q["stability_boundary"] == 2.0 and q["measured_boundary"] == 2.0
    t = _load(out, "tracking")
    assert t["pf"]["first_step_error"] < t["ngf"]["first_step_error"]
    assert t["third_order"]["first_step_error"] < t["igr"]["first_step_error"] < t["ngf"]["first_step_error"]
    e = _load(out, "euler")
    assert abs(e["order"] - 1) < 0.1
    r = _load(out, "vector_fields")["rotation"]
    assert r["radius_after_turn_euler"] == pytest.approx(r["euler_growth_closed_form"], rel=1e-9)   # (1 + dt²)^(20/2)
    assert _load(out, "drift")["correlation"] > 0.9
    eos = _load(out, "edge_of_stability")
    assert eos["loss_increases"] > 0 and eos["ngf_predicts_increase"] == 0
    for key, run in _load(out, "eos_models").items():
        if isinstance(run, dict):          # per loss: the PF's real part predicts GD's next iterate better than the NGF
            t, network = run["models"], key.startswith("Network")      # the MLP: 0.14 measured, still below the edge
            assert t["pf"]["table"]["one_step"]["theta"] < (0.5 if network else 0.1) * t["ngf"]["table"]["one_step"]["theta"]
            assert network or max(run["sharpness"]) > run["edge"]
    net = _load(out, "network_eos")                     # the Iris MLP sharpens to 2/h within the quick run
    assert net["edge_step"] is not None and net["sharpness"][net["edge_step"]] >= net["edge"]
    tr = _load(out, "network_tracking")                # Fig 7 on an MLP: the PF's first step is the closest
    assert tr["pf"]["first_step_error"] < min(tr[k]["first_step_error"] for k in ("ngf", "igr", "third_order"))
    pr = _load(out, "network_projection")               # Fig 8: GD's sign flips along u₀; only the PF has them
    assert pr["gd_sign_flips"] == pr["steps"] == pr["sign_right"]["pf"] and pr["sign_right"]["ngf"] == 0
    st = _load(out, "network_stability")
    assert max(st["predicted_delta_loss"]["ngf"]) < 0 < min(st["predicted_delta_loss"]["pgf"])
    assert st["loss_increases"] > 0 and st["unstable_iterations"] > 0
    dal = _load(out, "network_dal")["runs"]
    assert all(np.isfinite(r["final_loss"]) for r in dal.values())
    rn = _load(out, "resnet_ode")                       # lesson 16b: both fit; the ODE's map cannot fold
    assert min(rn["accuracy"].values()) > 0.9 and rn["det_ode_min"] > 0 and rn["det_ode_liouville_vs_rk4"] < 1e-3
    o = _load(out, "orbit")
    assert 1.0 <= o["first_period_2"] < 1.01
    tr = _load(out, "trainability")
    assert tr["lines"]["0.2"]["boundary_dimension"] > 0.05 > tr["lines"]["0.12"]["boundary_dimension"]
    full, h = tr["full"], np.array(tr["full"]["lr"])
    labels = np.array([[int(v) for run in row.split() for v in [run.split("*")[0]] * int(run.split("*")[1])]
                       for row in full["label_runs_along_lr"]])          # [x, lr]
    half = np.argmin(np.abs(np.array(full["x"]) - 0.5))
    assert np.all(labels[half, h < 0.24] == 1)           # w₀ = 0.5 converges to the minimum 1 ...
    assert np.all(labels[:, h > 0.25] < 0)               # ... and no start rests at a minimum past hλ = 2


def test_cli_track_and_tour_only(tmp_path):
    png = tmp_path / "t.png"
    r = subprocess.run([sys.executable, "-m", "flowcore.cli", "track", "--loss", "(x*y - 1)**2/2", "--lr", "0.1",
                        "--theta0=2.5,0.2", "--steps", "5", "--flows", "ngf,pf", "-o", str(png), "--json"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["pf"]["first_step_error"] < d["ngf"]["first_step_error"] and png.exists()
    r = subprocess.run([sys.executable, "-m", "flowcore.cli", "tour", "-o", str(tmp_path / "t"), "--quick",
                        "--only", "alpha,euler", "--json", "-j", "2"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(i["name"] for i in json.loads(r.stdout)["items"]) == ["alpha", "euler"]
    r = subprocess.run([sys.executable, "-m", "flowcore.cli", "tour", "-o", str(tmp_path / "t"), "--only", "nope"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and "unknown tour items" in r.stderr


def test_ctrl_c_says_which_figures_were_kept(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    out = tmp_path / "tour"
    proc = subprocess.Popen([sys.executable, "-m", "flowcore.cli", "tour", "--quick", "-j", "1", "-o", str(out),
                             "--only", "alpha,euler,pf_regimes,momentum,orbit,quartic"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not (out / "alpha.json").exists():
        assert proc.poll() is None and time.time() - t0 < 120, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    done = sorted(p.stem for p in out.glob("*.json"))
    assert f"{len(done)} of 6 figures were written to {out}" in err and "alpha" in err
    assert not (out / "index.md").exists()


def test_a_figure_finished_just_before_ctrl_c_is_counted(tmp_path, monkeypatch):
    """A Ctrl-C between an item's last file and the tour's note of it (the race a subprocess test
    hit): the item's files are whole and the message counts it; no half-written file is left."""
    import flowcore as fc
    from flowcore.analysis.plot import _plt

    def first(quick):
        fig = _plt().figure()
        return fig, {"x": 1}, "one."

    def second(quick):
        raise AssertionError("not reached")
    monkeypatch.setattr(tour, "ITEMS", [first, second])
    render = tour._render

    def render_then_ctrl_c(name, out, quick, progress):
        render(name, out, quick, progress)
        raise KeyboardInterrupt
    monkeypatch.setattr(tour, "_render", render_then_ctrl_c)
    with pytest.raises(fc.Interrupted, match=r"1 of 2 figures were written .*\(PNG and JSON: first\)"):
        tour.run(tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.json", "first.png"]
    assert json.loads((tmp_path / "first.json").read_text())["x"] == 1
