"""The analyses of Rosca et al. (2023) on toy losses, as functions returning numbers.

Each returns a dict of arrays and scalars; :mod:`flowcore.analysis.tour` draws them. Flows are
compared with GD at the times t = n·h at which the flow models GD's iterate n.
"""
import time

import numpy as np

import flowcore as fc
from flowcore.engine.checks import names, positive
from flowcore.engine.progress import Progress
from flowcore.solvers.optim import hessian_free

TRACK_FLOWS = ("ngf", "igr", "third_order", "pf")
RESTART_CHUNK = 8  # restarts integrated together (one batch of Hessian–vector products for a network)


def alpha_curves(z):
    """α(z) of the spectral flows (θ' = α(hH)g, z = hλ) from their definitions in
    :mod:`flowcore.problems.models`: NGF −1, IGR −(1 + z/2), third order −(1 + z/2 + z²/3), PF
    log(1 − z)/z (−1 at 0, by a series near 0; the +iπ side past z = 1). Fig 3."""
    z = np.asarray(z, dtype=float)
    out = {"z": z}
    for name in ("ngf", "igr", "third_order"):
        out[name] = np.broadcast_to(fc.models.model(name).alpha(z), z.shape).astype(float)
    out["pf"] = fc.models.model("pf").alpha(z + 0j)
    return out


def pf_vs_gd(loss, lr, theta0, steps, flow="pf"):
    """The PF (or another flow) from theta0 [N, D] at t = n·lr against GD's iterate n.

    On a quadratic the PF is exact: θ(nh) = θ_n (Theorem: (1 − hλ)^{t/h} per eigen-direction),
    also where GD diverges (|1 − hλ| > 1). Returns t, flow [N, steps+1, D] (complex), gd, and the
    largest relative error max‖θ(nh) − θ_n‖ / max(1, ‖θ_n‖).
    """
    th = np.atleast_2d(np.asarray(theta0, dtype=float))
    t = lr * np.arange(steps + 1)
    sol = fc.solve(fc.models.model(flow).build(loss, lr), th, t_eval=t, method=fc.Dop853(rtol=1e-13, atol=1e-14))
    gd = fc.descend(loss, th, fc.GD(lr), steps).iterates
    err = np.linalg.norm(sol.y - gd, axis=-1) / np.maximum(1, np.linalg.norm(gd, axis=-1))
    return {"t": t, "flow": sol.y, "gd": gd, "max_rel_error": float(np.nanmax(err)),
            "status": [fc.Status(int(s)).name for s in sol.status]}


def tracking_error(loss, lr, theta0, steps, flows=TRACK_FLOWS, rtol=1e-11, max_steps=10**6):
    """‖θ_n − θ(nh)‖ of each flow started at GD's θ_0 (global error), and the one-step error
    ‖θ_{n+1} − φ_h(θ_n)‖ of each flow restarted at every GD iterate (local error). Fig 7.

    theta0 is one start [D]. Returns t, gd [steps+1, D], and per flow: global [steps+1],
    local [steps], trajectory [steps+1, D] (complex for the PF), and where the flow from θ_0
    stopped: ``status`` (a :class:`flowcore.Status` name; 'OK' when it reached t = steps·h) and
    ``reached``, the last n it reached (NaN after it: e.g. the PF at a minimum with hλ = 1, where
    α = log(1 − hλ)/(hλ) is infinite, stops for MAX_STEPS or SINGULAR). ``max_steps``: the
    integrator's steps per flow (DOP853 at ``rtol``) before it stops with MAX_STEPS; a flow
    creeping toward such a singularity reaches further with more (on x⁴/4 − x²/2 at h = 0.5
    from 0.3: n = 6 with 10⁴ or 10⁵ steps, 9 with 10⁶, which take ≈ 12 s).
    """
    flows = names(flows, "flows")
    lr = positive(lr, "lr")
    th = np.asarray(theta0, dtype=float).reshape(1, -1)
    if th.shape[1] != loss.dim:
        raise ValueError(f"theta0 must have {loss.dim} coordinates, got {th.shape[1]}")
    if not (isinstance(steps, (int, np.integer)) and steps >= 1):
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    gd = fc.descend(loss, th, fc.GD(lr), steps).iterates[0]
    t = lr * np.arange(steps + 1)
    out = {"t": t, "gd": gd, "lr": float(lr), "flows": {}}
    for name in flows:
        field = fc.models.model(name).build(loss, lr)
        glob = fc.solve(field, th, t_eval=t, method=fc.Dop853(rtol=rtol, atol=1e-13, max_steps=max_steps),
                        escape_radius=1e8)
        loc = fc.solve(field, gd[:-1], t_span=(0.0, lr), method=fc.Dop853(rtol=rtol, atol=1e-13), escape_radius=1e8)
        finite = np.all(np.isfinite(glob.y[0]), axis=-1)
        out["flows"][name] = {"trajectory": glob.y[0],
                              "global": np.linalg.norm(glob.y[0] - gd, axis=-1),
                              "local": np.linalg.norm(loc.y[:, -1] - gd[1:], axis=-1),
                              "status": fc.Status(glob.status[0]).name,
                              "reached": int(steps if finite.all() else np.argmin(finite) - 1)}
    return out


