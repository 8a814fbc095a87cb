"""The tour: the lessons' exercises, the paper's analyses and SGD's models, each a figure with its numbers.

``flowcore tour -o DIR`` calls :func:`run`: every item writes DIR/NAME.png and DIR/NAME.json and
gets one sentence in DIR/index.md. An item is a function ``item(quick) -> (figure, data,
sentence)``; ``quick`` shrinks grids and step counts (the tests use it).
"""
import functools
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np

import flowcore as fc
from flowcore.analysis import paper
from flowcore.analysis.basins import ESCAPED as ESCAPED_LABEL, basins
from flowcore.analysis.critical import critical_points, stable_lr_interval
from flowcore.analysis.dynamics import as_json, orbit_diagram, portrait, uncertainty_exponent
from flowcore.analysis.plot import _plt, tex, basins as plot_basins, orbit_diagram as plot_orbit, portrait as plot_portrait
from flowcore.analysis.plot import coordinate_label, sweep_image
from flowcore.analysis.sweep import sweep


NORM_STEP_ERROR = r"$\Vert\theta_{n+1} - \varphi_h(\theta_n)\Vert$"
NORM_TRACK_ERROR = r"$\Vert\theta_n - \theta(nh)\Vert$"


def _contours(ax, loss, box, n=300):
    """Contours of a 2-D loss over ``box``, the axes named by the loss's variables. The levels skip
    the lowest 2 % of the values: a level just above a valley's floor breaks into fragments on
    the grid."""
    x, y = (np.linspace(lo, hi, n) for lo, hi in box)
    X, Y = np.meshgrid(x, y)
    E = loss.value(np.stack([X, Y], -1))
    ax.contour(x, y, E, levels=np.unique(np.quantile(E, 0.02 + 0.98 * np.linspace(0, 1, 22) ** 2)), cmap="viridis",
               linewidths=0.6)
    ax.set_xlabel(coordinate_label(loss.vars, 0, 2))
    ax.set_ylabel(coordinate_label(loss.vars, 1, 2))


# ------------------------------------------------------------------------------ lessons
def gf_vs_gd(quick):
    """Gradient flow against GD at three learning rates on three losses."""
    plt = _plt()
    cases = [("x**2 + y**2", (1.5, 1.2), [0.1, 0.5, 0.9]),
             ("x**2 + 25*y**2", (1.5, 1.0), [0.01, 0.03, 0.039]),
             ("(x**2 - 1)**2 + y**2", (0.3, 1.2), [0.05, 0.15, 0.24])]
    fig, axs = plt.subplots(1, 3, figsize=(15, 4.8))
    data = {}
    steps = 30
    for ax, (expr, st, lrs) in zip(axs, cases):
        loss = fc.Loss.from_expr(expr)
        _contours(ax, loss, [(-1.8, 1.8), (-1.5, 1.5)])
        T = steps * lrs[-1]
        sol = fc.solve(fc.flows.ngf(loss, 1.0), [st], t_eval=np.linspace(0, T, 200), method=fc.Dopri5(rtol=1e-10, atol=1e-12))
        ax.plot(sol.y[0, :, 0], sol.y[0, :, 1], "k-", lw=2, label=f"gradient flow (t ≤ {T:.2g})")
        finals = {}
        for j, h in enumerate(lrs):
            it = fc.descend(loss, [st], fc.GD(h), steps).iterates[0]
            # later rates drawn first and wider: a path that runs along another's stays visible
            ax.plot(it[:, 0], it[:, 1], "o-", ms=6 - 1.5 * j, lw=2.4 - 0.8 * j, color=f"C{j + 1}", zorder=3 + j,
                    label=f"GD lr = {h:g}")
            finals[str(h)] = it[-1]
        ax.set_title(f"E = {tex(expr)}")
        ax.legend(fontsize=8, loc="best")
        ax.set_xlim(-1.8, 1.8)
        ax.set_ylim(-1.5, 1.5)
        data[expr] = {"start": st, "lrs": lrs, "gd_final": finals, "flow_final": sol.y[0, -1]}
    fig.suptitle("Gradient flow vs GD: small rates follow the flow, large ones zig-zag across the valley")
    fig.tight_layout()
    return fig, data, ("GD at a small learning rate follows the gradient flow; near 2/λ_max it "
                       "oscillates across the sharp direction (x²+25y²: λ_max = 50, edge at 0.04).")


def quadratic_lr(quick):
    """E = x²/2 at η = 0.5 … 2.1: the stability boundary η = 2."""
    plt = _plt()
    loss = fc.losses.quadratic_1d(1.0)
    etas = [0.5, 1.0, 1.5, 1.9, 2.0, 2.1]
    steps = 25
    fig, ax = plt.subplots(figsize=(10, 5))
    data = {"etas": etas, "multipliers": [], "final_abs": []}
    for j, eta in enumerate(etas):
        it = fc.descend(loss, [[1.0]], fc.GD(eta), steps).iterates[0, :, 0]
        ax.plot(np.arange(steps + 1), it, "o-", ms=3, lw=0.9, label=f"η = {eta:g} (1 − η = {1 - eta:+.1f})")
        data["multipliers"].append(1 - eta)
        data["final_abs"].append(abs(it[-1]))
        if not np.allclose(it, (1 - eta) ** np.arange(steps + 1)):      # x_n = (1 − η)^n exactly
            raise RuntimeError(f"GD on x²/2 at η = {eta} does not give (1 − η)^n: the engine is broken")
    (interval,) = stable_lr_interval(critical_points(loss)[0], "gd")
    data["stability_boundary"] = interval[1]
    # measured: the largest η on a 0.001 grid whose iterates do not grow (|x_200| ≤ |x_0|)
    grid = np.round(np.linspace(1.9, 2.1, 201), 10)
    bounded = [abs(fc.descend(loss, [[1.0]], fc.GD(h), 200).iterates[0, -1, 0]) <= 1 for h in grid]
    data["measured_boundary"] = float(grid[bounded][-1])
    ax.set_ylim(-3, 3)
    ax.axhline(0, color="0.5", lw=0.6)
    ax.set_xlabel("iteration n")
    ax.set_ylabel("$x_n$")
    ax.set_title(f"GD on x²/2: $x_n = (1 - \\eta)^n$; stable for η < {interval[1]:g}")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig, data, "On x²/2, GD's iterates are (1 − η)^n: they converge for η < 2, oscillate for η = 2 and diverge above."


