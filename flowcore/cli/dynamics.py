"""Where GD and its flows go: orbit diagrams, basins, phase portraits, sweeps."""
import json

import numpy as np

from flowcore.cli._common import (COUNT, NATURAL, POSITIVE, _add_loss, _fmt, _jsonable, _loss_of, _method,
                                   _output, _point, _points, _ranges)


def _sweep_axis(item):
    """An axis from --axis name=lo,hi,n (a range: n points from lo to hi, the one range syntax of
    the CLI) or --values name=a,b,c (these values; model names for 'model')."""
    kind, text = item
    name, sep, spec = text.partition("=")
    name, flag = name.strip(), "--axis" if kind == "range" else "--values"
    how = ("write --axis name=lo,hi,n for a range (e.g. --axis lr=0.02,0.42,300) or --values name=a,b,c for "
           "values (e.g. --values lr=0.1,0.2 or --values model=gd,igr)")
    if not sep or not name or not spec.strip():
        raise ValueError(f"{flag} {text!r}: {how}")
    if kind == "values":
        if name == "model":
            return name, [m.strip() for m in spec.split(",")]
        try:
            return name, [float(v) for v in spec.split(",")]
        except ValueError:
            raise ValueError(f"{flag} {text!r}: cannot read the values; {how}") from None
    if name == "model":
        raise ValueError(f"--axis {text!r}: models are names, not a range: --values model={spec}")
    if ":" in spec:
        raise ValueError(f"--axis {text!r}: a range is lo,hi,n (as --grid): --axis {name}={spec.replace(':', ',')}")
    return name, _ranges(spec, f"--axis {name}=", 3, 1)[0]

def cmd_orbit(args):
    """GD orbit diagram over a range of learning rates, with Lyapunov exponents."""
    from flowcore import analysis as fa
    loss = _loss_of(args)
    out = _output(args.output)
    lo, hi, n = _ranges(args.lrs, "--lrs", 3, 1)[0]
    if not 0 < lo < hi:
        raise ValueError(f"--lrs: need 0 < lo < hi, got {args.lrs!r}")
    lrs = np.linspace(lo, hi, n)
    theta0 = _point(args.theta0, "--theta0", loss.dim).tolist()
    r = fa.orbit_diagram(loss, lrs, theta0, transient=args.transient, keep=args.keep, device=args.device)
    periods = r["period"]
    if out:
        fa.plot.orbit_diagram(r, title=f"GD orbit diagram: {fa.plot.tex(loss)}").savefig(out, dpi=120)
    if args.json:
        print(json.dumps({"loss": loss.name, "theta0": theta0, "transient": args.transient,
                          "lrs": r["lrs"].tolist(), "orbits": np.where(np.isfinite(r["orbits"]), r["orbits"], None).tolist(),
                          "lyapunov": [None if not np.isfinite(v) else float(v) for v in r["lyapunov"]],
                          "status": [int(s) for s in r["status"]], "period": periods, "device": r["device"]}))
        return
    # one line per run of learning rates with the same period (a table of 200 rows helps nobody)
    print(f"GD on {loss.name} from {theta0}: {n} learning rates in [{lo:g}, {hi:g}], "
          f"{args.keep} iterates kept after {args.transient}")
    print(f"{'lr from':>10} {'to':>10} {'period':>8} {'Lyapunov (min, max)':>22}")
    start = 0
    for i in range(1, len(lrs) + 1):
        if i == len(lrs) or periods[i] != periods[start]:
            ly = r["lyapunov"][start:i]
            p = periods[start]
            label = "escaped" if p is None else ("—" if p == 0 else str(p))
            span = f"({np.nanmin(ly):+.3f}, {np.nanmax(ly):+.3f})" if np.any(np.isfinite(ly)) else "-"
            print(f"{lrs[start]:10.4f} {lrs[i - 1]:10.4f} {label:>8} {span:>22}")
            start = i
    print(f"(period —: no period ≤ {args.keep // 2} in the kept iterates: chaos, or not settled yet)")