def stability_run(loss, lr, theta0, steps, flows=("ngf", "pf"), rtol=1e-11, k=None, progress=None):
    """A GD run with, per iterate: E, ΔE_n = E(θ_{n+1}) − E(θ_n), the Hessian's eigenvalues, the
    stability coefficients sc_i = α_PF(hλ_i)gᵀu_i, ‖Hg‖, ‖Hĝ‖, and the per-iteration drift
    ‖θ_{n+1} − φ_h^NGF(θ_n)‖ (how far GD's step lands from the gradient flow's). Figs 10, 11/12, 16/17.

    Also each flow's (``flows``: model names, the NGF always among them) one-step prediction
    φ_h(θ_n) of θ_{n+1} and of the loss change E(φ_h(θ_n)) − E(θ_n) (real parts: the PF's is
    complex), the NGF and the positive gradient flow ('pgf', θ' = +∇E) bracketing what a
    first-order flow can do (DOP853 at ``rtol``); and the correlations corr(‖Hg‖, drift) and
    corr(max_i |Re sc_i| over hλ_i > 2 directions, ΔE) — over all iterations (those without an
    unstable direction count as 0) and over the ``unstable_iterations`` that have one; the counts
    ``loss_increases``, ``increases_with_unstable_direction`` and (with 'pgf' among the flows)
    ``between_ngf_and_pgf``, the steps at which GD's ΔE lies between the NGF's and the PGF's (None
    without it). And Fig 8 from the same eigenpairs: ``projection`` (:func:`projection_predictions`'
    result).

    ``k``: the eigenpairs per iterate (None: all of them from the dense Hessian, or the top 8 by
    Lanczos for a network above 1 024 parameters; see fc.diagnostics). ``seconds`` says what each
    part cost: ``eigenpairs_per_iterate`` and, per flow, ``per_restart``. ``progress``: a bar over
    the flows' restarts (None: shown when they take more than a few seconds).
    """
    flows = names(flows, "flows")
    lr = positive(lr, "lr")
    th = np.asarray(theta0, dtype=float).reshape(1, -1)
    if th.shape[1] != loss.dim:
        raise ValueError(f"theta0 must have {loss.dim} coordinates, got {th.shape[1]}")
    if not (isinstance(steps, (int, np.integer)) and steps >= 2):
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
    run = fc.descend(loss, th, fc.GD(lr), steps)
    it = run.iterates[0]
    if not np.all(np.isfinite(it)):
        raise ValueError(f"GD diverged from {theta0} at lr = {lr}; choose a smaller lr or another start")
    t0 = time.perf_counter()
    d = fc.diagnostics(loss, it, lr, k=k)
    seconds = {"eigenpairs_per_iterate": (time.perf_counter() - t0) / len(it), "per_restart": {}}
    E = d["loss"]
    ends, run_flows = {}, tuple(dict.fromkeys(("ngf",) + tuple(flows)))
    bar = Progress(len(run_flows) * steps, "one-step predictions", "restart", progress)
    try:
        for name in run_flows:
            field, t0, parts = fc.models.model(name).build(loss, lr), time.perf_counter(), []
            for a in range(0, steps, RESTART_CHUNK):        # chunks: the bar moves, the batch stays large
                parts.append(fc.solve(field, it[a:min(a + RESTART_CHUNK, steps)], t_span=(0.0, lr),
                                      method=fc.Dop853(rtol=rtol, atol=1e-13), progress=False).y[:, -1])
                bar.update(len(parts[-1]))
            ends[name] = np.concatenate(parts)
            seconds["per_restart"][name] = (time.perf_counter() - t0) / steps
    finally:
        bar.close()
    drift = np.linalg.norm(it[1:] - ends["ngf"], axis=-1)
    dE = np.diff(E)
    unstable = lr * d["eigenvalues"][:-1] > 2
    sc = np.where(unstable, np.abs(d["stability_coefficients"][:-1].real), 0.0).max(axis=-1)
    predicted = {k: np.real(loss.value(y)) - E[:-1] for k, y in ends.items()}
    between = ((predicted["ngf"] <= dE) & (dE <= predicted["pgf"])).sum() if "pgf" in predicted else None
    return {"lr": float(lr), "iterates": it, "loss": E, "delta_loss": dE,
            "eigenvalues": d["eigenvalues"], "sharpness": d["eigenvalues"][:, -1],
            "stability_coefficients": d["stability_coefficients"], "unstable_sc": sc,
            "Hg_norm": d["Hg_norm"], "Hghat_norm": d["Hghat_norm"], "drift": drift,
            "predicted_delta_loss": predicted,
            "loss_increases": int(np.sum(dE > 0)),
            "increases_with_unstable_direction": int(np.sum((dE > 0) & unstable.any(axis=-1))),
            "between_ngf_and_pgf": None if between is None else int(between),
            "one_step_error": {k: np.linalg.norm(it[1:] - y, axis=-1) for k, y in ends.items()},
            "corr_Hg_drift": float(np.corrcoef(d["Hg_norm"][:-1], drift)[0, 1]),
            "corr_sc_loss_increase": _corr(sc, dE),
            "unstable_iterations": int(unstable.any(axis=-1).sum()),
            "corr_sc_loss_increase_unstable_only": _corr(sc[unstable.any(axis=-1)], dE[unstable.any(axis=-1)]),
            "projection": _projections(loss, lr, it, d["eigenvalues"][:-1, -1], d["eigenvectors"][:-1, :, -1]),
            "seconds": seconds}