def momentum(quick):
    """Heavy ball (β = 0.9) against GD on x² + 25y²: iterations to within 0.01 of the minimum."""
    plt = _plt()
    loss = fc.Loss.from_expr("x**2 + 25*y**2")
    st, steps = [[1.0, 1.0]], 400
    runs = {"GD lr=0.035": fc.descend(loss, st, fc.GD(0.035), steps),
            "heavy ball lr=0.035, β=0.9": fc.descend(loss, st, fc.HeavyBall(0.035, beta=0.9), steps),
            "GD lr=0.01": fc.descend(loss, st, fc.GD(0.01), steps),
            "heavy ball lr=0.01, β=0.9": fc.descend(loss, st, fc.HeavyBall(0.01, beta=0.9), steps)}
    fig, axs = plt.subplots(1, 3, figsize=(17, 5))
    paths = {0.035: axs[0], 0.01: axs[1]}
    for h, ax in paths.items():
        _contours(ax, loss, [(-1.2, 1.2), (-1.2, 1.2)])
        ax.set_title(f"first 40 iterates at lr {h:g} on {tex('x**2 + 25*y**2')}")
    ax2 = axs[2]
    data = {}
    for j, (name, r) in enumerate(runs.items()):
        it = r.iterates[0]
        dist = np.linalg.norm(it, axis=1)
        hit = np.flatnonzero(dist <= 0.01)
        data[name] = {"iterations_to_0.01": int(hit[0]) if hit.size else None}
        ax = paths[0.035 if "0.035" in name else 0.01]
        ax.plot(it[:41, 0], it[:41, 1], "o-", ms=2.5, lw=0.8, color=f"C{j}",
                label="heavy ball, β = 0.9" if "heavy" in name else "GD")
        ax2.semilogy(dist, color=f"C{j}", label=f"{name}: {data[name]['iterations_to_0.01']} its to 0.01")
    for ax in paths.values():
        ax.legend(fontsize=8, loc="lower left", framealpha=0.9)
    ax2.axhline(0.01, color="k", ls=":", lw=0.8)
    ax2.set_xlabel("iteration")
    ax2.set_ylabel(r"$\Vert\theta_n - \theta^*\Vert$")
    ax2.set_title("distance to the minimum")
    ax2.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    its = {k: v["iterations_to_0.01"] for k, v in data.items()}
    return fig, data, (f"On x² + 25y² at lr 0.01, momentum β = 0.9 needs {its['heavy ball lr=0.01, β=0.9']} iterations to "
                       f"reach ‖θ‖ ≤ 0.01 against GD's {its['GD lr=0.01']}; at lr 0.035, near GD's best rate, it "
                       f"overshoots and needs {its['heavy ball lr=0.035, β=0.9']} against {its['GD lr=0.035']}.")


def min_norm(quick):
    """GD from 0 on an underdetermined least-squares problem converges to the pseudo-inverse solution."""
    plt = _plt()
    rng = np.random.default_rng(1)
    A, b = rng.standard_normal((5, 20)), rng.standard_normal(5)
    loss = fc.losses.quadratic(A.T @ A, -A.T @ b)           # ½‖Aw − b‖² up to a constant
    h = 1.0 / np.linalg.norm(A, 2) ** 2
    steps = 3000
    it = fc.descend(loss, np.zeros((1, 20)), fc.GD(h), steps).iterates[0]
    w_star = np.linalg.pinv(A) @ b
    dist = np.linalg.norm(it - w_star, axis=1)
    other = w_star + (np.eye(20) - np.linalg.pinv(A) @ A) @ rng.standard_normal(20)   # another solution
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    ax.semilogy(dist, label=r"$\Vert w_n - A^+ b\Vert$")
    ax.set_xlabel("iteration")
    ax.set_ylabel("distance")
    ax.set_title(f"GD from 0, lr = 1/σ_max² = {h:.3g}")
    ax.legend()
    ax2.bar(np.arange(20) - 0.2, it[-1], 0.4, label="GD limit")
    ax2.bar(np.arange(20) + 0.2, w_star, 0.4, label="A⁺b (pinv)")
    ax2.set_xlabel("coordinate")
    ax2.set_ylabel("value")
    ax2.set_title(f"5×20 least squares: ‖w‖ = {np.linalg.norm(it[-1]):.4f} vs another solution {np.linalg.norm(other):.4f}")
    ax2.legend()
    fig.tight_layout()
    data = {"distance_to_pinv": float(dist[-1]), "lr": h, "steps": steps, "norm_gd": float(np.linalg.norm(it[-1])),
            "norm_other_solution": float(np.linalg.norm(other)), "residual": float(np.linalg.norm(A @ it[-1] - b))}
    return fig, data, f"GD from zero on a 5×20 least-squares problem lands on the minimum-norm solution A⁺b (distance {dist[-1]:.1e})."


def euler(quick):
    """Explicit Euler against the exact solution of dy/dt = −y."""
    plt = _plt()
    field = fc.Field.from_expr(["-y"], vars=("y",))
    T = 6.0
    steps = [0.1, 0.5, 1.0, 1.5, 2.1]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    t = np.linspace(0, T, 300)
    ax.plot(t, np.exp(-t), "k-", lw=2, label="exact $e^{-t}$")
    data = {"dt": steps, "max_error": []}
    for j, dt in enumerate(steps):
        n = int(round(T / dt))
        ts = dt * np.arange(n + 1)
        sol = fc.solve(field, [[1.0]], t_eval=ts, method=fc.Euler(dt))
        y = sol.y[0, :, 0]
        if not np.allclose(y, (1 - dt) ** np.arange(n + 1)):     # Euler on y' = −y is GD on y²/2
            raise RuntimeError(f"Euler on y' = −y at dt = {dt} does not give (1 − dt)^n: the engine is broken")
        ax.plot(ts, y, "o-", ms=3, color=f"C{j}", label=f"Euler dt = {dt:g}")
        data["max_error"].append(float(np.max(np.abs(y - np.exp(-ts)))))
    small = np.array([0.2, 0.1, 0.05, 0.025])
    errs = [abs(fc.solve(field, [[1.0]], t_span=(0, 1.0), method=fc.Euler(d)).y[0, -1, 0] - np.exp(-1)) for d in small]
    data["order"] = float(np.polyfit(np.log(small), np.log(errs), 1)[0])
    ax.set_xlabel("t")
    ax.set_ylabel("y")
    ax.set_ylim(-2, 1.5)
    ax.set_title(r"dy/dt = −y: Euler $y_n = (1 - dt)^n$")
    ax.legend(fontsize=8)
    ax2.loglog(small, errs, "o-", label=f"error at t = 1 (slope {data['order']:.2f})")
    ax2.set_xlabel("dt")
    ax2.set_ylabel("$|y_N - e^{-1}|$")
    ax2.set_title("Euler is first order")
    ax2.legend()
    fig.tight_layout()
    return fig, data, "Euler on dy/dt = −y is GD on y²/2: accurate for small dt, oscillating for dt > 1, unstable for dt > 2; its error is first order."


