"""Sweeps: the cost of fa.sweep's machinery (chunks as Dask tasks, a Zarr store, an xarray
Dataset) against one direct fa.basins call on the same starts, and its scaling over Dask worker
processes, in one run.

Problems on the double well E = (x² − 1)² + y², h = 0.1, starts on a square grid over [−2, 2]², cut
into 16 chunks of rows (the issue's setting: 10⁶ starts in 16 chunks):
  GD: 1000 × 1000 starts, at most 1000 iterations (light: ~1 µs a start, so storage shows);
  IGR flow: 500 × 500 starts, RK4 with dt = 0.05 to T = 20 (heavier: ~10 µs a start).
  (a) overhead: fa.basins (one batch, 2 OpenMP threads) against fa.sweep in memory and with a
      Zarr store, in-process (one chunk at a time, 2 OpenMP threads per chunk); the ratio - 1 is
      the machinery's overhead (target ≤ 10%). Label agreement: the sweep's per-start labels
      against fa.basins' (matched through the critical points).
  (b) scaling: fa.sweep on a dask.distributed LocalCluster of 1 and 2 worker processes (one
      thread each, single-threaded kernels), with a store, and in-process with 2 chunk threads.
      Cluster start-up is not timed.
Medians of repeats; every store is new (nothing is reused).

    python benchmarks/bench_sweep.py [--quick] [--repeats 3]
"""
import argparse
import shutil
import tempfile
import time

import numpy as np

import flowcore as fc
from flowcore import analysis as fa
from _common import table, write_json


def median(fn, repeats):
    fn()                                     # warm-up: kernels compiled, caches filled
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def problems(quick):
    """(name, method value, grid size n, rest test)."""
    n_gd, n_igr = (250, 120) if quick else (1000, 500)
    rest = fc.RestTest(steps=1000)
    return [("GD, h = 0.1, ≤ 1000 iterations", fc.GD(0.1), n_gd, rest),
            ("IGR flow, h = 0.1, RK4 dt = 0.05 to T = 20", fc.IGR(0.1, solver=fc.RK4(0.05), t_max=20.0), n_igr, rest)]


def overhead(loss, model, n, rest, repeats, fresh):
    """fa.basins against fa.sweep (in memory and with a store) on n × n starts in 16 chunks."""
    grid = ((-2.0, 2.0, n), (-2.0, 2.0, n))
    axes = {"y": grid[1], "x": grid[0]}
    kw = dict(rest=rest, compute=fc.Compute(chunk={"y": -(-n // 16)}), progress=False)

    def with_store(**extra):
        ds = fa.sweep(loss, model, axes, store=fresh(), **kw, **extra)
        ds.label.values                      # read back: what a user of the store pays
        return ds

    b = fa.basins(loss, model, grid, rest=rest)
    s = fa.sweep(loss, model, axes, **kw)
    crit = np.array(eval(s.attrs["critical_points"]))[0]
    want = np.full(b.labels.shape, -99)
    for e in b.entries:
        if e.critical is not None:
            want[b.labels == e.label] = int(np.argmin(np.max(np.abs(crit - e.critical.point), axis=1)))
        elif e.label < 0:
            want[b.labels == e.label] = e.label
    agree = float(np.mean(want == s.label.values))
    t_basins = median(lambda: fa.basins(loss, model, grid, rest=rest), repeats)
    t_memory = median(lambda: fa.sweep(loss, model, axes, **kw), repeats)
    t_store = median(with_store, repeats)
    t_lean = median(lambda: with_store(outputs=["label", "nsteps", "imag_residual"]), repeats)
    rows = [dict(run="fa.basins, one batch", seconds=t_basins, vs_basins=1.0, label_agreement=1.0),
            dict(run=f"fa.sweep in memory, {s.attrs['chunks_computed']} chunks", seconds=t_memory,
                 vs_basins=t_memory / t_basins, label_agreement=agree),
            dict(run="fa.sweep, Zarr store, all 7 outputs", seconds=t_store, vs_basins=t_store / t_basins,
                 label_agreement=agree),
            dict(run="fa.sweep, Zarr store, basins' outputs (label, nsteps, imag_residual)", seconds=t_lean,
                 vs_basins=t_lean / t_basins, label_agreement=agree)]
    from distributed import Client, LocalCluster
    scaling = [dict(run="in-process, 2 chunk threads (1 OpenMP thread each)",
                    seconds=median(lambda: with_store(workers=2), repeats))]
    for procs in (1, 2):
        with LocalCluster(n_workers=procs, threads_per_worker=1, processes=True, dashboard_address=None) as c, \
                Client(c) as client:
            t = median(lambda: with_store(client=client), repeats)
        scaling.append(dict(run=f"LocalCluster, {procs} worker process(es)", seconds=t))
    for r in scaling:
        r["speedup_vs_1_process"] = scaling[1]["seconds"] / r["seconds"]
    return rows, scaling


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    loss = fc.losses.double_well()
    tmp = tempfile.mkdtemp()

    def fresh():
        return tempfile.mkdtemp(dir=tmp) + "/s.zarr"

    results = []
    for name, model, n, rest in problems(args.quick):
        rows, scaling = overhead(loss, model, n, rest, args.repeats, fresh)
        print(f"\n{name}: {n}×{n} starts on the double well, 16 chunks")
        print(table(rows, ["run", "seconds", "vs_basins", "label_agreement"]))
        print()
        print(table(scaling, ["run", "seconds", "speedup_vs_1_process"]))
        results += [dict(problem=name, starts=n * n, **r) for r in rows + scaling]
    shutil.rmtree(tmp, ignore_errors=True)
    path = write_json("bench_sweep", results, quick=args.quick, repeats=args.repeats)
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
