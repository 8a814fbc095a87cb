"""fa.basins: labels against closed forms (symmetry, exact splits, sympy 2-cycles, PF regimes)."""
import numpy as np
import pytest
import sympy as sp

import flowcore as fc
from flowcore import analysis as fa
from flowcore.analysis.basins import ESCAPED, UNRESOLVED
from flowcore.solvers.optim import Grouping


@pytest.fixture(scope="module")
def quartic():
    return fc.Loss.from_expr("(w**2 - 1)**2/4")


@pytest.mark.parametrize("model", ["ngf", "igr", "third_order", "gd"])
def test_1d_split_exactly_at_zero(quartic, model):
    w = np.array([-1.7, -0.5, -1e-9, 0.0, 1e-9, 0.5, 1.7])
    b = fa.basins(quartic, fc.method(model, lr=0.1), w)
    left, right = b.labels[:3], b.labels[4:]
    assert len(set(left)) == 1 and len(set(right)) == 1 and left[0] != right[0]
    assert b.entry(left[0]).critical.point == pytest.approx([-1.0])
    assert b.entry(right[0]).critical.point == pytest.approx([1.0])
    mid = b.entry(b.labels[3])
    assert mid.kind == "unstable fixed point" and mid.critical.kind == "max" and not mid.attractor
    assert [e.name for e in b.attractors] == ["min (-1)", "min (1)"]


def test_double_well_symmetric_fractions_and_saddle_manifold():
    loss = fc.losses.double_well()
    for model, lr in (("gd", 0.05), ("ngf", 0.05)):
        b = fa.basins(loss, fc.method(model, lr=lr), ((-2, 2, 41), (-1.5, 1.5, 31)))
        a, c = b.attractors
        assert a.count == c.count and a.fraction == pytest.approx((1 - 1 / 41) / 2)
        # the y-axis (x = 0) is the saddle's stable manifold: its own, non-attractor label
        col = b.labels[:, 20]
        assert len(set(col)) == 1
        saddle = b.entry(col[0])
        assert saddle.kind == "unstable fixed point" and saddle.critical.kind == "saddle"
        assert saddle.count == 31
        assert np.all(b.boundary()[:, 19:22]) and not np.any(b.boundary()[:, :19])
        Sb, Sbb, nb = b.entropy(box=3)
        assert nb > 0 and Sbb > 0


def test_escaped_and_unresolved_are_distinct():
    loss = fc.losses.double_well()
    b = fa.basins(loss, fc.GD(1.5), ((-2, 2, 21), (-2, 2, 21)))     # hλ = 3 in y: every y ≠ 0 escapes
    assert b.entry(ESCAPED).fraction >= 20 / 21
    short = fa.basins(loss, fc.GD(0.05), ((-2, 2, 21), (-2, 2, 21)), rest=fc.RestTest(steps=3))
    assert short.entry(UNRESOLVED).count > 0
    assert ESCAPED not in short.labels
    both = fa.basins(loss, fc.GD(0.3), ((-3, 3, 31), (-0.5, 0.5, 5)), rest=fc.RestTest(steps=4))
    assert {ESCAPED, UNRESOLVED} <= set(np.unique(both.labels))
    assert both.entry(ESCAPED).kind == "escaped" and both.entry(UNRESOLVED).kind == "unresolved"


def test_gd_two_cycle_matches_sympy(quartic):
    h = 1.1       # just above hλ = 2 at the minima (λ = 2)
    b = fa.basins(quartic, fc.GD(h), (0.3, 1.6, 27), rest=fc.RestTest(steps=5000))
    cycles = [e for e in b.attractors if e.kind == "cycle"]
    assert cycles and all(len(e.points) == 2 for e in cycles)
    w = sp.Symbol("w")
    f = lambda u: u - sp.Rational(11, 10) * (u**3 - u)
    roots = [complex(r) for r in sp.Poly(sp.expand(f(f(w)) - w), w).nroots()]
    period2 = sorted(r.real for r in roots if abs(r.imag) < 1e-12 and abs(abs(r.real) - 1) > 1e-6 and abs(r.real) > 1e-6)
    for e in cycles:
        for p in e.points[:, 0]:
            assert min(abs(p - r) for r in period2) < 1e-8
    assert not any(e.kind == "fixed point" and e.critical.kind == "min" for e in b.entries)