def _corr(a, b):
    """Pearson correlation, NaN when either side is constant or has fewer than 3 points."""
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def projection_predictions(loss, lr, iterates, flows=TRACK_FLOWS):
    """GD's gradient along the top Hessian eigenvector, one step ahead, and each flow's prediction.
    Fig 8.

    At iterate n take λ₀ and u₀ (H(θ_n)'s top eigenpair, sign with gᵀu₀ ≥ 0) and the projection
    x_n = ∇E(θ_n)ᵀu₀. Linearised about θ_n, a spectral flow θ' = α(hH)∇E moves ∇E by
    (∇E)' = Hα(hH)∇E, so along u₀ it predicts x(h) = x_n exp(c h) with c = λ₀α(hλ₀): e^{−hλ₀}
    for the NGF (the sign never changes), e^{−hλ₀ − (hλ₀)²/2} for IGR, and exactly 1 − hλ₀ for
    the PF (log(1 − hλ₀) + iπ past hλ₀ = 1: the sign flips, as GD's does). GD's own value is
    ∇E(θ_{n+1})ᵀu₀, with the same u₀.

    Returns ``sharpness`` λ₀ [N−1], ``projection`` x_n, ``gd`` the next projection, per flow
    the prediction ``predicted[name]`` (real part) and its ``factor`` exp(ch) (complex), and the
    counts ``gd_sign_flips`` (sign(gd) ≠ sign(x_n)) and ``sign_right[name]`` (the prediction's sign
    is GD's).
    """
    flows = names(flows, "flows")
    it = np.atleast_2d(np.asarray(iterates, float))
    if it.shape[0] < 2 or it.shape[1] != loss.dim or not np.all(np.isfinite(it)):
        raise ValueError(f"iterates must be a finite GD run [N >= 2, {loss.dim}], got shape {it.shape}")
    # the top eigenpair, u₀ signed so that gᵀu₀ ≥ 0: from the dense Hessian, or for a network above
    # DENSE_HESSIAN_MAX parameters by Lanczos on Hessian–vector products
    top = 1 if hessian_free(loss) else None
    d = fc.diagnostics(loss, it[:-1], lr, k=top)
    return _projections(loss, lr, it, d["eigenvalues"][:, -1], d["eigenvectors"][:, :, -1], flows)


