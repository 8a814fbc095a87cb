"""The flowcore command line: ``flowcore SUBCOMMAND --help``."""
import argparse
import json
import os
import re
import sys

import numpy as np


def _zoo_names():
    import flowcore as fc
    return tuple(n for n in fc.losses.__all__ if n not in ("quadratic", "linear_regression", "logistic_regression"))
    # (quadratic needs a matrix; the regressions need data)


def _loss(spec, vars=None):
    """A zoo name (e.g. 'double_well', 'rosenbrock') or an expression. A bare name that is not
    in the zoo is refused (a typo must not become a loss that is one variable)."""
    import difflib
    import re
    import flowcore as fc
    name = spec.strip()
    ZOO = _zoo_names()
    if name in ZOO:
        return getattr(fc.losses, name)() if name != "quadratic_1d" else fc.losses.quadratic_1d(1.0)
    if re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", name):
        close = difflib.get_close_matches(name, ZOO, n=2, cutoff=0.6)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise ValueError(f"--loss {name!r} is not a built-in loss: {hint}(built-ins: {', '.join(ZOO)}; "
                         "or give an expression such as 'x**2 + 25*y**2')")
    try:
        return fc.Loss.from_expr(spec, vars=vars)
    except fc.ExpressionError as exc:
        raise fc.ExpressionError(str(exc).replace("vars=", "--vars ").replace("loss:", "--loss:", 1)) from None


def _checked(kind, low=None, strict=False):
    """An argparse type: a finite number of ``kind`` (int or float), at least ``low`` (above it when
    ``strict``); argparse names the flag in its error and exits 2."""
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if kind is float and not np.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text!r} is not finite")
        if low is not None and (v <= low if strict else v < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low:g}, got {text!r}")
        return v
    parse.__name__ = "integer" if kind is int else "number"
    return parse


COUNT, NATURAL = _checked(int, 1), _checked(int, 0)          # ≥ 1, ≥ 0
FINITE, POSITIVE = _checked(float), _checked(float, 0.0, strict=True)


def _output(path, folder=None):
    """Check (and create) the folder an output goes to before any work is done: that of the PNG
    ``path``, or ``folder`` itself (the tour's -o)."""
    if path is None and folder is None:
        return None
    where = folder if folder is not None else os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(where, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"-o {path or folder}: cannot create the folder {where} ({exc.strerror})") from None
    if not os.access(where, os.W_OK):
        raise ValueError(f"-o {path or folder}: the folder {where} is not writable")
    return path


def _loss_of(args):
    return _loss(args.loss, args.vars.split(",") if args.vars else None)


def _add_loss(parser, help="zoo name or expression"):
    """--loss and --vars, shared by every subcommand that takes a loss."""
    parser.add_argument("--loss", required=True, help=help)
    parser.add_argument("--vars", help="comma-separated variable order (default: sorted names)")


def _points(text, dim, flag):
    """'x,y;x,y' or, with no ';' (which a shell splits), 'x,y,x,y' → points [n, dim] (complex as
    1+2j); for a 1-D loss 'a,b,c' is three points."""
    form = "a,b,c (one coordinate each)" if dim == 1 else "'x,y;x,y' or x,y,x,y"
    try:
        if ";" in text:
            rows = [[complex(c) if "j" in c else float(c) for c in p.split(",")] for p in text.split(";")]
        else:
            flat = [complex(c) if "j" in c else float(c) for c in text.split(",")]
            rows = [flat[i:i + dim] for i in range(0, len(flat), dim)]
    except ValueError:
        raise ValueError(f"{flag}: cannot read {text!r}; write points as {form}, complex as 1+2j") from None
    if any(len(r) != dim for r in rows):
        raise ValueError(f"{flag}: each point needs {dim} coordinate{'s' * (dim > 1)}, got "
                         f"{sorted({len(r) for r in rows})} in {text!r}; write points as {form}")
    return np.array(rows)


def _point(text, flag, dim=None):
    """One real point 'x,y,...' of finite coordinates (``dim`` of them when given)."""
    try:
        v = np.array([float(c) for c in text.split(",")])
    except ValueError:
        raise ValueError(f"{flag} {text!r}: write the coordinates as numbers separated by commas, e.g. 0.5,1") from None
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{flag} {text!r}: every coordinate must be finite")
    if dim is not None and v.size != dim:
        raise ValueError(f"{flag} {text!r}: needs {dim} coordinate{'s' * (dim > 1)}, got {v.size}")
    return v


def _jsonable(a):
    a = np.asarray(a)
    if np.iscomplexobj(a):
        return {"re": a.real.tolist(), "im": a.imag.tolist()}
    return a.tolist()