def cmd_basins(args):
    """Basins of attraction of a map or flow on a grid of starts."""
    import flowcore as fc
    from flowcore import analysis as fa
    if (args.lr is None) != (args.model == "dal"):
        raise ValueError("--lr is not used by --model dal (its rate is 2/‖Hĝ‖)" if args.model == "dal" else
                         f"--model {args.model} needs --lr, the learning rate")
    loss = _loss_of(args)
    out = _output(args.output)
    grid = _ranges(args.grid, "--grid", 3, 1 if loss.dim == 1 else 2)
    grid = grid[0] if loss.dim == 1 else grid
    plane = None
    if args.origin or args.directions:
        plane = (_point(args.origin, "--origin", loss.dim).tolist() if args.origin else None,
                 [_point(d, "--directions", loss.dim).tolist() for d in args.directions.split(";")]
                 if args.directions else None)
    b = fa.basins(loss, _method(args.model, args.lr, args.t_max), grid, rest=fc.RestTest(steps=args.steps),
                  plane=plane, compute=fc.Compute(device=args.device), progress=None if not args.json else False)
    Sb, Sbb, nb = b.entropy(box=args.box) if min(b.labels.shape) >= args.box else (None,) * 3
    if out:
        rate = "" if args.lr is None else f", lr = {args.lr:g}"
        fa.plot.basins(b, title=f"{fa.plot.tex(loss)}: basins of {args.model}{rate}").savefig(out, dpi=120)
    if args.json:
        d = b.as_dict(per_start=True)
        d.update(loss=loss.name, Sb=Sb, Sbb=None if Sbb is None or not np.isfinite(Sbb) else Sbb, boundary_boxes=nb)
        print(json.dumps(fa.as_json(d)))
    else:
        print(f"{'label':>5}  {'outcome':45s} {'starts':>9}  {'share':>7}")
        for e in b.entries:
            print(f"{e.label:5d}  {e.name:45s} {e.count:9d}  {100 * e.fraction:6.2f}%")
        if loss.dim > 2:
            o, (u, w) = b.settings["origin"], b.settings["directions"]
            print(f"starts on the plane origin + x·u + y·v, origin {_fmt(np.array(o))}, u = {_fmt(np.array(u))}, "
                  f"v = {_fmt(np.array(w))}" + ("" if args.origin or args.directions else
                                                  " (the default; choose it with --origin and --directions)"))
        if Sb is not None:
            size = f"{args.box}x{args.box}" if b.labels.ndim == 2 else f"{args.box} points"
            sbb = (f"{Sbb:.4f} ({nb} boxes of {size})" if nb else
                   f"undefined (no {size} box holds two outcomes: no boundary at this resolution)")
            print(f"basin entropy Sb = {Sb:.4f}, boundary basin entropy Sbb = {sbb}")

def cmd_portrait(args):
    """Phase portrait: contours, streamlines, critical points, GD iterates and flow trajectories."""
    from flowcore import analysis as fa
    loss = _loss_of(args)
    out = _output(args.output)
    box = _ranges(args.box, "--box", 2, loss.dim)
    starts = _points(args.starts, loss.dim, "--starts").real if args.starts else None
    gd_lrs = _point(args.gd_lrs, "--gd-lrs").tolist() if args.gd_lrs else None
    d = fa.portrait(loss, box, args.lr, flow=args.flow, starts=starts, gd_lrs=gd_lrs, steps=args.steps)
    if out:
        fa.plot.portrait(d, title=f"{fa.plot.tex(loss)}: {args.flow} and GD (lr = {args.lr:g})").savefig(out, dpi=120)
        if args.flow.startswith("pf") and starts is not None:
            stem = out.rsplit(".", 1)
            fa.plot.pf_panels(d, title=f"{fa.plot.tex(loss)}: {args.flow} vs GD, lr = {args.lr:g} (one colour per start)").savefig(stem[0] + "_reim." + (stem[1] if len(stem) > 1 else "png"), dpi=120)
    if args.json:
        keep = ("loss", "lr", "flow", "critical", "starts", "gd_lrs", "gd", "t", "trajectories", "status",
                "box", "grid", "E", "field")
        print(json.dumps(fa.as_json({k: d[k] for k in keep if k in d})))
    else:
        for c in d["critical"]:
            print(f"{c['kind']:10s} at {_fmt(c['point'])}")
        for n, st in enumerate(d["status"]):
            end = d["trajectories"][n, -1]
            print(f"start {n}: {args.flow} at t = {d['t'][-1]:g}: {_fmt(end)} ({st})")