@pytest.mark.parametrize("case", ["gd cycles", "pf complex"])
def test_labels_chunk_by_chunk_are_the_labels_of_one_pass(quartic, case):
    """fa.basins labels its starts chunk by chunk (the rest points grouped while in cache): any
    chunk size gives the same labels, attractors (cycles found from their first start, PF
    residuals as maxima over every chunk) and counts as one chunk over the whole grid."""
    if case == "gd cycles":      # 2-cycles (hλ > 2 at the minima), the maximum, escapes
        method, grid = fc.GD(1.1), (-2.2, 2.2, 301)
    else:                        # complex PF trajectories, some real at rest and some not
        method, grid = fc.PF(1.5, solver=fc.RK4(0.05)), (-2, 2, 101)
    loss = quartic if case == "gd cycles" else fc.Loss.from_expr("w**2/2")
    whole = fa.basins(loss, method, grid, compute=fc.Compute(chunk=10**6), progress=False)
    for chunk in (7, 64):
        b = fa.basins(loss, method, grid, compute=fc.Compute(chunk=chunk), progress=False)
        assert np.array_equal(b.labels, whole.labels) and np.array_equal(b.nsteps, whole.nsteps)
        assert [(e.kind, e.count, e.imag_residual) for e in b.entries] == \
            [(e.kind, e.count, e.imag_residual) for e in whole.entries]
        for e, f in zip(b.entries, whole.entries):
            assert np.array_equal(e.points, f.points)
        np.testing.assert_array_equal(b.imag_residual, whole.imag_residual)
    kinds = {e.kind for e in whole.entries}
    assert ({"cycle", "unstable fixed point", "escaped"} <= kinds if case == "gd cycles"
            else whole.imag_residual.max() > 0)


def test_pf_complex_trajectories_labelled_by_real_attractor():
    loss = fc.Loss.from_expr("w**2/2")
    b = fa.basins(loss, fc.PF(1.5), (-2, 2, 9))         # hλ = 1.5: PF spirals through ℂ into 0
    (att,) = b.attractors
    assert att.critical.kind == "min" and att.count == 9
    assert 0 < b.imag_residual.max() <= 1e-6 and att.imag_residual == b.imag_residual.max()
    b = fa.basins(loss, fc.PF(2.5), (0.5, 2, 5))        # hλ > 2: |1 − hλ| > 1, the PF escapes
    assert np.all(b.labels == ESCAPED)


def test_igr_attracts_the_saddle_at_large_lr():
    # IGR's Jacobian at the saddle (λ = −4, 2) is −λ(1 + hλ/2): both negative once h > 1/2
    loss = fc.losses.double_well()
    b = fa.basins(loss, fc.IGR(0.6), ((-0.1, 0.1, 5), (-0.1, 0.1, 5)))
    assert any(e.attractor and e.critical.kind == "saddle" for e in b.entries)
    b = fa.basins(loss, fc.IGR(0.3), ((-0.1, 0.1, 5), (-0.1, 0.1, 5)))
    assert all(e.critical.kind != "saddle" for e in b.attractors)


def test_plane_slice_in_3d():
    loss = fc.Loss.from_expr("(x**2 - 1)**2 + y**2 + z**2")
    b = fa.basins(loss, fc.GD(0.05), ((-2, 2, 9), (-1, 1, 5)), plane=([0, 0.3, 0], [[1, 0, 0], [0, 0, 1]]))
    assert b.labels.shape == (5, 9) and b.starts.shape == (5, 9, 3)
    assert np.all(b.starts[..., 1] == 0.3)
    assert np.all(b.labels[:, :4] == b.labels[0, 0]) and np.all(b.labels[:, 5:] == b.labels[0, -1])
    assert b.entry(b.labels[0, 0]).critical.point == pytest.approx([-1, 0, 0])


def test_bad_arguments(quartic):
    with pytest.raises(TypeError, match="method must be one of fc.GD"):
        fa.basins(quartic, "gd", (-1, 1, 5))
    with pytest.raises(TypeError, match="method must be one of fc.GD"):
        fa.basins(quartic, fc.DALPerParam(), (-1, 1, 5))
    with pytest.raises(ValueError, match="lr"):
        fa.basins(quartic, fc.GD(-0.1), (-1, 1, 5))
    with pytest.raises(ValueError, match="grid"):
        fa.basins(fc.losses.double_well(), fc.GD(0.1), (-1, 1, 5))
    with pytest.raises(ValueError, match="directions"):
        fa.basins(fc.losses.double_well(), fc.GD(0.1), ((-1, 1, 5), (-1, 1, 5)), plane=(None, [[1, 0], [2, 0]]))


