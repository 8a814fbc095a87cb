"""SGD against its stochastic modified equations."""
import json

import numpy as np

from flowcore.cli._common import COUNT, FINITE, NATURAL, POSITIVE, _fmt, _output, _point


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


def register(sub):
    """Add this group's commands to the subparsers ``sub``."""
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