def cmd_eval(args):
    """Evaluate E, ∇E, ∇²E (and T[v,v] with --v) of a loss at points."""
    loss = _loss_of(args)
    th = _points(args.at, loss.dim, "--at")
    v = _points(args.v, loss.dim, "--v") if args.v else None
    E, g, H, T = loss.evaluate(th, v, hess=True)
    out = {"loss": loss.name, "vars": [str(s) for s in loss.vars or ()], "points": _jsonable(th),
           "value": _jsonable(E), "grad": _jsonable(g), "hess": _jsonable(H)}
    if v is not None:
        out["third"] = _jsonable(T)
    if args.json:
        print(json.dumps(out))
        return
    np.set_printoptions(precision=6, suppress=False)
    print(f"loss {loss.name}  vars {out['vars']}")
    for i, p in enumerate(th):
        print(f"θ = {p}\n  E = {E[i]}\n  g = {g[i]}\n  H = {H[i].tolist()}")
        if v is not None:
            print(f"  T[v,v] = {T[i]}")


def cmd_critical(args):
    """Critical points of a loss, their kinds and Hessian eigenvalues, and (with --lr) the
    verdict of every model of GD at each."""
    from flowcore import analysis as fa
    import warnings
    loss = _loss_of(args)
    box = [list(b) for b in _ranges(args.box, "--box", 2, loss.dim)] if args.box else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # the notes are printed below
        try:
            cps = fa.critical_points(loss, box=box, exact=not args.newton)
        except ValueError as exc:                            # the Python argument, as the flag
            lo_hi = ",".join(["lo,hi"] * loss.dim)
            raise ValueError(str(exc).replace("box=[[lo, hi], ...]", f"--box={lo_hi}")) from None
    rows = []
    for c in cps:
        row = c.as_dict()
        row["value"] = float(loss.value(c.point))
        if args.lr:
            st = fa.stability(c, args.lr, beta=args.beta)
            row["models"] = {m: v["verdict"] for m, v in st.items()}
            row["stable_lr"] = {m: [[lo, hi if np.isfinite(hi) else "inf"] for lo, hi in
                                    fa.stable_lr_interval(c, m, beta=args.beta)] for m in fa.MODELS}
        rows.append(row)
    if args.json:
        print(json.dumps({"loss": loss.name, "vars": [str(s) for s in loss.vars or ()],
                          "lr": args.lr, "method": cps.method, "complete": cps.complete,
                          "notes": cps.notes, "points": rows}))
        return
    how = {"groebner": "all of them (Gröbner basis, cross-checked by Newton)",
           "newton": "found by a Newton search (not proven complete)",
           "degenerate": "samples of a non-isolated critical set"}[cps.method]
    print(f"loss {loss.name}: {len(rows)} critical point(s), {how}" + (f"; lr = {args.lr:g}" if args.lr else ""))
    for note in cps.notes:
        print(f"  note: {note}")
    for r in rows:
        pt = ", ".join(f"{v:.6g}" for v in r["point"])
        ev = ", ".join(f"{v:.4g}" for v in r["eigenvalues"])
        print(f"  {'(' + pt + ')':<30} {r['kind']:<10}  E = {r['value']:<12.6g}  λ(H) = [{ev}]  "
              f"|g| = {r['residual']:.1e}")
        if args.lr:
            print("      " + "  ".join(f"{m}: {v}" for m, v in r["models"].items()))


def cmd_bea(args):
    """Modified equation of GD for a loss: the terms f_k of θ' = Σ h^k f_k."""
    import sympy as sp
    from flowcore import analysis as fa
    me = fa.modified_equation(args.loss, order=args.order, method=args.method, beta=args.beta,
                              vars=args.vars.split(",") if args.vars else None)
    if args.json:
        print(json.dumps({"loss": args.loss, "vars": [str(v) for v in me.vars], "order": me.order,
                          "terms": [[str(sp.factor(c)) for c in f] for f in me.terms],
                          "latex": me.latex()}))
    elif args.latex:
        print(me.latex())
    else:
        print(f"modified equation of {me.method} for E = {me.loss}:  θ' = Σ_k h^k f_k,  θ = {list(me.vars)}")
        for k, f in enumerate(me.terms):
            print(f"  f_{k} = {[sp.factor(c) for c in f]}")


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