def ring_flow(quick):
    """Gradient flow and GD on (a² + b² − 1)² + ab."""
    loss = fc.Loss.from_expr("(a**2 + b**2 - 1)**2 + a*b")
    starts = [[1.4, 1.2], [-1.3, 1.0], [0.1, 0.05], [-0.2, -1.4]]
    d = portrait(loss, [(-1.6, 1.6), (-1.6, 1.6)], 0.05, flow="ngf", starts=starts, gd_lrs=[0.05], steps=60)
    fig = plot_portrait(d, title="(a² + b² − 1)² + ab: gradient flow, GD (lr 0.05), critical points")
    data = {k: d[k] for k in ("critical", "starts", "gd", "trajectories", "t")}
    return fig, data, "On (a²+b²−1)²+ab the ring of minima tilts into two minima on the anti-diagonal; the origin is a local maximum, and saddles sit on the diagonal."


def quartic(quick):
    """w⁴ − 2w²: fixed points, their stability, basins and GD at several rates."""
    plt = _plt()
    loss = fc.losses.quartic_1d()
    cps = critical_points(loss)
    lrs = [0.05, 0.2, 0.26, 0.3]
    n = 400 if quick else 2000
    fig, axs = plt.subplots(1, 3, figsize=(16, 4.6))
    w = np.linspace(-1.8, 1.8, 400)
    axs[0].plot(w, loss.value(w[:, None]), "k-")
    for c in cps:
        iv = stable_lr_interval(c, "gd")
        where = f"GD-stable for h in ({iv[0][0]:g}, {iv[0][1]:g})" if iv else "never GD-stable"
        axs[0].plot(c.point[0], loss.value(c.point), "o" if c.kind == "min" else "^", ms=9,
                    label=f"{c.kind} w = {c.point[0]:g}, E'' = {c.eigenvalues[0]:g}: {where}")
    axs[0].set_xlabel("w")
    axs[0].set_ylabel("E(w)")
    axs[0].set_title("E = w⁴ − 2w²: fixed points and stability")
    axs[0].legend(fontsize=7, loc="upper center")
    rows, fractions = [], {}
    for h in lrs:
        b = basins(loss, fc.GD(h), (-1.8, 1.8, n), rest=fc.RestTest(steps=3000))
        rows.append(b)
        fractions[str(h)] = b.fractions
    entries = {}
    for b in rows:
        for e in b.entries:
            entries.setdefault(e.name, e)
    names = sorted(entries, key=lambda nm: (entries[nm].label < 0, not entries[nm].attractor,
                                            entries[nm].kind == "cycle", nm))
    strong = plt.get_cmap("tab10").colors
    colors, k = [], 0
    for nm in names:
        if entries[nm].label < 0:
            colors.append({"escaped": "0.2", "unresolved": "0.65"}.get(nm, "k"))
        else:
            colors.append(strong[k % 10])
            k += 1
    from matplotlib.colors import ListedColormap
    cmap = ListedColormap(colors)
    img = np.array([[names.index(b.entry(l).name) for l in b.labels] for b in rows])
    axs[1].imshow(img, aspect="auto", cmap=cmap, vmin=-0.5, vmax=len(names) - 0.5, interpolation="nearest",
                  extent=(-1.8, 1.8, len(lrs) - 0.5, -0.5))
    axs[1].set_yticks(range(len(lrs)), [f"lr {h:g}" for h in lrs])
    axs[1].set_xlabel("start w₀")
    axs[1].set_title("GD basins per learning rate")
    from matplotlib.patches import Patch
    axs[1].legend(handles=[Patch(color=colors[i], label=nm) for i, nm in enumerate(names)], fontsize=7,
                  loc="upper left", bbox_to_anchor=(0, -0.17), ncol=2)
    for j, h in enumerate(lrs):
        it = fc.descend(loss, [[0.3]], fc.GD(h), 40).iterates[0, :, 0]
        axs[2].plot(it, "o-", ms=3, lw=0.8, label=f"lr = {h:g}")
    axs[2].set_xlabel("iteration")
    axs[2].set_ylabel("$w_n$ (from $w_0$ = 0.3)")
    axs[2].set_title("GD: converges for h < 0.25, 2-cycle and beyond above")
    axs[2].legend(fontsize=8)
    fig.tight_layout()
    data = {"critical": [c.as_dict() for c in cps], "gd_stable_interval_min": stable_lr_interval(cps[0], "gd"),
            "basin_fractions": fractions}
    return fig, data, "On w⁴ − 2w² the minima ±1 (E'' = 8) attract GD for h < 0.25; above, GD settles on 2-cycles and the basins fragment."