def cmd_sweep(args):
    """A grid over named axes run in chunks (Dask), stored (Zarr) and summarised."""
    import flowcore as fc
    from flowcore import analysis as fa
    loss = _loss_of(args)
    out = _output(args.output)
    axes = dict(_sweep_axis(a) for a in args.axes)
    if not axes:
        raise ValueError("give the sweep's axes: --axis name=lo,hi,n (ranges) and/or --values name=a,b,c")
    chunks = {}
    for c in args.chunk or []:
        k, _, v = c.partition("=")
        if not v.strip().isdigit():
            raise ValueError(f"--chunk {c!r}: write --chunk axis=length, e.g. --chunk lr=50")
        chunks[k.strip()] = int(v)
    names = axes["model"] if "model" in axes else [args.model]
    if args.lr is not None and "lr" in axes:
        raise ValueError("give the learning rate either as --lr or as an axis lr=..., not both")
    if args.lr is None and "lr" not in axes and any(m != "dal" for m in names):
        raise ValueError("a learning rate is required: --lr, or an axis --axis lr=lo,hi,n")
    rate = 1.0 if args.lr is None else args.lr            # (an 'lr' axis replaces each method's rate)
    values = [_method(m, rate, args.t_max) for m in names]
    if "model" in axes:
        axes["model"], method = values, None
    else:
        method = values[0]
    if args.scheduler and args.processes:
        raise ValueError("give --scheduler (an existing cluster) or --processes (a local one), not both")
    client = cluster = None
    if args.scheduler or args.processes:
        if not args.store:
            raise ValueError("a sweep on a cluster (--scheduler or --processes) needs --store")
        from distributed import Client, LocalCluster
        if args.processes:
            cluster = LocalCluster(n_workers=args.processes, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
        client = Client(args.scheduler or cluster)
    try:
        ds = fa.sweep(loss, method, axes, rest=fc.RestTest(steps=args.steps),
                      store=None if not args.store else fa.Store(args.store, args.overwrite), client=client,
                      compute=fc.Compute(device=args.device, chunk=chunks or None, workers=args.workers),
                      progress=None if not args.json else False)
        ds = ds.load()
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    if out:
        fa.plot.sweep(ds, title=f"{ds.attrs['model']} on {fa.plot.tex(loss)}").savefig(out, dpi=110)
    L = ds.label.values
    meanings = json.loads(ds.attrs["label_meanings"])
    crit = json.loads(ds.attrs["critical_points"])
    names = {int(k): v for k, v in meanings.items()}
    kinds = json.loads(ds.attrs["critical_kinds"])[0]
    shares = {int(v): float(np.mean(L == v)) for v in np.unique(L)}
    if args.json:
        d = {"loss": loss.name, "model": ds.attrs["model"], "dims": list(ds.label.dims),
             "coords": {d: _jsonable(ds[d].values) for d in ds.label.dims}, "label": L.tolist(),
             "label_meanings": meanings, "critical_points": crit, "shares": {str(k): v for k, v in shares.items()},
             "store": ds.attrs["store"], "chunks_computed": ds.attrs["chunks_computed"],
             "chunks_reused": ds.attrs["chunks_reused"], "settings": json.loads(ds.attrs["settings"])}
        print(json.dumps(fa.as_json(d)))
        return
    print(f"{'label':>5}  {'outcome':45s} {'share':>7}")
    for v, sh in shares.items():
        what = names.get(v) or f"at rest at {kinds[v]} {_fmt(np.array(crit[0][v]))}"
        print(f"{v:5d}  {what:45s} {100 * sh:6.2f}%")
    where = f" in {ds.attrs['store']}" if ds.attrs["store"] else ""
    print(f"{L.size:,} starts; chunks computed {ds.attrs['chunks_computed']}, reused {ds.attrs['chunks_reused']}{where}")


def register(sub):
    """Add this group's commands to the subparsers ``sub``."""
    o = sub.add_parser("orbit", help="GD orbit diagram and Lyapunov exponents over learning rates")
    _add_loss(o)
    o.add_argument("--lrs", required=True, help="the learning rates, a range lo,hi,n (n rates from lo to hi)")
    o.add_argument("--theta0", required=True, help="start 'x,y,...'")
    o.add_argument("--transient", type=NATURAL, default=1000,
                   help="GD iterations discarded before the orbit is recorded (default 1000)")
    o.add_argument("--keep", type=COUNT, default=100,
                   help="iterations recorded per learning rate: the orbit, and the Lyapunov average (default 100)")
    o.add_argument("--device", choices=("cpu", "gpu"), help="where GD runs (default: the GPU for 10⁴ "
                   "rates or more when CuPy sees one, else the CPU)")
    o.add_argument("-o", "--output", help="write the figure to this PNG")
    o.add_argument("--json", action="store_true", help="machine-readable output")
    o.set_defaults(func=cmd_orbit)
    bs = sub.add_parser("basins", help="basins of attraction of GD-type maps or flows on a grid")
    _add_loss(bs)
    bs.add_argument("--model", default="gd", help="a map (gd, heavy_ball, nesterov, dal) or a flow (ngf, pgf, igr, "
                    "third_order, pf, pf_np3); see flowcore.problems.models")
    bs.add_argument("--lr", type=POSITIVE, help="learning rate h (every model but dal, whose rate is 2/‖Hĝ‖)")
    bs.add_argument("--grid", required=True, help="--grid=lo,hi,nx,lo,hi,ny (or quoted 'lo,hi,nx;lo,hi,ny'; "
                    "one axis for a 1-D loss)")
    bs.add_argument("--origin", help="for D > 2: the plane's origin 'a,b,c,...'")
    bs.add_argument("--directions", help="for D > 2: two directions 'u1,u2,...;v1,v2,...'")
    bs.add_argument("--steps", type=COUNT, default=1000, help="iteration budget (flows: t_max = steps·lr)")
    bs.add_argument("--t-max", type=POSITIVE, help="time budget of a flow")
    bs.add_argument("--box", type=COUNT, default=5, help="box size of the basin entropy (default 5)")
    bs.add_argument("--device", choices=("cpu", "gpu"), help="where compiled kernels run (default: the GPU "
                    "when CuPy sees one, else the CPU)")
    bs.add_argument("-o", "--output", help="write the basin figure to this PNG")
    bs.add_argument("--json", action="store_true", help="machine-readable output")
    bs.set_defaults(func=cmd_basins)
    pt = sub.add_parser("portrait", help="phase portrait with GD iterates and flow trajectories")
    _add_loss(pt, "zoo name or expression (1-D or 2-D)")
    pt.add_argument("--lr", type=POSITIVE, required=True, help="learning rate h of the flow")
    pt.add_argument("--flow", default="ngf", help="ngf, pgf (positive gradient flow θ' = +g), igr, third_order, "
                    "pf, pf_np3 (default ngf)")
    pt.add_argument("--box", required=True, help="lo,hi,lo,hi (or quoted 'lo,hi;lo,hi')")
    pt.add_argument("--starts", help="starts 'x,y;x,y'")
    pt.add_argument("--gd-lrs", help="GD learning rates 'a,b' (default: --lr)")
    pt.add_argument("--steps", type=COUNT, default=30, help="GD steps (default 30)")
    pt.add_argument("-o", "--output", help="write the figure to this PNG (PF: also *_reim.png)")
    pt.add_argument("--json", action="store_true", help="machine-readable output")
    pt.set_defaults(func=cmd_portrait)
    sw = sub.add_parser("sweep", help="a grid over learning rates, starts and models, in chunks (Dask), "
                        "stored (Zarr) and resumable")
    _add_loss(sw)
    sw.add_argument("--model", default="gd", help="a map or a flow, as for basins (or an axis 'model')")
    sw.add_argument("--axis", action="append", dest="axes", default=[], type=lambda t: ("range", t),
                    help="an axis that is a range, name=lo,hi,n (as --grid); names lr, x, y (the start); repeat "
                         "it, first axis first (e.g. --axis lr=0.02,0.42,300 --axis x=-2,2,300)")
    sw.add_argument("--values", action="append", dest="axes", type=lambda t: ("values", t),
                    help="an axis of given values, name=a,b,c (e.g. --values model=gd,igr or --values lr=0.1,0.3), "
                         "in order among the --axis flags")
    sw.add_argument("--lr", type=POSITIVE, help="the learning rate when there is no lr axis")
    sw.add_argument("--steps", type=COUNT, default=1000, help="iteration budget (flows: t_max = steps·lr)")
    sw.add_argument("--t-max", type=POSITIVE, help="time budget of a flow")
    sw.add_argument("--store", help="a folder for the Zarr store (rerun to resume; default: in memory)")
    sw.add_argument("--overwrite", action="store_true", help="start over in a store that holds another sweep")
    sw.add_argument("--chunk", action="append", help="chunk length along an axis, axis=length (repeatable)")
    sw.add_argument("--workers", type=COUNT, default=1, help="chunks at a time in this process (default 1)")
    sw.add_argument("--processes", type=COUNT, help="run on a local Dask cluster of this many worker processes")
    sw.add_argument("--scheduler", help="run on the Dask cluster at this address (tcp://host:port)")
    sw.add_argument("--device", choices=("cpu", "gpu"), help="where compiled kernels run")
    sw.add_argument("-o", "--output", help="write the summary figure to this PNG")
    sw.add_argument("--json", action="store_true", help="machine-readable output (every label: enough to redraw)")
    sw.set_defaults(func=cmd_sweep)