def _projections(loss, lr, it, lam0, u, flows=TRACK_FLOWS):
    """Fig 8 from the top eigenpairs (λ₀ [N−1], u₀ [N−1, D], gᵀu₀ ≥ 0) of the iterates it[:-1]."""
    g = loss.grad(it)
    x, nxt = np.einsum("nd,nd->n", g[:-1], u), np.einsum("nd,nd->n", g[1:], u)
    z = lr * lam0 + 0j
    out = {"lr": float(lr), "sharpness": lam0, "projection": x, "gd": nxt, "factor": {}, "predicted": {}}
    for name in flows:
        f = np.exp(z * fc.models.model(name).alpha(z))
        out["factor"][name], out["predicted"][name] = f, np.real(x * f)
    out["gd_sign_flips"] = int(np.sum(np.sign(nxt) != np.sign(x)))
    out["sign_right"] = {k: int(np.sum(np.sign(v) == np.sign(nxt))) for k, v in out["predicted"].items()}
    return out


def dal_comparison(loss, theta0, steps, lrs, powers=(1.0, 2.0), tol=1e-6):
    """GD at fixed learning rates against DAL-p (h = 2/‖Hĝ‖^p) from one start. Figs 18/20.

    Returns per run: loss curve, its learning rates, the first iteration with E − E_min ≤ tol
    (E_min: the lowest loss any run reaches; None if never), and its cost (seconds per step).
    """
    th = np.asarray(theta0, dtype=float).reshape(1, -1)
    methods = {f"GD lr={h:g}": fc.GD(h) for h in lrs}
    methods.update({f"DAL-p, p={p:g}" if p != 1 else "DAL": fc.DAL(power=p) for p in powers})
    runs, seconds = {}, {}
    bar = Progress(len(methods), "DAL against fixed rates", "run", None)
    try:
        for k, method in methods.items():
            start = time.perf_counter()
            r = fc.descend(loss, th, method, steps)
            runs[k], seconds[k] = (r.iterates[0], r.lr[0]), time.perf_counter() - start
            bar.update(1)
    finally:
        bar.close()
    curves = {k: loss.value(v[0]) for k, v in runs.items()}
    best = min(np.nanmin(c) for c in curves.values())
    out = {"runs": {}}
    for k, c in curves.items():
        hit = np.flatnonzero(c - best <= tol)
        out["runs"][k] = {"loss": c, "lr": runs[k][1], "iterations_to_tol": int(hit[0]) if hit.size else None,
                          "final_loss": float(c[-1]), "seconds_per_step": seconds[k] / max(steps, 1)}
    out["tol"], out["best_loss"] = tol, float(best)
    return out


def sharpness(loss, iterates, k=1, bar=None):
    """The top-k Hessian eigenvalues [N, k] (descending) at each iterate: Lanczos on Hessian–vector
    products for a JAX loss with D > 64 (H never formed), the full eigendecomposition otherwise.
    ``bar``: a progress bar advanced by one per iterate."""
    it = np.atleast_2d(np.asarray(iterates, float))
    if fc.nn.is_jax(loss) and loss.dim > 64:
        out = []
        for th in it:
            out.append(fc.nn.top_eigenpairs(loss, th, k, tol=1e-10)[0])
            if bar is not None:
                bar.update(1)
        return np.array(out)
    if bar is not None:
        bar.update(len(it))
    return np.linalg.eigvalsh(loss.hess(it))[:, ::-1][:, :k]


CATAPULT = 0.2     # an iterate with λ₀ > (1 + CATAPULT)·2/h is in a catapult, not hovering at the edge