def _ranges(text, flag, n_items, n_axes=None):
    """'a,b[,n];a,b[,n]' or, with no ';' (which a shell splits), 'a,b[,n],a,b[,n]' → a list of
    tuples (n an int)."""
    form = ",".join(["lo", "hi", "n"][:n_items])
    how = (f"write {flag} {form}" + (" (one axis: the loss is 1-D)" if flag == "--grid" else "") if n_axes == 1 else
           f"write {flag} {form},{form} (or quote it: {flag} '{form};{form}')")
    try:
        nums = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
        groups = [p.split(",") for p in text.split(";")] if ";" in text else None
    except ValueError:
        raise ValueError(f"{flag}: cannot read {text!r}; {how}") from None
    if groups is not None and any(len(g) != n_items for g in groups):
        raise ValueError(f"{flag}: each axis needs {n_items} comma-separated numbers, got {text!r}; {how}")
    if len(nums) % n_items or (n_axes is not None and len(nums) != n_items * n_axes):
        want = f"{n_items * n_axes}" if n_axes is not None else f"a multiple of {n_items}"
        raise ValueError(f"{flag}: expected {want} numbers ({n_items} per axis), got {len(nums)} in {text!r}; {how}")
    if not np.all(np.isfinite(nums)):
        raise ValueError(f"{flag}: every number must be finite, got {text!r}")
    parts = [nums[i:i + n_items] for i in range(0, len(nums), n_items)]
    if n_items == 3 and any(p[2] != int(p[2]) or p[2] < 1 for p in parts):
        raise ValueError(f"{flag}: the number of points n must be a positive integer, got {text!r}")
    return [tuple(p[:2]) + ((int(p[2]),) if n_items == 3 else ()) for p in parts]


def _method(name, lr, t_max=None):
    """The CLI's shorthand (--model NAME --lr H [--t-max T]) as a method value: the one place
    where the command line's names become values."""
    import flowcore as fc
    if name == "dal":
        return fc.method("dal")
    if fc.models.model(name).is_map:
        return fc.method(name, lr=lr)
    return fc.method(name, lr=lr, **({} if t_max is None else {"t_max": t_max}))


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


def _fmt(v):
    """A point for people: real coordinates as 0.123457, complex ones as 0.1+0.2j, 6 digits."""
    v = np.asarray(v)
    if np.iscomplexobj(v) and np.all(v.imag == 0):
        v = v.real
    parts = [f"{c:.6g}" if not np.iscomplexobj(v) else f"{c.real:.6g}{c.imag:+.6g}j" for c in v.reshape(-1)]
    return "(" + ", ".join(parts) + ")"


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


def cmd_tour(args):
    """Render the tour (lessons' exercises, the paper's analyses, SGD's models) into a folder."""
    from flowcore.analysis import tour
    _output(None, folder=args.output)                     # created and writable, before any work
    only = args.only.split(",") if args.only else None
    workers = args.workers if args.workers is not None else max(1, min(4, os.cpu_count() or 1))
    entries = tour.run(args.output, quick=args.quick, only=only, progress=not args.json, workers=workers)
    if args.json:
        print(json.dumps({"output": args.output, "items": [
            {"name": f.__name__, "png": f"{f.__name__}.png", "json": f"{f.__name__}.json", "summary": s}
            for f, s in entries]}))
    else:
        for f, s in entries:
            print(f"{f.__name__:24s} {s}")
        print(f"\nindex: {args.output}/index.md")


def cmd_track(args):
    """Tracking error ‖θ_n − θ(nh)‖ of the flows against GD for any loss."""
    from flowcore.analysis import as_json, tour
    loss = _loss_of(args)
    theta0 = _point(args.theta0, "--theta0", loss.dim).tolist()
    flows = tuple(args.flows.split(","))
    out = _output(args.output)
    fig, data, sentence = tour.track_figure(loss, args.lr, theta0, args.steps, flows)
    if out:
        fig.savefig(out, dpi=120)
    if args.json:
        print(json.dumps(as_json({**data, "summary": sentence})))
    else:
        print(sentence)
        for k in flows:
            g, n = data[k]["global"], data[k]["reached"]
            stop = "" if data[k]["status"] == "OK" else f"   (the flow stopped after n = {n}: {data[k]['status']})"
            print(f"  {k:12s} first step {data[k]['first_step_error']:.3e}   at n = {n}: {g[n]:.3e}"
                  f"   max over n: {np.nanmax(g):.3e}{stop}")


