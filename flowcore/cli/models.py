"""Which flow follows GD: tracking errors, one-step predictions, the edge of stability of networks."""
import json

import numpy as np

from flowcore.cli._common import COUNT, NATURAL, POSITIVE, _add_loss, _fmt, _loss_of, _output, _point


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

def _add_data_network(parser, widths="10,10"):
    """--data and the MLP's options (eos, stability, dal: a network on a bundled data set)."""
    parser.add_argument("--data", default="iris", help="iris (default), digits or regression (2-D inputs, random targets)")
    _add_network(parser, widths=widths)

def _add_network(parser, widths="10,10", objective=None):
    """The options that build an fc.nn.mlp (shared by eos, stability, dal and compare)."""
    parser.add_argument("--samples", type=COUNT, help="digits/regression: how many samples")
    parser.add_argument("--widths", default=widths, help=f"hidden widths 'a,b,...' (default {widths}; '' for none)")
    parser.add_argument("--activation", default="tanh", help="tanh (default), sin, softplus, gelu_tanh, linear")
    parser.add_argument("--objective", default=objective, help="cross_entropy or mse (default " + (
        objective or "mse for regression, cross_entropy for the classes of iris and digits") + ")")
    parser.add_argument("--seed", type=NATURAL, default=0, help="initialisation seed (default 0)")

def fc_nn():
    import flowcore
    return flowcore.problems.nn

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
                                     "seconds_per_run": {k: m["seconds_per_run"] for k, m in r["models"].items()},
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
    print("cost per integration (the run from θ₀ and each restart): "
          + ", ".join(f"{k} {m['seconds_per_run']:.3g} s" for k, m in r["models"].items()))

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


def cmd_stability(args):
    """Stability coefficients, drift and the top eigenvector's gradient along a GD run of an MLP (the
    paper's Figs 8, 11/12 and 16/17); above 1 024 parameters the eigenpairs come from Lanczos on
    Hessian–vector products and ‖Hg‖ from one product."""
    import time
    from flowcore import analysis as fa
    from flowcore.analysis import paper
    from flowcore.solvers.optim import hessian_free
    net = _network(args, args.data, "--data")
    flows = tuple(args.flows.split(","))
    out = _output(args.output)
    start = time.perf_counter()
    r = paper.stability_run(net.loss, args.lr, net.theta0, args.steps, flows=flows, rtol=args.rtol, k=args.k)
    seconds = time.perf_counter() - start
    title = f"{net!r}"[8:-1] + f", h = {args.lr:g}"
    if out:
        fa.plot.network_stability(r, title=title).savefig(out, dpi=110)
    dE, p = r["delta_loss"], r["projection"]
    summary = {k: r[k] for k in ("loss_increases", "increases_with_unstable_direction", "between_ngf_and_pgf")}
    summary.update(gd_sign_flips=p["gd_sign_flips"], sign_right=p["sign_right"])
    if args.json:
        keep = ("lr", "loss", "delta_loss", "eigenvalues", "sharpness", "stability_coefficients", "unstable_sc",
                "Hg_norm", "Hghat_norm", "drift", "predicted_delta_loss", "one_step_error", "corr_Hg_drift",
                "corr_sc_loss_increase", "unstable_iterations", "corr_sc_loss_increase_unstable_only", "projection",
                "seconds")
        print(json.dumps(fa.as_json({"network": repr(net), "dim": net.dim, "steps": args.steps,
                                     "total_seconds": seconds, "summary": summary, **{k: r[k] for k in keep}})))
        return
    n = len(dE)
    print(f"{title}: {n} GD steps from its initialisation; sharpness {r['sharpness'][0]:.4g} -> {r['sharpness'][-1]:.4g} "
          f"(2/h = {2 / args.lr:g})")
    print(f"Figs 11/12: the loss rises at {summary['loss_increases']} of {n} steps, "
          f"{summary['increases_with_unstable_direction']} of them with a direction hλ > 2 ({r['unstable_iterations']} "
          f"steps have one); corr(sc, ΔE) {r['corr_sc_loss_increase']:.2f} over all steps, "
          f"{r['corr_sc_loss_increase_unstable_only']:.2f} over those with hλ > 2"
          + ("" if summary["between_ngf_and_pgf"] is None
             else f"; GD's ΔE between the NGF's and the PGF's at {summary['between_ngf_and_pgf']}"))
    print(f"Figs 16/17: corr(‖Hg‖, drift from the NGF) {r['corr_Hg_drift']:.2f}")
    right = ", ".join(f"{k} {v}" for k, v in summary["sign_right"].items())
    print(f"Fig 8: GD's gradient along u0 flips sign at {summary['gd_sign_flips']} of {n} steps; predicted signs right: "
          f"{right} of {n}")
    print(f"{'n':>4} {'hλ0':>7} {'GD dE':>11} {'max|sc|':>9} {'‖Hg‖':>10} {'drift':>10} "
          + " ".join(f"{k + ' dE':>11}" for k in r["predicted_delta_loss"]))
    for i in range(n):
        print(f"{i:4d} {args.lr * r['sharpness'][i]:7.3f} {dE[i]:11.3e} {r['unstable_sc'][i]:9.3g} "
              f"{r['Hg_norm'][i]:10.3e} {r['drift'][i]:10.3e} "
              + " ".join(f"{v[i]:11.3e}" for v in r["predicted_delta_loss"].values()))
    how = (f"top {r['eigenvalues'].shape[-1]} by Lanczos on Hessian–vector products" if hessian_free(net.loss) or args.k
           else "all, from the Hessian")
    cost = ", ".join(f"{k} {v:.3g} s" for k, v in r["seconds"]["per_restart"].items())
    print(f"cost: eigenpairs ({how}) {r['seconds']['eigenpairs_per_iterate']:.3g} s an iterate; one-step predictions "
          f"{cost} a restart; {seconds:.1f} s in all")


