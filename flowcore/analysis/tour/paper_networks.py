"""The paper's analyses on networks: the edge of stability, tracking, projections, stability coefficients and DAL on MLPs."""
import numpy as np

import flowcore as fc
from flowcore.analysis import paper
from flowcore.analysis.plot import _plt, dal_comparison as plot_dal, network_stability as plot_network_stability, \
    projection_panel
from flowcore.analysis.tour.paper_toy import track_figure


NETWORK_EOS_STEPS, NETWORK_EOS_EVERY = 200, 7      # odd: both phases of the 2-cycle


def network_eos(quick):
    """Figs 9/10 on a network: an MLP on Iris trained by full-batch GD past its edge of stability,
    with the one-step predictions of the NGF, IGR and the PF from every seventh iterate past the edge,
    scored at the edge and in catapults apart."""
    from flowcore.analysis.plot import network_eos as plot_network_eos
    net = fc.nn.mlp(*fc.nn.iris(), widths=(10, 10), activation="tanh", loss="cross_entropy", seed=0)
    r = paper.network_edge_of_stability(net.loss, 1.0, net.theta0, 20 if quick else NETWORK_EOS_STEPS,
                                        every=7 if quick else NETWORK_EOS_EVERY)
    fig = plot_network_eos(r, title=f"{net!r}"[8:-1] + f", h = {r['lr']:g}")
    data = {"network": repr(net), "dim": net.dim, "lr": r["lr"], "edge": r["edge"], "edge_step": r["edge_step"],
            "hover_fraction": r["hover_fraction"], "sharpness": r["sharpness"], "loss": r["loss"],
            "delta_loss": r["delta_loss"],
            "increases_above": r["increases_above"], "iterates_above": r["iterates_above"],
            "increases_below": r["increases_below"], "iterates_below": r["iterates_below"],
            "restarts": r["restarts"], "catapult": r["catapult"], "flows": r["flows"], "groups": r["summary"]}
    return fig, data, (f"{net!r}"[8:-1] + f" at h = {r['lr']:g}: λ₀ reaches 2/h at step {r['edge_step']} and "
                       f"{100 * r['hover_fraction']:.0f}% of the later steps stay within 20% of it; the loss rises at "
                       f"{r['increases_above']} of {r['iterates_above']} steps past the edge and "
                       f"{r['increases_below']} of {r['iterates_below']} below. The flows restarted at every "
                       f"{7 if quick else NETWORK_EOS_EVERY}th iterate from there, scored on their real parts: "
                       + "; ".join(paper.eos_summary_lines(r)) + ".")


def _regression_net():
    """The paper's Fig 7 setting: an MLP 2→10→1 (tanh, MSE) on 20 random 2-D points with random targets."""
    return fc.nn.mlp(*fc.nn.regression_2d(20, seed=0), widths=(10,), activation="tanh", seed=0)


def _digits_net():
    """The MLP 64→256→256→10 (tanh, cross-entropy) on scikit-learn's 1 797 8×8 digits: D = 85 002,
    a Hessian of 58 GB, so every model on it runs by Hessian–vector products."""
    return fc.nn.mlp(*fc.nn.digits(), widths=(256, 256), activation="tanh", loss="cross_entropy", seed=0)


def _iris_deep_net():
    """A 4-layer MLP (three hidden layers of 10, tanh) on Iris with cross-entropy: D = 303."""
    return fc.nn.mlp(*fc.nn.iris(), widths=(10, 10, 10), activation="tanh", loss="cross_entropy", seed=0)


def network_tracking(quick):
    """Fig 7 on a network: how closely NGF, IGR, the third-order flow and the PF follow GD on a
    small MLP (2→10→1 on random targets), from the start and one step at a time."""
    net = _regression_net()
    fig, data, said = track_figure(net.loss, 0.8, net.theta0, 5 if quick else 40)
    fig.axes[0].set_title(f"{net!r}"[8:-1] + ", h = 0.8: global tracking error", fontsize=9)
    data["network"], data["sharpness_start"] = repr(net), float(paper.sharpness(net.loss, net.theta0)[0, 0])
    first = ", ".join(f"{k} {data[k]['first_step_error']:.1e}" for k in paper.TRACK_FLOWS)
    last = ", ".join(f"{k} {data[k]['global'][-1]:.1e}" for k in paper.TRACK_FLOWS)
    return fig, data, (f"{net!r}"[8:-1] + f" at h = 0.8 (hλ₀ = {0.8 * data['sharpness_start']:.2f} at the start: "
                       f"past 1, where the PF turns complex): the first step's error is {first}; after "
                       f"{data['steps']} steps the distance to GD is {last}.")