def cmd_compare(args):
    """Every continuous model of GD predicting one GD run (at the edge of stability): which predicts what."""
    from flowcore import analysis as fa
    from flowcore.analysis.eos import COMPARE_MODELS, comparison_lines, figure_data, regime_lines
    if (args.loss is None) == (args.network is None):
        raise ValueError("give --loss (with --theta0) or --network (an MLP; its start is its initialisation), not "
                         "both" if args.loss else "give --loss (with --theta0) or --network (e.g. --network regression "
                         "--widths 4 --objective mse)")
    if args.network:
        if args.theta0:
            raise ValueError("--theta0 is for --loss: a --network starts at its initialisation (choose it by --seed)")
        net = _network(args, args.network)
        loss, theta0, what = net.loss, net.theta0, f"{net!r}"[8:-1]
    else:
        if not args.theta0:
            raise ValueError("--loss needs --theta0, the start 'x,y,...'")
        loss = _loss_of(args)
        theta0 = _point(args.theta0, "--theta0", loss.dim).tolist()
        what = fa.plot.tex(loss)
    models = tuple(args.models.split(",")) if args.models else COMPARE_MODELS
    out = _output(args.output)
    r = fa.compare_models(loss, args.lr, theta0, args.steps, horizon=args.horizon, models=models, window=args.window,
                          every=args.every, rtol=args.rtol, max_steps=args.max_steps)
    if out:
        fa.plot.compare_models(r, title=f"{what}, lr = {args.lr:g}: the models against GD").savefig(out, dpi=120)
    if args.json:
        print(json.dumps(fa.as_json({"loss": loss.name, **figure_data(r), "gd": r["gd"],
                                     "trajectories": {k: m["trajectory"] for k, m in r["models"].items()},
                                     "summary": comparison_lines(r), "regime": regime_lines(r)})))
        return
    print(f"GD with lr = {args.lr:g} (2/lr = {r['edge']:g}) from {what if args.network else _fmt(np.array(theta0))}, "
          f"{args.steps} steps; "
          f"sharpness {r['sharpness'][0]:.4g} -> {r['sharpness'][-1]:.4g}")
    if "central" in r["models"]:
        print(f"central flow restarted at {r['models']['central']['defined']} of {len(range(0, args.steps, args.every))} "
              "iterates (those at or below the edge)")
    if "central" in r["models"]:
        print(regime_lines(r)[0])
    if r["central_loss_mean"] is not None:
        end = r["mean_from"] + len(r["gd_loss_mean"]) - 1
        print(f"GD's loss averaged over n = {r['mean_from']}..{end} (at the edge, central flow started): "
              f"{r['gd_loss_mean'][-1]:.6g}; the central flow's prediction averaged alike: {r['central_loss_mean'][-1]:.6g}")
    for name, m in r["models"].items():
        u = m["unfinished"]
        if u["global"] or u["restarts"]:
            print(f"{name}: stopped early (--max-steps) in {u['restarts']} restarts"
                  + (f" and from θ₀ at n = {u['global_reached']}" if u["global"] else ""))
    for mode, c in r["scored"].items():
        if c["scored"] < c["made"]:
            print(f"{mode} scored on the {c['scored']} of {c['made']} restarts where every flow predicted")
    print("best model (mean error) per prediction:")
    for line in comparison_lines(r):
        print("  " + line)


def _data_arg(args):
    """--data NAME=v1,v2,... (repeatable) and/or --data-csv FILE (a header row of names)."""
    data = {}
    for item in args.data or []:
        name, eq, values = item.partition("=")
        if not eq or not name.strip():
            raise ValueError(f"--data {item!r}: write NAME=v1,v2,... (e.g. --data x=0.5,1.2,-0.3)")
        try:
            data[name.strip()] = [float(v) for v in values.split(",")]
        except ValueError:
            raise ValueError(f"--data {item!r}: the values must be numbers separated by commas") from None
    if args.data_csv:
        try:
            table = np.genfromtxt(args.data_csv, delimiter=",", names=True)
        except OSError as exc:
            raise ValueError(f"--data-csv {args.data_csv}: cannot read it ({exc})") from None
        except ValueError as exc:
            raise ValueError(f"--data-csv {args.data_csv}: not a CSV table of numbers with a header row ({exc})") from None
        if table.dtype.names is None:
            raise ValueError(f"--data-csv {args.data_csv}: needs a header row naming the columns")
        for name in table.dtype.names:
            data[name] = np.atleast_1d(table[name]).tolist()
    if not data:
        raise ValueError("give the data with --data NAME=v1,v2,... or --data-csv FILE")
    return data


