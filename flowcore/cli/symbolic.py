"""Symbolic and pointwise: eval, critical points, backward error analysis."""
import json

import numpy as np

from flowcore.cli._common import FINITE, NATURAL, POSITIVE, _add_loss, _jsonable, _loss_of, _points, _ranges


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


def register(sub):
    """Add this group's commands to the subparsers ``sub``."""
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
