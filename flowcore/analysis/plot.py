"""Figures (matplotlib, Agg): return the Figure; callers save it."""
import numpy as np


def _plt():
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def tex(obj):
    """Mathtext for a title: a Loss (its expression), a sympy expression or expression text
    ('x**2 + 25*y**2' → $x^{2} + 25 y^{2}$); a zoo loss without an expression keeps its name."""
    import sympy as sp
    from flowcore.engine.expressions import parse
    expr = getattr(obj, "expr", obj)
    if expr is None:
        return getattr(obj, "name", str(obj))
    e = parse(expr) if isinstance(expr, str) else expr
    return "$" + sp.latex(e) + "$"


def coordinate_label(vars, k, dim):
    """The name of coordinate k for an axis: the loss's variable (x, y, w …) as mathtext, else θ
    (with a subscript when dim > 1)."""
    if vars is not None:
        import sympy as sp
        return "$" + sp.latex(sp.Symbol(str(vars[k]))) + "$"
    return r"$\theta$" if dim == 1 else f"$\\theta_{k + 1}$"


def orbit_diagram(result, coordinate=0, title=None):
    """Late iterates against the learning rate (top) and the largest Lyapunov exponent (bottom)."""
    plt = _plt()
    fig, (ax, axl) = plt.subplots(2, 1, sharex=True, figsize=(7, 6), height_ratios=(3, 1.3))
    lrs, orbits = result["lrs"], result["orbits"][..., coordinate]
    keep = orbits.shape[1]
    ax.plot(np.repeat(lrs, keep), orbits.reshape(-1), ",", color="k", alpha=0.6)
    dim = np.shape(result["orbits"])[-1]
    ax.set_ylabel("late iterates, " + coordinate_label(result.get("vars"), coordinate, dim))
    ax.set_title(title or "GD orbit diagram")
    axl.plot(lrs, result["lyapunov"], color="C3", lw=1, label="largest Lyapunov exponent")
    axl.axhline(0, color="0.5", lw=0.8)
    _shade_stopped(ax, axl, lrs, np.asarray(result["status"]))
    axl.set_xlabel("learning rate h")
    axl.set_ylabel(r"$\lambda_{max}$ (Lyapunov)")
    axl.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def _shade_stopped(ax, axl, lrs, status):
    """Learning rates whose run escaped (or went non-finite) have no orbit: shade them, labelled,
    so that the axis still spans every rate asked for."""
    from flowcore import Status
    half = (lrs[-1] - lrs[0]) / max(len(lrs) - 1, 1) / 2 or 0.01 * abs(lrs[0])
    edges = np.concatenate([[lrs[0] - half], (lrs[1:] + lrs[:-1]) / 2, [lrs[-1] + half]])
    flip = np.diff(np.concatenate([[0], (status != int(Status.OK)).astype(int), [0]]))
    labelled = set()
    for i, j in zip(np.flatnonzero(flip == 1), np.flatnonzero(flip == -1)):       # runs of rates [i, j)
        what = "escaped" if np.all(status[i:j] == int(Status.ESCAPED)) else "stopped (escaped or non-finite)"
        for a in (ax, axl):
            a.axvspan(edges[i], edges[j], color="0.85", zorder=0,
                      label=f"{what}: no orbit" if a is ax and what not in labelled else None)
        labelled.add(what)
    if labelled:
        ax.legend(loc="upper left", fontsize=8)


_KIND_STYLE = {"min": ("o", "tab:green"), "max": ("^", "tab:red"), "saddle": ("X", "tab:orange"),
               "degenerate": ("s", "0.4")}
_SPECIAL_COLORS = {-1: "0.15", -2: "0.65", -3: "tab:purple", -4: "k"}


