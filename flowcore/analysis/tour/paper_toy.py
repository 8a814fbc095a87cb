"""The paper's analyses on toy losses: α(z), the PF's regimes, tracking errors, the edge of stability, stability coefficients, drift and DAL."""
import functools

import numpy as np

import flowcore as fc
from flowcore.analysis import paper
from flowcore.analysis.plot import _plt, coordinate_label, tex
from flowcore.analysis.tour._common import NORM_STEP_ERROR, NORM_TRACK_ERROR, _contours


def alpha(quick):
    """Fig 3: α_NGF, α_IGR, α_third and α_PF over z = hλ (real and imaginary parts)."""
    plt = _plt()
    z = np.linspace(-2, 4, 601)
    a = paper.alpha_curves(z)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for k, st in (("ngf", "k--"), ("igr", "C1-"), ("third_order", "C2-"), ("pf", "C0-")):
        ax.plot(z, np.real(a[k]), st, lw=1.6, label=r"$\alpha_{\mathrm{%s}}$" % k.replace("_", "\\ "))
    ax2.plot(z, np.imag(a["pf"]), "C0-", lw=1.6, label=r"Im $\alpha_{PF} = \pi/z$ for z > 1")
    for axx in (ax, ax2):
        axx.axvline(1, color="0.6", lw=0.7, ls=":")
        axx.axvline(2, color="0.6", lw=0.7, ls=":")
        axx.set_xlabel("z = hλ")
        axx.legend(fontsize=8)
    ax.set_ylim(-4, 1)
    ax.set_ylabel("Re α(z)")
    ax.set_title("the flows' α(z): θ' = α(hH) g")
    ax2.set_ylabel("Im α(z)")
    ax2.set_title("the PF turns complex past z = 1")
    fig.tight_layout()
    pick = np.array([-1.0, 0.5, 1.5, 2.0, 3.0])
    data = {"z": pick, **{k: paper.alpha_curves(pick)[k] for k in ("ngf", "igr", "third_order", "pf")}}
    return fig, data, "α_PF(z) = log(1 − z)/z agrees with the BEA flows for small z, and past z = 1 it turns complex (Im = π/z): the PF's answer to unstable directions."


def pf_regimes(quick):
    """Fig 4: the PF on E = z²/2 for hλ in (0, 1), (1, 2) and > 2, against GD."""
    plt = _plt()
    loss = fc.losses.quadratic_1d(1.0)
    fig, axs = plt.subplots(2, 3, figsize=(15, 7), sharex="col")
    data = {}
    for j, h in enumerate((0.5, 1.5, 2.5)):
        r = paper.pf_vs_gd(loss, h, [[1.0]], 8)
        tt = np.linspace(0, r["t"][-1], 200)
        fine = fc.solve(fc.flows.pf(loss, h), [[1.0]], t_eval=tt, method=fc.Dopri5(rtol=1e-12, atol=1e-14)).y[0, :, 0]
        axs[0, j].plot(tt, fine.real, "C0-", label="PF, Re θ(t)")
        axs[0, j].plot(r["t"], r["gd"][0, :, 0], "ko", ms=4, mfc="none", label=r"GD $\theta_n$ at t = nh")
        axs[1, j].plot(tt, fine.imag, "C3-", label="PF, Im θ(t)")
        axs[0, j].set_title(f"hλ = {h:g}: " + ("real decay" if h < 1 else "complex, decaying" if h < 2 else "complex, growing"))
        axs[1, j].set_xlabel("t")
        axs[0, j].legend(fontsize=8)
        axs[1, j].legend(fontsize=8)
        data[str(h)] = {"max_rel_error_vs_gd": r["max_rel_error"], "gd": r["gd"][0, :, 0]}
    axs[0, 0].set_ylabel("Re θ")
    axs[1, 0].set_ylabel("Im θ")
    fig.suptitle(r"PF on ½θ²: $\theta(t) = (1 - h\lambda)^{t/h}\,\theta_0$ meets GD at every t = nh")
    fig.tight_layout()
    return fig, data, "On ½θ² the PF is exact at t = nh in all three regimes: a real decay, a complex spiral onto 0 (1 < hλ < 2), and a growing spiral (hλ > 2) like GD's divergence."


