"""fa.sweep: labels against closed forms, identical results however the grid is cut and wherever it
runs (in-process, a LocalCluster of 2 processes, after a worker or the client is killed), damaged
chunks detected and recomputed, bad input refused before any work."""
import os
import re
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import flowcore as fc
from flowcore import analysis as fa
from flowcore.analysis.sweep import CYCLE, DIGEST
from flowcore.analysis.basins import ESCAPED

pytest.importorskip("dask")
pytest.importorskip("zarr")
pytest.importorskip("xarray")

# chaotic GD on w⁴ − 2w² (λ = 8 at the minima; lr·λ ≈ 3): bounded orbits that never rest, so each
# start costs the whole budget and chunks take long enough to be interrupted
CHAOS = dict(method="gd", axes={"lr": [0.36, 0.37, 0.38], "x": (-1.2, 1.2, 1600)}, rest=fc.RestTest(steps=100_000))
CHAOS_CHUNKS = fc.Compute(chunk={"lr": 1, "x": 400})


def same(a, b):
    assert set(a.data_vars) == set(b.data_vars)
    for k in a.data_vars:
        np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=k)
    for d in a.dims:
        if d in a.coords:
            np.testing.assert_array_equal(a[d].values, b[d].values)


def complete_chunks(store):
    import zarr
    try:
        digests = zarr.open_group(store, mode="r")[DIGEST][...]
    except (KeyError, FileNotFoundError):      # the store is being created
        return 0
    return int(np.sum(np.any(digests != 0, axis=-1)))


# ------------------------------------------------------------------------------ closed forms
def test_quadratic_labels_and_escape_times_closed_form():
    """E = λx²/2: GD converges iff hλ < 2, cycles at hλ = 2, escapes past it, at the first n with
    |1 − hλ|ⁿ|x₀| > R."""
    lam, R = 3.0, 1e3
    lrs = np.array([0.1, 0.5, 0.6, 2 / lam, 0.7, 0.9])
    xs = np.array([-2.0, -0.3, 0.7, 1.5])
    ds = fa.sweep(fc.losses.quadratic_1d(lam), "gd", {"lr": lrs, "x": xs}, rest=fc.RestTest(steps=5000, escape_radius=R), progress=False)
    assert ds.attrs["critical_points"] == "[[[0.0]]]"
    for i, h in enumerate(lrs):
        q = abs(1 - h * lam)
        for j, x0 in enumerate(xs):
            lab, et = int(ds.label[i, j]), float(ds.escape_time[i, j])
            if q < 1:
                assert lab == 0 and np.isnan(et)
            elif q == 1:
                assert lab == CYCLE and int(ds.period[i, j]) == 2
            else:
                n = int(np.ceil(np.log(R / abs(x0)) / np.log(q)))
                n += q ** n * abs(x0) <= R          # the first n with |x_n| > R
                assert lab == ESCAPED and et == n, (h, x0)


def test_loss_parameter_axis_and_flow_closed_form():
    """A parameter axis (λ of λx²/2): the NGF rests at 0 for every λ, lr; GD iff hλ < 2."""
    axes = {"lam": [0.5, 2.0, 5.0], "lr": [0.2, 0.5], "x": [-1.0, 0.5]}
    mk = lambda lam: fc.losses.quadratic_1d(lam)            # noqa: E731
    gd = fa.sweep(mk, "gd", axes, progress=False)
    h = gd.lr.values[None, :, None]
    lam = gd.lam.values[:, None, None]
    np.testing.assert_array_equal(gd.label.values == 0, np.broadcast_to(h * lam < 2, gd.label.shape))
    ngf = fa.sweep(mk, fc.NGF(1.0, t_max=40.0), axes, progress=False)
    assert np.all(ngf.label.values == 0) and np.all(np.abs(ngf.final.values) < 1e-5)