def vector_fields(quick):
    """Slope fields of dy/dt = −y and y(1 − y), and the rotation dx/dt = y, dy/dt = −x."""
    plt = _plt()
    fig, axs = plt.subplots(1, 3, figsize=(18, 4.6))
    T, Y = np.meshgrid(np.linspace(0, 4, 21), np.linspace(-1, 2, 21))
    data = {}
    for ax, (expr, title) in zip(axs[:2], [("-y", "dy/dt = −y"), ("y*(1 - y)", "dy/dt = y(1 − y)")]):
        f = fc.Field.from_expr([expr], vars=("y",))
        F = f(Y[..., None])[..., 0]
        n = np.hypot(1, F)
        ax.quiver(T, Y, 1 / n, F / n, angles="xy", color="0.5", width=0.003)
        y0 = np.array([[-0.8], [-0.05], [0.3], [1.0], [1.8]])
        ts = np.linspace(0, 4, 100)
        sol = fc.solve(f, y0, t_eval=ts, method=fc.Dopri5(rtol=1e-10, atol=1e-12), escape_radius=50)
        for k in range(len(y0)):
            ax.plot(ts, sol.y[k, :, 0], lw=1.8, label=f"y(0) = {y0[k, 0]:g}")
        ax.set_ylim(-1, 2)
        ax.set_xlabel("t")
        ax.set_ylabel("y")
        ax.set_title(title)
        ax.legend(fontsize=7)
        data[title] = {"y0": y0[:, 0], "y_at_4": sol.y[:, -1, 0]}
    rot = fc.Field.from_expr(["y", "-x"], vars=("x", "y"))
    X, Yg = np.meshgrid(np.linspace(-1.5, 1.5, 25), np.linspace(-1.5, 1.5, 25))
    F = rot(np.stack([X, Yg], -1))
    axs[2].streamplot(X, Yg, F[..., 0], F[..., 1], color="0.6", density=0.9, linewidth=0.6)
    ts = np.linspace(0, 2 * np.pi, 64)
    exact = fc.solve(rot, [[1.0, 0.0]], t_eval=ts, method=fc.Dopri5(rtol=1e-11, atol=1e-12)).y[0]
    eul = fc.solve(rot, [[1.0, 0.0]], t_eval=np.linspace(0, 2 * np.pi, 21), method=fc.Euler(2 * np.pi / 20)).y[0]
    axs[2].plot(exact[:, 0], exact[:, 1], "k-", lw=2, label="exact (dopri5): the unit circle")
    axs[2].plot(eul[:, 0], eul[:, 1], "o-", color="C3", ms=3, label="Euler, 20 steps per turn: spirals out")
    axs[2].set_aspect("equal")
    axs[2].set_xlabel("x")
    axs[2].set_ylabel("y")
    axs[2].set_title("rotation dx/dt = y, dy/dt = −x")
    axs[2].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    data["rotation"] = {"radius_after_turn_exact": float(np.linalg.norm(exact[-1])),
                        "radius_after_turn_euler": float(np.linalg.norm(eul[-1])),
                        "euler_growth_closed_form": float((1 + (2 * np.pi / 20) ** 2) ** 10)}
    fig.tight_layout()
    return fig, data, "Slope fields: −y decays to 0, y(1 − y) flows to the stable 1 away from the unstable 0, and Euler spirals out of the rotation's circles by √(1+dt²) per step."


def double_well_basins(quick):
    """Basins of GD, IGR and the PF on the double well (x² − 1)² + y² at h = 0.2."""
    plt = _plt()
    loss = fc.losses.double_well()
    n = 61 if quick else 201
    grid = ((-2, 2, n), (-2, 2, n))
    fig, axs = plt.subplots(3, 1, figsize=(9, 13))
    data = {}
    for ax, model in zip(axs, ("gd", "igr", "pf")):
        b = basins(loss, fc.method(model, lr=0.2, **({} if model == "gd" else {"t_max": 30.0})), grid,
                   rest=fc.RestTest(steps=500))
        plot_basins(b, ax=ax, title=f"{model.upper()} at h = 0.2")
        Sb, Sbb, nb = b.entropy(box=5)
        escaped = b.labels == ESCAPED_LABEL
        data[model] = {"labels": [e.as_dict() for e in b.entries], "Sb": Sb, "Sbb": Sbb,
                       "max_imag_residual": float(b.imag_residual.max()),
                       "escapes_from_abs_x": float(np.abs(b.starts[..., 0][escaped]).min()) if escaped.any() else None}
    fig.tight_layout()
    esc = {m: sum(e["fraction"] for e in d["labels"] if e["kind"] == "escaped") for m, d in data.items()}
    at_min = {m: sum(e["fraction"] for e in d["labels"] if e["critical_kind"] == "min") for m, d in data.items()}
    def outcome(m):
        x = data[m]["escapes_from_abs_x"]
        return (f"{m.upper()} ends at a minimum from {100 * at_min[m]:.1f}% of the starts and escapes from "
                f"{100 * esc[m]:.1f}%" + (f" (every escaped start has |x| ≥ {x:.2f})" if x is not None else ""))
    return fig, data, (f"At h = 0.2 (hλ = 1.6 at the minima), on the square [−2, 2]²: "
                       + "; ".join(outcome(m) for m in data) + ". The y-axis is the saddle's stable manifold; the "
                       "PF's escaping paths spiral out through ℂ.")


def orbit(quick):
    """GD orbit diagram of (w² − 1)²/4 with the largest Lyapunov exponent."""
    loss = fc.Loss.from_expr("(w**2 - 1)**2/4")
    lrs = np.linspace(0.8, 1.6, 200 if quick else 800)
    r = orbit_diagram(loss, lrs, [0.4], transient=500 if quick else 2000, keep=64 if quick else 200)
    fig = plot_orbit(r, title="GD on (w² − 1)²/4: period doubling past h = 1 (hλ = 2), then chaos")
    periods = r["period"]
    first2 = next((float(h) for h, p in zip(lrs, periods) if p == 2), None)
    chaos = next((float(h) for h, ly in zip(lrs, r["lyapunov"]) if ly > 0.01), None)
    data = {"lrs": lrs, "lyapunov": r["lyapunov"], "periods": periods, "first_period_2": first2,
            "first_positive_lyapunov": chaos}
    return fig, data, (f"The minima lose stability at h = 1 (hλ = 2): a 2-cycle from h ≈ {first2:.3f}, period "
                       f"doubling, and chaos (positive Lyapunov exponent) from h ≈ {chaos:.3f}.")


def _runs(ds):
    """A sweep's (x, lr) label map for the JSON, exact and short: per start x, the labels across
    the learning rates as runs 'label*count'."""
    rows = [" ".join(f"{v}*{len(list(g))}" for v, g in itertools.groupby(row.tolist()))
            for row in ds.label.transpose("x", "lr").values]
    return {"lr": ds.lr.values, "x": ds.x.values, "label_runs_along_lr": rows}