def cmd_sgd(args):
    """SGD from one start, many seeds, against its stochastic modified equations SME-1 and SME-2."""
    import flowcore as fc
    from flowcore import analysis as fa
    data = fc.DataLoss.from_expr(args.example, _data_arg(args), vars=args.vars.split(",") if args.vars else None)
    theta0 = _point(args.theta0, "--theta0")
    if theta0.shape != (data.dim,):
        raise ValueError(f"--theta0 needs {data.dim} coordinates ({', '.join(map(str, data.vars))}), got {theta0.size} "
                         "(every name of --example not given by --data is a parameter)")
    out = _output(args.output)
    starts = np.tile(theta0, (args.runs, 1))
    run = fc.descend(data, starts, fc.SGD(args.lr, batch=args.batch, beta=args.momentum, replace=not args.without_replacement, seed=args.seed), args.steps)
    t = np.arange(args.steps + 1) * args.lr
    models = {"SGD": run.iterates}
    orders = [int(o) for o in args.sme.split(",")] if args.sme else []
    sdes = {}
    for k, order in enumerate(orders):
        sde = fa.sme(data, args.lr, args.batch, order, replace=not args.without_replacement)
        sol = fc.sde_solve(sde, starts, (0, t[-1]), fc.EulerMaruyama(args.lr / args.substeps), t_eval=t, seed=args.seed + 1 + k)
        models[f"SME-{order}"] = sol.y
        sdes[f"SME-{order}"] = sde
    summary = {name: {"mean": np.nanmean(y, axis=0), "std": np.nanstd(y, axis=0)} for name, y in models.items()}
    if out:
        fa.plot.sgd_ensemble(t, summary, {k: y[:, -1] for k, y in models.items()}, data,
                             title=f"SGD on ℓ = {fa.plot.tex(data.example)}, n = {data.n}, η = {args.lr:g}, "
                                   f"B = {args.batch}, {args.runs} seeds").savefig(out, dpi=120)
    if args.json:
        keep = min(args.runs, 2000)
        print(json.dumps(fa.as_json({
            "example": str(data.example), "vars": [str(v) for v in data.vars], "n": data.n, "lr": args.lr,
            "batch": args.batch, "replace": not args.without_replacement, "momentum": args.momentum, "seed": run.seed,
            "runs": args.runs, "t": t, "status": run.message,
            "sde": {k: {"drift": [str(e) for e in s.drift], "repr": repr(s)} for k, s in sdes.items()},
            "models": {k: {"mean": v["mean"], "std": v["std"], "final_sample": models[k][:keep, -1]}
                       for k, v in summary.items()}})))
        return
    print(f"{run!r}; seed {run.seed}")
    for name, sde in sdes.items():
        g = sde.noise if sde.noise is not None else np.array(sde.diffusion.tolist(), dtype=float).round(6).tolist()
        print(f"{name}: dθ = [{', '.join(str(e.evalf(6)) for e in sde.drift)}] dt + G dW, G = {g}")
    print(f"at t = {t[-1]:g} (k = {args.steps}):")
    for name, v in summary.items():
        print(f"  {name:6s} mean {_fmt(v['mean'][-1])}  std {_fmt(v['std'][-1])}")


def _network(args, name, flag="--network"):
    """The MLP of the network options (_add_network) on the data set ``name``."""
    data = {"iris": fc_nn().iris, "digits": lambda: fc_nn().digits(args.samples),
            "regression": lambda: fc_nn().regression_2d(args.samples or 20, seed=args.seed)}
    if name not in data:
        raise ValueError(f"{flag} must be one of {', '.join(data)}, got {name!r}")
    try:
        widths = tuple(int(w) for w in args.widths.split(",")) if args.widths else ()
    except ValueError:
        raise ValueError(f"--widths {args.widths!r}: write hidden widths as integers 'a,b,...'") from None
    X, Y = data[name]()
    objective = args.objective or ("mse" if name == "regression" else "cross_entropy")
    return fc_nn().mlp(X, Y, widths=widths, activation=args.activation, loss=objective, seed=args.seed)


def _add_network(parser, widths="10,10", objective=None):
    """The options that build an fc.nn.mlp (shared by eos and compare)."""
    parser.add_argument("--samples", type=COUNT, help="digits/regression: how many samples")
    parser.add_argument("--widths", default=widths, help=f"hidden widths 'a,b,...' (default {widths}; '' for none)")
    parser.add_argument("--activation", default="tanh", help="tanh (default), sin, softplus, gelu_tanh, linear")
    parser.add_argument("--objective", default=objective, help="cross_entropy or mse (default " + (
        objective or "mse for regression, cross_entropy for the classes of iris and digits") + ")")
    parser.add_argument("--seed", type=NATURAL, default=0, help="initialisation seed (default 0)")


