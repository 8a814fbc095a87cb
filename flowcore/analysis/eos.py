"""Every continuous model of GD on the same runs at the edge of stability.

:func:`compare_models` runs GD and asks each model — the NGF, IGR, the third-order flow, the PF
(its real part), the PF with the non-principal term (PF+NP3) and the central flow — to predict
it, three ways:

- **global**: the model started at GD's θ₀ and compared with θ_n at every n;
- **one step**: restarted at every iterate θ_n (or every k-th), compared with θ_{n+1};
- **horizon** (m steps): restarted at θ_n, compared with θ_{n+m}.

Each prediction is scored on four quantities: the parameters θ_n, GD's *time-averaged*
parameters θ̄_n = mean(θ_n … θ_{n+w−1}), the loss E(θ_n), and the time-averaged loss
Ē_n = mean(E(θ_n) … E(θ_{n+w−1})) (w = ``window``, 2 by default: one period of the 2-cycle GD
oscillates in at the edge). A flow's prediction of Ē is its loss E(φ); the central flow's is
E + ½⟨Σ, H⟩, which is what it models (Cohen et al. 2025, §3). Times: a flow runs t = m·h for m
steps of GD with learning rate h; the central flow counts in GD steps.

The central flow is defined only at or below the edge (λ_max ≤ 2/h): a restart from an iterate
above it is not made (NaN), and the result says at how many iterates it was; its global run starts
at θ₀, or at the first iterate at or below the edge when θ₀ is above it. It models GD *while GD
stays at the edge*: once GD has left it — a catapult or a decaying oscillation that leaves λ_max
below 2/h for the rest of the run (:func:`left_edge`) — the flow, still pinned at 2/h, describes a
regime GD is no longer in, and its global predictions from there on are not made (NaN); the
result says where (``left_edge_at``).

:func:`self_stabilization` is the constrained trajectory of Damian, Nichani and Lee (ICLR 2023):
projected GD on M = {λ_max ≤ 2/h, ∇E·u = 0}. With one critical direction it follows the central
flow (both are −h∇E projected on the edge, one in discrete steps), a check of each by the other.
"""
import time

import numpy as np

import flowcore as fc
from flowcore.engine.checks import names
from flowcore.engine.progress import Progress
from flowcore.analysis.central import central_flow, checked_start

COMPARE_MODELS = ("ngf", "igr", "third_order", "pf", "pf_np3", "central")
QUANTITIES = ("theta", "theta_avg", "loss", "loss_avg")


def _moving_average(a, w):
    """mean(a[n : n + w]) for n = 0 … len(a) − w, along the first axis."""
    c = np.cumsum(np.concatenate([np.zeros((1,) + a.shape[1:]), a]), axis=0)
    return (c[w:] - c[:-w]) / w