def trainability(quick):
    """GD's trainability map of w⁴ − 2w² over (learning rate, start), computed by fa.sweep; a
    zoom into the escape edge; and the boundary's uncertainty exponent along lines of starts."""
    plt = _plt()
    loss = fc.losses.quartic_1d()
    n = 150 if quick else 600
    kw = dict(rest=fc.RestTest(steps=2000), progress=False)
    full = sweep(loss, "gd", {"x": (-2.0, 2.0, n), "lr": (0.02, 0.42, n)}, **kw)
    zoom = sweep(loss, "gd", {"x": (1.855, 1.875, n), "lr": (0.19, 0.21, n)}, **kw)
    lrs = [0.12, 0.2, 0.23]
    m = 2 ** (15 if quick else 19)
    lines = sweep(loss, "gd", {"lr": lrs, "x": (0.0, 2.0, m)}, outputs=["label"], **kw)
    fig, axs = plt.subplots(1, 3, figsize=(18, 5.6), width_ratios=(1.15, 1, 1))
    handles = sweep_image(full, axs[0], "x", "lr")
    axs[0].add_patch(plt.Rectangle((0.19, 1.855), 0.02, 0.02, fill=False, ec="r", lw=1.5))
    axs[0].set_title("GD on $w^4 - 2w^2$: where each start ends (λ = 8 at the minima)")
    fig.legend(handles=handles, fontsize=9, loc="lower center", ncol=len(handles), title="outcome: share of starts")
    sweep_image(zoom, axs[1], "x", "lr")
    axs[1].set_title("zoom (red box): bands of ±1 nested at the escape edge")
    data = {"shares": {str(v): float(np.mean(full.label.values == v)) for v in np.unique(full.label.values)},
            "label_meanings": full.attrs["label_meanings"], "critical_points": full.attrs["critical_points"],
            "full": _runs(full), "zoom": _runs(zoom), "lines": {}}
    dx = 2.0 / (m - 1)
    for j, h in enumerate(lrs):
        eps, f, a = uncertainty_exponent(lines.label.values[j], dx)
        axs[2].loglog(eps, f, "o-", ms=3, color=f"C{j}", label=f"h = {h:g}: α = {a:.3f}, dimension 1 − α = {1 - a:.3f}")
        data["lines"][str(h)] = {"eps": eps, "f": f, "alpha": a, "boundary_dimension": 1 - a}
    axs[2].set_xlabel("ε (distance between starts)")
    axs[2].set_ylabel("f(ε): share of starts whose outcome changes within ε")
    axs[2].set_title(r"uncertainty exponent along $w_0 \in [0, 2]$: $f \propto \varepsilon^\alpha$")
    axs[2].legend(fontsize=8, loc="upper left")
    fig.tight_layout(rect=(0, 0.11, 1, 1))
    d = {h: v["boundary_dimension"] for h, v in data["lines"].items()}
    return fig, data, (f"GD converges for h < 1/4 (hλ < 2) from |w₀| up to an escape edge, near which the basins of "
                       f"±1 alternate in bands nested without end; along w₀ the boundary has dimension 1 − α = "
                       f"{d['0.2']:.2f} at h = 0.2 (fractal), against {d['0.12']:.2f} at h = 0.12 (no escape in "
                       "reach: isolated boundary points). Past h = 1/4 starts end in 2-cycles, then chaos.")


# ------------------------------------------------------------------------------ the paper
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
# a network that sharpens from below the edge and catapults (2/h = 2; λ_max 1.63 → 2.5 → 1.6 in 100
# steps); its PF is loose-tolerance (predictions good to 1e-5, not 1e-10) and capped, because its
# complex trajectories near a catapult cross hλ = 1 and run into poles of tanh
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
    """Fig 8 on an MLP: the gradient along the top Hessian eigenvector one step ahead, GD against
    each flow's prediction x(0)e^{ch} from the step before."""
    plt = _plt()
    net, lr = _regression_net(), 1.2
    it = fc.descend(net.loss, net.theta0[None], fc.GD(lr), 20 if quick else 60).iterates[0]
    r = paper.projection_predictions(net.loss, lr, it)
    n = np.arange(len(r["gd"]))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.6))
    ax.plot(n, r["gd"], "ko", ms=5, mfc="none", zorder=3, label=r"GD: $\nabla E(\theta_{n+1})^\top u_0$")
    rel = {}
    # each later flow drawn narrower on top, so that curves that agree (IGR, third order) all stay visible
    for j, (k, v) in enumerate(r["predicted"].items()):
        style = dict(color=f"C{j}", lw=3.2 - 0.7 * j, zorder=2 + j)
        ax.plot(n, v, "-", label=f"{k}: " + r"$x(0)\,e^{ch}$", **style)
        rel[k] = np.abs(v - r["gd"]) / np.abs(r["gd"])
        ax2.semilogy(n, rel[k], "-", label=k, **style)
    ax.axhline(0, color="0.6", lw=0.8)
    hl = lr * r["sharpness"]
    ax.set(xlabel="GD step n (prediction made from step n)", ylabel=r"projection on $u_0(\theta_n)$")
    ax.set_title(f"{net!r}"[8:-1] + f", h = {lr:g}: hλ₀ from {hl.min():.2f} to {hl.max():.2f}", fontsize=9)
    ax.legend(fontsize=8)
    ax2.set(xlabel="GD step n", ylabel="|prediction − GD| / |GD|", title="relative error of each prediction")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    flips = np.sign(r["gd"]) != np.sign(r["projection"])
    data = {"network": repr(net), "lr": lr, "sharpness": r["sharpness"], "projection": r["projection"], "gd": r["gd"],
            "predicted": r["predicted"], "gd_sign_flips": int(flips.sum()), "steps": len(n),
            "sign_right": {k: int(np.sum(np.sign(v) == np.sign(r["gd"]))) for k, v in r["predicted"].items()},
            "median_relative_error": {k: float(np.median(v)) for k, v in rel.items()}}
    med = ", ".join(f"{k} {v:.2g}" for k, v in data["median_relative_error"].items())
    return fig, data, (f"Along the top eigenvector, GD's gradient flips sign at {data['gd_sign_flips']} of {len(n)} steps "
                       f"(hλ₀ > 1); the PF's factor 1 − hλ₀ gets the sign right {data['sign_right']['pf']} times, the "
                       f"NGF's e^(−hλ₀) {data['sign_right']['ngf']} times; median relative errors: {med}.")