def cmd_dal(args):
    """DAL and DAL-p against GD at fixed rates on an MLP (the paper's Fig 18); above 1 024 parameters
    DAL's ‖H ĝ‖ comes from one Hessian–vector product a step."""
    import time
    from flowcore import analysis as fa
    from flowcore.analysis import paper
    from flowcore.solvers.optim import hessian_free
    lrs, powers = _point(args.lrs, "--lrs"), _point(args.powers, "--powers")
    if np.any(lrs <= 0) or np.any(powers <= 0):
        raise ValueError(f"--lrs {args.lrs!r} and --powers {args.powers!r}: every rate and power must be positive")
    net = _network(args, args.data, "--data")
    out = _output(args.output)
    start = time.perf_counter()
    r = paper.dal_comparison(net.loss, net.theta0, args.steps, tuple(lrs), powers=tuple(powers), tol=args.tol)
    seconds = time.perf_counter() - start
    title = f"{net!r}"[8:-1]
    if out:
        fa.plot.dal_comparison(r, title=title).savefig(out, dpi=110)
    if args.json:
        print(json.dumps(fa.as_json({"network": repr(net), "dim": net.dim, "steps": args.steps, "seconds": seconds, **r})))
        return
    print(f"{title}: {args.steps} steps from its initialisation; lowest loss {r['best_loss']:.4g}")
    print(f"{'run':>16} {'final loss':>11} {'steps to within ' + format(r['tol'], 'g'):>22} {'rate min':>9} "
          f"{'rate max':>9} {'ms a step':>10}")
    for k, v in r["runs"].items():
        its = v["iterations_to_tol"]
        print(f"{k:>16} {v['final_loss']:11.4g} {('never' if its is None else str(its)):>22} "
              f"{np.nanmin(v['lr']):9.3g} {np.nanmax(v['lr']):9.3g} {1e3 * v['seconds_per_step']:10.3g}")
    print(f"{seconds:.1f} s" + (" (DAL by Hessian–vector products: the Hessian is never formed)"
                                if hessian_free(net.loss) else ""))


def register(sub):
    """Add this group's commands to the subparsers ``sub``."""
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
    eo = sub.add_parser("eos", help="the edge of stability of an MLP trained by GD: sharpness, loss rises, and "
                        "the NGF/IGR/PF one-step predictions (needs the nn extra)")
    _add_data_network(eo)
    eo.add_argument("--lr", type=POSITIVE, required=True, help="learning rate h")
    eo.add_argument("--steps", type=COUNT, default=300, help="GD steps (default 300)")
    eo.add_argument("--every", type=COUNT, default=7, help="restart the flows at every k-th iterate past the edge "
                    "(default 7: odd, so that both phases of GD's 2-cycle are scored)")
    eo.add_argument("--flows", default="ngf,igr,pf", help="comma-separated flows (default ngf,igr,pf)")
    eo.add_argument("-o", "--output", help="write the figure to this PNG")
    eo.add_argument("--json", action="store_true", help="machine-readable output (enough to redraw the figure)")
    eo.set_defaults(func=cmd_eos)
    st = sub.add_parser("stability", help="stability coefficients, GD's drift from the gradient flow against ‖Hg‖, "
                        "and the top eigenvector's gradient one step ahead along a GD run of an MLP (the paper's Figs "
                        "8, 11/12, 16/17; needs the nn extra)")
    _add_data_network(st, widths="10,10,10")
    st.add_argument("--lr", type=POSITIVE, required=True, help="learning rate h")
    st.add_argument("--steps", type=COUNT, default=30, help="GD steps (default 30)")
    st.add_argument("--flows", default="ngf,pgf", help="comma-separated flows predicting each step's loss change "
                    "(default ngf,pgf: the gradient flow and its reverse bracket a first-order flow; the NGF always runs)")
    st.add_argument("--k", type=COUNT, help="top eigenpairs per iterate by Lanczos (default: all from the Hessian, "
                    "or 8 by Hessian–vector products above 1 024 parameters)")
    st.add_argument("--rtol", type=POSITIVE, default=1e-9, help="the flows' relative tolerance (default 1e-9)")
    st.add_argument("-o", "--output", help="write the figure to this PNG")
    st.add_argument("--json", action="store_true", help="machine-readable output (enough to redraw the figure)")
    st.set_defaults(func=cmd_stability)
    da = sub.add_parser("dal", help="DAL and DAL-p (h = 2/‖H ĝ‖^p) against GD at fixed learning rates on an MLP "
                        "(the paper's Fig 18; needs the nn extra)")
    _add_data_network(da)
    da.add_argument("--steps", type=COUNT, default=100, help="steps of every run (default 100)")
    da.add_argument("--lrs", default="0.25,0.5,1", help="GD's fixed learning rates (default 0.25,0.5,1)")
    da.add_argument("--powers", default="1,2", help="DAL-p's powers p (default 1,2)")
    da.add_argument("--tol", type=POSITIVE, default=1e-2, help="count the steps to within this of the lowest loss "
                    "any run reaches (default 0.01)")
    da.add_argument("-o", "--output", help="write the figure to this PNG")
    da.add_argument("--json", action="store_true", help="machine-readable output (enough to redraw the figure)")
    da.set_defaults(func=cmd_dal)