def basins(result, title=None, show_points=True, ax=None):
    """Basin image: one colour per label, a legend naming each label with its fraction, the
    attractors (and unstable fixed points) marked where they lie in the slice. Draws into
    ``ax`` when given (returns its figure)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    plt = _plt()
    entries = result.entries
    values = sorted(e.label for e in entries)
    colors, k = [], 0
    palette = plt.get_cmap("tab10").colors + plt.get_cmap("Pastel1").colors
    for v in values:
        e = result.entry(v)
        if v < 0:
            colors.append(_SPECIAL_COLORS.get(v, "k"))
        elif e.attractor:
            colors.append(palette[k % len(palette)])
            k += 1
        else:
            colors.append("white")
    L = np.atleast_2d(result.labels)
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 5.2) if L.shape[0] > 1 else (7.5, 2.6))
    fig = ax.figure
    x = result.axes[0]
    y = result.axes[1] if len(result.axes) > 1 else np.array([0.0, 1.0])
    ax.imshow(np.searchsorted(values, L), origin="lower", aspect="auto", interpolation="nearest",
              cmap=ListedColormap(colors), vmin=-0.5, vmax=len(values) - 0.5,
              extent=(x[0], x[-1], y[0], y[-1]))
    handles, marks = [], []
    for v, c in zip(values, colors):
        e = result.entry(v)
        handles.append(Patch(facecolor=c, edgecolor="k", lw=0.5, label=f"{e.name}: {100 * e.fraction:.1f}%"))
    if show_points and len(result.axes) > 1:
        o = result.starts[0, 0]
        U = np.stack([result.starts[0, -1] - o, result.starts[-1, 0] - o])   # spans of the slice
        scale = np.array([x[-1] - x[0], y[-1] - y[0]])
        for e in entries:
            if e.label < 0:
                continue
            coords = np.linalg.lstsq(U.T, (np.real(e.points) - o).T, rcond=None)[0].T * scale + [x[0], y[0]]
            marker = "o" if e.attractor else "x"
            ax.plot(coords[:, 0], coords[:, 1], marker, ms=7, mfc="none" if not e.attractor else "w",
                    mec="k", ls="none")
        # every critical point of E in the slice's plane (saddles and maxima attract no start,
        # yet they shape the basins): markers by kind, as in portraits
        if result.starts.shape[-1] == 2:
            seen = set()
            for c in getattr(result, "critical", []):
                p = np.real(c.point)
                if x[0] <= p[0] <= x[-1] and y[0] <= p[1] <= y[-1] and c.kind != "min":
                    m, col = _KIND_STYLE.get(c.kind, ("s", "0.4"))
                    ax.plot(p[0], p[1], m, color=col, ms=8, mec="k", ls="none", zorder=5)
                    if c.kind not in seen:
                        marks.append(Line2D([], [], marker=m, color=col, mec="k", ls="none",
                                            label=f"{c.kind} of E"))
                        seen.add(c.kind)
        if any(e.label >= 0 for e in entries):      # what the white and crossed markers are
            marks.insert(0, Line2D([], [], marker="o", mfc="w", mec="k", ls="none", label="attractor (its points)"))
        if any(e.label >= 0 and not e.attractor for e in entries):
            marks.insert(1, Line2D([], [], marker="x", mec="k", ls="none", label="unstable fixed point"))
    plane = len(result.axes) > 1 and result.starts.shape[-1] > 2
    D = result.starts.shape[-1]
    names = getattr(result, "vars", None)
    ax.set_xlabel("x (slice coordinate)" if plane else coordinate_label(names, 0, D))
    ax.set_ylabel("y (slice coordinate)" if plane else coordinate_label(names, 1, D) if len(result.axes) > 1 else "")
    if len(result.axes) == 1:
        ax.set_yticks([])
    ax.set_title(title or f"Basins of {result.model} at lr = {result.lr:g}")
    if marks:      # a second legend, below the labels' one (which stays ax.get_legend())
        ax.add_artist(ax.legend(handles=marks, loc="lower left", bbox_to_anchor=(1.01, 0), fontsize=8,
                                title="critical points"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, title="label: fraction")
    fig.tight_layout()
    return fig


_SWEEP_COLORS = {**_SPECIAL_COLORS, -5: "tab:cyan", -6: "tab:olive"}   # the basins' colours, and cycle, off-critical


def _sweep_outcomes(ds):
    """(label values, {value: name}, {value: colour}) of a sweep's labels."""
    import json
    plt = _plt()
    L = np.asarray(ds["label"].values)
    crit = json.loads(ds.attrs["critical_points"])[0]
    meanings = json.loads(ds.attrs["label_meanings"])
    kinds = json.loads(ds.attrs.get("critical_kinds", "null")) or [["critical point"] * len(crit)]
    palette = plt.get_cmap("tab10").colors
    values, names, colors = sorted(np.unique(L).tolist()), {}, {}
    for v in values:
        if v >= 0:
            names[v] = f"{kinds[0][v]} ({', '.join(f'{c:.3g}' for c in crit[v])})"
            colors[v] = palette[v % len(palette)]
        else:
            names[v] = meanings.get(str(v), f"label {v}")       # the sweep's own words for its outcomes
            colors[v] = _SWEEP_COLORS.get(v, "k")
    return values, names, colors