def _check(loss, lr, theta0, steps, horizon, window, models):
    th = checked_start(loss, lr, theta0)
    for name, v, lo in (("steps", steps, 2), ("horizon", horizon, 1), ("window", window, 1)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    if horizon >= steps or window > steps:
        raise ValueError(f"horizon ({horizon}) and window ({window}) must be smaller than steps ({steps})")
    unknown = [m for m in models if m not in COMPARE_MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}: choose from {', '.join(COMPARE_MODELS)}")
    return th


def left_edge(sharpness, edge, settle=20):
    """The step at which GD left the edge of stability for the rest of the run, or None.

    GD has left at step m when it had reached the edge (λ_max ≥ 2/h at some iterate), m − 1 is
    its last iterate there, and the run stays below the edge from m to its end for at least
    max(``settle``, 2 × the longest stretch below the edge between its visits) steps: a shorter
    final stretch may be the calm phase of a catapult cycle, after which GD comes back (the
    valley of docs/eos.md catapults with a period of about 90 steps and is never said to leave)."""
    above = np.flatnonzero(np.asarray(sharpness) >= edge)
    if not len(above):
        return None
    below_after = len(sharpness) - 1 - above[-1]
    gaps = np.diff(above) - 1
    return int(above[-1] + 1) if below_after >= max(settle, 2 * int(gaps.max(initial=0))) else None


def _flow_predictions(loss, lr, gd, name, horizon, rtol, starts, max_steps):
    """A flow from θ₀ over the run [N+1, D] and restarted at the iterates ``starts`` [N, horizon+1, D]
    (NaN at the others), real parts; and how many of these integrations stopped early (a PF
    stiff where hλ crosses 1 runs out of ``max_steps``: its later points are NaN, not guesses)."""
    field = fc.models.model(name).build(loss, lr)
    opts = dict(method=fc.Dop853(rtol=rtol, atol=1e-13, **({} if max_steps is None else {"max_steps": max_steps})),
                escape_radius=1e8)
    steps = len(gd) - 1
    g = fc.solve(field, gd[:1], t_eval=lr * np.arange(steps + 1), **opts)
    glob = g.y[0].real
    rest = np.full((steps, horizon + 1, gd.shape[1]), np.nan)
    r = fc.solve(field, gd[starts], t_eval=lr * np.arange(horizon + 1), **opts)
    rest[starts] = r.y.real
    value = lambda th: np.real(loss.value(th))            # noqa: E731
    reached = int(np.flatnonzero(np.all(np.isfinite(g.y[0]), axis=1))[-1])
    unfinished = {"global": int(g.status[0] != fc.Status.OK), "restarts": int(np.sum(r.status != fc.Status.OK)),
                  "global_reached": reached}
    return glob, value(glob), rest, value(rest), unfinished


def _central_predictions(loss, lr, gd, sharp, horizon, rtol, starts, left):
    """The central flow from θ₀ and from the iterates ``starts`` at or below the edge (NaN elsewhere;
    ``sharp``: GD's λ_max per iterate); its loss prediction is E, its time-averaged one E + ½⟨Σ, H⟩.
    The run from θ₀ is not scored from step ``left`` on (GD has left the edge there; None: never)."""
    steps, D = len(gd) - 1, gd.shape[1]
    nan = lambda *s: np.full(s, np.nan)                   # noqa: E731
    glob, gavg = nan(steps + 1, D), nan(steps + 1)
    rest, ravg = nan(steps, horizon + 1, D), nan(steps, horizon + 1)
    below = np.flatnonzero(sharp <= 2 / lr)
    end = steps + 1 if left is None else left
    if len(below) and below[0] < min(steps, end - 1):   # from θ₀, or the first iterate at or below the edge
        n0 = below[0]
        cf = central_flow(loss, lr, gd[n0], end - 1 - n0, t_eval=np.arange(end - n0 + 0.0),
                          solver=fc.Dop853(rtol=rtol, atol=1e-12))
        glob[n0:n0 + len(cf.t)], gavg[n0:n0 + len(cf.t)] = cf.theta, cf.time_averaged_loss
    defined = starts[sharp[starts] <= 2 / lr]
    for n in defined:
        cf = central_flow(loss, lr, gd[n], horizon, t_eval=np.arange(horizon + 1.0),
                          solver=fc.Dop853(rtol=rtol, atol=1e-12))
        rest[n, :len(cf.t)], ravg[n, :len(cf.t)] = cf.theta, cf.time_averaged_loss
    return glob, gavg, rest, ravg, len(defined)


def compare_models(loss, lr, theta0, steps, horizon=10, models=COMPARE_MODELS, window=2, every=1, rtol=1e-10,
                   max_steps=None, progress=None):
    """Each model's prediction of a GD run from ``theta0`` (see the module docstring), restarted at
    every ``every``-th iterate (the central flow costs about 0.1 s a restart). ``max_steps``
    bounds each flow integration (fc.solve's; the PF of a network at its edge of stability is
    stiff where hλ crosses 1, and its complex trajectory can run into a pole of tanh): one that
    runs out predicts nothing further, counted in ``models[name]["unfinished"]`` (``global``: 1
    if the run from θ₀ stopped early, ``restarts``: how many restarts did, ``global_reached``:
    the last step n the run from θ₀ predicted). The means in ``table`` are over the predictions
    made: a model that stopped early is scored on fewer iterates (the figure says so).

    Returns a dict: ``gd`` [steps+1, D], ``gd_loss``, ``gd_loss_avg``, ``gd_theta_avg``,
    ``sharpness`` (λ_max per iterate), ``edge`` = 2/lr, and per model ``models[name]`` with the
    global trajectory ``trajectory`` [steps+1, D], its ``loss`` and ``loss_avg`` predictions, and
    ``errors[mode][quantity]`` per iterate for mode in ('global', 'one_step', 'horizon') and the
    four QUANTITIES (absolute errors: ‖·‖ for parameters, |·| for losses; NaN where a model made
    no prediction); ``sharpness`` λ_max along the global trajectory, ``table[mode][quantity]``
    the mean over the iterates where a prediction was made (restarts: where every flow made one,
    ``scored[mode]["scored"]`` of them; see :func:`_score`), ``median[mode][quantity]`` the median
    over the same iterates (a catapult's few large errors dominate a mean), and ``defined`` the number of
    iterates a model was restarted from. ``edge_reached_at``: GD's first iterate at or above the
    edge (None: never); ``left_edge_at``: where GD left it for the rest of the run (see
    :func:`left_edge`; None: it did not), from which the central flow's run from θ₀ is not scored;
    ``mean_from``: the first n at which GD has reached the edge and the central flow has started
    (None if never); ``gd_loss_mean`` [from mean_from to left_edge_at]: GD's loss averaged from
    there to each n (over whole catapult cycles), and ``central_loss_mean`` the same average of the
    central flow's prediction — compared only while GD is at the edge.
    ``best[mode][quantity]`` names the model with the smallest mean (for 'global', among the runs
    from θ₀ that finished). ``models[name]["seconds_per_run"]``: its cost, the seconds per
    integration (the one from θ₀ and each restart). ``progress``: a bar over the models (None: shown
    when the rest will take more than a few seconds).
    """
    models = names(models, "models", COMPARE_MODELS)
    th = _check(loss, lr, theta0, steps, horizon, window, models)
    if not isinstance(every, (int, np.integer)) or isinstance(every, bool) or not 1 <= every < steps:
        raise ValueError(f"every must be an integer in [1, steps), got {every!r}")
    starts = np.arange(0, steps, every)
    gd = fc.descend(loss, th[None], fc.GD(lr), steps).iterates[0]
    if not np.all(np.isfinite(gd)):
        raise ValueError(f"GD diverged from {list(th)} at lr = {lr}: choose a smaller lr or another start")
    E = loss.value(gd)
    targets = {"theta": gd, "theta_avg": _moving_average(gd, window), "loss": E, "loss_avg": _moving_average(E, window)}
    out = {"lr": float(lr), "edge": 2 / lr, "steps": int(steps), "horizon": int(horizon), "window": int(window),
           "every": int(every),
           "theta0": th, "gd": gd, "gd_loss": E, "gd_loss_avg": targets["loss_avg"],
           "gd_theta_avg": targets["theta_avg"], "sharpness": np.linalg.eigvalsh(loss.hess(gd))[:, -1], "models": {}}
    reached = np.flatnonzero(out["sharpness"] >= out["edge"])
    out["edge_reached_at"] = int(reached[0]) if len(reached) else None
    out["left_edge_at"] = left_edge(out["sharpness"], out["edge"])
    bar = Progress(len(models), "models against GD", "model", progress)
    for name in models:
        t0 = time.perf_counter()
        if name == "central":
            glob, gavg, rest, ravg, defined = _central_predictions(loss, lr, gd, out["sharpness"], horizon, rtol,
                                                                   starts, out["left_edge_at"])
            gloss, rloss = loss.value(glob), loss.value(rest)
            unfinished = {"global": 0, "restarts": 0, "global_reached": steps}
        else:
            glob, gloss, rest, rloss, unfinished = _flow_predictions(loss, lr, gd, name, horizon, rtol, starts,
                                                                     max_steps)
            gavg, ravg, defined = gloss, rloss, len(starts)
        preds = {"global": (glob, gloss, gavg, 0), "one_step": (rest[:, 1], rloss[:, 1], ravg[:, 1], 1),
                 "horizon": (rest[:, horizon], rloss[:, horizon], ravg[:, horizon], horizon)}
        errors = {mode: _errors(p, targets, shift) for mode, (*p, shift) in preds.items()}
        ok = np.all(np.isfinite(glob), axis=1)
        sharp = np.full(len(glob), np.nan)
        sharp[ok] = np.linalg.eigvalsh(loss.hess(glob[ok]))[:, -1]
        out["models"][name] = {"trajectory": glob, "loss": gloss, "loss_avg": gavg, "sharpness": sharp, "errors": errors,
                               "defined": int(defined), "unfinished": unfinished,
                               # one integration from θ₀ and one per restart (the central flow's: those it made)
                               "seconds_per_run": (time.perf_counter() - t0) / (1 + defined)}
        bar.update(1)
    bar.close()
    out.update(_long_average(out))
    out.update(_score(out["models"]))
    return out


def _score(models):
    """Mean errors on common ground. A restart mode is scored over the iterates at which every flow
    model (all but the central flow, defined only at or below the edge) made its prediction: a
    model whose integration stopped at the hard iterates (a catapult) is not credited for skipping
    them, and the others are scored without them too (``scored[mode]``: how many iterates were, of
    those where any flow made a prediction). A run
    from θ₀ that stopped early keeps its mean over the steps it reached but cannot be the best."""
    flows = [k for k in models if k != "central"]
    scored = {}
    for mode in ("global", "one_step", "horizon"):
        for q in QUANTITIES:
            e = {k: m["errors"][mode][q] for k, m in models.items()}
            finite = [np.isfinite(e[k]) for k in flows]
            common = np.all(finite, axis=0) if mode != "global" and flows else True
            for k, m in models.items():
                scored_e = np.where(common, e[k], np.nan)
                m.setdefault("table", {}).setdefault(mode, {})[q] = _mean(scored_e)
                m.setdefault("median", {}).setdefault(mode, {})[q] = _median(scored_e)
            if q == "theta" and mode != "global" and flows:
                scored[mode] = {"scored": int(np.sum(common)), "made": int(np.sum(np.any(finite, axis=0)))}
    best = {}
    for mode in ("global", "one_step", "horizon"):
        eligible = [k for k, m in models.items() if mode != "global" or not m["unfinished"]["global"]] or list(models)
        best[mode] = {q: min(eligible, key=lambda k: _key(models[k]["table"][mode][q])) for q in QUANTITIES}
    return {"best": best, "scored": scored}


def _long_average(out):
    """GD's loss averaged from ``mean_from`` to each n (over whole catapult cycles, not only the
    2-cycle), and the same average of the central flow's prediction: from the first step at which GD
    has reached the edge and the central flow has started (GD's own from the edge without it), to
    ``left_edge_at`` (while GD is at the edge: the regime the central flow models)."""
    none = {"mean_from": None, "gd_loss_mean": None, "central_loss_mean": None}
    if out["edge_reached_at"] is None:
        return none
    n0, end, P = out["edge_reached_at"], out["left_edge_at"] or len(out["gd_loss"]), None
    if "central" in out["models"]:
        ok = np.flatnonzero(np.isfinite(out["models"]["central"]["loss_avg"][n0:end]))
        if not len(ok):
            return none
        n0 += int(ok[0])
        P = out["models"]["central"]["loss_avg"][n0:end]
    mean = lambda a: np.cumsum(a) / np.arange(1, len(a) + 1)          # noqa: E731
    return {"mean_from": n0, "gd_loss_mean": mean(out["gd_loss"][n0:end]),
            "central_loss_mean": None if P is None else mean(P)}


def _errors(pred, targets, shift):
    """Per-iterate errors of predictions made at n for iterate n + shift, where GD's target exists."""
    theta, E, Eavg = pred
    out = {}
    for q, p in (("theta", theta), ("theta_avg", theta), ("loss", E), ("loss_avg", Eavg)):
        tgt = targets[q][shift:]
        m = min(len(p), len(tgt))
        d = p[:m] - tgt[:m]
        out[q] = np.linalg.norm(d, axis=-1) if d.ndim == 2 else np.abs(d)
    return out


def _mean(e):
    e = e[np.isfinite(e)]
    return float(np.mean(e)) if len(e) else float("nan")


def _median(e):
    e = e[np.isfinite(e)]
    return float(np.median(e)) if len(e) else float("nan")


def _key(v):
    return v if np.isfinite(v) else np.inf


# ----------------------------------------------------------------------------- self-stabilization
def _top(loss, theta):
    lam, V = np.linalg.eigh(loss.hess(theta))
    return lam[-1], V[:, -1]


def _project(loss, lr, q, tol):
    """proj_M(q): the nearest point of M = {λ_max ≤ 2/h, ∇E·u = 0}, by SLSQP from q with exact
    constraint gradients: ∇λ_max = T[u, u], and ∇(∇E·u) = λu − T[u, w], w = (H − λ)⁺∇E (the
    eigenvector's derivative du = −(H − λ)⁺(dH)u). u's sign is held to that at q."""
    from scipy.optimize import minimize
    _, ref = _top(loss, q)

    def parts(p):
        lam, V = np.linalg.eigh(loss.hess(p))
        u = V[:, -1] if V[:, -1] @ ref >= 0 else -V[:, -1]
        return lam, V, u

    def balance_grad(p):
        lam, V, u = parts(p)
        g = loss.grad(p)
        gap = lam[:-1] - lam[-1]
        w = V[:, :-1] @ ((V[:, :-1].T @ g) / gap)          # (H − λ)⁺ g on the other eigenvectors
        Tuw = (loss.third(p[None], (u + w)[None])[0] - loss.third(p[None], (u - w)[None])[0]) / 4
        return lam[-1] * u - Tuw

    cons = [{"type": "ineq", "fun": lambda p: 2 / lr - parts(p)[0][-1],
             "jac": lambda p: -loss.third(p[None], parts(p)[2][None])[0]},
            {"type": "eq", "fun": lambda p: loss.grad(p) @ parts(p)[2], "jac": balance_grad}]
    r = minimize(lambda p: 0.5 * np.sum((p - q) ** 2), q, jac=lambda p: p - q, constraints=cons, method="SLSQP",
                 options={"ftol": tol, "maxiter": 500})
    viol = max(0.0, parts(r.x)[0][-1] - 2 / lr, abs(loss.grad(r.x) @ parts(r.x)[2]))
    if not r.success and viol > 1e-9 * (1 + 2 / lr):
        raise RuntimeError(f"self_stabilization: the projection on the stable set failed at {q} ({r.message})")
    return r.x


def self_stabilization(loss, lr, theta0, steps, tol=1e-13):
    """The constrained trajectory of Damian, Nichani and Lee (2023), θ†_{n+1} = proj_M(θ†_n − h∇E(θ†_n)),
    M = {θ : λ_max(H(θ)) ≤ 2/h, ∇E(θ)·u(θ) = 0}, u the top eigenvector: GD's predicted path at
    the edge of stability with its oscillation along u removed. Returns θ† [steps+1, D] (θ†₀ =
    proj_M(θ₀))."""
    th = _check(loss, lr, theta0, max(steps, 2), 1, 1, ())
    out = [_project(loss, lr, th, tol)]
    for _ in range(steps):
        out.append(_project(loss, lr, out[-1] - lr * loss.grad(out[-1]), tol))
    return np.array(out)


def comparison_lines(result):
    """Which model predicts what, from the numbers: per (mode, quantity) the best model, its mean
    error and the runner-up's."""
    names = {"one_step": "1 step", "horizon": f"{result['horizon']} steps", "global": "from θ₀"}
    what = {"theta": "parameters θ", "theta_avg": "averaged θ̄", "loss": "loss E", "loss_avg": "averaged loss Ē"}
    lines = []
    for mode in ("one_step", "horizon", "global"):
        for q in QUANTITIES:
            ranked = sorted(result["models"], key=lambda k: _key(result["models"][k]["table"][mode][q]))
            err = [result["models"][k]["table"][mode][q] for k in ranked[:2]]
            second = f"; next {ranked[1]} {err[1]:.2e}" if len(ranked) > 1 else ""
            lines.append(f"{names[mode]:>9s}, {what[q]:16s}: {ranked[0]:12s} {err[0]:.2e}{second}")
    return lines


def regime_lines(result):
    """Where GD was at the edge, and so where the central flow's run from θ₀ applies."""
    at, left = result.get("edge_reached_at"), result.get("left_edge_at")
    if at is None:
        return ["GD never reached the edge (λ_max < 2/h throughout): the central flow is the gradient flow here"]
    if left is None:
        return [f"GD reached the edge at n = {at} and did not leave it for good"]
    return [f"GD reached the edge at n = {at} and left it at n = {left} (λ_max < 2/h to the end): the central "
            "flow's run from θ₀, pinned at 2/h, is not scored from there"]


def figure_data(result):
    """The numbers a comparison figure is drawn from (for JSON): everything but the per-iterate errors
    and trajectories."""
    keep = ("lr", "edge", "steps", "horizon", "window", "every", "theta0", "gd_loss", "gd_loss_avg", "sharpness", "best",
            "scored", "edge_reached_at", "left_edge_at", "mean_from", "gd_loss_mean", "central_loss_mean")
    out = {k: result[k] for k in keep}
    out["models"] = {k: {f: m[f] for f in ("loss_avg", "sharpness", "table", "median", "defined", "unfinished")}
                     for k, m in result["models"].items()}
    return out