def pf_quadratic_2d(quick):
    """Fig 5: PF vs GD on 2-D quadratics, including a diverging direction."""
    plt = _plt()
    fig, axs = plt.subplots(1, 2, figsize=(12, 5))
    cases = [("stable, hλ = (0.4, 1.6)", np.array([[1.0, 0.0], [0.0, 4.0]]), 0.4),
             ("divergent, hλ = (0.4, 2.4)", np.array([[1.0, 0.0], [0.0, 6.0]]), 0.4)]
    R = np.array([[np.cos(0.5), -np.sin(0.5)], [np.sin(0.5), np.cos(0.5)]])
    data = {}
    for ax, (name, A, h) in zip(axs, cases):
        A = R @ A @ R.T
        loss = fc.losses.quadratic(A)
        r = paper.pf_vs_gd(loss, h, [[1.0, 0.6]], 10)
        tt = np.linspace(0, r["t"][-1], 300)
        fine = fc.solve(fc.flows.pf(loss, h), [[1.0, 0.6]], t_eval=tt, method=fc.Dopri5(rtol=1e-12, atol=1e-14)).y[0]
        ax.plot(fine[:, 0].real, fine[:, 1].real, "C0-", label="PF (real part)")
        ax.plot(r["gd"][0, :, 0], r["gd"][0, :, 1], "ko--", ms=4, mfc="none", lw=0.6, label="GD iterates")
        ax.plot(r["flow"][0, :, 0].real, r["flow"][0, :, 1].real, "C3x", ms=7, label="PF at t = nh")
        ax.set_title(f"{name}: max rel. error {r['max_rel_error']:.1e}")
        ax.set_xlabel(coordinate_label(loss.vars, 0, 2))
        ax.set_ylabel(coordinate_label(loss.vars, 1, 2))
        ax.legend(fontsize=8)
        data[name] = {"max_rel_error": r["max_rel_error"], "A": A, "lr": h}
    data["max_error"] = max(v["max_rel_error"] for v in data.values())
    fig.tight_layout()
    return fig, data, f"On 2-D quadratics the PF passes through every GD iterate (max relative error {data['max_error']:.1e}), also when one direction diverges."


def banana(quick):
    """Fig 6: the banana (Rosenbrock, b = 10) with GD, NGF, PF and PF+NP3."""
    plt = _plt()
    loss = fc.losses.rosenbrock(1.0, 10.0)
    h, steps = 0.01, 60 if quick else 150
    r = paper.tracking_error(loss, h, [-1.0, 1.5], steps, flows=("ngf", "pf", "pf_np3"))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    _contours(ax, loss, [(-1.5, 1.5), (-0.5, 2.0)])
    # a zoom on the first steps, where the flows and GD part (on the full path they coincide)
    zoom = ax.inset_axes([0.52, 0.05, 0.45, 0.45])
    gd = r["gd"]
    styles = (("ngf", "C1", "-"), ("pf", "C0", "-"), ("pf_np3", "C3", (0, (4, 3))))
    for a, first in ((ax, len(gd)), (zoom, 6)):
        a.plot(gd[:first, 0], gd[:first, 1], "o", color="0.25", ms=8 if a is zoom else 2.5, mfc="none",
               zorder=2, label=f"GD, lr = {h:g}")
        for k, col, ls in styles:
            tr = r["flows"][k]["trajectory"][:first]
            fine = k if a is ax else None
            a.plot(np.real(tr[:, 0]), np.real(tr[:, 1]), color=col, ls=ls, lw=1.6, zorder=3,
                   marker="x" if a is zoom else None, ms=5, label=fine and (k if k == "ngf" else f"{k} (Re)"))
    lo, hi = gd[:6].min(axis=0), gd[:6].max(axis=0)
    pad = 0.15 * (hi - lo).max()
    zoom.set_xlim(lo[0] - pad, hi[0] + pad)
    zoom.set_ylim(lo[1] - pad, hi[1] + pad)
    zoom.set_title("first 5 steps (× at t = nh)", fontsize=8)
    zoom.tick_params(labelsize=7)
    ax.indicate_inset_zoom(zoom, edgecolor="0.3")
    ax.set_title(f"banana E = {tex('(1 - x)**2 + 10*(y - x**2)**2')}")
    ax.legend(fontsize=8, loc="upper right")
    for k, col, ls in styles:
        ax2.semilogy(r["t"][1:] / h, r["flows"][k]["global"][1:], color=col, ls=ls, label=k)
    ax2.set_xlabel("iteration n")
    ax2.set_ylabel(NORM_TRACK_ERROR)
    ax2.set_title("distance to GD's iterates along the run")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    data = {k: {"first_step": float(v["local"][0]), "max_global": float(np.nanmax(v["global"])),
                "final_global": float(v["global"][-1]), "max_imag": float(np.max(np.abs(np.imag(v["trajectory"]))))}
            for k, v in r["flows"].items()}
    fmt = lambda key: ", ".join(f"{k} {v[key]:.1e}" for k, v in data.items())
    return fig, data, (f"On the banana at h = {h:g}: first-step error {fmt('first_step')}; largest distance over "
                       f"{steps} steps {fmt('max_global')}. The PF leaves ℝ where hλ > 1 (max |Im θ| = "
                       f"{data['pf']['max_imag']:.1e}) and its distance grows there.")