def sweep_image(ds, ax, rows, cols, outcomes=None):
    """Draw the labels of a sweep with two axes left (others selected away) as an image: ``rows``
    up, ``cols`` across. Returns the legend handles (outcome: share of the starts shown)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    values, names, colors = outcomes or _sweep_outcomes(ds)
    A = np.asarray(ds["label"].transpose(rows, cols).values)
    xs, ys = ds[cols].values, ds[rows].values
    ys = ys if len(ys) > 1 else ys[0] + np.array([-0.5, 0.5])
    ax.imshow(np.searchsorted(values, A), origin="lower", aspect="auto", interpolation="nearest",
              cmap=ListedColormap([colors[v] for v in values]), vmin=-0.5, vmax=len(values) - 0.5,
              extent=(xs[0], xs[-1], ys[0], ys[-1]))
    label = {"lr": "learning rate h", "x": "start x", "y": "start y"}
    ax.set_xlabel(label.get(cols, cols))
    ax.set_ylabel(label.get(rows, rows))
    return [Patch(facecolor=colors[v], edgecolor="k", lw=0.5, label=f"{names[v]}: {100 * np.mean(A == v):.1f}%")
            for v in values if np.any(A == v)]


def sweep(ds, title=None, max_panels=6):
    """A sweep's labels: an image over two of its axes (the learning rate across when it is
    one), one panel per value of the other axes (at most ``max_panels``, evenly picked); with an
    'lr' axis, the share of starts at rest at a critical point, in a cycle, unresolved and escaped
    against the learning rate below. A sweep over one axis draws a strip."""
    plt = _plt()
    dims = list(ds["label"].dims)
    wide = [d for d in dims if ds.sizes[d] > 1 and d != "model"]
    if "x" in wide and "y" in wide:          # basin maps, one per learning rate (and the rest)
        rows, cols = "y", "x"
    else:
        cols = "lr" if "lr" in wide else wide[-1]
        rows = next((d for d in reversed(wide) if d != cols), None)
    if rows is None:
        ds, rows = ds.expand_dims(strip=[0.0]), "strip"
        dims = list(ds["label"].dims)
    others = [d for d in dims if d not in (rows, cols)]
    combos = list(np.ndindex(*[ds.sizes[d] for d in others]))
    pick = sorted(set(np.linspace(0, len(combos) - 1, min(max_panels, len(combos))).round().astype(int)))
    outcomes = _sweep_outcomes(ds)
    lr_panel = "lr" in dims and ds.sizes["lr"] > 1
    n = len(pick)
    fig = plt.figure(figsize=(min(5.0 * n, 18) + 3.0, 4.6 + 3.0 * lr_panel))
    grid = fig.add_gridspec(1 + lr_panel, n, height_ratios=(3, 1.6) if lr_panel else None)
    axs = np.array([[fig.add_subplot(grid[0, j]) for j in range(n)]])
    for j, k in enumerate(pick):
        sel = dict(zip(others, combos[k]))
        sweep_image(ds.isel(sel), axs[0, j], rows, cols, outcomes)
        if sel:
            axs[0, j].set_title(", ".join(f"{d} = {_coord(ds, d, i)}" for d, i in sel.items()), fontsize=10)
        if rows == "strip":
            axs[0, j].set_yticks([])
            axs[0, j].set_ylabel("")
    values, names, colors = outcomes
    from matplotlib.patches import Patch
    L = np.asarray(ds["label"].values)
    axs[0, -1].legend(handles=[Patch(facecolor=colors[v], edgecolor="k", lw=0.5,
                                     label=f"{names[v]}: {100 * np.mean(L == v):.1f}%") for v in values],
                      loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, title="outcome: share of all starts")
    if lr_panel:                       # the shares against the learning rate, across the whole width
        ax, lr = fig.add_subplot(grid[1, :]), ds["lr"].values
        Lr = np.moveaxis(L, dims.index("lr"), -1).reshape(-1, len(lr))
        for test, style, what in ((Lr >= 0, "C2-", "at rest at a critical point"), (Lr == -5, "C9-", "cycle"),
                                  (Lr == -2, "C7-", "unresolved (chaos or slow)"), (Lr == -1, "k-", "escaped")):
            ax.plot(lr, np.mean(test, axis=0), style, label=what, marker="o" if len(lr) <= 20 else None, ms=4)
        ax.set_xlabel("learning rate h")
        ax.set_ylabel("share of starts")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _coord(ds, d, i):
    v = ds[d].values[i]
    return v if isinstance(v, str) else f"{v:.4g}"


def _critical_markers(ax, critical, dim, E_of=None):
    seen = set()
    for c in critical:
        m, col = _KIND_STYLE.get(c["kind"], ("s", "0.4"))
        p = c["point"]
        xy = (p[0], p[1]) if dim == 2 else (p[0], E_of(p[0]))
        ax.plot(*xy, m, color=col, ms=9, mec="k", ls="none", zorder=5,
                label=None if c["kind"] in seen else f"{c['kind']}")
        seen.add(c["kind"])


def portrait(data, title=None):
    """Phase portrait from :func:`flowcore.analysis.portrait`: contours of E, streamlines of the
    flow, critical points by kind, GD iterates (one style per lr) and flow trajectories."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9.5, 6) if data["dim"] == 2 else (10, 4.5))
    flow = data["flow"]
    if data["dim"] == 2:
        x, y = data["axes"]
        E = data["E"]
        levels = np.quantile(E, np.linspace(0, 1, 25) ** 2)
        cs = ax.contour(x, y, E, levels=np.unique(levels), cmap="viridis", linewidths=0.7)
        # a continuous bar with round ticks (the contour levels are quantiles, not round numbers)
        from matplotlib.cm import ScalarMappable
        fig.colorbar(ScalarMappable(norm=cs.norm, cmap=cs.cmap), ax=ax, label="E(θ) (contour colours)")
        F = data["field"]
        ax.streamplot(x, y, F[..., 0], F[..., 1], color="0.6", density=1.1, linewidth=0.6, arrowsize=0.7)
        _critical_markers(ax, data["critical"], 2)
        for j, (h, it) in enumerate(zip(data["gd_lrs"], data["gd"])):
            for n, path in enumerate(it):
                ax.plot(path[:, 0], path[:, 1], "o-", color=f"C{(j + 1) % 10}", ms=3, lw=0.8,
                        label=f"GD, lr = {h:g}" if n == 0 else None)
        bound = 10 * np.max(np.abs(data["box"]))
        for n, tr in enumerate(data.get("dense_trajectories", data["trajectories"])):
            tr = _until_escape(tr, bound)
            ax.plot(np.real(tr[:, 0]), np.real(tr[:, 1]), "-", color="C0", lw=1.8,
                    label=f"{flow} (Re)" if flow.startswith("pf") and n == 0 else (flow if n == 0 else None))
        (x0, x1), (y0, y1) = data["box"]
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xlabel(coordinate_label(data.get("vars"), 0, 2))
        ax.set_ylabel(coordinate_label(data.get("vars"), 1, 2))
    else:
        (w,) = data["axes"]
        E = data["E"].reshape(-1)
        ax.plot(w, E, color="0.3", lw=1.2, label="E(θ)")
        E_of = lambda v: np.interp(v, w, E)
        _critical_markers(ax, data["critical"], 1, E_of)
        for j, (h, it) in enumerate(zip(data["gd_lrs"], data["gd"])):
            for n, path in enumerate(it):
                ax.plot(path[:, 0], E_of(path[:, 0]), "o-", color=f"C{(j + 1) % 10}", ms=3, lw=0.6,
                        label=f"GD, lr = {h:g}" if n == 0 else None)
        if "field" in data:
            _direction_arrows(ax, w, np.real(np.asarray(data["field"])).reshape(-1), E_of, flow)
        for n, tr in enumerate(data.get("dense_trajectories", data["trajectories"])):
            re = np.real(tr[:, 0])
            ax.plot(re, E_of(re), "-", color="C0", lw=2, alpha=0.7, label=flow if n == 0 else None)
        ax.set_xlim(*data["box"][0])
        ax.set_xlabel(coordinate_label(data.get("vars"), 0, 1))
        ax.set_ylabel("E")
    shown = f"{flow} and GD" if len(data["starts"]) else flow           # GD is drawn from the starts only
    ax.set_title(title or f"{data['loss']}: {shown} (lr = {data['lr']:g})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.25 if data["dim"] == 2 else 1.01, 1), fontsize=8)
    fig.tight_layout()
    return fig


def _direction_arrows(ax, w, F, E_of, flow, n=24):
    """A 1-D flow's direction θ' drawn as arrows along the curve E(θ) (what streamlines show in 2-D)."""
    step = 0.02 * (w[-1] - w[0])
    tiny = 1e-9 * max(1.0, float(np.nanmax(np.abs(F))))
    for i in np.linspace(0, len(w) - 1, n + 2).astype(int)[1:-1]:
        if not abs(F[i]) > tiny:                      # at rest (or not finite): no direction
            continue
        a, b = w[i], w[i] + np.sign(F[i]) * step
        ax.annotate("", xy=(b, E_of(b)), xytext=(a, E_of(a)),
                    arrowprops=dict(arrowstyle="-|>", color="0.55", lw=0.8, mutation_scale=9))
    ax.plot([], [], marker=">", ls="", color="0.55", ms=5, label=f"direction of {flow}" + (" (Re)" if flow.startswith("pf") else ""))


def _until_escape(tr, bound):
    """A trajectory [T, D] up to where it first leaves |θ| ≤ bound (NaN after): an escaping PF
    spirals out with growing amplitude, and drawing all of it hides everything else."""
    out = np.array(tr, copy=True)
    far = np.flatnonzero(np.max(np.abs(out), axis=-1) > bound)
    if far.size:
        out[far[0]:] = np.nan
    return out


def pf_panels(data, title=None):
    """Re and Im of a complex (PF) trajectory against t, drawn densely, with the flow at t = n·lr
    (×) and GD's iterates (○) there."""
    plt = _plt()
    D = data["dim"]
    fig, axs = plt.subplots(2, D, figsize=(4.6 * D + 1.5, 5.5), sharex=True, squeeze=False)
    t = data["t"]
    dense_t = data.get("dense_t", t)
    dense = data.get("dense_trajectories", data["trajectories"])
    gd_all = np.concatenate([np.ravel(g) for g in data["gd"]]) if len(data["gd"]) else np.zeros(1)
    bound = 10 * (1 + np.nanmax(np.abs(gd_all[np.isfinite(gd_all)]), initial=1.0))
    for a in range(D):
        for n, (tr, fine) in enumerate(zip(data["trajectories"], dense)):
            tr, fine = _until_escape(tr, bound), _until_escape(fine, bound)
            c = f"C{n % 10}"
            first = a == 0 and n == 0
            axs[0, a].plot(dense_t, np.real(fine[:, a]), color=c, lw=1.4,
                           label=f"{data['flow']} (dense)" if first else None)
            axs[1, a].plot(dense_t, np.imag(fine[:, a]), color=c, lw=1.4)
            axs[0, a].plot(t, np.real(tr[:, a]), "x", color=c, ms=5, label=f"{data['flow']} at t = n·lr" if first else None)
            axs[1, a].plot(t, np.imag(tr[:, a]), "x", color=c, ms=5)
            gd = data["gd"][0][n]
            axs[0, a].plot(t, gd[:, a], "o", color=c, ms=5, mfc="none", label="GD iterates" if first else None)
        axs[0, a].set_ylabel(f"Re θ{a + 1}")
        axs[1, a].set_ylabel(f"Im θ{a + 1}")
        axs[1, a].axhline(0, color="0.7", lw=0.6)
        axs[1, a].set_xlabel("t (GD step n at t = n·lr)")
    axs[0, 0].legend(fontsize=7, loc="best")
    fig.suptitle(title or f"{data['loss']}: {data['flow']} vs GD, lr = {data['lr']:g} (one colour per start)")
    fig.tight_layout()
    return fig


_MODEL_STYLE = {"ngf": "C1", "igr": "C2", "third_order": "C4", "pf": "C0", "pf_np3": "C9", "central": "C3"}
_MODE_NAMES = {"one_step": "1 step", "horizon": "{m} steps", "global": "from θ₀"}
_QUANTITY_NAMES = {"theta": "θ", "theta_avg": "θ̄", "loss": "E", "loss_avg": "Ē"}


def compare_models(result, title=None, axs=None):
    """:func:`flowcore.analysis.compare_models` in three panels: GD's loss and its time average
    against each model's global prediction of the average (the central flow's E + ½⟨Σ, H⟩); GD's
    sharpness against the central flow's (pinned at 2/h); and the table of mean errors (log10
    colour, the best model per column framed)."""
    plt = _plt()
    fig = None
    if axs is None:
        fig, axs = plt.subplots(1, 3, figsize=(19, 6), width_ratios=(1, 1, 1.6))
    r, n = result, np.arange(len(result["gd_loss"]))
    ax = axs[0]
    ax.semilogy(n, r["gd_loss"], color="0.75", lw=0.8, label=r"GD: $E(\theta_n)$")
    ax.semilogy(n[:len(r["gd_loss_avg"])], r["gd_loss_avg"], "k-", lw=1.4, label=f"GD: Ē (mean of {r['window']})")
    if r.get("mean_from") is not None:
        n0 = r["mean_from"]
        ax.semilogy(n[n0:n0 + len(r["gd_loss_mean"])], r["gd_loss_mean"], "k:", lw=1.6,
                    label=f"GD: mean of E from n = {n0}")
    _shade_left_edge(ax, r)
    gd = r["gd_loss"][r["gd_loss"] > 0]
    hi, lo = np.nanmax(gd), np.nanmin(gd)
    for name, m in r["models"].items():
        pred = np.where(np.isfinite(m["loss_avg"]), m["loss_avg"], np.nan)
        ax.semilogy(n, pred, color=_MODEL_STYLE.get(name), lw=2.0 if name == "central" else 1.0,
                    ls="-" if name == "central" else "--", marker="." if name == "central" else None, ms=3,
                    label=name + (r": $E + \frac{1}{2}\langle\Sigma, H\rangle$" if name == "central" else ": E"))
        shown = pred[(pred > 0) & (pred <= 10 * hi)]
        if shown.size:                     # every prediction in view, down to 10⁻⁸ of GD's largest loss
            lo = min(lo, max(shown.min(), 1e-8 * hi))
    ax.set_ylim(lo / 3, hi * 3)
    ax.set_xlabel("GD step n (flows at t = n·h)")
    ax.set_ylabel("loss")
    ax.set_title("the time-averaged loss: GD and each model from θ₀", fontsize=10)
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16), framealpha=0.85)
    ax = axs[1]
    ax.plot(n, r["sharpness"], color="0.4", lw=0.8, label=r"GD: $\lambda_{max}(H(\theta_n))$")
    if "central" in r["models"]:
        ax.plot(n, r["models"]["central"]["sharpness"], color=_MODEL_STYLE["central"], lw=2, label="central flow")
    ax.axhline(r["edge"], color="k", ls=":", label=f"2/h = {r['edge']:g}")
    _shade_left_edge(ax, r)
    ax.set_xlabel("GD step n")
    ax.set_ylabel("sharpness")
    ax.set_title("sharpness of GD's iterates and of the central flow (held at 2/h)", fontsize=10)
    ax.legend(fontsize=7)
    _error_table(axs[2], r)
    if fig is not None:
        if title:
            fig.suptitle(title)
        fig.tight_layout()
    return fig if fig is not None else axs[0].figure


