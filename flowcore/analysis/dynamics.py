"""Long-run dynamics of GD: orbit diagrams with Lyapunov exponents, basin entropy, portraits."""
import numpy as np

import flowcore as fc


def orbit_diagram(loss, lrs, theta0, transient=500, keep=100, escape_radius=1e6, device=None):
    """Late GD iterates against the learning rate, with the largest Lyapunov exponent.

    For each h in ``lrs``, GD runs from ``theta0`` for ``transient + keep`` steps; the last
    ``keep`` iterates are the orbit. The largest Lyapunov exponent is the mean growth rate of
    the product of map Jacobians J_n = I − h H(θ_n) along the orbit (QR re-orthonormalisation,
    so it equals log|1 − hλ| at a stable fixed point in 1-D). Escaped or non-finite runs give
    NaN orbits and exponents, with their status.

    Returns a dict: lrs [L], orbits [L, keep, D], lyapunov [L], status [L], period [L]
    (:func:`orbit_period`: 1 fixed point, p a p-cycle, 0 no period ≤ keep/2, None escaped) and
    device. ``device``: where the GD runs ('cpu', 'gpu', or None: the GPU for ≥ 10⁴ rates when
    usable), as in :func:`flowcore.descend`; the exponents are computed on the CPU.
    """
    lrs = np.asarray(lrs, dtype=float).reshape(-1)
    if lrs.size == 0 or np.any(~np.isfinite(lrs)) or np.any(lrs <= 0):
        raise ValueError("lrs must be a non-empty array of finite learning rates > 0")
    th0 = np.asarray(theta0, dtype=float).reshape(1, -1)
    if th0.shape[1] != loss.dim:
        raise ValueError(f"theta0 must have {loss.dim} coordinates, got {th0.shape[1]}")
    from flowcore.engine.checks import count
    transient = count(transient, "transient (iterations discarded)", 0, 10**8)
    keep = count(keep, "keep (iterations kept per learning rate)", 1, 10**6)
    D = loss.dim
    # one batched run: every learning rate is its own trajectory from the same start
    run = fc.descend(loss, np.repeat(th0, len(lrs), axis=0), fc.GD(lrs), transient + keep, escape_radius=escape_radius, compute=fc.Compute(device=device))
    status = run.status.copy()
    ok = status == fc.Status.OK
    orbits = np.full((len(lrs), keep, D), np.nan)
    orbits[ok] = run.iterates[ok, transient + 1:]
    lyap = np.full(len(lrs), np.nan)
    ok = status == fc.Status.OK
    if np.any(ok):
        H = loss.hess(orbits[ok])                                   # [L', keep, D, D]
        J = np.eye(D) - lrs[ok, None, None, None] * H
        with np.errstate(divide="ignore"):
            if D == 1:                                          # the QR of a 1×1 product is |J_n|
                total = np.log(np.abs(J[:, :, 0, 0])).sum(axis=1)
            else:
                Q = np.broadcast_to(np.eye(D), (J.shape[0], D, D)).copy()
                total = np.zeros(J.shape[0])
                for n in range(keep):
                    Q, R = np.linalg.qr(J[:, n] @ Q)
                    total += np.log(np.abs(R[:, 0, 0]))         # the leading direction
        lyap[ok] = total / keep
    return {"lrs": lrs, "orbits": orbits, "lyapunov": lyap, "status": status,
            "period": _orbit_periods(orbits), "device": run.device,
            "vars": None if loss.vars is None else [str(v) for v in loss.vars]}


def orbit_period(orbit, tol=1e-6):
    """The smallest p with θ_n ≈ θ_{n−p} (∞-norm, relative ``tol``) over all kept iterates
    [keep, D]: 1 for a fixed point, 0 when no p ≤ keep/2 repeats (chaos, or not settled: a
    "cycle" whose points are still closing in on each other), None for an orbit that escaped."""
    orbit = np.asarray(orbit, dtype=float)
    return _orbit_periods(orbit.reshape(1, len(orbit), -1), tol)[0]