def cmd_eos(args):
    """The edge of stability of an MLP trained by full-batch GD (the paper's Figs 9/10 on a network)."""
    from flowcore import analysis as fa
    from flowcore.analysis import paper
    net = _network(args, args.data, "--data")
    flows = tuple(args.flows.split(","))
    out = _output(args.output)
    r = paper.network_edge_of_stability(net.loss, args.lr, net.theta0, args.steps, every=args.every, flows=flows)
    if out:
        fa.plot.network_eos(r, title=f"{net!r}"[8:-1] + f", h = {args.lr:g}").savefig(out, dpi=110)
    keep = ("lr", "edge", "edge_step", "hover_fraction", "increases_above", "iterates_above", "increases_below",
            "iterates_below", "restarts", "catapult", "sharpness", "loss", "delta_loss", "flows", "summary")
    if args.json:
        print(json.dumps(fa.as_json({"network": repr(net), "dim": net.dim, **{k: r[k] for k in keep}})))
        return
    print(f"{net!r}, lr = {args.lr:g} (2/lr = {r['edge']:g})")
    print(f"sharpness {r['sharpness'][0]:.4g} -> {r['sharpness'][-1]:.4g}; reaches 2/lr at step {r['edge_step']}; "
          f"{100 * r['hover_fraction']:.0f}% of the later steps within 20% of 2/lr")
    print(f"loss rises at {r['increases_above']} of {r['iterates_above']} steps with λ0 > 2/lr and "
          f"{r['increases_below']} of {r['iterates_below']} with λ0 <= 2/lr")
    print(f"{'n':>6} {'λ0·h/2':>7} {'GD dE':>11} " + " ".join(f"{k + ' err':>12} {k + ' dE':>11}" for k in flows))
    for i, n in enumerate(r["restarts"]):
        print(f"{n:6d} {r['sharpness'][n] / r['edge']:7.3f} {r['delta_loss'][n]:11.3e} " + " ".join(
            f"{r['flows'][k]['one_step_error'][i]:12.3e} {r['flows'][k]['predicted_delta_loss'][i]:11.3e}" for k in flows))
    for line in paper.eos_summary_lines(r):
        print(line)
    for k, f in r["flows"].items():
        kry = f.get("krylov")
        work = (f" (matrix-free: {kry['hvps'] / max(kry['evaluations'], 1):.0f} Hessian–vector products an evaluation, "
                f"Krylov dimension median {kry['median_dimension']:g}, max {kry['max_dimension']})") if kry else ""
        print(f"cost of {k}: {f['seconds_per_restart']:.3g} s per one-step prediction{work}")


def fc_nn():
    import flowcore
    return flowcore.problems.nn


def project_benchmarks(package_file):
    """The benchmarks/ folder of the checkout this flowcore was installed from (editable install),
    or None: only the project's own scripts run, never a folder of that name in the current
    directory. The checkout is recognised by its pyproject.toml naming the project flowcore."""
    from pathlib import Path
    root = Path(package_file).resolve().parents[1]
    try:
        named = 'name = "flowcore"' in (root / "pyproject.toml").read_text()
    except OSError:
        return None
    folder = root / "benchmarks"
    return folder if named and (folder / "_common.py").is_file() else None


def cmd_bench(args):
    """Run the benchmark scripts of a flowcore checkout (benchmarks/bench_*.py)."""
    import subprocess
    from pathlib import Path
    import flowcore
    folder = project_benchmarks(Path(flowcore.__file__))
    if folder is None:
        raise ValueError("the benchmarks ship with flowcore's source, not its wheel: install flowcore from a clone "
                         "with `pip install -e .` and run `flowcore bench` there (this flowcore is "
                         f"{Path(flowcore.__file__).parent})")
    print(f"running the benchmarks of the flowcore checkout at {folder.parent}", flush=True)
    scripts = sorted(folder.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if args.only in s.stem]
    # the GPU part (bench_gpu.py) runs with --device gpu, the rest without
    scripts = [s for s in scripts if (s.stem == "bench_gpu") == (args.device == "gpu")]
    rc = 0
    for script in scripts:
        print(f"== {script.name}", flush=True)
        cmd = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        rc |= subprocess.run(cmd, cwd=folder).returncode
    return rc