def tracking(quick):
    """Fig 7: tracking error ‖θ_n − θ(nh)‖ of NGF, IGR, third-order flow and PF."""
    return track_figure(fc.Loss.from_expr("(x*y - 1)**2/2"), 0.1, [2.5, 0.2], 20 if quick else 40)


def track_figure(loss, lr, theta0, steps, flows=paper.TRACK_FLOWS):
    """The tracking-error analysis of one loss (also ``flowcore track``)."""
    plt = _plt()
    r = paper.tracking_error(loss, lr, theta0, steps, flows)
    if loss.dim == 2:          # the paths themselves, overlaid: GD's iterates and each flow
        fig, (axp, ax, ax2) = plt.subplots(1, 3, figsize=(18, 4.8))
        _paths(axp, loss, r, lr)
    else:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    n = np.arange(steps + 1)
    # errors at rounding level (exactly 0 included) are drawn on a floor, so that no line breaks
    floor = 1e-16 * max(1.0, float(np.max(np.abs(r["gd"]))))
    for j, (k, v) in enumerate(r["flows"].items()):
        stop = "" if v["status"] == "OK" else f" (stopped after n = {v['reached']}: {v['status']})"
        ax.semilogy(n[1:], np.maximum(v["global"][1:], floor), "-", color=f"C{j}", label=k + stop)
        lost = np.flatnonzero(~np.isfinite(v["local"]))
        ax2.semilogy(n[:-1], np.maximum(v["local"], floor), "-", color=f"C{j}",
                     label=k + (f" (stopped from {len(lost)} iterates, first n = {lost[0]})" if len(lost) else ""))
    flows_ = r["flows"].values()
    for a, key in ((ax, "global"), (ax2, "local")):
        if not any(np.any(v[key][1 if key == "global" else 0:] <= floor) for v in flows_):
            continue
        a.axhline(floor, color="0.6", ls=":", lw=0.8)
        a.text(0.01, floor, " rounding level (values below drawn here)", transform=a.get_yaxis_transform(),
               va="bottom", fontsize=7, color="0.4")
    ax.set_xlabel("iteration n")
    ax.set_ylabel(NORM_TRACK_ERROR)
    ax.set_title(f"{tex(loss)}, lr = {lr:g}: global tracking error")
    ax2.set_xlabel("iteration n")
    ax2.set_ylabel(NORM_STEP_ERROR)
    ax2.set_title("one-step error from each GD iterate")
    ax.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    data = {"loss": loss.name, "lr": lr, "theta0": list(theta0), "steps": steps, "t": r["t"], "gd": r["gd"],
            **{k: {"first_step_error": float(v["local"][0]), "global": v["global"], "local": v["local"],
                   "trajectory": v["trajectory"], "status": v["status"], "reached": v["reached"]}
               for k, v in r["flows"].items()}}
    order = sorted(r["flows"], key=lambda k: -r["flows"][k]["local"][0])
    first = ", ".join(f"{k} {r['flows'][k]['local'][0]:.1e}" for k in order)
    return fig, data, f"On {loss.name} at lr {lr:g}, from θ₀ = {list(theta0)}, the first step's error is: {first}."