def _shade_left_edge(ax, r):
    """Grey from where GD left the edge for good (fa.eos.left_edge): the central flow's run from θ₀
    is not scored there."""
    left = r.get("left_edge_at")
    if left is not None and "central" in r["models"]:
        ax.axvspan(left, len(r["gd_loss"]) - 1, color="0.9", zorder=0,
                   label=f"GD left the edge (n ≥ {left}):\ncentral flow not scored")


def _error_table(ax, r):
    """Models × (mode, quantity): log10 of the mean error, the value written in, the best framed."""
    from matplotlib.patches import Rectangle
    names = list(r["models"])
    cols = [(mode, q) for mode in ("one_step", "horizon", "global") for q in _QUANTITY_NAMES]
    M = np.array([[r["models"][k]["table"][mode][q] for mode, q in cols] for k in names])
    with np.errstate(divide="ignore", invalid="ignore"):
        L = np.log10(np.where(M > 0, M, np.nan))
    lo = np.floor(np.nanmin(L)) if np.isfinite(L).any() else -16
    hi = max(lo + 1, min(np.ceil(np.nanmax(L)), 1.0)) if np.isfinite(L).any() else 1.0   # ≥ 10: "wrong", one colour
    im = ax.imshow(np.clip(L, lo, hi), cmap="viridis_r", vmin=lo, vmax=hi, aspect="auto")
    for i in range(len(names)):
        for j in range(len(cols)):
            txt = "—" if not np.isfinite(M[i, j]) else f"{M[i, j]:.0e}".replace("e-0", "e-").replace("e+0", "e")
            ax.text(j, i, txt, ha="center", va="center", fontsize=7,
                    color="w" if np.isfinite(L[i, j]) and L[i, j] > (lo + hi) / 2 else "k")
    for j, (mode, q) in enumerate(cols):
        best = r["best"][mode][q]
        ax.add_patch(Rectangle((j - 0.5, names.index(best) - 0.5), 1, 1, fill=False, ec="tab:red", lw=2))
    ax.set_yticks(range(len(names)), [_model_label(k, r) for k in names], fontsize=8)
    ax.set_xticks(range(len(cols)), [f"{_MODE_NAMES[m].format(m=r['horizon'])}\n{_QUANTITY_NAMES[q]}"
                                     for m, q in cols], fontsize=7)
    for x in (3.5, 7.5):
        ax.axvline(x, color="w", lw=2)
    left = {m: c for m, c in r.get("scored", {}).items() if c["scored"] < c["made"]}
    note = ("\nrestarts scored where every flow predicted: " + ", ".join(
        f"{_MODE_NAMES[m].format(m=r['horizon'])} {c['scored']} of {c['made']}" for m, c in left.items())) if left else ""
    ax.set_title("mean error of each model's prediction of GD (θ̄, Ē: averages over the oscillation); "
                 "best framed" + note, fontsize=9)
    ax.figure.colorbar(im, ax=ax, label="log10 mean error", shrink=0.8)