def build_parser():
    p = argparse.ArgumentParser(prog="flowcore", description=(
        "flowcore: continuous-time models of gradient descent (NGF, IGR, third-order, the "
        "principal flow), batched integrators, basins and backward error analysis."))
    from flowcore import __version__
    p.add_argument("--version", action="version", version=f"flowcore {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    e = sub.add_parser("eval", help="evaluate a loss and its derivatives at points")
    _add_loss(e, "zoo name (double_well, rosenbrock, ...) or expression")
    e.add_argument("--at", required=True, help="points 'x,y;x,y' (complex allowed: 1+0.5j)")
    e.add_argument("--v", help="direction(s) for T[v,v], same format as --at")
    e.add_argument("--json", action="store_true", help="machine-readable output")
    e.set_defaults(func=cmd_eval)
    c = sub.add_parser("critical", help="critical points, kinds, eigenvalues and per-model stability")
    _add_loss(c)
    c.add_argument("--lr", type=POSITIVE, help="learning rate for the per-model verdicts")
    c.add_argument("--beta", type=FINITE, default=0.9, help="heavy-ball momentum (default 0.9)")
    c.add_argument("--box", help="search box lo,hi,lo,hi (needed when the loss is not a polynomial)")
    c.add_argument("--newton", action="store_true", help="skip sympy; Newton from a grid in --box")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=cmd_critical)
    m = sub.add_parser("bea", help="modified equation (backward error analysis) of GD")
    m.add_argument("--loss", required=True, help="sympy expression of E")
    m.add_argument("--order", type=NATURAL, default=2, help="highest power of h (default 2)")
    m.add_argument("--vars", help="comma-separated variable order")
    m.add_argument("--method", default="gd", choices=["gd", "heavy_ball", "nesterov"], help="the map (default gd)")
    m.add_argument("--beta", type=FINITE, default=0.9, help="heavy-ball momentum (default 0.9)")
    m.add_argument("--latex", action="store_true", help="print LaTeX")
    m.add_argument("--json", action="store_true", help="machine-readable output")
    m.set_defaults(func=cmd_bea)
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
    tr = sub.add_parser("track", help="tracking error of NGF/IGR/third-order/PF against GD")
    _add_loss(tr)
    tr.add_argument("--lr", type=POSITIVE, required=True, help="learning rate h")
    tr.add_argument("--theta0", required=True, help="start 'x,y,...'")
    tr.add_argument("--steps", type=COUNT, default=20, help="GD steps (default 20)")
    tr.add_argument("--flows", default="ngf,igr,third_order,pf", help="comma-separated flows (default ngf,igr,third_order,pf)")
    tr.add_argument("-o", "--output", help="write the figure to this PNG")
    tr.add_argument("--json", action="store_true", help="machine-readable output")
    tr.set_defaults(func=cmd_track)
    cp = sub.add_parser("compare", help="NGF, IGR, third-order, PF, PF+NP3 and the central flow predicting one "
                        "GD run: one step, --horizon steps and from the start")
    cp.add_argument("--loss", help="zoo name or expression (or give --network)")
    cp.add_argument("--vars", help="comma-separated variable order (default: sorted names)")
    cp.add_argument("--network", help="instead of --loss, an MLP (needs the nn extra) on iris, digits or regression "
                    "(2-D inputs, random targets), started at its initialisation; e.g. --network regression "
                    "--widths 4 --objective mse --lr 1 --steps 100 --every 3")
    _add_network(cp, widths="4", objective="mse")
    cp.add_argument("--lr", type=POSITIVE, required=True, help="learning rate h")
    cp.add_argument("--theta0", help="start 'x,y,...' for --loss")
    cp.add_argument("--steps", type=COUNT, default=200, help="GD steps (default 200)")
    cp.add_argument("--horizon", type=COUNT, default=10, help="the n-step prediction's n (default 10)")
    cp.add_argument("--window", type=COUNT, default=2, help="GD's time average: the mean of this many iterates "
                    "(default 2, one period of the edge's 2-cycle)")
    cp.add_argument("--every", type=COUNT, default=1, help="restart the models at every k-th iterate (default 1; "
                    "the central flow costs about 0.1 s a restart)")
    cp.add_argument("--models", help="comma-separated subset of ngf,igr,third_order,pf,pf_np3,central")
    cp.add_argument("--rtol", type=POSITIVE, default=1e-10, help="the flows' relative tolerance (default 1e-10)")
    cp.add_argument("--max-steps", type=COUNT, help="cap each flow integration at this many steps; one that "
                    "runs out is reported, not guessed (a network's PF can meet hλ = 1 or a pole of tanh)")
    cp.add_argument("-o", "--output", help="write the figure to this PNG")
    cp.add_argument("--json", action="store_true", help="machine-readable output (enough to redraw the figure)")
    cp.set_defaults(func=cmd_compare)
    sg = sub.add_parser("sgd", help="minibatch SGD over many seeds against its stochastic modified equations")
    sg.add_argument("--example", required=True, help="the per-example loss ℓ(θ; ξ), e.g. '(w*x - y)**2/2'")
    sg.add_argument("--data", action="append", help="data column NAME=v1,v2,... (repeat for each data symbol)")
    sg.add_argument("--data-csv", help="a CSV file whose header row names the data symbols")
    sg.add_argument("--vars", help="comma-separated parameter order (default: the non-data names, sorted)")
    sg.add_argument("--lr", type=POSITIVE, required=True, help="learning rate η")
    sg.add_argument("--batch", type=COUNT, default=1, help="batch size B (default 1)")
    sg.add_argument("--without-replacement", action="store_true", help="reshuffle every epoch instead of "
                    "drawing each batch with replacement")
    sg.add_argument("--momentum", type=FINITE, default=0.0, help="heavy-ball β (default 0)")
    sg.add_argument("--theta0", required=True, help="start 'w1,w2,...'")
    sg.add_argument("--steps", type=COUNT, default=100, help="SGD steps (default 100)")
    sg.add_argument("--runs", type=COUNT, default=1000, help="seeds, i.e. independent runs (default 1000)")
    sg.add_argument("--seed", type=NATURAL, default=0, help="the Philox seed (default 0)")
    sg.add_argument("--sme", default="1,2", help="which stochastic modified equations to run beside SGD "
                    "(default '1,2'; '' for none)")
    sg.add_argument("--substeps", type=COUNT, default=4, help="Euler–Maruyama steps per SGD step for the SMEs (default 4)")
    sg.add_argument("-o", "--output", help="write the figure to this PNG")
    sg.add_argument("--json", action="store_true", help="machine-readable output (enough to redraw the figure)")
    sg.set_defaults(func=cmd_sgd)
    eo = sub.add_parser("eos", help="the edge of stability of an MLP trained by GD: sharpness, loss rises, and "
                        "the NGF/IGR/PF one-step predictions (needs the nn extra)")
    eo.add_argument("--data", default="iris", help="iris (default), digits or regression (2-D inputs, random targets)")
    _add_network(eo)
    eo.add_argument("--lr", type=POSITIVE, required=True, help="learning rate h")
    eo.add_argument("--steps", type=COUNT, default=300, help="GD steps (default 300)")
    eo.add_argument("--every", type=COUNT, default=7, help="restart the flows at every k-th iterate past the edge "
                    "(default 7: odd, so that both phases of GD's 2-cycle are scored)")
    eo.add_argument("--flows", default="ngf,igr,pf", help="comma-separated flows (default ngf,igr,pf)")
    eo.add_argument("-o", "--output", help="write the figure to this PNG")
    eo.add_argument("--json", action="store_true", help="machine-readable output (enough to redraw the figure)")
    eo.set_defaults(func=cmd_eos)
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
    to = sub.add_parser("tour", help="render every figure of the tour, with JSON and an index")
    to.add_argument("-o", "--output", default="tour", help="output folder (default ./tour)")
    to.add_argument("--quick", action="store_true", help="smaller grids and runs (seconds)")
    to.add_argument("--only", help="comma-separated item names")
    to.add_argument("-j", "--workers", type=COUNT, help="render items in this many processes (default: the "
                    "number of CPUs, at most 4)")
    to.add_argument("--json", action="store_true", help="print the list of outputs as JSON")
    to.set_defaults(func=cmd_tour)
    b = sub.add_parser("bench", help="run the benchmarks (tables to stdout, JSON to benchmarks/results)")
    b.add_argument("--quick", action="store_true", help="small batches, few repeats")
    b.add_argument("--only", help="run only scripts whose name contains this (e.g. solve)")
    b.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="cpu: the CPU benchmarks (default); gpu: the GPU part (says so and skips without a GPU)")
    b.set_defaults(func=cmd_bench)
    return p


_NEGATIVE_VALUE = re.compile(r"-\.?\d")     # '-2,2,201', '-0.5', '-.5,1'


def _attach_negative_values(argv):
    """``--grid -2,2,201,...`` read as ``--grid=-2,2,201,...``: argparse takes a token with a leading
    minus that is not a plain number for an option, and no flowcore option's value is one."""
    out = []
    for tok in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and _NEGATIVE_VALUE.match(tok):
            out[-1] = f"{out[-1]}={tok}"
        else:
            out.append(tok)
    return out


def main(argv=None):
    from flowcore.engine._errors import DeviceUnavailable
    parser = build_parser()
    args = parser.parse_args(_attach_negative_values(sys.argv[1:] if argv is None else list(argv)))
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args) or 0
    except (ValueError, TypeError, NotImplementedError, ImportError, DeviceUnavailable) as exc:
        print(f"flowcore {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        kept = getattr(exc, "kept", None) or "nothing was written"
        print(f"flowcore {args.command}: interrupted (Ctrl-C); {kept}", file=sys.stderr)
        return 130
    except BrokenPipeError:          # `flowcore ... --json | head`: the reader left, not an error
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