def _paths(ax, loss, r, lr):
    """GD's iterates and every flow's trajectory (real part, sampled at t = n·lr) over contours."""
    pts = np.concatenate([r["gd"]] + [np.real(v["trajectory"]) for v in r["flows"].values()])
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = 0.15 * np.maximum(hi - lo, 1e-3)
    box = [(lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1])]
    _contours(ax, loss, box)
    ax.plot(r["gd"][:, 0], r["gd"][:, 1], "ko", ms=4, mfc="none", zorder=2, label=f"GD, lr = {lr:g}")
    for j, (k, v) in enumerate(r["flows"].items()):
        tr = np.real(v["trajectory"])
        ax.plot(tr[:, 0], tr[:, 1], "-", marker=".", ms=4, color=f"C{j}", lw=1.3, zorder=3,
                label=k + (" (Re)" if k.startswith("pf") else ""))
    ax.set_xlim(*box[0])
    ax.set_ylim(*box[1])
    ax.set_title("paths: GD iterates and the flows at t = n·lr")
    ax.legend(fontsize=8, loc="best")


@functools.lru_cache(maxsize=1)
def _eos_run(quick):
    """The edge-of-stability run shared by three items (computed once per tour)."""
    return paper.stability_run(fc.Loss.from_expr("(x*y - 1)**2/2"), 0.1, [4.6, 0.3], 80)


def edge_of_stability(quick):
    """Fig 10: one-step errors and predicted loss changes of NGF and PF at the edge of stability."""
    plt = _plt()
    r = _eos_run(quick)
    n = np.arange(len(r["delta_loss"]))
    fig, axs = plt.subplots(1, 3, figsize=(16, 4.5))
    axs[0].plot(np.arange(len(r["sharpness"])), r["sharpness"], "k-", label="sharpness λ_max")
    axs[0].axhline(2 / r["lr"], color="C3", ls="--", label="2/h")
    axs[0].set_xlabel("iteration")
    axs[0].set_ylabel(r"$\lambda_{max}(H)$")
    settle = float(np.mean(r["sharpness"][-10:]))
    axs[0].set_title(f"E = ½(xy − 1)², h = {r['lr']:g}: sharpness falls below 2/h = {2 / r['lr']:g}, "
                     f"settles at {settle:.1f}", fontsize=10)
    axs[0].legend(fontsize=8)
    for k, st in (("ngf", "C1-"), ("pf", "C0-")):
        axs[1].semilogy(n, r["one_step_error"][k], st, label=k)
    axs[1].set_xlabel("iteration n")
    axs[1].set_ylabel(NORM_STEP_ERROR)
    axs[1].set_title("one-step error")
    axs[1].legend(fontsize=8)
    axs[2].plot(n, r["delta_loss"], "ko", ms=3, mfc="none", label=r"GD: $E(\theta_{n+1}) - E(\theta_n)$")
    for k, st in (("ngf", "C1-"), ("pf", "C0-")):
        axs[2].plot(n, r["predicted_delta_loss"][k], st, label=f"{k} prediction")
    axs[2].set_yscale("symlog", linthresh=1e-3)
    axs[2].set_xlabel("iteration n")
    axs[2].set_ylabel("loss change")
    axs[2].set_title("loss increases: the NGF cannot predict them")
    axs[2].legend(fontsize=8)
    fig.tight_layout()
    up = r["delta_loss"] > 0
    data = {"loss_increases": int(up.sum()),
            "ngf_predicts_increase": int(np.sum(up & (r["predicted_delta_loss"]["ngf"] > 0))),
            "pf_predicts_increase": int(np.sum(up & (r["predicted_delta_loss"]["pf"] > 0))),
            "mean_one_step_error": {k: float(np.mean(v)) for k, v in r["one_step_error"].items()},
            "sharpness_start_end": [float(r["sharpness"][0]), float(r["sharpness"][-1])]}
    return fig, data, (f"At the edge of stability GD's loss rises {data['loss_increases']} times; the NGF never "
                       f"predicts a rise, the PF's real part predicts {data['pf_predicts_increase']} of them.")