def _model_label(name, r):
    """The model's name, and what it could not predict: the central flow's restarts (only at or
    below the edge), a flow's restarts that stopped early and how far its run from θ₀ got."""
    m, notes = r["models"][name], []
    u = m.get("unfinished", {})
    if name == "central":
        notes.append(f"{m['defined']} of {len(range(0, r['steps'], r['every']))} restarts")
    if u.get("restarts"):
        notes.append(f"{u['restarts']} restarts stopped")
    if u.get("global"):
        notes.append(f"from θ₀ to n = {u['global_reached']}")
    return name + "".join(f"\n({n})" for n in notes)


def network_eos(r, title=None):
    """:func:`flowcore.analysis.paper.network_edge_of_stability` in four panels: the sharpness
    against 2/h, the loss with its rises marked, each flow's one-step error at the restarts, and
    each flow's predicted loss change against GD's (restarts in a catapult hollow)."""
    plt = _plt()
    n = np.arange(len(r["loss"]))
    fig, axs = plt.subplots(1, 4, figsize=(22, 4.9))
    axs[0].plot(n, r["sharpness"], "k-", lw=1, label=r"$\lambda_0$ (Lanczos)")
    axs[0].axhline(r["edge"], color="C3", ls="--", label=f"2/h = {r['edge']:g}")
    cat = np.asarray(r["catapult"], bool)
    starts = np.asarray(r["restarts"])
    axs[0].plot(starts, r["sharpness"][starts], "o", mfc="none", color="C0", ms=5, label="flows restarted here")
    axs[0].set(xlabel="GD step n", ylabel="sharpness", title=title or f"h = {r['lr']:g}")
    axs[0].title.set_fontsize(9)
    axs[0].legend(fontsize=8)
    up = np.flatnonzero(r["delta_loss"] > 0)
    hi = r["sharpness"][up] > r["edge"]
    axs[1].semilogy(n, r["loss"], "k-", lw=1, label="GD loss")
    axs[1].semilogy(up[hi], r["loss"][up[hi] + 1], "v", color="C3", ms=4,
                    label=f"loss rises with λ₀ > 2/h ({r['increases_above']} of {r['iterates_above']} steps)")
    axs[1].semilogy(up[~hi], r["loss"][up[~hi] + 1], "v", color="C0", ms=4,
                    label=f"loss rises with λ₀ ≤ 2/h ({r['increases_below']} of {r['iterates_below']} steps)")
    axs[1].set(xlabel="GD step n", ylabel="E", title="the loss and its rises" if up.size else "the loss (no rises)")
    axs[1].legend(fontsize=8)
    g = r["summary"]
    for j, (name, f) in enumerate(r["flows"].items()):
        c = f"C{j + 1}"
        e, d = np.asarray(f["one_step_error"]), np.asarray(f["predicted_delta_loss"])
        med = g["edge"][name]["median_error"]
        axs[2].semilogy(starts[~cat], e[~cat], "o", color=c, ms=5, label=f"{name} (median {med:.1e} outside catapults)")
        axs[2].semilogy(starts[cat], e[cat], "o", mfc="none", color=c, ms=6)
        axs[3].plot(r["delta_loss"][starts][~cat], d[~cat], "o", color=c, ms=5,
                    label=f"{name}: {g['edge'][name]['rises_predicted']} of GD's {g['edge']['gd_rises']} rises "
                          "outside catapults")
        axs[3].plot(r["delta_loss"][starts][cat], d[cat], "o", mfc="none", color=c, ms=6)
    if cat.any():
        axs[2].plot([], [], "o", mfc="none", color="0.3", label="hollow: in a catapult (λ₀ > 1.2·2/h)")
    axs[2].set(xlabel="GD step n (restart)", ylabel=r"$\Vert\mathrm{Re}\,\varphi_h(\theta_n) - \theta_{n+1}\Vert$",
               title="one-step error of each flow (its real part)")
    axs[2].title.set_fontsize(10)
    axs[2].legend(fontsize=8)
    ax = axs[3]
    lim = np.nanmax(np.abs(np.r_[r["delta_loss"][starts], *[f["predicted_delta_loss"] for f in r["flows"].values()]]))
    ax.plot([-lim, lim], [-lim, lim], color="0.6", lw=0.8, label="prediction = GD")
    ax.axhline(0, color="0.8", lw=0.8)
    ax.axvline(0, color="0.8", lw=0.8)
    ax.set_xscale("symlog", linthresh=1e-4)
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.set(xlabel=r"GD's loss change $E(\theta_{n+1}) - E(\theta_n)$", ylabel="the flow's predicted change")
    ax.set_title("predicted loss changes (upper right: a rise predicted)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------ SGD
EQUILIBRATED = 5    # runs longer than 5 mean crossing times are taken as in equilibrium


def dal_comparison(r, title=None):
    """Fig 18: the loss of GD at fixed rates and of DAL/DAL-p (``paper.dal_comparison``'s result),
    each labelled with its iterations to within the tolerance, and the learning rate each takes."""
    plt = _plt()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5.6))
    for j, (k, v) in enumerate(r["runs"].items()):
        its = v["iterations_to_tol"]
        style = dict(color=f"C{j}", lw=2.2 if k.startswith("DAL") else 1.0, ls="--" if k.startswith("DAL") else "-")
        ax.semilogy(v["loss"], label=f"{k} ({f'{its} its' if its is not None else 'never'} to within {r['tol']:g})",
                    **style)
        ax2.semilogy(v["lr"], label=k, **style)
    ax.set(xlabel="GD step", ylabel=r"$E(\theta_n)$")
    if title:
        fig.suptitle(title, fontsize=10)
    ax.set_title(f"loss (tolerance: {r['tol']:g} above the lowest any run reaches)", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    ax2.set(xlabel="GD step", ylabel="learning rate", title=r"DAL's rate $h = 2/\Vert H\hat g\Vert^p$ per step")
    ax2.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)
    fig.tight_layout()
    return fig