def network_stability(quick):
    """Figs 11/12 on a network: stability coefficients along GD on a 4-layer MLP, and the loss change
    of the NGF and the positive gradient flow started at each iterate, against GD's."""
    plt = _plt()
    net, lr = _iris_deep_net(), 1.0
    r = paper.stability_run(net.loss, lr, net.theta0, 15 if quick else 80, flows=("ngf", "pgf"), rtol=1e-9)
    dE, n = r["delta_loss"], np.arange(len(r["delta_loss"]))
    unstable = (lr * r["eigenvalues"][:-1] > 2).any(axis=-1)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(14, 5.2))
    ax.plot(n, dE, "ko", ms=4, mfc="none", label=r"GD: $E(\theta_{n+1}) - E(\theta_n)$")
    for k, c in (("ngf", "C0"), ("pgf", "C3")):
        ax.plot(n, r["predicted_delta_loss"][k], "-", color=c, label=f"{k} from " + r"$\theta_n$, time h")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set(xlabel="GD step n", ylabel="loss change over one step")
    fig.suptitle(f"{net!r}"[8:-1] + f", h = {lr:g}", fontsize=10)
    ax.set_title("GD's loss change against the NGF's (always down) and the PGF's (always up)", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)
    ax2.plot(n, r["unstable_sc"], "C0-", label=r"max $|\mathrm{Re}\,sc_i|$ over $h\lambda_i > 2$ (0 where none)")
    ax3 = ax2.twinx()
    ax3.plot(n, dE, "C3o", ms=3, mfc="none", label=r"$\Delta E_n$")
    ax3.set_yscale("symlog", linthresh=1e-3)
    ax2.set(xlabel="GD step n", ylabel="stability coefficient")
    ax3.set_ylabel("loss change")
    ax2.set_title(f"corr(sc, ΔE) = {r['corr_sc_loss_increase']:.2f} over all {len(n)} steps, "
                  f"{r['corr_sc_loss_increase_unstable_only']:.2f} over the {r['unstable_iterations']} with hλ > 2",
                  fontsize=9)
    h1, l1 = ax2.get_legend_handles_labels()
    h2, l2 = ax3.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.tight_layout()
    up = dE > 0
    between = (r["predicted_delta_loss"]["ngf"] <= dE) & (dE <= r["predicted_delta_loss"]["pgf"])
    data = {"network": repr(net), "lr": lr, "delta_loss": dE, "predicted_delta_loss": r["predicted_delta_loss"],
            "one_step_error": r["one_step_error"], "unstable_sc": r["unstable_sc"],
            "sharpness": r["sharpness"], "correlation_all_iterations": r["corr_sc_loss_increase"],
            "correlation_unstable_iterations": r["corr_sc_loss_increase_unstable_only"],
            "unstable_iterations": r["unstable_iterations"], "iterations": len(n),
            "loss_increases": int(up.sum()), "increases_with_unstable_direction": int(np.sum(up & unstable)),
            "between_ngf_and_pgf": int(between.sum())}
    return fig, data, (f"On {net!r}"[:3] + f"{net!r}"[8:-1] + f" at h = {lr:g}: the loss rises at {data['loss_increases']} "
                       f"of {len(n)} steps, {data['increases_with_unstable_direction']} of them with a direction "
                       f"hλ > 2 ({r['unstable_iterations']} steps have one); the largest stability coefficient of "
                       f"those directions correlates {r['corr_sc_loss_increase_unstable_only']:.2f} with the loss "
                       f"change; GD's change lies between the NGF's and the PGF's at {data['between_ngf_and_pgf']} "
                       "steps.")


def network_dal(quick):
    """Fig 18 on a network: DAL and DAL-p against fixed learning rates on the 4-layer Iris MLP, with
    the learning rate each takes."""
    plt = _plt()
    net = _iris_deep_net()
    lrs = (0.25, 0.5, 1.0)
    r = paper.dal_comparison(net.loss, net.theta0, 15 if quick else 150, lrs, powers=(1.0, 2.0), tol=1e-2)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5.6))
    for j, (k, v) in enumerate(r["runs"].items()):
        its = v["iterations_to_tol"]
        style = dict(color=f"C{j}", lw=2.2 if k.startswith("DAL") else 1.0, ls="--" if k.startswith("DAL") else "-")
        ax.semilogy(v["loss"], label=f"{k} ({f'{its} its' if its is not None else 'never'} to within 0.01)", **style)
        ax2.semilogy(v["lr"], label=k, **style)
    ax.set(xlabel="GD step", ylabel=r"$E(\theta_n)$")
    fig.suptitle(f"{net!r}"[8:-1], fontsize=10)
    ax.set_title("loss (tolerance: 0.01 above the lowest any run reaches)", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    ax2.set(xlabel="GD step", ylabel="learning rate", title=r"DAL's rate $h = 2/\Vert H\hat g\Vert^p$ per step")
    ax2.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)
    fig.tight_layout()
    data = {"network": repr(net), "tol": r["tol"], "best_loss": r["best_loss"],
            "runs": {k: {"iterations_to_tol": v["iterations_to_tol"], "final_loss": v["final_loss"], "loss": v["loss"],
                         "lr": v["lr"]} for k, v in r["runs"].items()}}
    fin = ", ".join(f"{k} {v['final_loss']:.3g}" for k, v in r["runs"].items())
    return fig, data, f"On {net!r}"[:3] + f"{net!r}"[8:-1] + f", final losses after {len(r['runs']['DAL']['loss']) - 1} steps: {fin}."


def sgd_double_well(quick):
    """SGD and its SDE on a double well at batch sizes 1, 2, 4: the stationary density ∝ exp(−2E/σ²)
    with σ² = ηs²/B, and escape rates against the SDE's exact mean first-passage time."""
    from flowcore.analysis import sgd
    from flowcore.analysis.plot import sgd_double_well as plot
    r = sgd.double_well_sgd(horizon=200 if quick else 1000, runs=100 if quick else 500)
    rates = "; ".join(f"B = {B}: SGD {row['sgd']['exit_rate']:.2g}, SDE {row['sde']['exit_rate']:.2g}, exact "
                      f"{row['exact_exit_rate']:.2g}" for B, row in r["batches"].items())
    return plot(r), r, (f"SGD with η = {r['lr']:g} on a double well whose gradient noise has variance "
                        f"{r['spread']**2:.3g}: escape rates per unit time from one well to the other {rates} "
                        "— larger batches are quieter and escape exponentially less often.")