def network_edge_of_stability(loss, lr, theta0, steps, every=7, flows=("ngf", "igr", "pf"), rtol=1e-7,
                              max_steps=20_000, progress=None):
    """The edge of stability of a GD run (the paper's Figs 9/10, for networks): the sharpness λ₀ per
    iterate against 2/h, GD's loss rises where λ₀ > 2/h, and each flow's one-step prediction
    (parameters and loss change) from every ``every``-th iterate past the edge (from the first n with
    λ₀ ≥ 2/h; the whole run when it never gets there; odd by default, so that both phases of GD's
    2-cycle are scored). Sharpness by Lanczos; the flows by dopri5 at ``rtol`` (on the Iris MLP at
    rtol 1e-7 the matrix-free PF took 2 492 evaluations with dopri5 against 3 464 with DOP853: its
    complex path in a catapult is rough, and the lower order needs fewer stages there), each
    integration capped at ``max_steps`` steps (the PF's complex path can run into a
    pole of tanh: such a restart stops, is counted, and predicts nothing).

    A flow's prediction φ_h(θ_n) is its real part (the PF is complex past hλ = 1): the one-step
    error is ‖Re φ_h(θ_n) − θ_{n+1}‖ and the predicted loss change E(Re φ_h(θ_n)) − E(θ_n).
    Restarts are split into those **at the edge** (λ₀ ≤ (1 + CATAPULT)·2/h: GD hovers about it) and
    those **in a catapult** (λ₀ above that: the quadratic picture behind every flow fails), each
    summarised apart in ``summary[group][flow]``: the median one-step error over the restarts every
    flow resolved, at how many of those the flow was the best, and of the restarts at which GD's loss
    rose, at how many the flow predicted a rise.

    Returns: iterates, loss, delta_loss, sharpness [steps+1], edge = 2/h, edge_step (first n with
    λ₀ ≥ 2/h, None if never), hover_fraction (of the iterates after edge_step, the share with λ₀
    within 20 % of 2/h), increases_above / increases_below (loss rises at iterates with λ₀ above /
    at or below 2/h) and the iterates above / below, restarts (the iterates n), catapult [R] (which
    restarts are in a catapult), per flow: one_step_error and predicted_delta_loss [R] (NaN where
    the integration stopped), status [R] (fc.Status names), seconds_per_restart and, for the
    matrix-free PF, its Krylov work (Hessian–vector products, dimensions); and summary. ``progress``:
    bars for the sharpness and the restarts (None: shown when they take more than a few seconds).
    """
    flows = names(flows, "flows")
    lr = positive(lr, "lr")
    th = np.asarray(theta0, dtype=float).reshape(1, -1)
    if th.shape[1] != loss.dim:
        raise ValueError(f"theta0 must have {loss.dim} coordinates, got {th.shape[1]}")
    if not (isinstance(steps, (int, np.integer)) and steps >= 2):
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
    if not (isinstance(every, (int, np.integer)) and every >= 1):
        raise ValueError(f"every must be an integer >= 1 (restart the flows at every k-th iterate), got {every!r}")
    it = fc.descend(loss, th, fc.GD(lr), steps).iterates[0]
    if not np.all(np.isfinite(it)):
        raise ValueError(f"GD diverged at lr = {lr}; choose a smaller lr")
    E = loss.value(it)
    dE = np.diff(E)
    bar = Progress(steps + 1, "edge of stability: sharpness", "iterate", progress)
    try:
        S = sharpness(loss, it, bar=bar)[:, 0]
    finally:
        bar.close()
    edge = 2.0 / lr
    above = S[:-1] > edge
    hit = np.flatnonzero(S >= edge)
    edge_step = int(hit[0]) if hit.size else None
    pick = np.arange(edge_step if edge_step is not None and edge_step < steps else 0, steps, every)
    catapult = S[pick] > (1 + CATAPULT) * edge
    out = {"lr": float(lr), "edge": edge, "iterates": it, "loss": E, "delta_loss": dE, "sharpness": S,
           "edge_step": edge_step,
           "hover_fraction": float(np.mean(np.abs(S[edge_step:] / edge - 1) < 0.2)) if edge_step is not None else 0.0,
           "increases_above": int(np.sum((dE > 0) & above)), "iterates_above": int(above.sum()),
           "increases_below": int(np.sum((dE > 0) & ~above)), "iterates_below": int((~above).sum()),
           "restarts": pick, "catapult": catapult, "flows": {}}
    bar = Progress(len(flows) * len(pick), "edge of stability: one-step predictions", "restart", progress)
    try:
        for name in flows:
            # the matrix-free PF's field error a hundredth of the integrator's tolerance
            extra = {"krylov": fc.Krylov(rtol / 100)} if name.startswith("pf") and fc.nn.matrix_free_by_default(loss) else {}
            field = fc.models.model(name).build(loss, lr, **extra)
            t0, ends, codes = time.perf_counter(), [], []
            for k in range(0, len(pick), RESTART_CHUNK):    # chunks: the bar moves, the batch stays large
                sol = fc.solve(field, it[pick[k:k + RESTART_CHUNK]], t_span=(0.0, lr), method=fc.Dopri5(rtol=rtol, atol=1e-10, max_steps=max_steps), progress=False)
                ends.append(np.where((sol.status == fc.Status.OK)[:, None], sol.y[:, -1].real, np.nan))
                codes += [fc.Status(int(c)).name for c in sol.status]
                bar.update(len(sol.status))
            end = np.concatenate(ends)
            out["flows"][name] = {"one_step_error": np.linalg.norm(end - it[pick + 1], axis=-1),
                                  "predicted_delta_loss": loss.value(end) - E[pick], "status": codes,
                                  "seconds_per_restart": (time.perf_counter() - t0) / max(len(pick), 1)}
            impl = getattr(field, "impl", None)                 # the matrix-free PF counts its work
            if impl is not None:
                out["flows"][name]["krylov"] = {"hvps": impl.stats["hvps"], "evaluations": impl.stats["evaluations"],
                                                "median_dimension": float(np.median(impl.stats["dims"] or [0])),
                                                "max_dimension": int(max(impl.stats["dims"] or [0]))}
    finally:
        bar.close()
    out["summary"] = {group: _eos_summary(out, sel) for group, sel in (("edge", ~catapult), ("catapult", catapult))}
    return out