FAR_PAST_EDGE = 4.0    # hλ₀ beyond which Fig 8's linearised predictions are flagged (GD in a catapult)


def projection_panel(ax, p, title=None):
    """Fig 8 on ``ax`` from ``paper.projection_predictions``' result ``p``: GD's next gradient along
    u₀(θ_n) against each flow's linearised prediction x_n e^{ch} (symlog: the projections shrink by
    decades along a run), flagged where hλ₀ > 4 (a catapult: the linearisation fails)."""
    n = np.arange(len(p["gd"]))
    ax.plot(n, p["gd"], "ko", ms=5, mfc="none", zorder=3, label=r"GD: $\nabla E(\theta_{n+1})^\top u_0$")
    # each later flow narrower on top, so that curves that agree (IGR, third order) all stay visible
    for j, (k, v) in enumerate(p["predicted"].items()):
        ax.plot(n, v, "-", color=f"C{j}", lw=3.2 - 0.7 * j, zorder=2 + j, label=f"{k}: " + r"$x_n\,e^{ch}$")
    ax.axhline(0, color="0.6", lw=0.8)
    big = np.nanmax(np.abs(p["gd"])) if np.any(np.isfinite(p["gd"])) else 1.0
    ax.set_yscale("symlog", linthresh=10.0 ** np.floor(np.log10(max(1e-3 * big, 1e-300))))   # a power of ten: ticks clear 0
    hl = p["lr"] * p["sharpness"]
    ax.set(xlabel="GD step n (prediction made from step n)", ylabel=r"gradient along $u_0(\theta_n)$")
    far = hl.max() > FAR_PAST_EDGE
    ax.set_title((title or "the next gradient along the top eigenvector")
                 + f" (hλ₀ from {hl.min():.2f} to {hl.max():.2f})"
                 + ("\nhλ₀ > 4 (a catapult): GD leaves the quadratic picture, the linearised predictions fail there"
                    if far else ""), fontsize=10, color="C3" if far else "k")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3)