def stability_coefficients(quick):
    """Fig 12: the stability coefficients of unstable directions against loss increases."""
    plt = _plt()
    r = _eos_run(quick)
    n = np.arange(len(r["delta_loss"]))
    fig, ax = plt.subplots(figsize=(9, 4.8))
    ax.plot(n, r["unstable_sc"], "C0-", label=r"max $|\mathrm{Re}\,sc_i|$ over directions with $h\lambda_i > 2$ (0 where none)")
    ax2 = ax.twinx()
    ax2.plot(n, r["delta_loss"], "C3o", ms=3, mfc="none", label=r"$\Delta E_n = E(\theta_{n+1}) - E(\theta_n)$")
    ax2.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel("iteration n")
    ax.set_ylabel("stability coefficient")
    ax2.set_ylabel("loss change")
    nu, total = r["unstable_iterations"], len(r["delta_loss"])
    ax.set_title(f"stability coefficients vs loss changes: corr {r['corr_sc_loss_increase_unstable_only']:.2f} over "
                 f"the {nu} iterations with hλ > 2\n({r['corr_sc_loss_increase']:.2f} over all {total}, the other "
                 f"{total - nu} counted as 0)", fontsize=10)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper right")
    fig.tight_layout()
    data = {"correlation_all_iterations": r["corr_sc_loss_increase"],
            "correlation_unstable_iterations": r["corr_sc_loss_increase_unstable_only"],
            "unstable_iterations": nu, "iterations": total,
            "unstable_sc": r["unstable_sc"], "delta_loss": r["delta_loss"]}
    return fig, data, (f"Loss increases come when a direction with hλ > 2 has a large stability coefficient: "
                       f"correlation {r['corr_sc_loss_increase_unstable_only']:.2f} over the {nu} iterations that "
                       f"have such a direction ({r['corr_sc_loss_increase']:.2f} over all {total}, the others "
                       "counted as 0).")


def drift(quick):
    """Figs 16/17: ‖Hg‖ against the measured per-iteration drift from the NGF."""
    plt = _plt()
    r = _eos_run(quick)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    n = np.arange(len(r["drift"]))
    ax.semilogy(n, r["drift"], "C0-", label=r"drift $\Vert\theta_{n+1} - \varphi_h^{NGF}(\theta_n)\Vert$")
    ax.semilogy(n, r["lr"] ** 2 / 2 * r["Hg_norm"][:-1], "C1--", label="(h²/2)‖Hg‖ (leading BEA term)")
    ax.set_xlabel("iteration n")
    ax.set_ylabel("size")
    ax.set_title("per-iteration drift from the gradient flow")
    ax.legend(fontsize=8)
    ax2.loglog(r["Hg_norm"][:-1], r["drift"], "ko", ms=3, mfc="none", label="one point per GD iterate")
    ax2.legend(fontsize=8)
    ax2.set_xlabel("‖Hg‖")
    ax2.set_ylabel("drift")
    ax2.set_title(f"correlation {r['corr_Hg_drift']:.3f}")
    fig.tight_layout()
    data = {"correlation": r["corr_Hg_drift"], "Hg_norm": r["Hg_norm"], "drift": r["drift"]}
    return fig, data, f"GD's drift from the gradient flow follows ‖Hg‖ (correlation {r['corr_Hg_drift']:.3f}), as the leading BEA term (h²/2)Hg says."


def dal(quick):
    """Figs 18/20: DAL and DAL-p against fixed learning rates."""
    plt = _plt()
    loss = fc.losses.elongated_bowl(25.0)
    r = paper.dal_comparison(loss, [1.0, 1.0], 200, [0.01, 0.03, 0.039], powers=(1.0, 2.0), tol=1e-6)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    ax2.axhline(2 / 50, color="0.55", ls=":", lw=1.2, zorder=1, label=r"$2/\lambda_{max}$ = 0.04")
    for j, (k, v) in enumerate(r["runs"].items()):
        its = v["iterations_to_tol"]
        adaptive = not k.startswith("GD")
        # the adaptive rates thick and dashed beneath, the fixed ones thin on top: DAL sits at 2/λ = 0.04,
        # 1 % from GD's 0.039, and each must stay visible
        style = dict(lw=3.0 if adaptive else 1.2, ls="--" if adaptive else "-", zorder=2 if adaptive else 4,
                     color=f"C{j}")
        ax.semilogy(v["loss"], label=f"{k} ({f'{its} its' if its is not None else 'never'} to tol)", **style)
        ax2.semilogy(v["lr"], label=k, **style)
    ax.set_xlabel("iteration")
    ax.set_ylabel(r"$E(\theta_n)$")
    ax.set_title(f"E = {tex('x**2 + 25*y**2')} (H = diag(2, 50)): loss")
    ax.legend(fontsize=8, loc="lower left")
    ax2.set_xlabel("iteration")
    ax2.set_ylabel("learning rate")
    ax2.set_title(r"DAL's rate $h = 2/\Vert H\hat g\Vert^p$ adapts per step")
    ax2.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    data = {k: {"iterations_to_tol": v["iterations_to_tol"], "final_loss": v["final_loss"]} for k, v in r["runs"].items()}
    its = {k: v["iterations_to_tol"] for k, v in data.items()}
    best_gd = min((v for k, v in its.items() if k.startswith("GD") and v is not None), default=None)
    return fig, data, (f"DAL-p sets h = 2/‖Hĝ‖^p from local curvature: on x² + 25y², p = 2 reaches the tolerance in "
                       f"{its['DAL-p, p=2']} iterations (best fixed rate: {best_gd}); p = 1 puts the step at exactly "
                       "2/λ along the sharp direction once the gradient aligns with it, and oscillates there.")