def network_projection(quick):
    """Fig 8 at the paper's scale: on the digits MLP (D = 85 002; u₀ by Lanczos on Hessian–vector
    products) the gradient along the top Hessian eigenvector one step ahead, GD against each flow's
    prediction x(0)e^{ch} from the step before."""
    plt = _plt()
    net, lr = _digits_net(), 0.2
    it = fc.descend(net.loss, net.theta0[None], fc.GD(lr), 2 if quick else 16).iterates[0]
    r = paper.projection_predictions(net.loss, lr, it)
    n = np.arange(len(r["gd"]))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5.4))
    projection_panel(ax, r, "GD's next gradient along u₀ and each flow's prediction")
    rel = {}
    for j, (k, v) in enumerate(r["predicted"].items()):
        rel[k] = np.abs(v - r["gd"]) / np.abs(r["gd"])
        ax2.semilogy(n, rel[k], "-", color=f"C{j}", lw=3.2 - 0.7 * j, zorder=2 + j, label=k)
    ax2.set(xlabel="GD step n", ylabel="|prediction − GD| / |GD|", title="relative error of each prediction")
    ax2.legend(fontsize=8)
    fig.suptitle(f"{net!r}"[8:-1] + f", h = {lr:g}", fontsize=10)
    fig.tight_layout()
    data = {"network": repr(net), "lr": lr, "sharpness": r["sharpness"], "projection": r["projection"], "gd": r["gd"],
            "predicted": r["predicted"], "gd_sign_flips": r["gd_sign_flips"], "steps": len(n),
            "sign_right": r["sign_right"],
            "median_relative_error": {k: float(np.median(v)) for k, v in rel.items()},
            "within_25_percent": {k: int(np.sum(v <= 0.25)) for k, v in rel.items()}}
    med = ", ".join(f"{k} {v:.2g}" for k, v in data["median_relative_error"].items())
    return fig, data, (f"On the digits MLP (D = {net.dim:,}) along the top eigenvector, GD's gradient flips sign at "
                       f"{data['gd_sign_flips']} of {len(n)} steps (hλ₀ > 1); the PF's factor 1 − hλ₀ gets the sign "
                       f"right {data['sign_right']['pf']} times, the NGF's e^(−hλ₀) {data['sign_right']['ngf']} times; "
                       f"the PF's size is within 25 % of GD's at {data['within_25_percent']['pf']} steps (median "
                       f"relative errors: {med}).")


def network_stability(quick):
    """Figs 8, 11/12 and 16/17 on a network: stability coefficients along GD on a 4-layer MLP, the
    loss change of the NGF and the positive gradient flow started at each iterate against GD's, the
    drift from the gradient flow against ‖Hg‖, and the top eigenvector's gradient one step ahead."""
    net, lr = _iris_deep_net(), 1.0
    r = paper.stability_run(net.loss, lr, net.theta0, 15 if quick else 80, flows=("ngf", "pgf"), rtol=1e-9)
    dE, n = r["delta_loss"], np.arange(len(r["delta_loss"]))
    fig = plot_network_stability(r, title=f"{net!r}"[8:-1] + f", h = {lr:g}")
    data = {"network": repr(net), "lr": lr, "delta_loss": dE, "predicted_delta_loss": r["predicted_delta_loss"],
            "one_step_error": r["one_step_error"], "unstable_sc": r["unstable_sc"],
            "sharpness": r["sharpness"], "correlation_all_iterations": r["corr_sc_loss_increase"],
            "correlation_unstable_iterations": r["corr_sc_loss_increase_unstable_only"],
            "unstable_iterations": r["unstable_iterations"], "iterations": len(n),
            "loss_increases": r["loss_increases"], "increases_with_unstable_direction": r["increases_with_unstable_direction"],
            "between_ngf_and_pgf": r["between_ngf_and_pgf"], "drift": r["drift"], "Hg_norm": r["Hg_norm"],
            "correlation_Hg_drift": r["corr_Hg_drift"], "projection": r["projection"]}
    return fig, data, (f"On {net!r}"[:3] + f"{net!r}"[8:-1] + f" at h = {lr:g}: the loss rises at {data['loss_increases']} "
                       f"of {len(n)} steps, {data['increases_with_unstable_direction']} of them with a direction "
                       f"hλ > 2 ({r['unstable_iterations']} steps have one); the largest stability coefficient of "
                       f"those directions correlates {r['corr_sc_loss_increase_unstable_only']:.2f} with the loss "
                       f"change; GD's change lies between the NGF's and the PGF's at {data['between_ngf_and_pgf']} "
                       f"steps; its drift from the NGF correlates {r['corr_Hg_drift']:.2f} with ‖Hg‖.")


def network_dal(quick):
    """Fig 18 at scale: DAL and DAL-p (‖H ĝ‖ by a Hessian–vector product a step) against fixed
    learning rates on the digits MLP (D = 85 002), with the learning rate each takes."""
    net = _digits_net()
    lrs = (0.25, 0.5, 1.0)
    r = paper.dal_comparison(net.loss, net.theta0, 10 if quick else 100, lrs, powers=(1.0, 2.0), tol=1e-2)
    fig = plot_dal(r, title=f"{net!r}"[8:-1])
    data = {"network": repr(net), "tol": r["tol"], "best_loss": r["best_loss"],
            "runs": {k: {"iterations_to_tol": v["iterations_to_tol"], "final_loss": v["final_loss"], "loss": v["loss"],
                         "lr": v["lr"]} for k, v in r["runs"].items()}}
    fin = ", ".join(f"{k} {v['final_loss']:.3g}" for k, v in r["runs"].items())
    return fig, data, f"On {net!r}"[:3] + f"{net!r}"[8:-1] + f", final losses after {len(r['runs']['DAL']['loss']) - 1} steps: {fin}."