def test_model_axis_matches_basins_on_double_well():
    """Maps and flows in one sweep (tol given), labelled per start as fa.basins labels them."""
    loss = fc.losses.double_well()
    grid = ((-1.5, 1.5, 9), (-1.0, 1.0, 7))
    rest = fc.RestTest(tol=1e-8, steps=2000)
    ds = fa.sweep(loss, None, {"model": [fc.GD(0.1), fc.IGR(0.1)], "y": grid[1], "x": grid[0]}, rest=rest,
                  progress=False)
    crit = np.array(eval(ds.attrs["critical_points"]))[0]
    for k, model in enumerate(["gd", "igr"]):
        b = fa.basins(loss, fc.method(model, lr=0.1), grid, rest=rest)
        for e in b.entries:
            mask = b.labels == e.label
            if e.critical is not None:
                want = int(np.argmin(np.max(np.abs(crit - e.critical.point), axis=1)))
                assert np.all(ds.label.values[k][mask] == want), (model, e.name)
            else:
                assert np.all(ds.label.values[k][mask] < 0)


# ------------------------------------------------------------------------------ one answer everywhere
def test_chunking_does_not_change_results():
    loss = fc.losses.double_well()
    axes = {"lr": [0.1, 0.3], "y": (-1.5, 1.5, 13), "x": (-2.0, 2.0, 17)}
    a = fa.sweep(loss, "gd", axes, progress=False)
    b = fa.sweep(loss, "gd", axes, compute=fc.Compute(chunk={"lr": 1, "y": 5, "x": 4}, workers=2), progress=False)
    same(a, b)
    f1 = fa.sweep(loss, fc.IGR(1.0, t_max=20.0), axes, progress=False)
    f2 = fa.sweep(loss, fc.IGR(1.0, t_max=20.0), axes, compute=fc.Compute(chunk={"lr": 2, "y": 3, "x": 17}), progress=False)
    same(f1, f2)


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c, \
            distributed.Client(c) as client:
        yield client


def test_cluster_equals_in_process(cluster, tmp_path):
    loss = fc.losses.double_well()
    axes = {"lr": [0.1, 0.3], "y": (-1.5, 1.5, 13), "x": (-2.0, 2.0, 17)}
    here = fa.sweep(loss, "gd", axes, progress=False)
    there = fa.sweep(loss, "gd", axes, store=tmp_path / "gd.zarr", client=cluster, compute=fc.Compute(chunk={"y": 4}), progress=False)
    same(here, there)
    pf_here = fa.sweep(loss, fc.PF(1.0, t_max=15.0), {"lr": [0.1, 0.2], "y": (-1, 1, 5), "x": (-2, 2, 9)}, progress=False)
    pf_there = fa.sweep(loss, fc.PF(1.0, t_max=15.0), {"lr": [0.1, 0.2], "y": (-1, 1, 5), "x": (-2, 2, 9)}, store=tmp_path / "pf.zarr", client=cluster, compute=fc.Compute(chunk={"x": 3}), progress=False)
    same(pf_here, pf_there)


def test_killed_worker_sweep_completes_identically(cluster, tmp_path):
    store = tmp_path / "chaos.zarr"
    out = {}
    job = threading.Thread(target=lambda: out.update(ds=fa.sweep(fc.losses.quartic_1d(), **CHAOS, compute=CHAOS_CHUNKS,
                                                                 client=cluster, store=store, progress=False)))
    job.start()
    t0 = time.time()
    while not (store.exists() and complete_chunks(store) >= 1):
        assert time.time() - t0 < 120, "no chunk finished"
        time.sleep(0.05)
    victim = next(iter(cluster.run(os.getpid).values()))
    os.kill(victim, signal.SIGKILL)
    killed_at = complete_chunks(store)
    job.join(300)
    assert killed_at < 12 and not job.is_alive()
    same(out["ds"].load(), fa.sweep(fc.losses.quartic_1d(), **CHAOS, progress=False))