def sgd_temperature(quick):
    """Learning rate and batch size as temperature: which of a sharp (deeper) and a flat minimum SGD
    ends in, against η/B, for three learning rates and four batch sizes, with the SDE."""
    from flowcore.analysis import sgd
    from flowcore.analysis.plot import sgd_temperature as plot
    r = sgd.temperature(horizon=50 if quick else 200, runs=100 if quick else 400,
                        batches=(1, 4) if quick else (1, 2, 4, 8))
    by = {}
    for p in r["sgd"]:
        by.setdefault(round(p["lr_over_batch"], 12), []).append(p["flat"])
    same = [v for v in by.values() if len(v) > 1]
    spread = max((max(v) - min(v) for v in same), default=0.0)
    lo, hi = min(r["sgd"], key=lambda p: p["flat"]), max(r["sgd"], key=lambda p: p["flat"])
    return plot(r), r, (f"Runs with the same η/B end in the flat minimum in the same share (largest difference "
                        f"{spread:.2f} over {len(same)} pairs with equal η/B): from {hi['flat']:.2f} at η/B = "
                        f"{hi['lr_over_batch']:g} to {lo['flat']:.2f} at η/B = {lo['lr_over_batch']:g}; the SDE "
                        "with σ² = s²η/B follows the same curve.")


def sme_weak_error(quick):
    """Weak error of the stochastic modified equations SME-1 and SME-2 against SGD on a quadratic:
    O(η) and O(η²), with Monte-Carlo SGD beside the closed form."""
    from flowcore.analysis import sgd
    from flowcore.analysis.plot import sme_weak_error as plot
    r = sgd.sme_weak_error(runs=20_000 if quick else 1_000_000)
    return plot(r), r, (f"At t = 1 the weak error of E w² falls with η (the three smallest) at fitted slope {r['slopes'][1]:.2f} for "
                        f"SME-1 and {r['slopes'][2]:.2f} for SME-2 (theory 1 and 2); Monte-Carlo SGD over "
                        f"{r['runs']:,} seeds agrees with SGD's closed form to "
                        f"{max(x['mc_error'] for x in r['rows']):.1e}.")


def resnet_ode(quick):
    """Lesson 16b: a ResNet of 4 residual blocks and a neural ODE with the same block as its vector
    field, trained on two moons: hidden-state paths, speed along depth, and the Jacobian of the map."""
    from flowcore.analysis.depth import resnet_and_ode
    plt = _plt()
    X, y = fc.nn.moons(200, noise=0.1, seed=0)
    r = resnet_and_ode(X, y, steps=200 if quick else 2000, grid=11 if quick else 41)
    fig, axs = plt.subplots(1, 4, figsize=(22, 5))
    show = np.arange(0, len(X), 4)                      # every 4th point keeps the paths readable
    for ax, key, name in ((axs[0], "resnet", "ResNet"), (axs[1], "ode", "neural ODE (fc.solve)")):
        paths = r["resnet_states"][:, show] if key == "resnet" else np.moveaxis(r["ode_states"][show], 1, 0)
        for j, i in enumerate(show):
            c = "C0" if y[i] else "C3"
            ax.plot(paths[:, j, 0], paths[:, j, 1], "-", color=c, lw=0.7, alpha=0.6,
                    marker="." if key == "resnet" else None, ms=4)
        ax.plot(paths[0, :, 0], paths[0, :, 1], "ko", ms=2.5, label="inputs x₀")
        for cls, c in ((1, "C0"), (0, "C3")):
            end = paths[-1][y[show] == cls]
            ax.plot(end[:, 0], end[:, 1], "o", color=c, ms=4, label=f"class {cls}: final state")
        w, b = r["readout"][key]["w"], r["readout"][key]["c"]
        lim, ylim = ax.get_xlim(), ax.get_ylim()
        xx = np.linspace(*lim, 2)
        ax.plot(xx, -(w[0] * xx + b) / w[1], "k--", lw=1, label="decision line wᵀx + c = 0")
        ax.set(xlim=lim, ylim=ylim)
        ax.set(xlabel="$x_1$", ylabel="$x_2$", title=f"{name}: hidden-state paths (accuracy {r['accuracy'][key]:.0%})")
        ax.legend(fontsize=7, loc="lower left")
    K = r["blocks"]
    axs[2].step(np.arange(K + 1), np.r_[r["speed"]["resnet"], r["speed"]["resnet"][-1]], where="post", color="C1",
                label=r"ResNet: $\Vert x_{k+1} - x_k\Vert$ in block k")
    axs[2].plot(r["ode_t"], r["speed"]["ode"], "C2-", label=r"neural ODE: $\Vert dx/dt\Vert$")
    axs[2].set(xlabel="depth (block k / time t)", ylabel="mean speed over the data", ylim=(0, None),
               title=f"velocity jump between unit steps: ResNet {r['velocity_jump']['resnet']:.2f}, "
                     f"ODE {r['velocity_jump']['ode']:.2f}")
    axs[2].title.set_fontsize(10)
    axs[2].legend(fontsize=8)
    bins = np.linspace(np.log10(min(r["det_resnet"].min(), r["det_ode"].min())) - 0.1,
                       np.log10(max(r["det_resnet"].max(), r["det_ode"].max())) + 0.1, 40)
    neg = int(np.sum(r["det_resnet"] <= 0))
    axs[3].hist(np.log10(r["det_resnet"][r["det_resnet"] > 0]), bins, color="C1", alpha=0.6,
                label=f"ResNet ({neg} grid points with det ≤ 0)")
    axs[3].hist(np.log10(r["det_ode"]), bins, color="C2", alpha=0.6, label="neural ODE: exp(∫ tr ∂f/∂x dt) > 0")
    axs[3].set(xlabel=r"$\log_{10}\det\,\partial x_K/\partial x_0$", ylabel="grid points",
               title="Jacobian determinant of the learned map over a grid")
    axs[3].legend(fontsize=8)
    fig.tight_layout()
    agree = float(np.max(np.abs(r["det_ode"] / r["det_ode_rk4"] - 1)))
    data = {k: r[k] for k in ("blocks", "width", "steps", "lr", "ode_steps", "accuracy", "speed", "velocity_jump",
                              "ode_rk4_vs_solve", "ode_status", "readout", "resnet_states", "ode_t")}
    data.update({"ode_states": r["ode_states"][show], "shown": show, "final_loss": {k: float(v[-1]) for k, v in
                 r["loss"].items()}, "det_resnet_min": float(r["det_resnet"].min()), "det_resnet_nonpositive": neg,
                 "det_ode_min": float(r["det_ode"].min()), "det_ode_liouville_vs_rk4": agree, "X": X, "y": y})
    return fig, data, (f"On two moons both reach accuracy {r['accuracy']['resnet']:.0%} (ResNet) and "
                       f"{r['accuracy']['ode']:.0%} (ODE); the ResNet's velocity jumps by "
                       f"{r['velocity_jump']['resnet']:.2f} of its mean between blocks, the ODE's by "
                       f"{r['velocity_jump']['ode']:.2f} between unit times; the ODE map's Jacobian determinant is "
                       f"≥ {data['det_ode_min']:.2g} everywhere (Liouville, matching JAX's RK4 Jacobian to "
                       f"{agree:.0e}), the ResNet's ≥ {data['det_resnet_min']:.2g}; RK4 training and fc.solve's "
                       f"continuous model end {r['ode_rk4_vs_solve']:.1e} apart.")