def network_stability(r, title=None):
    """Figs 8, 11/12 and 16/17 from one ``paper.stability_run``: GD's loss change against each
    flow's from the same iterate (the NGF always down, the PGF always up), the largest stability
    coefficient of the hλ > 2 directions against it, the drift ‖θ_{n+1} − φ_h^NGF(θ_n)‖ against
    ‖Hg‖, and the gradient along the top eigenvector one step ahead against each flow's prediction."""
    plt = _plt()
    dE, n = r["delta_loss"], np.arange(len(r["delta_loss"]))
    fig, axs = plt.subplots(2, 2, figsize=(14, 10))
    ax = axs[0, 0]
    ax.plot(n, dE, "ko", ms=4, mfc="none", label=r"GD: $E(\theta_{n+1}) - E(\theta_n)$")
    colours = {"ngf": "C0", "pgf": "C3"}
    for j, (k, v) in enumerate(r["predicted_delta_loss"].items()):
        ax.plot(n, v, "-", color=colours.get(k, f"C{j + 4}"), label=f"{k} from " + r"$\theta_n$, time h")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set(xlabel="GD step n", ylabel="loss change over one step")
    ax.set_title("GD's loss change against each flow's from the same iterate", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3)
    ax = axs[0, 1]
    ax.plot(n, r["unstable_sc"], "C0-", label=r"max $|\mathrm{Re}\,sc_i|$ over $h\lambda_i > 2$ (0 where none)")
    ax3 = ax.twinx()
    ax3.plot(n, dE, "C3o", ms=3, mfc="none", label=r"$\Delta E_n$")
    ax3.set_yscale("symlog", linthresh=1e-3)
    ax.set(xlabel="GD step n", ylabel="stability coefficient")
    ax3.set_ylabel("loss change")
    ax.set_title(f"corr(sc, ΔE) = {r['corr_sc_loss_increase']:.2f} over all {len(n)} steps, "
                 f"{r['corr_sc_loss_increase_unstable_only']:.2f} over the {r['unstable_iterations']} with hλ > 2",
                 fontsize=9)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax3.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    ax = axs[1, 0]
    ax.semilogy(n, r["drift"], "C2o-", ms=3, label=r"drift $\Vert\theta_{n+1} - \varphi^{NGF}_h(\theta_n)\Vert$")
    ax4 = ax.twinx()
    ax4.semilogy(n, r["Hg_norm"][:-1], "C1s--", ms=3, label=r"$\Vert H\nabla E(\theta_n)\Vert$")
    ax.set(xlabel="GD step n", ylabel="drift")
    ax4.set_ylabel(r"$\Vert Hg\Vert$")
    ax.set_title(f"GD's drift from the gradient flow and ‖Hg‖: correlation {r['corr_Hg_drift']:.2f}", fontsize=10)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax4.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    projection_panel(axs[1, 1], r["projection"])
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def sgd_double_well(r, title=None):
    """SGD against its SDE on a noisy double well: stationary densities and escape rates."""
    plt = _plt()
    Bs = list(r["batches"])
    fig, axs = plt.subplots(1, len(Bs) + 1, figsize=(5 * (len(Bs) + 1), 4.2))
    edges = np.asarray(r["edges"])
    x = 0.5 * (edges[1:] + edges[:-1])
    for ax, B in zip(axs, Bs):
        row = r["batches"][B]
        ax.stairs(row["sgd"]["density"], edges, color="C0", lw=1.6, label="SGD")
        ax.stairs(row["sde"]["density"], edges, color="C1", lw=1.2, ls="--", label="SME-1 (SDE)")
        ax.plot(x, row["gibbs"], "k:", lw=1.4, label=r"$\propto e^{-2E/\sigma^2}$")
        passage = 1 / row["exact_exit_rate"]         # the SDE's mean time to cross from one well to the other
        note = ("" if r["horizon"] >= EQUILIBRATED * passage else
                f"\nnot in equilibrium: mean crossing time {passage:.3g} > run length {r['horizon']:g}/{EQUILIBRATED}")
        ax.set_title(f"B = {B}: σ² = η s²/B = {row['sigma2']:.3g}{note}", fontsize=10, color="C3" if note else "k")
        ax.set_xlabel("x")
        ax.set_ylabel("density of the iterates (after t = 50)")
        ax.legend(fontsize=8, loc="upper center")
    ax = axs[-1]
    s2 = np.array([r["batches"][B]["sigma2"] for B in Bs])
    for key, style, label in (("sgd", "o-", "SGD"), ("sde", "s--", "SME-1, Euler–Maruyama")):
        ax.semilogy(Bs, [r["batches"][B][key]["exit_rate"] for B in Bs], style, label=label)
    ax.semilogy(Bs, [r["batches"][B]["exact_exit_rate"] for B in Bs], "k:", marker="x",
                label="SDE, exact mean first passage")
    ax.set_xticks(Bs)
    ax.set_xlabel("batch size B")
    ax.set_ylabel("escape rate −1 → +1 (per unit time t = kη)")
    ax.set_title("Larger batches are quieter: escapes vanish like exp(−2ΔE/σ²)", fontsize=10)
    ax.legend(fontsize=8)
    for B, s in zip(Bs, s2):            # labels inside the axes: offset towards the middle
        ax.annotate(f"σ²={s:.2g}", (B, r["batches"][B]["exact_exit_rate"]), textcoords="offset points",
                    xytext=(-8 if B == Bs[-1] else 8, -12), ha="right" if B == Bs[-1] else "left", fontsize=8)
    ax.margins(x=0.08, y=0.15)
    E = tex(r["energy"])
    fig.suptitle(title or f"SGD on ℓ = {E} + ξx (Var ξ = s² = {r['spread']**2:.3g}), η = {r['lr']:g}, {r['runs']} runs "
                 "from x = −1; SME-1: dX = −E′dt + σ dW", fontsize=11)
    fig.tight_layout()
    return fig