def _orbit_periods(orbits, tol=1e-6):
    """:func:`orbit_period` of each orbit of ``orbits`` [L, keep, D], the recurrence tested for all
    orbits at once, p by p (one call per orbit and p cost ~0.1 ms each: 0.2 s of a 2 000-rate
    orbit diagram)."""
    L, keep = orbits.shape[:2]
    X = orbits.reshape(L, keep, -1)
    out = [None] * L
    finite = np.flatnonzero(np.all(np.isfinite(X.reshape(L, -1)), axis=1))
    if finite.size == 0:
        return out
    scale = tol * (1 + np.max(np.abs(X[finite]), axis=(1, 2)))
    period = np.zeros(len(finite), int)                  # 0: no p ≤ keep/2 recurs
    for p in range(1, keep // 2 + 1):
        todo = np.flatnonzero(period == 0)
        if todo.size == 0:
            break
        rows = X[finite[todo]]
        period[todo[np.max(np.abs(rows[:, p:] - rows[:, :-p]), axis=(1, 2)) <= scale[todo]]] = p
    q = max(1, keep // 4)
    for i, p in zip(finite, period):
        # a damped oscillation onto a fixed point (multiplier near −1) passes the p = 2 test
        # first: if the gap between the cycle's points is still shrinking, nothing is settled
        for d in range(1, p):
            if p % d == 0:
                gap = np.max(np.abs(X[i, d:] - X[i, :-d]), axis=-1)
                if gap[-q:].mean() < 0.9 * gap[:q].mean():
                    p = 0
                    break
        out[i] = int(p)
    return out


def basin_entropy(labels, box=5):
    """Basin entropy Sb and boundary basin entropy Sbb (Daza et al. 2016, natural log).

    The label image [ny, nx] is cut into box × box cells, a line of labels [n] into segments of
    ``box`` points (incomplete edge boxes dropped); in box i with label fractions p_ij,
    S_i = −Σ_j p_ij ln p_ij. Sb is the mean of S_i over all boxes, Sbb the mean over the boxes
    that hold more than one label (NaN when there are none). Returns (Sb, Sbb, n_boundary_boxes).
    """
    L = np.asarray(labels)
    if L.ndim not in (1, 2):
        raise ValueError(f"labels must be a line [n] or an image [ny, nx], got shape {L.shape}")
    if not isinstance(box, (int, np.integer)) or box < 1 or box > min(L.shape):
        raise ValueError(f"box must be an integer in [1, {min(L.shape)}], got {box!r}")
    if L.ndim == 1:
        blocks = L[:(len(L) // box) * box].reshape(-1, box)
    else:
        ny, nx = (L.shape[0] // box) * box, (L.shape[1] // box) * box
        blocks = L[:ny, :nx].reshape(ny // box, box, nx // box, box).swapaxes(1, 2).reshape(-1, box * box)
    S = _box_entropies(blocks)
    boundary = S > 0
    Sbb = float(S[boundary].mean()) if boundary.any() else float("nan")
    return float(S.mean()), Sbb, int(boundary.sum())


def _box_entropies(blocks):
    """−Σ_j p_j ln p_j of the labels in each row of ``blocks`` [n, m], for all rows at once: each
    row sorted, its runs of equal labels counted (np.unique per box took ~8 µs a box; a 1000²
    map has 40 000 boxes of 5 × 5). Labels are first numbered by np.unique, as the loop counted
    them (NaN labels one value)."""
    codes = np.unique(blocks, return_inverse=True)[1].reshape(blocks.shape)
    srt = np.sort(codes, axis=1)
    n, m = srt.shape
    first = np.ones(srt.shape, bool)               # where a run of equal labels starts; every row
    first[:, 1:] = srt[:, 1:] != srt[:, :-1]        # starts one, so no run spans two rows
    starts = np.flatnonzero(first)
    p = np.diff(np.append(starts, srt.size)) / m
    return np.bincount(starts // m, weights=-p * np.log(p), minlength=n)


def portrait(loss, box, lr, flow="ngf", starts=None, gd_lrs=None, steps=30, resolution=120,
             critical=None, escape_radius=1e6):
    """The numbers behind a phase portrait of ``loss`` in ``box`` [(lo, hi)] * D (D = 1 or 2).

    * ``E`` on a ``resolution`` grid, and the real field of ``flow`` there (2-D, for streamlines);
    * the critical points (``critical``, default :func:`critical_points` in the box);
    * from each start: GD iterates for each rate in ``gd_lrs`` (default [lr]) over ``steps``
      steps, and the trajectory of ``flow`` at the matching times t = n·lr (dopri5, rtol 1e-10),
      and densely (``dense_t``, ``dense_trajectories``: 20 points per step) for drawing.
      The PF's trajectories are complex; the figure shows their real part, and
      :func:`flowcore.analysis.plot.pf_panels` shows Re and Im against t.
    Returns a dict of arrays (JSON-ready through ``as_json``).
    """
    from flowcore.analysis.critical import critical_points
    D = loss.dim
    if D not in (1, 2):
        raise ValueError(f"portraits are drawn for 1-D and 2-D losses; this one is {D}-D "
                         "(use fa.basins with origin/directions for a slice)")
    b = np.asarray(box, dtype=float).reshape(D, 2)
    if not np.all(np.isfinite(b)) or np.any(b[:, 1] <= b[:, 0]):
        raise ValueError(f"box must be [(lo, hi)] * {D} with hi > lo, got {box!r}")
    if not (isinstance(steps, (int, np.integer)) and steps >= 1):
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if flow not in fc.models.FLOWS or flow == "bea":
        raise ValueError(f"flow must be one of {[f for f in fc.models.FLOWS if f != 'bea']}, got {flow!r}")
    field = fc.models.model(flow).build(loss, lr)
    axes = [np.linspace(lo, hi, resolution) for lo, hi in b]
    mesh = np.stack(np.meshgrid(*axes), -1)                  # [ny, nx, 2] or [n, 1]
    out = {"loss": loss.name, "dim": D, "box": b, "lr": float(lr), "flow": flow, "axes": axes,
           "vars": [str(v) for v in loss.vars] if loss.vars is not None else None,
           "E": loss.value(mesh), "steps": int(steps)}
    if not field.is_complex:
        out["field"] = field(mesh)
    else:                                                     # the PF: its real part, at real points
        out["field"] = np.real(field(mesh.astype(complex)))
    cps = critical_points(loss, box=b.tolist()) if critical is None else critical
    out["critical"] = [c.as_dict() for c in cps]
    st = np.zeros((0, D)) if starts is None else np.atleast_2d(np.asarray(starts, dtype=float))
    if st.shape[1:] != (D,):
        raise ValueError(f"starts must have shape [N, {D}], got {np.shape(starts)}")
    gd_lrs = [lr] if gd_lrs is None else list(gd_lrs)
    out["starts"], out["gd_lrs"] = st, gd_lrs
    out["gd"] = [fc.descend(loss, st, fc.GD(h), steps, escape_radius=escape_radius).iterates for h in gd_lrs]
    t = lr * np.arange(steps + 1)
    # the flow densely (20 points per GD step, from dopri5's continuous extension, no extra steps)
    # for drawing; the samples at t = n·lr are the ones GD is compared with
    dense_t = np.linspace(0.0, t[-1], 20 * steps + 1)
    sol = fc.solve(field, st, t_eval=dense_t, method=fc.Dopri5(rtol=1e-10, atol=1e-12), escape_radius=escape_radius) if len(st) else None
    out["t"], out["dense_t"] = t, dense_t
    dense = sol.y if sol is not None else np.zeros((0, len(dense_t), D))
    out["dense_trajectories"] = dense
    out["trajectories"] = dense[:, ::20]
    out["status"] = [fc.Status(int(s)).name for s in (sol.status if sol is not None else [])]
    return out


def uncertainty_exponent(labels, spacing, ks=None):
    """The uncertainty exponent α of a basin boundary along a line of starts (Grebogi, McDonald,
    Ott, Yorke 1983): f(ε), the share of starts whose label differs from that of a start ε away
    (either side), scales as ε^α; the boundary's box-counting dimension along the line is 1 − α
    (0 for isolated boundary points, > 0 for a fractal one). ``labels`` [n] on equally spaced
    starts ``spacing`` apart; ε = k·spacing for k in ``ks`` (default 4, 8, …, n/64).
    Returns (ε, f(ε), α fitted by least squares in log–log)."""
    L = np.asarray(labels).reshape(-1)
    if ks is None:
        ks = 2 ** np.arange(2, int(np.log2(max(len(L) // 64, 1))) + 1)
    ks = np.asarray(ks, int)
    if ks.size < 2 or ks.max() * 2 >= len(L):
        raise ValueError(f"need at least two separations k with 2k < {len(L)} starts, got {ks.tolist()}")
    f = np.array([np.mean((L[k:-k] != L[:-2 * k]) | (L[k:-k] != L[2 * k:])) for k in ks])
    eps = ks * float(spacing)
    ok = f > 0
    alpha = float(np.polyfit(np.log(eps[ok]), np.log(f[ok]), 1)[0]) if ok.sum() >= 2 else float("nan")
    return eps, f, alpha


def as_json(obj):
    """Arrays → lists, complex → {"re", "im"}, NaN → None, results (anything with ``as_dict``,
    dataclasses) → dicts, enums → names: a JSON-ready copy."""
    import dataclasses
    import enum
    if hasattr(obj, "as_dict") and not isinstance(obj, type):
        return as_json(obj.as_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: as_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.name
    if isinstance(obj, dict):
        return {str(k): as_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [as_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        if np.iscomplexobj(obj):
            return {"re": as_json(obj.real), "im": as_json(obj.imag)}
        return as_json(obj.tolist())
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (complex, np.complexfloating)):
        return {"re": as_json(obj.real), "im": as_json(obj.imag)}
    return obj