def test_killed_client_rerun_computes_only_missing_chunks(tmp_path):
    store = tmp_path / "chaos.zarr"
    script = textwrap.dedent(f"""
        import flowcore as fc
        from flowcore import analysis as fa
        fa.sweep(fc.losses.quartic_1d(), "gd", {CHAOS["axes"]!r}, rest=fc.RestTest(steps=100_000),
                 compute=fc.Compute(chunk={CHAOS_CHUNKS.chunk!r}, threads=1), store={str(store)!r}, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path)
    t0 = time.time()
    while not (store.exists() and complete_chunks(store) >= 2):
        assert proc.poll() is None and time.time() - t0 < 120, "the sweep ended or stalled before the kill"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = complete_chunks(store)
    assert 2 <= done < 12
    again = fa.sweep(fc.losses.quartic_1d(), **CHAOS, compute=CHAOS_CHUNKS, store=store, progress=False)
    assert (again.attrs["chunks_reused"], again.attrs["chunks_computed"]) == (done, 12 - done)
    same(again.load(), fa.sweep(fc.losses.quartic_1d(), **CHAOS, progress=False))


def test_ctrl_c_says_which_chunks_were_kept(tmp_path):
    """`flowcore sweep` stopped by Ctrl-C said "nothing was written" while its finished chunks were
    in the store (and are reused by a rerun): it now says how many."""
    store = tmp_path / "chaos.zarr"
    cmd = [sys.executable, "-m", "flowcore.cli", "sweep", "--loss", "quartic_1d", "--values", "lr=0.36,0.37,0.38",
           "--axis", "x=-1.2,1.2,1600", "--steps", "100000", "--chunk", "lr=1", "--chunk", "x=400",
           "--store", str(store)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not (store.exists() and complete_chunks(store) >= 1):
        assert proc.poll() is None and time.time() - t0 < 120, "the sweep ended or stalled"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    kept = complete_chunks(store)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert f"{kept} of 12 chunks are complete in the store" in err and "nothing was written" not in err


# ------------------------------------------------------------------------------ damaged stores
def _chunk_file(store, var, index):
    return store / var / "c" / os.path.join(*map(str, index))


def test_corrupted_and_foreign_chunks_are_recomputed(tmp_path):
    loss = fc.losses.double_well()
    axes = {"lr": [0.1, 0.3], "y": (-1.5, 1.5, 8), "x": (-2.0, 2.0, 8)}
    kw = dict(compute=fc.Compute(chunk={"lr": 1, "y": 4, "x": 4}), progress=False)
    ref = fa.sweep(loss, "gd", axes, store=tmp_path / "a.zarr", **kw).load()
    other = tmp_path / "b.zarr"
    fa.sweep(loss, "gd", {**axes, "lr": [0.2, 0.4]}, store=other, **kw)
    store = tmp_path / "a.zarr"
    _chunk_file(store, "label", (0, 1, 0)).write_bytes(b"\x00garbage\xff" * 7)            # corrupted
    os.replace(_chunk_file(other, "nsteps", (1, 0, 1)), _chunk_file(store, "nsteps", (1, 0, 1)))   # foreign
    _chunk_file(store, "final", (1, 1, 1, 0)).unlink()                                   # lost
    with pytest.raises(ValueError, match="3 of 8 chunks are missing or damaged"):
        fa.open_sweep(store)
    again = fa.sweep(loss, "gd", axes, store=store, **kw)
    assert (again.attrs["chunks_reused"], again.attrs["chunks_computed"]) == (5, 3)
    same(again.load(), ref)
    same(fa.open_sweep(store).load(), ref)


def test_changed_definition_is_refused_unless_overwrite(tmp_path):
    loss = fc.losses.double_well()
    store = tmp_path / "s.zarr"
    fa.sweep(loss, "gd", {"lr": [0.1], "x": (-1, 1, 5)}, store=store, progress=False)
    with pytest.raises(ValueError, match="holds another sweep.*overwrite=True"):
        fa.sweep(loss, "gd", {"lr": [0.1], "x": (-1, 1, 5)}, rest=fc.RestTest(steps=999), store=store, progress=False)
    ds = fa.sweep(loss, "gd", {"lr": [0.1], "x": (-1, 1, 5)}, rest=fc.RestTest(steps=999), store=fa.Store(store, overwrite=True), progress=False)
    assert ds.attrs["chunks_computed"] == 1


def _edit_attrs(store, edit):
    import json as js
    meta = store / "zarr.json"
    d = js.loads(meta.read_text())
    edit(d["attributes"]["flowcore_sweep"])
    meta.write_text(js.dumps(d))


def test_an_edited_definition_is_not_trusted(tmp_path):
    """The store's definition is checked against its digest recomputed from what is read (not the
    digest stored beside it), and every readable attribute against the definition: an edited
    learning rate or critical point is refused, never shown."""
    loss = fc.losses.double_well()
    store = tmp_path / "s.zarr"
    fa.sweep(loss, fc.GD(0.3), {"x": (-1, 1, 5)}, store=store, progress=False)
    assert float(fa.open_sweep(store).attrs["lr"]) == 0.3
    pristine = (store / "zarr.json").read_text()

    def lr_in_definition(a):
        a["definition"]["lr"] = (0.9).hex()
        a["lr"] = 0.9
    _edit_attrs(store, lr_in_definition)
    with pytest.raises(ValueError, match="does not match its digest"):
        fa.open_sweep(store)
    with pytest.raises(ValueError, match="does not match its digest"):        # nor resumed from
        fa.sweep(loss, fc.GD(0.3), {"x": (-1, 1, 5)}, store=store, progress=False)
    (store / "zarr.json").write_text(pristine)

    def critical_copy(a):
        a["critical_points"][0][0][0] = 7.0
    _edit_attrs(store, critical_copy)
    with pytest.raises(ValueError, match="critical_points disagree"):
        fa.open_sweep(store)
    (store / "zarr.json").write_text(pristine)
    assert fa.open_sweep(store).attrs["chunks_reused"] == 1


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kw, match", [
    (dict(axes={"lr": [0.1], "x": []}), "axis 'x' has zero length"),
    (dict(axes={"lr": [0.1], "x": (1, 2, 0)}), "axis 'x'"),
    (dict(method="gdd"), "model 'gdd' does not exist.*did you mean gd"),
    (dict(axes={"lr": [0.1], "z": [1.0]}), "not lr, x, y or model"),
    (dict(axes={"x": [0.0]}), "learning rate is required"),
    (dict(outputs=["lable"]), "outputs must be some of"),
    (dict(compute=fc.Compute(chunk={"q": 2})), "chunks must be a dict"),
    (dict(axes={"lr": [0.1, -0.2], "x": [0.0]}), "learning rates > 0"),
])
def test_bad_input_is_refused_before_work(tmp_path, kw, match):
    args = dict(method="gd", axes={"lr": [0.1], "x": [0.0, 1.0]}, store=tmp_path / "s.zarr", progress=False)
    args.update(kw)
    with pytest.raises((ValueError, TypeError), match=match):
        fa.sweep(fc.losses.double_well(), **args)
    assert not (tmp_path / "s.zarr").exists()


def test_unwritable_or_foreign_store_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    for store, match in ((tmp_path / "file" / "s.zarr", "cannot create the folder"),
                         (tmp_path / "mine", "not a flowcore sweep store")):
        with pytest.raises(ValueError, match=match):
            fa.sweep(fc.losses.double_well(), fc.GD(0.1), {"x": [0.0]}, store=store, progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_loss_without_expression_is_refused():
    py = fc.Loss.from_callable(lambda t: t @ t, lambda t: 2 * t, dim=2)
    with pytest.raises(ValueError, match="no sympy expression"):
        fa.sweep(py, fc.GD(0.1), {"x": [0.0]}, progress=False)


def test_losses_pickle_by_what_defines_them():
    x = np.random.default_rng(0).normal(size=(7, 2)) + 0.3j
    for loss in (fc.losses.double_well(), fc.losses.quadratic([[2, 1], [1, 3]], [1, 0]),
                 fc.losses.rosenbrock(b=10), fc.Loss.from_expr("(x**2 - 1)**2 + 2*y**2")):
        back = pickle.loads(pickle.dumps(loss))
        assert (back.kind, back.name, back.dim) == (loss.kind, loss.name, loss.dim)
        np.testing.assert_array_equal(back.hess(x), loss.hess(x))
        np.testing.assert_array_equal(back.third(x, x), loss.third(x, x))
    zoo = fc.losses.double_well()
    with pytest.raises(TypeError, match="cannot be sent to another process"):
        pickle.dumps(fc.Loss.from_capsule(zoo.capsule, keep=zoo))


# ------------------------------------------------------------------------------ CLI and figure
def test_cli_sweep_json_resume_and_figure(tmp_path):
    import json
    store, png = tmp_path / "s.zarr", tmp_path / "s.png"
    cmd = [sys.executable, "-m", "flowcore.cli", "sweep", "--loss", "quadratic_1d", "--values", "lr=0.2,1.0,2.5",
           "--axis", "x=-1,1,5", "--store", str(store), "--steps", "200"]
    r = subprocess.run(cmd + ["-o", str(png), "--json"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["dims"] == ["lr", "x"] and d["coords"]["lr"] == [0.2, 1.0, 2.5]
    L = np.array(d["label"])                                # λ = 1: rest at 0 iff h < 2, escape past
    assert np.all(L[:2] == 0) and np.all(L[2][[0, 1, 3, 4]] == -1) and L[2][2] == 0   # x = 0 rests at once
    assert png.stat().st_size > 10_000 and d["chunks_computed"] == 1
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and "chunks computed 0, reused 1" in r.stdout
    r = subprocess.run(cmd[:6] + ["--axis", "lr=1:2", "--lr", "0.1"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and "--axis 'lr=1:2'" in r.stderr


@pytest.mark.parametrize("argv, says", [
    (["--axis", "lr=0.02,0.42"], "expected 3 numbers"),         # lo,hi with n forgotten
    (["--axis", "lr=0.02,0.42,60,1"], "expected 3 numbers"),
    (["--axis", "lr=0.02:0.42:60"], "--axis lr=0.02,0.42,60"),   # the old form names the new one
    (["--axis", "model=gd,pf"], "--values model=gd,pf"),
    (["--values", "lr=0.1,abc"], "cannot read the values"),
])
def test_cli_sweep_axes_have_one_range_syntax(argv, says):
    """--axis name=lo,hi,n is a range, as --grid's lo,hi,n; values are a flag of their own: lr=0.02,0.42,60
    ran the three values 0.02, 0.42 and 60 before."""
    from flowcore.cli import build_parser, _sweep_axis
    args = build_parser().parse_args(["sweep", "--loss", "quadratic_1d", *argv])
    with pytest.raises(ValueError, match=re.escape(says)):
        for a in args.axes:
            _sweep_axis(a)
    args = build_parser().parse_args(["sweep", "--loss", "quadratic_1d", "--axis", "lr=0.02,0.42,60",
                                      "--values", "x=0.5,1"])
    assert [_sweep_axis(a) for a in args.axes] == [("lr", (0.02, 0.42, 60)), ("x", [0.5, 1.0])]


def test_plot_sweep_panels_and_legend():
    ds = fa.sweep(fc.losses.double_well(), "gd", {"lr": [0.1, 0.3], "y": (-2, 2, 9), "x": (-2, 2, 11)}, progress=False)
    fig = fa.plot.sweep(ds, title="double well")
    titles = [ax.get_title() for ax in fig.axes]
    assert "lr = 0.1" in titles and "lr = 0.3" in titles
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert any(t.startswith("min (1, 0)") for t in legend) and any(t.startswith("cycle") for t in legend)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_can_sweep(tmp_path):
    """After a sweep, a forked child (multiprocessing's default on Linux) runs its own: the writer
    loop and the chunk pool are the child's, not dead copies of the parent's threads. In a fresh
    interpreter: a test worker that has imported JAX (multithreaded) must not fork."""
    script = textwrap.dedent(f"""
        import os, faulthandler
        import flowcore as fc
        import flowcore.analysis as fa
        loss = fc.losses.double_well()
        fa.sweep(loss, fc.GD(0.1), {{"x": (-1, 1, 5)}}, store={str(tmp_path / "a.zarr")!r}, progress=False)
        pid = os.fork()
        if pid == 0:
            faulthandler.dump_traceback_later(60, exit=True)
            ds = fa.sweep(loss, fc.GD(0.1), {{"x": (-1, 1, 7)}}, store={str(tmp_path / "b.zarr")!r}, progress=False)
            labels = ds.label.compute(scheduler="synchronous").values     # not through an inherited Client
            os._exit(0 if labels.tolist() == [0, 0, 0, 2, 1, 1, 1] else 3)
        _, status = os.waitpid(pid, 0)
        raise SystemExit(os.waitstatus_to_exitcode(status))
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240,
                       cwd=tmp_path)           # not the checkout: the installed package, as CI runs it
    assert r.returncode == 0, r.stderr[-2000:]