def _eos_summary(r, sel):
    """Per flow, over the restarts ``sel``: how many there are, how many every flow resolved, the
    flow's median one-step error there, at how many of them it is the best, and how many of GD's
    loss rises among them it predicted."""
    flows = r["flows"]
    err = np.array([f["one_step_error"] for f in flows.values()])            # [flows, R]
    resolved = sel & np.all(np.isfinite(err), axis=0)
    best = np.argmin(np.where(np.isfinite(err), err, np.inf), axis=0)
    rises = sel & (r["delta_loss"][r["restarts"]] > 0)
    out = {"restarts": int(sel.sum()), "resolved": int(resolved.sum()), "gd_rises": int(rises.sum())}
    for j, (name, f) in enumerate(flows.items()):
        e = f["one_step_error"][resolved]
        out[name] = {"median_error": float(np.median(e)) if e.size else float("nan"),
                     "best": int(np.sum(resolved & (best == j))),
                     "rises_predicted": int(np.sum(rises & (f["predicted_delta_loss"] > 0))),
                     "stopped": int(np.sum(sel & ~np.isfinite(f["one_step_error"])))}
    return out


def eos_summary_lines(r):
    """The summary of :func:`network_edge_of_stability` in words, a line per group of restarts."""
    lines = []
    for group, what in (("edge", f"at or below the edge (λ₀ ≤ {1 + CATAPULT:g}·2/h)"),
                        ("catapult", f"in catapults (λ₀ > {1 + CATAPULT:g}·2/h)")):
        g = r["summary"][group]
        if not g["restarts"]:
            continue
        flows = [k for k in r["flows"]]
        med = ", ".join(f"{k} {g[k]['median_error']:.1e}" for k in flows)
        best = ", ".join(f"{k} {g[k]['best']}" for k in flows)
        rises = ", ".join(f"{k} {g[k]['rises_predicted']}" for k in flows)
        stopped = [f"{k} {g[k]['stopped']}" for k in flows if g[k]["stopped"]]
        lines.append(f"{what}: {g['restarts']} restarts, {g['resolved']} resolved by every flow; median one-step "
                     f"error {med}; best at {best} of them; of GD's {g['gd_rises']} loss rises predicted by {rises}"
                     + (f"; stopped (pole or step cap): {', '.join(stopped)}" if stopped else ""))
    return lines