def test_basin_figure_structure():
    b = fa.basins(fc.losses.double_well(), fc.GD(0.27), ((-2, 2, 41), (-2, 2, 21)))
    fig = fa.plot.basins(b)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(texts) == len(b.entries) and any(t.startswith("escaped") for t in texts)
    assert any("2-cycle" in t for t in texts) and all("%" in t for t in texts)
    assert ax.images[0].get_array().shape == (21, 41)
    assert ax.get_xlabel() and ax.get_title()


def test_portrait_trajectories_match_closed_form_and_figure():
    loss = fc.Loss.from_expr("x**2/2 + y**2")
    st = np.array([[1.0, 0.5], [-0.8, -0.4]])
    d = fa.portrait(loss, [(-1, 1), (-1, 1)], 0.1, flow="ngf", starts=st, gd_lrs=[0.1, 0.4], steps=20)
    t = d["t"]
    exact = np.stack([st[:, None, 0] * np.exp(-t), st[:, None, 1] * np.exp(-2 * t)], -1)
    assert np.max(np.abs(d["trajectories"] - exact)) < 1e-8
    gd = d["gd"][1]           # GD at h = 0.4: x_n = 0.6^n x0, y_n = 0.2^n y0
    assert np.allclose(gd[:, :, 0], st[:, None, 0] * 0.6 ** np.arange(21))
    assert np.allclose(gd[:, :, 1], st[:, None, 1] * 0.2 ** np.arange(21))
    fig = fa.plot.portrait(d)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert {"min", "ngf", "GD, lr = 0.1", "GD, lr = 0.4"} <= set(labels)
    pf = fa.portrait(fc.losses.double_well(), [(-2, 2), (-1.5, 1.5)], 0.2, flow="pf", starts=[[0.5, 1.2]])
    fig = fa.plot.pf_panels(pf)
    assert len(fig.axes) == 4 and fig.axes[2].get_ylabel() == "Im θ1"
    assert np.max(np.abs(pf["trajectories"][0, :, 0].imag)) > 1e-3        # it does leave ℝ


def test_one_dimensional_portrait_draws_the_flow_direction():
    """1-D: θ' of the NGF is −E'(θ) = −(4w³ − 4w) on the grid, drawn as arrows along E; the
    trajectories are the dense ones (no chords across the curve); no GD in the title without starts."""
    loss = fc.losses.quartic_1d()
    d = fa.portrait(loss, [(-2, 2)], 0.2, flow="ngf", starts=[[-1.5], [0.3]], steps=6)
    (w,) = d["axes"]
    np.testing.assert_allclose(d["field"].reshape(-1), -(4 * w**3 - 4 * w), rtol=1e-13, atol=1e-13)
    fig = fa.plot.portrait(d)
    ax = fig.axes[0]
    arrows = [a for a in ax.texts if a.arrow_patch is not None]
    assert len(arrows) >= 20
    # every arrow points downhill, as −E' does (away from the max at 0, towards the minima ±1)
    for a in arrows:
        x0, x1 = a.xyann[0], a.xy[0]
        assert np.sign(x1 - x0) == -np.sign(4 * x0**3 - 4 * x0)
    lines = [ln for ln in ax.get_lines() if ln.get_label() == "ngf"]
    assert len(lines) == 1 and len(lines[0].get_xdata()) == len(d["dense_t"])
    assert "GD" in ax.get_title()
    bare = fa.plot.portrait(fa.portrait(loss, [(-2, 2)], 0.2, flow="pf"))
    assert "GD" not in bare.axes[0].get_title() and "direction of pf (Re)" in [
        t.get_text() for t in bare.axes[0].get_legend().get_texts()]