def sgd_temperature(r, title=None):
    """The share of SGD runs ending in the flat minimum against η/B, with the SDE's and the
    stationary (Gibbs) share."""
    plt = _plt()
    fig, (ax0, ax) = plt.subplots(1, 2, figsize=(12, 4.4), width_ratios=(1, 1.4))
    xs = np.linspace(-3, 5, 600)
    import flowcore as fc
    E = fc.Loss.from_expr(r["energy"]).value(xs[:, None])
    ax0.plot(xs, E, "k")
    ax0.axvline(r["saddle"], color="0.6", ls=":", label=f"barrier top x = {r['saddle']:.2f}")
    ax0.set_xlabel("x")
    ax0.set_ylabel("E(x)")
    ax0.set_title("sharp, deeper minimum (left) and flat minimum (right)", fontsize=10)
    ax0.legend(fontsize=8)
    lrs = sorted({p["lr"] for p in r["sgd"]})
    for k, lr in enumerate(lrs):        # equal η/B from different η coincide: shapes and sizes differ
        pts = [p for p in r["sgd"] if p["lr"] == lr]
        ax.semilogx([p["lr_over_batch"] for p in pts], [p["flat"] for p in pts], "osD^v"[k % 5], color=f"C{k}",
                    ms=12 - 3 * k, mfc="none" if k == 0 else f"C{k}", mew=1.6,
                    label=f"SGD, η = {lr:g} (B = {', '.join(str(p['batch']) for p in pts)})")
    ax.semilogx([p["lr_over_batch"] for p in r["sde"]], [p["flat"] for p in r["sde"]], "k--", lw=1.2,
                label="SDE with σ² = η s²/B")
    ax.semilogx([p["lr_over_batch"] for p in r["sde"]], [p["equilibrium"] for p in r["sde"]], ":", color="0.5",
                label="stationary share (t → ∞)")
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator
    ratios = sorted({p["lr_over_batch"] for p in r["sgd"]})
    ax.xaxis.set_major_locator(FixedLocator(ratios))          # a tick at every η/B run
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:.3g}")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    ax.set_xlabel("η / B  (temperature σ² = s² η / B)")
    ax.set_ylabel(f"share of runs in the flat minimum at t = {r['horizon']:g}")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("Learning rate and batch size act through η/B only", fontsize=10)
    fig.suptitle(title or f"SGD on ℓ = E(x) + ξx (s = {r['spread']:g}), {r['runs']} starts on [−3, 5]", fontsize=11)
    fig.tight_layout()
    return fig


def sme_weak_error(r, title=None):
    """E w² of SGD (closed form and Monte Carlo) against SME-1 and SME-2, and the weak errors."""
    plt = _plt()
    fig, (ax0, ax) = plt.subplots(1, 2, figsize=(12, 4.4))
    row = r["rows"][0]
    t = np.asarray(row["t"])
    ax0.errorbar(t, row["sgd_mc"], yerr=2 * np.asarray(row["sgd_mc_se"]), fmt="o", ms=4, color="C0",
                 label=f"SGD, Monte Carlo ({r['runs']:,} runs, ±2 SE)")
    ax0.plot(t, row["sgd_exact"], "kx", label="SGD, closed form")
    ax0.plot(t, row["sme1"], "C1--", label="SME-1")
    ax0.plot(t, row["sme2"], "C2-", label="SME-2")
    ax0.set_xlabel("t = kη")
    ax0.set_ylabel("E w²")
    ax0.set_title(f"η = {row['lr']:g}, B = {r['batch']}", fontsize=10)
    ax0.legend(fontsize=8)
    lrs = np.array([x["lr"] for x in r["rows"]])
    for o, c in ((1, "C1"), (2, "C2")):
        e = np.array([x[f"sme{o}_error"] for x in r["rows"]])
        ax.loglog(lrs, e, "o-", color=c, label=f"SME-{o} (slope over the three smallest η: {r['slopes'][o]:.2f})")
        ax.loglog(lrs, e[-1] * (lrs / lrs[-1]) ** o, ":", color=c, lw=1)
    ax.loglog(lrs, [x["mc_error"] for x in r["rows"]], "k^", label="Monte-Carlo SGD vs closed form (sampling error)")
    ax.set_xlabel("learning rate η")
    ax.set_ylabel(f"weak error |E w²(t={r['horizon']:g})|")
    ax.set_title("Weak error against SGD: O(η) and O(η²) (dotted: slopes 1, 2)", fontsize=10)
    ax.legend(fontsize=8)
    fig.suptitle(title or f"Stochastic modified equations of SGD on ℓ = {r['a']:g}(w − ξ)²/2", fontsize=11)
    fig.tight_layout()
    return fig


def sgd_ensemble(t, summary, finals, data, title=None):
    """Mean ± std over seeds against t = kη for SGD and its SDE models (one panel per coordinate,
    up to three), and the final iterates (a histogram in 1-D, a scatter of the first two
    coordinates otherwise)."""
    plt = _plt()
    D = min(data.dim, 3)
    fig, axs = plt.subplots(1, D + 1, figsize=(4.6 * (D + 1), 4.2))
    styles = {"SGD": ("C0", "-"), "SME-1": ("C1", "--"), "SME-2": ("C2", ":")}
    for d in range(D):
        ax = axs[d]
        for name, v in summary.items():
            c, ls = styles.get(name, ("k", "-"))
            m, s = np.asarray(v["mean"])[:, d], np.asarray(v["std"])[:, d]
            # the band's edges as thin lines in the model's own style: filled bands of three models blend
            ax.plot(t, m, color=c, ls=ls, lw=2, label=f"{name}: mean ± std")
            ax.plot(t, m - s, color=c, ls=ls, lw=0.8)
            ax.plot(t, m + s, color=c, ls=ls, lw=0.8)
        ax.set_xlabel("t = kη")
        ax.set_ylabel(f"{data.vars[d]} (mean ± std over seeds)")
        ax.legend(fontsize=8)
    ax = axs[-1]
    finite = {k: np.asarray(y)[np.all(np.isfinite(y), axis=1)] for k, y in finals.items()}
    if data.dim == 1:         # one set of bins for all (comparable), ~√n of them (not noise)
        n = min(len(y) for y in finite.values())
        edges = np.histogram_bin_edges(np.concatenate([y[:, 0] for y in finite.values()]),
                                       bins=int(np.clip(np.sqrt(n), 10, 50)))
    for name, y in finite.items():
        c, ls = styles.get(name, ("k", "-"))
        if data.dim == 1:
            ax.hist(y[:, 0], bins=edges, density=True, histtype="step", color=c, ls=ls, lw=1.5, label=name)
            ax.set_xlabel(str(data.vars[0]))
            ax.set_ylabel("density at the last step")
        else:
            ax.scatter(y[:2000, 0], y[:2000, 1], s=3, color=c, alpha=0.4, label=name)
            ax.set_xlabel(str(data.vars[0]))
            ax.set_ylabel(str(data.vars[1]))
    ax.set_title("final iterates", fontsize=10)
    ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
