"""The flowcore command line: ``flowcore SUBCOMMAND --help``."""
import argparse
import json
import sys

import numpy as np


def _loss(spec, vars=None):
    """A zoo name (e.g. 'double_well', 'rosenbrock') or an expression."""
    import flowcore as fc
    name = spec.strip()
    if name in fc.losses.__all__ and name not in ("quadratic",):
        return getattr(fc.losses, name)()
    return fc.Loss.from_expr(spec, vars=vars)


def _points(text, dim):
    try:
        pts = np.array([[complex(c) if "j" in c else float(c) for c in p.split(",")]
                        for p in text.split(";")])
    except ValueError:
        raise SystemExit(f"--at: cannot read {text!r}; write points as 'x,y;x,y' (complex as 1+2j)")
    if pts.shape[1] != dim:
        raise SystemExit(f"--at: each point needs {dim} coordinates, got {pts.shape[1]}")
    return pts


def _jsonable(a):
    a = np.asarray(a)
    if np.iscomplexobj(a):
        return {"re": a.real.tolist(), "im": a.imag.tolist()}
    return a.tolist()


def cmd_eval(args):
    """Evaluate E, ∇E, ∇²E (and T[v,v] with --v) of a loss at points."""
    loss = _loss(args.loss, args.vars.split(",") if args.vars else None)
    th = _points(args.at, loss.dim)
    v = _points(args.v, loss.dim) if args.v else None
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
    loss = _loss(args.loss, args.vars.split(",") if args.vars else None)
    box = None
    if args.box:
        try:
            box = [[float(v) for v in part.split(",")] for part in args.box.split(";")]
        except ValueError:
            raise ValueError(f"--box: cannot read {args.box!r}; write 'lo,hi;lo,hi'") from None
    cps = fa.critical_points(loss, box=box, exact=not args.newton)
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
                          "lr": args.lr, "points": rows}))
        return
    print(f"loss {loss.name}: {len(rows)} critical point(s)" + (f", lr = {args.lr:g}" if args.lr else ""))
    for r in rows:
        pt = ", ".join(f"{v:.6g}" for v in r["point"])
        ev = ", ".join(f"{v:.4g}" for v in r["eigenvalues"])
        print(f"  ({pt})  {r['kind']:<10}  E = {r['value']:.6g}  λ(H) = [{ev}]  |g| = {r['residual']:.1e}")
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
    loss = _loss(args.loss, args.vars.split(",") if args.vars else None)
    lo, hi = (float(v) for v in args.lrs.split(","))
    lrs = np.linspace(lo, hi, args.n)
    theta0 = [float(v) for v in args.theta0.split(",")]
    r = fa.orbit_diagram(loss, lrs, theta0, transient=args.transient, keep=args.keep)
    if args.output:
        fa.plot.orbit_diagram(r, title=f"GD orbit diagram: {loss.name}").savefig(args.output, dpi=120)
    if args.json:
        print(json.dumps({"loss": loss.name, "lrs": r["lrs"].tolist(),
                          "lyapunov": [None if not np.isfinite(v) else float(v) for v in r["lyapunov"]],
                          "status": [int(s) for s in r["status"]],
                          "period": [int(len(np.unique(np.round(o[:, 0], 6)))) if np.all(np.isfinite(o)) else None
                                     for o in r["orbits"]]}))
    else:
        for h, ly, o in zip(r["lrs"], r["lyapunov"], r["orbits"]):
            n = len(np.unique(np.round(o[:, 0], 6))) if np.all(np.isfinite(o)) else "-"
            print(f"h = {h:.4f}  distinct late values = {n}  lyapunov = {ly:.4f}")


def cmd_bench(args):
    """Run the benchmark scripts of a flowcore checkout (benchmarks/bench_*.py)."""
    import subprocess
    from pathlib import Path
    import flowcore
    candidates = [Path.cwd() / "benchmarks", Path(flowcore.__file__).resolve().parents[1] / "benchmarks"]
    folder = next((c for c in candidates if (c / "_common.py").exists()), None)
    if folder is None:
        raise ValueError("benchmarks/ not found: run `flowcore bench` from a clone of flowcore")
    scripts = sorted(folder.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if args.only in s.stem]
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
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    e = sub.add_parser("eval", help="evaluate a loss and its derivatives at points")
    e.add_argument("--loss", required=True, help="zoo name (double_well, rosenbrock, ...) or expression")
    e.add_argument("--vars", help="comma-separated variable order (default: sorted names)")
    e.add_argument("--at", required=True, help="points 'x,y;x,y' (complex allowed: 1+0.5j)")
    e.add_argument("--v", help="direction(s) for T[v,v], same format as --at")
    e.add_argument("--json", action="store_true", help="machine-readable output")
    e.set_defaults(func=cmd_eval)
    c = sub.add_parser("critical", help="critical points, kinds, eigenvalues and per-model stability")
    c.add_argument("--loss", required=True, help="zoo name or expression")
    c.add_argument("--vars", help="comma-separated variable order")
    c.add_argument("--lr", type=float, help="learning rate for the per-model verdicts")
    c.add_argument("--beta", type=float, default=0.9, help="heavy-ball momentum (default 0.9)")
    c.add_argument("--box", help="search box --box='lo,hi;lo,hi' (needed when sympy cannot solve)")
    c.add_argument("--newton", action="store_true", help="skip sympy; Newton from a grid in --box")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=cmd_critical)
    m = sub.add_parser("bea", help="modified equation (backward error analysis) of GD")
    m.add_argument("--loss", required=True, help="sympy expression of E")
    m.add_argument("--order", type=int, default=2, help="highest power of h (default 2)")
    m.add_argument("--vars", help="comma-separated variable order")
    m.add_argument("--method", default="gd", choices=["gd", "heavy_ball", "nesterov"], help="the map (default gd)")
    m.add_argument("--beta", type=float, default=0.9, help="heavy-ball momentum (default 0.9)")
    m.add_argument("--latex", action="store_true", help="print LaTeX")
    m.add_argument("--json", action="store_true", help="machine-readable output")
    m.set_defaults(func=cmd_bea)
    o = sub.add_parser("orbit", help="GD orbit diagram and Lyapunov exponents over learning rates")
    o.add_argument("--loss", required=True, help="zoo name or expression")
    o.add_argument("--vars", help="comma-separated variable order")
    o.add_argument("--lrs", required=True, help="learning-rate range 'lo,hi'")
    o.add_argument("--n", type=int, default=200, help="number of learning rates (default 200)")
    o.add_argument("--theta0", required=True, help="start 'x,y,...'")
    o.add_argument("--transient", type=int, default=1000)
    o.add_argument("--keep", type=int, default=100)
    o.add_argument("-o", "--output", help="write the figure to this PNG")
    o.add_argument("--json", action="store_true", help="machine-readable output")
    o.set_defaults(func=cmd_orbit)
    b = sub.add_parser("bench", help="run the benchmarks (tables to stdout, JSON to benchmarks/results)")
    b.add_argument("--quick", action="store_true", help="small batches, few repeats")
    b.add_argument("--only", help="run only scripts whose name contains this (e.g. solve)")
    b.set_defaults(func=cmd_bench)
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args) or 0
    except (ValueError, TypeError) as exc:
        print(f"flowcore {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