LESSONS = [gf_vs_gd, quadratic_lr, momentum, min_norm, euler, ring_flow, quartic, vector_fields,
           double_well_basins, orbit, trainability, resnet_ode]
PAPER = [alpha, pf_regimes, pf_quadratic_2d, banana, tracking, edge_of_stability, stability_coefficients,
         drift, dal, eos_models, network_eos, network_tracking, network_projection, network_stability, network_dal]
STOCHASTIC = [sgd_double_well, sgd_temperature, sme_weak_error]
ITEMS = LESSONS + PAPER + STOCHASTIC


SLOW_FIRST = ("network_eos", "network_tracking", "eos_models", "resnet_ode", "network_stability", "trainability",
              "sgd_double_well")     # started first when parallel


def _share_cores(threads):
    """In a tour worker: OpenMP and XLA (JAX) use ``threads`` threads, so that the workers share the
    cores instead of each starting a thread per core (oversubscribed, two workers ran no faster
    than one)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                               f" intra_op_parallelism_threads={threads}").strip()


def _render(name, out, quick):
    """Render one item into ``out`` (NAME.png, NAME.json); returns its sentence."""
    f = next(g for g in ITEMS if g.__name__ == name)
    plt = _plt()
    t0 = time.perf_counter()
    fig, data, sentence = f(quick)
    fig.savefig(Path(out) / f"{name}.png", dpi=110)
    plt.close(fig)
    data = {"item": name, "summary": sentence, "seconds": time.perf_counter() - t0, **data}
    (Path(out) / f"{name}.json").write_text(json.dumps(as_json(data), indent=1))
    return sentence


def _first_sentence(doc):
    """A docstring's first sentence, on one line (its first line may end mid-sentence)."""
    text = " ".join(doc.split())
    end = text.find(". ")
    return text if end < 0 else text[:end + 1]


class _CtrlC:
    """Remembers a Ctrl-C. Python drops a KeyboardInterrupt raised inside a finaliser or a weakref
    callback ("Exception ignored in ..."), so the tour also checks this flag after each figure."""

    def __init__(self):
        self.pressed = False
        self._previous = None

    def _handle(self, signum, frame):
        self.pressed = True
        if frame is not None and frame.f_code.co_filename.endswith("weakref.py"):
            return          # raised there it would be printed and dropped; the flag stops the tour
        raise KeyboardInterrupt

    def check(self):
        if self.pressed:
            raise KeyboardInterrupt

    def __enter__(self):
        import signal
        import threading
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        import signal
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _render_in_processes(names, out, quick, workers, said, bar, ctrl_c):
    """Render items in ``workers`` spawned processes (the slow ones first), filling ``said``; on
    Ctrl-C the items not started are cancelled."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    order = sorted(names, key=lambda n: n not in SLOW_FIRST)
    n = min(workers, len(names))
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"), initializer=_share_cores,
                             initargs=(max(1, (os.cpu_count() or 1) // n),)) as pool:
        jobs = {pool.submit(_render, name, str(out), quick): name for name in order}
        try:
            for job in as_completed(jobs):
                said[jobs[job]] = job.result()
                bar.update()
                ctrl_c.check()
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def run(out, quick=False, only=None, progress=True, workers=1):
    """Render every item into ``out``: NAME.png, NAME.json, and index.md. Returns the index entries.
    ``workers`` > 1 renders items in that many processes (spawned: each imports flowcore afresh)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    items = [f for f in ITEMS if only is None or f.__name__ in only]
    if only is not None and len(items) != len(set(only)):
        unknown = set(only) - {f.__name__ for f in ITEMS}
        raise ValueError(f"unknown tour items {sorted(unknown)}; the items are {[f.__name__ for f in ITEMS]}")
    if not isinstance(workers, (int, np.integer)) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    from tqdm.auto import tqdm
    names = [f.__name__ for f in items]
    said = {}
    bar = tqdm(total=len(names), desc="tour", unit="figure", disable=not progress)
    try:
        with _CtrlC() as ctrl_c:
            if workers == 1 or len(names) == 1:
                for name in names:
                    said[name] = _render(name, out, quick)
                    bar.update()
                    ctrl_c.check()
            else:
                _render_in_processes(names, out, quick, workers, said, bar, ctrl_c)
    except KeyboardInterrupt:
        done = [n for n in names if n in said]
        raise fc.Interrupted(None, "the tour", (
            f"{len(done)} of {len(names)} figures were written to {out} (PNG and JSON: {', '.join(done)}); index.md "
            "was not: rerun the tour to render every figure" if done else "no figure was finished")) from None
    finally:
        bar.close()
    entries = [(f, said[f.__name__]) for f in items]
    lines = ["# flowcore tour", "", "Generated by `flowcore tour`. Each figure's numbers are in the JSON beside it.", ""]
    for title, group in (("Lessons' exercises", LESSONS), ("The paper's analyses (Rosca et al. 2023)", PAPER),
                         ("SGD and its continuous models", STOCHASTIC)):
        sel = [(f, s) for f, s in entries if f in group]
        if sel:
            lines += [f"## {title}", ""]
            for f, s in sel:
                lines += [f"### {f.__name__}: {_first_sentence(f.__doc__)}", "", s, "",
                          f"![{f.__name__}]({f.__name__}.png) · [numbers]({f.__name__}.json)", ""]
    (out / "index.md").write_text("\n".join(lines))
    return entries