def test_cli_basins_and_portrait(tmp_path):
    import json
    import subprocess
    import sys
    png = tmp_path / "b.png"
    out = subprocess.run([sys.executable, "-m", "flowcore.cli", "basins", "--loss", "double_well", "--lr", "0.05",
                          "--grid=-2,2,21;-1,1,11", "-o", str(png), "--json"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert {"labels", "Sb", "Sbb", "model", "lr"} <= set(data)
    assert sum(e["count"] for e in data["labels"]) == 21 * 11
    assert png.stat().st_size > 10_000
    png = tmp_path / "p.png"
    out = subprocess.run([sys.executable, "-m", "flowcore.cli", "portrait", "--loss", "double_well", "--lr", "0.2",
                          "--flow", "pf", "--box=-2,2;-1.5,1.5", "--starts=0.5,1.2", "-o", str(png), "--json"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert {"critical", "trajectories", "gd"} <= set(json.loads(out.stdout))
    assert png.exists() and (tmp_path / "p_reim.png").exists()


def test_converging_oscillation_is_a_fixed_point_not_a_two_cycle():
    """w⁴ − 2w² at h = 0.2 < 2/λ = 0.25: multiplier 1 − 8h = −0.6, so starts converge to ±1 by
    damped oscillation (the p = 2 recurrence passes first); no cycle may be reported."""
    b = fa.basins(fc.losses.quartic_1d(), fc.GD(0.2), (-1.8, 1.8, 2000), rest=fc.RestTest(steps=3000))
    assert not any(e.kind == "cycle" for e in b.entries), b.fractions
    mins = [e for e in b.entries if e.kind == "fixed point"]
    assert sorted(float(e.points[0, 0]) for e in mins) == [-1.0, 1.0]


def test_notebook_reprs_and_json_of_results():
    """Short reprs (shapes, status counts, labels with fractions), plain floats, as_json of a Basins."""
    import json
    b = fa.basins(fc.losses.double_well(), fc.GD(0.1), ((-2, 2, 30), (-2, 2, 30)))
    text = repr(b)
    assert text.startswith("Basins(gd, lr=0.1, grid 30×30") and len(text) < 400 and "min (-1, 0)" in text
    d = json.loads(json.dumps(fa.as_json(b)))
    assert d["model"] == "gd" and d["labels"]
    sol = fc.solve(fc.flows.ngf(fc.losses.double_well(), 0.1), np.random.default_rng(0).uniform(-2, 2, (500, 2)), t_eval=[0.0, 0.5, 1.0])
    assert len(repr(sol)) < 200 and "500 trajectories" in repr(sol) and "OK: 500" in repr(sol)
    run = fc.descend(fc.losses.double_well(), np.zeros((7, 2)), fc.GD(0.1), 12)
    assert repr(run) == "Run(gd: 7 starts × 12 steps × D=2; OK: 7)"
    (iv,) = fa.stable_lr_interval(fa.critical_points(fc.losses.double_well())[0], "gd")
    assert type(iv[1]) is float and iv == (0.0, 0.25)
    st = fa.stability(fa.critical_points(fc.losses.double_well())[0], 0.1)
    assert all(type(v) in (float, complex) for m in st.values() for v in m["eigenvalues"])
    assert all(type(v) is float for v in b.fractions.values())


def test_progress_bar_follows_the_expected_work(monkeypatch):
    import time
    from flowcore.engine.progress import Progress
    bar = Progress(10, "work", "item")          # decided by the measured rate
    time.sleep(0.5)
    bar.update(1)                               # 9 more at 0.5 s each: 4.5 s > 3 s, so a bar appears
    assert bar.bar is not None
    bar.close()
    quick = Progress(1000, "work", "item")
    quick.update(500)                           # fast: no bar
    assert quick.bar is None
    assert Progress(5, "w", "i", enabled=False).bar is None


@pytest.mark.parametrize("dtype", [float, complex])
def test_cluster_recovers_separated_groups(dtype):
    """fc.cluster_points (fa.basins' grouping of rest points) splits well-separated groups exactly
    as generated, real and complex (the PF's rest points), and represents each by a point within
    the tolerance of its centre."""
    rng = np.random.default_rng(7)
    centres = np.array([[1.0, 0.0, 2.0], [-1.0, 0.0, 2.0], [0.0, 3.0, -1.0], [1.0, 0.0, 2.5]])
    truth = rng.integers(0, 4, 5000)
    noise = 1e-9 * (rng.standard_normal((5000, 3)) + (1j * rng.standard_normal((5000, 3)) if dtype is complex else 0))
    pts = (centres[truth] + noise).astype(dtype)
    reps, idx = fc.cluster_points(pts, 1e-6)
    assert len(reps) == 4 and reps.dtype == np.dtype(dtype)
    pairs = set(zip(truth.tolist(), idx.tolist()))
    assert len(pairs) == 4                       # a bijection between the generated and found groups
    for t, k in pairs:
        assert np.max(np.abs(reps[k] - centres[t])) < 1e-8


def _greedy_sweeps(points, tol):
    """The definition, written plainly: the first unassigned row is a centre; its group is every
    unassigned row within tol(1 + ‖centre‖∞) of it; repeat."""
    idx = np.full(len(points), -1)
    k = 0
    while (idx < 0).any():
        c = points[np.flatnonzero(idx < 0)[0]]
        near = (idx < 0) & (np.max(np.abs(points - c), axis=1) <= tol * (1 + np.max(np.abs(c))))
        idx[near] = k
        k += 1
    return idx


@pytest.mark.parametrize("threads", [1, 2])
def test_cluster_points_serial_pass_starts_at_the_first_row_that_met_no_early_group(threads):
    """After the parallel pass, the serial pass starts at the first row (past row 4 096) that met
    none of the first rows' groups: rows before it are never revisited, rows after it that met
    one keep it. Two groups fill the first 15 000 rows; new groups appear from row 15 000 on,
    interleaved with old members (the greedy sweeps decide which row is a centre)."""
    rng = np.random.default_rng(5)
    centres = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 2.0]])
    which = np.concatenate([rng.integers(0, 2, 15000), rng.integers(0, 5, 5000)])
    pts = centres[which] + rng.uniform(-1e-5, 1e-5, (20000, 2))
    reps, idx = fc.cluster_points(pts, 1e-3, threads=threads)
    ref = _greedy_sweeps(pts, 1e-3)
    assert idx.dtype == np.int32 and np.array_equal(idx, ref) and len(reps) == 5
    np.testing.assert_allclose(reps[ref[15000 + np.argmax(which[15000:] == 4)]], centres[4], atol=1e-5)


@pytest.mark.parametrize("batch", [1000, 5000])
def test_grouping_fed_in_batches_is_the_greedy_grouping(batch):
    """fc.cluster_points' groups built batch by batch (as fa.basins feeds its chunks): the same
    groups, first rows and representatives as the greedy sweeps over all rows at once."""
    rng = np.random.default_rng(3)
    pts = rng.integers(0, 100, (12000, 2)) * 0.7e-3 + rng.uniform(-2e-4, 2e-4, (12000, 2))
    g = Grouping(2, False, 1e-3, average=5)
    idx = np.concatenate([g.add(pts[i:i + batch], threads=2) for i in range(0, len(pts), batch)])
    ref = _greedy_sweeps(pts, 1e-3)
    assert np.array_equal(idx, ref) and g.nc == ref.max() + 1
    assert np.array_equal(g.first_rows(), [np.argmax(ref == k) for k in range(g.nc)])
    for k in (0, 17, g.nc - 1):
        np.testing.assert_allclose(g.representatives()[k], pts[ref == k][:5].mean(axis=0), rtol=1e-14)


@pytest.mark.parametrize("n, threads", [(3000, 1), (12000, 1), (12000, 2)])
def test_cluster_points_matches_the_greedy_definition_on_chained_points(n, threads):
    """Points on a lattice of spacing ≈ tol, where which row is a centre decides the groups (no
    clean separation): the C grouping equals the repeated sweeps exactly — serially (n ≤ 4 096)
    and through its parallel pass, where hundreds of groups are first met after row 4 096, on
    one thread and on two; a group's representative is the mean of its first `average`
    members."""
    rng = np.random.default_rng(3)
    side = 40 if n <= 4096 else 100
    pts = rng.integers(0, side, (n, 2)) * 0.7e-3 + rng.uniform(-2e-4, 2e-4, (n, 2))
    reps, idx = fc.cluster_points(pts, 1e-3, average=5, threads=threads)
    ref = _greedy_sweeps(pts, 1e-3)
    assert np.array_equal(idx, ref) and len(reps) == ref.max() + 1 > 100
    if n > 4096:
        assert ref[4096:].max() > ref[:4096].max() + 100      # groups made in the serial tail
    for k in (0, 17, len(reps) - 1):
        np.testing.assert_allclose(reps[k], pts[ref == k][:5].mean(axis=0), rtol=1e-14)
    with pytest.raises(ValueError, match="finite"):
        fc.cluster_points([[0.0, np.nan]], 1e-3)
    with pytest.raises(ValueError, match=r"shape \[N, D\]"):
        fc.cluster_points([0.0, 1.0], 1e-3)
