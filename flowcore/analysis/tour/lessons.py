"""The lessons' exercises: gradient flow against GD, learning rates, momentum, fixed points, basins and the trainability map."""
import itertools

import numpy as np

import flowcore as fc
from flowcore.analysis.basins import ESCAPED as ESCAPED_LABEL, basins
from flowcore.analysis.critical import critical_points, stable_lr_interval
from flowcore.analysis.dynamics import orbit_diagram, portrait, uncertainty_exponent
from flowcore.analysis.plot import (_plt, basins as plot_basins, orbit_diagram as plot_orbit, portrait as plot_portrait, sweep_image, tex)
from flowcore.analysis.sweep import sweep
from flowcore.analysis.tour._common import _contours


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
    return fig, data, ("At h = 0.2 (hλ = 1.6 at the minima), on the square [−2, 2]²: "
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