EOS_RUNS = (("(x*y - 1)**2/2", 0.25, [2.82, 0.36], 300),
            ("(x - 9/2)**2/80 + (z - 2)**2/40 + (x + z**2/10)*y**2/2", 0.5, [3.5, 0.05, 1.0], 600))


EOS_NETWORK = dict(widths=(4,), lr=1.0, steps=100, rtol=1e-8, max_steps=400)


def _eos_network():
    """EOS_NETWORK's MLP 2→4→1 (tanh, MSE) on the 20 random points of Fig 7: D = 17."""
    return fc.nn.mlp(*fc.nn.regression_2d(20, seed=0), widths=EOS_NETWORK["widths"], activation="tanh", seed=0)


def _eos_runs(quick):
    """(key, title, loss, lr, θ₀, compare_models keywords) of each row of eos_models."""
    for expr, lr, th0, steps in EOS_RUNS:
        loss = fc.Loss.from_expr(expr)
        yield expr, f"{tex(loss)}, h = {lr:g}, θ₀ = {tuple(th0)}", loss, lr, th0, dict(
            steps=steps // 5 if quick else steps, horizon=10)
    net, k = _eos_network(), EOS_NETWORK
    quick_kw = dict(steps=12, horizon=3, models=("ngf", "pf", "central"))   # each model of a network compiles in JAX
    yield repr(net), f"{net!r}"[8:-1] + f", h = {k['lr']:g}", net.loss, k["lr"], net.theta0, dict(
        rtol=k["rtol"], max_steps=k["max_steps"], **(quick_kw if quick else dict(steps=k["steps"], horizon=10)))


def eos_models(quick):
    """Every continuous model of GD (NGF, IGR, third order, PF, PF+NP3, the central flow) predicting
    the same GD runs at the edge of stability — two small losses and a small MLP: one step and ten
    steps ahead (restarted at every third iterate: odd, so both phases of the 2-cycle count) and
    from the start."""
    from flowcore.analysis.eos import compare_models, figure_data
    from flowcore.analysis.plot import compare_models as plot_compare
    plt = _plt()
    fig, axs = plt.subplots(3, 3, figsize=(20, 18), width_ratios=(1, 1, 1.6))
    data, said = {}, []
    for row, (key, title, loss, lr, th0, kw) in enumerate(_eos_runs(quick)):
        r = compare_models(loss, lr, th0, every=3, **kw)
        plot_compare(r, axs=axs[row])
        axs[row, 0].set_title(f"{title}: time-averaged loss", fontsize=10)
        data[key] = figure_data(r)
        t, b = {k: m["table"] for k, m in r["models"].items()}, r["best"]
        avg = (f"; GD's loss averaged over steps {r['mean_from']}–{r['mean_from'] + len(r['gd_loss_mean']) - 1}, "
               f"while it is at the edge, is {r['gd_loss_mean'][-1]:.3g}, the central flow's prediction "
               f"{r['central_loss_mean'][-1]:.3g}" if r["central_loss_mean"] is not None else "")
        if r["left_edge_at"] is not None:
            avg += (f"; GD left the edge for good at step {r['left_edge_at']} (λ_max < 2/h to the end), where the "
                    "central flow, pinned at 2/h, no longer applies and is not scored")
        said.append(f"on {key} the next iterate is predicted best by {b['one_step']['theta']} "
                    f"({t[b['one_step']['theta']]['one_step']['theta']:.1e}; NGF {t['ngf']['one_step']['theta']:.1e}), "
                    f"the loss averaged over the 2-cycle {r['horizon']} steps ahead by {b['horizon']['loss_avg']} "
                    f"({t[b['horizon']['loss_avg']]['horizon']['loss_avg']:.1e}){avg}")
    fig.tight_layout()
    return fig, data, "At the edge of stability: " + "; ".join(said) + "."
